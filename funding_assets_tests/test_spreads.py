"""Cross-venue spread signals (DESIGN sections 2 and 4), one rule per test.

For each coin and venue pair (venue_a < venue_b alphabetically) at each 8h window where both
venues have a roll snapshot:

- spread = b0_a - b0_b
- mean, std (sample, ddof 1) of the pair's PREVIOUS 30 spreads (the current one excluded),
  none older than 20 days, null until 20 of them (funding_assets.rolling; test_rolling.py)
- z = (spread - mean) / std, upper/lower = mean +- 1.5 * std
- signal +1 above upper, -1 below lower, else 0; no z, band or signal without a positive std
  (a flat window, or fewer than 20 observations): all null
- RollingWindow.notebook(30) = the seed notebook's pandas rolling(30)
- dispersion = sample std (ddof 1) of b0 across the venues at that window, with n_venues.

Most tests put venue_b at b0 = 0 so that the spread is b0_a itself.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandas_reference import check_against_pandas
from polars.testing import assert_frame_equal

from funding_assets.rolling import RollingWindow
from funding_assets.spreads import LOOKBACK_DAYS, PAIR, spread_signals

T0 = datetime(2024, 3, 1)
H8 = timedelta(hours=8)
B0_SCHEMA = {"venue": pl.String, "symbol": pl.String, "funding_time": pl.Datetime("ms"), "b0": pl.Float64}

#: 20 previous spreads, ten 0.1 and ten 0.3: mean 0.2, sample std 0.1*sqrt(20/19).
HISTORY_20 = [0.1, 0.3] * 10
MEAN_20 = 0.2
STD_20 = 0.1 * math.sqrt(20 / 19)


def b0_frame(rows: list[tuple[str, str, datetime, float]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=B0_SCHEMA, orient="row")


def pair_rows(spreads, *, a="binance", b="okx", symbol="BTC", start=T0, step=H8) -> list[tuple]:
    """venue a at b0 = spread, venue b at 0, one window per spread."""
    rows = []
    for i, s in enumerate(spreads):
        t = start + i * step
        rows += [(a, symbol, t, s), (b, symbol, t, 0.0)]
    return rows


def last(out: pl.DataFrame) -> dict:
    return out.sort("funding_time").row(-1, named=True)


# --- pairs and spread --------------------------------------------------------------------


def test_every_venue_pair_once_with_venue_a_before_venue_b_alphabetically():
    out = spread_signals(b0_frame([("okx", "BTC", T0, 0.3), ("binance", "BTC", T0, 0.1), ("bybit", "BTC", T0, 0.25)]))
    assert out.select("venue_a", "venue_b").rows() == [("binance", "bybit"), ("binance", "okx"), ("bybit", "okx")]


def test_spread_is_b0_of_venue_a_minus_b0_of_venue_b():
    out = spread_signals(b0_frame([("okx", "BTC", T0, 0.3), ("binance", "BTC", T0, 0.1), ("bybit", "BTC", T0, 0.25)]))
    got = {(r["venue_a"], r["venue_b"]): r["spread"] for r in out.iter_rows(named=True)}
    assert got == pytest.approx({("binance", "bybit"): -0.15, ("binance", "okx"): -0.2, ("bybit", "okx"): -0.05})
    row = out.filter(pl.col("venue_a") == "bybit").row(0, named=True)
    assert (row["b0_a"], row["b0_b"]) == (0.25, 0.3)


def test_pairs_exist_only_where_both_venues_have_the_window():
    t1, t2 = T0, T0 + H8
    rows = [
        ("binance", "BTC", t1, 0.1), ("bybit", "BTC", t1, 0.2), ("okx", "BTC", t1, 0.4),
        ("binance", "BTC", t2, 0.1), ("bybit", "BTC", t2, 0.2),  # okx has no t2 window
        ("okx", "BTC", T0 + 2 * H8, 0.4),  # alone at t3
    ]  # fmt: skip
    out = spread_signals(b0_frame(rows))
    assert out.select("venue_a", "venue_b", "funding_time").rows() == [
        ("binance", "bybit", t1),
        ("binance", "bybit", t2),
        ("binance", "okx", t1),
        ("bybit", "okx", t1),
    ]


def test_coins_are_never_paired_with_each_other():
    rows = [("binance", "BTC", T0, 0.1), ("okx", "ETH", T0, 0.3), ("okx", "BTC", T0, 0.2), ("binance", "ETH", T0, 0.5)]
    out = spread_signals(b0_frame(rows))
    assert out.select("symbol", "spread").rows() == [("BTC", pytest.approx(-0.1)), ("ETH", pytest.approx(0.2))]


# --- rolling statistics ------------------------------------------------------------------


def test_mean_and_std_are_null_until_20_previous_spreads():
    out = spread_signals(b0_frame(pair_rows(HISTORY_20 + [0.5])))
    assert out.height == 21
    for col in ("mean", "std", "z", "upper", "lower", "signal"):
        assert out[col].head(20).null_count() == 20, col
        assert out[col][20] is not None, col


def test_mean_and_std_are_of_the_previous_spreads_excluding_the_current_one():
    out = spread_signals(b0_frame(pair_rows(HISTORY_20 + [0.5])))
    row = last(out)
    # including the current 0.5 would give a mean of (4.0 + 0.5) / 21 = 0.214...
    assert row["mean"] == pytest.approx(MEAN_20, rel=1e-12)
    assert row["std"] == pytest.approx(STD_20, rel=1e-12)


def test_z_is_the_spread_against_the_previous_mean_and_std():
    row = last(spread_signals(b0_frame(pair_rows(HISTORY_20 + [0.5]))))
    # (0.5 - 0.2) / (0.1 * sqrt(20/19)) = 3 * sqrt(19/20)
    assert row["z"] == pytest.approx(3 * math.sqrt(19 / 20), rel=1e-12)


def test_bands_are_mean_plus_and_minus_1_5_std():
    row = last(spread_signals(b0_frame(pair_rows(HISTORY_20 + [0.5]))))
    assert row["upper"] == pytest.approx(MEAN_20 + 1.5 * STD_20, rel=1e-12)  # 0.35390
    assert row["lower"] == pytest.approx(MEAN_20 - 1.5 * STD_20, rel=1e-12)  # 0.04610


def test_window_holds_the_previous_30_observations():
    # 32 windows. The current one is the last; the previous 30 are windows 1..30 (fifteen
    # 0.1, fifteen 0.3 -> mean 0.2, std 0.1*sqrt(30/29)); window 0, an outlier, is the 31st.
    out = spread_signals(b0_frame(pair_rows([5.0] + [0.1, 0.3] * 15 + [0.2])))
    row = last(out)
    assert row["mean"] == pytest.approx(0.2, rel=1e-12)
    assert row["std"] == pytest.approx(0.1 * math.sqrt(30 / 29), rel=1e-12)


def test_a_gap_within_max_age_does_not_shorten_the_window():
    # 20 spreads, a 5-day hole, then the current one: a 10-day time window would hold only
    # 16 of them; the previous 20 observations are all within 20 days, so they all count.
    rows = pair_rows(HISTORY_20) + pair_rows([0.5], start=T0 + 19 * H8 + timedelta(days=5))
    row = last(spread_signals(b0_frame(rows)))
    assert row["mean"] == pytest.approx(MEAN_20, rel=1e-12)
    assert row["signal"] == 1


def test_a_gap_longer_than_max_age_empties_the_window():
    # 20 spreads, then 21 days of nothing: every previous spread is older than 20 days
    rows = pair_rows(HISTORY_20) + pair_rows([0.5], start=T0 + 19 * H8 + timedelta(days=21))
    out = spread_signals(b0_frame(rows))
    assert out.height == 21
    assert last(out)["mean"] is None and last(out)["signal"] is None


def test_the_window_counts_joint_observations_of_the_pair_only():
    # okx misses windows 3 and 4: the pair has 23 observations out of 25 windows, so its
    # first statistics come at its 21st joint observation (window 22), not at window 20.
    rows = []
    for i in range(25):
        t = T0 + i * H8
        rows.append(("binance", "BTC", t, [0.1, 0.3][i % 2]))
        if i not in (3, 4):
            rows.append(("okx", "BTC", t, 0.0))
    out = spread_signals(b0_frame(rows))
    assert out.height == 23
    first = out.filter(pl.col("mean").is_not_null())["funding_time"].min()
    assert first == T0 + 22 * H8


def test_statistics_are_per_symbol_and_pair():
    # BTC history as HISTORY_20; ETH and the (binance, bybit) pair are wildly different
    rows = pair_rows(HISTORY_20 + [0.5])
    rows += pair_rows([9.0, -9.0] * 10 + [0.5], symbol="ETH")
    rows += [("bybit", "BTC", T0 + i * H8, 7.0 * (-1) ** i) for i in range(21)]
    out = spread_signals(b0_frame(rows))
    btc = out.filter((pl.col("symbol") == "BTC") & (pl.col("venue_a") == "binance") & (pl.col("venue_b") == "okx"))
    assert last(btc)["mean"] == pytest.approx(MEAN_20, rel=1e-12)
    assert last(btc)["std"] == pytest.approx(STD_20, rel=1e-12)


# --- signal ------------------------------------------------------------------------------


def test_signal_is_plus_one_above_the_upper_band():
    row = last(spread_signals(b0_frame(pair_rows(HISTORY_20 + [0.5]))))  # upper 0.3539
    assert row["signal"] == 1


def test_signal_is_minus_one_below_the_lower_band():
    row = last(spread_signals(b0_frame(pair_rows(HISTORY_20 + [-0.1]))))  # lower 0.0461
    assert row["signal"] == -1
    assert row["z"] == pytest.approx(-3 * math.sqrt(19 / 20), rel=1e-12)


def test_signal_is_zero_inside_the_bands():
    for inside in (0.05, 0.2, 0.35):  # lower 0.0461 < x < upper 0.3539, both edges close
        row = last(spread_signals(b0_frame(pair_rows(HISTORY_20 + [inside]))))
        assert row["signal"] == 0, inside


def test_no_signal_while_the_window_is_short():
    # large swings that would be signals with any statistics
    out = spread_signals(b0_frame(pair_rows([0.0] * 10 + [5.0, -5.0] * 5)))
    assert out["signal"].null_count() == 20
    assert out["signal"].dtype == pl.Int8


def test_a_flat_spread_gives_no_band_z_or_signal():
    """Both venues at the 0.01 % baseline (0.0001 * 1095 = 0.1095) for 25 windows, then
    binance moves: the previous spreads have std 0. Bands used to collapse onto the mean and
    the move read as a +1 signal; without a positive std there is nothing to signal."""
    baseline = 0.0001 * 1095
    rows = []
    for i in range(26):
        t = T0 + i * H8
        rows += [("binance", "BTC", t, 0.12 if i == 25 else baseline), ("bybit", "BTC", t, baseline)]
    out = spread_signals(b0_frame(rows))
    flat = out.filter(pl.col("mean").is_not_null())
    assert flat.height == 6  # windows 20..25 have 20+ previous spreads
    assert (flat["mean"] == 0.0).all() and (flat["std"] == 0.0).all()
    assert last(out)["spread"] == pytest.approx(0.12 - baseline)
    for column in ("signal", "upper", "lower", "z"):
        assert out[column].null_count() == out.height, column


def test_band_k_is_configurable():
    # z of 0.35 is 0.15 / 0.1026 = 1.46: inside 1.5 std, above 1.4 std
    rows = b0_frame(pair_rows(HISTORY_20 + [0.35]))
    assert last(spread_signals(rows))["signal"] == 0
    assert last(spread_signals(rows, rolling=RollingWindow(band_k=1.4)))["signal"] == 1
    assert last(spread_signals(rows, rolling=RollingWindow(band_k=1.4)))["upper"] == pytest.approx(
        MEAN_20 + 1.4 * STD_20, rel=1e-12
    )


@pytest.mark.parametrize("n", [30, 72])
def test_the_notebook_setting_equals_pandas_rolling(n):
    rng = np.random.default_rng(n)
    spreads = (np.round(rng.normal(0.0, 0.03, 300) * 1e8) / 1e8).tolist()
    spreads[100:140] = [0.0] * 40  # both venues at the baseline: pandas' std 0
    out = spread_signals(b0_frame(pair_rows(spreads)), rolling=RollingWindow.notebook(n))
    agreement = check_against_pandas(out, spreads, pd.Series(spreads).rolling(n), lambda i: spreads[i - n + 1 : i + 1])
    assert agreement.rows > 150
    assert max(agreement.max_abs_diff.values()) < 1e-12


# --- partition = range -------------------------------------------------------------------


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_days_rows_are_the_same_from_its_lookback_alone_or_a_longer_range(data):
    """A day's spread rows read only the LOOKBACK_DAYS days before it (the declared
    partition mapping): computing them from the lookback plus the day gives the same rows
    as computing them inside a 60-day range."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    missing = data.draw(st.sampled_from([0.0, 0.1, 0.4]), label="share of missing windows")
    rows = []
    for venue in ("binance", "bybit", "okx"):
        for i in range(180):
            if rng.random() >= missing:
                rows.append((venue, "BTC", T0 + i * H8, float(np.round(rng.normal(0.1, 0.05), 6))))
    frame = b0_frame(rows)
    day = T0 + data.draw(st.integers(0, 59)) * timedelta(days=1)
    on_day = (pl.col("funding_time") >= day) & (pl.col("funding_time") < day + timedelta(days=1))
    for rolling in (RollingWindow(), RollingWindow.notebook(30)):
        whole = spread_signals(frame, rolling=rolling).filter(on_day)
        start = day - timedelta(days=rolling.lookback_days())
        lookback_and_day = frame.filter(
            pl.col("funding_time") >= start, pl.col("funding_time") < day + timedelta(days=1)
        )
        alone = spread_signals(lookback_and_day, rolling=rolling).filter(on_day)
        assert_frame_equal(alone, whole)
    assert LOOKBACK_DAYS == RollingWindow().lookback_days() == 20


