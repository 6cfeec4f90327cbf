"""Walk-forward PCA of the strip (DESIGN sections 2, 4 and 7), one rule per test.

- fits are made on a ``refit_days`` cadence aligned to 2020-01-01, each on the roll
  snapshots in ``[fitted_at - window_days, fitted_at)`` known before ``fitted_at`` (as_of);
- a snapshot is scored with the latest fit strictly before its ts (walk-forward);
- scores = (x - mean) @ loadings.T;
- signs come from the fixed reference basis (level, slope, curvature): a decisive matched
  shape gets a positive dot product, otherwise the shapes vote, otherwise the largest
  loading is positive; never from a previous fit;
- too few roll snapshots, or no variance: no fit, and no score from it;
- the look-ahead check refits from snapshots strictly before each sampled row and fails a
  score that saw its own or later data.

The synthetic strips are exactly rank 2 (mean + t1*u1 + t2*u2 with orthonormal u1, u2 and
sample-uncorrelated t1, t2), so the principal axes are known by construction. Properties
over long simulated histories are in ``test_pca_properties.py``.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sklearn.decomposition import PCA
from snapshot_rows import frame, snap

from funding_assets.pca import (
    DECISIVE,
    REFERENCE,
    REFERENCE_SHAPES,
    UNMATCHED,
    Fit,
    fit_one,
    fit_times,
    fit_walk_forward,
    fits_frame,
    fits_from_frame,
    orient,
    score,
    verify_no_lookahead,
)
from funding_assets.strip import BUCKETS

H8 = timedelta(hours=8)
DAY = timedelta(days=1)
#: 2024-01-10 is 1470 = 7 * 210 days after 2020-01-01: on the weekly (and 3-day) cadence.
T0 = datetime(2024, 1, 10)
LEVEL = np.full(8, 1 / np.sqrt(8))  # a parallel shift of the whole strip


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def factor_scores(n: int, seed: int, sd1: float = 0.05, sd2: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Two zero-mean, exactly uncorrelated score series with std sd1 >> sd2."""
    rng = np.random.default_rng(seed)
    t1, t2 = rng.normal(size=(2, n))
    t1 -= t1.mean()
    t2 -= t2.mean()
    t2 -= (t2 @ t1) / (t1 @ t1) * t1
    return t1 / t1.std() * sd1, t2 / t2.std() * sd2


def rank2_rows(start: datetime, n: int, u1, u2, *, seed: int, mean: float = 0.1, **kw) -> list[dict]:
    """n roll snapshots 8h apart from ``start``: mean + t1*u1 + t2*u2."""
    t1, t2 = factor_scores(n, seed)
    x = mean + np.outer(t1, u1) + np.outer(t2, u2)
    return [snap(start + i * H8, x[i], **kw) for i in range(n)]


def make_fit(
    fitted_at: datetime, mean, loadings, *, venue="binance", symbol="BTC", contract="usdt", window_days=7
) -> Fit:
    loadings = np.asarray(loadings, dtype=float)
    return Fit(
        venue=venue,
        symbol=symbol,
        contract=contract,
        fitted_at=fitted_at,
        window_start=fitted_at - timedelta(days=window_days),
        n_obs=21,
        loadings=loadings,
        explained_variance=np.array([0.9, 0.1])[: loadings.shape[0]],
        mean=np.asarray(mean, dtype=float),
    )


# --- fit cadence -------------------------------------------------------------------------


def test_fit_times_are_on_the_cadence_aligned_to_2020_01_01_plus_the_last_before_start():
    # weekly instants ... 2024-01-03, 01-10, 01-17, 01-24 ...; start 01-11 needs 01-10 too
    assert fit_times(datetime(2024, 1, 11), datetime(2024, 1, 25), 7) == [
        datetime(2024, 1, 10),
        datetime(2024, 1, 17),
        datetime(2024, 1, 24),
    ]


def test_fit_times_do_not_depend_on_where_start_falls_within_a_cadence_step():
    for day in (11, 12, 13, 14, 15, 16):
        assert fit_times(datetime(2024, 1, day, 5), datetime(2024, 1, 17), 7) == [datetime(2024, 1, 10)]


def test_fit_times_start_on_a_fit_instant_also_gets_the_previous_fit():
    # a snapshot at exactly 01-10 00:00 must be scored by the 01-03 fit (strictly before)
    assert fit_times(datetime(2024, 1, 10), datetime(2024, 1, 18), 7) == [
        datetime(2024, 1, 3),
        datetime(2024, 1, 10),
        datetime(2024, 1, 17),
    ]


def test_fit_times_end_is_exclusive():
    assert fit_times(datetime(2024, 1, 11), datetime(2024, 1, 17), 7) == [datetime(2024, 1, 10)]


def test_fit_times_other_cadence():
    # 3-day cadence: 2024-01-10 (day 1470 = 3 * 490) and 2024-01-13 are instants
    assert fit_times(datetime(2024, 1, 11), datetime(2024, 1, 14), 3) == [
        datetime(2024, 1, 10),
        datetime(2024, 1, 13),
    ]
    # daily cadence at the epoch itself: the instant before is 2019-12-31
    assert fit_times(datetime(2020, 1, 1), datetime(2020, 1, 3), 1) == [
        datetime(2019, 12, 31),
        datetime(2020, 1, 1),
        datetime(2020, 1, 2),
    ]


