"""Fixed against floating through the pipeline: fixed_rate_candles -> fixed_vs_floating, fixed_rate_spreads.

- From the simulator: a backfill fills both assets for the Rho futures on Binance, Bybit
  and OKX BTC funding (and Boros), rates annualised decimals, the realised floating APR of
  a candle equal to the stored settlements of its term, and a day materialised alone equal
  to the same day inside the range.
- From replay files of real data (``../shared/realdata``, skipped without it): real Binance
  and Bybit BTC settlements as the prints, and fixed-rate candles built from them; with
  ``FUNDING_ASSETS_FIXED_BANDS=notebook`` the stored fixed-rate spreads equal the seed
  notebook's pandas ``rolling(72)`` mean, std and 1.5 std bands.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from funding_assets.backfill import backfill
from funding_assets.resources import FundingConfig

SHARED = Path(__file__).resolve().parents[2] / "shared"
ZUSHEN = SHARED / "realdata" / "zushen168_2025_2026" / "DERIVED_btc_eth_funding.csv"


def _run(env: dict[str, str], start: dt.date, end: dt.date, today: dt.date) -> None:
    config = FundingConfig.from_env(env)
    with dg.DagsterInstance.ephemeral() as instance:
        outcomes = backfill(start, end, config, instance, lambda _: None, lambda _: None, today=today)
    assert all(o.success for o in outcomes), [o.error for o in outcomes if not o.success]


def _table(home: Path, sql: str) -> pl.DataFrame:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.sql(sql).pl()


SIM_ENV = {
    "FUNDING_ASSETS_VENUES": "binance,bybit,okx",
    "FUNDING_ASSETS_COINS": "BTC",
    "FUNDING_ASSETS_RECONSTRUCT": "0",
    "FUNDING_ASSETS_FIXED_MAX_TERM_DAYS": "100",
}
START, END, TODAY = dt.date(2025, 7, 24), dt.date(2025, 7, 26), dt.date(2025, 8, 1)


@pytest.fixture(scope="module")
def sim_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("fixed_sim")
    _run({**SIM_ENV, "FUNDING_ASSETS_HOME": str(home)}, START, END, TODAY)
    return home


def test_the_simulator_fills_candles_and_fixed_vs_floating_for_binance_bybit_and_okx(sim_home):
    candles = _table(sim_home, "SELECT * FROM funding.fixed_rate_candles WHERE ts >= '2025-07-24'")
    rho = candles.filter(pl.col("provider") == "rho")
    assert set(rho["venue"]) == {"binance", "bybit", "okx"}
    assert set(candles["provider"]) == {"rho", "boros"}
    assert set(candles["symbol"]) == {"BTC"} and set(candles["source"]) == {"sim"}
    # annualised decimals: a few percent a year, never percent or scaled integers
    assert candles["close"].abs().max() < 1.0 and candles["close"].abs().mean() > 0.005
    fvf = _table(sim_home, "SELECT * FROM funding.fixed_vs_floating")
    rows = fvf.filter(pl.col("kind") == "candle")
    assert rows.select("provider", "market_id").n_unique() == candles.select("provider", "market_id").n_unique()
    assert set(rows["ts"].dt.date()) == {START, START + dt.timedelta(days=1), END}
    rho_rows = rows.filter(pl.col("provider") == "rho")
    # nothing accrued only before a new term's first settlement
    accrued = rho_rows.filter(pl.col("realised_hours") > 0)
    assert accrued.height > 0.9 * rho_rows.height and accrued["realised_apr_to_date"].null_count() == 0
    assert rho_rows["strip_mean_apr"].null_count() == 0
    # a future maturing in the range (2025-07-25 08:00, the last Friday) has outcome rows on its day
    outcomes = fvf.filter(pl.col("kind") == "outcome")
    assert outcomes.height and set(outcomes["partition_day"]) == {dt.date(2025, 7, 25)}
    assert outcomes["fixed_earned_apr"].null_count() == 0


def test_a_candles_realised_apr_is_the_stored_settlements_of_its_term(sim_home):
    row = _table(
        sim_home,
        "SELECT * FROM funding.fixed_vs_floating WHERE kind = 'candle' AND provider = 'rho' AND venue = 'okx' "
        "ORDER BY ts DESC, market_id LIMIT 1",
    ).row(0, named=True)
    paid = _table(
        sim_home,
        f"SELECT rate, interval_hours FROM funding.realised_funding WHERE venue = 'okx' AND symbol = 'BTC' "
        f"AND funding_time > '{row['term_start']}' AND funding_time < '{row['as_of']}'",
    )
    assert row["realised_hours"] == paid["interval_hours"].sum()
    assert row["realised_apr_to_date"] == pytest.approx(
        paid["rate"].sum() * 8760 / paid["interval_hours"].sum(), rel=1e-12
    )
    assert row["carry_apr"] == pytest.approx(row["implied_apr"] - row["realised_apr_to_date"], abs=1e-15)


def test_a_day_alone_stores_what_the_range_stored(sim_home, tmp_path):
    day = dt.date(2025, 7, 25)
    alone = tmp_path / "alone"
    _run({**SIM_ENV, "FUNDING_ASSETS_HOME": str(alone)}, day, day, TODAY)
    for table, order in (
        ("fixed_vs_floating", "provider, market_id, interval, ts, kind"),
        ("fixed_rate_spreads", "provider, symbol, maturity, venue_a, venue_b, ts"),
    ):
        day_filter = "partition_day" if table == "fixed_vs_floating" else "CAST(ts AS DATE)"
        sql = f"SELECT * FROM funding.{table} WHERE {day_filter} = DATE '{day}' ORDER BY {order}"
        a, b = _table(alone, sql), _table(sim_home, sql)
        assert a.height and a.equals(b), table


@pytest.mark.skipif(not ZUSHEN.is_file(), reason=f"{ZUSHEN} (real third-party funding data) is not present")
def test_replayed_real_prints_give_the_notebooks_rolling_72_bands(tmp_path):
    import pandas as pd

    settled = (
        pl.read_csv(ZUSHEN, schema_overrides={"rate_raw": pl.Float64, "interval_hours": pl.Float64})
        .filter(pl.col("venue").is_in(["binance", "bybit"]) & (pl.col("venue_symbol") == "BTCUSDT"))
        .select(
            "venue",
            funding_time=pl.from_epoch("settlement_ts_ms", time_unit="ms").dt.truncate("1m"),
            rate="rate_raw",
            interval_hours="interval_hours",
        )
        .filter(pl.col("funding_time") < dt.datetime(2025, 12, 12))
        .sort("venue", "funding_time")
    )
    replay = tmp_path / "replay"
    closes = {}
    for venue in ("binance", "bybit"):
        mine = settled.filter(pl.col("venue") == venue)
        (replay / venue).mkdir(parents=True)
        mine.select(
            symbol=pl.lit("BTCUSDT"),
            ts=pl.col("funding_time").dt.epoch("ms"),
            funding_time=pl.col("funding_time").dt.epoch("ms"),
            rate="rate",
            interval_hours="interval_hours",
        ).write_csv(replay / venue / "btc.csv")
        # the fixed rate: the latest settlement annualised, every hour (real numbers, hourly candles)
        closes[venue] = (
            mine.select(ts="funding_time", close=pl.col("rate") * 8760 / pl.col("interval_hours"))
            .upsample("ts", every="1h")
            .select("ts", pl.col("close").forward_fill())
            .filter(pl.col("ts") >= dt.datetime(2025, 11, 1))
        )
    (replay / "rho").mkdir()
    pl.concat(
        c.select(
            market_id=pl.lit(f"{venue}-BTC-JAN26"),
            venue=pl.lit(venue),
            symbol=pl.lit("BTCUSDT"),
            term_start=pl.lit("2025-11-01T00:00:00Z"),
            maturity=pl.lit("2026-01-30T08:00:00Z"),
            ts=pl.col("ts").dt.epoch("ms"),
            close="close",
        )
        for venue, c in closes.items()
    ).write_csv(replay / "rho" / "btc.csv")
    home = tmp_path / "data"
    env = {
        "FUNDING_ASSETS_HOME": str(home),
        "FUNDING_ASSETS_SOURCE": f"replay:{replay}",
        "FUNDING_ASSETS_VENUES": "binance,bybit",
        "FUNDING_ASSETS_COINS": "BTC",
        "FUNDING_ASSETS_RECONSTRUCT": "0",
        "FUNDING_ASSETS_RATES": "rho",
        "FUNDING_ASSETS_FIXED_MAX_TERM_DAYS": "91",
        "FUNDING_ASSETS_FIXED_BANDS": "notebook",
    }
    start, end = dt.date(2025, 12, 1), dt.date(2025, 12, 10)
    _run(env, start, end, dt.date(2025, 12, 20))
    stored = _table(home, "SELECT * FROM funding.fixed_rate_spreads ORDER BY ts")
    assert stored.height == 24 * 10 and set(stored["venue_a"]) == {"binance"} and set(stored["venue_b"]) == {"bybit"}

    a = closes["binance"].to_pandas().set_index("ts")["close"]
    b = closes["bybit"].to_pandas().set_index("ts")["close"]
    spread = (a - b).dropna()
    mean, std = spread.rolling(72).mean(), spread.rolling(72).std()
    expected = pd.DataFrame(
        {"spread": spread, "mean": mean, "std": std, "upper": mean + 1.5 * std, "lower": mean - 1.5 * std}
    )
    expected = expected.loc[stored["ts"].to_list()]
    for column in ("spread", "mean", "std", "upper", "lower"):
        got = stored[column].to_numpy()
        assert abs(got - expected[column].to_numpy()).max() < 1e-12, column
    assert stored["signal"].null_count() < stored.height  # a real spread moves: bands and signals exist