# --- dispersion --------------------------------------------------------------------------


def test_dispersion_is_the_sample_std_of_b0_across_venues():
    # b0 0.1, 0.2, 0.3 -> mean 0.2, sum of squares 0.02, ddof 1 -> variance 0.01, std 0.1
    # (the population std would be 0.0816)
    out = spread_signals(b0_frame([("binance", "BTC", T0, 0.1), ("bybit", "BTC", T0, 0.2), ("okx", "BTC", T0, 0.3)]))
    assert out.height == 3
    assert out["dispersion"].to_list() == pytest.approx([0.1] * 3, rel=1e-9)
    assert out["n_venues"].to_list() == [3, 3, 3]


def test_dispersion_counts_only_the_venues_present_at_the_window():
    rows = [
        ("binance", "BTC", T0, 0.1), ("bybit", "BTC", T0, 0.2), ("okx", "BTC", T0, 0.3),
        ("binance", "BTC", T0 + H8, 0.1), ("okx", "BTC", T0 + H8, 0.5),
        ("binance", "ETH", T0 + H8, 9.0), ("okx", "ETH", T0 + H8, -9.0),
    ]  # fmt: skip
    out = spread_signals(b0_frame(rows)).filter(pl.col("funding_time") == T0 + H8)
    btc = out.filter(pl.col("symbol") == "BTC").row(0, named=True)
    # two venues, 0.1 and 0.5: |0.5 - 0.1| / sqrt(2)
    assert btc["dispersion"] == pytest.approx(0.4 / math.sqrt(2), rel=1e-9)
    assert btc["n_venues"] == 2