# --- the fit window ----------------------------------------------------------------------


def test_a_fit_uses_the_roll_snapshots_of_its_trailing_window_only():
    fitted_at = T0 + 14 * DAY
    first = fitted_at - 7 * DAY - 2 * H8
    # rows j = 0..25 at first + j*8h, level j/100; the window [fitted_at - 7d, fitted_at)
    # holds j = 2..22 (21 rows, mean level 0.12); rows at/after fitted_at are excluded.
    rows = [snap(first + j * H8, [j / 100] * 7 + [j / 100 + (0.05 if j % 2 else -0.05)]) for j in range(26)]
    rows.append(snap(fitted_at - timedelta(hours=3), [9.0] * 8, kind="intraday"))  # not a roll: ignored
    (fit,) = fit_walk_forward(frame(rows), [fitted_at], window_days=7)
    assert fit.n_obs == 21
    assert fit.window_start == fitted_at - 7 * DAY
    assert fit.fitted_at == fitted_at
    assert fit.mean[:7] == pytest.approx([0.12] * 7, abs=1e-12)
    # slopes +-0.05 over j = 2..22: eleven even (-0.05), ten odd (+0.05) -> mean -0.05/21
    assert fit.mean[7] == pytest.approx(0.12 - 0.05 / 21, abs=1e-12)


SCORE_COLUMNS = [
    "venue",
    "symbol",
    "contract",
    "kind",
    "ts",
    "funding_time",
    "as_of",
    "fit_id",
    "fitted_at",
    "pc1",
    "pc2",
]


def test_too_few_roll_snapshots_make_no_fit_and_no_score():
    fitted_at = T0 + 7 * DAY
    u2 = unit([1, -1, 0, 0, 0, 0, 0, 0])
    # 19 rolls inside the window, plus rolls outside it and intraday rows inside it
    inside = rank2_rows(fitted_at - 19 * H8, 19, LEVEL, u2, seed=1)
    outside = rank2_rows(fitted_at - 7 * DAY - 10 * H8, 10, LEVEL, u2, seed=2)
    intraday = [snap(fitted_at - timedelta(hours=h), [0.1] * 8, kind="intraday") for h in (1, 2, 3, 4, 5)]
    later = [snap(fitted_at + timedelta(hours=h), [0.1] * 8, kind=k) for h, k in ((3, "intraday"), (8, "roll"))]
    snaps = frame(inside + outside + intraday + later)
    fits = fit_walk_forward(snaps, [fitted_at], window_days=7)
    assert fits == []
    scores = score(snaps, fits)
    assert scores.height == 0
    assert scores.columns == SCORE_COLUMNS  # as_of too: the snapshots carry it
    assert score(snaps.drop("as_of"), fits).columns == [c for c in SCORE_COLUMNS if c != "as_of"]


def test_twenty_roll_snapshots_are_enough_for_a_fit():
    fitted_at = T0 + 7 * DAY
    rows = rank2_rows(fitted_at - 20 * H8, 20, LEVEL, unit([1, -1, 0, 0, 0, 0, 0, 0]), seed=1)
    (fit,) = fit_walk_forward(frame(rows), [fitted_at], window_days=7)
    assert fit.n_obs == 20


def test_a_window_without_variance_makes_no_fit():
    # 21 identical strips (a venue printing its baseline rate all week): no principal axes
    flat = [snap(T0 + i * H8, [0.1095] * 8) for i in range(21)]
    assert fit_walk_forward(frame(flat), [T0 + 7 * DAY], window_days=7) == []
    one_move = flat[:20] + [snap(T0 + 20 * H8, [0.2] + [0.1095] * 7)]
    (fit,) = fit_walk_forward(frame(one_move), [T0 + 7 * DAY], window_days=7)
    assert np.isfinite(fit.explained_variance).all()


def test_rows_not_yet_known_at_the_fit_are_not_in_its_window():
    # as_of = ts + 10h: the rows of the last 10 hours before fitted_at were not known yet;
    # a null as_of counts as known at ts
    fitted_at = T0 + 7 * DAY
    rows = rank2_rows(T0, 21, LEVEL, unit([1, -1, 0, 0, 0, 0, 0, 0]), seed=8)
    late = frame(rows).with_columns(as_of=pl.col("ts") + pl.duration(hours=10))
    (fit,) = fit_walk_forward(late, [fitted_at], window_days=7)
    known = late.filter(pl.col("ts") < fitted_at - timedelta(hours=10))
    assert fit.n_obs == known.height == 20
    (same,) = fit_walk_forward(known.with_columns(as_of=None), [fitted_at], window_days=7)
    assert fit.loadings == pytest.approx(same.loadings, abs=0)
    assert fit.mean == pytest.approx(same.mean, abs=0)


