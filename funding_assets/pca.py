"""Walk-forward PCA of the strip (DESIGN section 4). numpy/scikit-learn, no Dagster.

Units: the inputs ``b0..b7`` are annualised decimals (0.1095 = 10.95 %), b0 the newest 8h
window and b7 the oldest ("long end"); loadings are unit vectors over b0..b7, so a score
``pc_c = (x - mean) . loadings[c]`` is in the same annualised units.

**Fits.** Fits are made at fixed instants ``fitted_at`` every ``refit_days`` (aligned to
2020-01-01 00:00 UTC), each on the roll snapshots of one series (venue, symbol, contract)
with ``ts`` in
``[fitted_at - window_days, fitted_at)`` that were known before the fit: ``as_of <
fitted_at`` where the snapshots carry ``as_of`` (a null ``as_of`` counts as known at
``ts``). A window with fewer than :data:`MIN_OBS` rows, or whose rows are all identical (no
variance, so no principal axes), makes no fit. A fit is a pure function of its window's rows:
the same fit comes out whatever other fit instants, snapshots or stored fits exist, so a
backfill started anywhere and a live refit agree bit for bit.

**Series.** A series is (venue, symbol, contract) (:data:`funding_assets.strip.KEYS`):
``contract`` is the contract type of the coin's perpetual on the venue (``usdt``, ``usdc``,
``inverse``), so Binance's BTCUSDT and BTCUSD_PERP get separate fits and scores. A fit's
``fit_id`` is ``venue:symbol:contract:fitted_at`` (``binance:BTC:usdt:2024-01-01T00:00Z``; an
empty contract part for a null ``contract``). Snapshots without a ``contract`` column are one
series per (venue, symbol) with a null ``contract``; every output carries the column.

**No look-ahead.** A snapshot at ``ts`` is scored with the latest fit of its series
whose ``fitted_at`` is strictly before ``ts`` (optionally no older than ``max_age``). So
every row behind a score has ``ts < fitted_at < `` the scored ``ts`` and, where ``as_of`` is
recorded, ``as_of < fitted_at``: no score depends on its own snapshot or on anything later.
:func:`verify_no_lookahead` re-derives a sample of stored scores from only the snapshots
strictly before each scored row and fails every row whose fit was not made before it or
whose scores differ from that re-derivation, so a score that saw its own or later data (in
any way that changed it by more than 1e-9) fails.

**Sign convention** (a function of each fit's own loadings only, never of a previous fit).
A fixed orthonormal reference basis :data:`REFERENCE` of curve shapes over b0..b7 (the
Gram-Schmidt orthonormalisation of 1, k, k^2 for bucket index k):

- ``level``: all buckets equal;
- ``slope``: long end minus front, a centred linear ramp rising from b0 to b7;
- ``curvature``: a centred quadratic in k, positive at both ends, negative in the middle.

Components are *matched* to shapes greedily by the largest |dot product| over all remaining
(component, shape) pairs, so a window whose PC1 is slope-like and PC2 level-like is matched
(slope, level); components left over once the three shapes are taken (``n_components > 3``)
are ``"unmatched"``. The match is stored per component in ``shapes``. A matched component's
sign is then set by the first of these that applies:

1. its matched shape, when that shape carries more than half the component's energy
   (|dot| > 1/sqrt(2), :data:`DECISIVE`): the dot product with it is made positive. At most
   one shape can be that close to a unit vector, and the greedy match always picks it;
2. otherwise (a component that is no single shape, e.g. a squeeze bump at the front of the
   strip, which lies between ``slope`` and ``curvature``) the three shapes vote with their
   dot products: its dot product with ``level + slope + curvature`` is made positive;
3. if that vote is zero (within 1e-9), its largest-|loading| entry is made positive.

An unmatched component gets rule 3 directly.

Why not the matched shape alone: on two simulated years (BTC and ETH on binance and okx,
weekly 30-day fits, 2 components; 604 consecutive pairs of similar components, |dot| > 0.5)
that rule left 30 pairs pointing opposite ways. Half were components between two shapes
whose larger |dot| changed hands between refits (a bump at b0 has equal and opposite dots
with ``slope`` and ``curvature``, so its sign was decided by rounding); rules 1-3 leave 24,
and two consecutive components that are decisively the same shape always have a positive dot
product. The other 15 are decisively different shapes in the two fits (slope-like one week,
a front bump the next): a change of meaning, which ``shapes`` records, and which no sign rule
that gives a decisive shape a positive dot product can avoid.

Components stay in explained-variance order (pc1 the largest). Every ``pca_fits`` row keeps
the basis (``reference``, shapes x 8) and the matched ``shapes``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.decomposition import PCA

from .prints import TS
from .strip import BUCKETS, KEYS, N_BUCKETS, with_contract

EPOCH = dt.datetime(2020, 1, 1)
DEFAULT_WINDOW_DAYS = 30
DEFAULT_REFIT_DAYS = 7
DEFAULT_COMPONENTS = 2
MIN_OBS = 20


def _reference_basis() -> np.ndarray:
    """Level, slope, curvature over b0..b7: Gram-Schmidt of 1, k, k^2, each of unit length."""
    k = np.arange(N_BUCKETS, dtype=float)
    basis: list[np.ndarray] = []
    for raw in (np.ones(N_BUCKETS), k, k**2):
        v = raw.copy()
        for b in basis:
            v -= (v @ b) * b
        basis.append(v / np.linalg.norm(v))
    return np.array(basis)


#: shapes x 8, orthonormal rows in the order of :data:`REFERENCE_SHAPES`.
REFERENCE = _reference_basis()
REFERENCE_SHAPES = ("level", "slope", "curvature")
UNMATCHED = "unmatched"
#: |dot| above which the matched shape alone decides a component's sign: more than half
#: of the component's energy lies along it.
DECISIVE = 1 / np.sqrt(2)
_VOTE = REFERENCE.sum(axis=0)
_TIE = 1e-9
#: Stand-in for a null ``contract`` in the as-of join of :func:`score`, and its column.
_NO_CONTRACT = "\x00"
_CONTRACT_BY = "__contract_by"

FITS_SCHEMA: dict[str, pl.DataType] = {
    "fit_id": pl.String(),
    "venue": pl.String(),
    "symbol": pl.String(),
    "contract": pl.String(),
    "fitted_at": TS,
    "window_start": TS,
    "window_end": TS,
    "n_obs": pl.Int32(),
    "loadings": pl.List(pl.List(pl.Float64())),
    "explained_variance": pl.List(pl.Float64()),
    "mean": pl.List(pl.Float64()),
    "reference": pl.List(pl.List(pl.Float64())),
    "shapes": pl.List(pl.String()),
}

VERIFY_SCHEMA: dict[str, pl.DataType] = {
    "venue": pl.String(),
    "symbol": pl.String(),
    "contract": pl.String(),
    "ts": TS,
    "fit_id": pl.String(),
    "ok": pl.Boolean(),
    "reason": pl.String(),
}


@dataclass(frozen=True)
class Fit:
    venue: str
    symbol: str
    fitted_at: dt.datetime
    window_start: dt.datetime
    n_obs: int
    loadings: np.ndarray  # components x 8, oriented (see the module docstring)
    explained_variance: np.ndarray  # ratio per component
    mean: np.ndarray  # 8, annualised decimals
    shapes: tuple[str, ...] = ()  # matched reference shape per component
    contract: str | None = None  # contract type of the series (usdt, usdc, inverse), None if unknown

    @property
    def fit_id(self) -> str:
        """``venue:symbol:contract:fitted_at`` (UTC to the minute), the contract empty if None."""
        return f"{self.venue}:{self.symbol}:{self.contract or ''}:{self.fitted_at:%Y-%m-%dT%H:%MZ}"


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


def _match(dots: np.ndarray) -> list[int | None]:
    """Greedy: repeatedly the (component, shape) pair of largest |dot| among those left."""
    match: list[int | None] = [None] * dots.shape[0]
    free_c, free_s = set(range(dots.shape[0])), set(range(dots.shape[1]))
    while free_c and free_s:
        c, r = max(((c, r) for c in free_c for r in free_s), key=lambda cr: (abs(dots[cr]), -cr[0], -cr[1]))
        match[c] = r
        free_c.discard(c)
        free_s.discard(r)
    return match


def orient(loadings: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """``loadings`` (components x 8) with signs set by the module's convention; matched shapes.

    Depends only on the spanned directions: flipping a row's sign or permuting rows of the
    input permutes the output the same way.
    """
    out = np.array(loadings, dtype=float)
    dots = out @ REFERENCE.T
    match = _match(dots)
    for c, r in enumerate(match):
        vote = float(out[c] @ _VOTE)
        if r is not None and abs(dots[c, r]) > DECISIVE:
            sign = dots[c, r]
        elif r is not None and abs(vote) > _TIE:
            sign = vote
        else:
            sign = out[c][np.argmax(np.abs(out[c]))]
        if sign < 0:
            out[c] = -out[c]
    return out, tuple(UNMATCHED if r is None else REFERENCE_SHAPES[r] for r in match)


def _window(
    roll: pl.DataFrame, series: tuple[str, str, str | None], start: dt.datetime, fitted_at: dt.datetime
) -> pl.DataFrame:
    """The rows of ``series`` (venue, symbol, contract; a None contract matches null) with
    ``ts`` in ``[start, fitted_at)`` known before ``fitted_at``, in ts order."""
    same = [pl.col(key).eq_missing(pl.lit(value, pl.String)) for key, value in zip(KEYS, series)]
    return _known(roll.filter(*same, (pl.col("ts") >= start) & (pl.col("ts") < fitted_at)), fitted_at).sort("ts")


def _known(rows: pl.DataFrame, fitted_at: dt.datetime) -> pl.DataFrame:
    """``rows`` known before ``fitted_at``: ``as_of < fitted_at``, a null ``as_of`` (or none) at ``ts``."""
    if "as_of" not in rows.columns:
        return rows
    return rows.filter(pl.col("as_of").is_null() | (pl.col("as_of") < fitted_at))


def fit_one(
    roll: pl.DataFrame,
    venue: str,
    symbol: str,
    fitted_at: dt.datetime,
    *,
    window_days: int,
    n_components: int,
    contract: str | None = None,
) -> Fit | None:
    """The fit of (venue, symbol, contract) at ``fitted_at`` from the ``roll`` rows of its
    window (``window_days`` days). ``contract`` None is the series with a null contract (all
    of ``roll`` when it has no ``contract`` column).

    None if the window holds too few rows or no variance.
    """
    start = fitted_at - dt.timedelta(days=window_days)
    x = _window(with_contract(roll), (venue, symbol, contract), start, fitted_at).select(BUCKETS).to_numpy()
    return _fit(x, venue, symbol, contract, fitted_at, start, n_components)


def _fit(
    x: np.ndarray,
    venue: str,
    symbol: str,
    contract: str | None,
    fitted_at: dt.datetime,
    start: dt.datetime,
    n_components: int,
) -> Fit | None:
    """The fit of a window's buckets ``x`` (rows in ts order), None with too few rows or no variance."""
    if x.shape[0] < max(MIN_OBS, n_components + 1) or not (x != x[0]).any():
        return None
    model = PCA(n_components=n_components, svd_solver="full").fit(x)
    loadings, shapes = orient(model.components_)
    return Fit(
        venue=venue,
        symbol=symbol,
        contract=contract,
        fitted_at=fitted_at,
        window_start=start,
        n_obs=x.shape[0],
        loadings=loadings,
        explained_variance=model.explained_variance_ratio_.copy(),
        mean=model.mean_.copy(),
        shapes=shapes,
    )


