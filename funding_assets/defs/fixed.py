"""Fixed against floating (DESIGN section 11): fixed_rate_candles -> fixed_vs_floating, fixed_rate_spreads.

Rho and Pendle Boros quote implied fixed APRs on the perpetual venues' funding; these daily
assets store them (``fixed_rate_candles``), set them beside the realised floating rate and
the strip of their underlying (``fixed_vs_floating``) and spread them across venues
(``fixed_rate_spreads``). Thin wrappers like the chain in :mod:`.assets`: every read of
another partition is a declared lookback, the numbers come from :mod:`funding_assets.fixedfloat`.

``realised_funding`` is the day's realised prints of every configured series (all venues):
the declared daily input through which ``fixed_vs_floating`` reads the settlements since a
future's term start.
"""

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import polars as pl

from .. import fixedfloat
from .. import instruments as universe
from ..partitions import daily
from ..prints import REALISED
from ..rates.schema import CANDLE_SCHEMA, Market
from ..resources import FundingConfig
from ..warehouse import conform
from . import checks
from .assets import DECLARED, SERIES, SINGLE_RUN, day_span, keep_partitions, partition_keys, scope

#: Days of candles and realised prints before a day that its fixed_vs_floating rows read.
FIXED_LOOKBACK_DAYS = DECLARED.fixed_lookback_days
#: Days of candles before a day that its fixed-rate spreads' statistics read.
FIXED_SPREADS_LOOKBACK_DAYS = DECLARED.fixed_spreads_lookback_days
#: Days of roll strips before a day that its rows read: an outcome row repeats the strip of
#: every candle of its term, so the strips reach back as far as the candles.
STRIP_LOOKBACK_DAYS = FIXED_LOOKBACK_DAYS


def _days_back(days: int) -> dg.TimeWindowPartitionMapping:
    return dg.TimeWindowPartitionMapping(start_offset=-days, end_offset=0, allow_nonexistent_upstream_partitions=True)


def require_fixed_declared(config: FundingConfig) -> None:
    """Refuse a configuration that needs more history than the loaded definitions declare."""
    config.require_within(
        "fixed_vs_floating", config.fixed_lookback_days, FIXED_LOOKBACK_DAYS, "FUNDING_ASSETS_FIXED_MAX_TERM_DAYS"
    )
    config.require_within(
        "fixed_rate_spreads",
        config.fixed_spreads_lookback_days,
        FIXED_SPREADS_LOOKBACK_DAYS,
        "FUNDING_ASSETS_FIXED_BANDS",
    )


def _trading(markets: list[Market], start: dt.datetime, end: dt.datetime) -> list[Market]:
    """Markets whose term overlaps ``[start, end)`` (a term without a start counts as open)."""
    return [m for m in markets if m.maturity > start and (m.term_start is None or m.term_start < end)]


@dg.asset(
    partitions_def=daily,
    ins={"instruments": dg.AssetIn()},
    metadata={"partition_expr": {"date": "ts"}},
    kinds={"polars", "duckdb"},
    group_name="fixed",
    backfill_policy=SINGLE_RUN,
    pool="duckdb",
    check_specs=checks.FIXED_RATE_CANDLES,
)
def fixed_rate_candles(context: dg.AssetExecutionContext, funding: FundingConfig, instruments: pl.DataFrame):
    """Implied fixed-rate candles of every Rho and Boros future on a configured series
    (``FUNDING_ASSETS_RATES``, interval ``FUNDING_ASSETS_RATES_INTERVAL``, default 1h), by the
    UTC day of the candle's open ``ts``. Rates are annualised decimals (0.036451 = 3.6451 %),
    never percent or the providers' scaled integers; times UTC."""
    keys = partition_keys(context)
    lo, hi = day_span(keys)
    series = universe.series(instruments, funding.selection, list(funding.venues))
    wanted = set(series.select(SERIES).iter_rows())
    source = funding.open_rates_source()

    def one_provider(provider: str) -> list[pl.DataFrame]:
        markets = [m for m in source.markets(provider) if (m.venue, m.symbol, m.contract) in wanted]
        return [source.candles(provider, m, lo, hi, funding.rates_interval) for m in _trading(markets, lo, hi)]

    with ThreadPoolExecutor(max_workers=max(1, len(funding.rates))) as pool:
        frames = [f for found in pool.map(one_provider, funding.rates) for f in found if f.height]
    candles = pl.concat(frames) if frames else pl.DataFrame(schema=CANDLE_SCHEMA)
    candles = keep_partitions(candles.join(series, on=SERIES, how="semi"), keys)
    candles = conform("fixed_rate_candles", candles).sort(list(checks.CANDLE_KEY))
    return dg.MaterializeResult(
        value=candles,
        metadata={
            "candles": candles.height,
            "markets": candles.select("provider", "market_id").n_unique(),
            "providers": ", ".join(funding.rates) or "none",
        },
        check_results=checks.fixed_rate_candles_checks(candles, scope(keys)),
    )


@dg.asset(
    partitions_def=daily,
    ins={
        "raw_prints": dg.AssetIn(
            partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="date")
        )
    },
    metadata={"partition_expr": {"date": "ts"}},
    kinds={"polars", "duckdb"},
    group_name="fixed",
    backfill_policy=SINGLE_RUN,
    pool="duckdb",
)
def realised_funding(context: dg.AssetExecutionContext, raw_prints: pl.DataFrame) -> pl.DataFrame:
    """The realised prints (one per settlement) of every configured series on every venue,
    by the UTC day of the settlement: the settlements a fixed-rate future's floating leg pays."""
    keys = partition_keys(context)
    realised = raw_prints.filter(pl.col("kind") == REALISED)
    return keep_partitions(realised, keys)


