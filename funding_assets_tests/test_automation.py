"""The roll sensor and the schedules, evaluated as the daemon would (evaluate_tick)."""

import datetime as dt

import dagster as dg
import pytest

from funding_assets.definitions import defs
from funding_assets.defs import automation

VENUES = ["binance", "bybit", "okx", "hyperliquid", "deribit"]


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def tick(instance, now, cursor=None):
    automation.utcnow = lambda: now
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    return defs.resolve_sensor_def("funding_roll_sensor").evaluate_tick(ctx)


@pytest.fixture(autouse=True)
def restore_clock(monkeypatch):
    monkeypatch.setattr(automation, "utcnow", automation.utcnow)
    monkeypatch.delenv("FUNDING_ASSETS_VENUES", raising=False)


def test_roll_sensor_requests_each_venues_day_once_per_window(instance):
    result = tick(instance, dt.datetime(2024, 3, 6, 8, 5))
    roll = [r for r in result.run_requests if r.job_name == "roll_job"]
    assert [r.partition_key for r in roll] == [f"2024-03-06|{v}" for v in VENUES]
    assert [r.run_key for r in roll] == [f"2024-03-06T08:00:00|{v}" for v in VENUES]
    spreads = [r for r in result.run_requests if r.job_name == "spreads_job"]
    assert [r.partition_key for r in spreads] == ["2024-03-06"]
    again = tick(instance, dt.datetime(2024, 3, 6, 8, 59), cursor=result.cursor)
    assert again.run_requests == [] and "no funding window closed" in again.skip_message


def test_roll_sensor_walks_days_of_windows_once_each(instance):
    """Two simulated days ticked every 20 minutes: 8h venues fire at each 00/08/16 roll,
    hourly venues every hour, spreads at each 8h roll, and no window twice."""
    cursor, keys = None, []
    now = dt.datetime(2024, 3, 5, 23, 30)
    while now < dt.datetime(2024, 3, 8):
        result = tick(instance, now, cursor)
        keys += [r.run_key for r in result.run_requests]
        cursor = result.cursor or cursor
        now += dt.timedelta(minutes=20)
    assert len(keys) == len(set(keys))
    hours = [dt.datetime(2024, 3, 5, 23) + dt.timedelta(hours=h) for h in range(49)]
    rolls = [dt.datetime(2024, 3, 5, 16) + dt.timedelta(hours=8 * i) for i in range(7)]
    for venue in ("hyperliquid", "deribit"):
        assert [k for k in keys if k.endswith(f"|{venue}")] == [f"{h.isoformat()}|{venue}" for h in hours]
    for venue in ("binance", "bybit", "okx"):
        assert [k for k in keys if k.endswith(f"|{venue}")] == [f"{r.isoformat()}|{venue}" for r in rolls]
    assert [k for k in keys if k.endswith("|spreads")] == [f"{r.isoformat()}|spreads" for r in rolls]


def test_todays_partition_exists_at_the_morning_and_afternoon_rolls(instance):
    today = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for hour in (8, 16):
        result = tick(instance, today.replace(hour=hour, minute=1))
        assert result.run_requests[0].partition_key == f"{today.date()}|binance"
        assert result.run_requests[3].partition_key == f"{today.date()}|hyperliquid"


def test_roll_sensor_follows_the_configured_venues(instance, monkeypatch):
    monkeypatch.setenv("FUNDING_ASSETS_VENUES", "okx,deribit")
    result = tick(instance, dt.datetime(2024, 3, 6, 0, 1))
    assert [r.partition_key for r in result.run_requests if r.job_name == "roll_job"] == [
        "2024-03-06|okx",
        "2024-03-06|deribit",
    ]


def schedule_keys(name, when):
    ctx = dg.build_schedule_context(scheduled_execution_time=when, repository_def=defs.get_repository_def())
    data = defs.resolve_schedule_def(name).evaluate_tick(ctx)
    return [r.partition_key for r in data.run_requests or []], data.skip_message


def test_pca_refit_runs_on_the_cadence_days_only():
    due = dt.datetime(2024, 3, 6, 0, 15, tzinfo=dt.UTC)  # 2020-01-01 + 301 weeks
    keys, _ = schedule_keys("pca_refit_schedule", due)
    assert keys == [f"2024-03-06|{v}" for v in VENUES]
    keys, skip = schedule_keys("pca_refit_schedule", due + dt.timedelta(days=1))
    assert keys == [] and "no PCA fit due" in skip


def test_daily_completion_requests_yesterday_for_every_venue():
    keys, _ = schedule_keys("daily_completion_schedule", dt.datetime(2024, 3, 7, 0, 30, tzinfo=dt.UTC))
    assert keys == [f"2024-03-06|{v}" for v in VENUES]
    keys, _ = schedule_keys("daily_spreads_schedule", dt.datetime(2024, 3, 7, 1, 0, tzinfo=dt.UTC))
    assert keys == ["2024-03-06"]


def test_sensors_and_schedules_start_running():
    assert defs.resolve_sensor_def("funding_roll_sensor").default_status == dg.DefaultSensorStatus.RUNNING
    for name in ("pca_refit_schedule", "daily_completion_schedule", "daily_spreads_schedule"):
        assert defs.resolve_schedule_def(name).default_status == dg.DefaultScheduleStatus.RUNNING
