"""live_prints: landed collector files ingested exactly once by a sensor.

The collector writes whole files into ``$FUNDING_ASSETS_HOME/landing/`` (written, then
renamed). ``live_prints_sensor`` requests one run per batch of new files, with a run key
per batch and a cursor (the last file name seen) that Dagster keeps across restarts, so each
file is ingested once. A corrupt file is reported and skipped, never half-ingested. Where no
collector runs, the sensor polls each venue's REST current funding and lands that instead.
"""

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl

from ..live.landing import LandingError, LandingWriter, landed_files, read_landed
from ..live.status import read_status
from ..resources import FundingConfig
from ..sources import open_source
from ..warehouse import Warehouse, conform, empty

PRINT_KEY = ["venue", "symbol", "ts", "funding_time"]
#: A collector whose status file is older than this is taken as not running.
COLLECTOR_STALE = dt.timedelta(minutes=2)


def utcnow() -> dt.datetime:
    """Naive UTC now (replaced in tests)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class LivePrintsConfig(dg.Config):
    files: list[str] = []


@dg.asset(group_name="ingest", kinds={"polars", "duckdb"}, pool="duckdb")
def live_prints(
    context: dg.AssetExecutionContext, config: LivePrintsConfig, warehouse: Warehouse
) -> dg.MaterializeResult:
    """Live funding prints (predicted quotes and settlements the collector saw), rate per
    native interval, UTC, with ``received_at``. Upserted by (venue, symbol, ts, funding_time),
    so ingesting a file twice changes nothing; today's ``raw_prints`` merge these rows."""
    frames, skipped = [], []
    for name in config.files:
        try:
            frames.append(read_landed(Path(name)))
        except LandingError as exc:
            skipped.append(str(exc))
            context.log.warning(f"skipped landed file: {exc}")
    rows = conform("live_prints", pl.concat(frames)) if frames else empty("live_prints")
    rows = rows.unique(subset=PRINT_KEY, keep="last", maintain_order=True)
    if rows.height:
        warehouse.upsert_live_prints(rows)
    return dg.MaterializeResult(
        metadata={
            "files": len(config.files),
            "prints": rows.height,
            "skipped_files": dg.MetadataValue.json(skipped),
            "high_water_mark": str(rows["ts"].max()) if rows.height else "",
        }
    )


live_prints_job = dg.define_asset_job("live_prints_job", selection=dg.AssetSelection.assets(live_prints))


def collector_running(home: Path, now: dt.datetime) -> bool:
    try:
        written_at, _ = read_status(home / "live" / "status.json")
    except (FileNotFoundError, ValueError):
        return False
    return now - written_at < COLLECTOR_STALE


def poll_current(settings: FundingConfig, folder: Path, now: dt.datetime) -> int:
    """Land each venue's REST current funding (used when no collector runs); rows landed."""
    source = open_source(settings.source)
    client_of = getattr(source, "client", None)
    if client_of is None:  # replay files have no live funding
        return 0
    frames = []
    for venue in settings.venues:
        frames.append(client_of(venue).current(list(settings.coins)))
    prints = pl.concat(frames).with_columns(received_at=pl.lit(now, pl.Datetime("ms")))
    writer = LandingWriter(folder)
    writer.write(prints)
    writer.close()
    return prints.height


@dg.sensor(job=live_prints_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def live_prints_sensor(context: dg.SensorEvaluationContext):
    """Ingest newly landed files once each; poll REST current funding when no collector runs."""
    settings = FundingConfig.from_env()
    folder = settings.home / "landing"
    now = utcnow()
    if not collector_running(settings.home, now):
        try:
            poll_current(settings, folder, now)
        except Exception as exc:  # a venue being down must not stop ingestion of what landed
            context.log.warning(f"polling current funding failed: {exc}")
    files = landed_files(folder, after=context.cursor or None) if folder.is_dir() else []
    if not files:
        return dg.SkipReason("no new landed files")
    good = []
    for path in files:
        try:
            read_landed(path)
            good.append(path)
        except LandingError as exc:
            context.log.warning(f"skipping corrupt landed file: {exc}")
    cursor = files[-1].name
    if not good:
        return dg.SensorResult(skip_reason=f"{len(files)} landed file(s) were corrupt and skipped", cursor=cursor)
    request = dg.RunRequest(
        run_key=f"live|{good[0].name}|{good[-1].name}",
        run_config=dg.RunConfig(ops={"live_prints": LivePrintsConfig(files=[str(p) for p in good])}),
    )
    return dg.SensorResult(run_requests=[request], cursor=cursor)
