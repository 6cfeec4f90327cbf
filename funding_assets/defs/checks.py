"""Data-quality checks (DESIGN section 7), run by each asset on exactly the rows it writes.

Each asset declares its checks as ``check_specs`` and returns their results with its
output, so a check covers precisely the partitions of that run (listed in the check's
metadata) and never reloads them. Checks are evaluated once per run rather than per
partition: Dagster records a planned evaluation per check and partition when a run is
created, which for a multi-year range costs minutes before any work starts.
"""

import datetime as dt

import dagster as dg
import polars as pl

from .. import fixedfloat, premium
from ..rates import schema as rates_schema
from ..venues import RATE_CAPS

MISSING_SHARE_LIMIT = 0.02
#: A past day whose realised prints cover less than this share of its 24 hours, for a venue
#: and coin, is reported: the source returned far fewer prints than the schedule implies.
SCHEDULE_MIN_SHARE = 0.75
#: Share of settled windows the premium reconstruction must reproduce (per venue).
RECONSTRUCTION_MIN_SHARE = 0.99
MISSING_WINDOW_DAYS = 30
PRINT_KEY = ["venue", "symbol", "contract", "ts", "funding_time"]
SNAPSHOT_KEY = ["venue", "symbol", "contract", "kind", "ts"]
SPREAD_KEY = ["symbol", "venue_a", "contract_a", "venue_b", "contract_b", "funding_time"]
SERIES = ["venue", "symbol", "contract"]


def _spec(asset: str, name: str, description: str, blocking: bool = True) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=asset, description=description, blocking=blocking)


RAW_PRINTS = [
    _spec("raw_prints", "raw_prints_unique_keys", "No two prints share (venue, symbol, ts, funding_time)."),
    _spec("raw_prints", "raw_prints_within_caps", "Every rate is within its venue's cap per native interval."),
    _spec(
        "raw_prints",
        "raw_prints_on_grid",
        "Every funding_time is a whole multiple of its interval (00/08/16 UTC for 8h).",
    ),
    _spec(
        "raw_prints",
        "raw_prints_all_filed",
        "Every print the source returned is stored: a realised print whose settlement day is "
        "outside the run's days is counted here (materialise its day to store it).",
        blocking=False,
    ),
    _spec(
        "raw_prints",
        "raw_prints_schedule",
        f"For every venue, coin and past day of the run, realised prints cover at least "
        f"{SCHEDULE_MIN_SHARE:.0%} of the day's 24 hours (sum of their interval_hours): a source that "
        "returns nothing or far fewer prints than the venue's schedule is flagged, with the days.",
        blocking=False,
    ),
    _spec(
        "raw_prints",
        "raw_prints_reconstruction",
        f"Predicted prints rebuilt from premium-index history reproduce the settlements: for every "
        f"venue, at least {RECONSTRUCTION_MIN_SHARE:.0%} of settled windows with premium samples are "
        "within one unit of the venue's last published decimal at the window's end; the share, the "
        "exact share and the worst misses per venue are here.",
        blocking=False,
    ),
]
CURVE_SNAPSHOTS = [
    _spec("curve_snapshots", "curve_snapshots_unique_keys", "No two snapshots share (venue, symbol, kind, ts)."),
    _spec(
        "curve_snapshots",
        "curve_snapshots_missing_share",
        "Under 2 % of 8h window-hours missing in the 30 days up to each day written: a window "
        "without a roll snapshot counts whole, a roll snapshot counts its bucket-0 coverage.",
        blocking=False,
    ),
    _spec(
        "curve_snapshots",
        "curve_snapshots_ignored_prints",
        "No print of these days was ignored by a strip rule (quoted a day or more before its "
        "window, or a prediction quoted after its own settlement); the count and examples are here.",
        blocking=False,
    ),
    _spec(
        "curve_snapshots",
        "curve_snapshots_native_overlap",
        "No grid window's native intervals add up to more than 8 h (coverage above 1).",
        blocking=False,
    ),
]
PCA_FACTORS = [
    _spec(
        "pca_factors",
        "pca_factors_no_lookahead",
        "Every score used a fit made strictly before it; on a sample of rows, the fit recomputed "
        "from snapshots strictly before the scored row reproduces the stored score.",
    ),
]
SPREAD_SIGNALS = [
    _spec(
        "spread_signals", "spread_signals_unique_keys", "No two rows share (symbol, venue_a, venue_b, funding_time)."
    ),
]


