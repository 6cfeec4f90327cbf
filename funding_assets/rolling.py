"""The one rolling-statistics convention of feature z-scores and spread signals. No Dagster.

A :class:`RollingWindow` says which past observations a row's ``mean`` and ``std`` are taken
over. An observation is a row of the observed series (per group, e.g. one venue pair and
coin) whose value is neither null nor NaN; a row at time ``t`` reads observations only:

- ``window`` an int: the last ``window`` observations with ``ts < t`` (the current point
  excluded, the default) or ``ts <= t`` (``include_current=True``), and among those only
  the ones at most ``max_age`` old (``t - ts <= max_age``). ``max_age`` defaults to twice the
  window's nominal span on the 8h grid, ``2 * window * 8h`` (20 days for 30 observations):
  a gap in the data then shortens the window instead of reaching back without limit, so a
  day's statistics read only a declared lookback (:meth:`RollingWindow.lookback_days`).
- ``window`` a duration (``"10d"``, ``"72h"``): every observation in ``[t - window, t)``
  (current excluded) or ``(t - window, t]`` (included), i.e. pandas'
  ``rolling("10d", closed="left")`` and ``rolling("10d")``. Such a window bounds itself;
  ``max_age`` is refused.
- ``min_obs``: with fewer observations in the window, ``mean`` and ``std`` are null.
- ``std`` is the sample standard deviation (ddof 1); a window whose values are all equal has
  ``std`` exactly 0 and ``mean`` exactly that value (as pandas).
- z-scores ``z = (x - mean) / std`` and spread bands ``mean +- band_k * std`` (default 1.5)
  exist only where ``std > 0``: a flat window (e.g. both venues at the 0.01 % baseline) or a
  window short of ``min_obs`` gives no z, no band and no signal (null, never 0 or inf).

Values keep the unit of the series (spreads and strip buckets are annualised decimals).

The seed notebook's pandas ``s.rolling(30)`` mean/std/z/bands (the current row included,
``min_periods`` = 30, ddof 1) is :meth:`RollingWindow.notebook` (``notebook(30)``; the
fixed-rate notebook's ``notebook(72)``). It equals pandas exactly on a series whose last
``n`` observations always lie within ``max_age``; the default setting equals pandas'
``s.shift(1).rolling(30, min_periods=20)`` on such a series. Each window's mean and std are
computed afresh (two passes), so they are exact to a few ulps; pandas' online add/remove
variance can drift after a large value leaves the window (on the real Binance-Bybit spread
by up to 8e-10 relative), and there the difference is pandas' rounding, not ours.

Settings text (``FUNDING_ASSETS_Z_WINDOW``) is read by :meth:`RollingWindow.parse`:
``"30"`` is 30 observations, ``"10d"``/``"72h"`` a duration.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
import polars as pl

from .errors import FundingInputError
from .strip import GRID_HOURS

_DURATION = re.compile(r"(\d+)([dh])")
_HOURS_PER_UNIT = {"d": 24, "h": 1}
_ROW = "__rolling_row"
_HI = "__rolling_hi"
_LO = "__rolling_lo"
_GROUP = "__rolling_group"


def _duration_hours(text: str, what: str) -> int:
    """Hours of a duration like ``"10d"`` or ``"72h"``; ``what`` names the field in errors."""
    match = _DURATION.fullmatch(text.strip().lower()) if isinstance(text, str) else None
    if match is None or int(match.group(1)) == 0:
        raise FundingInputError(f"{what} must be a positive duration like '10d' or '72h', got {text!r}")
    return int(match.group(1)) * _HOURS_PER_UNIT[match.group(2)]


def zscore(value: str, mean: str, std: str) -> pl.Expr:
    """``(value - mean) / std``, null unless ``std > 0`` (and so null without statistics)."""
    return pl.when(pl.col(std) > 0).then((pl.col(value) - pl.col(mean)) / pl.col(std))


@dataclass(frozen=True)
class RollingWindow:
    """Which past observations a row's mean and std are taken over (see the module doc).

    ``window``: observations (int) or a duration (``"10d"``); ``include_current``: the row's
    own observation is in its window; ``min_obs``: fewer gives null statistics; ``band_k``:
    spread bands at ``mean +- band_k * std``; ``max_age``: for a window in observations,
    the oldest observation used (default ``2 * window * 8h``).
    """

    window: int | str = 30
    include_current: bool = False
    min_obs: int = 20
    band_k: float = 1.5
    max_age: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.include_current, bool):
            raise FundingInputError(f"include_current must be True or False, got {self.include_current!r}")
        if isinstance(self.min_obs, bool) or not isinstance(self.min_obs, int):
            raise FundingInputError(f"min_obs must be a whole number of observations, got {self.min_obs!r}")
        if isinstance(self.window, bool) or not isinstance(self.window, int | str):
            raise FundingInputError(f"window must be a number of observations or a duration, got {self.window!r}")
        if isinstance(self.window, int):
            if self.window < 2:
                raise FundingInputError(f"window must be at least 2 observations, got {self.window}")
            if not 2 <= self.min_obs <= self.window:
                raise FundingInputError(
                    f"min_obs must be between 2 and the window ({self.window} observations), got {self.min_obs}"
                )
            if self.max_age is not None:
                _duration_hours(self.max_age, "max_age")
        else:
            _duration_hours(self.window, "window")
            if self.min_obs < 2:
                raise FundingInputError(f"min_obs must be at least 2, got {self.min_obs}")
            if self.max_age is not None:
                raise FundingInputError(
                    f"max_age bounds a window in observations; the duration window {self.window!r} "
                    f"bounds itself (got max_age={self.max_age!r})"
                )
        if isinstance(self.band_k, bool) or not isinstance(self.band_k, int | float) or not 0 < self.band_k < math.inf:
            raise FundingInputError(f"band_k must be a positive number, got {self.band_k!r}")

    @classmethod
    def notebook(cls, n: int = 30, *, band_k: float = 1.5, max_age: str | None = None) -> RollingWindow:
        """The seed notebook's pandas ``rolling(n)``: the current point included, nothing
        before ``n`` observations (``min_periods = n``), ddof 1, bands at 1.5 std.
        ``max_age`` as for any window in observations (default ``2 * n * 8h``; hourly
        candles want hours, e.g. ``"144h"`` for 72 of them)."""
        return cls(window=n, include_current=True, min_obs=n, band_k=band_k, max_age=max_age)

    @classmethod
    def parse(
        cls,
        text: str,
        *,
        setting: str = "window",
        include_current: bool = False,
        min_obs: int = 20,
        band_k: float = 1.5,
        max_age: str | None = None,
    ) -> RollingWindow:
        """A window from settings text: ``"30"`` = 30 observations, ``"10d"``/``"72h"`` = a
        duration. A text that is neither, or a window the other fields do not fit, is refused
        naming ``setting`` and the text."""
        raw = str(text).strip().lower()
        if not (raw.isdigit() or _DURATION.fullmatch(raw)):
            raise FundingInputError(
                f"{setting}: expected a number of observations like '30' or a duration like '10d' "
                f"or '72h', got {text!r}"
            )
        try:
            return cls(int(raw) if raw.isdigit() else raw, include_current, min_obs, band_k, max_age)
        except FundingInputError as exc:
            raise FundingInputError(f"{setting}={text!r}: {exc}") from None

    #: Former name of :meth:`parse` (settings code calls it).
    from_settings = parse

    @property
    def horizon_hours(self) -> int:
        """Age in hours of the oldest observation a row's statistics may read."""
        if isinstance(self.window, str):
            return _duration_hours(self.window, "window")
        if self.max_age is not None:
            return _duration_hours(self.max_age, "max_age")
        return 2 * self.window * GRID_HOURS

    def lookback_days(self) -> int:
        """Whole UTC days before a day that the statistics of its rows read (the declared
        partition lookback): 20 for the default and for ``notebook(30)``."""
        return math.ceil(self.horizon_hours / 24)

    def stats(
        self,
        observations: pl.DataFrame,
        values: Sequence[str],
        *,
        time: str,
        by: Sequence[str],
        at: pl.DataFrame | None = None,
    ) -> pl.DataFrame:
        """Rolling ``{value}_mean`` and ``{value}_std`` (ddof 1) of each of ``values``, and the
        window's ``n_obs``, for every row of ``at`` (default: ``observations``), in its order.

        A row at ``time`` = t of group ``by`` reads the observations of its group as the module
        doc says (``ts < t`` or ``ts <= t``; last ``window`` of them within ``max_age``, or the
        duration). Rows of ``observations`` with any of ``values`` null or NaN are not
        observations. A group should not repeat a time; statistics are null below ``min_obs``.
        A null in a ``by`` column is a group value like any other (e.g. a null ``contract``).
        """
        by, values = list(by), list(values)
        queries = observations if at is None else at
        valid = [pl.col(v).is_not_null() & pl.col(v).is_not_nan() for v in values]
        obs = (
            observations.filter(pl.col(time).is_not_null(), *valid)
            .select(*by, time, *values)
            .sort([*by, time])
            .with_row_index(_ROW)
        )
        bounds = self._bounds(obs, queries.select(*by, time).with_row_index(_ROW), time, by)
        windows = bounds.select(_LO, _HI).unique()
        moments = _moments(
            {v: obs[v].to_numpy() for v in values},
            windows[_LO].to_numpy(),
            windows[_HI].to_numpy(),
            self.min_obs,
        )
        per_query = (
            bounds.join(windows.hstack(pl.DataFrame(moments)), on=[_LO, _HI], how="left")
            .sort(_ROW)
            .drop(_ROW, _LO, _HI)
        )
        return queries.hstack(per_query)

    def _bounds(self, obs: pl.DataFrame, queries: pl.DataFrame, time: str, by: list[str]) -> pl.DataFrame:
        """Per query row: the half-open range ``[lo, hi)`` of ``obs`` rows in its window."""
        span = pl.duration(hours=self.horizon_hours)
        # max_age: t - ts <= max_age. A duration w: pandas' closed="left" [t - w, t) without
        # the current point, closed="right" (t - w, t] with it.
        oldest_exact = isinstance(self.window, int) or not self.include_current
        index = obs.select(*by, time, pl.col(_ROW).cast(pl.Int64))
        if by:
            # one integer per group: an as-of join never matches a null ``by`` value
            groups = obs.select(by).unique(maintain_order=True).with_row_index(_GROUP)
            index = index.join(groups, on=by, nulls_equal=True).select(_GROUP, time, _ROW)
            queries = queries.join(groups, on=by, how="left", nulls_equal=True).select(_ROW, _GROUP, time)
        index = index.sort(time)
        asof = dict(on=time, by=_GROUP if by else None, check_sortedness=False)
        newest = queries.sort(time).join_asof(
            index.rename({_ROW: _HI}), strategy="backward", allow_exact_matches=self.include_current, **asof
        )
        oldest = (
            queries.with_columns((pl.col(time) - span).alias(time))
            .sort(time)
            .join_asof(index.rename({_ROW: _LO}), strategy="forward", allow_exact_matches=oldest_exact, **asof)
        )
        hi = pl.col(_HI) + 1
        lo = pl.col(_LO)
        if isinstance(self.window, int):
            # max_horizontal skips nulls: a null lo (nothing within max_age) must stay null
            lo = pl.when(lo.is_not_null()).then(pl.max_horizontal(lo, hi - self.window))
        both = newest.select(_ROW, _HI).join(oldest.select(_ROW, _LO), on=_ROW)
        return both.select(
            _ROW,
            # no observation in range: an empty window [0, 0)
            pl.when(hi > lo).then(lo).otherwise(0).fill_null(0).alias(_LO),
            pl.when(hi > lo).then(hi).otherwise(0).fill_null(0).alias(_HI),
        )


