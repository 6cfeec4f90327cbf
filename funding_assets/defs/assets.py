"""The asset chain: raw_prints -> curve_snapshots -> curve_features / pca_factors -> spread_signals.

Thin wrappers: each asset loads its inputs through the warehouse IO manager (partition
mappings declare every lookback), calls the pure core, and returns exactly the rows of the
partitions it was asked for. A run over a range computes the whole range at once (one run
per range: ``BackfillPolicy.single_run()``) and yields the same rows as day-by-day runs.
"""

import datetime as dt
import warnings
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import polars as pl

from .. import features, pca, spreads, strip
from ..io_manager import partition_filter
from ..partitions import daily, date_venue, lookback, split_key
from ..resources import FundingConfig
from ..settings import Settings
from ..warehouse import SCHEMA, Warehouse, conform
from . import checks

# single_run() is the backfill policy this pipeline is built around (one run per range);
# its beta label is known and not worth a warning at every import.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
SINGLE_RUN = dg.BackfillPolicy.single_run()
# Assets with check_specs return dg.MaterializeResult(value=frame, check_results=...) and carry
# no return annotation: annotating MaterializeResult would make Dagster type the output Nothing.
BY_TS = {"partition_expr": {"date": "ts", "venue": "venue"}}
PRINT_KEY = checks.PRINT_KEY


def partition_keys(context: dg.AssetExecutionContext) -> pl.DataFrame:
    """The (date, venue) keys of this run as a frame (venue null for daily assets)."""
    pairs = [split_key(k) for k in context.partition_keys]
    return pl.DataFrame(
        {"day": [d for d, _ in pairs], "venue": [v for _, v in pairs]},
        schema={"day": pl.Date, "venue": pl.String},
    )


def keep_partitions(frame: pl.DataFrame, keys: pl.DataFrame, ts_col: str = "ts") -> pl.DataFrame:
    """Rows of ``frame`` whose (UTC day of ``ts_col``, venue) is one of ``keys``."""
    on = ["day", "venue"] if keys["venue"].is_not_null().all() else ["day"]
    tagged = frame.with_columns(day=pl.col(ts_col).dt.date())
    return tagged.join(keys.select(on).unique(), on=on, how="semi").drop("day")


def scope(keys: pl.DataFrame) -> str:
    """The partitions of a run in words, e.g. ``2024-01-01..2024-03-31 x okx,hyperliquid``."""
    days = f"{keys['day'].min()}..{keys['day'].max()}"
    venues = keys["venue"].drop_nulls().unique(maintain_order=True).to_list()
    return f"{days} x {','.join(venues)}" if venues else days


def day_span(keys: pl.DataFrame) -> tuple[dt.datetime, dt.datetime]:
    """``[first day 00:00, last day + 1 00:00)`` of the run's keys."""
    first, last = keys["day"].min(), keys["day"].max()
    return dt.datetime.combine(first, dt.time()), dt.datetime.combine(last, dt.time()) + dt.timedelta(days=1)