def test_snapshots_before_the_first_successful_fit_get_no_score():
    # first window (fit at T0+7d) has 10 rolls -> no fit; second (T0+14d) has 21 -> fit
    u2 = unit([1, -1, 0, 0, 0, 0, 0, 0])
    early = rank2_rows(T0 + 7 * DAY - 10 * H8, 10, LEVEL, u2, seed=3)
    week2 = rank2_rows(T0 + 7 * DAY, 21, LEVEL, u2, seed=4)
    week3 = rank2_rows(T0 + 14 * DAY, 3, LEVEL, u2, seed=5)
    snaps = frame(early + week2 + week3)
    fits = fit_walk_forward(snaps, [T0 + 7 * DAY, T0 + 14 * DAY], window_days=7)
    assert [f.fitted_at for f in fits] == [T0 + 14 * DAY]
    scores = score(snaps, fits)
    assert scores["ts"].to_list() == [T0 + 14 * DAY + i * H8 for i in (1, 2)]


# --- scoring -----------------------------------------------------------------------------


def test_scores_are_the_centred_snapshot_times_the_loadings():
    fit = make_fit(T0, [0.1] * 8, [[0.5, 0.5, 0.5, 0.5, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1]])
    x = [0.3, 0.5, 0.1, 0.1, 0.2, 0.2, 0.2, 0.7]
    out = score(frame([snap(T0 + H8, x)]), [fit])
    row = out.row(0, named=True)
    # pc1 = 0.5 * (0.2 + 0.4 + 0 + 0) = 0.3 ; pc2 = 0.7 - 0.1 = 0.6
    assert row["pc1"] == pytest.approx(0.3, abs=1e-12)
    assert row["pc2"] == pytest.approx(0.6, abs=1e-12)
    assert row["fit_id"] == fit.fit_id
    assert row["fitted_at"] == T0


def test_n_components_one_scores_pc1_only():
    fit = make_fit(T0, [0.1] * 8, [[0.5, 0.5, 0.5, 0.5, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1]])
    out = score(frame([snap(T0 + H8, [0.3, 0.5, 0.1, 0.1, 0.2, 0.2, 0.2, 0.7])]), [fit], n_components=1)
    assert "pc2" not in out.columns
    assert out["pc1"].to_list() == pytest.approx([0.3], abs=1e-12)


def test_a_snapshot_exactly_at_fitted_at_uses_the_previous_fit():
    f1 = make_fit(T0, [0.0] * 8, [[1, 0, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0]])
    f2 = make_fit(T0 + 7 * DAY, [0.0] * 8, [[0, 0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 0, 1]])
    x = [1, 2, 3, 4, 5, 6, 7, 8]
    snaps = frame(
        [
            snap(T0, x),  # at f1: nothing strictly before -> unscored
            snap(T0 + 7 * DAY, x),  # exactly at f2 -> f1
            snap(T0 + 7 * DAY + timedelta(minutes=10), x, kind="intraday"),  # just after -> f2
            snap(T0 + 7 * DAY + H8, x),  # -> f2
        ]
    )
    out = score(snaps, [f2, f1])
    assert out.sort("ts").select("ts", "fit_id", "pc1", "pc2").rows() == [
        (T0 + 7 * DAY, f1.fit_id, 1.0, 2.0),
        (T0 + 7 * DAY + timedelta(minutes=10), f2.fit_id, 7.0, 8.0),
        (T0 + 7 * DAY + H8, f2.fit_id, 7.0, 8.0),
    ]


def test_scores_use_the_fit_of_the_same_venue_and_symbol():
    a = make_fit(T0, [0.0] * 8, [[1, 0, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0]], venue="binance")
    b = make_fit(T0 + DAY, [0.0] * 8, [[0, 0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 0, 1]], venue="okx")
    x = [1, 2, 3, 4, 5, 6, 7, 8]
    out = score(frame([snap(T0 + 2 * DAY, x, venue="binance"), snap(T0 + 2 * DAY, x, venue="okx")]), [a, b])
    assert out.select("venue", "fit_id", "pc1").rows() == [("binance", a.fit_id, 1.0), ("okx", b.fit_id, 7.0)]


def test_scores_carry_the_snapshots_as_of():
    fit = make_fit(T0, [0.1] * 8, [[0.5, 0.5, 0.5, 0.5, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1]])
    snaps = frame([snap(T0 + H8, [0.2] * 8), snap(T0 + 2 * H8, [0.3] * 8)])
    snaps = snaps.with_columns(as_of=pl.col("ts") + pl.duration(seconds=1))
    out = score(snaps, [fit])
    assert out.columns == SCORE_COLUMNS
    assert out["as_of"].to_list() == [T0 + H8 + timedelta(seconds=1), T0 + 2 * H8 + timedelta(seconds=1)]


def test_walk_forward_scores_recover_the_generating_factors():
    # exact rank-2 data: pc1 = t1 (minus its window mean, zero here), pc2 = t2, with their
    # signs: u1 is the level shape, u2 = (1, -1, 0, ...) no single shape but voted positive
    u1, u2 = LEVEL, unit([1, -1, 0, 0, 0, 0, 0, 0])
    t1, t2 = factor_scores(21, seed=7)
    x = 0.1 + np.outer(t1, u1) + np.outer(t2, u2)
    rows = [snap(T0 + i * H8, x[i]) for i in range(21)]
    fitted_at = T0 + 7 * DAY
    fits = fit_walk_forward(frame(rows), [fitted_at], window_days=7)
    # score the same strips again, re-stamped after the fit
    again = frame([snap(fitted_at + i * H8 + timedelta(hours=1), x[i], kind="intraday") for i in range(21)])
    out = score(again, fits)
    assert out["pc1"].to_numpy() == pytest.approx(t1, abs=1e-10)
    assert out["pc2"].to_numpy() == pytest.approx(t2, abs=1e-10)
    assert fits[0].explained_variance == pytest.approx([25 / 26, 1 / 26], abs=1e-10)


