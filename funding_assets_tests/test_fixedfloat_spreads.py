"""Fixed-rate spreads across venues (DESIGN section 11): the floating spreads' engine on
implied fixed rates (funding_assets.fixedfloat.fixed_spreads).

- a group is one provider, coin, maturity and candle interval; a pair two of its markets on
  different underlyings (venue, contract), a < b as the floating spreads order them
  (Binance before Bybit); spread = close_a - close_b, annualised decimal;
- mean, std, z, bands and signal by the same RollingWindow convention and code as
  spread_signals (the same numbers on the same series);
- NOTEBOOK_FIXED_ROLLING = the seed notebook's pandas rolling(72) with 1.5 std bands.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest
from fixedfloat_frames import H, candle, candles, hourly
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandas_reference import TOL, check_against_pandas
from polars.testing import assert_frame_equal

from funding_assets.fixedfloat import (
    FIXED_PAIR,
    FIXED_ROLLING,
    FIXED_SPREAD_SCHEMA,
    NOTEBOOK_FIXED_ROLLING,
    fixed_spreads,
)
from funding_assets.rolling import RollingWindow
from funding_assets.spreads import spread_signals

T0 = datetime(2024, 3, 1)
M1 = datetime(2024, 6, 28, 8)
M2 = datetime(2024, 9, 27, 8)
TERM = {"term_start": T0, "maturity": M1}


def quote(market_id: str, venue: str, close: float, contract: str = "usdt", ts: datetime = T0, **kw) -> dict:
    return candle(ts, close, market_id=market_id, venue=venue, contract=contract, **{**TERM, **kw})


def test_the_output_has_the_documented_schema():
    out = fixed_spreads(candles([quote("a", "binance", 0.1), quote("b", "bybit", 0.08)]))
    assert out.schema == pl.Schema(FIXED_SPREAD_SCHEMA)
    assert fixed_spreads(candles([])).schema == pl.Schema(FIXED_SPREAD_SCHEMA)


def test_every_pair_of_underlyings_once_binance_minus_bybit_first():
    out = fixed_spreads(candles([quote("c", "okx", 0.3), quote("a", "binance", 0.1), quote("b", "bybit", 0.25)]))
    assert out.select("venue_a", "market_id_a", "venue_b", "market_id_b").rows() == [
        ("binance", "a", "bybit", "b"),
        ("binance", "a", "okx", "c"),
        ("bybit", "b", "okx", "c"),
    ]
    got = dict(zip(zip(out["venue_a"], out["venue_b"]), out["spread"]))
    assert got == pytest.approx({("binance", "bybit"): -0.15, ("binance", "okx"): -0.2, ("bybit", "okx"): -0.05})
    first = out.row(0, named=True)
    assert (first["implied_apr_a"], first["implied_apr_b"]) == (0.1, 0.25)


def test_pairs_stay_within_one_provider_coin_maturity_and_interval():
    rows = [
        quote("a", "binance", 0.1),
        quote("b", "bybit", 0.2),
        quote("boros-b", "bybit", 0.5, provider="boros"),  # another provider
        quote("b-sep", "bybit", 0.6, maturity=M2),  # another maturity
        quote("eth-b", "bybit", 0.7, symbol="ETH"),  # another coin
        quote("b-4h", "bybit", 0.8, interval="4h"),  # another interval
    ]
    out = fixed_spreads(candles(rows))
    assert out.select("market_id_a", "market_id_b", "spread").rows() == [("a", "b", pytest.approx(-0.1))]


def test_two_contracts_of_one_venue_are_a_pair_and_two_markets_of_one_underlying_are_not():
    rows = [
        quote("a", "binance", 0.1),
        quote("a2", "binance", 0.12),  # a second market on Binance BTCUSDT, same maturity
        quote("i", "binance", 0.05, contract="inverse"),
        quote("b", "bybit", 0.2),
    ]
    out = fixed_spreads(candles(rows))
    assert out.select("venue_a", "contract_a", "market_id_a", "venue_b", "contract_b", "market_id_b").rows() == [
        ("binance", "inverse", "i", "binance", "usdt", "a"),
        ("binance", "inverse", "i", "binance", "usdt", "a2"),
        ("binance", "inverse", "i", "bybit", "usdt", "b"),
        ("binance", "usdt", "a", "bybit", "usdt", "b"),
        ("binance", "usdt", "a2", "bybit", "usdt", "b"),
    ]
    assert out.filter(pl.col("market_id_a") == "i")["n_series"].to_list() == [4, 4, 4]


def test_pairs_exist_only_at_candles_both_sides_quote():
    rows = hourly(T0, [0.1, 0.1, None, 0.1], market_id="a", **TERM) + hourly(
        T0, [0.2, 0.2, 0.2], market_id="b", venue="bybit", **TERM
    )
    out = fixed_spreads(candles(rows))
    assert out["ts"].to_list() == [T0, T0 + H]  # no close at 02:00 on a, no candle at 03:00 on b


def pair_series(spreads_a: list[float], *, start: datetime = T0, step: timedelta = H) -> pl.DataFrame:
    """Binance market at the given closes, Bybit at 0: the spread is Binance's close."""
    n = len(spreads_a)
    a = hourly(start, spreads_a, step=step, interval="1h", market_id="a", **TERM)
    b = hourly(start, [0.0] * n, step=step, interval="1h", market_id="b", venue="bybit", **TERM)
    return candles(a + b)