def test_output_columns_and_types():
    out = spread_signals(b0_frame(pair_rows(HISTORY_20 + [0.5])))
    assert dict(out.schema) == {
        "symbol": pl.String,
        "venue_a": pl.String,
        "contract_a": pl.String,
        "venue_b": pl.String,
        "contract_b": pl.String,
        "funding_time": pl.Datetime("ms"),
        "b0_a": pl.Float64,
        "b0_b": pl.Float64,
        "spread": pl.Float64,
        "mean": pl.Float64,
        "std": pl.Float64,
        "z": pl.Float64,
        "upper": pl.Float64,
        "lower": pl.Float64,
        "signal": pl.Int8,
        "dispersion": pl.Float64,
        "n_venues": pl.Int32,
    }
    assert out.select("symbol", "venue_a", "venue_b", "funding_time").is_unique().all()


# --- contracts: a series is (venue, contract) ---------------------------------------------

C_SCHEMA = {
    "venue": pl.String,
    "symbol": pl.String,
    "contract": pl.String,
    "funding_time": pl.Datetime("ms"),
    "b0": pl.Float64,
}


def c_frame(rows: list[tuple]) -> pl.DataFrame:
    """(venue, symbol, contract, funding_time, b0) rows."""
    return pl.DataFrame(rows, schema=C_SCHEMA, orient="row")


