"""The funding strip engine: roll and intraday snapshots from prints (DESIGN section 3).

A researcher calls it on their own prints from a notebook; the Dagster assets call the very
same functions, and the live strip (:mod:`funding_assets.live.livestrip`) computes its roll
rows with :func:`roll_snapshots` itself.

Units: ``rate`` is a decimal fraction per native interval (0.0001 = 0.01 %), never percent;
``interval_hours`` in hours; ``b0..b7`` annualised decimals (0.1095 = 10.95 %); every
timestamp a naive UTC ``Datetime("ms")``. Prints go through
:func:`funding_assets.prints.normalise` first: a realised print's ``ts`` is its settlement
time (``funding_time``), the time it was published or fetched is its ``published_at``.

Rules, as implemented here:

1. **Grid.** Each print belongs to the 8-hour UTC grid window that ends at
   ``ceil(funding_time / 8h) * 8h`` (windows end 00:00, 08:00, 16:00). ``funding_time`` is
   snapped to the nearest minute first.
2. **Native window value** = the last print of a ``funding_time``: a realised print beats
   any predicted one, then the later ``ts`` wins, then the later ``published_at`` (a
   corrected settlement published later), then the later input row. A realised print is
   final, and it **supersedes** every predicted print of another native window of its grid
   window whose span ``(funding_time - interval_hours, funding_time]`` (the quote's own
   interval) overlaps the realised print's span: from the realised print's ``ts`` on (or
   from its own ``ts``, if quoted later) such a quote counts for nothing, and a native
   window whose latest print it is drops out of the grid window (until its own realised
   print, if any). A venue that changes interval inside a window (8h -> 1h) thus leaves no
   stale quote, in roll and intraday snapshots alike.
3. **Grid window value** (8h-equivalent rate) ``r8 = sum(rate) * 8 / sum(interval_hours)``
   over the native windows counted in the grid window (after superseding). Its
   **coverage** is ``sum(interval_hours) / 8``: 1 for a known 8h window, 0.125 for one
   hourly print of eight; above 1, native windows overlap (the pipeline flags it).
4. **Roll snapshot** for a closed grid window W: ``b_k = annualise(value(W - k*8h))``,
   k = 0..7, b0 newest; ``ts = funding_time = W``. W is closed at ``closed_at``, the
   earlier of the ``ts`` of the first print of any later grid window and of a realised
   print settling exactly at W. Bucket 0 must be known (never filled). ``as_of`` (when the
   row became known) is W when the window closed before the end of W's UTC day (live,
   closed by the next window's first quote, and history, closed by the settlement at W,
   agree), otherwise ``closed_at``. A window that closes only after the end of the UTC day
   following W's emits no roll row, here or live (:data:`MAX_CLOSE_LAG_DAYS`): its row
   would read prints beyond the declared lookback.
5. **Gaps.** A missing bucket is linearly interpolated in annualised space between the
   nearest known newer and older windows when the run of missing windows is at most
   ``max_fill`` long (the older neighbour may lie beyond bucket 7). Otherwise no snapshot.
6. **Annualisation**: ``apr = r8 * 1095``; ``apy = (1 + r8) ** 1095 - 1``.
7. **Intraday snapshots** sample the strip as of every N minutes (0: at every print's
   ``ts``): bucket 0 is the open grid window from the prints with ``ts`` <= the sample
   instant, buckets 1..7 the windows before it, each as of that instant (no look-ahead);
   ``as_of = ts``.

**Ignored prints**, listed by :func:`ignored_prints` with a ``reason`` (the same predicate
the engine applies; the pipeline counts and reports them, nothing is dropped silently):

- ``quoted_before_previous_day``: ``ts`` before 00:00 UTC of the day before the day the
  print's grid window ends (no venue quotes that early);
- ``predicted_after_settlement``: a predicted print with ``ts`` more than
  :data:`SETTLEMENT_GRACE_MS` (a minute of clock jitter) after its own ``funding_time``: a
  prediction after settlement is no prediction (typically a stale quote of a schedule the
  venue left).

So every print a row reads has ``ts`` <= its window's end + a minute (realised: ``ts`` =
settlement), and a day's rows depend only on that day's prints and the
:data:`LOOKBACK_DAYS` before it (see :func:`partition_snapshots`).

**Series key** (:data:`KEYS`): ``(venue, symbol, contract)``. ``symbol`` is the canonical
coin, ``contract`` the contract type of its perpetual on that venue (``usdt``, ``usdc`` or
``inverse``: Binance BTCUSDT is ``usdt``, BTCUSD_PERP ``inverse``). Every rule above applies
per series, and series never mix: two contracts of one coin on one venue are two strips,
each equal to the one computed from its prints alone. A print without a ``contract`` (a
researcher's own frame) is the venue's main perpetual of its coin, as
:func:`~funding_assets.prints.normalise` makes it; for a venue this package does not know
the ``contract`` stays null, one series per (venue, symbol), a key value like any other.
The output always has the column.

**Scale.** The rules run in one walk over each series' prints in ``(ts, published_at,
arrival)`` order, linear in prints (:mod:`funding_assets.strip_kernel`); prints already in
stored form (as :func:`~funding_assets.prints.normalise` returns them) are read without a
copy, and output columns are the kernel's arrays. :func:`stream_snapshots` gives the rows of
:func:`partition_snapshots` a series and a block of days at a time, from parquet or a query,
in bounded memory: tick-level snapshots are a query over prints, not a stored fire-hose.

Output columns (:data:`SNAPSHOT_SCHEMA`): ``venue, symbol, contract, kind ('roll'|'intraday'), ts,
funding_time, interval_hours, annualisation, b0..b7, n_filled, as_of, coverage,
min_coverage``. ``interval_hours`` is the interval of bucket 0's latest native window;
``coverage`` bucket 0's coverage (intraday: of the open window so far); ``min_coverage``
the smallest coverage of buckets 1..7, a filled bucket counting 0.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import sys
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from . import strip_kernel as kernel
from .errors import FundingInputError
from .prints import MS, PREDICTED, REALISED, STRIP_COLUMNS, TS, as_utc_ms, main_contracts, normalise
from .settings import ANNUALISATIONS, parse_every_minutes
from .strip_kernel import (
    DAY_MS,
    GRID_HOURS,
    GRID_MS,
    MAX_CLOSE_LAG_DAYS,
    N_BUCKETS,
    PERIODS_PER_YEAR,
    SETTLEMENT_GRACE_MS,
)

__all__ = [
    "BUCKETS",
    "CONTRACT",
    "DAY_MS",
    "DEFAULT_MAX_FILL",
    "GRID_HOURS",
    "GRID_MS",
    "KEYS",
    "LOOKBACK_DAYS",
    "MAX_CLOSE_LAG_DAYS",
    "N_BUCKETS",
    "ORDER",
    "PERIODS_PER_YEAR",
    "PREDICTED_AFTER_SETTLEMENT",
    "QUOTED_TOO_EARLY",
    "SETTLEMENT_GRACE_MS",
    "SNAPSHOT_SCHEMA",
    "STREAM_BLOCK_DAYS",
    "Source",
    "annualise",
    "ignored_prints",
    "intraday_snapshots",
    "lookback_days",
    "partition_snapshots",
    "roll_snapshots",
    "stream_snapshots",
    "with_contract",
]

DEFAULT_MAX_FILL = 2


def lookback_days(max_fill: int) -> int:
    """Days of prints before a day that its snapshots may read: a row known that day reads
    a window ending up to :data:`MAX_CLOSE_LAG_DAYS` earlier, its 8 windows plus
    ``max_fill`` older neighbours reach back ``(7 + max_fill) * 8h`` more, and a window's
    prints may be quoted from the previous midnight."""
    return MAX_CLOSE_LAG_DAYS + -(-(N_BUCKETS - 1 + max_fill) * GRID_HOURS // 24) + 1


#: :func:`lookback_days` of the default ``max_fill`` (5 days), the asset's declared lookback.
LOOKBACK_DAYS = lookback_days(DEFAULT_MAX_FILL)
#: Reasons :func:`ignored_prints` gives.
QUOTED_TOO_EARLY = "quoted_before_previous_day"
PREDICTED_AFTER_SETTLEMENT = "predicted_after_settlement"
_REASONS = {kernel.QUOTED_TOO_EARLY: QUOTED_TOO_EARLY, kernel.PREDICTED_AFTER_SETTLEMENT: PREDICTED_AFTER_SETTLEMENT}
#: Order of a native window's prints: the last one wins (``arrival`` = input row order).
ORDER = ("ts", "published_at", "arrival")

BUCKETS = [f"b{k}" for k in range(N_BUCKETS)]
#: The key of a series: canonical coin ``symbol``, contract type ``contract`` on ``venue``.
KEYS = ["venue", "symbol", "contract"]
CONTRACT = "contract"
ROLL, INTRADAY = "roll", "intraday"
SNAPSHOT_SCHEMA: dict[str, pl.DataType] = {
    "venue": pl.String(),
    "symbol": pl.String(),
    "contract": pl.String(),
    "kind": pl.String(),
    "ts": TS,
    "funding_time": TS,
    "interval_hours": pl.Float64(),
    "annualisation": pl.String(),
    **{b: pl.Float64() for b in BUCKETS},
    "n_filled": pl.Int32(),
    "as_of": TS,
    "coverage": pl.Float64(),
    "min_coverage": pl.Float64(),
}
#: Bounds of an unbounded ``as_of`` range.
_ALL = (-kernel.NEVER, kernel.NEVER)


def annualise(r8: pl.Expr, annualisation: str) -> pl.Expr:
    """8h-equivalent rate -> annualised decimal (``apr`` simple, ``apy`` compound), as a
    polars expression (the kernel's :func:`~funding_assets.strip_kernel.annualise`)."""
    if annualisation == "apr":
        return r8 * PERIODS_PER_YEAR
    if annualisation == "apy":
        return (1.0 + r8).pow(PERIODS_PER_YEAR) - 1.0
    raise FundingInputError(f"annualisation must be one of {ANNUALISATIONS}, got {annualisation!r}")


def with_contract(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with a String ``contract`` column: null when the frame has none (one series
    per (venue, symbol)), else its own cast to String. Any other column is left as it is."""
    if CONTRACT not in frame.columns:
        return frame.with_columns(pl.lit(None, pl.String).alias(CONTRACT))
    return frame.with_columns(pl.col(CONTRACT).cast(pl.String))


#: Columns of a print the engine reads, the series key first.
_PRINT_COLUMNS = [*KEYS, *(c for c in STRIP_COLUMNS if c not in KEYS)]


def _normalised(prints: pl.DataFrame) -> pl.DataFrame:
    """Normalised print columns (:data:`_PRINT_COLUMNS` and ``published_at``); an absent or
    null ``contract`` is the venue's main perpetual of the coin (as stored), and stays null
    for a venue this package does not know: one series per (venue, symbol)."""
    return normalise(with_contract(prints)).select(*_PRINT_COLUMNS, "published_at")


#: Print columns the kernel reads and their dtypes as stored (as normalise returns them).
_STORED = {"ts": TS, "funding_time": TS, "rate": pl.Float64(), "interval_hours": pl.Float64(), "kind": pl.String()}


def _stored_arrays(frame: pl.DataFrame) -> tuple[np.ndarray, ...] | None:
    """``ts, funding_time, published_at`` (epoch ms), ``rate, interval_hours`` and
    ``realised`` (uint8) of prints already in the form :func:`normalise` gives (it would
    change nothing), without copying them; None when they are not."""
    schema = frame.schema
    if any(schema.get(c) != t for c, t in _STORED.items()) or schema.get("published_at", TS) != TS:
        return None
    published = frame["published_at"] if "published_at" in schema else frame["ts"]
    columns = [frame["ts"], frame["funding_time"], published, frame["rate"], frame["interval_hours"]]
    realised = frame["kind"] == REALISED
    if any(c.null_count() for c in (*columns, realised)) or not (realised | (frame["kind"] == PREDICTED)).all():
        return None  # nulls or another kind
    ts, ft, pub = (c.to_physical().to_numpy() for c in columns[:3])
    rate, hours = columns[3].to_numpy(), columns[4].to_numpy()
    realised = realised.cast(pl.UInt8).to_numpy()
    return (ts, ft, pub, rate, hours, realised) if kernel.is_stored(ts, ft, hours, realised) else None


def _normalised_arrays(frame: pl.DataFrame) -> tuple[np.ndarray, ...]:
    """:func:`_stored_arrays` of normalised prints; null times or rates are an error."""
    arrays = _stored_arrays(frame)
    if arrays is None:
        missing = [c for c in ("ts", "funding_time", "rate", "interval_hours", "kind") if frame[c].null_count()]
        raise FundingInputError(f"prints: column(s) {', '.join(missing)} have null values")
    return arrays


def _print_arrays(prints: pl.DataFrame) -> tuple[pl.DataFrame, tuple[np.ndarray, ...]]:
    """Series keys (venue, symbol, contract) and kernel arrays of any print frame: as they
    are when already stored, else through :func:`_normalised`."""
    frame = with_contract(prints)
    keys_stored = all(frame.schema.get(k) == pl.String() for k in KEYS) and not frame[CONTRACT].null_count()
    arrays = _stored_arrays(frame) if keys_stored else None
    if arrays is None:
        frame = _normalised(prints)
        arrays = _normalised_arrays(frame)
    return frame.select(KEYS), arrays


def ignored_prints(prints: pl.DataFrame) -> pl.DataFrame:
    """The prints the strip rules ignore (see the module doc), with a ``reason`` column.

    Normalised print columns (``venue, symbol, contract, ts, funding_time, rate,
    interval_hours, kind, published_at``; ``contract`` null when ``prints`` has none) plus
    ``reason``: ``quoted_before_previous_day`` or
    ``predicted_after_settlement``. The engine leaves out exactly these rows (same code).
    """
    frame = _normalised(prints)
    ts, ft, _, _, _, realised = _normalised_arrays(frame)
    codes = kernel.reasons(ts, ft, realised)
    reason = pl.Series("reason", codes).replace_strict(_REASONS, default=None, return_dtype=pl.String)
    return frame.with_columns(reason).filter(pl.col("reason").is_not_null())


@dataclasses.dataclass(frozen=True)
class _Series:
    """Prints of one or more series laid out for the kernel: series ``s`` is rows
    ``starts[s]:starts[s + 1]`` in ``(ts, published_at, arrival)`` order; ``keys`` (one row
    per series) and ``order`` list the series in output order (keys sorted, nulls first)."""

    keys: pl.DataFrame
    order: np.ndarray
    starts: np.ndarray
    ts: np.ndarray
    ft: np.ndarray
    pub: np.ndarray
    rate: np.ndarray
    hours: np.ndarray
    realised: np.ndarray


def _series(prints: pl.DataFrame) -> _Series:
    """Prints of any number of series as kernel arrays, each series contiguous.

    A frame whose series already come in contiguous runs (stored prints, one series after
    the other) is used in place; otherwise rows are grouped by series, keeping their order."""
    keys, arrays = _print_arrays(prints)
    n = keys.height
    if n and _one_series(keys):
        starts = np.zeros(1, np.int64)
    else:
        change = keys.select(pl.any_horizontal(pl.col(k).ne_missing(pl.col(k).shift(1)) for k in KEYS)).to_series()
        starts = np.flatnonzero(change.to_numpy()) if n else np.zeros(0, np.int64)
        if n and (starts.size == 0 or starts[0] != 0):
            starts = np.concatenate(([0], starts))
    runs = keys[starts]
    if runs.is_duplicated().any():
        groups = keys.with_row_index("row").group_by(KEYS).agg("row")
        runs = groups.select(KEYS)
        perm = groups["row"].explode().to_numpy()
        arrays = tuple(x[perm] for x in arrays)
        starts = np.concatenate(([0], np.cumsum(groups["row"].list.len().to_numpy())[:-1]))
    order = runs.with_row_index("s").sort(KEYS, nulls_last=False)["s"].to_numpy().astype(np.int64)
    return _in_order(runs, order, np.concatenate((starts, [n])).astype(np.int64), arrays)


def _one_series(keys: pl.DataFrame) -> bool:
    """Whether every row has the same key (a cheap look at each column's extremes)."""
    if any(0 < keys[k].null_count() < keys.height for k in KEYS):
        return False
    extremes = keys.select(pl.col(KEYS).min().name.suffix("_min"), pl.col(KEYS).max().name.suffix("_max")).row(0)
    return extremes[: len(KEYS)] == extremes[len(KEYS) :]


def _in_order(keys: pl.DataFrame, order: np.ndarray, starts: np.ndarray, arrays: tuple[np.ndarray, ...]) -> _Series:
    """Series whose rows are put in ``(ts, published_at, arrival)`` order when they are not."""
    ts, _, pub, *_ = arrays
    if not kernel.is_ordered(ts, pub, starts):
        within = kernel.ordering(ts, pub, starts)
        arrays = tuple(x[within] for x in arrays)
    return _Series(keys, order, starts, *arrays)


def _check_options(annualisation: str, max_fill: int) -> None:
    if annualisation not in ANNUALISATIONS:
        raise FundingInputError(f"annualisation must be one of {ANNUALISATIONS}, got {annualisation!r}")
    if not 0 <= max_fill <= N_BUCKETS - 2:
        raise FundingInputError(f"max_fill must be between 0 and {N_BUCKETS - 2}, got {max_fill}")


def _output_columns(rows: int) -> tuple[np.ndarray, ...]:
    """Arrays the kernel writes rows into: ts, funding_time, interval_hours, buckets
    (8 x rows), n_filled, as_of, coverage, min_coverage."""
    return (
        np.empty(rows, np.int64),
        np.empty(rows, np.int64),
        np.empty(rows, np.float64),
        np.empty((N_BUCKETS, rows), np.float64),
        np.empty(rows, np.int32),
        np.empty(rows, np.int64),
        np.empty(rows, np.float64),
        np.empty(rows, np.float64),
    )


def _references(arrays: tuple[np.ndarray, ...]) -> list[int]:
    return [sys.getrefcount(a) for a in arrays]


class _Recycled:
    """Arrays recycled over the blocks of a stream: writing fresh memory costs more than
    computing tick rows (the system zeroes every page on first touch).

    Output arrays (:meth:`take`) are written again once nothing refers to them any more:
    the frames that view them (and anything taken from them) are gone; at most ``keep``
    sets are held, each with some room to spare. The kernel's scratch (:meth:`scratch`)
    and the prints of a block (:meth:`held`) never leave the engine."""

    def __init__(self, keep: int = 2) -> None:
        self._keep = keep
        self._sets: list[tuple[int, tuple[np.ndarray, ...], list[int]]] = []
        self._scratch = (np.empty(0, np.int32), np.empty(0, np.uint8))
        self._held: tuple[np.ndarray, ...] = ()

    def take(self, rows: int) -> tuple[np.ndarray, ...]:
        for capacity, arrays, alone in self._sets:
            if capacity >= rows and _references(arrays) == alone:
                return arrays
        capacity = rows + rows // 4
        arrays = _output_columns(capacity)
        self._sets = [*self._sets, (capacity, arrays, _references(arrays))][-self._keep :]
        return arrays

    def scratch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        if self._scratch[0].size < size:
            self._scratch = (np.empty(size + size // 4, np.int32), np.empty(size + size // 4, np.uint8))
        return self._scratch

    def held(self, chunks: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
        """The columns of ``chunks`` end to end (the first chunk may be a tail of the
        previous result: it is moved to the front first)."""
        size = sum(chunk[0].size for chunk in chunks)
        if not self._held or self._held[0].size < size:
            grown = tuple(np.empty(size + size // 4, c.dtype) for c in chunks[0])
            if self._held:  # the tail of the previous block lives in the old arrays
                chunks = [tuple(c.copy() for c in chunks[0]), *chunks[1:]]
            self._held = grown
        at = 0
        for chunk in chunks:
            n = chunk[0].size
            for target, column in zip(self._held, chunk):
                target[at : at + n] = column
            at += n
        return tuple(c[:size] for c in self._held)


def _snapshots(
    series: _Series,
    *,
    every_minutes: int | None,
    roll: bool,
    annualisation: str,
    max_fill: int,
    day_cut: bool = False,
    emit: tuple[int, int] = _ALL,
    buffers: _Recycled | None = None,
) -> pl.DataFrame:
    """The kernel's rows (intraday samples every ``every_minutes``, none if None; roll rows
    if ``roll``) with ``as_of`` in ``emit`` (epoch ms, half open), as a snapshot frame
    viewing the arrays the kernel wrote (from ``buffers`` when given)."""
    every_ms = -1 if every_minutes is None else every_minutes * 60_000
    lo, hi = emit
    s = series
    rows = kernel.output_rows(s.ts, s.ft, s.starts, every_ms, roll, lo, hi)
    written = buffers.take(rows) if buffers is not None else _output_columns(rows)
    as_of = written[5] if roll else written[0]  # intraday rows only: as_of = ts
    columns = (*written[:5], as_of, *written[6:], np.empty((s.order.size, 3), np.int64))
    longest = int(np.diff(s.starts).max(initial=0))
    nid, code = (
        buffers.scratch(longest) if buffers is not None else (np.empty(longest, np.int32), np.empty(longest, np.uint8))
    )
    n = kernel.snapshots(
        s.ts, s.ft, s.pub, s.rate, s.hours, s.realised, s.starts, s.order,
        every_ms, roll, annualisation == "apy", max_fill, day_cut, lo, hi, columns, nid, code,
    )  # fmt: skip
    kind = INTRADAY if not roll else ROLL if every_minutes is None else None
    return _frame(columns, n, s, annualisation, kind)


def _frame(out, n: int, series: _Series, annualisation: str, kind: str | None) -> pl.DataFrame:
    """Snapshot frame of the first ``n`` rows the kernel wrote (no copy of the numbers).
    ``kind``: the kind of every row, or None for intraday then roll rows per segment."""
    ts, ft, hours, buckets, n_filled, as_of, coverage, min_coverage, bounds = out
    if n == 0:
        return pl.DataFrame(schema=SNAPSHOT_SCHEMA)
    interval = pl.Series("interval_hours", hours[:n])
    if np.isnan(hours[:n]).any():
        interval = interval.fill_nan(None)
    frame = pl.DataFrame(
        [
            pl.Series("ts", ts[:n]).cast(TS),
            pl.Series("funding_time", ft[:n]).cast(TS),
            interval,
            *(pl.Series(b, buckets[k, :n]) for k, b in enumerate(BUCKETS)),
            pl.Series("n_filled", n_filled[:n]),
            pl.Series("as_of", as_of[:n]).cast(TS),
            pl.Series("coverage", coverage[:n]),
            pl.Series("min_coverage", min_coverage[:n]),
        ]
    )
    keys = series.keys
    if keys.height == 1:
        key_columns = [pl.lit(v, pl.String).alias(k) for k, v in keys.row(0, named=True).items()]
    else:
        segment = np.repeat(series.order, bounds[:, 2] - bounds[:, 0])
        key_columns = keys[segment].get_columns()
    if kind is None:
        rolls = np.zeros(n, np.bool_)
        for _, first_roll, end in bounds:
            rolls[first_roll:end] = True
        kind_column = pl.when(pl.Series(rolls)).then(pl.lit(ROLL)).otherwise(pl.lit(INTRADAY))
    else:
        kind_column = pl.lit(kind)
    return frame.with_columns(
        *key_columns, kind_column.alias("kind"), pl.lit(annualisation).alias("annualisation")
    ).select(list(SNAPSHOT_SCHEMA))


def roll_snapshots(
    prints: pl.DataFrame, *, annualisation: str = "apr", max_fill: int = DEFAULT_MAX_FILL
) -> pl.DataFrame:
    """One row per closed 8h grid window: the strip b0..b7 (annualised) as of its close.

    ``prints`` needs ``venue, symbol, ts, funding_time, rate`` and optionally ``contract``
    (default null), ``interval_hours`` (default 8) and ``kind`` (default ``realised``); see
    :mod:`funding_assets.prints`. One strip per (venue, symbol, contract). ``ts =
    funding_time`` = the window's end (UTC).
    """
    _check_options(annualisation, max_fill)
    series = _series(prints)
    return _snapshots(series, every_minutes=None, roll=True, annualisation=annualisation, max_fill=max_fill)


def intraday_snapshots(
    prints: pl.DataFrame,
    every: str | int = "10m",
    *,
    annualisation: str = "apr",
    max_fill: int = DEFAULT_MAX_FILL,
) -> pl.DataFrame:
    """The strip sampled as of every ``every`` (``"10m"``, ``"1h"``; ``0`` = at every print).

    Samples lie on the UTC clock grid between a series' first and last print. Bucket 0 is the
    open grid window (``funding_time`` = its end) from the prints seen by the sample instant
    ``ts``; buckets 1..7 are the windows before it, each as of ``ts``. A sample whose open
    window has no print yet is not emitted.
    """
    _check_options(annualisation, max_fill)
    every_minutes = parse_every_minutes(str(every), setting="every")
    series = _series(prints)
    return _snapshots(series, every_minutes=every_minutes, roll=False, annualisation=annualisation, max_fill=max_fill)


def partition_snapshots(
    prints: pl.DataFrame,
    *,
    every: str | int = "10m",
    annualisation: str = "apr",
    max_fill: int = DEFAULT_MAX_FILL,
) -> pl.DataFrame:
    """Roll and intraday snapshots as the ``curve_snapshots`` asset stores them.

    Every roll row of :func:`roll_snapshots`, and the samples of :func:`intraday_snapshots`
    up to the last print of each UTC day. The asset files rows by the UTC day of ``as_of``;
    the rows whose ``as_of`` falls on a day D are the same whether computed from the prints
    with ``ts`` in D and the :func:`lookback_days` (``max_fill``) days before it
    (:data:`LOOKBACK_DAYS` for the default ``max_fill``), or from any longer range:

    - a roll row for window W with ``as_of`` on D has W on D or, closed late, on D - 1
      (:data:`MAX_CLOSE_LAG_DAYS`). Its buckets and fill read windows W - 72h .. W
      (``max_fill`` 2), whose prints have ``ts`` in [00:00 of day(W) - 4, W + 1 min] (the
      ignore rules), inside D - 5 .. D. Its close is the settlement at W or the earliest
      print of a later window, quoted no earlier than 00:00 of day(W) - 1: inside the
      range too, and no print outside it can be earlier. No print after ``as_of``'s day
      changes the row;
    - an intraday sample at t on D reads prints with ``ts`` <= t of windows ending after
      t - 72h, quoted no earlier than D - 4.

    :func:`stream_snapshots` computes the same rows out of core, a block of days at a time.
    """
    _check_options(annualisation, max_fill)
    every_minutes = parse_every_minutes(str(every), setting="every")
    series = _series(prints)
    return _snapshots(
        series, every_minutes=every_minutes, roll=True, annualisation=annualisation, max_fill=max_fill, day_cut=True
    )


#: UTC days of rows one batch of :func:`stream_snapshots` holds (per series).
STREAM_BLOCK_DAYS = 30
#: What :func:`stream_snapshots` reads: prints in memory, a query, or parquet on disk.
Source = pl.DataFrame | pl.LazyFrame | str | Path


def stream_snapshots(
    source: Source | Iterable[Source],
    *,
    every: str | int = "10m",
    kinds: Sequence[str] = (INTRADAY, ROLL),
    annualisation: str = "apr",
    max_fill: int = DEFAULT_MAX_FILL,
    block_days: int = STREAM_BLOCK_DAYS,
) -> Iterator[pl.DataFrame]:
    """:func:`partition_snapshots` out of core: the same rows, one series and one block of
    days at a time, so that tick-level snapshots (``every=0``) are a query over prints, not
    a stored fire-hose.

    ``source``: prints as stored (normalised, as in ``raw_prints``: a realised print's
    ``ts`` is its settlement time) in a DataFrame, a LazyFrame (``pl.scan_parquet``, a
    query: each block is one filtered read), a parquet file or glob, or a directory; or an
    iterable of these, each holding whole series. A directory partitioned by series, hive
    style (``venue=.../symbol=.../contract=...``, ``contract`` optional), whose files
    sort by name in time order (each file's prints no earlier than the previous file's
    days) is read file after file, every print once; any other directory is scanned.

    Each batch holds the rows of one series whose ``as_of`` falls in one block of
    ``block_days`` UTC days (intraday samples, then roll rows, each by ``ts``), computed
    from the prints of that block and the :func:`lookback_days` before it (the partition
    invariant of :func:`partition_snapshots`). Series come in key order. Only ``kinds``
    (``"intraday"``, ``"roll"``) are computed. Sorted by ``[*KEYS, "kind", "ts"]``, the
    batches together are :func:`partition_snapshots` of all the prints. Memory holds one
    block's prints and rows, and the next block's prints (read while the kernel runs).
    """
    _check_options(annualisation, max_fill)
    unknown = set(kinds) - {INTRADAY, ROLL}
    if unknown or not kinds:
        raise FundingInputError(f"kinds must be a non-empty subset of ('intraday', 'roll'), got {tuple(kinds)!r}")
    if block_days < 1:
        raise FundingInputError(f"block_days must be at least 1, got {block_days}")
    options = dict(
        every_minutes=parse_every_minutes(str(every), setting="every") if INTRADAY in kinds else None,
        roll=ROLL in kinds,
        annualisation=annualisation,
        max_fill=max_fill,
        day_cut=True,
        buffers=_Recycled(),
    )
    blocks = functools.partial(_blocks, block_days=block_days, lookback=lookback_days(max_fill))
    items = [source] if isinstance(source, Source) else source
    for item in items:
        if isinstance(item, pl.DataFrame):
            yield from _stream_frame(_series(item), blocks, options)
        elif isinstance(item, str | Path) and (by_series := _series_files(Path(item))) is not None:
            yield from _stream_files(by_series, block_days, lookback_days(max_fill), options)
        else:
            yield from _stream_scan(_scan(item), blocks, options)


def _blocks(first_ms: int, last_ms: int, *, block_days: int, lookback: int) -> list[tuple[int, int, int]]:
    """``(read_from, lo, hi)`` epoch ms per block of days: rows with ``as_of`` in
    ``[lo, hi)`` read the prints with ``ts`` in ``[read_from, hi)``. A row's ``as_of`` is at
    most its window's end, which is less than two days after the print that quoted it."""
    start = first_ms // DAY_MS * DAY_MS
    end = (last_ms // DAY_MS + 3) * DAY_MS
    step = block_days * DAY_MS
    return [(lo - lookback * DAY_MS, lo, min(lo + step, end)) for lo in range(start, end, step)]


def _stream_frame(series: _Series, blocks, options: dict) -> Iterator[pl.DataFrame]:
    """Blocks of each series of prints already in memory: row ranges of its sorted ts."""
    for s in series.order:
        a, b = series.starts[s], series.starts[s + 1]
        ts = series.ts[a:b]
        if ts.size == 0:
            continue
        for read_from, lo, hi in blocks(int(ts[0]), int(ts[-1])):
            i, j = a + np.searchsorted(ts, [read_from, hi], side="left")
            arrays = (series.ts, series.ft, series.pub, series.rate, series.hours, series.realised)
            block = _Series(series.keys[int(s)], np.zeros(1, np.int64), np.array([0, j - i]), *(x[i:j] for x in arrays))
            rows = _snapshots(block, emit=(lo, hi), **options)
            if rows.height:
                yield rows


_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def _series_files(root: Path) -> list[tuple[tuple, list[Path]]] | None:
    """The parquet files of each series (in name order) under a directory partitioned by
    series, hive style, series in key order; None when it is not laid out so."""
    if not root.is_dir():
        return None
    files: dict[tuple, list[Path]] = {}
    for path in sorted(root.glob("**/*.parquet")):
        parts = dict(p.split("=", 1) for p in path.relative_to(root).parts[:-1] if "=" in p)
        parts = {k: None if v == _HIVE_NULL else urllib.parse.unquote(v) for k, v in parts.items()}
        if not {"venue", "symbol"} <= parts.keys():
            return None
        files.setdefault((parts["venue"], parts["symbol"], parts.get(CONTRACT)), []).append(path)
    if not files:
        return None
    keys = pl.DataFrame(list(files), schema=dict.fromkeys(KEYS, pl.String), orient="row", infer_schema_length=None)
    series = keys.with_columns(pl.col(CONTRACT).fill_null(main_contracts(keys)))  # as normalise does
    if series.is_duplicated().any():
        return None  # one series under two keys (null contract and its main perpetual): scan it
    order = series.with_row_index("i").sort(KEYS, nulls_last=False)["i"].to_list()
    stored = list(files.values())
    return [(series.row(i), stored[i]) for i in order]


def _stream_files(
    by_series: list[tuple[tuple, list[Path]]], block_days: int, lookback: int, options: dict
) -> Iterator[pl.DataFrame]:
    """Each series' files in name order, one read each (the next one while the kernel
    runs). Once the days read reach ``block_days`` past the last block, the rows of the
    days complete so far (all but the last day read) are computed from the prints held: the
    files read since, and the last :func:`lookback_days` before them."""
    files = [(key, path) for key, paths in by_series for path in paths]
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(_read_file, *files[0]) if files else None
        held: list[tuple[np.ndarray, ...]] = []
        done = None  # rows with as_of before this instant (epoch ms) are out
        for f, (key, path) in enumerate(files):
            arrays = pending.result()
            pending = reader.submit(_read_file, *files[f + 1]) if f + 1 < len(files) else None
            if arrays is not None and arrays[0].size:
                first, last = int(arrays[0].min()), int(arrays[0].max())
                if done is None:
                    done = first // DAY_MS * DAY_MS
                if first < done:
                    raise FundingInputError(
                        f"stream_snapshots: {path} holds prints before the days its series' earlier files "
                        "completed; name files in time order, or pass pl.scan_parquet(...) instead"
                    )
                held.append(arrays)
                complete = last // DAY_MS * DAY_MS
                if complete - done >= block_days * DAY_MS:
                    rows, held = _held_rows(key, held, (done, complete), lookback, options)
                    done = complete
                    if rows.height:
                        yield rows
            if f + 1 == len(files) or files[f + 1][0] != key:
                if held:
                    rows, _ = _held_rows(key, held, (done, kernel.NEVER), lookback, options)
                    if rows.height:
                        yield rows
                held, done = [], None


def _held_rows(key: tuple, held: list, emit: tuple[int, int], lookback: int, options: dict):
    """Rows with ``as_of`` in ``emit`` from the prints held, and the prints to hold on to
    for the next block (its lookback)."""
    arrays = options["buffers"].held(held)
    keys = pl.DataFrame([key], schema=dict.fromkeys(KEYS, pl.String), orient="row")
    series = _in_order(keys, np.zeros(1, np.int64), np.array([0, arrays[0].size]), arrays)
    rows = _snapshots(series, emit=emit, **options)
    columns = (series.ts, series.ft, series.pub, series.rate, series.hours, series.realised)
    keep = np.searchsorted(series.ts, emit[1] - lookback * DAY_MS)
    return rows, [tuple(x[keep:] for x in columns)]


def _read_file(key: tuple, path: Path) -> tuple[np.ndarray, ...] | None:
    schema = pl.read_parquet_schema(path)
    columns = [c for c in (*_STORED, "published_at") if c in schema]
    frame = pl.read_parquet(path, columns=columns, hive_partitioning=False)
    return _block_arrays(frame, key) if frame.height else None


def _scan(item: pl.LazyFrame | str | Path) -> pl.LazyFrame:
    if isinstance(item, pl.LazyFrame):
        return item
    path = Path(item)
    if path.is_dir():
        return pl.scan_parquet(path / "**" / "*.parquet", hive_partitioning=True)
    return pl.scan_parquet(item)


def _stream_scan(scan: pl.LazyFrame, blocks, options: dict) -> Iterator[pl.DataFrame]:
    """Blocks of each series of a query: the series and their spans first (one aggregate),
    then one filtered read per block, the next one read while the kernel runs."""
    schema = scan.collect_schema()
    if CONTRACT not in schema:
        scan = scan.with_columns(pl.lit(None, pl.String).alias(CONTRACT))
    ts_type = schema.get("ts")
    if ts_type is None:
        raise FundingInputError("prints: missing column 'ts'")
    ms = as_utc_ms(pl.col("ts"), ts_type, "ts").dt.epoch(MS)
    spans = scan.group_by(KEYS).agg(first=ms.min(), last=ms.max()).with_columns(pl.col(KEYS).cast(pl.String)).collect()
    # a null contract is the venue's main perpetual (normalise): one series, maybe two stored keys
    spans = spans.with_columns(series=pl.col(CONTRACT).fill_null(main_contracts(spans)))
    series = spans.group_by("venue", "symbol", "series").agg("contract", pl.col("first").min(), pl.col("last").max())
    columns = [c for c in (*_STORED, "published_at") if c in schema]
    tasks = [
        (pl.DataFrame([key], schema=dict.fromkeys(KEYS, pl.String), orient="row"),
         _key_filter(*key[:2], contracts) & (pl.col("ts") >= _ts_literal(ts_type, read_from))
         & (pl.col("ts") < _ts_literal(ts_type, hi)), (lo, hi))
        for *key, contracts, first, last in series.sort("venue", "symbol", "series", nulls_last=False).iter_rows()
        for read_from, lo, hi in blocks(first, last)
    ]  # fmt: skip
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as reader:
        read = functools.partial(_read_block, scan, columns)
        pending = reader.submit(read, *tasks[0][:2]) if tasks else None
        for t, (*_, emit) in enumerate(tasks):
            block = pending.result()
            pending = reader.submit(read, *tasks[t + 1][:2]) if t + 1 < len(tasks) else None
            if block is not None:
                rows = _snapshots(block, emit=emit, **options)
                if rows.height:
                    yield rows


def _key_filter(venue: str, symbol: str, contracts: list[str | None]) -> pl.Expr:
    """Rows of a series stored under any of ``contracts`` (null: the venue's main perpetual)."""
    same = [pl.col(CONTRACT).is_null() if c is None else pl.col(CONTRACT) == c for c in contracts]
    return (pl.col("venue") == venue) & (pl.col("symbol") == symbol) & pl.any_horizontal(same)


def _ts_literal(dtype: pl.DataType, ms: int) -> pl.Expr:
    """Epoch ms as a literal comparable with a stored ``ts`` column of type ``dtype``."""
    if isinstance(dtype, pl.Datetime):
        utc = pl.lit(ms, pl.Int64).cast(pl.Datetime(MS)).dt.replace_time_zone("UTC")
        local = utc.dt.convert_time_zone(dtype.time_zone) if dtype.time_zone else utc.dt.replace_time_zone(None)
        return local.cast(dtype)
    return pl.lit(ms, dtype)


def _read_block(scan: pl.LazyFrame, columns: list[str], key: pl.DataFrame, where: pl.Expr) -> _Series | None:
    """The prints of one series in one block (None if there are none), as kernel arrays."""
    frame = scan.filter(where).select(columns).collect()
    if not frame.height:
        return None
    arrays = _block_arrays(frame, key.row(0))
    return _in_order(key, np.zeros(1, np.int64), np.array([0, frame.height], np.int64), arrays)


def _block_arrays(frame: pl.DataFrame, key: tuple) -> tuple[np.ndarray, ...]:
    """Kernel arrays of one series' prints read by stored ``ts``: used as read when stored,
    else normalised; then a realised print must be stored at its settlement time: one that
    is not is an error, not a guess."""
    arrays = _stored_arrays(frame)
    if arrays is None:
        stored = as_utc_ms(pl.col("ts"), frame.schema["ts"], "ts").alias("_stored_ts")
        prints = normalise(frame.with_columns(*(pl.lit(v, pl.String).alias(k) for k, v in zip(KEYS, key)), stored))
        if prints.filter(pl.col("ts") != pl.col("_stored_ts")).height:
            raise FundingInputError(
                "stream_snapshots reads prints as stored: a realised print's ts must be its settlement time "
                "(funding_assets.prints.normalise gives that form)"
            )
        arrays = _normalised_arrays(prints)
    return arrays
