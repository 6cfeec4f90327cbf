"""The numba strip engine equals the polars reference (``strip_oracle.py``), row for row.

Generated prints mix everything DESIGN section 3 rules on: 8h, 4h, 2h and 1h schedules that
change inside a grid window (8h -> 1h leaves a stale quote a realised print supersedes),
settlements missing, fetched hours or days late, corrected by a later publication; quotes
tied on ts or duplicated, quoted early for the next window (closing this one), too early or
after settlement (ignored); whole windows missing (gaps to fill, and beyond ``max_fill``);
several series, a null contract and a venue the package does not know; rows grouped by
series, shuffled or interleaved by time. Every engine's frame must equal the oracle's
exactly (same rows, same order, same floats to the bit), for ``apr`` and ``apy``,
``every=0`` and clock samples, ``max_fill`` 1 to 6.
"""

import datetime as dt

import polars as pl
import strip_oracle as oracle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from funding_assets import strip
from funding_assets.prints import normalise

H_MS = 3_600_000
EPOCH = dt.datetime(1970, 1, 1)
START_MS = (dt.datetime(2024, 3, 1) - EPOCH) // dt.timedelta(milliseconds=1)
SERIES = [
    ("binance", "BTC", "usdt"),
    ("binance", "BTC", "inverse"),
    ("bybit", "ETH", None),  # the venue's main perpetual
    ("hyperliquid", "BTC", "usdc"),
    ("myvenue", "BTC", None),  # unknown venue: a null contract of its own
]
COLUMNS = ["venue", "symbol", "contract", "ts", "funding_time", "rate", "interval_hours", "kind", "published_at"]
PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def series_rows(draw, key: tuple, days: int) -> list[tuple]:
    """Rows of one series over ``days`` days (see the module doc)."""
    venue, symbol, contract = key
    rows = []

    def add(ts, ft, rate, hours, kind, published=None):
        rows.append((venue, symbol, contract, ts, ft, rate, float(hours), kind, published))

    hours = draw(st.sampled_from([8, 4, 2, 1]))
    for w in range(days * 3):
        grid_start = START_MS + w * 8 * H_MS
        if draw(st.integers(0, 7)) == 0:
            continue  # a window with no print at all
        if draw(st.integers(0, 5)) == 0:  # the venue changes its interval in this window
            old, hours = hours, draw(st.sampled_from([8, 4, 2, 1]))
            if old != hours:  # a quote of the schedule it left, superseded once settled
                add(
                    grid_start + draw(st.integers(1, 8 * H_MS - 1)),
                    grid_start + old * H_MS,
                    3e-5 * old,
                    old,
                    "predicted",
                )
        if draw(st.integers(0, 5)) == 0:  # the next window quoted early: closes this one
            nxt = grid_start + 8 * H_MS
            add(
                grid_start + draw(st.integers(0, 8 * H_MS)),
                nxt + hours * H_MS,
                1e-6 * draw(st.integers(-5, 40)),
                hours,
                "predicted",
            )
        for ft in range(grid_start + hours * H_MS, grid_start + 8 * H_MS + 1, hours * H_MS):
            rate = 1e-6 * hours * draw(st.integers(-5, 40))
            if draw(st.integers(0, 3)):  # settled: stamped when published or fetched
                delay = draw(st.sampled_from([0, 18, 1400, 5 * H_MS, 30 * H_MS]))
                add(ft + delay, ft, rate, hours, "realised", ft + delay)
                if draw(st.integers(0, 6)) == 0:  # corrected by a later publication
                    later = ft + delay + draw(st.integers(1, 40 * H_MS))
                    add(ft + delay, ft, rate + 1e-6, hours, "realised", later)
            quotes = []
            for _ in range(draw(st.integers(0, 3))):
                where = draw(st.integers(0, 11))
                if where == 11:
                    ts = ft + draw(st.integers(1, 90_000))  # after settlement: kept within a minute
                elif where == 10:
                    ts = ft - draw(st.integers(hours * H_MS, 50 * H_MS))  # early, maybe too early
                elif where == 9 and quotes:
                    ts = draw(st.sampled_from(quotes))  # a tie on ts
                else:
                    ts = ft - draw(st.integers(1, hours * H_MS - 1))
                quotes.append(ts)
                add(ts, ft, rate + 1e-7 * draw(st.integers(-9, 9)), hours, "predicted", ts)
    if rows and draw(st.booleans()):
        rows.extend(draw(st.lists(st.sampled_from(rows), max_size=3)))  # the same print twice
    return rows


