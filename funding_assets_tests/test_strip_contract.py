"""The strip engine keyed by (venue, symbol, contract) (DESIGN section 3).

A coin's perpetuals of different contract types on one venue (Binance BTCUSDT = ``usdt``,
BTCUSD_PERP = ``inverse``) are separate series: each strip equals the one computed from its
own prints alone. A frame without a ``contract`` column is one series per (venue, symbol)
with a null ``contract``.
"""

import datetime as dt

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funding_assets import strip

H = dt.timedelta(hours=1)
MS = dt.timedelta(milliseconds=1)
T0 = dt.datetime(2024, 1, 1, 8)
H_MS = 3_600_000
EPOCH = dt.datetime(1970, 1, 1)


def prints(rows: list[tuple], venue="binance", symbol="BTC", contract: str | None = "usdt") -> pl.DataFrame:
    """(ts, funding_time, rate, interval_hours, kind) rows of one series."""
    return pl.DataFrame(
        [
            {
                "venue": venue,
                "symbol": symbol,
                "contract": contract,
                "ts": ts,
                "funding_time": ft,
                "rate": rate,
                "interval_hours": float(hours),
                "kind": kind,
            }
            for ts, ft, rate, hours, kind in rows
        ],
        schema={
            "venue": pl.String,
            "symbol": pl.String,
            "contract": pl.String,
            "ts": pl.Datetime("ms"),
            "funding_time": pl.Datetime("ms"),
            "rate": pl.Float64,
            "interval_hours": pl.Float64,
            "kind": pl.String,
        },
    )


def history(rates: list[float], hours: int = 8, *, quotes: bool = True, **series) -> pl.DataFrame:
    """Realised prints every ``hours`` from T0 (stamped 18 ms late) and, with ``quotes``, a
    prediction two hours before each settlement and one five minutes after the fourth
    (ignored); then an open window with one prediction."""
    rows = []
    for i, rate in enumerate(rates):
        ft = T0 + i * hours * H
        if quotes:
            rows.append((ft - 2 * H, ft, rate * 1.5, hours, "predicted"))
        if quotes and i == 3:
            rows.append((ft + 5 * 60_000 * MS, ft, rate * 9, hours, "predicted"))
        rows.append((ft + 18 * MS, ft, rate, hours, "realised"))
    open_end = T0 + len(rates) * hours * H
    rows.append((open_end - H, open_end, rates[-1] * 2, hours, "predicted"))
    return prints(rows, **series)


USDT = dict(venue="binance", symbol="BTC", contract="usdt")
INVERSE = dict(venue="binance", symbol="BTC", contract="inverse")
USDT_RATES = [0.0001, 0.00012, 0.00008, 0.0001, 0.00015, 0.0002, 0.00011, 0.00009, 0.0001, 0.00013]
INVERSE_RATES = [-0.00005, 0.0003, 0.0, 0.00002, -0.0001, 0.0004, 0.0001, 0.00007, 0.00003, 0.0] * 2

ENGINES = {
    "roll": strip.roll_snapshots,
    "intraday": lambda f: strip.intraday_snapshots(f, every="30m"),
    "partition": lambda f: strip.partition_snapshots(f, every=0),
    "ignored": strip.ignored_prints,
}


@pytest.mark.parametrize("engine", list(ENGINES))
def test_two_contracts_of_one_venue_and_coin_are_two_independent_strips(engine):
    fn = ENGINES[engine]
    usdt, inverse = history(USDT_RATES, **USDT), history(INVERSE_RATES, hours=4, **INVERSE)
    # interleaved rows: the series share venue, symbol and every settlement instant
    both = pl.concat([usdt, inverse]).sort("funding_time", "ts", maintain_order=True)
    out = fn(both)
    assert out["contract"].unique().sort().to_list() == ["inverse", "usdt"]
    for contract, alone in (("usdt", usdt), ("inverse", inverse)):
        assert out.filter(pl.col("contract") == contract).equals(fn(alone))


def test_the_two_contract_strips_differ_and_each_reads_its_own_prints():
    both = pl.concat([history(USDT_RATES, **USDT), history(INVERSE_RATES, hours=4, **INVERSE)])
    roll = strip.roll_snapshots(both)
    last = {r["contract"]: r for r in roll.filter(pl.col("ts") == T0 + 72 * H).iter_rows(named=True)}
    assert last["usdt"]["b0"] == pytest.approx(USDT_RATES[9] * 1095, abs=1e-12)
    # inverse: 4h windows, two per grid window (the one ending 72h after T0 holds the 18th
    # and 19th settlements): r8 = their sum * 8 / (4 + 4)
    assert last["inverse"]["b0"] == pytest.approx(sum(INVERSE_RATES[17:19]) * 1095, abs=1e-12)
    assert last["inverse"]["interval_hours"] == 4.0
    assert roll.columns == list(strip.SNAPSHOT_SCHEMA)
    assert roll.select(strip.KEYS).unique().sort(strip.KEYS).rows() == [
        ("binance", "BTC", "inverse"),
        ("binance", "BTC", "usdt"),
    ]


