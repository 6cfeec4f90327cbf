"""The rolling statistics' numba kernel gives, to the bit, what the matrix layout in numpy
gives (the arithmetic of DESIGN section 4's z-scores and spreads as first written): every
window's observations in one row of a (windows x widest window) matrix, NaN-padded, summed
with ``np.nansum`` in two corrected passes, ``nanmin == nanmax`` for a flat window.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_series_equal

from funding_assets.rolling import _moments, _pairwise_sum

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def matrix_moments(values: dict[str, np.ndarray], lo: np.ndarray, hi: np.ndarray, min_obs: int) -> dict:
    """The reference: the matrix layout, vectorised over the windows in numpy."""
    n = (hi - lo).astype(np.int64)
    ok = n >= min_obs
    out: dict[str, np.ndarray] = {"n_obs": n.astype(np.uint32)}
    rows = np.flatnonzero(ok)
    width = int(n[rows].max()) if rows.size else 0
    offsets = np.arange(width)
    in_window = offsets[None, :] < n[rows, None]
    index = np.where(in_window, lo[rows, None] + offsets[None, :], 0)
    count = n[rows].astype(np.float64)
    for name, series in values.items():
        mean = np.full(n.shape, np.nan)
        std = np.full(n.shape, np.nan)
        if rows.size:
            with np.errstate(invalid="ignore", over="ignore"):  # inf and overflow cases, as the old code ran them
                x = np.where(in_window, series[index], np.nan)
                first = np.nansum(x, axis=1) / count
                dev = x - first[:, None]
                m = first + np.nansum(dev, axis=1) / count
                dev = x - m[:, None]
                resid = np.nansum(dev, axis=1)
                var = (np.nansum(dev * dev, axis=1) - resid * resid / count) / (count - 1)
                low, high = np.nanmin(x, axis=1), np.nanmax(x, axis=1)
                flat = low == high
                mean[rows] = np.where(flat, low, m)
                std[rows] = np.where(flat, 0.0, np.sqrt(np.maximum(var, 0.0)))
        out[f"{name}_mean"] = mean
        out[f"{name}_std"] = std
    return {k: pl.Series(k, v, nan_to_null=True) if v.dtype.kind == "f" else pl.Series(k, v) for k, v in out.items()}


def assert_same_bits(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for name in want:
        assert_series_equal(got[name], want[name], check_exact=True)
        if got[name].dtype == pl.Float64:
            a, b = got[name].to_numpy(), want[name].to_numpy()
            # NaN (null) aside, the same bits: catches -0.0 against 0.0
            assert np.array_equal(a.view(np.int64)[~np.isnan(a)], b.view(np.int64)[~np.isnan(b)])


@st.composite
def windows(draw):
    """Observations like spreads and strip levels (noise at one of several scales, flat runs,
    signed zeros, outliers, now and then an infinity) and windows over them, some wider than
    numpy's 128-term summation block."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    size = draw(st.integers(1, 400))
    scale = draw(st.sampled_from([1e-8, 1e-4, 1e-2, 1.0, 1e6]))
    x = np.round(rng.normal(draw(st.floats(-1, 1)), scale, size) * 1e8) / 1e8
    for _ in range(draw(st.integers(0, 4))):
        start = int(rng.integers(0, size))
        x[start : start + int(rng.integers(1, 200))] = draw(st.sampled_from([0.0, -0.0, 0.1095, -0.0219]))
    if draw(st.booleans()):
        x[int(rng.integers(0, size))] = draw(st.sampled_from([np.inf, -np.inf, 1e300, -5e-324]))
    count = draw(st.integers(0, 60))
    lo = rng.integers(0, size, count)
    hi = np.minimum(size, lo + rng.integers(0, draw(st.sampled_from([8, 30, 72, 300])), count))
    return x, lo, hi, draw(st.integers(2, 40))


@PROPERTY
@given(windows())
def test_kernel_equals_the_matrix_layout_to_the_bit(case):
    x, lo, hi, min_obs = case
    values = {"v": x, "w": -x * 3.7}
    assert_same_bits(_moments(values, lo, hi, min_obs), matrix_moments(values, lo, hi, min_obs))


def test_kernel_equals_the_matrix_layout_on_zero_windows():
    x = np.array([0.0, -0.0, -0.0, 0.0, 0.0, -0.0, 1.0, 0.0])
    lo, hi = np.array([0, 1, 2, 0, 3]), np.array([6, 6, 3, 7, 6])
    assert_same_bits(_moments({"v": x}, lo, hi, 2), matrix_moments({"v": x}, lo, hi, 2))


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=0, max_size=400))
@settings(max_examples=80, deadline=None)
def test_pairwise_sum_is_numpys_row_sum(values):
    a = np.array(values, dtype=np.float64)
    assert _pairwise_sum(a, 0, a.size) == a.reshape(1, -1).sum(axis=1)[0] or a.size == 0
