"""The live strip: DESIGN section 3 applied one print at a time, in memory.

:class:`LiveStrip` keeps, per (venue, symbol, contract) series (two contracts of one coin are
two strips, as in the batch engine; a print without a contract is the venue's main perpetual
of its coin, as :func:`funding_assets.prints.normalise` makes it), the state the batch engine
(:mod:`funding_assets.strip`) would derive from the same prints, and turns every print into
the snapshot rows it causes:

- **native window values** (rule 2): per ``funding_time`` the winning print -- realised
  beats predicted, then the later ``ts``, then the later ``published_at``, then the later
  arrival. A realised print's ``ts`` is its settlement time, as in the batch engine; a
  native window whose winning quote a realised print of another native window of its grid
  window overlaps is marked void and not counted (superseding, as in the batch engine);
- **grid window values** (rule 3): per 8h grid window ``r8 = sum(rate) * 8 /
  sum(interval_hours)`` and coverage ``sum(interval_hours) / 8`` over its native windows,
  recomputed (at most 8 terms) when one of them changes;
- an **intraday row** for each live print (``kind='intraday'``, ``ts = as_of`` = the
  print's ts, ``funding_time`` = end of the grid window open at ``ts``): bucket 0 is that
  open window so far, buckets 1..7 the closed windows before it, gaps of at most
  ``max_fill`` windows interpolated in annualised space (rule 5), ``coverage`` and
  ``min_coverage`` as the batch engine's. Rows are only emitted while ``ts`` moves forward
  (a late REST print updates the state but is not a sample "as of" its old ts);
- a **roll row** (``kind='roll'``, ``ts = funding_time`` = window end) when a grid window
  closes: a print of a later grid window arrives, or a realised print settles exactly at
  its end (rule 4). Roll rows are computed by :func:`funding_assets.strip.roll_snapshots`
  itself on the series' retained prints, so they equal the batch engine's by construction,
  ``as_of`` included. A late print that changes a closed window (a realised settlement
  recovered by a REST gap fill after a disconnect), or that is an earlier first print of a
  later window (and so moves the instant the windows before it closed), re-emits every
  roll row it changes: the store's last row per window is the batch engine's row over
  everything received.

Ignored, as by the batch engine (:func:`funding_assets.strip.ignored_prints`, counted in
:attr:`SeriesStrip.ignored`): a print quoted before the day preceding its grid window's
day, and a prediction quoted after its own settlement.

Memory: only the winning print of each native window is kept, plus the ``ts`` of each grid
window's first print (an exact reduction for the batch engine: it reads nothing else of a
window's prints, see :meth:`SeriesStrip.prints_frame`) for the last :data:`RETAIN_MS`
(8 days: 24 values for an 8h venue, 192 for an hourly one) of grid windows; older windows
are dropped, and prints for them are ignored by the strip (they still land). A roll row is
only (re)computed when none of the windows it reads has been dropped, so live and batch
rows stay equal for prints up to :data:`funding_assets.strip.LOOKBACK_DAYS` days late.

Units: rates are decimal fractions per native interval, ``interval_hours`` in hours,
``b0..b7`` annualised decimals (``apr = r8 * 1095``, ``apy = (1 + r8) ** 1095 - 1``), times
naive UTC ``datetime`` at millisecond precision (epoch ms inside).
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import functools
from collections.abc import Iterable, Sequence

import polars as pl

from .. import strip
from ..prints import MINUTE_MS, PRINT_SCHEMA, REALISED, STORED_PRINT_SCHEMA, TS
from ..strip import (
    DEFAULT_MAX_FILL,
    GRID_HOURS,
    GRID_MS,
    LOOKBACK_DAYS,
    N_BUCKETS,
    PERIODS_PER_YEAR,
    SETTLEMENT_GRACE_MS,
    SNAPSHOT_SCHEMA,
)
from ..venues import SPECS

DAY_MS = 86_400_000
#: Grid windows kept per series (ms): the batch engine's lookback (5 days) plus the 72 h a
#: roll row reads back, so a print up to 5 days late still revises every row it changes.
RETAIN_MS = LOOKBACK_DAYS * DAY_MS + (N_BUCKETS - 1 + DEFAULT_MAX_FILL) * GRID_MS
EPOCH = dt.datetime(1970, 1, 1)
ONE_MS = dt.timedelta(milliseconds=1)
INTRADAY = "intraday"
ROLL = "roll"
#: Columns of the print tuples :meth:`LiveStrip.update` takes (PRINT_SCHEMA order),
#: optionally followed by ``published_at`` (STORED_PRINT_SCHEMA order).
PRINT_COLUMNS = tuple(PRINT_SCHEMA)
SNAPSHOT_COLUMNS = tuple(SNAPSHOT_SCHEMA)
_I_VENUE, _I_SYMBOL, _I_CONTRACT, _I_TS, _I_FT, _I_RATE, _I_HOURS, _I_KIND = (
    PRINT_COLUMNS.index(c)
    for c in ("venue", "symbol", "contract", "ts", "funding_time", "rate", "interval_hours", "kind")
)
_I_PUBLISHED = tuple(STORED_PRINT_SCHEMA).index("published_at")
_TS = SNAPSHOT_COLUMNS.index("ts")
_AS_OF = SNAPSHOT_COLUMNS.index("as_of")

Row = tuple  # one SNAPSHOT_SCHEMA row, columns in SNAPSHOT_COLUMNS order
#: A series: (venue, symbol, contract).
Key = tuple[str, str, str | None]


@functools.cache
def main_contract(venue: str, symbol: str) -> str | None:
    """The contract a print without one has: the venue's main perpetual of the coin (None for
    a venue this package does not know), as :func:`funding_assets.prints.normalise` fills it."""
    return SPECS[venue].default_contract(symbol) if venue in SPECS else None


def to_ms(when: dt.datetime) -> int:
    """Naive-UTC datetime -> epoch milliseconds."""
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    return (when - EPOCH) // ONE_MS


def from_ms(ms: int) -> dt.datetime:
    """Epoch milliseconds -> naive-UTC datetime."""
    return EPOCH + dt.timedelta(milliseconds=ms)


def _annualiser(annualisation: str):
    if annualisation == "apr":
        return lambda r8: r8 * PERIODS_PER_YEAR
    if annualisation == "apy":
        return lambda r8: (1.0 + r8) ** PERIODS_PER_YEAR - 1.0
    raise ValueError(f"annualisation must be 'apr' or 'apy', got {annualisation!r}")


def fill_buckets(a: Sequence[float | None], max_fill: int) -> tuple[list[float], int] | None:
    """Rule 5 on annualised window values ``a[0..depth-1]`` (newest first, None = missing).

    Bucket 0 is never filled; a missing bucket k is interpolated between the nearest known
    newer and older windows (the older may lie beyond bucket 7) when the run of missing
    windows is at most ``max_fill`` long. Returns (b0..b7, n_filled), or None when a bucket
    stays missing (no snapshot), exactly like the batch engine's ``_fill``.
    """
    if a[0] is None:
        return None
    out = [a[0]]
    n_filled = 0
    depth = len(a)
    for k in range(1, N_BUCKETS):
        value = a[k]
        if value is None:
            newer = next(j for j in range(k - 1, -1, -1) if a[j] is not None)
            older = next((j for j in range(k + 1, depth) if a[j] is not None), None)
            if older is None or older - newer - 1 > max_fill:
                return None
            a_new, a_old = a[newer], a[older]
            value = a_new + (a_old - a_new) * (k - newer) / (older - newer)
            n_filled += 1
        out.append(value)
    return out, n_filled


class SeriesStrip:
    """The strip state of one (venue, symbol, contract) series. See the module docstring."""

    __slots__ = (
        "venue",
        "symbol",
        "contract",
        "annualisation",
        "max_fill",
        "depth",
        "retain_ms",
        "_ann",
        "native",
        "by_grid",
        "r8",
        "hours",
        "cover",
        "newest",
        "dropped_below",
        "settled",
        "first_ts",
        "emitted",
        "last_ts",
        "ignored",
        "with_realised",
        "_view",
    )

    def __init__(
        self,
        venue: str,
        symbol: str,
        contract: str | None = None,
        *,
        annualisation: str = "apr",
        max_fill: int = DEFAULT_MAX_FILL,
        retain_ms: int = RETAIN_MS,
    ) -> None:
        self.venue, self.symbol, self.contract = venue, symbol, contract
        self.annualisation, self.max_fill = annualisation, max_fill
        self.depth = N_BUCKETS + max_fill
        self.retain_ms = retain_ms
        self._ann = _annualiser(annualisation)
        #: funding_time ms -> [ts ms, rate, interval_hours, realised, published_at ms, void]:
        #: the winning print; ``void``: a quote a realised print supersedes (not counted)
        self.native: dict[int, list] = {}
        #: grid end ms -> sorted funding_time ms of its native windows
        self.by_grid: dict[int, list[int]] = {}
        #: grid end ms -> r8 (8h-equivalent rate, decimal)
        self.r8: dict[int, float] = {}
        #: grid end ms -> (ts ms, interval_hours) of its latest print (intraday interval)
        self.hours: dict[int, tuple[int, float]] = {}
        #: grid end ms -> coverage (sum of its native windows' hours / 8)
        self.cover: dict[int, float] = {}
        self.newest: int | None = None  # newest grid end with a print
        self.dropped_below: int | None = None  # grid ends <= this are forgotten
        self.settled: set[int] = set()  # grid ends with a realised print settling at the end
        #: grid end ms -> ts ms of its earliest print (a later window's first print closes
        #: the windows before it: the batch engine's ``closed_at``)
        self.first_ts: dict[int, int] = {}
        self.emitted: dict[int, Row] = {}  # grid end ms -> last roll row emitted
        self.last_ts = -1  # ts ms of the last intraday sample
        self.ignored = 0  # prints outside the strip's reach (a day away, or forgotten window)
        #: grid end ms -> {funding_time ms: span start ms} of its realised native windows
        self.with_realised: dict[int, dict[int, float]] = {}
        #: what an intraday row reads of the closed windows before one open window
        #: (:meth:`_closed_view`), until a closed window's value changes
        self._view: tuple | None = None

    # --- state ---------------------------------------------------------------------------

    def add(
        self, ts: int, funding_time: int, rate: float, hours: float, realised: bool, published: int | None = None
    ) -> tuple[bool, tuple[int, int] | None]:
        """Fold one print (epoch ms, snapped or not) into the state.

        ``published`` (ms) breaks ties of ``ts`` (two realised prints of one settlement: the
        later published wins); default ``ts``. Returns (accepted, dirty): ``dirty`` is the
        (oldest, newest) grid end whose roll row may have changed (None if none).
        """
        ft = (funding_time + MINUTE_MS // 2) // MINUTE_MS * MINUTE_MS
        g = -(-ft // GRID_MS) * GRID_MS
        day = g // DAY_MS * DAY_MS
        if realised:
            ts = ft  # a realised print's ts is its settlement time, as in the batch engine
        elif ts > ft + SETTLEMENT_GRACE_MS:
            self.ignored += 1  # a prediction quoted after its settlement
            return False, None
        if ts < day - DAY_MS or (self.dropped_below is not None and g <= self.dropped_below):
            self.ignored += 1
            return False, None
        published = ts if published is None else published
        first = self.first_ts.get(g)
        reclosed = None if first is not None and first <= ts else self._first_print(g, ts)
        cur = self.native.get(ft)
        changed = False
        if cur is None or (realised, ts, published) >= (cur[3], cur[0], cur[4]):
            void = not realised and self._overlaps_realised(g, ft, hours)
            if cur is None:
                cur = self.native[ft] = [ts, rate, hours, realised, published, void]
                bisect.insort(self.by_grid.setdefault(g, []), ft)
                changed = True
            else:
                changed = cur[1] != rate or cur[2] != hours or cur[3] != realised or cur[5] != void
                cur[:] = (ts, rate, hours, realised, published, void)
            if realised:
                self.with_realised.setdefault(g, {})[ft] = ft - hours * 3_600_000
                changed = self._supersede(g) or changed
        if changed:
            if self._view is not None and g != self._view[0]:
                self._view = None  # a closed window's value moved
            natives = self.native
            total_rate = total_hours = 0.0
            for f in self.by_grid[g]:  # in funding_time order, like the batch engine
                n = natives[f]
                if not n[5]:
                    total_rate += n[1]
                    total_hours += n[2]
            self.r8[g] = total_rate * GRID_HOURS / total_hours
            self.cover[g] = total_hours / GRID_HOURS
        seen = self.hours.get(g)
        if (seen is None or ts >= seen[0]) and not (cur[5] and cur[0] == ts):  # a voided quote shows nothing
            self.hours[g] = (ts, cur[2] if cur[3] else hours)
        dirty = None
        newest = self.newest
        if newest is None or g > newest:
            if newest is not None:
                dirty = newest  # the previous newest window is now closed
            self.newest = g
            self._forget(g - self.retain_ms)
        elif changed and (g < newest or g in self.settled):
            dirty = g  # a closed window's value changed
        if realised and ft == g and g not in self.settled:
            self.settled.add(g)
            dirty = g if dirty is None else min(dirty, g)
        if dirty is None:
            return True, reclosed
        if reclosed is None:
            return True, (dirty, dirty)
        return True, (min(dirty, reclosed[0]), max(dirty, reclosed[1]))

    def _first_print(self, g: int, ts: int) -> tuple[int, int] | None:
        """Record a print of window ``g`` at ``ts``; the (oldest, newest) emitted rows whose
        close it makes earlier (a REST gap fill of a later window delivered after the
        stream's first print), which :meth:`roll_job` then recomputes (their ``as_of``)."""
        first = self.first_ts.get(g)
        if first is not None and first <= ts:
            return None
        self.first_ts[g] = ts
        moved = [w for w, row in self.emitted.items() if w < g and to_ms(row[_AS_OF]) > max(ts, w)]
        return (min(moved), max(moved)) if moved else None

    def _overlaps_realised(self, g: int, ft: int, hours: float) -> bool:
        """Whether the span ``(ft - hours, ft]`` overlaps a realised native window of ``g``."""
        spans = self.with_realised.get(g)
        if not spans:
            return False
        start = ft - hours * 3_600_000
        for f, f_start in spans.items():
            if f != ft and f_start < ft and start < f:
                return True
        return False

    def _supersede(self, g: int) -> bool:
        """Mark the quotes of ``g`` whose span a realised print of ``g`` overlaps as void
        (rule 2: they count for nothing); whether any mark changed."""
        flipped = False
        for f in self.by_grid[g]:
            n = self.native[f]
            void = not n[3] and self._overlaps_realised(g, f, n[2])
            if void != n[5]:
                n[5], flipped = void, True
        return flipped

    def _forget(self, horizon: int) -> None:
        """Drop grid windows ending at or before ``horizon`` (ms)."""
        old = [g for g in self.by_grid if g <= horizon]
        if not old:
            return
        for g in old:
            for ft in self.by_grid.pop(g):
                del self.native[ft]
            self.r8.pop(g, None)
            self.cover.pop(g, None)
            self.hours.pop(g, None)
            self.settled.discard(g)
            self.with_realised.pop(g, None)
        self._view = None
        for g in [g for g in self.first_ts if g <= horizon]:
            del self.first_ts[g]
        for g in [g for g in self.emitted if g <= horizon]:
            del self.emitted[g]
        self.dropped_below = max(horizon, self.dropped_below or horizon)

    # --- rows ----------------------------------------------------------------------------

    def intraday(self, ts: int, epoch_ms: bool = False) -> Row | None:
        """The intraday row as of ``ts`` (ms) from the current state, or None; ``epoch_ms``:
        its ``ts``, ``funding_time`` and ``as_of`` as epoch ms ints (:meth:`LiveStrip.update_deferred`)."""
        open_end = ts // GRID_MS * GRID_MS + GRID_MS
        view = self._view
        if view is None or view[0] != open_end:
            view = self._view = self._closed_view(open_end)
        r8 = self.r8.get(open_end)
        if r8 is None:
            return None
        a0 = self._ann(r8)
        _, closed, min_coverage, complete, open_at = view
        if complete:  # nothing to fill: the common case, no list to build
            buckets, n_filled = (a0, *closed[: N_BUCKETS - 1]), 0
        else:
            filled = fill_buckets([a0, *closed], self.max_fill)
            if filled is None:
                return None
            buckets, n_filled = filled
        if epoch_ms:
            at, open_at = ts, open_end
        else:
            at = from_ms(ts)
        return (
            self.venue,
            self.symbol,
            self.contract,
            INTRADAY,
            at,
            open_at,
            self.hours[open_end][1],
            self.annualisation,
            *buckets,
            n_filled,
            at,
            self.cover[open_end],
            min_coverage,
        )

    def _closed_view(self, open_end: int) -> tuple:
        """What an intraday row in the grid window ending ``open_end`` reads of the windows
        before it: (open_end, annualised values of buckets 1..depth-1 (None: missing),
        min_coverage of buckets 1..7, whether buckets 1..7 are all known, open_end as a
        datetime). Kept in ``_view`` until a closed window's value changes (:meth:`add`)."""
        r8, ann, cover = self.r8, self._ann, self.cover
        closed = []
        for k in range(1, self.depth):
            value = r8.get(open_end - k * GRID_MS)
            closed.append(None if value is None else ann(value))
        min_coverage = min(
            cover.get(open_end - k * GRID_MS, 0.0) if closed[k - 1] is not None else 0.0 for k in range(1, N_BUCKETS)
        )
        complete = all(value is not None for value in closed[: N_BUCKETS - 1])
        return open_end, closed, min_coverage, complete, from_ms(open_end)

    def prints_frame(self, lo: int | None = None) -> pl.DataFrame:
        """The retained prints of grid windows ending at or after ``lo`` (ms) as a strip
        input frame: the winning print of each native window, and before them, for a window
        whose earliest print lost, a copy of its earliest winner quoted at that print's
        ``ts`` (a predicted quote that loses to every winner: it only carries the instant
        the window was first seen, which closes the windows before it)."""
        natives = self.native
        markers, winners = [], []
        for g in sorted(g for g in self.by_grid if lo is None or g >= lo):
            fts = self.by_grid[g]
            winners.extend((ft, *natives[ft]) for ft in fts)
            earliest = min(fts, key=lambda f: natives[f][0])
            n = natives[earliest]
            if self.first_ts[g] < n[0]:
                markers.append((earliest, self.first_ts[g], n[1], n[2], False, self.first_ts[g]))
        rows = markers + winners
        return pl.DataFrame(
            {
                "venue": [self.venue] * len(rows),
                "symbol": [self.symbol] * len(rows),
                "contract": [self.contract] * len(rows),
                "ts": [r[1] for r in rows],
                "funding_time": [r[0] for r in rows],
                "rate": [r[2] for r in rows],
                "interval_hours": [r[3] for r in rows],
                "kind": [REALISED if r[4] else "predicted" for r in rows],
                "published_at": [r[5] for r in rows],
            },
            schema={
                "venue": pl.String,
                "symbol": pl.String,
                "contract": pl.String,
                "ts": pl.Int64,
                "funding_time": pl.Int64,
                "rate": pl.Float64,
                "interval_hours": pl.Float64,
                "kind": pl.String,
                "published_at": pl.Int64,
            },
        ).with_columns(pl.col("ts", "funding_time", "published_at").cast(TS))

    def roll_job(self, lo: int, hi: int) -> RollJob:
        """The work to (re)compute the roll rows of closed windows ending in
        ``[lo, hi + (depth-1)*8h]`` (ms): a change to window ``g`` can move the rows of
        windows ``g .. g + (depth-1)*8h`` (the buckets and the interpolation reach). The job
        holds a copy of the retained prints of every window those rows read."""
        reach = (self.depth - 1) * GRID_MS
        return RollJob(self, lo, hi, self.prints_frame(lo - reach))

    def accept(self, job: RollJob, computed: pl.DataFrame) -> list[Row]:
        """The rows of a computed job that are new or changed since last emitted (and now
        count as emitted). Rows reading a forgotten window are not (re)emitted."""
        reach = (self.depth - 1) * GRID_MS
        out = []
        for row in computed.iter_rows():
            g = to_ms(row[_TS])
            if g < job.lo or g > job.hi + reach:
                continue
            if self.dropped_below is not None and g - reach <= self.dropped_below:
                continue
            if self.emitted.get(g) != row:
                self.emitted[g] = row
                out.append(row)
        return out

    def rolls(self, lo: int, hi: int) -> list[Row]:
        """:meth:`roll_job` computed at once and :meth:`accept`-ed."""
        job = self.roll_job(lo, hi)
        return self.accept(job, job.compute())


@dataclasses.dataclass
class RollJob:
    """Roll rows to recompute for one series: :meth:`compute` is pure (any thread; it is
    :func:`funding_assets.strip.roll_snapshots` itself, tens of ms of polars), then the
    strip's owner passes the result to :meth:`SeriesStrip.accept`, jobs of a series in the
    order they were made."""

    series: SeriesStrip
    lo: int  # oldest changed grid window end (epoch ms)
    hi: int  # newest changed grid window end (epoch ms)
    prints: pl.DataFrame  # the retained winning prints the rows read

    def compute(self) -> pl.DataFrame:
        s = self.series
        return strip.roll_snapshots(self.prints, annualisation=s.annualisation, max_fill=s.max_fill)

    def accept(self, computed: pl.DataFrame) -> list[Row]:
        return self.series.accept(self, computed)


class LiveStrip:
    """Per (venue, symbol, contract) strips fed print by print. Not thread-safe: one owner task.

    ``update(prints)`` takes PRINT_SCHEMA tuples (``venue, symbol, contract, venue_symbol, ts,
    funding_time, rate, interval_hours, kind, source``, optionally ``published_at``;
    datetimes naive UTC; ``ts`` as the source stamped it or normalised; a ``contract`` of
    None is the venue's main perpetual of the coin) and returns the
    SNAPSHOT_SCHEMA row tuples they cause: one intraday row per print with ``intraday=True``
    (when the open window has a value and the strip is complete), then the roll rows of
    windows that closed or changed.
    """

    def __init__(
        self, *, annualisation: str = "apr", max_fill: int = DEFAULT_MAX_FILL, retain_ms: int = RETAIN_MS
    ) -> None:
        _annualiser(annualisation)
        if not 0 <= max_fill <= N_BUCKETS - 2:
            raise ValueError(f"max_fill must be between 0 and {N_BUCKETS - 2}, got {max_fill}")
        self.annualisation = annualisation
        self.max_fill = max_fill
        self.retain_ms = retain_ms
        self.series: dict[Key, SeriesStrip] = {}
        self._as_given: dict[Key, SeriesStrip] = {}  # by the key as prints give it (contract may be None)

    def _series(self, venue: str, symbol: str, contract: str | None) -> SeriesStrip:
        given = (venue, symbol, contract)
        s = self._as_given.get(given)
        if s is not None:
            return s
        key = (venue, symbol, contract if contract is not None else main_contract(venue, symbol))
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = SeriesStrip(
                *key, annualisation=self.annualisation, max_fill=self.max_fill, retain_ms=self.retain_ms
            )
        self._as_given[given] = s
        return s

    def update(self, prints: Iterable[Sequence], *, intraday: bool = True) -> list[Row]:
        """Fold prints in arrival order; the snapshot rows they cause (see class doc)."""
        rows, jobs = self.update_deferred(prints, intraday=intraday)
        for job in jobs:
            rows.extend(job.accept(job.compute()))
        return rows

    def update_deferred(
        self, prints: Iterable[Sequence], *, intraday: bool = True, epoch_ms: bool = False
    ) -> tuple[list[Row], list[RollJob]]:
        """:meth:`update` without the roll computation: the intraday rows (pure Python,
        microseconds) and the :class:`RollJob` s to compute elsewhere and accept in order.

        ``epoch_ms``: the prints' ``ts``, ``funding_time`` and ``published_at`` are epoch ms
        ints, and so are the intraday rows' ``ts``, ``funding_time`` and ``as_of`` (the live
        collector's hot path: no datetime is made per print, :func:`rows_frame` reads them)."""
        rows: list[Row] = []
        dirty: dict[SeriesStrip, tuple[int, int]] = {}
        for p in prints:
            s = self._series(p[_I_VENUE], p[_I_SYMBOL], p[_I_CONTRACT])
            realised = p[_I_KIND] == REALISED
            if epoch_ms:
                ft, stamped = p[_I_FT], p[_I_TS]
            else:
                ft, stamped = to_ms(p[_I_FT]), to_ms(p[_I_TS])
            # a realised print counts from its settlement time, as in the batch engine
            ts = (ft + MINUTE_MS // 2) // MINUTE_MS * MINUTE_MS if realised else stamped
            published = p[_I_PUBLISHED] if len(p) > _I_PUBLISHED else None
            published_ms = stamped if published is None else published if epoch_ms else to_ms(published)
            accepted, d = s.add(ts, ft, p[_I_RATE], p[_I_HOURS], realised, published_ms)
            if not accepted:
                continue
            if d is not None:
                lo, hi = dirty.get(s, d)
                dirty[s] = (min(lo, d[0]), max(hi, d[1]))
            if intraday and ts >= s.last_ts:
                s.last_ts = ts
                row = s.intraday(ts, epoch_ms)
                if row is not None:
                    rows.append(row)
        return rows, [s.roll_job(lo, hi) for s, (lo, hi) in dirty.items()]

    def update_frame(self, frame: pl.DataFrame, *, intraday: bool = True) -> list[Row]:
        """:meth:`update` on a print-model frame (PRINT_SCHEMA columns, and ``published_at``
        when present)."""
        columns = [*PRINT_COLUMNS, "published_at"] if "published_at" in frame.columns else PRINT_COLUMNS
        return self.update(frame.select(columns).iter_rows(), intraday=intraday)

    def current(self, venue: str, symbol: str, ts: dt.datetime, contract: str | None = None) -> Row | None:
        """The intraday row of a series as of ``ts`` (naive UTC) from the state so far
        (``contract`` None: the venue's main perpetual of the coin)."""
        s = self.series.get((venue, symbol, contract or main_contract(venue, symbol)))
        return None if s is None else s.intraday(to_ms(ts))

    def last_realised(self, venue: str, symbol: str, contract: str | None = None) -> dt.datetime | None:
        """The latest realised ``funding_time`` the series holds, or None (``contract`` None:
        the venue's main perpetual of the coin)."""
        s = self.series.get((venue, symbol, contract or main_contract(venue, symbol)))
        if s is None:
            return None
        times = [ft for ft, n in s.native.items() if n[3]]
        return from_ms(max(times)) if times else None


def compute_jobs(jobs: Sequence[RollJob]) -> list[pl.DataFrame]:
    """:meth:`RollJob.compute` of several jobs of distinct series in one call of the batch
    engine (its cost is mostly per call, not per row); results in the order of ``jobs``.
    Pure: any thread."""
    if not jobs:
        return []
    keys = [(j.series.venue, j.series.symbol, j.series.contract) for j in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError("compute_jobs: one job per series")
    first = jobs[0].series
    if len(jobs) == 1:
        return [jobs[0].compute()]
    computed = strip.roll_snapshots(
        pl.concat([j.prints for j in jobs]), annualisation=first.annualisation, max_fill=first.max_fill
    )
    parts = {
        key: part
        for key, part in computed.partition_by(
            ["venue", "symbol", "contract"], as_dict=True, maintain_order=True
        ).items()
    }
    empty = computed.clear()
    return [parts.get(key, empty) for key in keys]


def rows_frame(rows: list[Row], epoch_ms: bool = False) -> pl.DataFrame:
    """Snapshot row tuples -> a SNAPSHOT_SCHEMA frame; ``epoch_ms``: their times are epoch ms
    ints (built column by column, with no datetime per row)."""
    if not epoch_ms:
        return pl.DataFrame(rows, schema=SNAPSHOT_SCHEMA, orient="row")
    columns = zip(*rows) if rows else ((),) * len(SNAPSHOT_SCHEMA)
    return pl.DataFrame(
        [
            pl.Series(name, values, dtype=pl.Int64).cast(TS) if dtype == TS else pl.Series(name, values, dtype=dtype)
            for (name, dtype), values in zip(SNAPSHOT_SCHEMA.items(), columns)
        ]
    )
