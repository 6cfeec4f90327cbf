"""The one rolling-statistics convention (DESIGN section 4), one rule per test.

- window in observations: the last N with ts < t (current excluded, default) or ts <= t,
  none older than max_age (default 2 * N * 8h); null below min_obs; std ddof 1;
- a duration window: [t - w, t) excluded, (t - w, t] included (pandas closed left / right);
- a flat window: std exactly 0 and mean exactly its value, so no z;
- RollingWindow.notebook(n) = pandas rolling(n); the default = pandas shift(1).rolling(30,
  min_periods=20);
- a row's statistics read only lookback_days() days before its day (partition = range).
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

from funding_assets import features, spreads
from funding_assets.errors import FundingInputError
from funding_assets.rolling import RollingWindow, zscore

T0 = datetime(2024, 1, 1)
H8 = timedelta(hours=8)
DAY = timedelta(days=1)
SCHEMA = {"g": pl.String, "ts": pl.Datetime("ms"), "v": pl.Float64}
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def series(values, times=None, group: str = "a") -> pl.DataFrame:
    times = times if times is not None else [T0 + i * H8 for i in range(len(values))]
    return pl.DataFrame({"g": [group] * len(values), "ts": times, "v": values}, schema=SCHEMA)


def stats(rolling: RollingWindow, frame: pl.DataFrame, at: pl.DataFrame | None = None) -> pl.DataFrame:
    """mean/std/z/bands of ``v`` as the spreads compute them."""
    k = rolling.band_k
    ok = pl.col("std") > 0
    out = rolling.stats(frame, ["v"], time="ts", by=["g"], at=at).rename({"v_mean": "mean", "v_std": "std"})
    if "v" not in out.columns:  # rows of `at` carry no value to score
        return out
    return out.with_columns(
        zscore("v", "mean", "std").alias("z"),
        pl.when(ok).then(pl.col("mean") + k * pl.col("std")).alias("upper"),
        pl.when(ok).then(pl.col("mean") - k * pl.col("std")).alias("lower"),
    )


def queries(times, group: str = "a") -> pl.DataFrame:
    return pl.DataFrame({"g": [group] * len(times), "ts": times}, schema={"g": pl.String, "ts": pl.Datetime("ms")})


@st.composite
def spread_like(draw, max_size: int = 160) -> list[float]:
    """Annualised spreads: noise at one of several scales, rounded like funding rates, with
    flat runs (both venues at the baseline) and outliers."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(0, max_size))
    scale = draw(st.sampled_from([1e-4, 1e-2, 0.1]))
    x = np.round(rng.normal(draw(st.floats(-0.2, 0.2)), scale, n) * 1e8) / 1e8
    for _ in range(draw(st.integers(0, 3))):
        start = int(rng.integers(0, max(n, 1)))
        x[start : start + int(rng.integers(1, 60))] = draw(st.sampled_from([0.0, 0.1095, -0.0219]))
    for _ in range(draw(st.integers(0, 2))):
        if n:
            x[int(rng.integers(0, n))] = float(rng.choice([-1.0, 2.5]))
    return x.tolist()


# --- settings ------------------------------------------------------------------------------


def test_default_is_the_previous_30_observations_at_least_20_within_20_days():
    rolling = RollingWindow()
    assert (rolling.window, rolling.include_current, rolling.min_obs, rolling.band_k) == (30, False, 20, 1.5)
    assert rolling.horizon_hours == 20 * 24
    assert rolling.lookback_days() == 20
    assert spreads.LOOKBACK_DAYS == features.Z_LOOKBACK_DAYS == 20


def test_notebook_setting_is_pandas_rolling_n_including_the_current_point():
    assert RollingWindow.notebook(30) == RollingWindow(30, include_current=True, min_obs=30, band_k=1.5)
    assert RollingWindow.notebook(72) == RollingWindow(72, include_current=True, min_obs=72, band_k=1.5)
    assert RollingWindow.notebook(30).lookback_days() == 20
    assert RollingWindow.notebook(72).lookback_days() == 48  # 2 * 72 * 8h


