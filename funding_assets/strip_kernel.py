"""The strip's numeric kernel: each series' prints walked once, in numba (DESIGN section 3).

:mod:`funding_assets.strip` normalises prints, orders them and builds frames; this module
holds every rule of the strip once, as code over plain arrays, for batch and streaming
alike. Inputs are one array per print column, epoch milliseconds for times, series laid
out as contiguous segments, each in ``(ts, published_at, arrival)`` order (``arrival`` =
position in the segment):

- ``ts``, ``ft`` (``funding_time``, snapped to the minute), ``pub`` (``published_at``):
  int64 epoch ms; a realised print's ``ts`` is its ``ft``;
- ``rate`` (decimal fraction per native interval), ``hours`` (the native interval):
  float64; ``realised``: uint8, 1 for a realised print.

A segment is walked in at most four passes over its prints:

1. native windows, one per ``funding_time``; the ignore rules (:func:`reason`) apply here;
2. each native window's final winner (the last realised print, else the last quote) and,
   per grid window, whether a realised print can supersede any quote at all;
3. only if one can, backwards: how each quote stands against rule 2's superseding (never;
   from its own ts; or later, when it is still its window's latest quote: it then drops
   out at the realised print's instant, after the prints of that instant published no
   later, in ``funding_time`` order among windows dropping out together);
4. intraday only, forwards: each grid window's running rate and hours sums as every print
   (and every drop-out) arrives, sampled as of each sample instant; a sample reads only
   what came before it, and buckets 1..7 are refilled only when a closed window changes.

Roll rows come from the native windows' final values. Rows are written into arrays the
caller provides, one per output column, and appear per segment in order: the intraday
samples by ``ts``, then the roll rows by ``ts``. Everything is linear in prints.

Floating point follows the order the rules state, so results are reproducible to the bit:
a grid window's roll value sums its native windows in ``funding_time`` order (compensated,
Kahan, as polars sums a group); its running (as-of) value adds, print by print, the change
each print makes to its native window. Division by zero gives IEEE inf/nan (a window whose
every quote was superseded), never an exception.
"""

from __future__ import annotations

import numba
import numpy as np

N_BUCKETS = 8
GRID_HOURS = 8
HOUR_MS = 3_600_000
GRID_MS = GRID_HOURS * HOUR_MS
DAY_MS = 86_400_000
PERIODS_PER_YEAR = 1095  # 8h windows in 365 days
#: A predicted print quoted this long after its own settlement still counts (clock jitter).
SETTLEMENT_GRACE_MS = 60_000
#: A roll row is emitted only when its window closes by the end of the UTC day after the
#: day the window ends in.
MAX_CLOSE_LAG_DAYS = 1
#: "No such instant": later than any print.
NEVER = np.iinfo(np.int64).max
#: Codes of :func:`reason`.
KEPT, QUOTED_TOO_EARLY, PREDICTED_AFTER_SETTLEMENT = 0, 1, 2
#: How a quote stands against the realised prints of its grid window (:func:`_supersede`).
_NEVER_VOID, _VOID, _VOID_LATER, _VOID_LATER_RETRACT = 0, 1, 2, 3

_JIT = dict(cache=True, nogil=True, error_model="numpy")


@numba.njit(**_JIT)
def grid_end(ft: int) -> int:
    """End of the 8h grid window a native window settling at ``ft`` (ms) belongs to."""
    return (ft + GRID_MS - 1) // GRID_MS * GRID_MS


@numba.njit(**_JIT)
def reason(ts: int, ft: int, realised: int) -> int:
    """Why the strip ignores a print (:data:`QUOTED_TOO_EARLY`,
    :data:`PREDICTED_AFTER_SETTLEMENT`), or :data:`KEPT`."""
    if ts < grid_end(ft) // DAY_MS * DAY_MS - DAY_MS:
        return QUOTED_TOO_EARLY
    if realised == 0 and ts > ft + SETTLEMENT_GRACE_MS:
        return PREDICTED_AFTER_SETTLEMENT
    return KEPT


@numba.njit(**_JIT)
def reasons(ts: np.ndarray, ft: np.ndarray, realised: np.ndarray) -> np.ndarray:
    """:func:`reason` of every print (uint8)."""
    out = np.empty(ts.size, np.uint8)
    for i in range(ts.size):
        out[i] = reason(ts[i], ft[i], realised[i])
    return out