@dg.asset(
    partitions_def=daily,
    ins={
        "fixed_rate_candles": dg.AssetIn(partition_mapping=_days_back(FIXED_LOOKBACK_DAYS)),
        "realised_funding": dg.AssetIn(partition_mapping=_days_back(FIXED_LOOKBACK_DAYS)),
        "roll_b0": dg.AssetIn(partition_mapping=_days_back(STRIP_LOOKBACK_DAYS)),
    },
    metadata={"partition_expr": {"date": "partition_day"}},
    kinds={"polars", "duckdb"},
    group_name="fixed",
    backfill_policy=SINGLE_RUN,
    pool="duckdb",
    check_specs=checks.FIXED_VS_FLOATING,
)
def fixed_vs_floating(
    context: dg.AssetExecutionContext,
    funding: FundingConfig,
    fixed_rate_candles: pl.DataFrame,
    realised_funding: pl.DataFrame,
    roll_b0: pl.DataFrame,
):
    """Per future and candle: the implied fixed APR beside the realised floating APR of its
    underlying accrued since term start, the underlying's trailing strip and the carry
    (implied - realised to date); and, on the day a future matures, per candle of its term,
    what receiving fixed from that candle to maturity earned (``kind = 'outcome'``). All
    annualised decimals (simple APR). ``partition_day``: the candle's day, or the maturity
    day for outcome rows. See :mod:`funding_assets.fixedfloat`."""
    require_fixed_declared(funding)
    keys = partition_keys(context)
    _, known_until = day_span(keys)
    # a term longer than the declared lookback would accrue from part of its settlements
    term_days = (pl.col("maturity") - pl.col("term_start")).dt.total_seconds() / 86_400
    too_long = fixed_rate_candles.filter(term_days > funding.fixed_max_term_days)
    if too_long.height:
        names = sorted(set(too_long.select("provider", "market_id").iter_rows()))
        context.log.warning(
            f"{len(names)} future(s) with a term over FUNDING_ASSETS_FIXED_MAX_TERM_DAYS="
            f"{funding.fixed_max_term_days} left out (their settlements since term start are not read): "
            + ", ".join(f"{p}:{m}" for p, m in names[:6])
        )
    candles = fixed_rate_candles.join(too_long, on=list(checks.CANDLE_KEY), how="anti")
    rows = fixedfloat.fixed_vs_floating(
        candles, realised_funding, roll_b0.with_columns(kind=pl.lit("roll")), known_until=known_until
    )
    day = (
        pl.when(pl.col("kind") == fixedfloat.OUTCOME)
        .then(pl.col("maturity").dt.date())
        .otherwise(pl.col("ts").dt.date())
    )
    rows = rows.with_columns(partition_day=day).join(
        keys.select(partition_day="day").unique(), on="partition_day", how="semi"
    )
    return dg.MaterializeResult(
        value=rows,
        metadata={
            "candle_rows": int((rows["kind"] == fixedfloat.CANDLE).sum()),
            "outcome_rows": int((rows["kind"] == fixedfloat.OUTCOME).sum()),
            "futures": rows.select("provider", "market_id").n_unique(),
            "futures_left_out_long_term": too_long.select("provider", "market_id").n_unique(),
        },
        check_results=checks.fixed_vs_floating_checks(rows, scope(keys)),
    )


@dg.asset(
    partitions_def=daily,
    ins={"fixed_rate_candles": dg.AssetIn(partition_mapping=_days_back(FIXED_SPREADS_LOOKBACK_DAYS))},
    metadata={"partition_expr": {"date": "ts"}},
    kinds={"polars", "duckdb"},
    group_name="fixed",
    backfill_policy=SINGLE_RUN,
    pool="duckdb",
    check_specs=checks.FIXED_RATE_SPREADS,
)
def fixed_rate_spreads(context: dg.AssetExecutionContext, funding: FundingConfig, fixed_rate_candles: pl.DataFrame):
    """Cross-venue spreads of implied fixed rates (same provider, coin, maturity and
    interval; Binance - Bybit and every pair) with the floating spreads' engine: rolling
    mean and std, z, bands and signal (``FUNDING_ASSETS_FIXED_BANDS``: ``trailing``, the
    previous 72 candles, or ``notebook``, the seed notebook's pandas ``rolling(72)`` with the
    current candle and 1.5 std bands)."""
    require_fixed_declared(funding)
    keys = partition_keys(context)
    rows = keep_partitions(fixedfloat.fixed_spreads(fixed_rate_candles, rolling=funding.fixed_rolling()), keys)
    return dg.MaterializeResult(
        value=rows,
        metadata={
            "signals": int((rows["signal"].fill_null(0) != 0).sum()),
            "pairs": rows.select(checks.FIXED_SPREAD_KEY[:-1]).n_unique(),
            "bands": funding.fixed_bands,
        },
        check_results=checks.fixed_rate_spreads_checks(rows, scope(keys)),
    )


FIXED_ASSETS = [fixed_rate_candles, realised_funding, fixed_vs_floating, fixed_rate_spreads]
