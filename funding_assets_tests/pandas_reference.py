"""pandas as the reference for the rolling statistics (the seed notebook's convention).

:func:`check_against_pandas` compares our ``mean, std, z, upper, lower`` (and ``signal`` when
present) with the same numbers from a pandas ``Rolling`` row by row:

- nulls: ``mean``/``std`` are null exactly where pandas gives NaN; ``z``, the bands and the
  signal are null exactly where pandas' std is NaN or 0 (no signal from zero variance);
- values: within ``TOL`` of pandas (relative above 1: a z of 300), or, on a row where pandas' online (add/remove)
  variance has drifted, within ``TOL`` (relative) of the exact value computed in rational
  arithmetic from the window's observations (rows counted in ``pandas_off``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd
import polars as pl

TOL = 1e-12
STATS = ("mean", "std", "z", "upper", "lower")


@dataclass(frozen=True)
class Agreement:
    rows: int  # rows where pandas has a positive std
    max_abs_diff: dict[str, float]  # per column of STATS: max |ours - pandas| on those rows
    pandas_off: int  # rows more than TOL from pandas where ours is the exact value


def exact(window: Sequence[float], x: float, band_k: float) -> dict[str, float]:
    """mean, std (ddof 1), z and bands of ``x`` against ``window``, in rational arithmetic."""
    values = [Fraction(v) for v in window]
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return {
        "mean": float(mean),
        "std": std,
        "z": float((Fraction(x) - mean) / Fraction(std)),
        "upper": float(mean + Fraction(band_k) * Fraction(std)),
        "lower": float(mean - Fraction(band_k) * Fraction(std)),
    }


def check_against_pandas(
    ours: pl.DataFrame,
    x: Sequence[float],
    rolling: pd.core.window.rolling.BaseWindow,
    window_of: Callable[[int], Sequence[float]],
    band_k: float = 1.5,
) -> Agreement:
    """Assert the rules of the module doc; ``window_of(i)`` = the observations of row i."""
    s = pd.Series(x, dtype=float)
    mean, std = rolling.mean().to_numpy(), rolling.std().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):  # pandas' own z where its std is 0
        ref = {"mean": mean, "std": std, "z": (s.to_numpy() - mean) / std}
    ref |= {"upper": mean + band_k * std, "lower": mean - band_k * std}
    got = {c: ours[c].cast(pl.Float64).to_numpy() for c in STATS}
    has_std = std > 0
    for column in ("mean", "std"):
        assert np.array_equal(np.isnan(got[column]), np.isnan(ref[column])), column
    for column in ("z", "upper", "lower"):
        assert np.array_equal(np.isnan(got[column]), ~has_std), column
    if "signal" in ours.columns:
        signal = ours["signal"]
        assert np.array_equal(signal.is_null().to_numpy(), ~has_std), "signal"
        expected = np.where(s > ref["upper"], 1, np.where(s < ref["lower"], -1, 0))
        assert np.array_equal(signal.to_numpy()[has_std], expected[has_std]), "signal"
    rows = np.flatnonzero(has_std)
    diff = {c: np.abs(got[c][rows] - ref[c][rows]) for c in STATS}
    apart = np.zeros(rows.size, dtype=bool)
    for c in STATS:
        apart |= diff[c] > TOL * np.maximum(1.0, np.abs(ref[c][rows]))
    off = 0
    for i in rows[apart]:
        truth = exact(window_of(i), x[i], band_k)
        for c in STATS:
            assert abs(got[c][i] - truth[c]) <= TOL * max(1.0, abs(truth[c])), (i, c, got[c][i], ref[c][i], truth[c])
        off += 1
    largest = {c: float(d.max()) if d.size else 0.0 for c, d in diff.items()}
    return Agreement(rows=int(rows.size), max_abs_diff=largest, pandas_off=off)
