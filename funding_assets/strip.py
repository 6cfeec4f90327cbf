"""The funding strip engine: roll and intraday snapshots from prints (DESIGN section 3).

A researcher calls it on their own prints from a notebook; the Dagster assets call the very
same functions. Everything is vectorised polars; nothing loops over prints in Python.

Rules, as implemented here:

1. **Grid.** Each print belongs to the 8-hour UTC grid window that ends at
   ``ceil(funding_time / 8h) * 8h`` (windows end 00:00, 08:00, 16:00). ``funding_time`` is
   snapped to the nearest minute first.
2. **Native window value** = the last print of a ``funding_time`` by ``ts`` (ties: the later
   row of the input wins: arrival order). A realised print is final: once one exists, later
   predicted prints for that window are ignored, and it supersedes every predicted native
   window whose span ``(funding_time - interval_hours, funding_time]`` overlaps its own (a
   venue that changes interval mid-window leaves no stale quote behind; in intraday samples
   from the realised print's ``ts`` on). A realised print's ``ts`` is its settlement time
   (:func:`funding_assets.prints.normalise`).
3. **Grid window value** (8h-equivalent rate) ``r8 = sum(rate) * 8 / sum(interval_hours)``
   over the native windows in the grid window. Its **coverage** is ``sum(interval_hours) / 8``:
   the share of the window's hours whose native windows are known (above 1: native windows
   overlap, which the pipeline flags).
4. **Roll snapshot** for a closed grid window W: ``b_k = annualise(value(W - k*8h))``,
   k = 0..7, b0 newest. W is closed once a print of a later grid window exists or a
   realised print settles exactly at W. Bucket 0 must be known (never filled). The row's
   ``as_of`` is W when the window closed within W's UTC day, otherwise the instant it
   closed (``closed_at``), so live and history agree on it and the row is filed under the
   day it became known. A window that closes after the
   end of the UTC day following the day W ends in emits no roll row (neither here nor
   live, :data:`MAX_CLOSE_LAG_DAYS`): its data would reach past the declared lookbacks.
5. **Gaps.** A missing bucket is linearly interpolated in annualised space between the
   nearest known newer and older windows when the run of missing windows is at most
   ``max_fill`` long (the older neighbour may lie beyond bucket 7). Otherwise no snapshot.
6. **Annualisation**: ``apr = r8 * 1095``; ``apy = (1 + r8) ** 1095 - 1``.
7. **Intraday snapshots** sample the strip as of every N minutes (0: at every print):
   bucket 0 is the open grid window from the prints seen so far, buckets 1..7 the windows
   before it, each as of the sample instant (no look-ahead).

Ignored prints (listed by :func:`ignored_prints` and counted by the pipeline, never dropped
silently): a print quoted before the UTC day preceding the day its grid window ends in (no
venue quotes that early), and a predicted print quoted more than a minute after its own
``funding_time`` (a prediction after settlement is no prediction). Every other print is
quoted by its window's end plus a minute, so a row depends only on prints quoted by its
``as_of`` and in the :data:`LOOKBACK_DAYS` before (see :func:`partition_snapshots`).

Output columns: ``venue, symbol, kind ('roll'|'intraday'), ts, funding_time,
interval_hours, annualisation, b0..b7, n_filled, as_of, coverage, min_coverage``:
``as_of`` is the instant the row became known (roll: rule 4; intraday: ``ts``);
``coverage`` is bucket 0's coverage (rule 3; intraday: the open window so far);
``min_coverage`` the smallest coverage of buckets 1..7, a filled bucket counting 0. Timestamps are naive UTC ``Datetime("ms")``;
``b0..b7`` are annualised decimals (0.1095 = 10.95 %).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from .errors import FundingInputError
from .prints import MS, REALISED, TS, from_epoch_ms, normalise
from .settings import ANNUALISATIONS, parse_every_minutes

N_BUCKETS = 8
GRID_HOURS = 8
GRID_MS = GRID_HOURS * 3_600_000
DAY_MS = 86_400_000
PERIODS_PER_YEAR = 1095  # 8h windows in 365 days
DEFAULT_MAX_FILL = 2
#: A roll row is emitted only when its window closes by the end of the UTC day after the
#: day the window ends in.
MAX_CLOSE_LAG_DAYS = 1
#: Days of prints before a day that its snapshots may read: a row known that day reads a
#: window ending up to MAX_CLOSE_LAG_DAYS earlier, 8 windows plus max_fill older neighbours
#: reach back 72 h more, and a window's prints may be quoted from the previous midnight.
LOOKBACK_DAYS = 5
#: A predicted print quoted this long after its own settlement still counts (clock jitter).
SETTLEMENT_GRACE_MS = 60_000

BUCKETS = [f"b{k}" for k in range(N_BUCKETS)]
KEYS = ["venue", "symbol"]
SNAPSHOT_SCHEMA: dict[str, pl.DataType] = {
    "venue": pl.String(),
    "symbol": pl.String(),
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


def annualise(r8: pl.Expr, annualisation: str) -> pl.Expr:
    """8h-equivalent rate -> annualised decimal (``apr`` simple, ``apy`` compound)."""
    if annualisation == "apr":
        return r8 * PERIODS_PER_YEAR
    if annualisation == "apy":
        return (1.0 + r8).pow(PERIODS_PER_YEAR) - 1.0
    raise FundingInputError(f"annualisation must be one of {ANNUALISATIONS}, got {annualisation!r}")


def _ms(col: str) -> pl.Expr:
    return pl.col(col).dt.epoch(MS)


def _tagged(prints: pl.DataFrame) -> pl.DataFrame:
    """Normalised prints with arrival order, grid window and the reason a rule ignores them."""
    frame = normalise(prints).select("venue", "symbol", "ts", "funding_time", "rate", "interval_hours", "kind")
    grid_ms = (_ms("funding_time") + GRID_MS - 1) // GRID_MS * GRID_MS
    ts_ms = _ms("ts")
    early = ts_ms < grid_ms // DAY_MS * DAY_MS - DAY_MS
    late = (pl.col("kind") != REALISED) & (ts_ms > _ms("funding_time") + SETTLEMENT_GRACE_MS)
    reason = (
        pl.when(early).then(pl.lit("quoted_before_previous_day")).when(late).then(pl.lit("predicted_after_settlement"))
    )
    return frame.with_row_index("arrival").with_columns(grid_end=from_epoch_ms(grid_ms), reason=reason)


def ignored_prints(prints: pl.DataFrame) -> pl.DataFrame:
    """The prints the strip rules ignore, as normalised prints with a ``reason`` column."""
    return _tagged(prints).filter(pl.col("reason").is_not_null()).drop("arrival", "grid_end")


def _prepare(prints: pl.DataFrame) -> pl.DataFrame:
    """Normalise, tag arrival order and grid window, leave out the prints a rule ignores."""
    tagged = _tagged(prints)
    return tagged.filter(pl.col("reason").is_null()).drop("reason").with_columns(realised=pl.col("kind") == REALISED)


def _superseded(p: pl.DataFrame) -> pl.DataFrame:
    """Predicted-only native windows overlapped by another native window's realised print,
    with the earliest ``ts`` of such a print (``superseded_at``)."""
    native = [*KEYS, "funding_time"]
    realised = (
        p.filter("realised")
        .group_by(native)
        .agg(
            r_hours=pl.col("interval_hours").sort_by("ts", "arrival").last(),
            r_ts=pl.col("ts").min(),
            grid_end=pl.col("grid_end").first(),
        )
        .rename({"funding_time": "r_end"})
    )
    predicted = (
        p.group_by(native)
        .agg(
            any_realised=pl.col("realised").any(),
            p_hours=pl.col("interval_hours").sort_by("ts", "arrival").last(),
            grid_end=pl.col("grid_end").first(),
        )
        .filter(~pl.col("any_realised"))
    )
    p_start = pl.col("funding_time") - pl.duration(milliseconds=(pl.col("p_hours") * 3_600_000).cast(pl.Int64))
    r_start = pl.col("r_end") - pl.duration(milliseconds=(pl.col("r_hours") * 3_600_000).cast(pl.Int64))
    return (
        predicted.join(realised, on=[*KEYS, "grid_end"])
        .filter((p_start < pl.col("r_end")) & (r_start < pl.col("funding_time")))
        .group_by(native)
        .agg(superseded_at=pl.col("r_ts").min())
    )


def _native_values(p: pl.DataFrame) -> pl.DataFrame:
    """Final value of each native window (realised beats predicted, then latest ts, then
    arrival); predicted windows that a realised print supersedes are left out."""
    return (
        p.sort([*KEYS, "funding_time", "realised", "ts", "arrival"])
        .unique(subset=[*KEYS, "funding_time"], keep="last", maintain_order=True)
        .join(_superseded(p), on=[*KEYS, "funding_time"], how="anti")
        .select(*KEYS, "funding_time", "grid_end", "rate", "interval_hours")
    )


def _grid_values(native: pl.DataFrame) -> pl.DataFrame:
    """Rule 3 per grid window: r8, coverage and the interval of its latest native window."""
    # sums in funding_time order: the same float result whatever order the rows came in
    return (
        native.sort([*KEYS, "funding_time"])
        .group_by([*KEYS, "grid_end"], maintain_order=True)
        .agg(
            r8=pl.col("rate").sum() * GRID_HOURS / pl.col("interval_hours").sum(),
            interval_hours=pl.col("interval_hours").sort_by("funding_time").last(),
            cover=pl.col("interval_hours").sum() / GRID_HOURS,
        )
    )


def _complete_grid(windows: pl.DataFrame) -> pl.DataFrame:
    """Every 8h grid end between a series' first and last window, so shifts count windows."""
    return (
        windows.group_by(KEYS)
        .agg(first=pl.col("grid_end").min(), last=pl.col("grid_end").max())
        .select(
            *KEYS,
            grid_end=pl.datetime_ranges("first", "last", interval=f"{GRID_HOURS}h", time_unit=MS),
        )
        .explode("grid_end")
    )