# --- sign convention ---------------------------------------------------------------------

SLOPE, CURVATURE = REFERENCE[1], REFERENCE[2]


def with_dots(dots) -> np.ndarray:
    """A unit vector with these dot products with (level, slope, curvature), the rest of its
    length along a fixed direction outside the basis."""
    k = np.arange(8.0)
    outside = k**3 - (k**3 @ REFERENCE.T) @ REFERENCE
    outside /= np.linalg.norm(outside)
    dots = np.asarray(dots, dtype=float)
    return dots @ REFERENCE + np.sqrt(1 - dots @ dots) * outside


def test_the_reference_basis_is_level_slope_and_curvature():
    assert REFERENCE_SHAPES == ("level", "slope", "curvature")
    assert REFERENCE @ REFERENCE.T == pytest.approx(np.eye(3), abs=1e-12)
    level, slope, curvature = REFERENCE
    assert level == pytest.approx(LEVEL, abs=1e-12)
    # slope: a centred ramp rising from b0 (newest) to b7 (long end)
    assert slope == pytest.approx(unit(np.arange(8) - 3.5), abs=1e-12)
    assert (np.diff(slope) > 0).all() and slope[7] > 0
    # curvature: a centred quadratic, positive at both ends, negative in the middle
    assert curvature == pytest.approx(unit((np.arange(8) - 3.5) ** 2 - 5.25), abs=1e-12)
    assert curvature[0] > 0 and curvature[7] > 0 and curvature[3] < 0


def test_each_component_is_oriented_against_its_reference_shape():
    rows = rank2_rows(T0, 21, LEVEL, SLOPE, seed=11)
    (fit,) = fit_walk_forward(frame(rows), [T0 + 7 * DAY], window_days=7)
    assert fit.shapes == ("level", "slope")
    assert fit.loadings[0] == pytest.approx(LEVEL, abs=1e-9)
    assert fit.loadings[1] == pytest.approx(SLOPE, abs=1e-9)


def test_orientation_depends_on_the_subspace_only_not_on_the_solver_sign():
    loadings = np.array([LEVEL, SLOPE])
    for signs in ((1, 1), (-1, 1), (1, -1), (-1, -1)):
        oriented, shapes = orient(loadings * np.array(signs)[:, None])
        assert oriented == pytest.approx(loadings, abs=0)
        assert shapes == ("level", "slope")


def test_a_slope_dominated_window_matches_pc1_to_the_slope_shape():
    # the slope factor has the larger variance: pc1 is the slope, pc2 the level (a swap)
    rows = rank2_rows(T0, 21, -SLOPE, -LEVEL, seed=13)
    (fit,) = fit_walk_forward(frame(rows), [T0 + 7 * DAY], window_days=7)
    assert fit.shapes == ("slope", "level")
    assert fit.loadings[0] == pytest.approx(SLOPE, abs=1e-9)
    assert fit.loadings[1] == pytest.approx(LEVEL, abs=1e-9)


def test_a_decisive_shape_sets_the_sign_even_against_the_vote():
    v = with_dots([-0.5, 0.72, -0.4])  # slope carries 52 % of it; the three dots sum to -0.18
    assert abs(v @ SLOPE) > DECISIVE and v @ REFERENCE.sum(axis=0) < 0
    for sign in (1, -1):
        oriented, shapes = orient(np.array([sign * v]))
        assert shapes == ("slope",)
        assert oriented[0] == pytest.approx(v, abs=0)


def test_a_component_that_is_no_single_shape_is_oriented_by_the_vote_of_the_shapes():
    # matched to slope (largest |dot|, 0.6 < 1/sqrt 2), but the dots sum to +0.35: kept as is,
    # although its dot with the matched slope is negative
    v = with_dots([0.45, -0.6, 0.5])
    for sign in (1, -1):
        oriented, shapes = orient(np.array([sign * v]))
        assert shapes == ("slope",)
        assert oriented[0] == pytest.approx(v, abs=0)


def test_a_squeeze_at_b0_raises_b0_whatever_the_solver_returns():
    # e0 lies exactly between slope and curvature (dots -0.54 and +0.54): the matched shape
    # is a tie broken by rounding, the vote (+0.35) is not
    e0 = np.eye(8)[0]
    assert e0 @ SLOPE == pytest.approx(-(e0 @ CURVATURE), abs=1e-12)
    for sign in (1, -1):
        (oriented,), _ = orient(np.array([sign * e0]))
        assert oriented == pytest.approx(e0, abs=0)


def test_with_a_tied_vote_the_largest_loading_is_positive():
    # b0 against the rest, centred: dots (0, +-0.577, -+0.577) sum to zero
    spike = unit([7, -1, -1, -1, -1, -1, -1, -1])
    assert abs(spike @ REFERENCE.sum(axis=0)) < 1e-12
    for sign in (1, -1):
        (oriented,), _ = orient(np.array([sign * spike]))
        assert oriented == pytest.approx(spike, abs=0)