def fit_walk_forward(
    snapshots: pl.DataFrame,
    times: list[dt.datetime],
    *,
    window_days: int = DEFAULT_WINDOW_DAYS,
    n_components: int = DEFAULT_COMPONENTS,
) -> list[Fit]:
    """Fits at ``times`` for every series (venue, symbol, contract) in ``snapshots`` (roll
    rows are used).

    Sorted by (venue, symbol, contract, fitted_at), a null contract first. Each fit is
    :func:`fit_one` of its own window.
    """
    roll = with_contract(snapshots).filter(pl.col("kind") == "roll")
    window = dt.timedelta(days=window_days)
    fits = []
    for (venue, symbol, contract), series in sorted(roll.partition_by(KEYS, as_dict=True).items(), key=_series_order):
        # sorted once; each window is then a slice found by binary search (the rows and their
        # order are those of fit_one's filter and sort)
        ordered = series.filter(pl.col("ts").is_not_null()).sort("ts", maintain_order=True)
        ts = ordered["ts"].to_numpy()
        for fitted_at in sorted(times):
            start = fitted_at - window
            lo, hi = np.searchsorted(ts, [np.datetime64(start, "ms"), np.datetime64(fitted_at, "ms")])
            rows = _known(ordered.slice(lo, hi - lo), fitted_at)
            fit = _fit(rows.select(BUCKETS).to_numpy(), venue, symbol, contract, fitted_at, start, n_components)
            if fit is not None:
                fits.append(fit)
    return fits