@pytest.mark.parametrize(
    "rolling", [FIXED_ROLLING, NOTEBOOK_FIXED_ROLLING, RollingWindow(), RollingWindow("10d", include_current=True)]
)
def test_the_statistics_are_those_of_the_floating_spread_engine(rolling):
    """The same series as roll b0 through spread_signals gives the same numbers, bit for bit."""
    rng = np.random.default_rng(3)
    closes = list(rng.normal(0.08, 0.02, 150))
    bars = pair_series(closes)
    fixed = fixed_spreads(bars, rolling=rolling)
    b0 = bars.select("venue", "symbol", "contract", funding_time="ts", b0="close")
    floating = spread_signals(b0, rolling=rolling)
    columns = ["spread", "mean", "std", "z", "upper", "lower", "signal", "dispersion"]
    assert fixed["ts"].to_list() == floating["funding_time"].to_list()
    assert_frame_equal(fixed.select(columns), floating.select(columns), check_exact=True)
    assert fixed["mean"].drop_nulls().len() > 50


def test_the_default_excludes_the_current_candle_and_needs_48():
    assert FIXED_ROLLING == RollingWindow(72, include_current=False, min_obs=48, band_k=1.5, max_age="144h")
    out = fixed_spreads(pair_series([0.1, 0.3] * 24 + [0.5]))
    assert out["mean"].head(48).null_count() == 48
    last = out.row(-1, named=True)
    assert last["mean"] == pytest.approx(0.2, rel=1e-12)  # the 48 previous, not the current 0.5
    assert last["std"] == pytest.approx(np.std([0.1, 0.3] * 24, ddof=1), rel=1e-12)
    assert last["signal"] == 1


def test_the_notebook_setting_is_pandas_rolling_72_with_bands_at_1_5_std():
    assert NOTEBOOK_FIXED_ROLLING == RollingWindow(72, include_current=True, min_obs=72, band_k=1.5, max_age="144h")
    assert NOTEBOOK_FIXED_ROLLING.lookback_days() == 6


@pytest.mark.parametrize("hole_hours", [0, 60])
def test_the_notebook_setting_equals_pandas_rolling_72_on_hourly_candles(hole_hours):
    """Exact on an hourly pair series whose last 72 candles lie within 144 h (a hole of up to 72 h)."""
    rng = np.random.default_rng(72 + hole_hours)
    x = list(np.round(rng.normal(0.0, 0.03, 300), 6))
    bars = pl.concat([pair_series(x[:150]), pair_series(x[150:], start=T0 + timedelta(hours=150 + hole_hours))])
    out = fixed_spreads(bars, rolling=NOTEBOOK_FIXED_ROLLING)
    assert out["spread"].to_list() == x
    agreement = check_against_pandas(out, x, pd.Series(x).rolling(72), lambda i: x[i - 71 : i + 1])
    assert agreement.rows == 300 - 71
    for column in ("mean", "std", "upper", "lower"):
        assert agreement.max_abs_diff[column] <= TOL, column


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fixed_spreads_do_not_depend_on_the_input_row_order(data):
    venues = [("binance", "usdt"), ("bybit", "usdt"), ("okx", "usdt"), ("binance", "inverse")]
    rows = []
    for k, (venue, contract) in enumerate(venues):
        n = data.draw(st.integers(50, 90))
        closes = data.draw(st.lists(st.sampled_from([0.05, 0.1095, 0.12, 0.2]), min_size=n, max_size=n))
        rows += hourly(T0, closes, market_id=f"m{k}", venue=venue, contract=contract, **TERM)
    frame = candles(rows)
    order = list(range(frame.height))
    random.Random(data.draw(st.integers(0, 2**32 - 1))).shuffle(order)
    expected = fixed_spreads(frame)
    assert_frame_equal(fixed_spreads(frame[order]), expected, check_exact=True)
    assert expected.equals(expected.sort([*FIXED_PAIR, "ts"]))