_JIT = dict(cache=True, nogil=True, error_model="numpy")


#: numpy sums a contiguous row in blocks of at most this many terms.
_BLOCK = 128


@numba.njit(**_JIT)
def _block_sum(a: np.ndarray, lo: int, n: int) -> float:
    """numpy's sum of ``a[lo:lo + n]``, ``n <= 128``: 8 interleaved partial sums, then the rest."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - n % 8:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@numba.njit(**_JIT)
def _pairwise_sum(a: np.ndarray, lo: int, n: int) -> float:
    """``a[lo:lo + n]`` summed in numpy's order (pairwise summation of a contiguous row:
    blocks of up to 128 terms, halves above, the half a multiple of 8), so the sum equals
    ``np.sum`` of that row to the bit. The halving is walked with an explicit stack."""
    if n <= _BLOCK:
        return _block_sum(a, lo, n)
    starts = np.empty(64, np.int64)
    sizes = np.empty(64, np.int64)
    stage = np.zeros(64, np.int64)
    sums = np.empty(64)
    top, done = 0, 0
    starts[0], sizes[0], stage[0] = lo, n, 0
    while top >= 0:
        size = sizes[top]
        half = size // 2
        half -= half % 8
        if size <= _BLOCK:
            sums[done] = _block_sum(a, starts[top], size)
            done += 1
            top -= 1
        elif stage[top] < 2:
            child = starts[top] + (half if stage[top] == 1 else 0)
            stage[top] += 1
            top += 1
            starts[top], sizes[top], stage[top] = child, (size - half if stage[top - 1] == 2 else half), 0
        else:
            done -= 1
            sums[done - 1] = sums[done - 1] + sums[done]
            top -= 1
    return sums[0]


@numba.njit(**_JIT)
def _window_moments(
    series: np.ndarray, lo: np.ndarray, hi: np.ndarray, ok: np.ndarray, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per window ``[lo, hi)`` with ``ok``: mean and sample std of ``series[lo:hi]``, NaN
    elsewhere, and whether the window is flat at zero (its mean's sign is then numpy's pick).

    The arithmetic of a (windows x widest window) matrix in numpy, one window at a time:
    each row padded to ``width`` with terms that count 0, NaN terms counted as 0 (as
    ``np.nansum``), sums in numpy's pairwise order, so every value is the one the matrix
    layout gives, to the bit, at a fraction of its memory and time.
    """
    m = lo.size
    mean = np.full(m, np.nan)
    std = np.full(m, np.nan)
    zero_flat = np.zeros(m, np.bool_)
    buf = np.zeros(width)
    for w in range(m):
        if not ok[w]:
            continue
        start, n = lo[w], hi[w] - lo[w]
        count = float(n)
        low, high = np.inf, -np.inf
        for i in range(n):
            x = series[start + i]
            buf[i] = x if x == x else 0.0
            if x < low:
                low = x
            if x > high:
                high = x
        for i in range(n, width):
            buf[i] = 0.0
        first = _pairwise_sum(buf, 0, width) / count
        for i in range(n):
            d = series[start + i] - first
            buf[i] = d if d == d else 0.0
        centre = first + _pairwise_sum(buf, 0, width) / count
        for i in range(n):
            d = series[start + i] - centre
            buf[i] = d if d == d else 0.0
        resid = _pairwise_sum(buf, 0, width)
        for i in range(n):
            d = series[start + i] - centre
            sq = d * d
            buf[i] = sq if sq == sq else 0.0
        var = (_pairwise_sum(buf, 0, width) - resid * resid / count) / (count - 1)
        if low == high:
            mean[w] = low
            std[w] = 0.0
            zero_flat[w] = low == 0.0
        else:
            mean[w] = centre
            # np.maximum(var, 0): a NaN variance (overflowed squares) stays NaN
            std[w] = np.sqrt(var if var >= 0.0 or var != var else 0.0)
    return mean, std, zero_flat


