"""Properties of the walk-forward PCA (DESIGN section 4) on simulated history and random bases.

- a fit depends on its own window only: every walk-forward that makes it makes it
  bit for bit, wherever the walk-forward starts;
- orientation is a function of the spanned directions: solver signs and component order
  do not change it;
- a dominant slope is matched to ``slope`` even as PC1;
- consecutive fits whose component is decisively the same shape point the same way, and
  sign disagreements between similar consecutive components stay rare;
- honest walk-forward scores pass the look-ahead check, leaky ones fail it.

The history is the simulator's (``funding_assets.sim.model``, seed 7) settled funding of
BTC and ETH on binance and okx over 2022-2023, through the strip engine.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from functools import cache

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funding_assets.pca import (
    DECISIVE,
    REFERENCE,
    REFERENCE_SHAPES,
    UNMATCHED,
    Fit,
    fit_one,
    fit_times,
    fit_walk_forward,
    orient,
    score,
    verify_no_lookahead,
)
from funding_assets.sim.model import FundingModel
from funding_assets.strip import BUCKETS, KEYS, roll_snapshots

START, END = datetime(2022, 1, 1), datetime(2024, 1, 1)
DAY = timedelta(days=1)
WINDOW_DAYS, REFIT_DAYS = 30, 7
PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def history() -> pl.DataFrame:
    """Roll snapshots of BTC and ETH on binance and okx, 2022-2023 (plus one window before)."""
    model = FundingModel(seed=7)
    prints = pl.concat(
        model.settlements(venue, coin, START - timedelta(days=WINDOW_DAYS + 5), END)
        for venue in ("binance", "okx")
        for coin in ("BTC", "ETH")
    )
    return roll_snapshots(prints)


@cache
def history_fits(n_components: int) -> tuple[Fit, ...]:
    times = fit_times(START, END, REFIT_DAYS)
    return tuple(fit_walk_forward(history(), times, window_days=WINDOW_DAYS, n_components=n_components))


def same_fit(a: Fit, b: Fit) -> bool:
    return (
        a.fit_id == b.fit_id
        and a.n_obs == b.n_obs
        and a.shapes == b.shapes
        and all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("loadings", "explained_variance", "mean"))
    )


# --- history independence ----------------------------------------------------------------


@settings(PROPERTY, max_examples=15)
@given(
    offset_a=st.integers(0, 100),
    offset_b=st.integers(0, 100),
    refit=st.sampled_from([1, 3, 7]),
    n_components=st.integers(1, 3),
)
def test_a_fit_is_identical_whichever_date_the_walk_forward_started(offset_a, offset_b, refit, n_components):
    snaps = history().filter((pl.col("venue") == "binance") & (pl.col("symbol") == "ETH"))
    end = START + 120 * DAY

    def run(offset: int) -> dict[str, Fit]:
        times = fit_times(START + offset * DAY, end, refit)
        fits = fit_walk_forward(snaps, times, window_days=WINDOW_DAYS, n_components=n_components)
        return {f.fit_id: f for f in fits}

    early, late = run(min(offset_a, offset_b)), run(max(offset_a, offset_b))
    assert late and late.keys() <= early.keys()
    for fit_id, f in late.items():
        assert same_fit(f, early[fit_id])
    # ... and equal to the fit made from its own window's rows alone
    for f in (min(late.values(), key=lambda f: f.fitted_at), max(late.values(), key=lambda f: f.fitted_at)):
        alone = snaps.filter((pl.col("ts") >= f.window_start) & (pl.col("ts") < f.fitted_at))
        own = fit_one(
            alone,
            f.venue,
            f.symbol,
            f.fitted_at,
            window_days=WINDOW_DAYS,
            n_components=n_components,
            contract=f.contract,
        )
        assert own is not None and same_fit(own, f)


# --- orientation ---------------------------------------------------------------------------


@st.composite
def loadings(draw) -> np.ndarray:
    """1..6 orthonormal rows over 8 buckets, from pure shapes (noise 0) to arbitrary (noise 3)."""
    n = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    noise = draw(st.sampled_from([0.0, 0.05, 0.3, 1.0, 3.0]))
    base = np.zeros((n, 8))
    shapes = rng.permutation(3)[: min(n, 3)]
    base[: len(shapes)] = REFERENCE[shapes] * rng.choice([-1, 1], size=(len(shapes), 1))
    q, _ = np.linalg.qr((base + noise * rng.normal(size=(n, 8))).T)
    return q.T


@PROPERTY
@given(raw=loadings(), data=st.data())
def test_orientation_ignores_solver_signs_and_component_order(raw, data):
    oriented, shapes = orient(raw)
    n = raw.shape[0]
    perm = np.array(data.draw(st.permutations(range(n))))
    signs = np.array(data.draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=n, max_size=n)))
    again, again_shapes = orient(raw[perm] * signs[:, None])
    assert np.array_equal(again, oriented[perm])
    assert again_shapes == tuple(shapes[i] for i in perm)


@PROPERTY
@given(raw=loadings())
def test_orientation_only_flips_signs_and_matches_each_shape_once(raw):
    oriented, shapes = orient(raw)
    assert all(np.array_equal(o, r) or np.array_equal(o, -r) for o, r in zip(oriented, raw))
    matched = [s for s in shapes if s != UNMATCHED]
    assert len(matched) == len(set(matched)) == min(len(shapes), 3)
    for c, s in enumerate(shapes):
        if s == UNMATCHED:
            assert oriented[c][np.argmax(np.abs(oriented[c]))] > 0
            continue
        dots = oriented[c] @ REFERENCE.T
        if abs(dots).max() > DECISIVE:  # a decisive shape is the matched one, positive
            assert REFERENCE_SHAPES[int(np.argmax(abs(dots)))] == s
            assert dots[REFERENCE_SHAPES.index(s)] > 0


@PROPERTY
@given(
    seed=st.integers(0, 2**32 - 1),
    ratio=st.floats(1.5, 20),
    level_first=st.booleans(),
    signs=st.tuples(st.sampled_from([-1, 1]), st.sampled_from([-1, 1])),
)
def test_the_larger_of_level_and_slope_variance_is_pc1_with_a_positive_dot(seed, ratio, level_first, signs):
    # factor scores made exactly uncorrelated in the sample, so the axes are the shapes
    rng = np.random.default_rng(seed)
    t = rng.normal(size=(60, 2))
    t -= t.mean(axis=0)
    t[:, 1] -= (t[:, 1] @ t[:, 0]) / (t[:, 0] @ t[:, 0]) * t[:, 0]
    t *= np.array([0.05 * ratio, 0.05]) / t.std(axis=0)
    order = ("level", "slope") if level_first else ("slope", "level")
    big, small = (REFERENCE[REFERENCE_SHAPES.index(s)] for s in order)
    x = 0.1 + np.outer(t[:, 0], signs[0] * big) + np.outer(t[:, 1], signs[1] * small)
    snaps = pl.DataFrame(
        {
            "venue": "binance",
            "symbol": "BTC",
            "kind": "roll",
            "ts": [START + i * timedelta(hours=8) for i in range(60)],
            **{b: x[:, k] for k, b in enumerate(BUCKETS)},
        }
    )
    (fit,) = fit_walk_forward(snaps, [START + 20 * DAY], window_days=20)
    assert fit.shapes == order
    for c, shape in enumerate(order):
        assert fit.loadings[c] @ REFERENCE[REFERENCE_SHAPES.index(shape)] > 1 - 1e-9


# --- consecutive fits on a long history ------------------------------------------------------


def consecutive_pairs(fits: tuple[Fit, ...]) -> list[tuple[Fit, Fit, int, float]]:
    """(earlier, later, component, dot) for consecutive fits of a series with |dot| > 0.5."""
    pairs = []
    for a, b in zip(fits, fits[1:]):
        if (a.venue, a.symbol) != (b.venue, b.symbol):
            continue
        for c in range(a.loadings.shape[0]):
            dot = float(a.loadings[c] @ b.loadings[c])
            if abs(dot) > 0.5:
                pairs.append((a, b, c, dot))
    return pairs


def decisive_shape(fit: Fit, c: int) -> str | None:
    dots = fit.loadings[c] @ REFERENCE.T
    return REFERENCE_SHAPES[int(np.argmax(abs(dots)))] if abs(dots).max() > DECISIVE else None


def test_consecutive_fits_of_the_same_shape_point_the_same_way():
    """Two years, weekly 30-day fits, 2 and 3 components. Measured (seed 7): 2 components,
    604 pairs with |dot| > 0.5 and 24 opposite; 3 components, 879 and 32. Every opposite pair
    is a component that is not decisively the same shape in both fits (15 and 16 of them are
    decisively different shapes: a slope-like PC2 one week, a front bump the next); matching
    each fit's components to the shape with the larger |dot| alone gives 30 and 40."""
    for n_components in (2, 3):
        fits = history_fits(n_components)
        pairs = consecutive_pairs(fits)
        opposite = [(a, b, c) for a, b, c, dot in pairs if dot < 0]
        same = [
            (a, b, c) for a, b, c, _ in pairs if decisive_shape(a, c) and decisive_shape(a, c) == decisive_shape(b, c)
        ]
        print(
            f"{n_components} components: {len(fits)} fits, {len(pairs)} consecutive pairs with |dot| > 0.5, "
            f"{len(opposite)} opposite; {len(same)} pairs decisively the same shape"
        )
        assert len(pairs) >= 500 and len(same) >= 0.8 * len(pairs)
        for a, b, c in opposite:
            assert not (decisive_shape(a, c) and decisive_shape(a, c) == decisive_shape(b, c)), (a.fit_id, c)
        assert len(opposite) <= 0.045 * len(pairs)


