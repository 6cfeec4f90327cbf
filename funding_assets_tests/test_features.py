"""Curve features of a snapshot (DESIGN section 4), one rule per test.

Every expected number is worked out by hand from the formulas:

- level = b0, slope = b7 - b0, curvature = b2 + b5 - 2*b3
- decay_k = b_k / b_(k-1), null where b_(k-1) == 0
- shock_age = smallest k >= 1 with |b_k - b0| > threshold (default 0.10), null if none
- level_z / slope_z against the roll snapshots of the trailing 10 days (time-based),
  null until 20 roll snapshots are in the window; intraday rows read the roll statistics
  as of their own ts.

Bucket values are dyadic fractions (0.25, 0.125, ...) wherever an exact comparison matters,
so float rounding cannot decide a test.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from snapshot_rows import frame, snap

from funding_assets.features import curve_features
from funding_assets.rolling import RollingWindow

T0 = datetime(2024, 3, 1, 0, 0)
H8 = timedelta(hours=8)


def strip(level: float, slope: float = 0.0) -> list[float]:
    """A flat strip at ``level`` whose long end b7 sits ``slope`` above b0."""
    return [level] * 7 + [level + slope]


def rolls(levels, *, slopes=None, start: datetime = T0, step: timedelta = H8, **kw) -> list[dict]:
    slopes = slopes or [0.0] * len(levels)
    return [snap(start + i * step, strip(lv, sl), **kw) for i, (lv, sl) in enumerate(zip(levels, slopes))]


def one(buckets, **kw) -> dict:
    """Features of a single roll snapshot, as a dict."""
    out = curve_features(frame([snap(T0, buckets)]), **kw)
    assert out.height == 1
    return out.row(0, named=True)


def at(out: pl.DataFrame, ts: datetime, kind: str = "roll") -> dict:
    rows = out.filter((pl.col("ts") == ts) & (pl.col("kind") == kind))
    assert rows.height == 1, rows
    return rows.row(0, named=True)


# A strip with distinct, exactly representable buckets: b0..b7
SHAPE = [0.5, 0.25, 0.75, 0.125, 1.0, 0.375, 2.0, 1.5]


# --- shape -------------------------------------------------------------------------------


def test_level_is_bucket_0():
    assert one(SHAPE)["level"] == 0.5


def test_slope_is_long_end_minus_bucket_0():
    # b7 - b0 = 1.5 - 0.5
    assert one(SHAPE)["slope"] == 1.0


def test_curvature_is_b2_plus_b5_minus_twice_b3():
    # 0.75 + 0.375 - 2 * 0.125
    assert one(SHAPE)["curvature"] == 0.875


def test_decay_k_is_bucket_k_over_bucket_k_minus_1():
    f = one(SHAPE)
    expected = {
        "decay1": 0.25 / 0.5,  # 0.5
        "decay2": 0.75 / 0.25,  # 3
        "decay3": 0.125 / 0.75,  # 1/6
        "decay4": 1.0 / 0.125,  # 8
        "decay5": 0.375 / 1.0,
        "decay6": 2.0 / 0.375,
        "decay7": 1.5 / 2.0,
    }
    assert {k: f[k] for k in expected} == pytest.approx(expected, rel=1e-12)
    assert f["decay1"] == 0.5 and f["decay2"] == 3.0 and f["decay4"] == 8.0


def test_decay_is_null_where_the_denominator_is_zero():
    f = one([0.0, 0.25, 0.0, -0.5, 0.0, 0.0, 0.125, 0.25])
    assert f["decay1"] is None  # 0.25 / 0
    assert f["decay2"] == 0.0  # 0 / 0.25: a zero numerator is a real zero
    assert f["decay3"] is None  # -0.5 / 0
    assert f["decay4"] == 0.0  # 0 / -0.5
    assert f["decay5"] is None  # 0 / 0
    assert f["decay6"] is None  # 0.125 / 0
    assert f["decay7"] == 2.0  # 0.25 / 0.125
    for k in range(1, 8):  # never inf or NaN
        v = f[f"decay{k}"]
        assert v is None or math.isfinite(v)


# --- shock age ---------------------------------------------------------------------------


def test_shock_age_is_the_smallest_bucket_beyond_the_threshold():
    # |b_k - b0|: 0.0625, 0.25, 0.25, ... -> first above 0.10 is k = 2 (not the later ones)
    assert one([0.25, 0.3125, 0.5, 0.0, 0.75, 0.25, 0.25, 0.25])["shock_age"] == 2


def test_shock_age_counts_drops_as_well_as_jumps():
    # b1 - b0 = -0.25: the absolute difference is what counts
    assert one([0.5, 0.25, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])["shock_age"] == 1


def test_shock_age_is_null_without_a_shock():
    assert one([0.25, 0.3125, 0.1875, 0.25, 0.25, 0.3125, 0.1875, 0.25])["shock_age"] is None


def test_shock_age_is_null_for_a_flat_strip():
    assert one([0.2] * 8)["shock_age"] is None


def test_a_difference_of_exactly_the_default_threshold_is_not_a_shock():
    # b0 = 0, so |b_k - b0| is exactly the float 0.1 for b1 and b2: not strictly greater.
    f = one([0.0, 0.1, -0.1, 0.1000001, 0.0, 0.0, 0.0, 0.0])
    assert f["shock_age"] == 3


def test_shock_threshold_is_configurable_and_strict():
    buckets = [0.25, 0.5, 0.5625, 0.25, 0.25, 0.25, 0.25, 0.25]
    # default 0.10: b1 is 0.25 away -> age 1
    assert one(buckets)["shock_age"] == 1
    # threshold 0.25: b1 is exactly 0.25 away (not a shock), b2 is 0.3125 away -> age 2
    assert one(buckets, shock_threshold=0.25)["shock_age"] == 2
    # threshold 0.5: nothing qualifies
    assert one(buckets, shock_threshold=0.5)["shock_age"] is None


def test_shock_age_is_an_integer_column():
    out = curve_features(frame([snap(T0, [0.5] + [0.0] * 7)]))
    assert out.schema["shock_age"].is_integer()
    assert out["shock_age"].to_list() == [1]


# --- z-scores ----------------------------------------------------------------------------

#: 20 roll levels, ten at 0.1 and ten at 0.3 (last one 0.3): mean 0.2, sample std
#: 0.1 * sqrt(20/19), so the last level's z is 0.1 / (0.1 * sqrt(20/19)) = sqrt(19/20).
LEVELS_20 = [0.1, 0.3] * 10
LEVEL_Z_20 = math.sqrt(19 / 20)
#: 20 roll slopes, nineteen 0 and a last 0.5: mean 0.025, sample std 0.5/sqrt(20), so
#: z = (0.5 - 0.025) / (0.5 / sqrt(20)) = 19 / sqrt(20).
SLOPES_20 = [0.0] * 19 + [0.5]
SLOPE_Z_20 = 19 / math.sqrt(20)


def test_z_of_a_constant_series_is_null_not_infinite():
    out = curve_features(frame(rolls([0.25] * 25)))
    assert out["level_z"].null_count() == 25
    assert out["slope_z"].null_count() == 25


def test_intraday_row_is_scored_against_the_roll_statistics_as_of_its_ts():
    # Rolls 0..19 as in LEVELS_20 (mean 0.2, std 0.1*sqrt(20/19)); an intraday row 3h after
    # roll 19 with level 0.5 -> z = 0.3 / (0.1*sqrt(20/19)) = 3*sqrt(19/20).
    rows = rolls(LEVELS_20)
    intraday_ts = T0 + 19 * H8 + timedelta(hours=3)
    rows.append(snap(intraday_ts, strip(0.5), kind="intraday"))
    out = curve_features(frame(rows))
    row = at(out, intraday_ts, "intraday")
    assert row["level_z"] == pytest.approx(3 * math.sqrt(19 / 20), rel=1e-9)
    assert row["funding_time"] == T0 + 20 * H8


def test_intraday_row_before_20_rolls_has_no_z():
    rows = rolls(LEVELS_20[:19])
    intraday_ts = T0 + 18 * H8 + timedelta(hours=5)
    rows.append(snap(intraday_ts, strip(0.5), kind="intraday"))
    row = at(curve_features(frame(rows)), intraday_ts, "intraday")
    assert row["level_z"] is None and row["slope_z"] is None
    assert row["level"] == 0.5  # shape features are still there


def test_a_later_roll_snapshot_does_not_change_earlier_rows():
    rows = rolls(LEVELS_20, slopes=SLOPES_20)
    rows.append(snap(T0 + 19 * H8 + timedelta(hours=2), strip(0.5), kind="intraday"))
    rows.append(snap(T0 + 19 * H8 + timedelta(hours=7, minutes=50), strip(0.4), kind="intraday"))
    before = curve_features(frame(rows))
    # the next roll closes 10 minutes after the last intraday sample, with wild values
    later = rows + [snap(T0 + 20 * H8, strip(100.0, -250.0))]
    after = curve_features(frame(later)).filter(pl.col("ts") < T0 + 20 * H8)
    assert_frame_equal(after, before)
    assert at(before, T0 + 19 * H8 + timedelta(hours=2), "intraday")["level_z"] == pytest.approx(
        3 * math.sqrt(19 / 20), rel=1e-9
    )


def test_every_snapshot_row_gets_one_feature_row():
    rows = rolls(LEVELS_20[:3]) + [snap(T0 + timedelta(hours=1), strip(0.2), kind="intraday")]
    out = curve_features(frame(rows))
    assert out.height == 4
    assert out.select("venue", "symbol", "kind", "ts").n_unique() == 4
    assert sorted(out["kind"].to_list()) == ["intraday", "roll", "roll", "roll"]
    assert {"level", "slope", "curvature", "shock_age", "level_z", "slope_z"} <= set(out.columns)
    assert {f"decay{k}" for k in range(1, 8)} <= set(out.columns)


# --- z-scores: one convention with the spreads (funding_assets.rolling) ---------------------
# Default: the previous 30 roll snapshots, the row itself excluded, at least 20, ddof 1.


def test_z_is_null_until_20_previous_roll_snapshots_exist():
    out = curve_features(frame(rolls(LEVELS_20 + [0.3], slopes=SLOPES_20 + [0.0])))
    assert out["level_z"].head(20).null_count() == 20  # row 19 has only 19 before it
    # row 20 (0.3) against rolls 0..19: ten 0.1s, ten 0.3s -> mean 0.2, std 0.1*sqrt(20/19)
    assert out["level_z"][20] == pytest.approx(0.1 / (0.1 * math.sqrt(20 / 19)), rel=1e-12)


def test_the_current_observation_does_not_dampen_its_own_z():
    # a jump after a flat-ish history: excluded, the jump scores against the history alone
    levels = [0.1, 0.12] * 15 + [1.0]
    default = curve_features(frame(rolls(levels)))["level_z"][30]
    pandas = curve_features(frame(rolls(levels)), rolling=RollingWindow.notebook(30))["level_z"][30]
    history = pd.Series(levels[:30])
    assert default == pytest.approx((1.0 - history.mean()) / history.std(), rel=1e-12)
    assert pandas == pytest.approx((1.0 - np.mean(levels[1:])) / pd.Series(levels[1:]).std(), rel=1e-12)
    assert default > 5 * pandas


def test_level_and_slope_z_equal_pandas_for_the_default_and_the_notebook_setting():
    rng = np.random.default_rng(7)
    levels, slopes = rng.normal(0.1, 0.05, 90).tolist(), rng.normal(0, 0.02, 90).tolist()
    rows = frame(rolls(levels, slopes=slopes))
    for rolling, window in (
        (RollingWindow(), pd.Series(levels).shift(1).rolling(30, min_periods=20)),
        (RollingWindow.notebook(30), pd.Series(levels).rolling(30)),
    ):
        got = curve_features(rows, rolling=rolling)["level_z"].to_numpy()
        expected = ((pd.Series(levels) - window.mean()) / window.std()).to_numpy()
        assert np.array_equal(np.isnan(got.astype(float)), np.isnan(expected))
        assert np.nanmax(np.abs(got - expected)) < 1e-12
    slope_window = pd.Series(slopes).shift(1).rolling(30, min_periods=20)
    expected = ((pd.Series(slopes) - slope_window.mean()) / slope_window.std()).to_numpy()
    got = curve_features(rows)["slope_z"].to_numpy()
    assert np.nanmax(np.abs(got - expected)) < 1e-12


def test_min_obs_is_configurable():
    out = curve_features(frame(rolls(LEVELS_20)), rolling=RollingWindow(min_obs=5))
    assert out["level_z"].head(5).null_count() == 5
    # row 5 (0.3) against 0.1,0.3,0.1,0.3,0.1 -> mean 0.18, var (3*0.0064 + 2*0.0144)/4 = 0.012
    assert out["level_z"][5] == pytest.approx((0.3 - 0.18) / math.sqrt(0.012), rel=1e-9)


def test_a_gap_longer_than_max_age_leaves_no_stale_window():
    # 25 rolls, then 21 days of nothing: every earlier roll is older than the 20-day max_age
    rows = rolls([0.1, 0.3] * 12 + [0.1]) + [snap(T0 + 24 * H8 + timedelta(days=21), strip(0.3))]
    out = curve_features(frame(rows))
    assert out["level_z"][24] is not None
    assert out["level_z"][25] is None


def test_z_statistics_are_per_venue_and_symbol():
    ours = rolls(LEVELS_20 + [0.3], slopes=SLOPES_20 + [0.0])
    others = rolls([9.0, -7.0] * 10, venue="okx") + rolls([4.0] * 10 + [-4.0] * 10, symbol="ETH")
    alone = curve_features(frame(ours))
    mixed = curve_features(frame(others + ours)).filter((pl.col("venue") == "binance") & (pl.col("symbol") == "BTC"))
    assert_frame_equal(mixed, alone)
    assert alone["level_z"][20] is not None


def test_intraday_rows_do_not_enter_the_roll_statistics():
    base = rolls(LEVELS_20 + [0.3])
    with_intraday = base + [snap(T0 + 19 * H8 + timedelta(hours=4), strip(50.0, -80.0), kind="intraday")]
    a = curve_features(frame(base)).filter(pl.col("kind") == "roll")
    b = curve_features(frame(with_intraday)).filter(pl.col("kind") == "roll")
    assert_frame_equal(a, b)


def test_intraday_row_after_a_long_gap_gets_no_stale_z():
    rows = rolls(LEVELS_20)
    late = T0 + 19 * H8 + timedelta(days=21)
    rows.append(snap(late, strip(0.5), kind="intraday"))
    row = at(curve_features(frame(rows)), late, "intraday")
    assert row["level_z"] is None and row["slope_z"] is None
