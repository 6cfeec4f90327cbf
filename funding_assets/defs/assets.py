"""The asset chain: raw_prints -> curve_snapshots -> curve_features -> roll_b0 -> spread_signals,
and curve_snapshots -> pca_fits + pca_factors.

Thin wrappers: each asset loads its inputs through the warehouse IO manager, calls the pure
core, and returns exactly the rows of the partitions it was asked for. Every read of another
partition is a declared partition mapping (the lookbacks below), and the IO manager refuses
to load a lookback that is not materialised; a partition's rows therefore depend only on
its declared inputs. A run over a range computes the whole range at once (one run per
range: ``BackfillPolicy.single_run()``) and yields the same rows as day-by-day runs.

Snapshot-derived tables are partitioned by the UTC day of ``as_of``, the instant a row
became known (a roll row's window close, an intraday row's sample time), so a roll row
closed after midnight is stored in the day it closed.

The lookbacks are declared from the configuration the code location loaded
(:data:`DECLARED`); a run configured to need more history is refused.
"""

import datetime as dt
import warnings
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import polars as pl

from .. import features, pca, premium, spreads, strip
from .. import instruments as universe
from ..errors import FundingInputError
from ..instruments import Instrument
from ..partitions import daily, date_venue, lookback, split_key
from ..prints import normalise
from ..resources import FundingConfig
from ..sources import fetch_all
from ..venues import venue_symbol
from ..warehouse import Warehouse, conform, empty
from . import checks

# single_run() is the backfill policy this pipeline is built around (one run per range);
# its beta label is known and not worth a warning at every import.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
SINGLE_RUN = dg.BackfillPolicy.single_run()
# Assets with check_specs return dg.MaterializeResult(value=frame, check_results=...) and carry
# no return annotation: annotating MaterializeResult would make Dagster type the output Nothing.
BY_TS = {"partition_expr": {"date": "ts", "venue": "venue"}}
BY_AS_OF = {"partition_expr": {"date": "as_of", "venue": "venue"}}
PRINT_KEY = checks.PRINT_KEY
#: A series: one perpetual of one venue.
SERIES = ["venue", "symbol", "contract"]

#: The configuration the definitions were loaded with: it fixes the declared lookbacks.
DECLARED = FundingConfig.from_env()
#: A roll row closes at most one UTC day after its window ends (strip.MAX_CLOSE_LAG_DAYS),
#: so statistics over rows partitioned by ``as_of`` reach back one day more than their window.
FEATURES_LOOKBACK_DAYS = DECLARED.rolling_lookback_days + strip.MAX_CLOSE_LAG_DAYS
PCA_LOOKBACK_DAYS = DECLARED.pca_lookback_days + strip.MAX_CLOSE_LAG_DAYS
SPREADS_LOOKBACK_DAYS = DECLARED.rolling_lookback_days + strip.MAX_CLOSE_LAG_DAYS


def require_declared(config: FundingConfig) -> None:
    """Refuse a configuration that needs more history than the loaded definitions declare."""
    stats = config.rolling_lookback_days + strip.MAX_CLOSE_LAG_DAYS
    pca_days = config.pca_lookback_days + strip.MAX_CLOSE_LAG_DAYS
    for what, needed, declared, settings in (
        ("curve_snapshots", strip.lookback_days(config.max_fill), strip.LOOKBACK_DAYS, "max_fill"),
        ("the z-scores and spreads", stats, min(FEATURES_LOOKBACK_DAYS, SPREADS_LOOKBACK_DAYS), "FUNDING_ASSETS_Z_*"),
        (
            "pca_factors",
            pca_days,
            PCA_LOOKBACK_DAYS,
            "FUNDING_ASSETS_PCA_WINDOW_DAYS and FUNDING_ASSETS_PCA_REFIT_DAYS",
        ),
    ):
        config.require_within(what, needed, declared, settings)


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


