"""Data-quality asset checks (DESIGN section 7), each scoped to the partitions materialised."""


import datetime as dt

import dagster as dg
import polars as pl

from ..partitions import daily, date_venue
from ..venues import RATE_CAPS
from ..warehouse import Warehouse
from .assets import (
    PRINT_KEY,
    curve_snapshots,
    day_span,
    partition_keys,
    pca_factors,
    raw_prints,
    spread_signals,
)

MISSING_SHARE_LIMIT = 0.02
MISSING_WINDOW_DAYS = 30


def _duplicates(frame: pl.DataFrame, key: list[str]) -> dg.AssetCheckResult:
    dups = frame.group_by(key).len().filter(pl.col("len") > 1)
    sample = dups.head(3).drop("len").to_dicts()
    return dg.AssetCheckResult(
        passed=dups.height == 0,
        metadata={"rows": frame.height, "duplicate_keys": dups.height, "examples": dg.MetadataValue.json([{k: str(v) for k, v in r.items()} for r in sample])},
    )


@dg.asset_check(asset=raw_prints, blocking=True, partitions_def=date_venue)
def raw_prints_unique_keys(raw_prints: pl.DataFrame) -> dg.AssetCheckResult:
    """No two prints share (venue, symbol, ts, funding_time)."""
    return _duplicates(raw_prints, PRINT_KEY)


@dg.asset_check(asset=raw_prints, blocking=True, partitions_def=date_venue)
def raw_prints_within_caps(raw_prints: pl.DataFrame) -> dg.AssetCheckResult:
    """Every rate is within its venue's cap per native interval (decimal fractions)."""
    caps = pl.col("venue").replace_strict(RATE_CAPS, return_dtype=pl.Float64)
    bad = raw_prints.filter(pl.col("rate").abs() > caps)
    return dg.AssetCheckResult(
        passed=bad.height == 0,
        metadata={
            "rows": raw_prints.height,
            "beyond_cap": bad.height,
            "max_abs_rate": float(raw_prints["rate"].abs().max() or 0.0),
        },
    )


@dg.asset_check(asset=raw_prints, blocking=True, partitions_def=date_venue)
def raw_prints_on_grid(raw_prints: pl.DataFrame) -> dg.AssetCheckResult:
    """Every funding_time is a whole multiple of its interval (00/08/16 UTC for 8h windows)."""
    interval_ms = (pl.col("interval_hours") * 3_600_000).cast(pl.Int64)
    off = raw_prints.filter(pl.col("funding_time").dt.epoch("ms") % interval_ms != 0)
    return dg.AssetCheckResult(
        passed=off.height == 0,
        metadata={
            "rows": raw_prints.height,
            "off_grid": off.height,
            "example": str(off["funding_time"][0]) if off.height else "",
        },
    )


@dg.asset_check(asset=curve_snapshots, blocking=True, partitions_def=date_venue)
def curve_snapshots_unique_keys(curve_snapshots: pl.DataFrame) -> dg.AssetCheckResult:
    """No two snapshots share (venue, symbol, kind, ts)."""
    return _duplicates(curve_snapshots, ["venue", "symbol", "kind", "ts"])