@pytest.mark.parametrize(
    ("rolling", "days"),
    [
        (RollingWindow("10d"), 10),
        (RollingWindow("72h", include_current=True), 3),
        (RollingWindow("36h"), 2),
        (RollingWindow(30, max_age="3d"), 3),
        (RollingWindow(30, max_age="50h"), 3),
    ],
)
def test_lookback_days_is_the_whole_days_a_row_may_reach_back(rolling, days):
    assert rolling.lookback_days() == days


@pytest.mark.parametrize(("text", "window"), [("30", 30), (" 72 ", 72), ("10d", "10d"), ("72H", "72h"), ("36h", "36h")])
def test_parse_reads_observations_or_a_duration(text, window):
    rolling = RollingWindow.parse(text, include_current=True, min_obs=2, band_k=2.0)
    assert rolling == RollingWindow(window, include_current=True, min_obs=2, band_k=2.0)


@pytest.mark.parametrize("text", ["", "ten", "10 days", "1.5d", "-30", "30m", "0d"])
def test_parse_refuses_other_text_naming_the_setting(text):
    with pytest.raises(FundingInputError, match="FUNDING_ASSETS_Z_WINDOW") as err:
        RollingWindow.parse(text, setting="FUNDING_ASSETS_Z_WINDOW", min_obs=2)
    assert repr(text) in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 1, "min_obs": 2}, "window must be at least 2"),
        ({"window": True}, "window must be"),
        ({"window": 2.5}, "window must be"),
        ({"window": "ten days"}, "'ten days'"),
        ({"window": "0h"}, "positive duration"),
        ({"window": 30, "min_obs": 31}, r"min_obs must be between 2 and the window \(30"),
        ({"window": 30, "min_obs": 1}, "min_obs must be between 2"),
        ({"window": "10d", "min_obs": 1}, "min_obs must be at least 2"),
        ({"band_k": 0}, "band_k must be a positive number"),
        ({"band_k": -1.5}, "band_k"),
        ({"band_k": math.nan}, "band_k"),
        ({"band_k": math.inf}, "band_k"),
        ({"max_age": "soon"}, "max_age must be a positive duration.*'soon'"),
        ({"max_age": "0d"}, "max_age"),
        ({"window": "10d", "max_age": "20d"}, "bounds itself"),
        ({"include_current": "yes"}, "include_current"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(kwargs, message):
    with pytest.raises(FundingInputError, match=message):
        RollingWindow(**kwargs)


# --- agreement with pandas -------------------------------------------------------------------


@pytest.mark.parametrize("n", [30, 72])
@PROPERTY
@given(x=spread_like(max_size=200))
def test_notebook_setting_equals_pandas_rolling(n, x):
    ours = stats(RollingWindow.notebook(n), series(x))
    check_against_pandas(ours, x, pd.Series(x, dtype=float).rolling(n), lambda i: x[max(0, i - n + 1) : i + 1])


@PROPERTY
@given(x=spread_like())
def test_default_setting_equals_pandas_shift_1_rolling_30_min_periods_20(x):
    ours = stats(RollingWindow(), series(x))
    window = pd.Series(x, dtype=float).shift(1).rolling(30, min_periods=20)
    check_against_pandas(ours, x, window, lambda i: x[max(0, i - 30) : i])


@pytest.mark.parametrize("include_current", [False, True])
@PROPERTY
@given(x=spread_like(max_size=120), data=st.data())
def test_duration_window_equals_pandas_time_rolling(include_current, x, data):
    # irregular times: 1h to 3 days apart, so the window holds a varying number of points
    gaps = data.draw(st.lists(st.integers(1, 72), min_size=len(x), max_size=len(x)))
    times = [T0 + timedelta(hours=h) for h in np.cumsum(gaps).tolist()]
    rolling = RollingWindow("10d", include_current=include_current, min_obs=5)
    ours = stats(rolling, series(x, times))
    s = pd.Series(x, index=pd.DatetimeIndex(times), dtype=float)
    window = s.rolling("10d", min_periods=5, closed="right" if include_current else "left")

    def window_of(i):
        t = times[i]
        if include_current:
            return [v for v, u in zip(x, times) if t - timedelta(days=10) < u <= t]
        return [v for v, u in zip(x, times) if t - timedelta(days=10) <= u < t]

    check_against_pandas(ours, x, window, window_of)


# --- the window ------------------------------------------------------------------------------


def test_the_current_observation_is_excluded_by_default_and_included_on_request():
    x = [0.1, 0.3] * 15 + [5.0]
    excluded = stats(RollingWindow(), series(x)).row(-1, named=True)
    included = stats(RollingWindow(include_current=True), series(x)).row(-1, named=True)
    assert excluded["mean"] == pytest.approx(0.2, rel=1e-15)  # the 30 before: fifteen 0.1, fifteen 0.3
    assert included["mean"] == pytest.approx((14 * 0.1 + 15 * 0.3 + 5.0) / 30, rel=1e-15)  # drops the first
    assert excluded["n_obs"] == included["n_obs"] == 30


def test_the_window_counts_observations_not_time():
    # hourly observations: the previous 30 are 30 hours, not 10 days
    x = [9.0] * 10 + [0.1, 0.3] * 15 + [0.2]
    times = [T0 + timedelta(hours=i) for i in range(len(x))]
    row = stats(RollingWindow(), series(x, times)).row(-1, named=True)
    assert row["n_obs"] == 30
    assert row["mean"] == pytest.approx(0.2, rel=1e-15)
    assert row["std"] == pytest.approx(0.1 * math.sqrt(30 / 29), rel=1e-15)


def test_null_statistics_until_min_obs_observations():
    out = stats(RollingWindow(min_obs=5), series([0.1, 0.3] * 5))
    assert out["n_obs"].to_list() == list(range(10))
    assert out["mean"].null_count() == 5  # rows 0..4 have 0..4 observations before them
    assert out["mean"][5] == pytest.approx((3 * 0.1 + 2 * 0.3) / 5, rel=1e-15)


def test_an_observation_exactly_max_age_old_is_used_and_an_older_one_is_not():
    obs = series([0.0, 1.0, 2.0], [T0, T0 + 10 * DAY, T0 + 15 * DAY])
    at = queries([T0 + 20 * DAY, T0 + 20 * DAY + timedelta(milliseconds=1)])
    out = stats(RollingWindow(30, min_obs=2), obs, at=at)
    assert out["n_obs"].to_list() == [3, 2]
    assert out["mean"].to_list() == [pytest.approx(1.0), pytest.approx(1.5)]


def test_a_gap_shortens_the_window_instead_of_reaching_back():
    # 30 observations 8h apart, then 15 days of nothing: only those at most 20 days before
    # the next row count (i >= 14: 16 of them), so with min_obs 20 there are no statistics.
    x = [0.1, 0.3] * 15
    after_gap = T0 + 29 * H8 + 15 * DAY
    out = stats(RollingWindow(), series([*x, 0.5], [T0 + i * H8 for i in range(30)] + [after_gap]))
    assert out["n_obs"][-1] == 16
    assert out["mean"][-1] is None and out["z"][-1] is None
    shorter = stats(RollingWindow(min_obs=10), series([*x, 0.5], [T0 + i * H8 for i in range(30)] + [after_gap]))
    assert shorter["mean"][-1] == pytest.approx(np.mean(x[14:]), rel=1e-15)


def test_a_flat_window_has_std_exactly_zero_and_mean_exactly_its_value():
    # 30 times 0.1095 does not sum to exactly 30 * 0.1095; the flat window must still give
    # std 0 (no z, no band), not a rounding residue that would read as a huge z-score
    assert sum([0.1095] * 30) / 30 != 0.1095
    out = stats(RollingWindow.notebook(30), series([5.0] + [0.1095] * 30))
    last = out.row(-1, named=True)
    assert (last["mean"], last["std"]) == (0.1095, 0.0)
    assert last["z"] is None and last["upper"] is None and last["lower"] is None


def test_zero_variance_gives_no_z_and_no_band_even_when_the_value_moves():
    out = stats(RollingWindow(), series([0.0] * 25 + [0.05]))
    last = out.row(-1, named=True)
    assert (last["mean"], last["std"]) == (0.0, 0.0)
    assert last["z"] is None and last["upper"] is None and last["lower"] is None


def test_null_and_nan_values_are_not_observations():
    x = [0.1, 0.3] * 10
    holes = [*x[:5], None, float("nan"), *x[5:], 0.2]
    out = stats(RollingWindow(), series(holes))
    assert out["n_obs"][-1] == 20
    assert out["mean"][-1] == pytest.approx(0.2, rel=1e-15)


def test_groups_never_share_a_window():
    a = series([0.1, 0.3] * 15 + [0.2], group="a")
    b = series([50.0, -50.0] * 15 + [0.2], group="b")
    mixed = stats(RollingWindow(), pl.concat([b, a]))
    assert_frame_equal(mixed.filter(pl.col("g") == "a"), stats(RollingWindow(), a))


def test_rows_come_back_in_the_order_of_at():
    obs = series([0.1, 0.3] * 15)
    at = queries([T0 + 29 * H8 + timedelta(hours=1), T0, T0 + 20 * H8 + timedelta(hours=3)])
    out = stats(RollingWindow(min_obs=2), obs, at=at)
    assert out["ts"].to_list() == at["ts"].to_list()
    assert out["n_obs"].to_list() == [30, 0, 21]


# --- statistics as of a time (intraday rows) -------------------------------------------------


def test_a_row_between_observations_reads_those_before_it():
    obs = series([0.1, 0.3] * 15)
    t = T0 + 29 * H8 + timedelta(hours=3)
    row = stats(RollingWindow(), obs, at=queries([t])).row(0, named=True)
    assert row["n_obs"] == 30
    assert row["mean"] == pytest.approx(0.2, rel=1e-15)


def test_a_row_at_an_observation_time_reads_it_only_when_the_current_point_is_included():
    obs = series([0.1, 0.3] * 15 + [5.0])
    t = T0 + 30 * H8
    excluded = stats(RollingWindow(), obs, at=queries([t])).row(0, named=True)
    included = stats(RollingWindow(include_current=True), obs, at=queries([t])).row(0, named=True)
    assert excluded["mean"] == pytest.approx(0.2, rel=1e-15)
    assert included["mean"] == pytest.approx((14 * 0.1 + 15 * 0.3 + 5.0) / 30, rel=1e-15)


def test_max_age_is_measured_from_the_row_not_from_the_last_observation():
    # 25 observations 20h apart (i = 0..24) span exactly 20 days. A row at the last one reads
    # i = 0..23 (i = 0 exactly 20 days old); a row 4h later reads i = 1..24: observation 0
    # is now older than 20 days, though it is within 20 days of the last observation.
    obs = series([0.1, 0.3] * 12 + [0.2], [T0 + i * timedelta(hours=20) for i in range(25)])
    last = T0 + 24 * timedelta(hours=20)
    out = stats(RollingWindow(min_obs=2), obs, at=queries([last, last + timedelta(hours=4)]))
    assert out["n_obs"].to_list() == [24, 24]
    assert out["mean"].to_list() == [pytest.approx(0.2), pytest.approx((11 * 0.1 + 12 * 0.3 + 0.2) / 24)]
    late = stats(RollingWindow(min_obs=2, include_current=True), obs, at=queries([last + timedelta(hours=4)]))
    assert late["n_obs"].to_list() == [24]
    at_last = stats(RollingWindow(min_obs=2, include_current=True), obs, at=queries([last]))
    assert at_last["n_obs"].to_list() == [25]


# --- partition = range ------------------------------------------------------------------------


@PROPERTY
@given(
    x=spread_like(max_size=250),
    data=st.data(),
    rolling=st.sampled_from(
        [
            RollingWindow(),
            RollingWindow.notebook(30),
            RollingWindow("10d"),
            RollingWindow("36h", include_current=True, min_obs=2),
            RollingWindow(5, min_obs=2, max_age="30h"),
        ]
    ),
)
def test_a_days_rows_depend_only_on_its_lookback(x, data, rolling):
    gaps = data.draw(st.lists(st.sampled_from([1, 8, 8, 8, 16, 100]), min_size=len(x), max_size=len(x)))
    times = [T0 + timedelta(hours=h) for h in np.cumsum(gaps).tolist()]
    frame = pl.concat([series(x, times), series([-v for v in x], times, group="b")])
    if not times:
        return
    day = datetime.combine(data.draw(st.sampled_from([t.date() for t in times])), datetime.min.time())
    on_day = (pl.col("ts") >= day) & (pl.col("ts") < day + DAY)
    whole = stats(rolling, frame).filter(on_day)
    alone = stats(rolling, frame.filter(pl.col("ts") >= day - rolling.lookback_days() * DAY, pl.col("ts") < day + DAY))
    assert_frame_equal(alone.filter(on_day), whole)