@dg.asset(kinds={"polars", "duckdb"}, group_name="ingest", pool="duckdb")
def instruments(context: dg.AssetExecutionContext, funding: FundingConfig, warehouse: Warehouse) -> pl.DataFrame:
    """Every perpetual each configured venue lists, from the venue's own instrument endpoint.

    One row per (venue, symbol, contract): the venue's name for it, multiplier, settle
    currency, listing and delisting times (UTC), current funding interval (hours), caps
    (decimal per native interval) and the venue's open interest / 24 h volume (USD) that
    rank coins for ``top:N``. Venues not configured keep their last discovery. Runs read
    it to know which instruments their coin and contract settings cover.
    """
    source = funding.open_source()
    venues = list(funding.venues)
    with ThreadPoolExecutor(max_workers=len(venues)) as pool:
        found = dict(zip(venues, pool.map(source.instruments, venues)))
    discovered = universe.frame(i for listed in found.values() for i in listed)
    kept = warehouse.instruments().filter(~pl.col("venue").is_in(venues))
    table = pl.concat([kept, discovered]).sort(universe.KEY)
    counts = discovered.group_by("venue", "contract").len().sort("venue", "contract")
    for venue in venues:
        per = {r["contract"]: r["len"] for r in counts.filter(pl.col("venue") == venue).iter_rows(named=True)}
        context.log.info(f"{venue}: {sum(per.values())} perpetuals ({', '.join(f'{c} {n}' for c, n in per.items())})")
    context.add_output_metadata(
        {
            "instruments": discovered.height,
            "per_venue": dg.MetadataValue.json(
                {v: int(counts.filter(pl.col("venue") == v)["len"].sum()) for v in venues}
            ),
            "source": source.name,
        }
    )
    return table


def run_instruments(
    context: dg.AssetExecutionContext, funding: FundingConfig, table: pl.DataFrame, keys: pl.DataFrame
) -> tuple[pl.DataFrame, dict[str, list[Instrument]]]:
    """The run's series (venue, symbol, contract) and, per venue, the instruments to fetch.

    From the discovered ``instruments``; a coin a venue does not list is skipped there with
    one line in the log, a coin no configured venue lists stops the run naming it. Before
    any discovery, named coins are each venue's main perpetual of them.
    """
    venues = keys["venue"].unique(maintain_order=True).to_list()
    selection = funding.selection
    series = universe.series(table, selection, venues)
    if table.height:
        universe.require_listed(table, selection, list(funding.venues), funding.source)
        for venue, coins in universe.unlisted(table, selection, venues).items():
            context.log.info(f"{venue} lists no perpetual of {', '.join(coins)}: skipped there")
        chosen = universe.from_frame(universe.select(table, selection, venues))
    else:
        chosen = [
            Instrument(v, c, k, venue_symbol(v, c, k))
            for v, c, k in series.select(list(universe.SERIES_SCHEMA)).iter_rows()
        ]
    per_venue: dict[str, list[Instrument]] = {v: [] for v in venues}
    for one in chosen:
        per_venue[one.venue].append(one)
    return series, per_venue