def pair_keys(out: pl.DataFrame) -> list[tuple]:
    return out.select("venue_a", "contract_a", "venue_b", "contract_b").rows()


def test_two_contracts_of_one_venue_are_paired_with_each_other_and_with_other_venues():
    out = spread_signals(
        c_frame(
            [
                ("okx", "BTC", "usdt", T0, 0.3),
                ("binance", "BTC", "usdt", T0, 0.1),
                ("bybit", "BTC", "usdc", T0, 0.25),
                ("binance", "BTC", "inverse", T0, 0.05),
            ]
        )
    )
    assert pair_keys(out) == [
        ("binance", "inverse", "binance", "usdt"),
        ("binance", "inverse", "bybit", "usdc"),
        ("binance", "inverse", "okx", "usdt"),
        ("binance", "usdt", "bybit", "usdc"),
        ("binance", "usdt", "okx", "usdt"),
        ("bybit", "usdc", "okx", "usdt"),
    ]
    cross = out.row(0, named=True)
    assert (cross["b0_a"], cross["b0_b"]) == (0.05, 0.1)
    assert cross["spread"] == pytest.approx(-0.05, abs=1e-15)
    # dispersion over the four series, each counted: 0.05, 0.1, 0.25, 0.3
    assert out["n_venues"].to_list() == [4] * 6
    assert out["dispersion"].to_list() == pytest.approx([float(np.std([0.05, 0.1, 0.25, 0.3], ddof=1))] * 6)


