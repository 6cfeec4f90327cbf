"""Spread signals on real settled funding: Binance - Bybit BTCUSDT, 2023-01-01 to 2024-07-01.

Source: ``../shared/realdata/aha_hh_2023_2024/DERIVED_funding_only_utc.csv`` (DATA.md 1b;
Binance and Bybit times are exact UTC settlements, the OKX label fix does not apply). The
settled rates go through the project's strip engine (``strip.roll_snapshots``), and the
spreads of bucket 0 are compared with arithmetic done straight on the file:

- ``b0 = rate * 8 / 8 * 1095`` for these 8h venues, so ``spread = (rate_binance - rate_bybit) * 1095``;
- with ``RollingWindow.notebook(n)`` the mean/std/z/bands/signal equal the seed notebook's
  pandas ``s.rolling(n)`` on that spread series (and the default equals
  ``s.shift(1).rolling(30, min_periods=20)``), by the rules of ``pandas_reference``;
- where the previous spreads are flat (both venues at the 0.01 % baseline) there is no z,
  band or signal, where the notebook's arithmetic would have signalled.

Skipped where ``../shared`` (the real data) is absent.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from pandas_reference import TOL, check_against_pandas

from funding_assets import strip
from funding_assets.rolling import RollingWindow
from funding_assets.spreads import spread_signals

SHARED = Path(__file__).resolve().parents[2] / "shared"
AHA_HH = SHARED / "realdata" / "aha_hh_2023_2024" / "DERIVED_funding_only_utc.csv"
if not AHA_HH.is_file():
    pytest.skip(f"{AHA_HH} (real third-party funding data) is not present", allow_module_level=True)

APR = 1095
H8 = timedelta(hours=8)


@pytest.fixture(scope="module")
def settled() -> pl.DataFrame:
    """Binance and Bybit BTCUSDT settlements: venue, funding_time (UTC), rate."""
    return (
        pl.read_csv(AHA_HH, schema_overrides={"funding_rate": pl.Float64})
        .filter(pl.col("pair") == "BTCUSDT", pl.col("exchange").is_in(["binance", "bybit"]))
        .select(venue="exchange", funding_time=pl.from_epoch("funding_time_ms", time_unit="ms"), rate="funding_rate")
    )


@pytest.fixture(scope="module")
def roll_b0(settled) -> pl.DataFrame:
    prints = settled.with_columns(symbol=pl.lit("BTC"), ts=pl.col("funding_time"))
    return strip.roll_snapshots(prints).select("venue", "symbol", "funding_time", "b0")


def signals(roll_b0: pl.DataFrame, rolling: RollingWindow) -> pl.DataFrame:
    out = spread_signals(roll_b0, rolling=rolling)
    assert out.select("symbol", "venue_a", "venue_b").unique().rows() == [("BTC", "binance", "bybit")]
    return out


def test_the_spread_is_binance_minus_bybit_annualised_from_the_settled_rates(settled, roll_b0):
    out = signals(roll_b0, RollingWindow())
    by_hand = (
        settled.pivot(on="venue", index="funding_time", values="rate")
        .select("funding_time", spread=pl.col("binance") * APR - pl.col("bybit") * APR)
        .sort("funding_time")
    )
    # the strip needs 7 older windows: rows from the 8th settlement on, none missing after
    assert out.height == by_hand.height - 7 > 1600
    assert out["funding_time"].to_list() == by_hand["funding_time"].to_list()[7:]
    assert (out["funding_time"].diff().drop_nulls() == H8).all()
    assert np.max(np.abs(out["spread"].to_numpy() - by_hand["spread"].to_numpy()[7:])) <= 1e-15


@pytest.mark.parametrize("n", [30, 72])
def test_the_notebook_setting_equals_pandas_rolling_on_the_real_spread(roll_b0, n):
    out = signals(roll_b0, RollingWindow.notebook(n))
    x = out["spread"].to_list()
    agreement = check_against_pandas(out, x, pd.Series(x).rolling(n), lambda i: x[i - n + 1 : i + 1])
    assert agreement.rows > 1400
    for column in ("mean", "std", "upper", "lower"):
        assert agreement.max_abs_diff[column] <= TOL, column
    # z differs from pandas beyond TOL only where pandas' online variance has drifted (ours
    # is then the exact value, checked row by row): a few percent of the rows at most
    assert agreement.pandas_off <= 0.03 * agreement.rows


def test_the_default_setting_equals_pandas_shift_1_rolling_30_min_periods_20_on_the_real_spread(roll_b0):
    out = signals(roll_b0, RollingWindow())
    x = out["spread"].to_list()
    window = pd.Series(x).shift(1).rolling(30, min_periods=20)
    agreement = check_against_pandas(out, x, window, lambda i: x[max(0, i - 30) : i])
    assert agreement.rows > 1400
    for column in ("mean", "std", "upper", "lower"):
        assert agreement.max_abs_diff[column] <= TOL, column
    assert agreement.pandas_off <= 0.03 * agreement.rows


def test_flat_real_windows_give_no_signal_where_the_notebook_arithmetic_would(roll_b0):
    out = signals(roll_b0, RollingWindow())
    s = pd.Series(out["spread"].to_list())
    window = s.shift(1).rolling(30, min_periods=20)
    mean, std = window.mean(), window.std()
    flat = (std == 0).to_numpy()
    notebook_signal = np.where(s > mean + 1.5 * std, 1, np.where(s < mean - 1.5 * std, -1, 0))
    assert flat.sum() > 20  # both venues at the baseline for 30 windows in a row, many times
    assert (notebook_signal[flat] != 0).sum() > 0  # a move off the baseline read as a signal
    on_flat = out.filter(pl.Series(flat))
    assert (on_flat["std"] == 0).all()
    for column in ("signal", "upper", "lower", "z"):
        assert on_flat[column].is_null().all(), column