def test_a_frame_without_a_contract_column_is_the_venues_main_perpetual():
    named = history(USDT_RATES, **USDT)
    plain = named.drop("contract")
    for fn in ENGINES.values():
        assert fn(plain).equals(fn(named))  # binance BTC without a contract: BTCUSDT, as stored


def test_a_venue_the_package_does_not_know_keeps_a_null_contract_as_a_series_of_its_own():
    named = history(USDT_RATES, **USDT)
    unknown = history(INVERSE_RATES, hours=4, contract=None).with_columns(venue=pl.lit("myvenue"))
    for fn in ENGINES.values():
        out = fn(pl.concat([named, unknown]))
        assert out.filter(pl.col("contract").is_null()).equals(fn(unknown))
        assert out.filter(pl.col("contract") == "usdt").equals(fn(named))
        assert fn(unknown.drop("contract"))["contract"].null_count() == fn(unknown).height
    roll = strip.roll_snapshots(unknown.drop("contract"))
    assert dict(roll.schema) == strip.SNAPSHOT_SCHEMA and roll.height > 0


def test_contract_values_of_another_type_are_read_as_text():
    frame = history(USDT_RATES, **USDT).with_columns(pl.col("contract").cast(pl.Categorical))
    assert strip.roll_snapshots(frame).equals(strip.roll_snapshots(history(USDT_RATES, **USDT)))


# --- property: the strips of many series are the strips of each series --------------------

SERIES = [
    ("binance", "BTC", "usdt"),
    ("binance", "BTC", "inverse"),
    ("binance", "ETH", "usdt"),
    ("bybit", "BTC", "usdc"),
    ("bybit", "BTC", None),
    ("hyperliquid", "BTC", "usdc"),
]
PROPERTY = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def series_prints(draw, days: int = 3) -> list[pl.DataFrame]:
    """Prints of several (venue, symbol, contract) series, one frame each, sharing settlement
    instants: 8h, 4h or 1h schedules, settlements missing or fetched late, predictions quoted
    during the window, early (ignored) or after settlement (ignored)."""
    keys = draw(st.lists(st.sampled_from(SERIES), min_size=2, max_size=5, unique=True))
    start_ms = (dt.datetime(2024, 3, 1) - EPOCH) // MS
    parts = []
    for venue, symbol, contract in keys:
        hours = draw(st.sampled_from([8, 4, 1]))
        rows = []
        for ft in range(start_ms + hours * H_MS, start_ms + days * 24 * H_MS + 1, hours * H_MS):
            rate = 1e-6 * hours * draw(st.integers(-5, 40))
            if draw(st.integers(0, 9)) < 8:
                delay = draw(st.sampled_from([18, 1400, 5 * H_MS]))
                rows.append((ft + delay, ft, rate, hours, "realised"))
            for _ in range(draw(st.integers(0, 2))):
                offset = draw(st.sampled_from([7, H_MS // 2, -2 * H_MS, 40 * H_MS]))
                rows.append((ft - offset, ft, rate + 1e-7 * draw(st.integers(-9, 9)), hours, "predicted"))
        if rows:
            frame = pl.DataFrame(
                rows,
                schema={
                    "ts": pl.Int64,
                    "funding_time": pl.Int64,
                    "rate": pl.Float64,
                    "interval_hours": pl.Float64,
                    "kind": pl.String,
                },
                orient="row",
            )
            parts.append(
                frame.with_columns(
                    pl.col("ts", "funding_time").cast(pl.Datetime("ms")),
                    venue=pl.lit(venue),
                    symbol=pl.lit(symbol),
                    contract=pl.lit(contract, pl.String),
                )
            )
    return parts


def _per_series(fn, parts: list[pl.DataFrame], order: list[str]) -> pl.DataFrame:
    """``fn`` of each series alone, concatenated in the engine's key order."""
    return pl.concat([fn(part) for part in parts]).sort(order)


@PROPERTY
@given(series_prints())
def test_strips_of_many_series_are_the_strips_of_each_series(parts):
    """Whatever the order of the series and however their rows interleave (each series' own
    rows keep their order: it breaks ties), the strips are those of each series alone."""
    by_time = pl.concat(parts).sort("ts", maintain_order=True)
    frames = (pl.concat(parts), pl.concat(parts[::-1]), by_time, pl.concat(parts[::-1]).sort("ts", maintain_order=True))
    roll = _per_series(strip.roll_snapshots, parts, [*strip.KEYS, "ts"])
    every = lambda f: strip.partition_snapshots(f, every="30m")  # noqa: E731
    partition = _per_series(every, parts, [*strip.KEYS, "kind", "ts"])
    for frame in frames:
        assert strip.roll_snapshots(frame).equals(roll)
        assert every(frame).equals(partition)
    order = [*strip.KEYS, "ts", "rate"]
    ignored = pl.concat([strip.ignored_prints(p) for p in parts]).sort(order)
    assert strip.ignored_prints(by_time).sort(order).equals(ignored)
