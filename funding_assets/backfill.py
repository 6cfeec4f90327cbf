"""Range backfills as Dagster runs: one run per asset group per range, never one per day.

A backfill of days ``start..end`` comes out complete: the declared lookbacks of every asset
are materialised first (prints feed the strips, which feed the PCA fits' windows, the
features and bucket 0, which feeds the spreads' trailing window; candles, settlements and
strips back to the longest fixed-rate term feed fixed_vs_floating), so the requested days hold
exactly the rows a full-history backfill would give them. The lookbacks come from the same
configuration object as the assets' declared partition mappings.
"""

import contextlib
import dataclasses
import datetime as dt
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
from dagster._core.events import DagsterEventType

from . import instruments, strip
from .clients.http import VenueError, VenueUnreachable
from .definitions import ASSETS
from .defs.assets import FEATURES_LOOKBACK_DAYS, PCA_LOOKBACK_DAYS, SPREADS_LOOKBACK_DAYS, require_declared
from .defs.fixed import FIXED_LOOKBACK_DAYS, STRIP_LOOKBACK_DAYS, require_fixed_declared
from .errors import FundingInputError
from .io_manager import wanted_series
from .partitions import START_DATE
from .partitions import venues as venue_partitions
from .resources import FundingConfig, build_resources
from .settings import debug_enabled, ensure_writable_home
from .warehouse import Warehouse

FIRST_DAY = dt.date.fromisoformat(START_DATE)
#: More coins than this (or ``all`` / ``top:N``): one run per venue and asset instead of one
#: per block of adjacent venues, to bound a run's memory.
WIDE_COINS = 20
#: Ranges of at most this many days run as few Dagster runs as the partitionings allow
#: (:func:`merge_short_runs`): the daily increment and short catch-ups.
MERGE_DAYS = 7
#: Dagster's console log of a run: silent unless ``FUNDING_ASSETS_DEBUG=1``. A failed run's
#: events stay in the instance; the command line prints its root cause as one line.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
DEBUG_LOG = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


@dataclasses.dataclass(frozen=True)
class Step:
    """One Dagster run: some assets over a date range for a block of venues."""

    what: str
    assets: tuple[str, ...]
    start: dt.date
    end: dt.date
    venues: tuple[str, ...] | None  # None: a daily (all-venue) asset

    @property
    def label(self) -> str:
        return f"{self.what:<8} {','.join(self.venues) if self.venues else 'all venues'}"

    @property
    def tags(self) -> dict[str, str]:
        if self.venues is None:
            lo, hi = self.start.isoformat(), self.end.isoformat()
        else:
            lo, hi = f"{self.start}|{self.venues[0]}", f"{self.end}|{self.venues[-1]}"
        return {"dagster/asset_partition_range_start": lo, "dagster/asset_partition_range_end": hi}


@dataclasses.dataclass
class Outcome:
    step: Step
    success: bool
    seconds: float
    rows: dict[str, int]
    checks_passed: int
    checks_failed: list[str]
    checks_warned: list[str]
    error: str | None


def venue_blocks(venues: Sequence[str]) -> list[tuple[str, ...]]:
    """Split venues into runs of the partition order: a multi-partition range is a rectangle
    between two keys, so ``binance..okx`` would also include ``bybit``."""
    order = list(venue_partitions.get_partition_keys())
    chosen = sorted(set(venues), key=order.index)
    blocks: list[list[str]] = []
    for v in chosen:
        if blocks and order.index(v) == order.index(blocks[-1][-1]) + 1:
            blocks[-1].append(v)
        else:
            blocks.append([v])
    return [tuple(b) for b in blocks]


