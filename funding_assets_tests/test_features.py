"""Curve features of a snapshot (DESIGN section 4), one rule per test.

Every expected number is worked out by hand from the formulas:

- level = b0, slope = b7 - b0, curvature = b2 + b5 - 2*b3
- decay_k = b_k / b_(k-1), null where b_(k-1) == 0
- shock_age = smallest k >= 1 with |b_k - b0| > threshold (default 0.10), null if none
- level_z / slope_z against the roll snapshots of the same venue and symbol, with the
  convention of funding_assets.rolling (test_rolling.py): by default the previous 30 roll
  snapshots (ts < the row's ts, the row itself excluded), none older than 20 days, null
  until 20, std ddof 1, null without a positive std; intraday rows are scored the same way
  as of their own ts and never enter the statistics.

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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from snapshot_rows import frame, snap

from funding_assets.features import FEATURE_COLUMNS, Z_LOOKBACK_DAYS, curve_features
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

#: 20 roll levels, ten at 0.1 and ten at 0.3: mean 0.2, sample std 0.1 * sqrt(20/19), so a
#: next level of 0.5 has z = 0.3 / (0.1 * sqrt(20/19)) = 3 * sqrt(19/20).
LEVELS_20 = [0.1, 0.3] * 10
LEVEL_Z_05 = 3 * math.sqrt(19 / 20)
#: 20 roll slopes, nineteen 0 and a 0.5: mean 0.025, sample std 0.5/sqrt(20), so a next
#: slope of 0.5 has z = (0.5 - 0.025) / (0.5 / sqrt(20)) = 19 / sqrt(20).
SLOPES_20 = [0.0] * 19 + [0.5]
SLOPE_Z_05 = 19 / math.sqrt(20)


def test_z_is_null_until_20_previous_roll_snapshots_exist():
    out = curve_features(frame(rolls(LEVELS_20 + [0.5], slopes=SLOPES_20 + [0.5])))
    assert out["level_z"].head(20).null_count() == 20  # row 19 has only 19 before it
    assert out["slope_z"].head(20).null_count() == 20
    assert out["level_z"][20] is not None and out["slope_z"][20] is not None


def test_level_z_is_level_against_the_previous_mean_and_sample_std():
    out = curve_features(frame(rolls(LEVELS_20 + [0.5], slopes=SLOPES_20 + [0.5])))
    assert out["level_z"][20] == pytest.approx(LEVEL_Z_05, rel=1e-12)


def test_slope_z_is_slope_against_the_previous_mean_and_sample_std():
    out = curve_features(frame(rolls(LEVELS_20 + [0.5], slopes=SLOPES_20 + [0.5])))
    assert out["slope_z"][20] == pytest.approx(SLOPE_Z_05, rel=1e-12)


def test_the_current_observation_does_not_dampen_its_own_z():
    # a jump after a quiet history: excluded (default), the jump scores against the history
    # alone; the notebook setting (pandas rolling(30)) counts the jump in its own window
    levels = [0.1, 0.12] * 15 + [1.0]
    default = curve_features(frame(rolls(levels)))["level_z"][30]
    notebook = curve_features(frame(rolls(levels)), rolling=RollingWindow.notebook(30))["level_z"][30]
    history = pd.Series(levels[:30])
    assert default == pytest.approx((1.0 - history.mean()) / history.std(), rel=1e-12)
    assert notebook == pytest.approx((1.0 - np.mean(levels[1:])) / pd.Series(levels[1:]).std(), rel=1e-12)
    assert default > 5 * notebook


def test_level_and_slope_z_equal_pandas_for_the_default_and_the_notebook_setting():
    rng = np.random.default_rng(7)
    levels, slopes = rng.normal(0.1, 0.05, 90).tolist(), rng.normal(0, 0.02, 90).tolist()
    rows = frame(rolls(levels, slopes=slopes))
    for rolling, pandas_window in (
        (RollingWindow(), lambda s: s.shift(1).rolling(30, min_periods=20)),
        (RollingWindow.notebook(30), lambda s: s.rolling(30)),
    ):
        out = curve_features(rows, rolling=rolling)
        for name, x in (("level", levels), ("slope", slopes)):
            s = pd.Series(x)
            expected = ((s - pandas_window(s).mean()) / pandas_window(s).std()).to_numpy()
            got = out[f"{name}_z"].to_numpy()
            assert np.array_equal(np.isnan(got), np.isnan(expected)), name
            assert np.nanmax(np.abs(got - expected)) < 1e-12, name


def test_min_obs_is_configurable():
    out = curve_features(frame(rolls(LEVELS_20)), rolling=RollingWindow(min_obs=5))
    assert out["level_z"].head(5).null_count() == 5
    # row 5 (0.3) against 0.1,0.3,0.1,0.3,0.1 -> mean 0.18, var (3*0.0064 + 2*0.0144)/4 = 0.012
    assert out["level_z"][5] == pytest.approx((0.3 - 0.18) / math.sqrt(0.012), rel=1e-12)


def test_the_window_is_the_previous_30_roll_snapshots():
    # 32 rolls; the last one reads rolls 1..30 (fifteen 0.1, fifteen 0.3: mean 0.2, std
    # 0.1*sqrt(30/29)); roll 0, an outlier, is the 31st back and out
    out = curve_features(frame(rolls([5.0] + [0.1, 0.3] * 15 + [0.5])))
    assert out["level_z"][31] == pytest.approx(0.3 / (0.1 * math.sqrt(30 / 29)), rel=1e-12)


def test_a_gap_within_max_age_does_not_shorten_the_window():
    # 20 rolls, 5 days of nothing, then a roll: its 20 previous rolls are within 20 days
    rows = rolls(LEVELS_20) + [snap(T0 + 19 * H8 + timedelta(days=5), strip(0.5))]
    assert curve_features(frame(rows))["level_z"][20] == pytest.approx(LEVEL_Z_05, rel=1e-12)


def test_a_gap_longer_than_max_age_leaves_no_stale_window():
    # 25 rolls, then 21 days of nothing: every earlier roll is older than the 20-day max_age
    rows = rolls([0.1, 0.3] * 12 + [0.1]) + [snap(T0 + 24 * H8 + timedelta(days=21), strip(0.3))]
    out = curve_features(frame(rows))
    assert out["level_z"][24] is not None
    assert out["level_z"][25] is None


def test_z_of_a_flat_window_is_null_not_infinite():
    # 25 rolls at the 0.01 % baseline, then a move: the previous levels have std 0
    out = curve_features(frame(rolls([0.1095] * 25 + [0.2])))
    assert out["level_z"].null_count() == 26
    assert out["slope_z"].null_count() == 26


def test_z_statistics_are_per_venue_and_symbol():
    ours = rolls(LEVELS_20 + [0.5], slopes=SLOPES_20 + [0.5])
    others = rolls([9.0, -7.0] * 10, venue="okx") + rolls([4.0] * 10 + [-4.0] * 10, symbol="ETH")
    alone = curve_features(frame(ours))
    mixed = curve_features(frame(others + ours)).filter((pl.col("venue") == "binance") & (pl.col("symbol") == "BTC"))
    assert_frame_equal(mixed, alone)
    assert mixed["level_z"][20] == pytest.approx(LEVEL_Z_05, rel=1e-12)


# --- z-scores of intraday rows -------------------------------------------------------------


def test_intraday_row_is_scored_against_the_rolls_before_its_ts():
    # Rolls 0..19 as in LEVELS_20; an intraday row 3h after roll 19 with level 0.5
    rows = rolls(LEVELS_20)
    intraday_ts = T0 + 19 * H8 + timedelta(hours=3)
    rows.append(snap(intraday_ts, strip(0.5), kind="intraday"))
    row = at(curve_features(frame(rows)), intraday_ts, "intraday")
    assert row["level_z"] == pytest.approx(LEVEL_Z_05, rel=1e-12)
    assert row["funding_time"] == T0 + 20 * H8


def test_intraday_row_before_20_rolls_has_no_z():
    rows = rolls(LEVELS_20[:19])
    intraday_ts = T0 + 18 * H8 + timedelta(hours=5)
    rows.append(snap(intraday_ts, strip(0.5), kind="intraday"))
    row = at(curve_features(frame(rows)), intraday_ts, "intraday")
    assert row["level_z"] is None and row["slope_z"] is None
    assert row["level"] == 0.5  # shape features are still there


def test_intraday_row_at_a_roll_instant_reads_that_roll_only_when_the_current_point_is_included():
    rows = rolls(LEVELS_20 + [0.5]) + [snap(T0 + 20 * H8, strip(0.5), kind="intraday")]
    excluded = at(curve_features(frame(rows)), T0 + 20 * H8, "intraday")
    included = at(curve_features(frame(rows), rolling=RollingWindow(include_current=True)), T0 + 20 * H8, "intraday")
    assert excluded["level_z"] == pytest.approx(LEVEL_Z_05, rel=1e-12)  # rolls 0..19
    levels = pd.Series(LEVELS_20 + [0.5])  # rolls 0..20
    assert included["level_z"] == pytest.approx((0.5 - levels.mean()) / levels.std(), rel=1e-12)


def test_intraday_rows_do_not_enter_the_roll_statistics():
    # An extreme intraday row between rolls must not move the next roll's z.
    base = rolls(LEVELS_20 + [0.5])
    with_intraday = base + [snap(T0 + 19 * H8 + timedelta(hours=4), strip(50.0, -80.0), kind="intraday")]
    a = curve_features(frame(base)).filter(pl.col("kind") == "roll")
    b = curve_features(frame(with_intraday)).filter(pl.col("kind") == "roll")
    assert_frame_equal(a, b)
    assert b["level_z"][20] == pytest.approx(LEVEL_Z_05, rel=1e-12)


def test_a_later_roll_snapshot_does_not_change_earlier_rows():
    rows = rolls(LEVELS_20, slopes=SLOPES_20)
    rows.append(snap(T0 + 19 * H8 + timedelta(hours=2), strip(0.5), kind="intraday"))
    rows.append(snap(T0 + 19 * H8 + timedelta(hours=7, minutes=50), strip(0.4), kind="intraday"))
    before = curve_features(frame(rows))
    # the next roll closes 10 minutes after the last intraday sample, with wild values
    later = rows + [snap(T0 + 20 * H8, strip(100.0, -250.0))]
    after = curve_features(frame(later)).filter(pl.col("ts") < T0 + 20 * H8)
    assert_frame_equal(after, before)
    assert at(before, T0 + 19 * H8 + timedelta(hours=2), "intraday")["level_z"] == pytest.approx(LEVEL_Z_05, rel=1e-12)


def test_intraday_row_after_a_long_gap_gets_no_stale_z():
    # 20 rolls, then nothing for 21 days: every roll is older than the 20-day max_age
    rows = rolls(LEVELS_20)
    late = T0 + 19 * H8 + timedelta(days=21)
    rows.append(snap(late, strip(0.5), kind="intraday"))
    row = at(curve_features(frame(rows)), late, "intraday")
    assert row["level_z"] is None and row["slope_z"] is None


# --- rows and partitions ---------------------------------------------------------------------


def test_every_snapshot_row_gets_one_feature_row():
    rows = rolls(LEVELS_20[:3]) + [snap(T0 + timedelta(hours=1), strip(0.2), kind="intraday")]
    out = curve_features(frame(rows))
    assert out.height == 4
    assert out.select("venue", "symbol", "kind", "ts").n_unique() == 4
    assert sorted(out["kind"].to_list()) == ["intraday", "roll", "roll", "roll"]


def test_output_columns_pass_as_of_through_when_the_snapshots_have_it():
    rows = frame(rolls(LEVELS_20[:3]) + [snap(T0 + timedelta(hours=1), strip(0.2), kind="intraday")])
    keys = ["venue", "symbol", "contract", "kind", "ts", "funding_time"]
    with_as_of = curve_features(rows)
    assert with_as_of.columns == [*keys, "as_of", *FEATURE_COLUMNS]
    assert with_as_of["as_of"].to_list() == with_as_of["ts"].to_list()
    assert curve_features(rows.drop("as_of")).columns == [*keys, *FEATURE_COLUMNS]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_days_rows_are_the_same_from_its_lookback_alone_or_a_longer_range(data):
    """Roll and intraday rows of a day read only the Z_LOOKBACK_DAYS days of snapshots
    before it: computing them from the lookback plus the day gives the rows computed inside
    a 60-day range."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    missing = data.draw(st.sampled_from([0.0, 0.1, 0.5]), label="share of missing rolls")
    rows = []
    for venue in ("binance", "okx"):
        for i in range(180):
            t = T0 + i * H8
            if rng.random() >= missing:
                rows.append(snap(t, strip(*np.round(rng.normal([0.1, 0.0], 0.05), 6)), venue=venue))
            rows.append(snap(t + timedelta(hours=3), strip(float(rng.normal(0.1, 0.05))), kind="intraday", venue=venue))
    snapshots = frame(rows)
    day = T0 + data.draw(st.integers(0, 59)) * timedelta(days=1)
    on_day = (pl.col("ts") >= day) & (pl.col("ts") < day + timedelta(days=1))
    for rolling in (RollingWindow(), RollingWindow.notebook(30), RollingWindow("10d", include_current=True)):
        whole = curve_features(snapshots, rolling=rolling).filter(on_day)
        start = day - timedelta(days=rolling.lookback_days())
        lookback_and_day = snapshots.filter(pl.col("ts") >= start, pl.col("ts") < day + timedelta(days=1))
        assert_frame_equal(curve_features(lookback_and_day, rolling=rolling).filter(on_day), whole)
    assert Z_LOOKBACK_DAYS == RollingWindow().lookback_days() == 20