def test_no_fit_of_the_history_is_degenerate():
    for n_components in (2, 3):
        for f in history_fits(n_components):
            assert f.n_obs >= 20 and np.isfinite(f.explained_variance).all()
            assert np.allclose(f.loadings @ f.loadings.T, np.eye(n_components), atol=1e-9)


# --- the look-ahead check -------------------------------------------------------------------


def early_history() -> pl.DataFrame:
    return history().filter(pl.col("ts") < START + 120 * DAY)


@cache
def lookahead_scores(shift_hours: int) -> pl.DataFrame:
    """Walk-forward scores whose fits were computed ``shift_hours`` after their stated
    ``fitted_at`` (0: honest). A shifted fit's window holds the snapshots it then scores in
    its first ``shift_hours``, and every score after that used data later than the fit."""
    snaps = early_history()
    roll = snaps.filter(pl.col("kind") == "roll")
    fits = []
    for (venue, symbol, contract), _ in roll.group_by(KEYS):
        for fitted_at in fit_times(START, START + 120 * DAY, REFIT_DAYS):
            made = fitted_at + timedelta(hours=shift_hours)
            f = fit_one(roll, venue, symbol, made, window_days=WINDOW_DAYS, n_components=2, contract=contract)
            if f is not None:
                fits.append(replace(f, fitted_at=fitted_at))
    return score(snaps, fits, max_age=timedelta(days=REFIT_DAYS))


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), shift_hours=st.sampled_from([1, 8, 24, 72]))
def test_honest_scores_pass_the_lookahead_check_and_leaky_ones_fail(seed, shift_hours):
    snaps = early_history()
    honest = verify_no_lookahead(lookahead_scores(0), snaps, window_days=WINDOW_DAYS, sample=6, seed=seed)
    assert honest.height == 6 and honest["ok"].all()
    scores = lookahead_scores(shift_hours)
    leaky = verify_no_lookahead(scores, snaps, window_days=WINDOW_DAYS, sample=12, seed=seed)
    assert leaky.height == 12 and not leaky["ok"].all()
    # a row passes only where the shift changed no score by more than the check's tolerance
    # (flat funding: the rows entering and leaving the window are alike)
    key = [*KEYS, "ts"]
    passed = leaky.filter("ok").join(scores, on=key).join(lookahead_scores(0), on=key, suffix="_honest")
    for pc in ("pc1", "pc2"):
        assert np.allclose(passed[pc], passed[f"{pc}_honest"], rtol=0, atol=1e-9)