def test_components_beyond_the_basis_are_unmatched_with_their_largest_loading_positive():
    rng = np.random.default_rng(3)
    x = 0.1 + rng.normal(size=(40, 8)) * np.linspace(0.05, 0.01, 8)
    snaps = frame([snap(T0 + i * H8, x[i]) for i in range(40)])
    (fit,) = fit_walk_forward(snaps, [T0 + 14 * DAY], window_days=14, n_components=5)
    # the three shapes go to the components closest to them, whatever their rank
    assert sorted(s for s in fit.shapes if s != UNMATCHED) == sorted(REFERENCE_SHAPES)
    unmatched = [c for c, s in enumerate(fit.shapes) if s == UNMATCHED]
    assert len(unmatched) == 2
    for c in unmatched:
        assert fit.loadings[c][np.argmax(np.abs(fit.loadings[c]))] > 0
    assert (np.diff(fit.explained_variance) <= 0).all()  # still in explained-variance order


def _flipping_pc2() -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Two weekly windows whose raw sklearn PC2 flips sign between them (sklearn makes the
    largest entry positive): u2 = (0.7, -0.75, 0, 0, 0.05, ...), u2' = (0.75, -0.7, 0, 0,
    -0.05, ...): a kink between b0 and b1, no single shape."""
    u2 = unit([0.7, -0.75, 0, 0, 0.05, 0, 0, 0])
    u2b = unit([0.75, -0.7, 0, 0, -0.05, 0, 0, 0])
    rows = rank2_rows(T0, 21, LEVEL, u2, seed=21) + rank2_rows(T0 + 7 * DAY, 21, LEVEL, u2b, seed=22)
    return frame(rows), u2, u2b


def test_a_fit_does_not_depend_on_the_fits_before_it():
    """Formerly PC2 was aligned with the previous fit, so a run starting at week 2 stored the
    opposite sign from a run starting at week 1. Now each fit is a function of its window."""
    snaps, u2, u2b = _flipping_pc2()
    x = snaps.select(BUCKETS).to_numpy()
    raw1 = PCA(2, svd_solver="full").fit(x[:21]).components_[1]
    raw2 = PCA(2, svd_solver="full").fit(x[21:]).components_[1]
    assert raw1 @ raw2 < 0  # precondition: the raw PC2 flips between the two windows
    f1, f2 = fit_walk_forward(snaps, [T0 + 7 * DAY, T0 + 14 * DAY], window_days=7)
    (alone,) = fit_walk_forward(snaps, [T0 + 14 * DAY], window_days=7)
    assert alone.loadings == pytest.approx(f2.loadings, abs=0)
    # both kinks are voted the same way, so the similar components agree
    assert f1.loadings[1] == pytest.approx(u2, abs=1e-9)
    assert f2.loadings[1] == pytest.approx(u2b, abs=1e-9)
    assert f1.loadings[1] @ f2.loadings[1] > 0


# --- the look-ahead check ----------------------------------------------------------------


def _honest(snaps: pl.DataFrame) -> tuple[list[Fit], pl.DataFrame]:
    """Weekly fits on 10-day windows and their walk-forward scores."""
    fits = fit_walk_forward(snaps, fit_times(T0, T0 + 20 * DAY, 7), window_days=10)
    return fits, score(snaps, fits)


def test_the_lookahead_check_passes_honest_walk_forward_scores():
    snaps = _random_snapshots(3)
    _, honest = _honest(snaps)
    checked = verify_no_lookahead(honest, snaps, window_days=10, sample=15)
    assert checked.columns == ["venue", "symbol", "contract", "ts", "fit_id", "ok", "reason"]
    assert checked.height == 15 and checked["ok"].all()
    assert checked["reason"].null_count() == 15


def test_the_lookahead_check_fails_a_fit_that_saw_the_scored_rows():
    # each fit also saw the two days after its stated fitted_at: the rows it then scores
    snaps = _random_snapshots(3)
    roll = snaps.filter(pl.col("kind") == "roll")
    fits, _ = _honest(snaps)
    leaky = [
        replace(f2, fitted_at=f.fitted_at)
        for f in fits
        if (
            f2 := fit_one(
                roll, f.venue, f.symbol, f.fitted_at + 2 * DAY, window_days=10, n_components=2, contract=f.contract
            )
        )
    ]
    checked = verify_no_lookahead(score(snaps, leaky), snaps, window_days=10, sample=15)
    assert checked.height == 15 and not checked["ok"].any()
    assert set(checked["reason"]) == {"scores differ from a fit on the snapshots before the row"}


def test_the_lookahead_check_fails_a_score_whose_own_snapshot_was_in_the_window():
    # one row, scored by a fit whose window ends just after it (so it contains the row)
    snaps = _random_snapshots(4)
    roll = snaps.filter((pl.col("kind") == "roll") & (pl.col("venue") == "binance") & (pl.col("symbol") == "BTC"))
    row = roll.filter(pl.col("ts") > T0 + 5 * DAY).row(0, named=True)
    saw_it = fit_one(
        roll, "binance", "BTC", row["ts"] + timedelta(minutes=1), window_days=10, n_components=2, contract="usdt"
    )
    claims_before = replace(saw_it, fitted_at=row["ts"] - timedelta(hours=1))
    leaky = score(roll.filter(pl.col("ts") == row["ts"]), [claims_before])
    (checked,) = verify_no_lookahead(leaky, snaps, window_days=10).iter_rows(named=True)
    assert (checked["ok"], checked["reason"]) == (False, "scores differ from a fit on the snapshots before the row")
    # the same fit stated honestly (made after the row) fails on its time
    late = leaky.with_columns(fitted_at=pl.lit(row["ts"] + timedelta(minutes=1), dtype=pl.Datetime("ms")))
    (checked,) = verify_no_lookahead(late, snaps, window_days=10).iter_rows(named=True)
    assert (checked["ok"], checked["reason"]) == (False, "fit not made before the row")


def test_the_lookahead_check_fails_a_fit_that_used_rows_known_only_after_it():
    # rows become known 2 days after their ts; fits that ignore as_of used the rows of the
    # last 2 days before fitted_at, not yet known then. The check refits without them.
    rng = np.random.default_rng(5)
    x = 0.1 + rng.normal(size=(90, 8)) * 0.02
    snaps = frame([snap(T0 - 10 * DAY + i * H8, x[i]) for i in range(90)])
    snaps = snaps.with_columns(as_of=pl.col("ts") + pl.duration(days=2))
    _, honest = _honest(snaps)
    assert verify_no_lookahead(honest, snaps, window_days=10, sample=10)["ok"].all()
    _, blind = _honest(snaps.drop("as_of"))
    checked = verify_no_lookahead(blind, snaps, window_days=10, sample=10)
    assert not checked["ok"].any()


def test_the_lookahead_check_sample_is_deterministic_and_spread():
    snaps = _random_snapshots(6)
    _, honest = _honest(snaps)
    ordered = honest.sort(["venue", "symbol", "contract", "kind", "ts"]).with_row_index("i")
    n = 8

    def positions(seed: int) -> list[int]:
        checked = verify_no_lookahead(honest, snaps, window_days=10, sample=n, seed=seed)
        return checked.join(ordered, on=["venue", "symbol", "contract", "ts", "fit_id"], how="left")["i"].to_list()

    first = positions(0)
    assert first == positions(0)
    assert positions(1) != first
    # one row from each eighth of the scores in key order
    h = ordered.height
    assert [p * n // h for p in first] == list(range(n))
    # fewer scored rows than the sample: every row once
    few = honest.head(3)
    assert verify_no_lookahead(few, snaps, window_days=10, sample=12).height == 3


def test_the_lookahead_check_of_no_scores_is_empty():
    snaps = _random_snapshots(7)
    _, honest = _honest(snaps)
    checked = verify_no_lookahead(honest.head(0), snaps, window_days=10)
    assert checked.height == 0
    assert checked.columns == ["venue", "symbol", "contract", "ts", "fit_id", "ok", "reason"]


def test_the_lookahead_check_fails_a_scored_row_missing_from_the_snapshots():
    snaps = _random_snapshots(8)
    _, honest = _honest(snaps)
    row = honest.head(1)
    others = snaps.join(row.select("venue", "symbol", "kind", "ts"), on=["venue", "symbol", "kind", "ts"], how="anti")
    (checked,) = verify_no_lookahead(row, others, window_days=10).iter_rows(named=True)
    assert (checked["ok"], checked["reason"]) == (False, "scored row not found among the snapshots")


# --- the fits table ----------------------------------------------------------------------

FITS_COLUMNS = {
    "fit_id": pl.String,
    "venue": pl.String,
    "symbol": pl.String,
    "contract": pl.String,
    "fitted_at": pl.Datetime("ms"),
    "window_start": pl.Datetime("ms"),
    "window_end": pl.Datetime("ms"),
    "n_obs": pl.Int32,
    "loadings": pl.List(pl.List(pl.Float64)),
    "explained_variance": pl.List(pl.Float64),
    "mean": pl.List(pl.Float64),
    "reference": pl.List(pl.List(pl.Float64)),
    "shapes": pl.List(pl.String),
}


def test_fits_frame_schema_and_content():
    snaps, _, _ = _flipping_pc2()
    fits = fit_walk_forward(snaps, [T0 + 7 * DAY, T0 + 14 * DAY], window_days=7)
    table = fits_frame(fits)
    assert dict(table.schema) == FITS_COLUMNS
    assert table.height == 2
    assert table["fit_id"].n_unique() == 2
    assert table["fit_id"].to_list() == ["binance:BTC:usdt:2024-01-17T00:00Z", "binance:BTC:usdt:2024-01-24T00:00Z"]
    assert table["fitted_at"].to_list() == [T0 + 7 * DAY, T0 + 14 * DAY]
    assert table["window_end"].to_list() == table["fitted_at"].to_list()
    assert table["window_start"].to_list() == [T0, T0 + 7 * DAY]
    assert table["n_obs"].to_list() == [21, 21]
    for row, fit in zip(table.iter_rows(named=True), fits):
        assert len(row["loadings"]) == 2 and all(len(c) == 8 for c in row["loadings"])
        assert np.array(row["loadings"]) == pytest.approx(fit.loadings, abs=0)
        ev = row["explained_variance"]
        assert len(ev) == 2 and 1 >= ev[0] >= ev[1] >= 0 and sum(ev) <= 1 + 1e-12
        assert len(row["mean"]) == 8


def test_fits_frame_stores_the_reference_basis_and_the_matched_shapes():
    rows = rank2_rows(T0, 21, -SLOPE, -LEVEL, seed=13)
    table = fits_frame(fit_walk_forward(frame(rows), [T0 + 7 * DAY], window_days=7))
    (row,) = table.iter_rows(named=True)
    assert np.array(row["reference"]) == pytest.approx(REFERENCE, abs=0)
    assert row["shapes"] == ["slope", "level"]


def test_fits_rebuilt_from_the_table_score_exactly_like_the_originals():
    snaps = _random_snapshots(9)
    fits = fit_walk_forward(snaps, fit_times(T0, T0 + 20 * DAY, 7), window_days=10)
    rebuilt = fits_from_frame(fits_frame(fits))
    assert [f.fit_id for f in rebuilt] == [f.fit_id for f in fits]
    for a, b in zip(rebuilt, fits):
        assert (a.venue, a.symbol, a.contract, a.fitted_at, a.window_start, a.n_obs, a.shapes) == (
            b.venue,
            b.symbol,
            b.contract,
            b.fitted_at,
            b.window_start,
            b.n_obs,
            b.shapes,
        )
        for field in ("loadings", "explained_variance", "mean"):
            assert np.array_equal(getattr(a, field), getattr(b, field))
    assert_frame_equal(score(snaps, rebuilt), score(snaps, fits), check_exact=True)
    assert fits_from_frame(fits_frame([])) == []


def test_fits_frame_of_no_fits_is_empty_with_the_same_schema():
    table = fits_frame([])
    assert table.height == 0
    assert dict(table.schema) == FITS_COLUMNS


# --- walk-forward property and determinism -----------------------------------------------


SERIES = (("binance", "BTC", "usdt"), ("okx", "BTC", "usdt"), ("binance", "ETH", "usdt"))


def _random_snapshots(seed: int, series=SERIES) -> pl.DataFrame:
    rng = random.Random(seed)
    rows = []
    start = T0 - 20 * DAY
    for venue, symbol, contract in series:
        t = start + timedelta(minutes=rng.randrange(0, 600))
        level = 0.1
        while t < T0 + 25 * DAY:
            level += rng.gauss(0, 0.02)
            buckets = [level + rng.gauss(0, 0.01) * (k + 1) for k in range(8)]
            kind = "roll" if rng.random() < 0.7 else "intraday"
            rows.append(snap(t, buckets, kind=kind, venue=venue, symbol=symbol, contract=contract))
            # mostly a few hours apart, sometimes a multi-day hole
            step = rng.choices([1, 60, 240, 480, 3 * 1440], weights=[5, 20, 30, 44, 1])[0]
            t += timedelta(minutes=step)
    return frame(rows)


@pytest.mark.parametrize("seed", range(6))
def test_no_score_uses_a_fit_at_or_after_its_snapshot(seed):
    rng = random.Random(1000 + seed)
    snaps = _random_snapshots(seed)
    refit, window = rng.choice([1, 3, 7]), rng.choice([5, 10, 30])
    start, end = T0 - 5 * DAY, T0 + 25 * DAY
    fits = fit_walk_forward(snaps, fit_times(start, end, refit), window_days=window)
    assert fits  # the property must have something to bite on
    out = score(snaps, fits)
    assert out.height > 0
    assert (out["fitted_at"] < out["ts"]).all()
    # ... and it is the latest such fit of that series
    by_key: dict[tuple[str, str], list[datetime]] = {}
    for f in fits:
        by_key.setdefault((f.venue, f.symbol), []).append(f.fitted_at)
    for row in out.iter_rows(named=True):
        earlier = [t for t in by_key[(row["venue"], row["symbol"])] if t < row["ts"]]
        assert row["fitted_at"] == max(earlier)
    # every snapshot with an earlier fit is scored, none without
    expected = sum(
        any(t < row["ts"] for t in by_key.get((row["venue"], row["symbol"]), [])) for row in snaps.iter_rows(named=True)
    )
    assert out.height == expected
    # each fit saw only roll snapshots in [fitted_at - window, fitted_at)
    roll = snaps.filter(pl.col("kind") == "roll")
    for f in fits:
        seen = roll.filter(
            (pl.col("venue") == f.venue)
            & (pl.col("symbol") == f.symbol)
            & (pl.col("ts") >= f.fitted_at - timedelta(days=window))
            & (pl.col("ts") < f.fitted_at)
        )
        assert f.n_obs == seen.height >= 20


def _run(snaps: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    fits = fit_walk_forward(snaps, fit_times(T0 - 5 * DAY, T0 + 25 * DAY, 7), window_days=10)
    return fits_frame(fits), score(snaps, fits)


def test_same_input_gives_identical_output():
    snaps = _random_snapshots(42)
    fits_a, scores_a = _run(snaps)
    fits_b, scores_b = _run(snaps.clone())
    assert fits_a.height > 0 and scores_a.height > 0
    assert_frame_equal(fits_a, fits_b, check_exact=True)
    assert_frame_equal(scores_a, scores_b, check_exact=True)


def test_input_row_order_does_not_change_the_output():
    snaps = _random_snapshots(43)
    fits_a, scores_a = _run(snaps)
    fits_b, scores_b = _run(snaps.sample(fraction=1.0, shuffle=True, seed=5))
    assert_frame_equal(fits_a, fits_b, check_exact=True)
    assert_frame_equal(scores_a, scores_b, check_exact=True)


def test_a_fit_older_than_max_age_is_not_used():
    # a fit at T0+7d, no refit possible afterwards: snapshots 53 days later go unscored
    u2 = unit([1, -1, 0, 0, 0, 0, 0, 0])
    snaps = frame(rank2_rows(T0 + 7 * DAY - 21 * H8, 21, LEVEL, u2, seed=6) + [snap(T0 + 60 * DAY, [0.1] * 8)])
    fits = fit_walk_forward(snaps, [T0 + 7 * DAY + i * 7 * DAY for i in range(8)], window_days=7)
    assert [f.fitted_at for f in fits] == [T0 + 7 * DAY]
    assert score(snaps, fits).filter(pl.col("ts") == T0 + 60 * DAY).height == 1
    assert score(snaps, fits, max_age=timedelta(days=7)).filter(pl.col("ts") == T0 + 60 * DAY).height == 0


# --- contracts: a series is (venue, symbol, contract) ------------------------------------

CONTRACTS = (("binance", "BTC", "inverse"), ("binance", "BTC", "usdt"), ("okx", "BTC", "usdt"))


def test_two_contracts_of_one_venue_and_coin_get_their_own_fits_and_scores():
    snaps = _random_snapshots(11, series=CONTRACTS)
    times = fit_times(T0, T0 + 20 * DAY, 7)
    fits, scores = _honest(snaps)
    assert [f.fit_id for f in fits if f.fitted_at == times[1]] == [
        f"binance:BTC:inverse:{times[1]:%Y-%m-%dT%H:%MZ}",
        f"binance:BTC:usdt:{times[1]:%Y-%m-%dT%H:%MZ}",
        f"okx:BTC:usdt:{times[1]:%Y-%m-%dT%H:%MZ}",
    ]
    for venue, symbol, contract in CONTRACTS:
        mine = (pl.col("venue") == venue) & (pl.col("symbol") == symbol) & (pl.col("contract") == contract)
        own_fits, own_scores = _honest(snaps.filter(mine))
        assert [f.fit_id for f in own_fits] == [f.fit_id for f in fits if f.contract == contract and f.venue == venue]
        assert all(f.fit_id.split(":")[2] == contract for f in own_fits)
        assert_frame_equal(scores.filter(mine), own_scores)
        assert (own_scores["fit_id"].str.split(":").list.get(2) == contract).all()
    table = fits_frame(fits)
    assert table.select("venue", "contract").unique().sort("venue", "contract").rows() == [
        ("binance", "inverse"),
        ("binance", "usdt"),
        ("okx", "usdt"),
    ]
    assert [f.contract for f in fits_from_frame(table)] == [f.contract for f in fits]
    checked = verify_no_lookahead(scores, snaps, window_days=10, sample=15)
    assert checked.height == 15 and checked["ok"].all()
    assert set(checked["contract"]) == {"inverse", "usdt"}


def test_a_fit_of_the_other_contract_is_never_used():
    usdt = make_fit(T0, [0.0] * 8, [[1, 0, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0]], contract="usdt")
    inverse = make_fit(T0 + DAY, [0.0] * 8, [[0, 0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 0, 1]], contract="inverse")
    x = [1, 2, 3, 4, 5, 6, 7, 8]
    snaps = frame([snap(T0 + 2 * DAY, x, contract="usdt"), snap(T0 + 2 * DAY, x, contract="inverse")])
    out = score(snaps, [usdt, inverse])
    assert out.select("contract", "fit_id", "pc1").rows() == [
        ("inverse", inverse.fit_id, 7.0),
        ("usdt", usdt.fit_id, 1.0),
    ]
    assert inverse.fit_id == "binance:BTC:inverse:2024-01-11T00:00Z"
    # a series with no fit of its own is left unscored
    assert score(snaps, [usdt])["contract"].to_list() == ["usdt"]


def test_snapshots_without_a_contract_column_are_one_series_with_a_null_contract():
    snaps = _random_snapshots(12, series=(("binance", "BTC", "usdt"),))
    fits, scores = _honest(snaps)
    plain_fits, plain_scores = _honest(snaps.drop("contract"))
    assert [f.contract for f in plain_fits] == [None] * len(fits)
    assert [f.fit_id for f in plain_fits] == [f.fit_id.replace(":usdt:", "::") for f in fits]
    assert plain_scores.columns == scores.columns
    assert plain_scores["contract"].null_count() == plain_scores.height
    assert_frame_equal(plain_scores.drop("contract", "fit_id"), scores.drop("contract", "fit_id"))
    checked = verify_no_lookahead(plain_scores, snaps.drop("contract"), window_days=10, sample=10)
    assert checked["ok"].all() and checked["contract"].null_count() == 10
    table = fits_frame(plain_fits)
    assert table["contract"].null_count() == table.height
    # rows stored before the contract column existed read back as fits without a contract
    assert [f.fit_id for f in fits_from_frame(table.drop("contract"))] == table["fit_id"].to_list()