def _fill(frame: pl.DataFrame, depth: int, max_fill: int) -> pl.DataFrame:
    """Interpolate missing ``a1..a7`` from columns ``a0..a{depth-1}`` (rule 5).

    ``a0`` is bucket 0 and is never filled. For bucket k the nearest known newer (j < k) and
    older (j > k, possibly beyond bucket 7) columns bound the run of missing windows; the
    bucket is filled when that run is at most ``max_fill`` long.
    """
    a = [pl.col(f"a{j}") for j in range(depth)]

    def pick(index: pl.Expr) -> pl.Expr:
        return pl.coalesce([pl.when(index == j).then(a[j]) for j in range(depth)])

    buckets, filled = [], []
    for k in range(N_BUCKETS):
        if k == 0:
            buckets.append(a[0].alias("b0"))
            filled.append(pl.lit(0, pl.Int32))
            continue
        newer = pl.coalesce([pl.when(a[j].is_not_null()).then(j) for j in range(k - 1, -1, -1)])
        older = pl.coalesce([pl.when(a[j].is_not_null()).then(j) for j in range(k + 1, depth)])
        can_fill = a[k].is_null() & older.is_not_null() & ((older - newer - 1) <= max_fill)
        a_new, a_old = pick(newer), pick(older)
        interpolated = a_new + (a_old - a_new) * (k - newer) / (older - newer)
        buckets.append(pl.when(a[k].is_not_null()).then(a[k]).when(can_fill).then(interpolated).alias(f"b{k}"))
        filled.append(can_fill.cast(pl.Int32))
    return frame.with_columns(*buckets, n_filled=pl.sum_horizontal(filled).cast(pl.Int32))