@settings(PROPERTY, max_examples=6)
@given(
    seed=st.integers(0, 2**32 - 1),
    refit=st.sampled_from([1, 7]),
    n_components=st.integers(1, 3),
    late_share=st.sampled_from([0.0, 0.2, 0.9]),
)
def test_every_walk_forward_fit_is_fit_one_of_its_window_whatever_the_row_order(seed, refit, n_components, late_share):
    """The walk-forward slices each series' sorted rows; every fit it makes (and every one it
    does not) is :func:`fit_one`'s, bit for bit, on rows in any order, some known only late."""
    rng = np.random.default_rng(seed)
    snaps = history().filter(pl.col("ts") < START + 75 * DAY)
    late = rng.random(snaps.height) < late_share
    lag = pl.Series(rng.integers(1, 72, snaps.height) * late, dtype=pl.Int64) * 3_600_000
    snaps = snaps.with_columns(as_of=pl.col("ts") + pl.duration(milliseconds=lag))
    shuffled = snaps[rng.permutation(snaps.height).tolist()]
    times = fit_times(START + 30 * DAY, START + 75 * DAY, refit)
    fits = {f.fit_id: f for f in fit_walk_forward(shuffled, times, window_days=WINDOW_DAYS, n_components=n_components)}
    made = 0
    for (venue, symbol, contract), _ in snaps.partition_by(KEYS, as_dict=True).items():
        for fitted_at in times:
            own = fit_one(
                shuffled,
                venue,
                symbol,
                fitted_at,
                window_days=WINDOW_DAYS,
                n_components=n_components,
                contract=contract,
            )
            if own is None:
                assert not any(
                    f.venue == venue and f.symbol == symbol and f.fitted_at == fitted_at for f in fits.values()
                )
            else:
                made += 1
                assert same_fit(fits[own.fit_id], own)
    assert made == len(fits) > 0
