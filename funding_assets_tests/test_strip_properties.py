"""Invariants of the strip engine (DESIGN section 3), checked on generated prints.

The generator mixes what venues do: 8h, 4h and 1h schedules that change inside a grid
window, settlements that are missing or fetched hours late, predictions quoted early, late
(after settlement: ignored) or for a schedule the venue just left (superseded).

- order: shuffling input rows (distinct ts) gives the same snapshots;
- idempotence: duplicated input rows change nothing;
- partition = range: the rows whose ``as_of`` falls on day D are the same computed from the
  prints of D and the ``LOOKBACK_DAYS`` before it, or from a longer range;
- live = batch: the same prints fed to ``LiveStrip`` in ts order give the rows of the batch
  engine.
"""

import datetime as dt

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funding_assets import strip
from funding_assets.live.livestrip import PRINT_COLUMNS, LiveStrip, rows_frame
from funding_assets.prints import normalise

START = dt.datetime(2024, 3, 1)
H_MS = 3_600_000
PROPERTY = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def print_frames(draw, days: int, venues=("binance",)) -> pl.DataFrame:
    """Prints of ``days`` days for each venue (columns of the print model, ms timestamps)."""
    rows = []
    used: set[int] = set()
    start_ms = int((START - dt.datetime(1970, 1, 1)).total_seconds() * 1000)

    def distinct(ts: int) -> int:
        while ts in used or ts % 60_000 == 0:  # not on a settlement minute, never twice
            ts += 1
        used.add(ts)
        return ts

    for venue in venues:
        hours = draw(st.sampled_from([8, 4, 1]))
        for w in range(days * 3):
            grid_start = start_ms + w * 8 * H_MS
            if draw(st.integers(0, 9)) == 9:  # the venue changes its interval in this window
                old, hours = hours, draw(st.sampled_from([8, 4, 1]))
                if old != hours:  # a stale quote of the schedule it left
                    ts = distinct(grid_start + draw(st.integers(1, old * H_MS - 1)) % (8 * H_MS))
                    rows.append(
                        (venue, ts, grid_start + old * H_MS, 1e-5 * draw(st.integers(-5, 40)), old, "predicted")
                    )
            for ft in range(grid_start + hours * H_MS, grid_start + 8 * H_MS + 1, hours * H_MS):
                rate = 1e-6 * hours * draw(st.integers(-5, 40))
                if draw(st.integers(0, 9)) < 8:  # settled, stamped when published (ms) or fetched later
                    delay = draw(st.sampled_from([18, 1400, 5 * H_MS, 20 * H_MS]))
                    rows.append((venue, ft + delay, ft, rate, hours, "realised"))
                for _ in range(draw(st.integers(0, 2))):
                    where = draw(st.integers(0, 19))
                    if where == 19:
                        offset = -draw(st.integers(1, 3 * H_MS))  # after settlement: ignored
                    elif where == 18:
                        offset = draw(st.integers(hours * H_MS, 40 * H_MS))  # quoted early
                    else:
                        offset = draw(st.integers(1, hours * H_MS - 1))
                    ts = distinct(ft - offset)
                    rows.append((venue, ts, ft, rate + 1e-7 * draw(st.integers(-9, 9)), hours, "predicted"))
    schema = {
        "venue": pl.String,
        "ts": pl.Int64,
        "funding_time": pl.Int64,
        "rate": pl.Float64,
        "interval_hours": pl.Float64,
        "kind": pl.String,
    }
    return pl.DataFrame(rows, schema=schema, orient="row").with_columns(
        pl.col("ts", "funding_time").cast(pl.Datetime("ms")),
        symbol=pl.lit("BTC"),
        contract=pl.lit("usdt"),
        venue_symbol=pl.lit("X"),
        source=pl.lit("test"),
    )


@PROPERTY
@given(print_frames(days=4, venues=("binance", "hyperliquid")), st.integers(0, 2**32 - 1))
def test_row_order_does_not_matter(frame, seed):
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=seed)
    assert strip.roll_snapshots(shuffled).equals(strip.roll_snapshots(frame))
    assert strip.partition_snapshots(shuffled, every="20m").equals(strip.partition_snapshots(frame, every="20m"))
    assert strip.ignored_prints(shuffled).sort("ts").equals(strip.ignored_prints(frame).sort("ts"))


@PROPERTY
@given(print_frames(days=4), st.integers(0, 2**32 - 1))
def test_duplicated_prints_change_nothing(frame, seed):
    doubled = pl.concat([frame, frame.sample(fraction=0.5, seed=seed)])
    assert strip.partition_snapshots(doubled, every=0).equals(strip.partition_snapshots(frame, every=0))
    assert strip.partition_snapshots(normalise(frame), every=0).equals(strip.partition_snapshots(frame, every=0))


@PROPERTY
@given(print_frames(days=10), st.integers(7, 9))
def test_a_day_computed_alone_equals_the_day_inside_a_range(frame, day_index):
    stored = normalise(frame)  # raw_prints partitions by the stored (settlement) ts
    day = (START + dt.timedelta(days=day_index)).date()
    lo = dt.datetime.combine(day, dt.time())
    alone = stored.filter(
        (pl.col("ts") >= lo - dt.timedelta(days=strip.LOOKBACK_DAYS)) & (pl.col("ts") < lo + dt.timedelta(days=1))
    )

    def of_day(prints: pl.DataFrame) -> pl.DataFrame:
        return strip.partition_snapshots(prints, every="30m").filter(pl.col("as_of").dt.date() == day)

    assert of_day(alone).equals(of_day(stored))


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(print_frames(days=3))
def test_live_rows_equal_the_batch_engine(frame):
    by_ts = normalise(frame).with_row_index("i").sort("ts", "i")["i"].to_list()
    live = LiveStrip()
    rows = [r for q in frame.select(PRINT_COLUMNS)[by_ts].iter_rows() for r in live.update([q])]
    emitted = rows_frame(rows).unique([*strip.KEYS, "kind", "ts"], keep="last", maintain_order=True)
    assert emitted.filter(pl.col("kind") == "roll").sort(*strip.KEYS, "ts").equals(strip.roll_snapshots(frame))
    intraday = emitted.filter(pl.col("kind") == "intraday")
    batch = strip.intraday_snapshots(frame, every=0)
    joined = intraday.join(batch, on=[*strip.KEYS, "ts"], how="full", suffix="_batch")
    assert joined.height == intraday.height == batch.height
    for column in [*strip.BUCKETS, "coverage", "min_coverage", "interval_hours"]:
        assert ((joined[column] - joined[f"{column}_batch"]).abs() < 1e-9).all(), column
    for column in ("funding_time", "n_filled", "as_of"):
        assert (joined[column] == joined[f"{column}_batch"]).all(), column