def _result(spec: dg.AssetCheckSpec, passed: bool, scope: str, **metadata) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=spec.asset_key,
        check_name=spec.name,
        passed=bool(passed),
        severity=dg.AssetCheckSeverity.ERROR if spec.blocking else dg.AssetCheckSeverity.WARN,
        metadata={"partitions": scope, **metadata},
    )


def _duplicates(spec: dg.AssetCheckSpec, frame: pl.DataFrame, key: list[str], scope: str) -> dg.AssetCheckResult:
    dups = frame.group_by(key).len().filter(pl.col("len") > 1)
    examples = [{k: str(v) for k, v in r.items()} for r in dups.head(3).drop("len").to_dicts()]
    return _result(
        spec,
        dups.height == 0,
        scope,
        rows=frame.height,
        duplicate_keys=dups.height,
        examples=dg.MetadataValue.json(examples),
    )


def schedule_shortfall(prints: pl.DataFrame, keys: pl.DataFrame, listed: pl.DataFrame, today: dt.date) -> pl.DataFrame:
    """(day, venue, symbol, contract, hours) of the run's past days whose realised prints
    cover too few hours. ``listed``: the run's instruments; a day is expected only when
    the instrument traded all of it (its listing and delisting days are partial)."""
    listed = listed.select(
        *SERIES,
        first=(pl.col("listed_at") - pl.duration(milliseconds=1)).dt.date() + pl.duration(days=1),
        last=(pl.col("delisted_at").dt.date() - pl.duration(days=1)),
    )
    wanted = (
        keys.filter(pl.col("day") < today)
        .join(listed, on="venue")
        .filter(
            (pl.col("first").is_null() | (pl.col("day") >= pl.col("first")))
            & (pl.col("last").is_null() | (pl.col("day") <= pl.col("last")))
        )
        .select("day", *SERIES)
    )
    hours = (
        prints.filter(pl.col("kind") == "realised")
        .group_by(pl.col("ts").dt.date().alias("day"), *SERIES)
        .agg(hours=pl.col("interval_hours").cast(pl.Float64).sum())
    )
    covered = wanted.join(hours, on=["day", *SERIES], how="left").with_columns(pl.col("hours").fill_null(0.0))
    return covered.filter(pl.col("hours") < 24 * SCHEDULE_MIN_SHARE).sort(*SERIES, "day")


def raw_prints_checks(
    prints: pl.DataFrame,
    outside: int,
    scope: str,
    keys: pl.DataFrame,
    listed: pl.DataFrame,
    today: dt.date | None = None,
    validation: pl.DataFrame | None = None,
) -> list[dg.AssetCheckResult]:
    """``outside``: prints the source returned that fall outside the run's partitions;
    ``listed``: the run's instruments (:data:`~funding_assets.instruments.INSTRUMENT_SCHEMA`:
    listing dates, caps); ``validation``: :func:`funding_assets.premium.validate` of the
    run's windows (None: no premium history from this source)."""
    unique, caps, grid, filed, schedule, rebuilt = RAW_PRINTS
    today = today or dt.datetime.now(dt.UTC).date()
    short = schedule_shortfall(prints, keys, listed, today)
    beyond = beyond_caps(prints, listed)
    interval_ms = (pl.col("interval_hours") * 3_600_000).cast(pl.Int64)
    off = prints.filter(pl.col("funding_time").dt.epoch("ms") % interval_ms != 0)
    return [
        _duplicates(unique, prints, PRINT_KEY, scope),
        _result(
            caps,
            beyond.height == 0,
            scope,
            beyond_cap=beyond.height,
            max_abs_rate=float(prints["rate"].abs().max() or 0.0),
        ),
        _result(
            grid, off.height == 0, scope, off_grid=off.height, example=str(off["funding_time"][0]) if off.height else ""
        ),
        _result(filed, outside == 0, scope, outside_partitions=outside),
        _result(
            schedule,
            short.height == 0,
            scope,
            short_days=short.height,
            examples=dg.MetadataValue.json(
                [
                    f"{r['day']}|{r['venue']} {r['symbol']} {r['contract']}: {r['hours']:g} h"
                    for r in short.head(5).iter_rows(named=True)
                ]
            ),
        ),
        reconstruction_check(rebuilt, validation, scope),
    ]


