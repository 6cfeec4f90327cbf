"""The strip engine as vectorised polars: the reference the numba engine is tested against.

This is :mod:`funding_assets.strip` as it was before the kernel (:mod:`funding_assets.strip_kernel`)
replaced it, kept verbatim: every rule of DESIGN section 3 written as joins, shifts and as-of
joins over whole frames, slow but plain to read. ``test_strip_oracle.py`` checks that the
engine's rows equal this module's, column by column, on generated prints.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from funding_assets.errors import FundingInputError
from funding_assets.prints import MS, REALISED, STRIP_COLUMNS, TS, from_epoch_ms, normalise
from funding_assets.settings import ANNUALISATIONS, parse_every_minutes

N_BUCKETS = 8
GRID_HOURS = 8
GRID_MS = GRID_HOURS * 3_600_000
DAY_MS = 86_400_000
PERIODS_PER_YEAR = 1095  # 8h windows in 365 days
DEFAULT_MAX_FILL = 2
#: A roll row is emitted only when its window closes by the end of the UTC day after the
#: day the window ends in.
MAX_CLOSE_LAG_DAYS = 1


def lookback_days(max_fill: int) -> int:
    """Days of prints before a day that its snapshots may read: a row known that day reads
    a window ending up to :data:`MAX_CLOSE_LAG_DAYS` earlier, its 8 windows plus
    ``max_fill`` older neighbours reach back ``(7 + max_fill) * 8h`` more, and a window's
    prints may be quoted from the previous midnight."""
    return MAX_CLOSE_LAG_DAYS + -(-(N_BUCKETS - 1 + max_fill) * GRID_HOURS // 24) + 1


#: :func:`lookback_days` of the default ``max_fill`` (5 days), the asset's declared lookback.
LOOKBACK_DAYS = lookback_days(DEFAULT_MAX_FILL)
#: A predicted print quoted this long after its own settlement still counts (clock jitter).
SETTLEMENT_GRACE_MS = 60_000
#: Reasons :func:`ignored_prints` gives.
QUOTED_TOO_EARLY = "quoted_before_previous_day"
PREDICTED_AFTER_SETTLEMENT = "predicted_after_settlement"
#: Order of a native window's prints: the last one wins (``arrival`` = input row order).
ORDER = ("ts", "published_at", "arrival")

BUCKETS = [f"b{k}" for k in range(N_BUCKETS)]
#: The key of a series: canonical coin ``symbol``, contract type ``contract`` on ``venue``.
KEYS = ["venue", "symbol", "contract"]
CONTRACT = "contract"
#: Stands in for a null ``contract`` inside the engine (polars joins never match nulls, and
#: :func:`~funding_assets.prints.normalise` would fill in a main perpetual); never seen outside it.
_NO_CONTRACT = "\x00"
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


def annualise(r8: pl.Expr, annualisation: str) -> pl.Expr:
    """8h-equivalent rate -> annualised decimal (``apr`` simple, ``apy`` compound)."""
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


def _public_contract(frame: pl.DataFrame) -> pl.DataFrame:
    """Undo the engine's stand-in for a null ``contract``."""
    contract = pl.col(CONTRACT)
    return frame.with_columns(pl.when(contract != _NO_CONTRACT).then(contract).alias(CONTRACT))


#: Columns of a print the engine reads, the series key first.
_PRINT_COLUMNS = [*KEYS, *(c for c in STRIP_COLUMNS if c not in KEYS)]


def _ms(col: str) -> pl.Expr:
    return pl.col(col).dt.epoch(MS)