def _moments(values: dict[str, np.ndarray], lo: np.ndarray, hi: np.ndarray, min_obs: int) -> dict[str, pl.Series]:
    """Mean and sample std of ``values[lo:hi]`` per window (numba, :func:`_window_moments`).

    Two passes: the mean is corrected by a second pass and the variance is the corrected
    two-pass sum of squared deviations, so both are exact to a few ulps. A window whose
    values are all equal gets exactly that mean and std 0.
    """
    n = (hi - lo).astype(np.int64)
    ok = n >= min_obs
    out: dict[str, np.ndarray] = {"n_obs": n.astype(np.uint32)}
    width = int(n[ok].max()) if ok.any() else 0
    lo64 = lo.astype(np.int64)
    hi64 = hi.astype(np.int64)
    for name, series in values.items():
        series = np.ascontiguousarray(series, dtype=np.float64)
        mean, std, zero_flat = _window_moments(series, lo64, hi64, ok, width)
        if zero_flat.any():
            # all values +-0.0: which zero is the mean is numpy's nanmin's choice
            rows = np.flatnonzero(zero_flat)
            offsets = np.arange(width)
            in_window = offsets[None, :] < n[rows, None]
            index = np.where(in_window, lo64[rows, None] + offsets[None, :], 0)
            mean[rows] = np.nanmin(np.where(in_window, series[index], np.nan), axis=1)
        out[f"{name}_mean"] = mean
        out[f"{name}_std"] = std
    return _as_series(out)


def _as_series(out: dict[str, np.ndarray]) -> dict[str, pl.Series]:
    # NaN marks "no statistics": null in the frame
    return {k: pl.Series(k, v, nan_to_null=True) if v.dtype.kind == "f" else pl.Series(k, v) for k, v in out.items()}