def _check_options(annualisation: str, max_fill: int) -> None:
    if annualisation not in ANNUALISATIONS:
        raise FundingInputError(f"annualisation must be one of {ANNUALISATIONS}, got {annualisation!r}")
    if not 0 <= max_fill <= N_BUCKETS - 2:
        raise FundingInputError(f"max_fill must be between 0 and {N_BUCKETS - 2}, got {max_fill}")


def _coverage(depth: int) -> list[pl.Expr]:
    """``coverage`` of bucket 0 (column ``c0``) and ``min_coverage`` over buckets 1..7 (``c1..``),
    a bucket whose window is unknown (filled or missing) counting 0."""
    known = [pl.when(pl.col(f"a{k}").is_not_null()).then(pl.col(f"c{k}")).otherwise(0.0) for k in range(1, N_BUCKETS)]
    return [pl.col("c0").alias("coverage"), pl.min_horizontal(known).alias("min_coverage")]


def _finish(frame: pl.DataFrame, kind: str, annualisation: str) -> pl.DataFrame:
    complete = pl.all_horizontal([pl.col(b).is_not_null() for b in BUCKETS])
    return (
        frame.filter(complete)
        .with_columns(kind=pl.lit(kind), annualisation=pl.lit(annualisation))
        .select(list(SNAPSHOT_SCHEMA))
        .cast(SNAPSHOT_SCHEMA)
        .sort([*KEYS, "ts"])
    )