@dg.asset(
    partitions_def=date_venue,
    deps=["live_prints"],
    ins={"instruments": dg.AssetIn()},
    metadata=BY_TS,
    kinds={"polars", "duckdb"},
    group_name="ingest",
    backfill_policy=SINGLE_RUN,
    pool="duckdb",
    check_specs=checks.RAW_PRINTS,
)
def raw_prints(
    context: dg.AssetExecutionContext, funding: FundingConfig, warehouse: Warehouse, instruments: pl.DataFrame
):
    """Every funding print of a venue whose ``ts`` falls on the UTC date, for every
    configured instrument (``FUNDING_ASSETS_COINS`` x ``FUNDING_ASSETS_CONTRACTS``).

    History is one realised print per settlement from the configured source
    (``FUNDING_ASSETS_SOURCE``); the live prints ingested for the same days (today's
    predictions) are merged in. Rates are decimal fractions per native interval. A realised
    print's ``ts`` is its settlement time (when it was published or fetched is kept in
    ``published_at``). A print seen twice (same venue, symbol, contract, ts, funding_time)
    is kept once, the source's version. The strip engine lets a window's realised print
    supersede its predictions. An instrument listed or delisted inside the run has prints
    from its listing to its delisting only.
    """
    keys = partition_keys(context)
    source = funding.open_source()
    series, per_venue = run_instruments(context, funding, instruments, keys)
    tasks = [
        (venue, per_venue[venue], start, end)
        for (venue,), group in keys.group_by("venue", maintain_order=True)
        for start, end in _runs_of_days(group["day"].to_list())
        if per_venue[venue]
    ]
    rebuilt = rebuilt_instruments(funding, instruments, per_venue)
    rebuild = [(venue, rebuilt[venue], start, end) for venue, _, start, end in tasks if rebuilt[venue]]
    # Venues have separate request budgets: every venue's history and premium side by side.
    frames, samples = fetch_all(source, tasks, rebuild)
    fetched = [normalise(f) for f in frames if f.height]  # normalised once, for the rebuild and the store
    settled = pl.concat(fetched) if fetched else None
    caps = {one.key: one.rate_cap for listed in per_venue.values() for one in listed if one.rate_cap}
    reconstructed, validation = reconstruct_predictions(samples, settled, funding.intraday_every_minutes, caps)
    live = warehouse.live_prints_in(list(context.partition_keys))
    # a print seen twice is kept once: the source's over the live one, the live one over a rebuilt one
    found = [conform("raw_prints", f) for f in [*(normalise(f) for f in (reconstructed, live) if f.height), *fetched]]
    prints = pl.concat(found) if found else empty("raw_prints")
    prints = prints.join(series, on=SERIES, how="semi")  # the run replaces its series only
    prints = prints.unique(subset=PRINT_KEY, keep="last", maintain_order=True).sort(PRINT_KEY)
    inside = keep_partitions(prints, keys)
    stored = warehouse.realised_counts(list(context.partition_keys), series)
    if not funding.allow_fewer_prints:
        refuse_fewer_prints(inside, stored, source.name)
    listed = universe.frame(one for per in per_venue.values() for one in per)
    return dg.MaterializeResult(
        value=inside,
        metadata={
            "prints": len(inside),
            "source": source.name,
            "instruments": listed.height,
            "realised": int((inside["kind"] == "realised").sum()),
            "unread_files": dg.MetadataValue.json(list(getattr(source, "unread", []))),
        },
        check_results=checks.raw_prints_checks(
            inside, outside_count(prints, inside), scope(keys), keys, listed, validation=validation
        ),
    )


def rebuilt_instruments(
    funding: FundingConfig, table: pl.DataFrame, per_venue: dict[str, list[Instrument]]
) -> dict[str, list[Instrument]]:
    """Per venue, the run's instruments whose intraday history is rebuilt from premium
    indices (``FUNDING_ASSETS_RECONSTRUCT``: BTC and ETH by default)."""
    if not funding.reconstruct:
        return {venue: [] for venue in per_venue}
    selection = funding.reconstruct_selection
    if selection.explicit_coins is not None or not table.height:
        wanted = set(selection.explicit_coins or ())
        return {
            v: [i for i in listed if selection.coins == ("all",) or i.symbol in wanted]
            for v, listed in per_venue.items()
        }
    ranked = set(universe.select(table, selection, list(per_venue)).select(SERIES).iter_rows())
    return {v: [i for i in listed if i.key in ranked] for v, listed in per_venue.items()}


def outside_count(prints: pl.DataFrame, inside: pl.DataFrame) -> int:
    """Prints the source returned outside the run's partitions. Rebuilt predictions are not
    counted: the first window of a range starts the day before it (they are rebuilt again
    when that day is materialised)."""
    rebuilt = pl.col("source") == premium.RECONSTRUCTED
    return prints.filter(~rebuilt).height - inside.filter(~rebuilt).height