def _tagged(prints: pl.DataFrame) -> pl.DataFrame:
    """Normalised prints with arrival order, grid window and the reason a rule ignores them."""
    # an absent or null contract is the venue's main perpetual of the coin (as stored);
    # for a venue this package does not know it stays null, one series per (venue, symbol),
    # held as a stand-in so that joins on KEYS match it (:func:`_public_contract` undoes it)
    frame = (
        normalise(with_contract(prints))
        .with_columns(pl.col(CONTRACT).fill_null(_NO_CONTRACT))
        .select(*_PRINT_COLUMNS, "published_at")
    )
    grid_ms = (_ms("funding_time") + GRID_MS - 1) // GRID_MS * GRID_MS
    ts_ms = _ms("ts")
    early = ts_ms < grid_ms // DAY_MS * DAY_MS - DAY_MS
    late = (pl.col("kind") != REALISED) & (ts_ms > _ms("funding_time") + SETTLEMENT_GRACE_MS)
    reason = pl.when(early).then(pl.lit(QUOTED_TOO_EARLY)).when(late).then(pl.lit(PREDICTED_AFTER_SETTLEMENT))
    return frame.with_row_index("arrival").with_columns(grid_end=from_epoch_ms(grid_ms), reason=reason)


def ignored_prints(prints: pl.DataFrame) -> pl.DataFrame:
    """The prints the strip rules ignore (see the module doc), with a ``reason`` column.

    Normalised print columns (``venue, symbol, contract, ts, funding_time, rate,
    interval_hours, kind, published_at``; ``contract`` null when ``prints`` has none) plus
    ``reason``: ``quoted_before_previous_day`` or
    ``predicted_after_settlement``. The engine leaves out exactly these rows (same code).
    """
    return _public_contract(_tagged(prints).filter(pl.col("reason").is_not_null()).drop("arrival", "grid_end"))


def _prepare(prints: pl.DataFrame) -> pl.DataFrame:
    """Normalise, tag arrival order and grid window, leave out the prints a rule ignores.

    A null ``contract`` is :data:`_NO_CONTRACT` from here on; :func:`_finish` turns it back
    into null."""
    tagged = _tagged(prints)
    return tagged.filter(pl.col("reason").is_null()).drop("reason").with_columns(realised=pl.col("kind") == REALISED)


def _span_start(end: str, hours: str) -> pl.Expr:
    return pl.col(end) - pl.duration(milliseconds=(pl.col(hours) * 3_600_000).cast(pl.Int64))


def _voided_from(p: pl.DataFrame) -> pl.DataFrame:
    """Superseding (rule 2): for each ``(venue, symbol, contract, funding_time, interval_hours)`` a
    predicted print quotes, ``voided_from`` = the ts of the earliest realised print of
    another native window of the same grid window whose span overlaps the quoted span
    ``(funding_time - interval_hours, funding_time]`` (quotes never voided are absent).

    From that instant a quote with that span counts for nothing: a native window whose
    latest print is such a quote is left out (its own realised print, final, counts).
    """
    native = [*KEYS, "funding_time"]
    realised = (
        p.filter("realised")
        .sort([*KEYS, *ORDER])
        .group_by(native)
        .agg(r_hours=pl.col("interval_hours").last(), r_ts=pl.col("ts").min(), grid_end=pl.col("grid_end").first())
        .rename({"funding_time": "r_end"})
    )
    quotes = p.filter(~pl.col("realised")).select(*KEYS, "grid_end", "funding_time", "interval_hours").unique()
    overlap = (_span_start("funding_time", "interval_hours") < pl.col("r_end")) & (
        _span_start("r_end", "r_hours") < pl.col("funding_time")
    )
    return (
        quotes.join(realised, on=[*KEYS, "grid_end"])
        .filter((pl.col("r_end") != pl.col("funding_time")) & overlap)
        .group_by(*native, "interval_hours")
        .agg(voided_from=pl.col("r_ts").min())
    )