def beyond_caps(prints: pl.DataFrame, listed: pl.DataFrame) -> pl.DataFrame:
    """Prints beyond their instrument's cap or floor (the venue's default cap where the
    instrument states none), decimal fractions per native interval."""
    default = pl.col("venue").replace_strict(RATE_CAPS, default=None, return_dtype=pl.Float64)
    bounds = listed.select(*SERIES, "rate_cap", "rate_floor")
    with_bounds = prints.join(bounds, on=SERIES, how="left").with_columns(
        cap=pl.coalesce("rate_cap", default), floor=pl.coalesce("rate_floor", -pl.coalesce("rate_cap", default))
    )
    return with_bounds.filter((pl.col("rate") > pl.col("cap")) | (pl.col("rate") < pl.col("floor")))


def reconstruction_check(spec: dg.AssetCheckSpec, validation: pl.DataFrame | None, scope: str) -> dg.AssetCheckResult:
    """Share of settled windows the premium reconstruction reproduces, per venue, with the worst misses."""
    if validation is None or validation.height == 0:
        return _result(spec, True, scope, compared=0, note="no premium-index history from this source")
    per_venue = premium.summary(validation)
    shares = {r["venue"]: r["within_share"] for r in per_venue.iter_rows(named=True)}
    passed = all(v is None or v >= RECONSTRUCTION_MIN_SHARE for v in shares.values())
    table = [
        {
            "venue": r["venue"],
            "compared": r["compared"],
            "within_share": r["within_share"],
            "exact_share": r["exact_share"],
            "max_abs_diff": r["max_abs_diff"],
            "worst": [{k: str(v) for k, v in m.items()} for m in (r["worst"] or [])][:3],
        }
        for r in per_venue.iter_rows(named=True)
    ]
    return _result(
        spec,
        passed,
        scope,
        compared=int(per_venue["compared"].sum()),
        within_share=dg.MetadataValue.json(shares),
        per_venue=dg.MetadataValue.json(table),
    )


