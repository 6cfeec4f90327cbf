"""live_prints: landed collector files ingested exactly once by a sensor.

The collector writes whole files into ``$FUNDING_ASSETS_HOME/landing/`` (written, then
renamed; names sort in write order). ``live_prints_sensor`` hands them to ``live_prints`` runs:

- **Done means ingested by a run that succeeded.** At most one batch (a run of consecutive
  files, at most :data:`MAX_FILES_PER_RUN`) is in flight. The cursor (JSON, a few hundred
  bytes) keeps ``done``, the newest name below which every file is ingested, and the batch in
  flight (first and last name, attempt). A batch's run key is its first file and attempt.
  Each tick looks the batch up in the instance's run records by its tag :data:`BATCH_TAG`:
  once a run of it succeeded, ``done`` moves to the last file *that run* ingested (its tag
  :data:`LAST_TAG`, which the run records hold even if a cursor update was lost); while one
  is queued or running nothing more is requested; when every run of it failed or was
  cancelled (a warehouse locked by a notebook), its files and those landed since are
  requested again after a back-off (:data:`RETRY_BACKOFF`, doubling to
  :data:`RETRY_BACKOFF_MAX`) under a new run key (the next attempt); if no run of it exists
  (never created) the same run key is requested again, which Dagster never launches twice.
  Dagster stores the cursor with the tick's runs, so a daemon restart resumes where it was:
  nothing lost, no duplicate run; and even a tick whose cursor was lost after its run was
  created requests the same run key again. Ingestion is an upsert by key, so a file retried
  after a run that failed late changes nothing. An old cursor (a bare file name) is read as
  ``done``.
- **Confined.** A run ingests only landed files directly inside the landing folder (no
  ``..``, no symbolic link leading out); any other path fails the run, naming it, before
  anything is written.
- **Corrupt files** are moved to ``landing/rejected/`` with a warning naming both paths, by
  the sensor before it requests them or by the run that finds them.
- **Retention.** Files ingested and older than ``landing.LANDING_RETENTION`` (7 days) are
  deleted, and rejected files after ``landing.REJECTED_RETENTION`` (30 days).
- **REST poll only when due.** Where no collector runs (no fresh status file), a venue's
  current funding is polled once :data:`PREDICTION_POLL` (10 min) has passed and after each
  of its settlements (``venues.DEFAULT_INTERVAL_HOURS``), :data:`SETTLE_DELAY` late; what a
  poll returns is landed only if it differs from what that venue last landed (fingerprint
  in the cursor, timestamps aside), so an unchanged quote launches no run.
"""

import dataclasses
import datetime as dt
import hashlib
import json
from pathlib import Path

import dagster as dg
import polars as pl

from ..live.collector import LANDING_DIR, SETTLE_DELAY_S, live_series
from ..live.landing import (
    LandingError,
    LandingPathError,
    LandingWriter,
    confined_landed_path,
    conform_landing,
    landed_files,
    prune_landed,
    read_landed,
    reject_landed,
    with_contract,
)
from ..live.status import read_status
from ..resources import FundingConfig
from ..venues import DEFAULT_INTERVAL_HOURS
from ..warehouse import TABLE_KEYS, Warehouse, conform, empty

#: The key of a live print (``venue, symbol, contract, ts, funding_time``), the warehouse's.
PRINT_KEY = TABLE_KEYS["live_prints"]
#: A collector whose status file is older than this is taken as not running.
COLLECTOR_STALE = dt.timedelta(minutes=2)
#: Without a collector, each venue's current funding is polled this often (and after every
#: settlement of the venue, SETTLE_DELAY late: venues publish a few seconds after the hour).
PREDICTION_POLL = dt.timedelta(minutes=10)
SETTLE_DELAY = dt.timedelta(seconds=SETTLE_DELAY_S)
#: Most files one run ingests (bounds the run config); a backlog takes several runs.
MAX_FILES_PER_RUN = 500
#: Wait after a batch's runs failed before requesting it again, doubling per attempt up to the max.
RETRY_BACKOFF = dt.timedelta(seconds=30)
RETRY_BACKOFF_MAX = dt.timedelta(minutes=30)
#: Run tags of a batch: its run key (the lookup), first and last file name, attempt, file count.
BATCH_TAG = "funding_assets/live_batch"
FIRST_TAG = "funding_assets/landed_first"
LAST_TAG = "funding_assets/landed_last"
ATTEMPT_TAG = "funding_assets/attempt"
FILES_TAG = "funding_assets/landed_files"