def missing_window_share(roll: pl.DataFrame, start: dt.date, end: dt.date) -> pl.DataFrame:
    """Per series and day in ``start..end``: share of 8h windows without a roll snapshot in
    the 30 days ending that day, counted from the series' first snapshot on."""
    days = pl.DataFrame({"day": pl.date_range(start - dt.timedelta(days=MISSING_WINDOW_DAYS - 1), end, eager=True)})
    per_day = roll.group_by("venue", "symbol", day=pl.col("ts").dt.date()).agg(seen=pl.len())
    first = roll.group_by("venue", "symbol").agg(first=pl.col("ts").min())
    grid = (
        first.join(days, how="cross")
        .join(per_day, on=["venue", "symbol", "day"], how="left")
        .with_columns(
            seen=pl.col("seen").fill_null(0),
            # windows of the day at or after the first snapshot: 3 a day, fewer on its first day
            expected=pl.when(pl.col("day") < pl.col("first").dt.date())
            .then(0)
            .when(pl.col("day") == pl.col("first").dt.date())
            .then(3 - pl.col("first").dt.hour() // 8)
            .otherwise(3),
        )
        .sort("venue", "symbol", "day")
        .with_columns(
            seen_30d=pl.col("seen").rolling_sum(MISSING_WINDOW_DAYS, min_samples=1).over("venue", "symbol"),
            expected_30d=pl.col("expected").rolling_sum(MISSING_WINDOW_DAYS, min_samples=1).over("venue", "symbol"),
        )
        .filter(pl.col("day") >= start)
    )
    return grid.with_columns(
        missing_share=pl.when(pl.col("expected_30d") > 0).then(1 - pl.col("seen_30d") / pl.col("expected_30d")).otherwise(0.0)
    )


@dg.asset_check(asset=curve_snapshots, partitions_def=date_venue, additional_deps=[raw_prints])
def curve_snapshots_missing_share(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse
) -> dg.AssetCheckResult:
    """Under 2 % of 8h windows without a roll snapshot in the 30 days up to each day checked.

    Evaluated for every day of the partitions materialised, per (venue, coin); a window
    without a roll snapshot had no usable bucket 0 (or a gap too long to fill).
    """
    keys = partition_keys(context)
    start, end = day_span(keys)
    roll = warehouse.read(
        "curve_snapshots",
        "kind = 'roll' AND ts >= ? AND ts < ?",
        [start - dt.timedelta(days=MISSING_WINDOW_DAYS), end],
    ).filter(pl.col("venue").is_in(keys["venue"].unique().to_list()))
    shares = missing_window_share(roll, start.date(), (end - dt.timedelta(days=1)).date())
    shares = shares.join(keys, on=["day", "venue"], how="semi")
    worst = shares.sort("missing_share", descending=True).head(5)
    worst_share = float(worst["missing_share"][0]) if worst.height else 0.0
    return dg.AssetCheckResult(
        passed=worst_share < MISSING_SHARE_LIMIT,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "worst_missing_share": worst_share,
            "limit": MISSING_SHARE_LIMIT,
            "worst_days": dg.MetadataValue.json(
                [
                    {"venue": r["venue"], "symbol": r["symbol"], "day": str(r["day"]), "missing_share": round(r["missing_share"], 4)}
                    for r in worst.to_dicts()
                ]
            ),
        },
    )


@dg.asset_check(asset=pca_factors, blocking=True, partitions_def=date_venue)
def pca_factors_no_lookahead(pca_factors: pl.DataFrame, warehouse: Warehouse) -> dg.AssetCheckResult:
    """Every score used a stored fit made strictly before the snapshot, on data before the fit."""
    fits = warehouse.read(
        "pca_fits", "fit_id IN (SELECT fit_id FROM _used)", relations={"_used": pca_factors.select("fit_id").unique()}
    ).select("fit_id", "fitted_at", "window_end")
    joined = pca_factors.join(fits, on="fit_id", how="left")
    bad = joined.filter(
        pl.col("fitted_at").is_null()
        | (pl.col("fitted_at") >= pl.col("ts"))
        | (pl.col("window_end") > pl.col("fitted_at"))
    )
    return dg.AssetCheckResult(
        passed=bad.height == 0,
        metadata={"rows": pca_factors.height, "violations": bad.height, "fits_used": fits.height},
    )


@dg.asset_check(asset=spread_signals, blocking=True, partitions_def=daily)
def spread_signals_unique_keys(spread_signals: pl.DataFrame) -> dg.AssetCheckResult:
    """No two rows share (symbol, venue_a, venue_b, funding_time)."""
    return _duplicates(spread_signals, ["symbol", "venue_a", "venue_b", "funding_time"])


CHECKS = [
    raw_prints_unique_keys,
    raw_prints_within_caps,
    raw_prints_on_grid,
    curve_snapshots_unique_keys,
    curve_snapshots_missing_share,
    pca_factors_no_lookahead,
    spread_signals_unique_keys,
]
