"""Fixed against floating (DESIGN section 11): implied fixed rates beside realised funding.

Pure polars, no Dagster. Rho and Pendle Boros quote, per funding future (a ``market_id``
with a term ``(term_start, maturity]`` on one underlying perpetual ``(venue, symbol,
contract)``), an implied fixed APR: the rate a trader receives (or pays) fixed against the
underlying's floating funding until maturity. The candles (``fixed_rate_candles``, columns
:data:`CANDLE_COLUMNS`) carry it as ``close``, an annualised decimal (0.036451 = 3.6451 %).

**Candle time.** A candle's ``close`` is its last quote of ``[ts, ts + interval)``, so a
row describes the state just before the candle's close time ``as_of = ts + interval``:
settlements with ``funding_time < as_of`` are known at the candle, those at or after
``as_of`` are not (a settlement at exactly the close is paid after the last quote). The
accrual to date is thus over ``(term_start, as_of)`` and the remaining term over
``[as_of, maturity]``; the two tile the term ``(term_start, maturity]``. ``days_to_maturity
= (maturity - as_of) / 1 day``. A candle of at most one day aligned to UTC days closes by
the next midnight, so a day's rows never read a settlement of a later day.

**Realised floating APR** over a set of settlements (VENUES section 7 rule 2, interval-aware):
``sum(rate) * 8760 / sum(interval_hours)`` over the *realised* prints of the underlying
(predicted prints are ignored). A settlement counts in a future's term when ``term_start <
funding_time <= maturity``. Two realised prints of one settlement: the later
``published_at`` wins (a correction), then the larger ``rate`` (so the input order never
matters). Sums run in ``funding_time`` order for the accrual to date and the whole term,
and from maturity backwards for the remaining term: each depends on the term's settlements
only, not on how many older prints were read.

Rows of :func:`fixed_vs_floating` (:data:`FIXED_VS_FLOATING_SCHEMA`), keyed by
``(provider, market_id, interval, ts, kind)``:

- ``kind = 'candle'``, one per candle: ``implied_apr`` (= ``close``); ``realised_apr_to_date``
  over the term's settlements before ``as_of``, with ``realised_hours`` (their
  ``sum(interval_hours)``: 0 and the APR null before any settlement, so a thin accrual
  shows); ``strip_b0_apr`` and ``strip_mean_apr`` (mean of ``b0..b7``) of the underlying's
  latest roll snapshot with ``as_of`` in ``[as_of - STRIP_MAX_AGE, as_of)``, and its
  ``strip_funding_time`` (all null without one; an ``apy`` strip is turned back into
  ``apr``, :func:`roll_apr`); ``carry_apr = implied_apr - realised_apr_to_date``.
- ``kind = 'outcome'``, for every future with ``maturity <= known_until`` whose realised
  prints **cover its term**, one per candle of the term (``term_start <= ts < maturity``,
  closing by maturity): the candle row's columns plus ``realised_term_apr`` and
  ``term_hours`` (the whole term), ``realised_remaining_apr`` and ``remaining_hours`` (over
  ``[as_of, maturity]``) and ``fixed_earned_apr = implied_apr - realised_remaining_apr``:
  what receiving fixed from the candle to maturity earned, annualised decimal per unit
  notional, before fees (paying fixed earned its negative). Settlements cover a window
  when their spans ``(funding_time - interval_hours, funding_time]`` leave no hole longer
  than :data:`COVERAGE_GRACE_MS` from its start to maturity and the last one settles at
  maturity. A future whose term is not covered (a missing settlement, prints that stop
  early, a maturity between settlements) has **no** outcome rows at all: an outcome is
  never computed from part of a window, and the coverage is not a column. Outcome columns
  are null on candle rows.

**No term start.** A provider that states no term start (Boros lists maturities only)
leaves ``term_start`` null: nothing accrues to date (``realised_apr_to_date``,
``realised_hours`` and ``carry_apr`` null; the strip and the provider's ``underlying_apr``
are still there), ``realised_term_apr`` and ``term_hours`` are null, and a candle has an
outcome row when the settlements cover its own remaining window ``[as_of, maturity]``.

All timestamps naive UTC ``Datetime("ms")``. Every value is a function of the inputs only,
the output is sorted by its key and does not depend on the input row order.

:func:`fixed_spreads` runs the floating spreads' engine (:func:`funding_assets.spreads.pair_spreads`,
:mod:`funding_assets.rolling`) on the implied rates of one provider, coin, maturity and
interval across underlyings.
"""