def _roll(p: pl.DataFrame, annualisation: str, max_fill: int) -> pl.DataFrame:
    """Roll snapshots (rule 4) with ``as_of`` (see the module doc)."""
    depth = N_BUCKETS + max_fill
    windows = _grid_values(_native_values(p))
    settled_at_end = (
        p.filter(pl.col("realised") & (pl.col("funding_time") == pl.col("grid_end")))
        .group_by([*KEYS, "grid_end"])
        .agg(settled=pl.col("ts").min())
    )
    first_seen = p.group_by([*KEYS, "grid_end"]).agg(first_ts=pl.col("ts").min())
    never = pl.lit(dt.datetime(9999, 1, 1), TS)
    last_close = pl.col("grid_end").dt.truncate("1d") + pl.duration(days=1 + MAX_CLOSE_LAG_DAYS)
    series = (
        _complete_grid(windows)
        .join(windows, on=[*KEYS, "grid_end"], how="left")
        .join(first_seen, on=[*KEYS, "grid_end"], how="left")
        .join(settled_at_end, on=[*KEYS, "grid_end"], how="left")
        .sort([*KEYS, "grid_end"])
        .with_columns(a0=annualise(pl.col("r8"), annualisation), c0=pl.col("cover"))
        .with_columns(
            # earliest print of any later window (a reverse running minimum)
            later=pl.col("first_ts").fill_null(never).shift(-1).cum_min(reverse=True).over(KEYS),
            **{f"a{k}": pl.col("a0").shift(k).over(KEYS) for k in range(1, depth)},
            **{f"c{k}": pl.col("c0").shift(k).over(KEYS) for k in range(1, N_BUCKETS)},
        )
        .with_columns(closed_at=pl.min_horizontal("settled", pl.when(pl.col("later") < never).then(pl.col("later"))))
        .filter(pl.col("a0").is_not_null() & pl.col("closed_at").is_not_null())
        .with_columns(
            ts=pl.col("grid_end"),
            funding_time=pl.col("grid_end"),
            # the window's end, unless it closed only after that UTC day (then the close)
            as_of=pl.when(pl.col("closed_at") < pl.col("grid_end").dt.truncate("1d") + pl.duration(days=1))
            .then(pl.col("grid_end"))
            .otherwise(pl.col("closed_at")),
        )
        .filter(pl.col("as_of") < last_close)
    )
    return _finish(_fill(series, depth, max_fill).with_columns(_coverage(depth)), "roll", annualisation)


def roll_snapshots(
    prints: pl.DataFrame, *, annualisation: str = "apr", max_fill: int = DEFAULT_MAX_FILL
) -> pl.DataFrame:
    """One row per closed 8h grid window: the strip b0..b7 (annualised) as of its close.

    ``prints`` needs ``venue, symbol, ts, funding_time, rate`` and optionally
    ``interval_hours`` (default 8) and ``kind`` (default ``realised``); see
    :mod:`funding_assets.prints`. ``ts = funding_time`` = the window's end (UTC).
    """
    _check_options(annualisation, max_fill)
    return _roll(_prepare(prints), annualisation, max_fill)