def missing_window_share(
    roll: pl.DataFrame, start: dt.date, end: dt.date, delisted: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Per series and day in ``start..end``: share of 8h windows without a roll snapshot in
    the 30 days ending that day, counted from the series' first snapshot on and, for a
    delisted instrument (``delisted``: series and ``delisted_at``), up to its delisting."""
    days = pl.DataFrame({"day": pl.date_range(start - dt.timedelta(days=MISSING_WINDOW_DAYS - 1), end, eager=True)})
    # a window counts by the share of its hours known (null coverage: a row from before coverage)
    known = pl.col("coverage").fill_null(1.0).clip(0.0, 1.0) if "coverage" in roll.columns else pl.lit(1.0)
    per_day = roll.group_by(*SERIES, day=pl.col("ts").dt.date()).agg(seen=known.sum())
    first = roll.group_by(SERIES).agg(first=pl.col("ts").min())
    if delisted is not None:
        first = first.join(delisted.select(*SERIES, "delisted_at"), on=SERIES, how="left")
    else:
        first = first.with_columns(delisted_at=pl.lit(None, pl.Datetime("ms")))
    grid = (
        first.join(days, how="cross")
        .join(per_day, on=[*SERIES, "day"], how="left")
        .with_columns(
            seen=pl.col("seen").fill_null(0),
            # windows of the day at or after the first snapshot: 3 a day, fewer on its first day
            expected=pl.when(pl.col("day") < pl.col("first").dt.date())
            .then(0)
            .when(pl.col("day") > pl.col("delisted_at").dt.date())
            .then(0)
            .when(pl.col("day") == pl.col("delisted_at").dt.date())
            .then(pl.col("delisted_at").dt.hour() // 8)
            .when(pl.col("day") == pl.col("first").dt.date())
            .then(3 - pl.col("first").dt.hour() // 8)
            .otherwise(3),
        )
        .sort(*SERIES, "day")
        .with_columns(
            seen_30d=pl.col("seen").rolling_sum(MISSING_WINDOW_DAYS, min_samples=1).over(SERIES),
            expected_30d=pl.col("expected").rolling_sum(MISSING_WINDOW_DAYS, min_samples=1).over(SERIES),
        )
        .filter(pl.col("day") >= start)
    )
    return grid.with_columns(
        missing_share=pl.when(pl.col("expected_30d") > 0)
        .then(1 - pl.col("seen_30d") / pl.col("expected_30d"))
        .otherwise(0.0)
    )


def curve_snapshots_checks(
    snaps: pl.DataFrame,
    earlier_roll: pl.DataFrame,
    ignored: pl.DataFrame,
    keys: pl.DataFrame,
    scope: str,
    listed: pl.DataFrame | None = None,
) -> list[dg.AssetCheckResult]:
    """``earlier_roll``: stored roll snapshots of the 30 days before the first day written;
    ``ignored``: the prints of the days written that a strip rule ignored; ``listed``: the
    run's series with their ``delisted_at`` (None: every stored series, none delisted)."""
    unique, missing, ignored_check, overlap = CURVE_SNAPSHOTS
    if listed is not None:
        earlier_roll = earlier_roll.join(listed.select(SERIES), on=SERIES, how="semi")
    roll = pl.concat([earlier_roll.select(snaps.columns), snaps.filter(pl.col("kind") == "roll")])
    shares = missing_window_share(roll, keys["day"].min(), keys["day"].max(), listed).join(
        keys, on=["day", "venue"], how="semi"
    )
    worst = shares.sort("missing_share", *SERIES, "day", descending=[True, False, False, False, False]).head(5)
    worst_share = float(worst["missing_share"][0]) if worst.height else 0.0
    over = snaps.filter((pl.col("kind") == "roll") & (pl.col("coverage") > 1.0 + 1e-9))
    return [
        _duplicates(unique, snaps, SNAPSHOT_KEY, scope),
        _result(
            missing,
            worst_share < MISSING_SHARE_LIMIT,
            scope,
            worst_missing_share=worst_share,
            limit=MISSING_SHARE_LIMIT,
            worst_days=dg.MetadataValue.json(
                [
                    {
                        "venue": r["venue"],
                        "symbol": r["symbol"],
                        "contract": r["contract"],
                        "day": str(r["day"]),
                        "missing_share": round(r["missing_share"], 4),
                    }
                    for r in worst.to_dicts()
                ]
            ),
        ),
        _result(
            ignored_check,
            ignored.height == 0,
            scope,
            ignored_prints=ignored.height,
            by_reason=dg.MetadataValue.json(
                {r["reason"]: r["len"] for r in ignored.group_by("reason").len().sort("reason").to_dicts()}
            ),
            examples=dg.MetadataValue.json(_examples(ignored)),
        ),
        _result(
            overlap,
            over.height == 0,
            scope,
            windows_over_8h=over.height,
            examples=dg.MetadataValue.json(_examples(over.select(*SERIES, "funding_time", "coverage"))),
        ),
    ]


def _examples(frame: pl.DataFrame, n: int = 3) -> list[dict[str, str]]:
    return [{k: str(v) for k, v in r.items()} for r in frame.head(n).to_dicts()]


def pca_factors_checks(scores: pl.DataFrame, verified: pl.DataFrame, scope: str) -> list[dg.AssetCheckResult]:
    """``verified``: :func:`funding_assets.pca.verify_no_lookahead` on a sample of ``scores``."""
    (no_lookahead,) = PCA_FACTORS
    late = scores.filter(pl.col("fitted_at") >= pl.col("ts"))
    failed = verified.filter(~pl.col("ok"))
    return [
        _result(
            no_lookahead,
            late.height == 0 and failed.height == 0,
            scope,
            rows=scores.height,
            fit_not_before_row=late.height,
            sampled=verified.height,
            sample_mismatches=failed.height,
            examples=dg.MetadataValue.json(_examples(failed)),
        )
    ]


def spread_signals_checks(signals: pl.DataFrame, scope: str) -> list[dg.AssetCheckResult]:
    return [_duplicates(SPREAD_SIGNALS[0], signals, SPREAD_KEY, scope)]


#: An implied or realised APR beyond this (annualised decimal, 500 %) is a unit error (a
#: percent or a 1e16-scaled integer stored as a decimal), not a market.
FIXED_APR_LIMIT = 5.0
#: The fixed-rate tables' keys, from the modules that define their rows.
CANDLE_KEY = list(rates_schema.KEY)
FIXED_VS_FLOATING_KEY = list(fixedfloat.KEY)
FIXED_SPREAD_KEY = [*fixedfloat.FIXED_PAIR, "ts"]

FIXED_RATE_CANDLES = [
    _spec(
        "fixed_rate_candles",
        "fixed_rate_candles_unique_keys",
        "No two candles share (provider, market_id, interval, ts).",
    ),
    _spec(
        "fixed_rate_candles",
        "fixed_rate_candles_in_units",
        f"Implied rates are annualised decimals: |open, high, low, close| <= {FIXED_APR_LIMIT:g} (500 %), low <= close <= high.",
    ),
]
FIXED_VS_FLOATING = [
    _spec(
        "fixed_vs_floating",
        "fixed_vs_floating_unique_keys",
        "No two rows share (provider, market_id, interval, ts, kind).",
    ),
]
FIXED_RATE_SPREADS = [
    _spec("fixed_rate_spreads", "fixed_rate_spreads_unique_keys", "No two rows share a pair and candle."),
]


def fixed_rate_candles_checks(candles: pl.DataFrame, scope: str) -> list[dg.AssetCheckResult]:
    rates = ["open", "high", "low", "close"]
    beyond = candles.filter(
        pl.any_horizontal(pl.col(c).abs() > FIXED_APR_LIMIT for c in rates)
        | (pl.col("low") > pl.col("close"))
        | (pl.col("close") > pl.col("high"))
    )
    units = _result(
        FIXED_RATE_CANDLES[1],
        beyond.height == 0,
        scope,
        beyond=beyond.height,
        examples=dg.MetadataValue.json(_examples(beyond.select("provider", "market_id", "ts", *rates))),
    )
    return [_duplicates(FIXED_RATE_CANDLES[0], candles, CANDLE_KEY, scope), units]


def fixed_vs_floating_checks(rows: pl.DataFrame, scope: str) -> list[dg.AssetCheckResult]:
    return [_duplicates(FIXED_VS_FLOATING[0], rows, FIXED_VS_FLOATING_KEY, scope)]


def fixed_rate_spreads_checks(rows: pl.DataFrame, scope: str) -> list[dg.AssetCheckResult]:
    return [_duplicates(FIXED_RATE_SPREADS[0], rows, FIXED_SPREAD_KEY, scope)]