def _series_order(item: tuple[tuple, pl.DataFrame]) -> tuple:
    """Sort key of a (venue, symbol, contract) partition: a None contract before any other."""
    venue, symbol, contract = item[0]
    return venue, symbol, contract is not None, contract or ""


def fits_frame(fits: list[Fit]) -> pl.DataFrame:
    """The ``pca_fits`` table rows for ``fits``."""
    return pl.DataFrame(
        {
            "fit_id": [f.fit_id for f in fits],
            "venue": [f.venue for f in fits],
            "symbol": [f.symbol for f in fits],
            "contract": [f.contract for f in fits],
            "fitted_at": [f.fitted_at for f in fits],
            "window_start": [f.window_start for f in fits],
            "window_end": [f.fitted_at for f in fits],
            "n_obs": [f.n_obs for f in fits],
            "loadings": [f.loadings.tolist() for f in fits],
            "explained_variance": [f.explained_variance.tolist() for f in fits],
            "mean": [f.mean.tolist() for f in fits],
            "reference": [REFERENCE.tolist() for _ in fits],
            "shapes": [list(f.shapes) for f in fits],
        },
        schema=FITS_SCHEMA,
    )


def fits_from_frame(frame: pl.DataFrame) -> list[Fit]:
    """:class:`Fit` objects from stored ``pca_fits`` rows (the inverse of :func:`fits_frame`;
    rows without a ``contract`` column give fits with a None contract)."""
    return [
        Fit(
            venue=r["venue"],
            symbol=r["symbol"],
            fitted_at=r["fitted_at"],
            window_start=r["window_start"],
            n_obs=r["n_obs"],
            loadings=np.array(r["loadings"], dtype=float),
            explained_variance=np.array(r["explained_variance"], dtype=float),
            mean=np.array(r["mean"], dtype=float),
            shapes=tuple(r["shapes"] or ()),
            contract=r.get("contract"),
        )
        for r in frame.iter_rows(named=True)
    ]