@st.composite
def print_frames(draw, days: int = 3) -> pl.DataFrame:
    """Prints of 1-3 series, grouped, shuffled or interleaved; with or without ``published_at``."""
    keys = draw(st.lists(st.sampled_from(SERIES), min_size=1, max_size=3, unique=True))
    rows = [r for key in keys for r in draw(series_rows(key, days))]
    frame = pl.DataFrame(
        rows,
        schema={
            "venue": pl.String,
            "symbol": pl.String,
            "contract": pl.String,
            "ts": pl.Int64,
            "funding_time": pl.Int64,
            "rate": pl.Float64,
            "interval_hours": pl.Float64,
            "kind": pl.String,
            "published_at": pl.Int64,
        },
        orient="row",
    ).with_columns(pl.col("ts", "funding_time", "published_at").cast(pl.Datetime("ms")))
    layout = draw(st.sampled_from(["grouped", "shuffled", "by_time"]))
    if layout == "shuffled":
        frame = frame.sample(fraction=1.0, shuffle=True, seed=draw(st.integers(0, 2**32 - 1)))
    elif layout == "by_time":
        frame = frame.sort("ts", maintain_order=True)
    if draw(st.booleans()):
        frame = frame.drop("published_at")  # published_at = ts; corrections are then ties
    return frame


def assert_same(engine: pl.DataFrame, reference: pl.DataFrame) -> None:
    assert engine.schema == reference.schema
    assert_frame_equal(engine, reference, check_exact=True)


OPTIONS = st.fixed_dictionaries(
    # max_fill 0 is left out: the reference fails on it (see test_strip.py)
    {"annualisation": st.sampled_from(["apr", "apy"]), "max_fill": st.sampled_from([1, 2, 3, 6])}
)


@PROPERTY
@given(print_frames(), OPTIONS, st.sampled_from([0, 1, 10, 25, 60, 480]))
def test_the_engine_equals_the_reference(frame, options, every):
    assert_same(strip.roll_snapshots(frame, **options), oracle.roll_snapshots(frame, **options))
    assert_same(strip.intraday_snapshots(frame, every, **options), oracle.intraday_snapshots(frame, every, **options))
    assert_same(
        strip.partition_snapshots(frame, every=every, **options),
        oracle.partition_snapshots(frame, every=every, **options),
    )
    assert_same(strip.ignored_prints(frame), oracle.ignored_prints(frame))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(print_frames(days=9), st.sampled_from([0, 10]), st.sampled_from([1, 2, 4]))
def test_streamed_blocks_are_the_partition_rows(tmp_path_factory, frame, every, block_days):
    """Blocks of days (prints in memory, read back from a parquet file, or from a directory
    per series) give the rows of ``partition_snapshots``: each block reads only its days
    and the lookback before them."""
    stored = normalise(frame)
    whole = oracle.partition_snapshots(stored, every=every)
    order = [*strip.KEYS, "kind", "ts"]

    def streamed(source) -> pl.DataFrame:
        batches = list(strip.stream_snapshots(source, every=every, block_days=block_days))
        return pl.concat(batches).sort(order) if batches else pl.DataFrame(schema=strip.SNAPSHOT_SCHEMA)

    assert_same(streamed(stored), whole)
    folder = tmp_path_factory.mktemp("prints")
    stored.write_parquet(folder / "prints.parquet")
    assert_same(streamed(folder / "prints.parquet"), whole)
    # a directory per series, a file per day: read file after file
    by_day = stored.with_columns(day=pl.col("ts").dt.date().cast(pl.String))
    if by_day.height:
        by_day.write_parquet(folder / "by_series", partition_by=[*strip.KEYS, "day"])
        assert_same(streamed(folder / "by_series"), whole)