def reconstruct_predictions(
    samples: list[pl.DataFrame],
    settled: pl.DataFrame | None,
    every_minutes: int,
    caps: dict[tuple[str, str, str], float] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """Predicted prints rebuilt from premium samples, and each settled window's validation.

    A reconstructed print is quoted strictly before its settlement (the realised print takes
    over there) and never after the last sample of its series (no print for time not yet seen).
    """
    samples = [s for s in samples if s.height]
    if not samples or settled is None:
        return empty("raw_prints"), None
    frame = pl.concat(samples)
    realised = settled.filter(pl.col("kind") == "realised")
    predicted = premium.reconstruct(frame, realised, every_minutes=every_minutes, caps=caps)
    last = frame.group_by(SERIES).agg(last_sample=pl.col("ts").max())
    predicted = (
        predicted.join(last, on=SERIES)
        .filter((pl.col("ts") < pl.col("funding_time")) & (pl.col("ts") <= pl.col("last_sample")))
        .drop("last_sample")
    )
    return predicted, premium.validate(frame, realised, caps=caps)


def realised_per_key(prints: pl.DataFrame) -> dict[tuple[str, str, str], int]:
    """Realised prints per (``date|venue`` key, coin, contract)."""
    realised = prints.filter(pl.col("kind") == "realised")
    counts = realised.group_by(pl.col("ts").dt.date().alias("day"), "venue", "symbol", "contract").len()
    return {(f"{r['day']}|{r['venue']}", r["symbol"], r["contract"]): r["len"] for r in counts.iter_rows(named=True)}


def refuse_fewer_prints(prints: pl.DataFrame, stored: dict[tuple[str, str, str], int], source: str) -> None:
    """Refuse to replace a partition's realised prints with fewer: settlements never un-happen.

    A source that returns nothing, or less than before, for days the warehouse holds (a replay
    folder that lost files, a venue outage, a file in the wrong unit) would otherwise wipe
    them silently.
    """
    new = realised_per_key(prints)
    fewer = sorted(
        (key, f"{coin} {contract}", n, new.get((key, coin, contract), 0))
        for (key, coin, contract), n in stored.items()
        if new.get((key, coin, contract), 0) < n
    )
    if fewer:
        shown = "; ".join(f"{key} {coin}: {now} < {n}" for key, coin, n, now in fewer[:4])
        more = f" and {len(fewer) - 4} more" if len(fewer) > 4 else ""
        raise FundingInputError(
            f"source {source} returned fewer realised prints than the warehouse holds for {len(fewer)} "
            f"partition coin(s) ({shown}{more}); nothing was replaced. Check the source, or set "
            "FUNDING_ASSETS_ALLOW_FEWER_PRINTS=1 to replace them with what it returns"
        )


@dg.asset(
    partitions_def=date_venue,
    ins={
        "raw_prints": dg.AssetIn(partition_mapping=lookback(strip.LOOKBACK_DAYS)),
        "instruments": dg.AssetIn(),
    },
    metadata=BY_AS_OF,
    kinds={"polars", "duckdb"},
    group_name="curves",
    backfill_policy=SINGLE_RUN,
    pool="duckdb",
    check_specs=checks.CURVE_SNAPSHOTS,
)
def curve_snapshots(
    context: dg.AssetExecutionContext,
    funding: FundingConfig,
    warehouse: Warehouse,
    raw_prints: pl.DataFrame,
    instruments: pl.DataFrame,
):
    """The 8-window funding strip: b0 (newest 8h window) .. b7 (oldest), annualised.

    ``kind='roll'`` rows at each closed 00/08/16 UTC window (ts = funding_time = window end,
    ``as_of`` = when the window closed); ``kind='intraday'`` rows sampled every
    ``intraday_every_minutes`` with b0 the open window so far. ``coverage`` is the share of
    bucket 0's 8 hours whose native windows are known. Reads the prints of the
    ``strip.LOOKBACK_DAYS`` days before each day (declared partition mapping); the
    instruments' delistings keep the missing-window check from counting windows after them.
    """
    require_declared(funding)
    keys = partition_keys(context)
    series = universe.series(instruments, funding.selection, keys["venue"].unique().to_list())
    delisted = instruments.select(*SERIES, "delisted_at") if instruments.height else None
    listed = (
        series.join(delisted, on=SERIES, how="left")
        if delisted is not None
        else series.with_columns(delisted_at=pl.lit(None, pl.Datetime("ms")))
    )
    snaps = strip.partition_snapshots(
        raw_prints,
        every=str(funding.intraday_every_minutes),
        annualisation=funding.annualisation,
        max_fill=funding.max_fill,
    )
    out = keep_partitions(snaps, keys, ts_col="as_of")
    ignored = keep_partitions(strip.ignored_prints(raw_prints), keys)
    roll = out.filter(pl.col("kind") == "roll")
    start, _ = day_span(keys)
    earlier = warehouse.roll_snapshots_between(
        keys["venue"].unique().to_list(), start - dt.timedelta(days=checks.MISSING_WINDOW_DAYS), start
    )
    return dg.MaterializeResult(
        value=out,
        metadata={
            "roll_snapshots": len(roll),
            "intraday_snapshots": len(out) - len(roll),
            "filled_buckets": int(roll["n_filled"].sum() or 0),
            "ignored_prints": len(ignored),
            "annualisation": funding.annualisation,
        },
        check_results=checks.curve_snapshots_checks(out, earlier, ignored, keys, scope(keys), listed),
    )


@dg.asset(
    partitions_def=date_venue,
    ins={"curve_snapshots": dg.AssetIn(partition_mapping=lookback(FEATURES_LOOKBACK_DAYS))},
    metadata=BY_AS_OF,
    kinds={"polars", "duckdb"},
    group_name="curves",
    backfill_policy=SINGLE_RUN,
    pool="duckdb",
)
def curve_features(
    context: dg.AssetExecutionContext, funding: FundingConfig, curve_snapshots: pl.DataFrame
) -> pl.DataFrame:
    """Level, slope, curvature, decays and shock age of each snapshot, with level/slope
    z-scores against the previous roll snapshots (``FUNDING_ASSETS_Z_*``: by default the
    previous 30, the current one excluded; declared lookback)."""
    require_declared(funding)
    keys = partition_keys(context)
    feats = features.curve_features(curve_snapshots, shock_threshold=funding.shock_threshold, rolling=funding.rolling())
    return keep_partitions(feats, keys, ts_col="as_of")


@dg.multi_asset(
    outs={
        "pca_factors": dg.AssetOut(metadata=BY_AS_OF, kinds={"scikitlearn", "duckdb"}, group_name="factors"),
        "pca_fits": dg.AssetOut(
            metadata={"partition_expr": {"date": "fitted_at", "venue": "venue"}},
            kinds={"scikitlearn", "duckdb"},
            group_name="factors",
            description="Each walk-forward PCA fit: loadings oriented against the reference curve "
            "shapes, explained variance, window. Partitioned by the UTC day of fitted_at.",
        ),
    },
    partitions_def=date_venue,
    ins={"curve_snapshots": dg.AssetIn(partition_mapping=lookback(PCA_LOOKBACK_DAYS))},
    backfill_policy=SINGLE_RUN,
    pool="duckdb",
    check_specs=checks.PCA_FACTORS,
)
def pca_factors(context: dg.AssetExecutionContext, funding: FundingConfig, curve_snapshots: pl.DataFrame):
    """Walk-forward PCA scores pc1, pc2 of each snapshot's 8 buckets, with the fit used.

    Fits every ``pca_refit_days`` on the trailing ``pca_window_days`` of roll snapshots;
    each fit's signs depend on its own window only (oriented against fixed level, slope
    and curvature shapes). A snapshot is scored only with a fit made strictly before it.
    The fits of the run's days are the ``pca_fits`` partitions: a fit that can no longer
    be made disappears with the recomputation of its day.
    """
    if funding.pca_components not in (1, 2):
        raise FundingInputError("funding.pca_components: funding.pca_factors stores pc1 and pc2; use 1 or 2")
    require_declared(funding)
    keys = partition_keys(context)
    start, end = day_span(keys)
    times = pca.fit_times(start, end, funding.pca_refit_days)
    fits = pca.fit_walk_forward(
        curve_snapshots, times, window_days=funding.pca_window_days, n_components=funding.pca_components
    )
    table = pca.fits_frame(fits)
    in_range = curve_snapshots.filter((pl.col("as_of") >= start) & (pl.col("as_of") < end))
    max_age = dt.timedelta(days=funding.pca_refit_days)
    scores = keep_partitions(pca.score(in_range, fits, funding.pca_components, max_age), keys, ts_col="as_of")
    if "pc2" not in scores.columns:
        scores = scores.with_columns(pc2=pl.lit(None, pl.Float64))
    verified = pca.verify_no_lookahead(
        scores, curve_snapshots, window_days=funding.pca_window_days, n_components=funding.pca_components
    )
    stored_fits = keep_partitions(table, keys, ts_col="fitted_at")
    yield dg.Output(
        scores,
        output_name="pca_factors",
        metadata={"scored": len(scores), "fits_used": scores["fit_id"].n_unique()},
    )
    yield dg.Output(
        stored_fits,
        output_name="pca_fits",
        metadata={
            "fits": len(stored_fits),
            "latest_explained_variance": dg.MetadataValue.json(fits[-1].explained_variance.tolist() if fits else []),
        },
    )
    yield from checks.pca_factors_checks(scores, verified, scope(keys))


@dg.asset(
    partitions_def=daily,
    ins={
        "curve_snapshots": dg.AssetIn(
            partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="date")
        )
    },
    metadata={"partition_expr": {"date": "as_of"}},
    kinds={"polars", "duckdb"},
    group_name="signals",
    backfill_policy=SINGLE_RUN,
    pool="duckdb",
)
def roll_b0(context: dg.AssetExecutionContext, curve_snapshots: pl.DataFrame) -> pl.DataFrame:
    """Bucket 0 (annualised) of every roll snapshot of every configured series (venue, coin, contract),
    by the UTC day the window closed (``as_of``), with the rest of its strip (``b1..b7``) and
    its ``annualisation``: the one cross-venue input of the spreads and of the fixed-rate
    comparison, so that their trailing windows are declared day lookbacks."""
    keys = partition_keys(context)
    roll = curve_snapshots.filter(pl.col("kind") == "roll")
    b0 = roll.select("venue", "symbol", "contract", "funding_time", "as_of", *strip.BUCKETS, "annualisation")
    return keep_partitions(b0, keys, ts_col="as_of").sort("venue", "symbol", "contract", "funding_time")