@numba.njit(**_JIT)
def annualise(r8: float, apy: bool) -> float:
    """8h-equivalent rate -> annualised decimal: ``apr`` simple, ``apy`` compound."""
    if apy:
        return (1.0 + r8) ** float(PERIODS_PER_YEAR) - 1.0
    return r8 * float(PERIODS_PER_YEAR)


@numba.njit(**_JIT)
def _span_ms(hours: float) -> int:
    return np.int64(hours * float(HOUR_MS))


@numba.njit(**_JIT)
def is_stored(ts: np.ndarray, ft: np.ndarray, hours: np.ndarray, realised: np.ndarray) -> bool:
    """Whether prints are as :func:`funding_assets.prints.normalise` leaves them:
    ``funding_time`` on a whole minute, a realised print's ``ts`` its ``funding_time``,
    ``interval_hours`` positive."""
    for i in range(ts.size):
        if ft[i] % 60_000 != 0 or (realised[i] and ts[i] != ft[i]) or not hours[i] > 0:
            return False
    return True


@numba.njit(**_JIT)
def is_ordered(ts: np.ndarray, pub: np.ndarray, starts: np.ndarray) -> bool:
    """Whether every segment is in ``(ts, published_at)`` order."""
    for s in range(starts.size - 1):
        for i in range(starts[s] + 1, starts[s + 1]):
            if ts[i] < ts[i - 1] or (ts[i] == ts[i - 1] and pub[i] < pub[i - 1]):
                return False
    return True