def test_a_cross_contract_pair_has_the_statistics_of_its_own_spreads():
    """binance/inverse vs binance/usdt carries HISTORY_20; binance/usdt vs okx/usdt something
    else entirely. Each pair's statistics equal those of its two series alone."""
    rows = []
    for i, s in enumerate(HISTORY_20 + [0.5]):
        t = T0 + i * H8
        rows += [
            ("binance", "BTC", "inverse", t, s),
            ("binance", "BTC", "usdt", t, 0.0),
            ("okx", "BTC", "usdt", t, 7.0 * (-1) ** i),
        ]
    out = spread_signals(c_frame(rows))
    cross = out.filter(pl.col("venue_b") == "binance")
    assert cross.select("contract_a", "contract_b").unique().rows() == [("inverse", "usdt")]
    assert last(cross)["mean"] == pytest.approx(MEAN_20, rel=1e-12)
    assert last(cross)["std"] == pytest.approx(STD_20, rel=1e-12)
    assert last(cross)["signal"] == 1
    for pair in out.partition_by(PAIR):
        first = pair.row(0, named=True)
        series = {(first["venue_a"], first["contract_a"]), (first["venue_b"], first["contract_b"])}
        alone = spread_signals(c_frame([r for r in rows if (r[0], r[2]) in series]))
        assert_frame_equal(pair.drop("dispersion", "n_venues"), alone.drop("dispersion", "n_venues"))
    assert out["n_venues"].unique().to_list() == [3]


def test_without_a_contract_column_each_venue_is_one_series_with_a_null_contract():
    rows = pair_rows(HISTORY_20 + [0.5])
    plain = spread_signals(b0_frame(rows))
    assert plain["contract_a"].null_count() == plain.height
    assert plain["contract_b"].null_count() == plain.height
    # the same numbers as with an explicit contract
    named = spread_signals(b0_frame(rows).with_columns(contract=pl.lit("usdt")))
    assert_frame_equal(plain.drop("contract_a", "contract_b"), named.drop("contract_a", "contract_b"))
    assert last(plain)["z"] == pytest.approx(last(named)["z"], abs=0)


def test_a_null_contract_orders_as_the_empty_string():
    out = spread_signals(
        c_frame(
            [
                ("binance", "BTC", "usdt", T0, 0.1),
                ("binance", "BTC", None, T0, 0.2),
                ("aave", "BTC", "usdt", T0, 0.3),
                ("okx", "BTC", None, T0, 0.4),
            ]
        )
    )
    assert pair_keys(out) == [
        ("aave", "usdt", "binance", None),
        ("aave", "usdt", "binance", "usdt"),
        ("aave", "usdt", "okx", None),
        ("binance", None, "binance", "usdt"),
        ("binance", None, "okx", None),
        ("binance", "usdt", "okx", None),
    ]
    assert out["n_venues"].to_list() == [4] * 6


def test_the_same_series_twice_at_a_window_is_not_a_pair_and_rows_keep_their_order():
    rows = [
        ("binance", "BTC", "usdt", T0, 0.1),
        ("binance", "BTC", "inverse", T0, 0.2),
        ("bybit", "BTC", "usdt", T0, 0.4),
    ]
    out = spread_signals(c_frame(rows))
    reordered = spread_signals(c_frame(rows[::-1]))
    assert out.equals(reordered)  # same bytes, dispersion included
    assert all((r[0], r[1]) != (r[2], r[3]) for r in pair_keys(out))


def test_pairs_grow_with_the_series_of_each_coin_never_across_coins():
    # 40 coins x 15 series x 3 windows: 40 * C(15, 2) * 3 pairs, and no mixed coins
    venues = [f"v{i:02d}" for i in range(5)]
    contracts = ["inverse", "usdc", "usdt"]
    rows = [
        (v, f"C{c:02d}", k, T0 + w * H8, 0.01 * c + 0.001 * w + 0.0001 * i)
        for c in range(40)
        for i, (v, k) in enumerate((v, k) for v in venues for k in contracts)
        for w in range(3)
    ]
    out = spread_signals(c_frame(rows))
    assert out.height == 40 * (15 * 14 // 2) * 3
    assert out["n_venues"].unique().to_list() == [15]
    assert out.select(PAIR).n_unique() == 40 * 105
