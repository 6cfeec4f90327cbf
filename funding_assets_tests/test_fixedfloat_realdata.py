"""Fixed against floating on real settled funding, 2025-08-21 to 2026-08-22.

Source: ``../shared/realdata/zushen168_2025_2026/DERIVED_btc_eth_funding.csv`` (DATA.md 1c):
Binance and Bybit BTCUSDT (8h) and Hyperliquid BTC (1h), decimal rates per interval with
their ``interval_hours``, settlement times with ms jitter (floored to the minute here).

- fixed-rate spreads: hourly fixed-rate candles are built from the real funding, annualised
  (rate * 8760 / interval_hours) and forward-filled to every hour, one market per venue;
  ``fixed_spreads`` with the notebook setting equals a pandas ``rolling(72)`` mean, std and
  1.5 std bands on the Binance - Bybit spread to 1e-12;
- realised APRs: a 30-day future on each underlying, prints from the file: the term's
  realised APR equals sum(rate) * 8760 / sum(hours) computed on the file's rows, and the
  real settlements cover the term (outcome rows exist; one settlement removed, none).

Skipped where ``../shared`` (the real data) is absent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import polars as pl
import pytest
from fixedfloat_frames import CANDLES, NO_ROLLS
from pandas_reference import TOL, check_against_pandas

from funding_assets.fixedfloat import NOTEBOOK_FIXED_ROLLING, fixed_spreads, fixed_vs_floating
from funding_assets.prints import PRINT_SCHEMA

SHARED = Path(__file__).resolve().parents[2] / "shared"
ZUSHEN = SHARED / "realdata" / "zushen168_2025_2026" / "DERIVED_btc_eth_funding.csv"
if not ZUSHEN.is_file():
    pytest.skip(f"{ZUSHEN} (real third-party funding data) is not present", allow_module_level=True)

CONTRACTS = {"binance": "usdt", "bybit": "usdt", "hyperliquid": "usdc"}
MATURITY = datetime(2026, 9, 25, 8)


@pytest.fixture(scope="module")
def settled() -> pl.DataFrame:
    """BTC settlements: venue, funding_time (UTC, to the minute), rate, interval_hours."""
    return (
        pl.read_csv(ZUSHEN, schema_overrides={"rate_raw": pl.Float64, "interval_hours": pl.Float64})
        .filter(pl.col("venue_symbol").is_in(["BTCUSDT", "BTC"]))
        .select(
            "venue",
            funding_time=pl.from_epoch("settlement_ts_ms", time_unit="ms").dt.truncate("1m"),
            rate="rate_raw",
            interval_hours="interval_hours",
        )
        .sort("venue", "funding_time")
    )


def hourly_closes(settled: pl.DataFrame, venue: str) -> pl.DataFrame:
    """Every hour from the venue's first settlement: its latest annualised rate (ts, close)."""
    apr = settled.filter(pl.col("venue") == venue).select(
        ts="funding_time", close=pl.col("rate") * 8760 / pl.col("interval_hours")
    )
    return apr.upsample("ts", every="1h").select("ts", pl.col("close").forward_fill())


def candle_frame(settled: pl.DataFrame, venues: list[str]) -> pl.DataFrame:
    frames = [
        hourly_closes(settled, venue).with_columns(
            provider=pl.lit("rho"),
            market_id=pl.lit(f"{venue}-BTC-SEP26"),
            venue=pl.lit(venue),
            symbol=pl.lit("BTC"),
            contract=pl.lit(CONTRACTS[venue]),
            venue_symbol=pl.lit("BTCUSDT" if venue != "hyperliquid" else "BTC"),
            term_start=pl.lit(datetime(2025, 8, 21)),
            maturity=pl.lit(MATURITY),
            interval=pl.lit("1h"),
            open=pl.col("close"),
            high=pl.col("close"),
            low=pl.col("close"),
            underlying_apr=pl.lit(None, pl.Float64),
            source=pl.lit("replay"),
        )
        for venue in venues
    ]
    return pl.concat(frames, how="diagonal").select(list(CANDLES)).cast(CANDLES)


def test_the_notebook_setting_equals_pandas_rolling_72_on_real_binance_minus_bybit_fixed_rates(settled):
    bars = candle_frame(settled, ["binance", "bybit"])
    out = fixed_spreads(bars, rolling=NOTEBOOK_FIXED_ROLLING)
    assert out.select("venue_a", "venue_b").unique().rows() == [("binance", "bybit")]
    # the notebook's arithmetic on the same hourly series, done in pandas
    wide = bars.to_pandas().pivot(index="ts", columns="venue", values="close").dropna()
    x = (wide["binance"] - wide["bybit"]).to_list()
    assert out["ts"].to_list() == [t.to_pydatetime() for t in wide.index]
    assert out["spread"].to_list() == x
    assert len(x) > 8700  # a year of hours, none missing
    agreement = check_against_pandas(out, x, pd.Series(x).rolling(72), lambda i: x[i - 71 : i + 1])
    assert agreement.rows > 8600  # every full window but the flat ones (std 0)
    for column in ("mean", "std", "upper", "lower"):
        assert agreement.max_abs_diff[column] <= TOL, column
    assert agreement.pandas_off <= 0.03 * agreement.rows
    assert out["signal"].drop_nulls().abs().sum() > 100  # the real spread does leave its bands


def prints_frame(settled: pl.DataFrame) -> pl.DataFrame:
    return settled.select(
        "venue",
        symbol=pl.lit("BTC"),
        contract=pl.col("venue").replace_strict(CONTRACTS),
        venue_symbol=pl.lit("BTCUSDT"),
        ts="funding_time",
        funding_time="funding_time",
        rate="rate",
        interval_hours="interval_hours",
        kind=pl.lit("realised"),
        source=pl.lit("replay"),
    ).cast(PRINT_SCHEMA)


@pytest.mark.parametrize("venue", ["binance", "hyperliquid"])
def test_the_realised_term_apr_of_a_real_30_day_future(settled, venue):
    start, maturity = datetime(2025, 10, 1), datetime(2025, 10, 31)
    bars = candle_frame(settled, [venue]).with_columns(term_start=pl.lit(start), maturity=pl.lit(maturity))
    bars = bars.filter(pl.col("ts") >= start - timedelta(days=1), pl.col("ts") < maturity + timedelta(days=1))
    prints = prints_frame(settled)
    out = fixed_vs_floating(bars, prints, NO_ROLLS, known_until=maturity)
    term = settled.filter(pl.col("venue") == venue, pl.col("funding_time") > start, pl.col("funding_time") <= maturity)
    by_hand = term["rate"].sum() * 8760 / term["interval_hours"].sum()
    outcomes = out.filter(pl.col("kind") == "outcome")
    assert outcomes.height == 30 * 24
    assert outcomes["realised_term_apr"].unique().to_list() == [pytest.approx(by_hand, rel=1e-12)]
    assert outcomes["term_hours"][0] == 30 * 24
    # one real settlement removed: the term is no longer covered
    gap = prints.filter(~((pl.col("venue") == venue) & (pl.col("funding_time") == term["funding_time"][10])))
    assert fixed_vs_floating(bars, gap, NO_ROLLS, known_until=maturity).filter(pl.col("kind") == "outcome").is_empty()
