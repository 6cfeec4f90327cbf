"""The funding-roll sensor and the schedules: instrument discovery, PCA refit and daily completion.

The clock is :func:`utcnow`, which tests replace to run days of windows in seconds.
"""

import datetime as dt
import json

import dagster as dg

from ..partitions import multi_key
from ..pca import EPOCH
from ..resources import FundingConfig
from ..venues import SPECS
from .jobs import fixed_job, instruments_job, pca_refit_job, roll_job, spreads_job


def utcnow() -> dt.datetime:
    """Naive UTC now (replaced in tests)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


#: Hours between a venue's funding settlements: every closed native window changes its
#: day's partition (hourly venues' intraday strips move each hour; the 8h grid rolls at
#: 00/08/16 UTC for everyone).
SETTLEMENT_HOURS = {venue: int(spec.default_interval_hours) for venue, spec in SPECS.items()}


def last_close(now: dt.datetime, hours: int) -> dt.datetime:
    """The latest settlement boundary of an ``hours`` cadence at or before ``now`` (UTC)."""
    return now.replace(minute=0, second=0, microsecond=0, hour=now.hour - now.hour % hours)


def configured_venues() -> tuple[str, ...]:
    return tuple(FundingConfig.from_env().venues)


@dg.sensor(
    jobs=[roll_job, spreads_job],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def funding_roll_sensor(context: dg.SensorEvaluationContext):
    """Once per closed funding window per venue: recompute that venue's day partition down
    the chain; once per 8h grid roll: that day's spreads.

    A window closing at T lands in T's own UTC date (today's partition exists: the date
    dimension has ``end_offset=1``). Run keys are per window and venue, and the cursor keeps
    each venue's last window, so a window is requested exactly once.
    """
    now = utcnow()
    done = json.loads(context.cursor) if context.cursor else {}
    requests = []
    for venue in configured_venues():
        close = last_close(now, SETTLEMENT_HOURS[venue])
        if venue in done and dt.datetime.fromisoformat(done[venue]) >= close:
            continue
        requests.append(
            dg.RunRequest(
                job_name=roll_job.name,
                run_key=f"{close.isoformat()}|{venue}",
                partition_key=multi_key(close.date(), venue),
                tags={"funding_roll": close.isoformat()},
            )
        )
        done[venue] = close.isoformat()
    roll = last_close(now, 8)
    if "spreads" not in done or dt.datetime.fromisoformat(done["spreads"]) < roll:
        requests.append(
            dg.RunRequest(
                job_name=spreads_job.name,
                run_key=f"{roll.isoformat()}|spreads",
                partition_key=roll.date().isoformat(),
                tags={"funding_roll": roll.isoformat()},
            )
        )
        done["spreads"] = roll.isoformat()
    if not requests:
        return dg.SkipReason(f"no funding window closed since {context.cursor}")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(done, sort_keys=True))


@dg.schedule(
    job=instruments_job,
    cron_schedule="5 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def instruments_schedule(context: dg.ScheduleEvaluationContext):
    """Rediscover the venues' perpetuals daily, before yesterday's partitions are completed
    at 00:30 (a new listing is covered from its first day, a delisting stops there)."""
    day = context.scheduled_execution_time.astimezone(dt.UTC).date()
    return dg.RunRequest(run_key=f"instruments|{day}")


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
    refit_days = FundingConfig.from_env().pca_refit_days
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


@dg.schedule(
    job=fixed_job,
    cron_schedule="15 1 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def daily_fixed_schedule(context: dg.ScheduleEvaluationContext):
    """Yesterday's fixed-rate candles and their comparison with floating, after the venues'
    partitions (00:30) and bucket 0 (01:00) were completed. Nothing without a provider."""
    if not FundingConfig.from_env().rates:
        return dg.SkipReason("FUNDING_ASSETS_RATES=none: no fixed-rate provider configured")
    day = context.scheduled_execution_time.astimezone(dt.UTC).date() - dt.timedelta(days=1)
    return dg.RunRequest(run_key=f"fixed|{day}", partition_key=day.isoformat())


SENSORS = [funding_roll_sensor]
SCHEDULES = [
    instruments_schedule,
    pca_refit_schedule,
    daily_completion_schedule,
    daily_spreads_schedule,
    daily_fixed_schedule,
]