def score(
    snapshots: pl.DataFrame,
    fits: list[Fit],
    n_components: int = DEFAULT_COMPONENTS,
    max_age: dt.timedelta | None = None,
) -> pl.DataFrame:
    """Scores ``pc1..pcN`` of every snapshot with the latest fit strictly before its ts.

    With ``max_age`` (the assets pass one refit cadence), a fit older than that is not used:
    when a refit was impossible (too few snapshots) the snapshots go unscored rather than
    being scored with a stale fit. A snapshot is scored only with a fit of its own series
    (venue, symbol, contract). Rows with no usable fit are dropped. Columns: venue, symbol,
    contract, kind, ts, funding_time, as_of (only when ``snapshots`` has it), fit_id,
    fitted_at, pc1..pcN (annualised decimals, like the buckets).
    """
    snapshots = with_contract(snapshots)
    pcs = [f"pc{c + 1}" for c in range(n_components)]
    columns = [*KEYS, "kind", "ts", "funding_time", *(["as_of"] if "as_of" in snapshots.columns else [])]
    empty = pl.DataFrame(
        schema={
            **{c: snapshots.schema[c] for c in columns},
            "fit_id": pl.String,
            "fitted_at": TS,
            **{p: pl.Float64 for p in pcs},
        }
    )
    if not fits:
        return empty
    table = pl.DataFrame(
        {
            "venue": [f.venue for f in fits],
            "symbol": [f.symbol for f in fits],
            "contract": [f.contract for f in fits],
            "fitted_at": [f.fitted_at for f in fits],
            "fit_id": [f.fit_id for f in fits],
        },
        schema={"venue": pl.String, "symbol": pl.String, "contract": pl.String, "fitted_at": TS, "fit_id": pl.String},
    ).sort("fitted_at")
    by_id = {f.fit_id: f for f in fits}
    # an as-of join never matches a null ``by`` value: match null contracts via a stand-in
    contract = pl.col("contract").fill_null(_NO_CONTRACT).alias(_CONTRACT_BY)
    rows = (
        snapshots.with_columns(contract)
        .sort("ts")
        .join_asof(
            table.with_columns(contract).drop("contract"),
            left_on="ts",
            right_on="fitted_at",
            by=["venue", "symbol", _CONTRACT_BY],
            strategy="backward",
            allow_exact_matches=False,
            tolerance=max_age,
            check_sortedness=False,
        )
        .filter(pl.col("fit_id").is_not_null())
        .drop(_CONTRACT_BY)
    )
    parts = []
    for (fit_id,), group in rows.group_by("fit_id", maintain_order=True):
        fit = by_id[fit_id]
        values = (group.select(BUCKETS).to_numpy() - fit.mean) @ fit.loadings[:n_components].T
        parts.append(group.with_columns(pl.Series(p, values[:, c]) for c, p in enumerate(pcs)))
    if not parts:
        return empty
    return pl.concat(parts).select(*columns, "fit_id", "fitted_at", *pcs).sort([*KEYS, "kind", "ts"])