@numba.njit(**_JIT)
def ordering(ts: np.ndarray, pub: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Row permutation that puts each segment in ``(ts, published_at, arrival)`` order (stable sorts)."""
    perm = np.arange(ts.size)
    for s in range(starts.size - 1):
        a, b = starts[s], starts[s + 1]
        by_pub = np.argsort(pub[a:b], kind="mergesort")
        by_ts = np.argsort(ts[a:b][by_pub], kind="mergesort")
        perm[a:b] = a + by_pub[by_ts]
    return perm


@numba.njit(**_JIT)
def output_rows(
    ts: np.ndarray, ft: np.ndarray, starts: np.ndarray, every_ms: int, roll: bool, emit_lo: int, emit_hi: int
) -> int:
    """An upper bound of the rows :func:`snapshots` writes (to size its output arrays)."""
    total = 0
    for s in range(starts.size - 1):
        a, b = starts[s], starts[s + 1]
        if a == b:
            continue
        if every_ms == 0:
            total += b - a
        elif every_ms > 0:
            lo, hi = max(ts[a:b].min(), emit_lo), min(ts[a:b].max(), emit_hi)
            if hi >= lo:
                total += (hi - lo) // every_ms + 2
        if roll:
            total += (ft[a:b].max() - ft[a:b].min()) // GRID_MS + 2
    return total


@numba.njit(**_JIT)
def _fill(a: np.ndarray, known: np.ndarray, depth: int, max_fill: int, out: np.ndarray, row: int) -> int:
    """Rule 5 on annualised values ``a[0..depth)`` (``known`` marks the windows that have
    one; ``a[0]`` is known): buckets into ``out[:, row]``. Returns how many were filled, or
    -1 when a gap cannot be filled (no snapshot)."""
    out[0, row] = a[0]
    filled = 0
    newer = 0
    for k in range(1, N_BUCKETS):
        if known[k]:
            out[k, row] = a[k]
            newer = k
            continue
        older = -1
        for j in range(k + 1, depth):
            if known[j]:
                older = j
                break
        if older < 0 or older - newer - 1 > max_fill:
            return -1
        a_new, a_old = a[newer], a[older]
        out[k, row] = a_new + (a_old - a_new) * float(k - newer) / float(older - newer)
        filled += 1
    return filled


@numba.njit(**_JIT)
def _min_coverage(cover: np.ndarray, known: np.ndarray) -> float:
    """Smallest coverage of buckets 1..7, a bucket whose window is unknown counting 0."""
    low = cover[1] if known[1] else 0.0
    for k in range(2, N_BUCKETS):
        c = cover[k] if known[k] else 0.0
        if c < low:
            low = c
    return low


@numba.njit(**_JIT)
def _grown(a: np.ndarray, size: int) -> np.ndarray:
    out = np.empty(size, a.dtype)
    out[: a.size] = a
    return out


@numba.njit(**_JIT)
def _kahan_add(total: float, lost: float, value: float) -> tuple[float, float]:
    """One step of compensated (Kahan) summation: the new total and the low-order part lost."""
    y = value - lost
    t = total + y
    return t, (t - total) - y


@numba.njit(**_JIT)
def _supersede(
    k: int,
    hours: float,
    n_ft: np.ndarray,
    n_real: np.ndarray,
    r_hours: np.ndarray,
    members: np.ndarray,
    lo: int,
    hi: int,
) -> int:
    """Rule 2: the earliest instant a realised print of another native window of the same
    grid window (its natives ``members[lo:hi]``) supersedes a quote of native ``k`` spanning
    ``hours``: the realised window's span overlaps the quoted one. :data:`NEVER` if none."""
    end = n_ft[k]
    start = end - _span_ms(hours)
    first = NEVER
    for j in range(lo, hi):
        r = members[j]
        r_end = n_ft[r]
        if n_real[r] and r_end != end and start < r_end and r_end - _span_ms(r_hours[r]) < end and r_end < first:
            first = r_end
    return first


@numba.njit(**_JIT)
def snapshots(
    ts: np.ndarray,
    ft: np.ndarray,
    pub: np.ndarray,
    rate: np.ndarray,
    hours: np.ndarray,
    realised: np.ndarray,
    starts: np.ndarray,
    order: np.ndarray,
    every_ms: int,
    roll: bool,
    apy: bool,
    max_fill: int,
    day_cut: bool,
    emit_lo: int,
    emit_hi: int,
    out,
    nid: np.ndarray,
    code: np.ndarray,
) -> int:
    """Roll and intraday rows of the segments ``order`` lists, in that order, into ``out``;
    returns the number of rows written.

    ``out`` = (ts, funding_time, interval_hours (nan = none), buckets (8 x rows),
    n_filled, as_of, coverage, min_coverage, bounds): one entry per row, except ``as_of``,
    written for intraday rows only when ``roll`` (otherwise it is ``ts``), and ``bounds``
    (``order.size`` x 3): the first row of each segment, its first roll row and its end.

    ``nid`` (int32) and ``code`` (uint8): scratch, at least as long as the longest segment.

    ``every_ms``: intraday samples every ``every_ms`` on the UTC clock, 0 at every print's
    ``ts``, negative none. ``roll``: roll rows. ``day_cut``: samples only up to the last
    print of their UTC day (the stored partitions). Rows whose ``as_of`` lies outside
    ``[emit_lo, emit_hi)`` are not written. Prints that :func:`reason` ignores are skipped.
    """
    ts_out, ft_out, ih_out, b_out, nf_out, asof_out, cov_out, mcov_out, bounds = out
    depth = N_BUCKETS + max_fill
    a = np.empty(depth, np.float64)
    known = np.zeros(depth, np.bool_)
    cover = np.empty(depth, np.float64)
    cache_b = np.empty((N_BUCKETS, 1), np.float64)
    row = 0
    for position in range(order.size):
        s = order[position]
        bounds[position, :] = row
        lo_row, hi_row = starts[s], starts[s + 1]
        size = hi_row - lo_row
        if size == 0:
            continue
        # --- pass 1: native windows (one per funding_time), kept prints only --------------
        lookup = numba.typed.Dict.empty(numba.types.int64, numba.types.int64)
        n_ft = np.empty(64, np.int64)
        m = 0
        last_ft, last_id = NEVER, -1
        t_first, t_last = NEVER, NEVER
        for i in range(lo_row, hi_row):
            if reason(ts[i], ft[i], realised[i]) != KEPT:
                nid[i - lo_row] = -1
                continue
            if ft[i] != last_ft:
                last_ft = ft[i]
                last_id = lookup.get(last_ft, -1)
                if last_id < 0:
                    if m == n_ft.size:
                        n_ft = _grown(n_ft, 2 * m)
                    last_id = m
                    lookup[last_ft] = m
                    n_ft[m] = last_ft
                    m += 1
            nid[i - lo_row] = last_id
            if t_first == NEVER:
                t_first = ts[i]
            t_last = ts[i]
        if m == 0:
            continue
        n_ft = n_ft[:m]
        # final winners: the last realised print, else the last quote (in print order)
        n_first = np.full(m, NEVER, np.int64)  # the ts of its first print
        n_real = np.zeros(m, np.bool_)
        r_rate = np.empty(m, np.float64)
        r_hours = np.empty(m, np.float64)
        p_rate = np.empty(m, np.float64)
        p_hours = np.empty(m, np.float64)
        p_widest = np.zeros(m, np.float64)  # the longest interval a quote of it spans
        for i in range(lo_row, hi_row):
            k = nid[i - lo_row]
            if k < 0:
                continue
            if n_first[k] == NEVER:
                n_first[k] = ts[i]
            if realised[i]:
                n_real[k] = True
                r_rate[k] = rate[i]
                r_hours[k] = hours[i]
            else:
                p_rate[k] = rate[i]
                p_hours[k] = hours[i]
                p_widest[k] = max(p_widest[k], hours[i])
        # grid windows g_base, g_base + 8h, ..., each with its natives in funding_time order
        members = np.argsort(n_ft)
        g_base = grid_end(n_ft[members[0]])
        n_grids = (grid_end(n_ft[members[m - 1]]) - g_base) // GRID_MS + 1
        n_grid = np.empty(m, np.int64)
        g_lo = np.zeros(n_grids + 1, np.int64)
        for j in range(m):
            k = members[j]
            n_grid[k] = (grid_end(n_ft[k]) - g_base) // GRID_MS
            g_lo[n_grid[k] + 1] = j + 1
        for g in range(1, n_grids + 1):
            g_lo[g] = max(g_lo[g], g_lo[g - 1])
        # can a realised print supersede any quote at all? (a wider quote overlaps more)
        supersedes = False
        for k in range(m):
            g = n_grid[k]
            if (
                p_widest[k] > 0
                and _supersede(k, p_widest[k], n_ft, n_real, r_hours, members, g_lo[g], g_lo[g + 1]) != NEVER
            ):
                supersedes = True
                break

        # --- intraday: passes 2 and 3 -------------------------------------------------------
        if every_ms >= 0 and supersedes:
            # pass 2, backwards: how each quote stands against rule 2's superseding
            next_ts = np.full(m, NEVER, np.int64)
            cached_k, cached_h, cached = -1, 0.0, NEVER
            for i in range(hi_row - 1, lo_row - 1, -1):
                k = nid[i - lo_row]
                if k < 0:
                    continue
                if not realised[i]:
                    if k != cached_k or hours[i] != cached_h:
                        g = n_grid[k]
                        cached = _supersede(k, hours[i], n_ft, n_real, r_hours, members, g_lo[g], g_lo[g + 1])
                        cached_k, cached_h = k, hours[i]
                    if cached == NEVER:
                        code[i - lo_row] = _NEVER_VOID
                    elif cached <= ts[i]:
                        code[i - lo_row] = _VOID
                    elif cached < next_ts[k]:
                        # no later print of the window before the realised one: it drops out then
                        code[i - lo_row] = _VOID_LATER_RETRACT
                    else:
                        code[i - lo_row] = _VOID_LATER
                next_ts[k] = ts[i]
        if every_ms >= 0:
            # pass 3, forwards: running sums per grid window, sampled as of each instant
            w_seen = np.zeros(m, np.bool_)
            w_fixed = np.zeros(m, np.bool_)
            w_val = np.empty(m, np.float64)
            w_hours = np.empty(m, np.float64)
            w_frate = np.empty(m, np.float64)
            w_fhours = np.empty(m, np.float64)
            g_known = np.zeros(n_grids, np.bool_)
            g_rate = np.empty(n_grids, np.float64)
            g_hours = np.empty(n_grids, np.float64)
            g_ih = np.full(n_grids, np.nan)
            g_a = np.empty(n_grids, np.float64)  # annualised r8, recomputed when stale
            g_stale = np.zeros(n_grids, np.bool_)
            cache_top, cached, cache_filled, cache_low = -1, False, -1, 0.0
            pend_t = np.empty(m, np.int64)
            pend_k = np.empty(m, np.int64)
            n_pend = 0
            pend_first = NEVER
            if every_ms > 0:
                next_sample = max(-(-t_first // every_ms), -(-emit_lo // every_ms)) * every_ms
            else:
                next_sample = NEVER
            pending_sample = NEVER  # every_ms == 0: the last print's ts, not yet sampled
            last_print = NEVER
            i = lo_row
            while True:
                # the next event: a print, or a quote dropping out (retract) at (T, T, after all)
                while i < hi_row and nid[i - lo_row] < 0:
                    i += 1
                at_end = i >= hi_row
                print_ts = NEVER if at_end else ts[i]
                retract = n_pend > 0 and (
                    at_end or pend_first < print_ts or (pend_first == print_ts and pend_first < pub[i])
                )
                if not retract and at_end:
                    event_ts = NEVER
                else:
                    event_ts = pend_first if retract else print_ts
                # samples strictly before the event see everything so far
                while True:
                    if every_ms == 0:
                        t = pending_sample
                        if t == NEVER or t >= event_ts:
                            break
                        pending_sample = NEVER
                    else:
                        t = next_sample
                        if t >= event_ts or t > t_last or t >= emit_hi:
                            break
                        next_sample += every_ms
                        if day_cut and last_print != t and print_ts >= (t // DAY_MS + 1) * DAY_MS:
                            continue
                    if t < emit_lo or t >= emit_hi:
                        continue
                    g0 = t // GRID_MS * GRID_MS + GRID_MS
                    top = (g0 - g_base) // GRID_MS
                    if top < 0 or top >= n_grids or not g_known[top]:
                        continue
                    if g_stale[top]:
                        g_a[top] = annualise(g_rate[top] * float(GRID_HOURS) / g_hours[top], apy)
                        g_stale[top] = False
                    if top != cache_top:
                        cache_top, cached = top, False
                    if not cached:
                        # buckets 1..7 change only when a closed window does: computed once for
                        # the samples in between (unless bucket 1 is missing: it reads bucket 0)
                        a[0], known[0] = g_a[top], True
                        for k in range(1, depth):
                            g = top - k
                            known[k] = g >= 0 and g_known[g]
                            if known[k]:
                                if g_stale[g]:
                                    g_a[g] = annualise(g_rate[g] * float(GRID_HOURS) / g_hours[g], apy)
                                    g_stale[g] = False
                                a[k] = g_a[g]
                                cover[k] = g_hours[g] / float(GRID_HOURS)
                        cache_filled = _fill(a, known, depth, max_fill, cache_b, 0)
                        cache_low = _min_coverage(cover, known)
                        cached = known[1]
                    if cache_filled < 0:
                        continue
                    b_out[0, row] = g_a[top]
                    for k in range(1, N_BUCKETS):
                        b_out[k, row] = cache_b[k, 0]
                    ts_out[row] = t
                    ft_out[row] = g0
                    ih_out[row] = g_ih[top]
                    nf_out[row] = cache_filled
                    if roll:
                        asof_out[row] = t
                    cov_out[row] = g_hours[top] / float(GRID_HOURS)
                    mcov_out[row] = cache_low
                    row += 1
                if event_ts == NEVER:
                    break
                # apply the event to its native window and grid window
                if retract:
                    j = 0
                    for q in range(1, n_pend):
                        if pend_t[q] < pend_t[j] or (pend_t[q] == pend_t[j] and n_ft[pend_k[q]] < n_ft[pend_k[j]]):
                            j = q
                    k = pend_k[j]
                    n_pend -= 1
                    pend_t[j], pend_k[j] = pend_t[n_pend], pend_k[n_pend]
                    pend_first = NEVER
                    for q in range(n_pend):
                        pend_first = min(pend_first, pend_t[q])
                    value, span = 0.0, 0.0
                else:
                    k = nid[i - lo_row]
                    c = code[i - lo_row] if supersedes else _NEVER_VOID
                    if realised[i]:
                        w_fixed[k] = True
                        w_frate[k] = rate[i]
                        w_fhours[k] = hours[i]
                    if c == _VOID:
                        value, span = 0.0, 0.0
                    else:
                        value, span = rate[i], hours[i]
                    if c == _VOID_LATER_RETRACT:
                        g = n_grid[k]
                        pend_t[n_pend] = _supersede(k, hours[i], n_ft, n_real, r_hours, members, g_lo[g], g_lo[g + 1])
                        pend_k[n_pend] = k
                        pend_first = min(pend_first, pend_t[n_pend])
                        n_pend += 1
                    last_print = ts[i]
                    if every_ms == 0:
                        pending_sample = ts[i]
                    i += 1
                if w_fixed[k]:
                    value, span = w_frate[k], w_fhours[k]
                if w_seen[k]:
                    d_value, d_span = value - w_val[k], span - w_hours[k]
                else:
                    d_value, d_span = value - 0.0, span - 0.0
                    w_seen[k] = True
                w_val[k], w_hours[k] = value, span
                g = n_grid[k]
                if g_known[g]:
                    g_rate[g] += d_value
                    g_hours[g] += d_span
                else:
                    g_rate[g], g_hours[g] = d_value, d_span
                    g_known[g] = True
                if span > 0:
                    g_ih[g] = span
                g_stale[g] = True
                if g < cache_top:
                    cached = False

        # --- roll rows: final native values, closed windows ---------------------------------
        bounds[position, 1] = row
        if roll:
            r_known = np.zeros(n_grids, np.bool_)
            r_a = np.empty(n_grids, np.float64)
            r_cover = np.empty(n_grids, np.float64)
            r_ih = np.empty(n_grids, np.float64)
            g_first = np.full(n_grids, NEVER, np.int64)
            g_settled = np.zeros(n_grids, np.bool_)
            for g in range(n_grids):
                end = g_base + g * GRID_MS
                total_rate, total_hours, lost_rate, lost_hours = 0.0, 0.0, 0.0, 0.0
                for j in range(g_lo[g], g_lo[g + 1]):
                    k = members[j]
                    g_first[g] = min(g_first[g], n_first[k])
                    if n_real[k]:
                        value, span = r_rate[k], r_hours[k]
                        g_settled[g] = g_settled[g] or n_ft[k] == end
                    elif _supersede(k, p_hours[k], n_ft, n_real, r_hours, members, g_lo[g], g_lo[g + 1]) == NEVER:
                        value, span = p_rate[k], p_hours[k]
                    else:
                        continue  # its quote superseded: the native window drops out
                    total_rate, lost_rate = _kahan_add(total_rate, lost_rate, value)
                    total_hours, lost_hours = _kahan_add(total_hours, lost_hours, span)
                    r_known[g] = True
                    r_ih[g] = span
                if r_known[g]:
                    r_a[g] = annualise(total_rate * float(GRID_HOURS) / total_hours, apy)
                    r_cover[g] = total_hours / float(GRID_HOURS)
            later = NEVER  # the first print of any later grid window
            closes = np.empty(n_grids, np.int64)
            for g in range(n_grids - 1, -1, -1):
                closes[g] = later
                later = min(later, g_first[g])
            for g in range(n_grids):
                if not r_known[g]:
                    continue
                end = g_base + g * GRID_MS
                closed_at = min(end, closes[g]) if g_settled[g] else closes[g]
                if closed_at == NEVER:
                    continue
                day = end // DAY_MS * DAY_MS
                as_of = end if closed_at < day + DAY_MS else closed_at
                if as_of >= day + (1 + MAX_CLOSE_LAG_DAYS) * DAY_MS or as_of < emit_lo or as_of >= emit_hi:
                    continue
                for k in range(depth):
                    known[k] = g - k >= 0 and r_known[g - k]
                    if known[k]:
                        a[k] = r_a[g - k]
                        cover[k] = r_cover[g - k]
                filled = _fill(a, known, depth, max_fill, b_out, row)
                if filled < 0:
                    continue
                ts_out[row] = end
                ft_out[row] = end
                ih_out[row] = r_ih[g]
                nf_out[row] = filled
                asof_out[row] = as_of
                cov_out[row] = cover[0]
                mcov_out[row] = _min_coverage(cover, known)
                row += 1
        bounds[position, 2] = row
    return row
