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
GRID_MS = 8 * 3_600_000


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


@dg.asset_check(asset=curve_snapshots, partitions_def=date_venue, additional_deps=[raw_prints])
def curve_snapshots_missing_share(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse
) -> dg.AssetCheckResult:
    """Under 2 % of 8h windows without a roll snapshot over the trailing 30 days (per series).

    Counts the grid windows of the 30 days ending with the partition's last day, from each
    series' first snapshot on; a window without a roll snapshot had no usable bucket 0.
    """
    keys = partition_keys(context)
    start, end = day_span(keys)
    window_start = end - dt.timedelta(days=MISSING_WINDOW_DAYS)
    roll = warehouse.read(
        "curve_snapshots",
        "kind = 'roll' AND ts > ? AND ts <= ?",
        [window_start - dt.timedelta(days=1), end],
    ).filter(pl.col("venue").is_in(keys["venue"].unique().to_list()) & (pl.col("ts") > window_start))
    per_series = roll.group_by("venue", "symbol").agg(
        first=pl.col("ts").min(), seen=pl.len(), filled=pl.col("n_filled").sum()
    ).with_columns(
        expected=((pl.lit(end) - pl.col("first")).dt.total_milliseconds() // GRID_MS) + 1
    ).with_columns(missing_share=1 - pl.col("seen") / pl.col("expected"))
    worst = float(per_series["missing_share"].max() or 0.0)
    return dg.AssetCheckResult(
        passed=worst < MISSING_SHARE_LIMIT,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "worst_missing_share": worst,
            "series": dg.MetadataValue.json(
                [{**r, "first": str(r["first"])} for r in per_series.sort("venue", "symbol").to_dicts()]
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
