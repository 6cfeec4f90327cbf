"""The funding-roll sensor and the schedules: PCA refit and daily completion.

The clock is :func:`utcnow`, which tests replace to run days of windows in seconds.
"""


import datetime as dt

import dagster as dg

from ..partitions import multi_key
from ..pca import EPOCH
from ..settings import Settings
from .jobs import pca_refit_job, roll_job, spreads_job

GRID = dt.timedelta(hours=8)


def utcnow() -> dt.datetime:
    """Naive UTC now (replaced in tests)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def last_roll(now: dt.datetime) -> dt.datetime:
    """The latest 00/08/16 UTC grid boundary at or before ``now``."""
    return now.replace(minute=0, second=0, microsecond=0, hour=now.hour - now.hour % 8)


def configured_venues() -> tuple[str, ...]:
    return Settings.from_env().venues


@dg.sensor(
    jobs=[roll_job, spreads_job],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def funding_roll_sensor(context: dg.SensorEvaluationContext):
    """Once per closed 8h window: recompute each venue's day partition, then the day's spreads.

    The window that closes at a roll has ``ts`` = the roll, so it lands in the roll's own UTC
    date (today's partition exists: the date dimension has ``end_offset=1``). Run keys are
    per window and venue, so a window is never requested twice.
    """
    roll = last_roll(utcnow())
    if context.cursor and dt.datetime.fromisoformat(context.cursor) >= roll:
        return dg.SkipReason(f"no funding roll since {context.cursor}")
    tag = {"funding_roll": roll.isoformat()}
    requests = [
        dg.RunRequest(
            job_name=roll_job.name,
            run_key=f"{roll.isoformat()}|{venue}",
            partition_key=multi_key(roll.date(), venue),
            tags=tag,
        )
        for venue in configured_venues()
    ]
    requests.append(
        dg.RunRequest(
            job_name=spreads_job.name,
            run_key=f"{roll.isoformat()}|spreads",
            partition_key=roll.date().isoformat(),
            tags=tag,
        )
    )
    return dg.SensorResult(run_requests=requests, cursor=roll.isoformat())


@dg.schedule(
    job=pca_refit_job,
    cron_schedule="15 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def pca_refit_schedule(context: dg.ScheduleEvaluationContext):
    """Refit the PCA on the days a fit is due (every ``FUNDING_ASSETS_PCA_REFIT_DAYS`` from
    2020-01-01), for every configured venue's partition of that day."""
    day = context.scheduled_execution_time.astimezone(dt.UTC).date()
    refit_days = Settings.from_env().pca_refit_days
    if (day - EPOCH.date()).days % refit_days:
        return dg.SkipReason(f"{day}: no PCA fit due (every {refit_days} days from {EPOCH.date()})")
    return [
        dg.RunRequest(run_key=f"refit|{day}|{venue}", partition_key=multi_key(day, venue))
        for venue in configured_venues()
    ]


@dg.schedule(
    job=roll_job,
    cron_schedule="30 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def daily_completion_schedule(context: dg.ScheduleEvaluationContext):
    """Complete yesterday's partitions of every configured venue once the day has closed."""
    day = context.scheduled_execution_time.astimezone(dt.UTC).date() - dt.timedelta(days=1)
    return [
        dg.RunRequest(run_key=f"complete|{day}|{venue}", partition_key=multi_key(day, venue))
        for venue in configured_venues()
    ]


@dg.schedule(
    job=spreads_job,
    cron_schedule="0 1 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def daily_spreads_schedule(context: dg.ScheduleEvaluationContext):
    """Yesterday's spreads, after the venues' partitions were completed at 00:30.

    (Dagster's partitioned-job schedule would pick today's still-open partition, because
    the date dimension has ``end_offset=1``.)
    """
    day = context.scheduled_execution_time.astimezone(dt.UTC).date() - dt.timedelta(days=1)
    return dg.RunRequest(run_key=f"spreads|{day}", partition_key=day.isoformat())

SENSORS = [funding_roll_sensor]
SCHEDULES = [pca_refit_schedule, daily_completion_schedule, daily_spreads_schedule]