def _sample_instants(p: pl.DataFrame, every_minutes: int) -> pl.DataFrame:
    """Sample instants per series: a clock grid of ``every_minutes``, or every print's ts."""
    if every_minutes == 0:
        return p.select(*KEYS, t=pl.col("ts")).unique().sort([*KEYS, "t"])
    step = every_minutes * 60_000
    return (
        p.group_by(KEYS)
        .agg(first=pl.col("ts").min(), last=pl.col("ts").max())
        .with_columns(first=from_epoch_ms((_ms("first") + step - 1) // step * step))
        .filter(pl.col("first") <= pl.col("last"))
        .select(
            *KEYS,
            t=pl.datetime_ranges("first", "last", interval=f"{every_minutes}m", time_unit=MS),
        )
        .explode("t")
        .sort([*KEYS, "t"])
    )


def _asof_window_values(p: pl.DataFrame) -> pl.DataFrame:
    """Each grid window's running r8 and coverage after every print, for as-of look-ups.

    A print replaces its native window's value unless a realised print already fixed it;
    a superseded predicted window drops out at the superseding print's ts; the grid window's
    running sums of rate and hours move by the change each event makes.
    """
    native = [*KEYS, "funding_time"]
    sup = _superseded(p)
    retract = (
        p.join(sup, on=native)
        .group_by(native)
        .agg(ts=pl.col("superseded_at").first(), grid_end=pl.col("grid_end").first())
        .with_columns(
            rate=pl.lit(0.0),
            interval_hours=pl.lit(0.0),
            realised=pl.lit(True),
            # after every print at the same instant
            arrival=pl.lit(2**62, pl.Int64),
        )
    )
    cols = [*native, "ts", "grid_end", "rate", "interval_hours", "realised", "arrival"]
    events = (
        pl.concat([p.select(cols).with_columns(pl.col("arrival").cast(pl.Int64)), retract.select(cols)])
        .sort([*KEYS, "ts", "arrival"])
        .with_columns(
            fixed_rate=pl.when("realised").then("rate").forward_fill().over(native),
            fixed_hours=pl.when("realised").then("interval_hours").forward_fill().over(native),
        )
        .with_columns(
            value=pl.coalesce("fixed_rate", "rate"),
            hours=pl.coalesce("fixed_hours", "interval_hours"),
        )
        .with_columns(
            d_value=pl.col("value") - pl.col("value").shift(1).over(native).fill_null(0.0),
            d_hours=pl.col("hours") - pl.col("hours").shift(1).over(native).fill_null(0.0),
        )
    )
    window = [*KEYS, "grid_end"]
    return (
        events.with_columns(
            sum_rate=pl.col("d_value").cum_sum().over(window),
            sum_hours=pl.col("d_hours").cum_sum().over(window),
        )
        .select(
            *window,
            "ts",
            r8=pl.col("sum_rate") * GRID_HOURS / pl.col("sum_hours"),
            interval_hours=pl.col("hours"),
            cover=pl.col("sum_hours") / GRID_HOURS,
        )
        # the state after the last event at a given instant is what an as-of sample sees
        .unique(subset=[*window, "ts"], keep="last", maintain_order=True)
        .filter(pl.col("interval_hours") > 0)
        .sort("ts")
    )


def _intraday(p: pl.DataFrame, every_minutes: int, annualisation: str, max_fill: int) -> pl.DataFrame:
    depth = N_BUCKETS + max_fill
    values = _asof_window_values(p)
    t_ms = _ms("t")
    samples = _sample_instants(p, every_minutes).with_columns(
        open_end=from_epoch_ms(t_ms // GRID_MS * GRID_MS + GRID_MS)
    )
    frame = samples.sort("t")
    for k in range(depth):
        right = values.rename({"r8": f"r{k}", "interval_hours": f"h{k}", "cover": f"c{k}", "grid_end": f"g{k}"})
        frame = frame.with_columns((pl.col("open_end") - pl.duration(hours=GRID_HOURS * k)).alias(f"g{k}")).join_asof(
            right,
            left_on="t",
            right_on="ts",
            by=[*KEYS, f"g{k}"],
            strategy="backward",
            check_sortedness=False,
        )
        frame = frame.drop([c for c in frame.columns if c.startswith("ts")] + [f"g{k}"])
        if k:
            frame = frame.drop(f"h{k}")
    frame = frame.with_columns(**{f"a{k}": annualise(pl.col(f"r{k}"), annualisation) for k in range(depth)}).filter(
        pl.col("a0").is_not_null()
    )
    frame = frame.with_columns(ts=pl.col("t"), funding_time=pl.col("open_end"), interval_hours="h0", as_of=pl.col("t"))
    return _finish(_fill(frame, depth, max_fill).with_columns(_coverage(depth)), "intraday", annualisation)


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
    return _intraday(_prepare(prints), every_minutes, annualisation, max_fill)


def partition_snapshots(
    prints: pl.DataFrame,
    *,
    every: str | int = "10m",
    annualisation: str = "apr",
    max_fill: int = DEFAULT_MAX_FILL,
) -> pl.DataFrame:
    """Roll and intraday snapshots as the ``curve_snapshots`` asset stores them.

    Same as :func:`roll_snapshots` + :func:`intraday_snapshots`, except that intraday samples
    of a UTC day stop at that day's last print. The asset files rows by the UTC day of
    ``as_of``; the rows known on a day depend only on prints quoted that day and the
    :data:`LOOKBACK_DAYS` before it, so they are identical whether the day is computed alone
    or inside a range.
    """
    _check_options(annualisation, max_fill)
    every_minutes = parse_every_minutes(str(every), setting="every")
    p = _prepare(prints)
    roll = _roll(p, annualisation, max_fill)
    last_print_of_day = p.group_by(*KEYS, day=pl.col("ts").dt.truncate("1d")).agg(last_print=pl.col("ts").max())
    intraday = (
        _intraday(p, every_minutes, annualisation, max_fill)
        .with_columns(day=pl.col("ts").dt.truncate("1d"))
        .join(last_print_of_day, on=[*KEYS, "day"], how="inner")
        .filter(pl.col("ts") <= pl.col("last_print"))
        .drop("day", "last_print")
    )
    return pl.concat([roll, intraday]).sort([*KEYS, "kind", "ts"])