from __future__ import annotations

import datetime as dt
import math

import polars as pl

from .errors import FundingInputError
from .prints import REALISED, TS, as_utc_ms, main_contracts, normalise
from .rates.schema import CANDLE_SCHEMA, INTERVALS
from .rolling import RollingWindow
from .spreads import pair_spreads
from .strip import BUCKETS, MAX_CLOSE_LAG_DAYS, PERIODS_PER_YEAR, with_contract

HOURS_PER_YEAR = 8760
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
#: A roll snapshot older than this at a candle is no strip for it (bounds the lookback).
STRIP_MAX_AGE = dt.timedelta(hours=24)
#: Settlement times are snapped to the minute: a hole up to this long is no hole.
COVERAGE_GRACE_MS = 60_000
CANDLE = "candle"
OUTCOME = "outcome"
#: A future: the provider's market and its (fixed) underlying and term.
MARKET = ["provider", "market_id"]
UNDERLYING = ["venue", "symbol", "contract"]
FUTURE = [*MARKET, *UNDERLYING, "venue_symbol", "term_start", "maturity"]
KEY = ["provider", "market_id", "interval", "ts", "kind"]

#: Columns of the fixed-rate candle frame (:data:`~funding_assets.rates.schema.CANDLE_SCHEMA`)
#: this module reads; the others (open, high, low, source) are ignored.
CANDLE_COLUMNS: dict[str, pl.DataType] = {
    c: CANDLE_SCHEMA[c] for c in [*FUTURE, "interval", "ts", "close", "underlying_apr"]
}

FIXED_VS_FLOATING_SCHEMA: dict[str, pl.DataType] = {
    **{c: CANDLE_COLUMNS[c] for c in FUTURE},
    "interval": pl.String(),
    "ts": TS,  # candle open
    "kind": pl.String(),  # 'candle' | 'outcome'
    "as_of": TS,  # candle close, ts + interval: the row is the state just before it
    "days_to_maturity": pl.Float64(),  # (maturity - as_of) in days
    "implied_apr": pl.Float64(),  # candle close, annualised decimal
    "underlying_apr": pl.Float64(),  # the provider's own floating APR at the candle, if any
    "realised_apr_to_date": pl.Float64(),  # settlements in (term_start, as_of)
    "realised_hours": pl.Float64(),  # their sum(interval_hours)
    "strip_funding_time": TS,  # funding_time of the roll snapshot used
    "strip_b0_apr": pl.Float64(),
    "strip_mean_apr": pl.Float64(),  # mean of b0..b7
    "carry_apr": pl.Float64(),  # implied_apr - realised_apr_to_date
    "realised_term_apr": pl.Float64(),  # outcome: settlements in (term_start, maturity]
    "term_hours": pl.Float64(),
    "realised_remaining_apr": pl.Float64(),  # outcome: settlements in [as_of, maturity]
    "remaining_hours": pl.Float64(),
    "fixed_earned_apr": pl.Float64(),  # outcome: implied_apr - realised_remaining_apr
}

#: Pair key of a fixed-rate spread: a group (provider, coin, maturity, interval), then each
#: side's underlying and market.
FIXED_PAIR = [
    "provider",
    "symbol",
    "maturity",
    "interval",
    "venue_a",
    "contract_a",
    "market_id_a",
    "venue_b",
    "contract_b",
    "market_id_b",
]
FIXED_SPREAD_SCHEMA: dict[str, pl.DataType] = {
    "provider": pl.String(),
    "symbol": pl.String(),
    "maturity": TS,
    "interval": pl.String(),
    "venue_a": pl.String(),
    "contract_a": pl.String(),
    "market_id_a": pl.String(),
    "venue_b": pl.String(),
    "contract_b": pl.String(),
    "market_id_b": pl.String(),
    "ts": TS,  # candle open
    "implied_apr_a": pl.Float64(),  # close of side a, annualised decimal
    "implied_apr_b": pl.Float64(),
    "spread": pl.Float64(),  # implied_apr_a - implied_apr_b
    "mean": pl.Float64(),
    "std": pl.Float64(),
    "z": pl.Float64(),
    "upper": pl.Float64(),
    "lower": pl.Float64(),
    "signal": pl.Int8(),
    "dispersion": pl.Float64(),  # std (ddof 1) of implied_apr across the group's markets at ts
    "n_series": pl.Int32(),  # markets of the group quoted at ts
}