def plan(start: dt.date, end: dt.date, config: FundingConfig, today: dt.date) -> list[Step]:
    """The runs that make ``start..end`` complete, lookbacks first."""
    if end < start:
        raise FundingInputError(f"--end {end} is before --start {start}")
    if start < FIRST_DAY:
        raise FundingInputError(f"--start {start} is before the first partition {FIRST_DAY}")
    if end > today:
        raise FundingInputError(f"--end {end} is after today ({today}, UTC)")

    def clamp(day: dt.date) -> dt.date:
        return max(day, FIRST_DAY)

    days = dt.timedelta
    require_declared(config)  # the run's configuration must fit the loaded declarations
    b0_from = clamp(start - days(SPREADS_LOOKBACK_DAYS))
    if config.rates:
        # fixed_vs_floating reads candles, settlements and strips back to the longest term's start
        require_fixed_declared(config)
        fixed_from = clamp(start - days(FIXED_LOOKBACK_DAYS))
        b0_from = min(b0_from, clamp(start - days(STRIP_LOOKBACK_DAYS)))
    features_from = start  # nothing reads features: roll_b0 takes bucket 0 from the strips
    # the fit that scores the first requested days is stored too (its day is a pca_fits partition)
    pca_from = clamp(start - days(config.pca_refit_days + strip.MAX_CLOSE_LAG_DAYS))
    snaps_from = clamp(min(b0_from, features_from - days(FEATURES_LOOKBACK_DAYS), pca_from - days(PCA_LOOKBACK_DAYS)))
    raw_from = clamp(snaps_from - days(strip.LOOKBACK_DAYS))
    if config.rates:
        raw_from = min(raw_from, fixed_from)
    steps = []
    # Prints of adjacent venues are fetched in one run (side by side: separate request
    # budgets). A universe-sized selection computes its strips venue by venue: one venue's
    # year of every coin is already millions of rows, and a run holds its range in memory.
    wide = config.selection.explicit_coins is None or len(config.selection.explicit_coins) > WIDE_COINS
    blocks = venue_blocks(config.venues)
    for i, block in enumerate(blocks):
        # the first run discovers the instruments the coin and contract settings select,
        # then fetches their prints (one run: Dagster orders the unpartitioned asset first)
        assets = ("instruments", "raw_prints") if i == 0 else ("raw_prints",)
        steps.append(Step("prints", assets, raw_from, end, block))
        for part in [(v,) for v in block] if wide else [block]:
            steps += [
                Step("strips", ("curve_snapshots",), snaps_from, end, part),
                Step("features", ("curve_features",), features_from, end, part),
                Step("pca", ("pca_factors", "pca_fits"), pca_from, end, part),
            ]
    steps.append(Step("bucket 0", ("roll_b0",), b0_from, end, None))
    steps.append(Step("spreads", ("spread_signals",), start, end, None))
    if config.rates:
        steps.append(Step("fixed-rate candles", ("fixed_rate_candles",), fixed_from, end, None))
        steps.append(Step("settlements", ("realised_funding",), fixed_from, end, None))
        steps.append(Step("fixed vs floating", ("fixed_vs_floating", "fixed_rate_spreads"), start, end, None))
    return steps


def trim_lookbacks(steps: Sequence[Step], start: dt.date, warehouse: Warehouse, config: FundingConfig) -> list[Step]:
    """Start each run at the first day of its lookback the warehouse does not hold yet.

    :func:`plan` re-materialises every lookback so that a backfill into an empty warehouse
    comes out complete. Lookback days already materialised (per asset, venue, coin and
    contract, as ``funding._partitions`` records them) hold the rows a new run would write,
    so the daily increment after a backfill runs one day per asset, not the lookbacks again.
    A selection that needs discovery (``all``, ``top:N``) keeps every lookback, and so does
    a step any of whose lookback days are missing (from the first missing day on).
    """
    if config.selection.explicit_coins is None:
        return list(steps)
    discovered = warehouse.instruments()
    trimmed = []
    for step in steps:
        if step.start >= start:
            trimmed.append(step)
            continue
        venues = step.venues or tuple(config.venues)
        series = instruments.series(discovered, config.selection, list(venues))
        days = [step.start + dt.timedelta(days=i) for i in range((start - step.start).days)]
        keys = {d: [f"{d}|{v}" for v in venues] if step.venues else [d.isoformat()] for d in days}
        every = [k for ks in keys.values() for k in ks]
        have: set[str] | None = None  # the keys every asset of the step holds
        for asset in step.assets:
            if asset == "instruments":
                continue
            held = warehouse.materialised(asset, wanted_series(every, series))
            have = held if have is None else have & held
        have = have or set()
        missing = [d for d in days if not set(keys[d]) <= have]
        trimmed.append(dataclasses.replace(step, start=missing[0] if missing else start))
    return trimmed