def _sample(scores: pl.DataFrame, sample: int, seed: int) -> pl.DataFrame:
    """Up to ``sample`` rows spread evenly over ``scores`` in key order, offset by ``seed``."""
    ordered = scores.sort([*KEYS, "kind", "ts"])
    n = min(sample, ordered.height)
    offset = np.random.default_rng(seed).random()
    return ordered[((np.arange(n) + offset) * ordered.height / n).astype(int).tolist()]


def verify_no_lookahead(
    scores: pl.DataFrame,
    snapshots: pl.DataFrame,
    *,
    window_days: int = DEFAULT_WINDOW_DAYS,
    n_components: int = DEFAULT_COMPONENTS,
    sample: int = 12,
    seed: int = 0,
) -> pl.DataFrame:
    """Re-derive a sample of ``scores`` from the snapshots strictly before each scored row.

    For each sampled row (deterministic for a ``seed``), the fit it names is recomputed at
    its ``fitted_at`` by :func:`fit_one` from the roll ``snapshots`` with ``ts`` strictly
    before the row's ``ts`` only (and within ``[fitted_at - window_days, fitted_at)``), and
    the row's buckets (looked up in ``snapshots`` by venue, symbol, contract, kind, ts)
    re-scored. ``ok`` is true when the fit was made before the row and every ``pc1..pcN``
    agrees within 1e-9 of the buckets' scale (at least 1). A score from a fit that saw the row
    itself or later data cannot pass. Columns: venue, symbol, contract, ts, fit_id, ok,
    reason (null when ok).
    """
    if scores.height == 0 or sample <= 0:
        return pl.DataFrame(schema=VERIFY_SCHEMA)
    scores, snapshots = with_contract(scores), with_contract(snapshots)
    key = [*KEYS, "kind", "ts"]
    picked = _sample(scores, sample, seed)
    buckets = (
        snapshots.join(picked.select(key), on=key, how="semi", nulls_equal=True)
        .select(*key, *BUCKETS)
        .unique(subset=key, keep="last", maintain_order=True)
    )
    rows = picked.drop(BUCKETS, strict=False).join(buckets, on=key, how="left", maintain_order="left", nulls_equal=True)
    roll = snapshots.filter(pl.col("kind") == "roll")
    pcs = [f"pc{c + 1}" for c in range(n_components)]
    out = []
    for r in rows.iter_rows(named=True):
        reason = None
        if r["fitted_at"] >= r["ts"]:
            reason = "fit not made before the row"
        elif any(r[b] is None for b in BUCKETS):
            reason = "scored row not found among the snapshots"
        else:
            before = roll.filter(pl.col("ts") < r["ts"])
            fit = fit_one(
                before,
                r["venue"],
                r["symbol"],
                r["fitted_at"],
                window_days=window_days,
                n_components=n_components,
                contract=r["contract"],
            )
            if fit is None or fit.fit_id != r["fit_id"]:
                reason = "fit cannot be made from the snapshots before the row"
            else:
                x = np.array([r[b] for b in BUCKETS], dtype=float)
                expected = (x - fit.mean) @ fit.loadings.T
                got = np.array([np.nan if r[p] is None else r[p] for p in pcs], dtype=float)
                scale = max(1.0, float(np.abs(x).max()))
                if not np.allclose(got, expected, rtol=0, atol=1e-9 * scale):
                    reason = "scores differ from a fit on the snapshots before the row"
        out.append({**{c: r[c] for c in (*KEYS, "ts", "fit_id")}, "ok": reason is None, "reason": reason})
    return pl.DataFrame(out, schema=VERIFY_SCHEMA)