def _native_values(p: pl.DataFrame) -> pl.DataFrame:
    """Final value of each native window (realised beats predicted, then the latest ts, then
    the latest ``published_at``, then arrival); a window whose winning quote a realised
    print supersedes is left out."""
    return (
        p.sort([*KEYS, "funding_time", "realised", *ORDER])
        .unique(subset=[*KEYS, "funding_time"], keep="last", maintain_order=True)
        .join(_voided_from(p), on=[*KEYS, "funding_time", "interval_hours"], how="left")
        .filter(pl.col("realised") | pl.col("voided_from").is_null())
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
        .pipe(_public_contract)
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

    ``prints`` needs ``venue, symbol, ts, funding_time, rate`` and optionally ``contract``
    (default null), ``interval_hours`` (default 8) and ``kind`` (default ``realised``); see
    :mod:`funding_assets.prints`. One strip per (venue, symbol, contract). ``ts =
    funding_time`` = the window's end (UTC).
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

    A print replaces its native window's value unless a realised print already fixed it. A
    quote that a realised print supersedes (:func:`_voided_from`) counts for nothing (rate
    and hours 0) from that print's ts on, or from its own ts if quoted after it. The grid
    window's running sums of rate and hours move by the change each event makes; its
    ``interval_hours`` is the one of the native window its latest counted print belongs to.
    """
    native = [*KEYS, "funding_time"]
    quotes = (
        p.join(_voided_from(p), on=[*native, "interval_hours"], how="left")
        .sort([*native, *ORDER])
        .with_columns(next_ts=pl.col("ts").shift(-1).over(native), arrival=pl.col("arrival").cast(pl.Int64))
    )
    void = ~pl.col("realised") & (pl.col("voided_from") <= pl.col("ts"))
    cols = [*native, *ORDER, "grid_end", "rate", "interval_hours", "realised"]
    printed = quotes.with_columns(
        rate=pl.when(void).then(0.0).otherwise("rate"),
        interval_hours=pl.when(void).then(0.0).otherwise("interval_hours"),
    ).select(cols)
    # a quote still current when a realised print supersedes it drops out at that instant
    voided_later = (
        ~pl.col("realised")
        & (pl.col("voided_from") > pl.col("ts"))
        & (pl.col("next_ts").is_null() | (pl.col("voided_from") < pl.col("next_ts")))
    )
    retract = quotes.filter(voided_later).select(
        *native,
        ts=pl.col("voided_from"),
        published_at=pl.col("voided_from"),
        arrival=pl.lit(2**62, pl.Int64),  # after every print of the same instant
        grid_end="grid_end",
        rate=pl.lit(0.0),
        interval_hours=pl.lit(0.0),
        realised=pl.lit(False),
    )
    events = (
        pl.concat([printed, retract.select(cols)])
        .sort([*KEYS, *ORDER])
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
            # a superseded quote (hours 0) leaves the interval as it was
            counted_hours=pl.when(pl.col("hours") > 0).then("hours").forward_fill().over(window),
        )
        .select(
            *window,
            "ts",
            r8=pl.col("sum_rate") * GRID_HOURS / pl.col("sum_hours"),
            interval_hours=pl.col("counted_hours"),
            cover=pl.col("sum_hours") / GRID_HOURS,
        )
        # the state after the last event at a given instant is what an as-of sample sees
        .unique(subset=[*window, "ts"], keep="last", maintain_order=True)
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
    """
    _check_options(annualisation, max_fill)
    every_minutes = parse_every_minutes(str(every), setting="every")
    p = _prepare(prints)
    roll = _roll(p, annualisation, max_fill)
    last_print_of_day = _public_contract(
        p.group_by(*KEYS, day=pl.col("ts").dt.truncate("1d")).agg(last_print=pl.col("ts").max())
    )
    intraday = (
        _intraday(p, every_minutes, annualisation, max_fill)
        .with_columns(day=pl.col("ts").dt.truncate("1d"))
        .join(last_print_of_day, on=[*KEYS, "day"], how="inner", nulls_equal=True)
        .filter(pl.col("ts") <= pl.col("last_print"))
        .drop("day", "last_print")
    )
    return pl.concat([roll, intraday]).sort([*KEYS, "kind", "ts"])