def merge_short_runs(steps: Sequence[Step], max_days: int = MERGE_DAYS) -> list[Step]:
    """Adjacent runs over the same range of at most ``max_days`` days and the same venues,
    as one run (in the plan's order: Dagster orders the assets of a run by their deps).

    A run's assets must share a partitioning, so the daily increment after a backfill is two
    runs (the date x venue assets, then the daily all-venue ones) instead of one per asset
    group: each run costs Dagster's set-up and the reads of its inputs, not its one day of
    compute. The stored rows are those of separate runs: each asset still reads its inputs
    through the IO manager, from the warehouse. Longer ranges keep one run per asset group
    (a run holds its range of one asset in memory at a time).
    """
    merged: list[Step] = []
    for step in steps:
        last = merged[-1] if merged else None
        short = (step.end - step.start).days < max_days
        if last is not None and short and (last.start, last.end, last.venues) == (step.start, step.end, step.venues):
            merged[-1] = dataclasses.replace(last, what=f"{last.what}, {step.what}", assets=last.assets + step.assets)
        else:
            merged.append(step)
    return merged


def _ticker(label: str, done_runs: int, total_runs: int, show: Callable[[str], None], stop: threading.Event) -> None:
    """Redraw the progress line (runs done, the current run and its time) until ``stop``."""
    t0 = time.monotonic()
    filled = int(20 * done_runs / total_runs)
    while not stop.wait(0.25):
        show(
            f"  [{'#' * filled}{'.' * (20 - filled)}] {done_runs}/{total_runs} runs  {label:<32} {time.monotonic() - t0:6.1f}s"
        )


#: Errors whose message is the whole story for a user: shown without step or class name.
USER_ERRORS = ("FundingInputError", "VenueUnreachable", "WarehouseError", "WarehouseLockedError")


def _failure(result: dg.ExecuteInProcessResult) -> str:
    """The root cause of a failed run on one line: a user error's message as it is, any
    other error as ``<step>: <class>: <message>``."""
    for event in result.all_events:
        if event.event_type == DagsterEventType.STEP_FAILURE and event.step_failure_data:
            err = event.step_failure_data.error
            while err is not None and err.cause is not None and err.cls_name not in USER_ERRORS:
                err = err.cause
            if err is None:
                return f"{event.step_key}: failed"
            text = " ".join(err.message.split())
            head, colon, rest = text.partition(": ")
            if colon and head.endswith(err.cls_name):  # the "module.Class: " of a formatted exception
                text = rest
            return text if err.cls_name in USER_ERRORS else f"{event.step_key}: {err.cls_name}: {text}"
    return "run failed"


#: Dagster's switch (read when a run is created) for one "materialisation planned" event per
#: asset of a range run instead of one per partition: a history run plans thousands of
#: partitions, and each event is a write to the instance. The cost: a run that fails leaves
#: its partitions missing in the UI rather than marked failed (the command names the run).
PLANNED_EVENTS_ENV = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


@contextlib.contextmanager
def planned_events_per_asset() -> Iterator[None]:
    """Runs created inside plan each asset once (:data:`PLANNED_EVENTS_ENV`); the process's
    setting is restored on leaving."""
    before = os.environ.get(PLANNED_EVENTS_ENV)
    os.environ[PLANNED_EVENTS_ENV] = "true"
    try:
        yield
    finally:
        if before is None:
            del os.environ[PLANNED_EVENTS_ENV]
        else:
            os.environ[PLANNED_EVENTS_ENV] = before