#: What the run records say about a batch (:func:`batch_status`).
SUCCEEDED, IN_PROGRESS, FAILED, MISSING = "succeeded", "in progress", "failed", "missing"
#: Successful batch runs read back on each tick to recover ``done`` after a lost cursor update.
RECONCILE_RUNS = 20
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
_EPOCH = dt.datetime(1970, 1, 1)


def utcnow() -> dt.datetime:
    """Naive UTC now (replaced in tests)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# --- the cursor: a pure state machine --------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Batch:
    """Consecutive landed files ``first..last`` (names) requested as one run, ``attempt`` 0, 1, ...
    ``retry_at``: when its runs were seen failed, the time (naive UTC) it may be retried."""

    first: str
    last: str
    attempt: int = 0
    retry_at: dt.datetime | None = None

    @property
    def run_key(self) -> str:
        """First file and attempt: a tick that lost its cursor update asks for the same key."""
        return f"live|{self.first}|attempt-{self.attempt}"

    def covers(self, name: str) -> bool:
        return self.first <= name <= self.last


@dataclasses.dataclass(frozen=True)
class LiveCursor:
    """The sensor's state, kept by Dagster as JSON between ticks (module docstring).

    ``done``: every landed file named at most this was ingested by a successful run (or
    rejected); ``batch``: the batch in flight; ``polled``: per venue, the last REST poll
    (naive UTC); ``prints``: per venue, the fingerprint of the prints it last landed.
    """

    done: str | None = None
    batch: Batch | None = None
    polled: dict[str, dt.datetime] = dataclasses.field(default_factory=dict)
    prints: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        batch = None
        if self.batch is not None:
            retry_at = self.batch.retry_at.isoformat() if self.batch.retry_at else None
            batch = [self.batch.first, self.batch.last, self.batch.attempt, retry_at]
        polled = {v: t.isoformat() for v, t in sorted(self.polled.items())}
        return json.dumps(
            {"v": 2, "done": self.done, "batch": batch, "polled": polled, "prints": dict(sorted(self.prints.items()))},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | None) -> "LiveCursor":
        if not text:
            return cls()
        if not text.startswith("{"):  # the cursor before v2: the last file name requested
            return cls(done=text)
        data = json.loads(text)
        batch = None
        if data.get("batch"):
            first, last, attempt, retry_at = data["batch"]
            batch = Batch(first, last, attempt, dt.datetime.fromisoformat(retry_at) if retry_at else None)
        polled = {v: dt.datetime.fromisoformat(t) for v, t in data.get("polled", {}).items()}
        return cls(data.get("done"), batch, polled, dict(data.get("prints", {})))


def retry_backoff(attempt: int) -> dt.timedelta:
    """Wait before attempt ``attempt + 1`` of a batch whose attempt ``attempt`` failed."""
    return min(RETRY_BACKOFF * 2**attempt, RETRY_BACKOFF_MAX)


def advance(
    cursor: LiveCursor, landed: list[str], status: tuple[str, str | None] | None, now: dt.datetime
) -> tuple[LiveCursor, Batch | None, str]:
    """One tick of the exactly-once rule; no I/O.

    ``landed``: names of the landed files now in the folder (sorted); ``status``: what the run
    records say about ``cursor.batch`` (:func:`batch_status`; None without a batch). Returns
    the new cursor, the batch to request (None: nothing to request) and why, in words.
    """
    done, batch, attempt = cursor.done, cursor.batch, 0
    status, ingested_upto = status or (None, None)
    if batch is not None:
        if status == SUCCEEDED:
            done, batch = max(done or "", ingested_upto), None
        elif status == IN_PROGRESS:
            return cursor, None, f"waiting for the run of {batch.run_key}"
        elif status == MISSING:  # never created: the same run key again, never launched twice
            files = [n for n in landed if batch.covers(n)]
            if files:  # fewer if some were rejected since (then under the key of the first left)
                again = dataclasses.replace(batch, first=files[0], last=files[-1])
                return dataclasses.replace(cursor, batch=again), again, "requested again"
            batch = None
        elif status == FAILED:
            if batch.retry_at is None:
                batch = dataclasses.replace(batch, retry_at=now + retry_backoff(batch.attempt))
            if now < batch.retry_at:
                waiting = dataclasses.replace(cursor, batch=batch)
                return waiting, None, f"run of {batch.run_key} failed; retrying at {batch.retry_at:%H:%M:%S} UTC"
            attempt, batch = batch.attempt + 1, None
        else:
            raise ValueError(f"unknown batch status {status!r}")
    pending = [n for n in landed if done is None or n > done][:MAX_FILES_PER_RUN]
    if not pending:
        return dataclasses.replace(cursor, done=done, batch=None), None, "no new landed files"
    new = Batch(pending[0], pending[-1], attempt)
    return dataclasses.replace(cursor, done=done, batch=new), new, f"{len(pending)} landed file(s)"


def batch_status(instance: dg.DagsterInstance, batch: Batch) -> tuple[str, str | None]:
    """What the run records say about ``batch``, and the last file a successful run of it
    ingested: succeeded if any run of it succeeded (a re-execution from the UI counts), in
    progress if one is queued or running, failed if every run of it failed or was
    cancelled, missing if there is none."""
    runs = [r.dagster_run for r in instance.get_run_records(filters=dg.RunsFilter(tags={BATCH_TAG: batch.run_key}))]
    succeeded = [r.tags.get(LAST_TAG, batch.last) for r in runs if r.status == dg.DagsterRunStatus.SUCCESS]
    if succeeded:
        return SUCCEEDED, max(succeeded)
    if {r.status for r in runs} - {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}:
        return IN_PROGRESS, None
    return (FAILED if runs else MISSING), None


def reconcile(cursor: LiveCursor, instance: dg.DagsterInstance) -> LiveCursor:
    """The cursor made consistent with the run records, which outlive a lost cursor update.

    ``done`` is at least the last file any successful batch run ingested, and a batch whose
    run is queued or running is the batch in flight, so a tick that lost its cursor neither
    requests files a run already ingested (under another key, once a file was rejected) nor
    launches a second batch beside one in progress.
    """
    recent = instance.get_run_records(
        filters=dg.RunsFilter(job_name=live_prints_job.name, statuses=[dg.DagsterRunStatus.SUCCESS]),
        limit=RECONCILE_RUNS,
    )
    ingested = [r.dagster_run.tags[LAST_TAG] for r in recent if LAST_TAG in r.dagster_run.tags]
    done = max([cursor.done or "", *ingested]) or None
    batch = cursor.batch
    if batch is None:
        running = instance.get_run_records(
            filters=dg.RunsFilter(job_name=live_prints_job.name, statuses=IN_FLIGHT), limit=1
        )
        for record in running:
            tags = record.dagster_run.tags
            if {FIRST_TAG, LAST_TAG, ATTEMPT_TAG} <= tags.keys():
                batch = Batch(tags[FIRST_TAG], tags[LAST_TAG], int(tags[ATTEMPT_TAG]))
    return dataclasses.replace(cursor, done=done, batch=batch)


# --- the REST poll (no collector) ------------------------------------------------------------


def _crossed(last: dt.datetime, now: dt.datetime, step: dt.timedelta, delay: dt.timedelta) -> bool:
    """Whether a boundary ``b`` (a multiple of ``step`` since 1970, i.e. 00:00 UTC) has
    ``last < b + delay <= now``."""
    return (now - delay - _EPOCH) // step > (last - delay - _EPOCH) // step


def polls_due(polled: dict[str, dt.datetime], venues: list[str], now: dt.datetime) -> list[str]:
    """The venues whose current funding is due: never polled, polled before the last
    :data:`PREDICTION_POLL` boundary, or before the last settlement (each
    :data:`SETTLE_DELAY` late), or polled "in the future" (a clock set back)."""
    due = []
    for venue in venues:
        last = polled.get(venue)
        settle = dt.timedelta(hours=DEFAULT_INTERVAL_HOURS.get(venue, 1.0))
        if (
            last is None
            or last > now
            or _crossed(last, now, PREDICTION_POLL, SETTLE_DELAY)
            or _crossed(last, now, settle, SETTLE_DELAY)
        ):
            due.append(venue)
    return due


def fingerprint(prints: pl.DataFrame) -> str:
    """What a poll says, timestamps aside: the same windows at the same rates hash the same."""
    cols = ["symbol", "contract", "funding_time", "rate", "interval_hours", "kind"]
    rows = prints.select(cols).sort(cols).rows()
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


def current_prints(settings: FundingConfig, venue: str) -> pl.DataFrame | None:
    """``venue``'s REST current funding for the configured coins and contracts (what the
    collector would follow, :func:`~funding_assets.live.collector.live_series`); None where
    the source has no live funding (replay files)."""
    client_of = getattr(settings.open_source(), "client", None)
    if client_of is None:
        return None
    series = live_series(settings, venue)
    return client_of(venue).current(series) if series else None


def poll_current(
    settings: FundingConfig, folder: Path, now: dt.datetime, cursor: LiveCursor, log
) -> tuple[LiveCursor, int]:
    """Poll the venues that are due and land, as one file, the prints of those whose poll
    changed since what they last landed; returns the new cursor and the rows landed. A
    venue that fails is logged and asked again at its next due time."""
    polled, prints = dict(cursor.polled), dict(cursor.prints)
    changed: list[tuple[str, str, pl.DataFrame]] = []
    for venue in polls_due(polled, list(settings.venues), now):
        polled[venue] = now
        try:
            frame = current_prints(settings, venue)
        except Exception as exc:  # a venue being down must not stop ingestion of what landed
            log.warning(f"polling {venue} current funding failed: {exc}")
            continue
        if frame is None or not frame.height:
            continue
        frame = with_contract(frame)  # a client that does not say it: the main perpetual
        mark = fingerprint(frame)
        if mark != prints.get(venue):
            changed.append((venue, mark, frame))
    rows = 0
    if changed:
        frames = [conform_landing(f.with_columns(received_at=pl.lit(now, pl.Datetime("ms")))) for _, _, f in changed]
        frame = pl.concat(frames)
        with LandingWriter(folder) as writer:
            writer.write(frame)
        prints.update({venue: mark for venue, mark, _ in changed})
        rows = frame.height
    return dataclasses.replace(cursor, polled=polled, prints=prints), rows


def collector_running(home: Path, now: dt.datetime) -> bool:
    try:
        written_at, _ = read_status(home / "live" / "status.json")
    except (FileNotFoundError, ValueError):
        return False
    return now - written_at < COLLECTOR_STALE


# --- Dagster -----------------------------------------------------------------------------------


class LivePrintsConfig(dg.Config):
    files: list[str] = []


@dg.asset(group_name="ingest", kinds={"polars", "duckdb"}, pool="duckdb")
def live_prints(
    context: dg.AssetExecutionContext, config: LivePrintsConfig, warehouse: Warehouse, funding: FundingConfig
) -> dg.MaterializeResult:
    """Live funding prints (predicted quotes and settlements the collector saw), rate per
    native interval, UTC, with ``received_at``. Upserted by (venue, symbol, contract, ts,
    funding_time), so ingesting a file twice changes nothing; today's ``raw_prints`` merge
    these rows. Files landed before prints carried ``contract`` get each venue's main
    perpetual of the coin (:func:`~funding_assets.live.landing.read_landed`).

    ``files`` must be landed files directly inside ``$FUNDING_ASSETS_HOME/landing/``; any
    other path fails the run before anything is written. A corrupt file is moved to
    ``landing/rejected/`` and the others are ingested."""
    landing = funding.home / LANDING_DIR
    try:
        paths = [confined_landed_path(name, landing) for name in config.files]
    except LandingPathError as exc:
        raise dg.Failure(description=str(exc)) from None
    frames, rejected = [], []
    for path in paths:
        try:
            frames.append(read_landed(path))
        except LandingError as exc:
            moved = reject_landed(path)
            rejected.append(str(moved))
            context.log.warning(f"{exc}; moved to {moved}")
    rows = conform("live_prints", pl.concat(frames)) if frames else empty("live_prints")
    rows = rows.unique(subset=PRINT_KEY, keep="last", maintain_order=True)
    if rows.height:
        warehouse.upsert_live_prints(rows)
    return dg.MaterializeResult(
        metadata={
            "files": len(config.files),
            "prints": rows.height,
            "rejected_files": dg.MetadataValue.json(rejected),
            "high_water_mark": str(rows["ts"].max()) if rows.height else "",
        }
    )


live_prints_job = dg.define_asset_job("live_prints_job", selection=dg.AssetSelection.assets(live_prints))


def _readable(path: Path, log) -> bool:
    """Whether a landed file reads; a corrupt one is moved to ``rejected/``, with a warning."""
    try:
        read_landed(path)
    except LandingError as exc:
        log.warning(f"{exc}; moved to {reject_landed(path)}")
        return False
    except FileNotFoundError:
        return False
    return True


@dg.sensor(job=live_prints_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def live_prints_sensor(context: dg.SensorEvaluationContext):
    """Ingest landed files exactly once (module docstring); poll REST current funding when
    no collector runs and a poll is due; delete ingested files past their retention."""
    settings = FundingConfig.from_env()
    folder = settings.home / LANDING_DIR
    now = utcnow()
    cursor = reconcile(LiveCursor.from_json(context.cursor), context.instance)
    if not collector_running(settings.home, now):
        cursor, _ = poll_current(settings, folder, now, cursor, context.log)
    status = batch_status(context.instance, cursor.batch) if cursor.batch is not None else None
    while True:
        landed = [p.name for p in landed_files(folder, after=cursor.done)]
        after, batch, why = advance(cursor, landed, status, now)
        if batch is None:
            break
        # a corrupt file is rejected (moved out of the folder) before it is ever requested
        if all([_readable(folder / n, context.log) for n in landed if batch.covers(n)]):
            break
    cursor = after
    deleted = prune_landed(folder, cursor.done, now)
    if deleted:
        context.log.info(f"deleted {len(deleted)} landed file(s) past their retention")
    if batch is None:
        return dg.SensorResult(skip_reason=why, cursor=cursor.to_json())
    root = folder.resolve()
    files = [str(root / n) for n in landed if batch.covers(n)]
    request = dg.RunRequest(
        run_key=batch.run_key,
        run_config=dg.RunConfig(ops={"live_prints": LivePrintsConfig(files=files)}),
        tags={
            BATCH_TAG: batch.run_key,
            FIRST_TAG: batch.first,
            LAST_TAG: batch.last,
            ATTEMPT_TAG: str(batch.attempt),
            FILES_TAG: str(len(files)),
        },
    )
    return dg.SensorResult(run_requests=[request], cursor=cursor.to_json())
