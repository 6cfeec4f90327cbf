"""Walk-forward PCA of the strip (DESIGN section 4). numpy/scikit-learn, no Dagster.

Fits are made at fixed instants ``fitted_at`` every ``refit_days`` (aligned to
2020-01-01 00:00 UTC), each on the roll snapshots of one (venue, symbol) with ``ts`` in
``[fitted_at - window_days, fitted_at)``. A snapshot at ``ts`` is scored with the latest
fit whose ``fitted_at`` is strictly before ``ts``: no score ever sees its own or later
data.

Sign convention: PC1's loadings sum to a positive number. Each later component is
oriented to have a positive dot product with the same component of the previous fit of
that (venue, symbol); with no previous fit, its long-end loadings (b4..b7) must outweigh
its short end (b0..b3), so PC2 reads as "slope up".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.decomposition import PCA

from .prints import TS
from .strip import BUCKETS, KEYS, N_BUCKETS

EPOCH = dt.datetime(2020, 1, 1)
DEFAULT_WINDOW_DAYS = 30
DEFAULT_REFIT_DAYS = 7
DEFAULT_COMPONENTS = 2
MIN_OBS = 20

FITS_SCHEMA: dict[str, pl.DataType] = {
    "fit_id": pl.String(),
    "venue": pl.String(),
    "symbol": pl.String(),
    "fitted_at": TS,
    "window_start": TS,
    "window_end": TS,
    "n_obs": pl.Int32(),
    "loadings": pl.List(pl.List(pl.Float64())),
    "explained_variance": pl.List(pl.Float64()),
    "mean": pl.List(pl.Float64()),
}


@dataclass(frozen=True)
class Fit:
    venue: str
    symbol: str
    fitted_at: dt.datetime
    window_start: dt.datetime
    n_obs: int
    loadings: np.ndarray  # components x 8
    explained_variance: np.ndarray  # ratio per component
    mean: np.ndarray  # 8

    @property
    def fit_id(self) -> str:
        return f"{self.venue}:{self.symbol}:{self.fitted_at:%Y-%m-%dT%H:%MZ}"


def lookback_days(window_days: int, refit_days: int) -> int:
    """Days of snapshots before a day that its scores need: one cadence plus one window."""
    return window_days + refit_days


def fit_times(start: dt.datetime, end: dt.datetime, refit_days: int) -> list[dt.datetime]:
    """Fit instants on the ``refit_days`` cadence that can score snapshots in ``[start, end)``.

    That is every cadence instant in ``[start, end)`` plus the last one before ``start``.
    """
    step = dt.timedelta(days=refit_days)
    first = EPOCH + ((start - EPOCH) // step) * step
    if first == start:
        first -= step
    times = []
    t = first
    while t < end:
        times.append(t)
        t += step
    return times


def _orient(loadings: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    out = loadings.copy()
    if out[0].sum() < 0:
        out[0] = -out[0]
    tilt = np.where(np.arange(N_BUCKETS) >= N_BUCKETS // 2, 1.0, -1.0)
    for c in range(1, out.shape[0]):
        if previous is not None and c < previous.shape[0]:
            flip = float(out[c] @ previous[c]) < 0
        else:
            flip = float(out[c] @ tilt) < 0
        if flip:
            out[c] = -out[c]
    return out


def fit_one(
    roll: pl.DataFrame,
    venue: str,
    symbol: str,
    fitted_at: dt.datetime,
    *,
    window_days: int,
    n_components: int,
    previous: np.ndarray | None,
) -> Fit | None:
    """Fit on ``roll`` rows of (venue, symbol) in the trailing window; None if too few rows."""
    start = fitted_at - dt.timedelta(days=window_days)
    x = (
        roll.filter(
            (pl.col("venue") == venue)
            & (pl.col("symbol") == symbol)
            & (pl.col("ts") >= start)
            & (pl.col("ts") < fitted_at)
        )
        .sort("ts")
        .select(BUCKETS)
        .to_numpy()
    )
    if x.shape[0] < max(MIN_OBS, n_components + 1):
        return None
    model = PCA(n_components=n_components, svd_solver="full").fit(x)
    return Fit(
        venue=venue,
        symbol=symbol,
        fitted_at=fitted_at,
        window_start=start,
        n_obs=x.shape[0],
        loadings=_orient(model.components_, previous),
        explained_variance=model.explained_variance_ratio_.copy(),
        mean=model.mean_.copy(),
    )


def fit_walk_forward(
    snapshots: pl.DataFrame,
    times: list[dt.datetime],
    *,
    window_days: int = DEFAULT_WINDOW_DAYS,
    n_components: int = DEFAULT_COMPONENTS,
    previous: dict[tuple[str, str], np.ndarray] | None = None,
) -> list[Fit]:
    """Fits at ``times`` for every (venue, symbol) in ``snapshots`` (roll rows are used).

    ``previous`` maps (venue, symbol) to the loadings of the fit before ``times[0]``, so that
    signs stay aligned across runs.
    """
    roll = snapshots.filter(pl.col("kind") == "roll")
    last = dict(previous or {})
    fits = []
    for venue, symbol in roll.select(KEYS).unique().sort(KEYS).iter_rows():
        for fitted_at in sorted(times):
            fit = fit_one(
                roll,
                venue,
                symbol,
                fitted_at,
                window_days=window_days,
                n_components=n_components,
                previous=last.get((venue, symbol)),
            )
            if fit is not None:
                fits.append(fit)
                last[(venue, symbol)] = fit.loadings
    return fits


def fits_frame(fits: list[Fit]) -> pl.DataFrame:
    """The ``pca_fits`` table rows for ``fits``."""
    return pl.DataFrame(
        {
            "fit_id": [f.fit_id for f in fits],
            "venue": [f.venue for f in fits],
            "symbol": [f.symbol for f in fits],
            "fitted_at": [f.fitted_at for f in fits],
            "window_start": [f.window_start for f in fits],
            "window_end": [f.fitted_at for f in fits],
            "n_obs": [f.n_obs for f in fits],
            "loadings": [f.loadings.tolist() for f in fits],
            "explained_variance": [f.explained_variance.tolist() for f in fits],
            "mean": [f.mean.tolist() for f in fits],
        },
        schema=FITS_SCHEMA,
    )


def score(
    snapshots: pl.DataFrame,
    fits: list[Fit],
    n_components: int = DEFAULT_COMPONENTS,
    max_age: dt.timedelta | None = None,
) -> pl.DataFrame:
    """Scores ``pc1..pcN`` of every snapshot with the latest fit strictly before its ts.

    With ``max_age`` (the assets pass one refit cadence), a fit older than that is not used:
    when a refit was impossible (too few snapshots) the snapshots go unscored rather than
    being scored with a stale fit. Rows with no usable fit are dropped. Columns: venue,
    symbol, kind, ts, funding_time, fit_id, fitted_at, pc1..pcN.
    """
    pcs = [f"pc{c + 1}" for c in range(n_components)]
    if not fits:
        return _empty_scores(pcs)
    table = pl.DataFrame(
        {
            "venue": [f.venue for f in fits],
            "symbol": [f.symbol for f in fits],
            "fitted_at": [f.fitted_at for f in fits],
            "fit_id": [f.fit_id for f in fits],
        },
        schema={"venue": pl.String, "symbol": pl.String, "fitted_at": TS, "fit_id": pl.String},
    ).sort("fitted_at")
    by_id = {f.fit_id: f for f in fits}
    rows = (
        snapshots.sort("ts")
        .join_asof(
            table,
            left_on="ts",
            right_on="fitted_at",
            by=KEYS,
            strategy="backward",
            allow_exact_matches=False,
            tolerance=max_age,
            check_sortedness=False,
        )
        .filter(pl.col("fit_id").is_not_null())
    )
    parts = []
    for fit_id, group in rows.group_by("fit_id", maintain_order=True):
        fit = by_id[fit_id[0]]
        values = (group.select(BUCKETS).to_numpy() - fit.mean) @ fit.loadings[:n_components].T
        parts.append(group.with_columns(pl.Series(p, values[:, c]) for c, p in enumerate(pcs)))
    if not parts:
        return _empty_scores(pcs)
    return (
        pl.concat(parts)
        .select(*KEYS, "kind", "ts", "funding_time", "fit_id", "fitted_at", *pcs)
        .sort([*KEYS, "kind", "ts"])
    )


def _empty_scores(pcs: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "venue": pl.String,
            "symbol": pl.String,
            "kind": pl.String,
            "ts": TS,
            "funding_time": TS,
            "fit_id": pl.String,
            "fitted_at": TS,
            **{p: pl.Float64 for p in pcs},
        }
    )