def run_step(
    step: Step,
    settings: FundingConfig,
    instance: dg.DagsterInstance,
    show: Callable[[str], None],
    position: tuple[int, int] = (0, 1),
) -> Outcome:
    done = threading.Event()
    ticker = threading.Thread(target=_ticker, args=(step.label, *position, show, done), daemon=True)
    t0 = time.monotonic()
    ticker.start()
    try:
        with planned_events_per_asset():
            result = dg.materialize(
                ASSETS,
                selection=list(step.assets),
                instance=instance,
                resources=build_resources(settings),
                tags=step.tags,
                run_config=DEBUG_LOG if debug_enabled() else QUIET,
                raise_on_error=False,
            )
    finally:
        done.set()
        ticker.join()
    rows: dict[str, int] = {}
    for name in step.assets:
        # A range run reports one materialisation per partition, all with the run's metadata.
        mats = result.asset_materializations_for_node(name)
        if mats and "rows" in mats[0].metadata:
            rows[name] = int(mats[0].metadata["rows"].value)
    evaluations = result.get_asset_check_evaluations()
    return Outcome(
        step=step,
        success=result.success,
        seconds=time.monotonic() - t0,
        rows=rows,
        checks_passed=sum(e.passed for e in evaluations),
        checks_failed=sorted(
            {e.check_name for e in evaluations if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR}
        ),
        checks_warned=sorted(
            {e.check_name for e in evaluations if not e.passed and e.severity == dg.AssetCheckSeverity.WARN}
        ),
        error=None if result.success else _failure(result),
    )


def preflight(settings: FundingConfig, venues: Sequence[str], coins_setting: str = "FUNDING_ASSETS_COINS") -> None:
    """Fail fast, before any run, on a data directory or replay files we cannot use, or on
    named coins that no configured venue lists (the source's instrument lists are read once
    per process: the ``instruments`` run that follows reuses them)."""
    ensure_writable_home(settings.home)
    source = settings.open_source()  # the runs' own source, so they reuse its discovery
    for venue in venues:
        source.check(venue)
    if settings.selection.explicit_coins is not None:
        try:
            # venue by venue side by side, as the ``instruments`` asset asks them
            with ThreadPoolExecutor(max_workers=len(venues)) as pool:
                listed = instruments.frame(i for found in pool.map(source.instruments, venues) for i in found)
        except VenueUnreachable:
            raise
        except VenueError as exc:
            raise VenueError(f"instruments: {exc}") from None
        instruments.require_listed(listed, settings.selection, list(venues), settings.source, coins_setting)


def backfill(
    start: dt.date,
    end: dt.date,
    settings: FundingConfig,
    instance: dg.DagsterInstance,
    show: Callable[[str], None],
    log: Callable[[str], None],
    today: dt.date | None = None,
    coins_setting: str = "FUNDING_ASSETS_COINS",
) -> list[Outcome]:
    """Run the plan step by step; stop at the first failed run. ``coins_setting`` names
    where the coins came from (``--coins``) in an error."""
    today = today or dt.datetime.now(dt.UTC).date()
    steps = plan(start, end, settings, today)
    preflight(settings, settings.venues, coins_setting)
    warehouse = Warehouse(database=str(settings.warehouse_path), lock_timeout_s=settings.lock_timeout_s)
    with contextlib.ExitStack() as held:
        if (end - start).days < MERGE_DAYS:
            # A short backfill keeps the file open in this process: the runs' many short
            # connections then share the open database instead of each reading it again.
            # A long one lets other processes in between its connections.
            held.enter_context(warehouse.connect())
        return _run_steps(
            merge_short_runs(trim_lookbacks(steps, start, warehouse, settings)), settings, instance, show, log
        )


def _run_steps(
    steps: Sequence[Step],
    settings: FundingConfig,
    instance: dg.DagsterInstance,
    show: Callable[[str], None],
    log: Callable[[str], None],
) -> list[Outcome]:
    outcomes = []
    for i, step in enumerate(steps, 1):
        outcome = run_step(step, settings, instance, show, (i - 1, len(steps)))
        outcomes.append(outcome)
        written = ", ".join(f"{k} {v:,} rows" for k, v in outcome.rows.items())
        mark = "ok " if outcome.success else "FAILED"
        log(f"[{i}/{len(steps)}] {mark} {step.label:<32} {step.start}..{step.end}  {written}  ({outcome.seconds:.1f}s)")
        if outcome.checks_failed:
            log(f"        checks failed: {', '.join(outcome.checks_failed)}")
        if outcome.checks_warned:
            log(f"        checks warned: {', '.join(outcome.checks_warned)} (see the check's metadata in the UI)")
        if not outcome.success:
            break
    return outcomes