@dg.asset(
    partitions_def=daily,
    ins={
        "roll_b0": dg.AssetIn(
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-SPREADS_LOOKBACK_DAYS, end_offset=0, allow_nonexistent_upstream_partitions=True
            )
        )
    },
    metadata={"partition_expr": {"date": "as_of"}},
    kinds={"polars", "duckdb"},
    group_name="signals",
    backfill_policy=SINGLE_RUN,
    pool="duckdb",
    check_specs=checks.SPREAD_SIGNALS,
)
def spread_signals(context: dg.AssetExecutionContext, funding: FundingConfig, roll_b0: pl.DataFrame):
    """Cross-venue spreads of annualised bucket 0 per coin and venue pair, with the rolling
    mean/std of the previous observations (``FUNDING_ASSETS_Z_*``, default 30, the current
    one excluded), z-score, ``band_k``-sigma bands, a signal in {-1, 0, +1} (none without a
    positive std) and the cross-venue dispersion of b0. ``as_of``: when both legs were known.
    """
    require_declared(funding)
    keys = partition_keys(context)
    signals = spreads.spread_signals(roll_b0, rolling=funding.rolling())
    known = roll_b0.select("venue", "symbol", "contract", "funding_time", "as_of")
    leg_a = known.rename({"venue": "venue_a", "contract": "contract_a", "as_of": "as_of_a"})
    leg_b = known.rename({"venue": "venue_b", "contract": "contract_b", "as_of": "as_of_b"})
    with_as_of = (
        signals.join(leg_a, on=["venue_a", "symbol", "contract_a", "funding_time"], nulls_equal=True)
        .join(leg_b, on=["venue_b", "symbol", "contract_b", "funding_time"], nulls_equal=True)
        .with_columns(as_of=pl.max_horizontal("as_of_a", "as_of_b"))
        .drop("as_of_a", "as_of_b")
    )
    out = keep_partitions(with_as_of, keys, ts_col="as_of")
    return dg.MaterializeResult(
        value=out,
        metadata={
            "signals": int((out["signal"].fill_null(0) != 0).sum()),
            "pairs": out.select("symbol", "venue_a", "contract_a", "venue_b", "contract_b").n_unique(),
        },
        check_results=checks.spread_signals_checks(out, scope(keys)),
    )