#: The fixed-rate spreads' statistics: the one convention of the floating spreads (the
#: current candle excluded) over 72 hourly candles, none older than 144 h, 48 needed.
FIXED_ROLLING = RollingWindow(72, min_obs=48, max_age="144h")
#: The seed notebook's fixed-rate spreads: pandas ``rolling(72)`` (the current candle
#: included, 72 needed, ddof 1), bands at 1.5 std. Equal to pandas on an hourly pair series
#: whose last 72 candles lie within 144 h (no hole longer than 72 h in them).
NOTEBOOK_FIXED_ROLLING = RollingWindow.notebook(72, max_age="144h")

#: Columns of :func:`roll_apr`.
ROLL_APR_SCHEMA: dict[str, pl.DataType] = {
    **{c: pl.String() for c in UNDERLYING},
    "funding_time": TS,
    "as_of": TS,
    "b0_apr": pl.Float64(),
    "mean_apr": pl.Float64(),
}


def interval_ms(interval: str) -> int:
    """Milliseconds of a candle interval (:data:`~funding_assets.rates.schema.INTERVALS`:
    ``1m`` .. ``1w``, ``m`` for minutes as Rho and Boros write it)."""
    if interval not in INTERVALS:
        raise FundingInputError(f"candles: interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    return INTERVALS[interval] * 1000


def lookback_days(max_term_days: float) -> int:
    """Whole UTC days before a day that its :func:`rows_for_day` read, for futures whose terms
    last at most ``max_term_days`` (``maturity - term_start``).

    Candles and realised prints back to the earliest ``term_start`` of the futures involved
    (a candle row accrues from its term start; an outcome row reads its whole term and its
    term's candles), and roll snapshots :data:`STRIP_MAX_AGE` before the earliest of those
    candles plus the day a roll may close late (:data:`funding_assets.strip.MAX_CLOSE_LAG_DAYS`):
    ``ceil(max_term_days) + 2``. Prints and rolls up to the end of the day itself for candles
    of at most a day aligned to UTC days (a longer candle, ``1w``, reads to its close). A
    future without a term start has an outcome row per candle read: ``max_term_days`` must
    then also cover its candles (maturity minus its first candle).
    """
    if not max_term_days > 0:
        raise FundingInputError(f"max_term_days must be positive, got {max_term_days!r}")
    strip_days = math.ceil(STRIP_MAX_AGE / dt.timedelta(days=1)) + MAX_CLOSE_LAG_DAYS
    return math.ceil(max_term_days) + strip_days


def rows_for_day(frame: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    """The rows of :func:`fixed_vs_floating` a daily partition ``day`` stores: candle rows
    whose ``ts`` is on that UTC day and outcome rows of futures maturing on it."""
    candle = (pl.col("kind") == CANDLE) & (pl.col("ts").dt.date() == day)
    outcome = (pl.col("kind") == OUTCOME) & (pl.col("maturity").dt.date() == day)
    return frame.filter(candle | outcome)


def _apr(rate_sum: str, hours: str) -> pl.Expr:
    """``sum(rate) * 8760 / sum(interval_hours)``, null without hours."""
    return pl.when(pl.col(hours) > 0).then(pl.col(rate_sum) * HOURS_PER_YEAR / pl.col(hours))


def _ms(col: str) -> pl.Expr:
    return pl.col(col).dt.epoch("ms")


def _candles(candles: pl.DataFrame) -> pl.DataFrame:
    """Validated candles with ``as_of`` (the close time); one row per key."""
    missing = [c for c in CANDLE_COLUMNS if c not in candles.columns]
    if missing:
        raise FundingInputError(f"candles: missing column(s) {', '.join(missing)}")
    times = {c: as_utc_ms(pl.col(c), candles.schema[c], c) for c in ("term_start", "maturity", "ts")}
    frame = candles.select(*(times.get(c, pl.col(c)).cast(dtype).alias(c) for c, dtype in CANDLE_COLUMNS.items()))
    lengths = {i: interval_ms(i) for i in frame["interval"].unique().to_list()}
    frame = frame.with_columns(
        as_of=pl.col("ts") + pl.duration(milliseconds=pl.col("interval").replace_strict(lengths, return_dtype=pl.Int64))
    )
    bad = frame.filter(~(pl.col("maturity") > pl.col("term_start")))
    if bad.height:
        row = bad.row(0, named=True)
        raise FundingInputError(
            f"candles: {row['provider']} market {row['market_id']} matures at {row['maturity']}, "
            f"not after its term start {row['term_start']}"
        )
    markets = frame.select(FUTURE).unique().group_by(MARKET).len().filter(pl.col("len") > 1)
    if markets.height:
        provider, market_id, _ = markets.row(0)
        raise FundingInputError(
            f"candles: {provider} market {market_id} has more than one underlying or term "
            "(a market's venue, symbol, contract, venue_symbol, term_start and maturity are fixed)"
        )
    repeated = frame.group_by(KEY[:-1]).len().filter(pl.col("len") > 1)
    if repeated.height:
        provider, market_id, interval, ts, _ = repeated.row(0)
        raise FundingInputError(f"candles: {provider} market {market_id} has two {interval} candles at {ts}")
    return frame


def _settlements(prints: pl.DataFrame) -> pl.DataFrame:
    """One realised print per settlement of each underlying: ``venue, symbol, contract,
    funding_time, rate, interval_hours`` (the later ``published_at``, then the larger rate)."""
    realised = normalise(prints).filter(pl.col("kind") == REALISED)
    return (
        realised.sort([*UNDERLYING, "funding_time", "published_at", "rate", "interval_hours"])
        .unique(subset=[*UNDERLYING, "funding_time"], keep="last", maintain_order=True)
        .select(*UNDERLYING, "funding_time", "rate", "interval_hours")
    )


def _term_settlements(frame: pl.DataFrame, settlements: pl.DataFrame) -> pl.DataFrame:
    """Each future's settlements in its term, in ``funding_time`` order: ``(term_start,
    maturity]``, or without a term start those from its first candle's close on. With the
    sums from the term start (``to_*``) and to maturity (``rest_*``), both inclusive, and
    per settlement ``holes_after`` (holes between the later settlements' spans) and
    ``last_time`` (the future's last settlement)."""
    futures = frame.group_by(FUTURE).agg(first_as_of=pl.col("as_of").min())
    in_term = pl.when(pl.col("term_start").is_not_null()).then(pl.col("funding_time") > pl.col("term_start"))
    span_start = _ms("funding_time") - pl.col("interval_hours") * HOUR_MS
    previous = _ms("funding_time").shift(1).over(MARKET).fill_null(_ms("term_start"))
    hole = (span_start - previous > COVERAGE_GRACE_MS).fill_null(False).cast(pl.Int32)
    return (
        futures.join(settlements, on=UNDERLYING)
        .filter(
            in_term.otherwise(pl.col("funding_time") >= pl.col("first_as_of")),
            pl.col("funding_time") <= pl.col("maturity"),
        )
        .sort([*MARKET, "funding_time"])
        .with_columns(
            to_rate=pl.col("rate").cum_sum().over(MARKET),
            to_hours=pl.col("interval_hours").cum_sum().over(MARKET),
            rest_rate=pl.col("rate").cum_sum(reverse=True).over(MARKET),
            rest_hours=pl.col("interval_hours").cum_sum(reverse=True).over(MARKET),
            hole=hole,
            span_start_ms=span_start,
            last_time=pl.col("funding_time").last().over(MARKET),
        )
        .with_columns(holes_after=pl.col("hole").cum_sum(reverse=True).over(MARKET) - pl.col("hole"))
    )


def _covered_terms(term: pl.DataFrame) -> pl.DataFrame:
    """Futures with a term start whose settlements cover the term: ``realised_term_apr``,
    ``term_hours``."""
    return (
        term.filter(pl.col("term_start").is_not_null())
        .group_by(MARKET, maintain_order=True)
        .agg(
            holes=pl.col("hole").sum(),
            ends_at_maturity=(pl.col("maturity") - pl.col("last_time")).first()
            <= dt.timedelta(milliseconds=COVERAGE_GRACE_MS),
            term_rate=pl.col("to_rate").last(),
            term_hours=pl.col("to_hours").last(),
        )
        .filter(pl.col("holes") == 0, "ends_at_maturity")
        .select(*MARKET, realised_term_apr=_apr("term_rate", "term_hours"), term_hours="term_hours")
    )


def roll_apr(roll: pl.DataFrame) -> pl.DataFrame:
    """Roll snapshots (:data:`~funding_assets.strip.SNAPSHOT_SCHEMA`, ``kind = 'roll'``; other
    kinds are left out) as ``venue, symbol, contract, funding_time, as_of, b0_apr,
    mean_apr``: b0 and the mean of ``b0..b7`` as simple APR (annualised decimal). An ``apy``
    bucket is turned back into its 8h rate and annualised simply (``((1 + apy) ** (1/1095) -
    1) * 1095``). A null ``contract`` is the venue's main perpetual of the coin, as for prints.
    One row per series and ``as_of`` (the latest ``funding_time``). An empty frame, whatever
    its columns, gives no rows."""
    if roll.is_empty():
        return pl.DataFrame(schema=ROLL_APR_SCHEMA)
    missing = [
        c
        for c in ("venue", "symbol", "kind", "funding_time", "as_of", "annualisation", *BUCKETS)
        if c not in roll.columns
    ]
    if missing:
        raise FundingInputError(f"roll snapshots: missing column(s) {', '.join(missing)}")
    frame = with_contract(roll.filter(pl.col("kind") == "roll"))
    frame = frame.with_columns(pl.col("contract").fill_null(main_contracts(frame)))
    apy = pl.col("annualisation") == "apy"

    def apr(bucket: str) -> pl.Expr:
        b = pl.col(bucket).cast(pl.Float64)
        return pl.when(apy).then(((1.0 + b).pow(1.0 / PERIODS_PER_YEAR) - 1.0) * PERIODS_PER_YEAR).otherwise(b)

    return (
        frame.select(
            *UNDERLYING,
            as_utc_ms(pl.col("funding_time"), frame.schema["funding_time"], "funding_time").alias("funding_time"),
            as_utc_ms(pl.col("as_of"), frame.schema["as_of"], "as_of").alias("as_of"),
            b0_apr=apr("b0"),
            mean_apr=pl.sum_horizontal(apr(b) for b in BUCKETS) / len(BUCKETS),
        )
        .sort([*UNDERLYING, "as_of", "funding_time"])
        .unique(subset=[*UNDERLYING, "as_of"], keep="last", maintain_order=True)
    )


def _with_strip(frame: pl.DataFrame, roll: pl.DataFrame) -> pl.DataFrame:
    """``strip_*`` of the latest roll snapshot with ``as_of`` in ``[as_of - STRIP_MAX_AGE, as_of)``."""
    strips = roll_apr(roll).select(
        *UNDERLYING,
        strip_as_of="as_of",
        strip_funding_time="funding_time",
        strip_b0_apr="b0_apr",
        strip_mean_apr="mean_apr",
    )
    return (
        frame.sort("as_of")
        .join_asof(
            strips.sort("strip_as_of"),
            left_on="as_of",
            right_on="strip_as_of",
            by=UNDERLYING,
            strategy="backward",
            allow_exact_matches=False,
            tolerance=STRIP_MAX_AGE,
            check_sortedness=False,
        )
        .drop("strip_as_of")
    )


def _asof_settlement(frame: pl.DataFrame, term: pl.DataFrame, columns: list[str], *, before: bool) -> pl.DataFrame:
    """Per row, ``columns`` of its future's last settlement before ``as_of`` (``before``) or
    of its first settlement at or after ``as_of`` (null without one)."""
    right = term.select(*MARKET, pl.col("funding_time").alias("settled_at"), *columns).sort("settled_at")
    return (
        frame.sort("as_of")
        .join_asof(
            right,
            left_on="as_of",
            right_on="settled_at",
            by=MARKET,
            strategy="backward" if before else "forward",
            allow_exact_matches=not before,
            check_sortedness=False,
        )
        .drop("settled_at")
    )


def fixed_vs_floating(
    candles: pl.DataFrame, prints: pl.DataFrame, roll: pl.DataFrame, *, known_until: dt.datetime
) -> pl.DataFrame:
    """Each future's implied fixed APR beside the realised floating APR of its underlying:
    candle rows and, for futures matured by ``known_until`` (naive UTC) whose settlements
    cover the term, outcome rows (see the module doc). Columns
    :data:`FIXED_VS_FLOATING_SCHEMA`, sorted by ``provider, market_id, interval, ts, kind``.

    ``candles``: :data:`CANDLE_COLUMNS` (more are ignored); ``prints``: print frames
    (:data:`~funding_assets.prints.PRINT_SCHEMA`, normalised here; only realised prints
    count); ``roll``: roll snapshots (:data:`~funding_assets.strip.SNAPSHOT_SCHEMA`).
    """
    if known_until.tzinfo is not None:
        known_until = known_until.astimezone(dt.UTC).replace(tzinfo=None)
    frame = _candles(candles)
    term = _term_settlements(frame, _settlements(prints))
    known_term = pl.col("term_start").is_not_null()
    rows = (
        _asof_settlement(frame, term, ["to_rate", "to_hours"], before=True)
        .pipe(_with_strip, roll)
        .with_columns(
            kind=pl.lit(CANDLE),
            days_to_maturity=(_ms("maturity") - _ms("as_of")) / DAY_MS,
            implied_apr=pl.col("close"),
            realised_apr_to_date=pl.when(known_term).then(_apr("to_rate", "to_hours")),
            realised_hours=pl.when(known_term).then(pl.col("to_hours").fill_null(0.0)),
        )
        .with_columns(carry_apr=pl.col("implied_apr") - pl.col("realised_apr_to_date"))
    )
    # a row's remaining window [as_of, maturity] is covered when the span of its first
    # settlement reaches back to as_of, no hole follows, and the last one settles at maturity
    remaining_covered = (
        (pl.col("span_start_ms") <= _ms("as_of") + COVERAGE_GRACE_MS)
        & (pl.col("holes_after") == 0)
        & (_ms("maturity") - _ms("last_time") <= COVERAGE_GRACE_MS)
    )
    covered = _covered_terms(term)
    outcomes = (
        rows.filter(
            pl.col("maturity") <= known_until,
            pl.col("ts") < pl.col("maturity"),
            ~known_term | (pl.col("ts") >= pl.col("term_start")),
            ~known_term | pl.col("market_id").is_in(covered["market_id"].implode()),
        )
        .join(covered, on=MARKET, how="left")
        .pipe(
            _asof_settlement,
            term,
            ["rest_rate", "rest_hours", "span_start_ms", "holes_after", "last_time"],
            before=False,
        )
        .filter(remaining_covered.fill_null(False))
        .with_columns(
            kind=pl.lit(OUTCOME),
            realised_remaining_apr=_apr("rest_rate", "rest_hours"),
            remaining_hours=pl.col("rest_hours"),
        )
        .with_columns(fixed_earned_apr=pl.col("implied_apr") - pl.col("realised_remaining_apr"))
    )
    return (
        pl.concat([rows, outcomes], how="diagonal_relaxed")
        .select(pl.col(c).cast(t) for c, t in FIXED_VS_FLOATING_SCHEMA.items())
        .sort(KEY)
    )


def fixed_spreads(candles: pl.DataFrame, *, rolling: RollingWindow = FIXED_ROLLING) -> pl.DataFrame:
    """Cross-venue spreads of implied fixed rates, columns :data:`FIXED_SPREAD_SCHEMA`.

    A group is one provider, coin (``symbol``), maturity and candle interval; a series one
    market of it, named by its underlying ``(venue, contract)``. For each pair of markets on
    different underlyings, ``a < b`` by ``(venue, contract)`` (a null contract as ``""``,
    as the floating spreads: Binance before Bybit), at each candle ``ts`` both quote:
    ``spread = implied_apr_a - implied_apr_b`` (candle closes, annualised decimals), its
    rolling ``mean``/``std`` over the pair's previous candles by ``rolling``
    (:data:`FIXED_ROLLING`, or :data:`NOTEBOOK_FIXED_ROLLING` for the seed notebook's
    pandas ``rolling(72)``), ``z``, bands ``mean +- rolling.band_k * std`` and ``signal``
    exactly as :func:`funding_assets.spreads.spread_signals` (same engine); ``dispersion``
    the std (ddof 1) of the group's implied rates at ``ts`` over its ``n_series`` markets.
    A candle without a close quotes nothing. A day's rows read ``rolling.lookback_days()``
    days of candles before it.
    """
    frame = _candles(candles).filter(pl.col("close").is_not_null() & pl.col("close").is_not_nan())
    out = pair_spreads(
        frame.rename({"close": "implied_apr"}),
        value="implied_apr",
        time="ts",
        group=["provider", "symbol", "maturity", "interval"],
        series=["venue", "contract"],
        carry=["market_id"],
        rolling=rolling,
    )
    return out.select(list(FIXED_SPREAD_SCHEMA)).cast(FIXED_SPREAD_SCHEMA)