def _runs_of_days(days: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Contiguous (start, end) runs of sorted days, so a source is asked once per range."""
    out: list[tuple[dt.date, dt.date]] = []
    for day in sorted(days):
        if out and day == out[-1][1] + dt.timedelta(days=1):
            out[-1] = (out[-1][0], day)
        else:
            out.append((day, day))
    return out


@dg.asset(
    partitions_def=date_venue,
    deps=["live_prints"],
    metadata=BY_TS,
    kinds={"polars", "duckdb"},
    group_name="ingest",
    backfill_policy=SINGLE_RUN,
    pool="duckdb",
    check_specs=checks.RAW_PRINTS,
)
def raw_prints(context: dg.AssetExecutionContext, funding: FundingConfig, warehouse: Warehouse):
    """Every funding print of a venue whose ``ts`` falls on the UTC date, for all coins.

    History is one realised print per settlement from the configured source
    (``FUNDING_ASSETS_SOURCE``); the live prints ingested for the same days (today's
    predictions) are merged in. Rates are decimal fractions per native interval; a print
    seen twice (same venue, symbol, ts, funding_time) is kept once, the source's version.
    The strip engine lets a window's realised print supersede its predictions.
    """
    keys = partition_keys(context)
    source = funding.open_source()
    coins = tuple(funding.coins)
    tasks = [
        (venue, start, end)
        for (venue,), group in keys.group_by("venue", maintain_order=True)
        for start, end in _runs_of_days(group["day"].to_list())
    ]
    # Venues have separate request budgets: fetch them side by side.
    with ThreadPoolExecutor(max_workers=max(1, len({t[0] for t in tasks}))) as pool:
        frames = list(pool.map(lambda t: source.fetch(t[0], coins, t[1], t[2]), tasks))
    where, params, relations = partition_filter(BY_TS["partition_expr"], context.partition_keys)
    live = warehouse.read("live_prints", where, params, relations=relations)
    prints = conform("raw_prints", pl.concat([conform("raw_prints", live), *frames]))
    prints = prints.unique(subset=PRINT_KEY, keep="last", maintain_order=True).sort(PRINT_KEY)
    return dg.MaterializeResult(
        value=prints,
        metadata={"prints": len(prints), "source": source.name, "realised": int((prints["kind"] == "realised").sum())},
        check_results=checks.raw_prints_checks(prints, scope(keys)),
    )


@dg.asset(
    partitions_def=date_venue,
    ins={"raw_prints": dg.AssetIn(partition_mapping=lookback(strip.LOOKBACK_DAYS))},
    metadata=BY_TS,
    kinds={"polars", "duckdb"},
    group_name="curves",
    backfill_policy=SINGLE_RUN,
    pool="duckdb",
    check_specs=checks.CURVE_SNAPSHOTS,
)
def curve_snapshots(
    context: dg.AssetExecutionContext, funding: FundingConfig, warehouse: Warehouse, raw_prints: pl.DataFrame
):
    """The 8-window funding strip: b0 (newest 8h window) .. b7 (oldest), annualised.

    ``kind='roll'`` rows at each closed 00/08/16 UTC window (ts = funding_time = window end);
    ``kind='intraday'`` rows sampled every ``intraday_every_minutes`` with b0 the open window
    so far. Reads the 4 days of prints before each day (declared partition mapping).
    """
    keys = partition_keys(context)
    snaps = strip.partition_snapshots(
        raw_prints,
        every=str(funding.intraday_every_minutes),
        annualisation=funding.annualisation,
        max_fill=funding.max_fill,
    )
    out = keep_partitions(snaps, keys)
    roll = out.filter(pl.col("kind") == "roll")
    start, _ = day_span(keys)
    earlier = warehouse.read(
        "curve_snapshots",
        "kind = 'roll' AND ts >= ? AND ts < ?",
        [start - dt.timedelta(days=checks.MISSING_WINDOW_DAYS), start],
    ).filter(pl.col("venue").is_in(keys["venue"].unique().to_list()))
    return dg.MaterializeResult(
        value=out,
        metadata={
            "roll_snapshots": len(roll),
            "intraday_snapshots": len(out) - len(roll),
            "filled_buckets": int(roll["n_filled"].sum() or 0),
            "annualisation": funding.annualisation,
        },
        check_results=checks.curve_snapshots_checks(out, earlier, keys, scope(keys)),
    )


@dg.asset(
    partitions_def=date_venue,
    ins={"curve_snapshots": dg.AssetIn(partition_mapping=lookback(features.Z_LOOKBACK_DAYS))},
    metadata=BY_TS,
    kinds={"polars", "duckdb"},
    group_name="curves",
    backfill_policy=SINGLE_RUN,
    pool="duckdb",
)
def curve_features(
    context: dg.AssetExecutionContext, funding: FundingConfig, curve_snapshots: pl.DataFrame
) -> pl.DataFrame:
    """Level, slope, curvature, decays and shock age of each snapshot, with level/slope z-scores
    against the trailing 10 days of roll snapshots (declared 10-day lookback)."""
    keys = partition_keys(context)
    feats = features.curve_features(curve_snapshots, shock_threshold=funding.shock_threshold)
    return keep_partitions(feats, keys)


def _pca_lookback_days() -> int:
    s = Settings.from_env()
    return pca.lookback_days(s.pca_window_days, s.pca_refit_days)


def _previous_loadings(warehouse: Warehouse, before: dt.datetime) -> dict:
    """Loadings of each series' last stored fit before ``before``, to keep signs aligned."""
    latest = warehouse.read(
        "pca_fits",
        f"fitted_at < ? AND fit_id IN (SELECT fit_id FROM {SCHEMA}.pca_fits WHERE fitted_at < ? "
        "QUALIFY row_number() OVER (PARTITION BY venue, symbol ORDER BY fitted_at DESC) = 1)",
        [before, before],
    )
    return {
        (row["venue"], row["symbol"]): pl.Series(row["loadings"]).to_numpy() for row in latest.iter_rows(named=True)
    }


@dg.asset(
    partitions_def=date_venue,
    ins={"curve_snapshots": dg.AssetIn(partition_mapping=lookback(_pca_lookback_days()))},
    metadata=BY_TS,
    kinds={"scikitlearn", "duckdb"},
    group_name="factors",
    backfill_policy=SINGLE_RUN,
    pool="duckdb",
    check_specs=checks.PCA_FACTORS,
)
def pca_factors(
    context: dg.AssetExecutionContext,
    funding: FundingConfig,
    warehouse: Warehouse,
    curve_snapshots: pl.DataFrame,
):
    """Walk-forward PCA scores pc1, pc2 of each snapshot's 8 buckets, with the fit used.

    Fits every ``pca_refit_days`` on the trailing ``pca_window_days`` of roll snapshots and
    keeps them (loadings, explained variance, window) in ``funding.pca_fits``; a snapshot is
    scored only with a fit made strictly before it.
    """
    if funding.pca_components not in (1, 2):
        raise dg.DagsterInvalidConfigError(
            "funding.pca_components: funding.pca_factors stores pc1 and pc2; use 1 or 2", [], None
        )
    keys = partition_keys(context)
    start, end = day_span(keys)
    times = pca.fit_times(start, end, funding.pca_refit_days)
    fits = pca.fit_walk_forward(
        curve_snapshots,
        times,
        window_days=funding.pca_window_days,
        n_components=funding.pca_components,
        previous=_previous_loadings(warehouse, times[0]),
    )
    table = pca.fits_frame(fits)
    warehouse.replace(
        "pca_fits", table, "fit_id IN (SELECT fit_id FROM _fits)", relations={"_fits": table.select("fit_id")}
    )
    in_range = curve_snapshots.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
    max_age = dt.timedelta(days=funding.pca_refit_days)
    scores = keep_partitions(pca.score(in_range, fits, funding.pca_components, max_age), keys)
    if "pc2" not in scores.columns:
        scores = scores.with_columns(pc2=pl.lit(None, pl.Float64))
    return dg.MaterializeResult(
        value=scores,
        metadata={
            "fits": len(fits),
            "scored": len(scores),
            "latest_explained_variance": dg.MetadataValue.json(fits[-1].explained_variance.tolist() if fits else []),
        },
        check_results=checks.pca_factors_checks(scores, table, scope(keys)),
    )


@dg.asset(
    partitions_def=daily,
    ins={
        "curve_features": dg.AssetIn(
            partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="date")
        )
    },
    metadata={"partition_expr": {"date": "funding_time"}},
    kinds={"polars", "duckdb"},
    group_name="signals",
    backfill_policy=SINGLE_RUN,
    pool="duckdb",
    check_specs=checks.SPREAD_SIGNALS,
)
def spread_signals(context: dg.AssetExecutionContext, warehouse: Warehouse, curve_features: pl.DataFrame):
    """Cross-venue spreads of annualised bucket 0 per coin and venue pair, with rolling
    mean/std over the previous 10 days (30 windows), z-score, 1.5-sigma bands, a signal in
    {-1, 0, +1} and the cross-venue dispersion of b0.

    The trailing 10 days before the first requested day are read from ``curve_features`` in
    the warehouse (Dagster cannot declare a day offset on a venue-to-daily mapping), so
    materialise days in order, as backfills and the daily schedule do.
    """
    keys = partition_keys(context)
    start, end = day_span(keys)
    history = warehouse.read(
        "curve_features",
        "kind = 'roll' AND ts >= ? AND ts < ?",
        [start - dt.timedelta(days=spreads.LOOKBACK_DAYS), start],
    )
    roll = pl.concat([history, curve_features]).filter(pl.col("kind") == "roll")
    b0 = roll.select("venue", "symbol", funding_time="ts", b0="level").unique(
        subset=["venue", "symbol", "funding_time"], keep="last", maintain_order=True
    )
    signals = spreads.spread_signals(b0)
    out = keep_partitions(signals, keys, ts_col="funding_time")
    return dg.MaterializeResult(
        value=out,
        metadata={
            "signals": int((out["signal"] != 0).sum()),
            "pairs": out.select("symbol", "venue_a", "venue_b").n_unique(),
        },
        check_results=checks.spread_signals_checks(out, scope(keys)),
    )