# --- contracts: a series is (venue, symbol, contract) ------------------------------------


def test_z_statistics_are_per_contract_of_a_venue_and_coin():
    usdt = rolls(LEVELS_20 + [0.5], slopes=SLOPES_20 + [0.5], contract="usdt")
    inverse = rolls([9.0, -7.0] * 10 + [0.5], contract="inverse")
    mixed = curve_features(frame(inverse + usdt))
    for contract, rows in (("usdt", usdt), ("inverse", inverse)):
        assert_frame_equal(mixed.filter(pl.col("contract") == contract), curve_features(frame(rows)))
    assert at(mixed.filter(pl.col("contract") == "usdt"), T0 + 20 * H8)["level_z"] == pytest.approx(
        LEVEL_Z_05, rel=1e-12
    )
    assert mixed["contract"].to_list()[:21] == ["inverse"] * 21  # keyed venue, symbol, contract


def test_snapshots_without_a_contract_column_are_one_series_with_a_null_contract():
    rows = frame(rolls(LEVELS_20 + [0.5], slopes=SLOPES_20 + [0.5]))
    named = curve_features(rows)
    plain = curve_features(rows.drop("contract"))
    assert plain.columns == named.columns
    assert plain.schema["contract"] == pl.String and plain["contract"].null_count() == plain.height
    assert_frame_equal(plain.drop("contract"), named.drop("contract"))
    # a null contract next to a named one of the same venue and coin: two series
    other = frame(rolls([9.0, -7.0] * 10 + [0.5], contract="usdt"))
    both = curve_features(pl.concat([rows.with_columns(contract=pl.lit(None, pl.String)), other]))
    assert_frame_equal(both.filter(pl.col("contract").is_null()), plain)
