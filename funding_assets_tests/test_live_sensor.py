"""live_prints: a landed file is done only once a run that ingested it succeeded; failed runs
are retried, queued runs never doubled; runs confined to the landing folder; corrupt files
rejected; REST polled only when due and landed only when changed; retention; today's
raw_prints merging the live prints."""

import datetime as dt
import os

import dagster as dg
import duckdb
import polars as pl
import pytest

from funding_assets.definitions import ASSETS, defs
from funding_assets.defs import live
from funding_assets.live.landing import REJECTED_DIR, LandingWriter, landed_files
from funding_assets.live.status import VenueStatus, write_status
from funding_assets.resources import FundingConfig, build_resources
from funding_assets.warehouse import Warehouse

DAY = dt.date(2024, 3, 6)
RUN_KEY_TAG = "dagster/run_key"


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def quotes(n: int, start: dt.datetime, venue: str = "okx") -> pl.DataFrame:
    ts = [start + dt.timedelta(minutes=7 * i) for i in range(n)]
    return pl.DataFrame(
        {
            "venue": venue,
            "symbol": "BTC",
            "venue_symbol": "BTC-USDT-SWAP",
            "ts": ts,
            "funding_time": [
                t.replace(minute=0, second=0, microsecond=0, hour=t.hour - t.hour % 8) + dt.timedelta(hours=8)
                for t in ts
            ],
            "rate": [0.0001 + i * 1e-7 for i in range(n)],
            "interval_hours": 8.0,
            "kind": "predicted",
            "source": "okx WS",
            "received_at": [t + dt.timedelta(milliseconds=40) for t in ts],
        }
    ).with_columns(pl.col("ts", "funding_time", "received_at").cast(pl.Datetime("ms")))


def land(home, frame, **kw):
    writer = LandingWriter(home / "landing", **kw)
    writer.write(frame)
    writer.close()
    return landed_files(home / "landing")[-1]


def collector_alive(home, now):
    (home / "live").mkdir(parents=True, exist_ok=True)
    status = VenueStatus("okx", "live", now, now, 1, 1, 0, 0, 0, None)
    write_status(home / "live" / "status.json", [status], now)


def tick(instance, cursor=None):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    return defs.resolve_sensor_def("live_prints_sensor").evaluate_tick(ctx)


def launch(instance, request, *, raise_on_error=True):
    """What the daemon does with a request: a run with its config, its tags and its run key."""
    job = defs.resolve_job_def("live_prints_job")
    return job.execute_in_process(
        run_config=request.run_config,
        instance=instance,
        resources=build_resources(FundingConfig.from_env()),
        tags={**request.tags, RUN_KEY_TAG: request.run_key},
        raise_on_error=raise_on_error,
    )


def queue(instance, request):
    """A run the daemon created but has not started (waiting for the queue and the pool)."""
    return instance.create_run_for_job(
        defs.resolve_job_def("live_prints_job"),
        run_config=request.run_config,
        tags={**request.tags, RUN_KEY_TAG: request.run_key},
        status=dg.DagsterRunStatus.NOT_STARTED,
    )


def files_of(request):
    return request.run_config["ops"]["live_prints"]["config"]["files"]


def warehouse_rows(home, table):
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.sql(f"SELECT * FROM funding.{table} ORDER BY venue, symbol, ts").pl()


def locked_warehouse(monkeypatch):
    """Every write fails as it does while a notebook holds the warehouse file."""

    def refuse(self, rows):
        raise duckdb.IOException("Could not set lock on file warehouse.duckdb: Conflicting lock is held")

    monkeypatch.setattr(Warehouse, "upsert_live_prints", refuse)


@pytest.fixture
def clock(monkeypatch):
    """The sensor's now, settable: ``clock.now``."""

    class Clock:
        now = dt.datetime(2024, 3, 6, 12)

    monkeypatch.setattr(live, "utcnow", lambda: Clock.now)
    return Clock


# --- exactly once ----------------------------------------------------------------------------


def test_landed_files_are_ingested_exactly_once_across_restarts(home, instance, clock):
    collector_alive(home, clock.now)
    land(home, quotes(30, dt.datetime(2024, 3, 6, 8)))
    land(home, quotes(20, dt.datetime(2024, 3, 6, 12)))
    first = tick(instance)
    assert len(first.run_requests) == 1 and len(files_of(first.run_requests[0])) == 2
    assert launch(instance, first.run_requests[0]).success
    assert warehouse_rows(home, "live_prints").height == 50
    # the daemon restarts with the stored cursor: the run succeeded, nothing new, nothing twice
    again = tick(instance, first.cursor)
    assert again.run_requests == []
    assert live.LiveCursor.from_json(again.cursor).done == landed_files(home / "landing")[-1].name
    land(home, quotes(5, dt.datetime(2024, 3, 6, 15)))
    second = tick(instance, again.cursor)
    assert len(second.run_requests) == 1 and second.run_requests[0].run_key != first.run_requests[0].run_key
    assert len(files_of(second.run_requests[0])) == 1
    launch(instance, second.run_requests[0])
    launch(instance, second.run_requests[0])  # a replayed run changes nothing
    assert warehouse_rows(home, "live_prints").height == 55


def test_two_contracts_of_one_coin_are_two_series_and_old_files_get_the_main_one(home, instance, clock):
    """live_prints is keyed by (venue, symbol, contract, ts, funding_time): the USDT and the
    inverse swap quoting at the same instant are both kept; a file landed before prints
    carried ``contract`` lands as the venue's main perpetual of the coin."""
    collector_alive(home, clock.now)
    start = dt.datetime(2024, 3, 6, 8)
    usdt = quotes(3, start).with_columns(contract=pl.lit("usdt"))
    land(home, pl.concat([usdt, usdt.with_columns(contract=pl.lit("inverse"), venue_symbol=pl.lit("BTC-USD-SWAP"))]))
    old = quotes(2, dt.datetime(2024, 3, 6, 12))  # no contract column
    old.write_parquet(home / "landing" / "prints-29990101T000000.000-000000.parquet")  # an older collector's
    result = tick(instance)
    assert launch(instance, result.run_requests[0]).success
    rows = warehouse_rows(home, "live_prints")
    assert rows.group_by("contract").len().sort("contract").rows() == [("inverse", 3), ("usdt", 5)]


def test_a_file_is_done_only_once_the_run_that_ingested_it_succeeded(home, instance, clock, monkeypatch):
    """The run fails (the warehouse is locked): its files are requested again, with the files
    landed since, under a new run key after the back-off; formerly they were never ingested."""
    collector_alive(home, clock.now)
    land(home, quotes(10, dt.datetime(2024, 3, 6, 8)))
    first = tick(instance)
    with monkeypatch.context() as locked:
        locked_warehouse(locked)
        assert not launch(instance, first.run_requests[0], raise_on_error=False).success
    land(home, quotes(4, dt.datetime(2024, 3, 6, 11)))
    waiting = tick(instance, first.cursor)
    assert waiting.run_requests == [] and "retrying at" in waiting.skip_message
    clock.now += live.retry_backoff(0)
    retry = tick(instance, waiting.cursor)
    (request,) = retry.run_requests
    assert request.run_key != first.run_requests[0].run_key
    assert request.tags[live.ATTEMPT_TAG] == "1"
    assert files_of(request) == [str(p) for p in landed_files(home / "landing")]  # both files
    assert launch(instance, request).success
    assert warehouse_rows(home, "live_prints").height == 14
    assert tick(instance, retry.cursor).run_requests == []


def test_the_back_off_doubles_per_failed_attempt_up_to_its_cap():
    assert [live.retry_backoff(a).total_seconds() for a in range(8)] == [30, 60, 120, 240, 480, 960, 1800, 1800]


def test_while_a_run_is_queued_its_files_are_not_requested_twice(home, instance, clock):
    collector_alive(home, clock.now)
    land(home, quotes(3, dt.datetime(2024, 3, 6, 8)))
    first = tick(instance)
    run = queue(instance, first.run_requests[0])
    cursor = first.cursor
    for minutes in (1, 5, 60):  # a warehouse locked for an hour: the run waits, nothing more is asked
        land(home, quotes(2, dt.datetime(2024, 3, 6, 9) + dt.timedelta(minutes=minutes)))
        clock.now += dt.timedelta(minutes=minutes)
        collector_alive(home, clock.now)
        result = tick(instance, cursor)
        assert result.run_requests == [] and "waiting for the run" in result.skip_message
        cursor = result.cursor
    instance.report_run_canceled(run)
    seen = tick(instance, cursor)  # the back-off counts from the tick that sees the run cancelled
    assert seen.run_requests == [] and "retrying at" in seen.skip_message
    clock.now += live.retry_backoff(0)
    (retry,) = tick(instance, seen.cursor).run_requests
    assert retry.tags[live.ATTEMPT_TAG] == "1" and len(files_of(retry)) == 4


def test_a_request_whose_run_was_never_created_is_requested_again_under_the_same_run_key(home, instance, clock):
    collector_alive(home, clock.now)
    land(home, quotes(3, dt.datetime(2024, 3, 6, 8)))
    first = tick(instance)  # the daemon stops before it creates the run
    land(home, quotes(2, dt.datetime(2024, 3, 6, 9)))
    (again,) = tick(instance, first.cursor).run_requests
    assert again.run_key == first.run_requests[0].run_key  # Dagster never launches a run key twice
    assert files_of(again) == files_of(first.run_requests[0])


def test_a_run_created_by_a_tick_whose_cursor_was_lost_is_not_doubled_and_loses_nothing(home, instance, clock):
    """The run of a tick exists but the tick's cursor was not stored: the next tick, from the
    older cursor, reads the run records. While that run is in flight nothing is requested;
    once it succeeded only the files landed after it are requested, never its own again
    (formerly they were, under another key once a file had been rejected)."""
    collector_alive(home, clock.now)
    land(home, quotes(3, dt.datetime(2024, 3, 6, 8)))
    lost = tick(instance)
    assert launch(instance, lost.run_requests[0]).success
    land(home, quotes(2, dt.datetime(2024, 3, 6, 9)))
    (rest,) = tick(instance, None).run_requests  # from the cursor before the lost one
    assert rest.run_key != lost.run_requests[0].run_key
    assert files_of(rest) == [str(landed_files(home / "landing")[-1])]


def test_an_old_cursor_holding_a_file_name_is_read_as_done(home, instance, clock):
    collector_alive(home, clock.now)
    old = land(home, quotes(3, dt.datetime(2024, 3, 6, 8)))
    new = land(home, quotes(2, dt.datetime(2024, 3, 6, 9)))
    (request,) = tick(instance, old.name).run_requests
    assert files_of(request) == [str(new)]


# --- corrupt files and confinement -------------------------------------------------------------


def test_a_corrupt_file_is_moved_to_rejected_named_in_the_warning_and_never_requested(home, instance, clock, capfd):
    collector_alive(home, clock.now)
    good = land(home, quotes(10, dt.datetime(2024, 3, 6, 8)))
    bad = good.with_name(good.name.replace(good.name[-14:-8], "999999"))
    bad.write_bytes(good.read_bytes()[:200])  # a truncated parquet file under a final name
    result = tick(instance)
    assert files_of(result.run_requests[0]) == [str(good)]
    rejected = home / "landing" / REJECTED_DIR / bad.name
    assert not bad.exists() and rejected.read_bytes() == good.read_bytes()[:200]
    warning = capfd.readouterr().err
    assert str(rejected) in warning and str(bad) in warning
    launch(instance, result.run_requests[0])
    assert warehouse_rows(home, "live_prints").height == 10
    assert tick(instance, result.cursor).run_requests == []


def test_a_corrupt_file_found_by_the_run_is_rejected_and_the_rest_ingested(home, instance, clock):
    collector_alive(home, clock.now)
    good = land(home, quotes(10, dt.datetime(2024, 3, 6, 8)))
    later = land(home, quotes(3, dt.datetime(2024, 3, 6, 9)))
    (request,) = tick(instance).run_requests
    later.write_bytes(b"PAR1 damaged after the sensor read it PAR1")
    result = launch(instance, request)
    assert result.success and warehouse_rows(home, "live_prints").height == 10
    assert (home / "landing" / REJECTED_DIR / later.name).exists() and good.exists()
    (mat,) = result.asset_materializations_for_node("live_prints")
    assert mat.metadata["rejected_files"].value == [str(home.resolve() / "landing" / REJECTED_DIR / later.name)]


@pytest.mark.parametrize(
    "where",
    ["outside", "dotdot", "symlink", "not-a-landed-name", "rejected", "relative-elsewhere"],
)
def test_a_path_outside_the_landing_folder_fails_the_run_naming_it_before_writing_anything(
    home, instance, clock, tmp_path, where, monkeypatch
):
    collector_alive(home, clock.now)
    good = land(home, quotes(10, dt.datetime(2024, 3, 6, 8)))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    foreign = elsewhere / good.name
    foreign.write_bytes(good.read_bytes())
    landing = home / "landing"
    if where == "outside":
        path = str(foreign)
    elif where == "dotdot":
        path = str(landing / ".." / ".." / "elsewhere" / good.name)
    elif where == "symlink":
        link = landing / good.name.replace("-000000", "-000777")
        os.symlink(foreign, link)
        path = str(link)
    elif where == "not-a-landed-name":
        other = landing / "notes.parquet"
        other.write_bytes(good.read_bytes())
        path = str(other)
    elif where == "rejected":
        (landing / REJECTED_DIR).mkdir()
        path = str(landing / REJECTED_DIR / good.name)
    else:
        monkeypatch.chdir(elsewhere)
        path = good.name  # relative: resolved against the working directory, not the landing folder
    request = dg.RunRequest(
        run_config=dg.RunConfig(ops={"live_prints": live.LivePrintsConfig(files=[str(good), path])})
    )
    result = launch(instance, request, raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    message = failure.step_failure_data.error.message
    assert f"refusing to ingest {path!r}" in message and str(landing.resolve()) in message
    assert not (home / "warehouse.duckdb").exists()  # nothing written, not even the good file


def test_a_run_of_landed_files_inside_the_folder_by_relative_path_is_accepted(home, instance, clock, monkeypatch):
    collector_alive(home, clock.now)
    good = land(home, quotes(4, dt.datetime(2024, 3, 6, 8)))
    monkeypatch.chdir(home)
    request = dg.RunRequest(
        run_config=dg.RunConfig(ops={"live_prints": live.LivePrintsConfig(files=[f"landing/{good.name}"])})
    )
    assert launch(instance, request).success
    assert warehouse_rows(home, "live_prints").height == 4


# --- polling without a collector ---------------------------------------------------------------


def test_without_a_collector_the_sensor_polls_current_funding(home, instance, monkeypatch):
    monkeypatch.setenv("FUNDING_ASSETS_VENUES", "bybit,okx")
    result = tick(instance)
    files = files_of(result.run_requests[0])
    launch(instance, result.run_requests[0])
    rows = warehouse_rows(home, "live_prints")
    assert len(files) == 1
    assert rows.height == 4 and set(rows["kind"]) == {"predicted"}
    assert set(rows["venue"]) == {"bybit", "okx"} and set(rows["symbol"]) == {"BTC", "ETH"}


def test_polls_are_due_at_each_prediction_interval_and_after_each_settlement(monkeypatch):
    t = dt.datetime(2024, 3, 6, 7, 59, 0)
    venues = ["okx", "hyperliquid"]
    assert live.polls_due({}, venues, t) == venues  # never polled
    polled = {v: t for v in venues}
    assert live.polls_due(polled, venues, t + dt.timedelta(seconds=50)) == []
    assert live.polls_due(polled, venues, t + dt.timedelta(minutes=1, seconds=30)) == venues  # 08:00:30
    assert live.polls_due(polled, venues, t - dt.timedelta(hours=1)) == venues  # a clock set back
    # with predictions polled daily, only settlements make a poll due: hourly vs 8-hourly
    monkeypatch.setattr(live, "PREDICTION_POLL", dt.timedelta(days=1))
    polled = {v: dt.datetime(2024, 3, 6, 8, 1) for v in venues}
    assert live.polls_due(polled, venues, dt.datetime(2024, 3, 6, 9, 0, 29)) == []
    assert live.polls_due(polled, venues, dt.datetime(2024, 3, 6, 9, 0, 30)) == ["hyperliquid"]
    assert live.polls_due(polled, venues, dt.datetime(2024, 3, 6, 16, 0, 30)) == venues


def fake_current(calls, rates):
    """``current_prints`` answering ``rates[venue]`` for the open hour, ts = the time asked."""

    def current(settings, venue):
        now = live.utcnow()
        calls.append((venue, now))
        window = now.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
        return quotes(1, now, venue=venue).with_columns(
            funding_time=pl.lit(window, pl.Datetime("ms")), rate=pl.lit(rates[venue])
        )

    return current


def test_an_unchanged_poll_lands_nothing_and_launches_no_run(home, instance, clock, monkeypatch):
    monkeypatch.setenv("FUNDING_ASSETS_VENUES", "okx,bybit")
    calls, rates = [], {"okx": 1e-4, "bybit": 2e-4}
    monkeypatch.setattr(live, "current_prints", fake_current(calls, rates))
    clock.now = dt.datetime(2024, 3, 6, 12, 5)
    first = tick(instance)
    launch(instance, first.run_requests[0])
    clock.now = dt.datetime(2024, 3, 6, 12, 10, 30)  # due again: same windows, same rates, later ts
    same = tick(instance, first.cursor)
    assert len(calls) == 4 and same.run_requests == [] and len(landed_files(home / "landing")) == 1
    rates["bybit"] = 3e-4
    clock.now = dt.datetime(2024, 3, 6, 12, 20, 30)
    (changed,) = tick(instance, same.cursor).run_requests
    launch(instance, changed)
    newest = pl.read_parquet(landed_files(home / "landing")[-1])
    assert newest["venue"].to_list() == ["bybit"]  # only the venue whose prints changed


def test_without_a_collector_six_hours_poll_each_venue_36_times_and_run_only_on_change(
    home, instance, clock, monkeypatch
):
    """Ticks every 30 s for 6 hours; prints change once an hour (the hourly venue's window):
    formerly a poll and a run per tick (720), now 36 polls per venue (144 a day) and a run
    per change."""
    monkeypatch.setenv("FUNDING_ASSETS_VENUES", "okx,hyperliquid")
    calls = []
    monkeypatch.setattr(live, "current_prints", fake_current(calls, {"okx": 1e-4, "hyperliquid": 2e-5}))
    clock.now, cursor, runs = dt.datetime(2024, 3, 6, 0, 0, 40), None, 0
    for _ in range(6 * 120):
        result = tick(instance, cursor)
        for request in result.run_requests:  # the run succeeds at once
            runs += 1
            instance.create_run_for_job(
                defs.resolve_job_def("live_prints_job"),
                run_config=request.run_config,
                tags={**request.tags, RUN_KEY_TAG: request.run_key},
                status=dg.DagsterRunStatus.SUCCESS,
            )
        cursor = result.cursor
        clock.now += dt.timedelta(seconds=30)
    assert sum(v == "okx" for v, _ in calls) == sum(v == "hyperliquid" for v, _ in calls) == 36
    assert runs == 6  # the first poll, then one per new hourly window (01:00:30 ... 05:00:30)
    assert len(landed_files(home / "landing")) == 6


# --- retention --------------------------------------------------------------------------------


def test_ingested_files_past_the_retention_are_deleted_pending_ones_never(home, instance, clock):
    collector_alive(home, clock.now)
    old = dt.datetime(2024, 3, 1, tzinfo=dt.UTC).timestamp()
    ingested = land(home, quotes(3, dt.datetime(2024, 3, 1)), wall_clock=lambda: old)
    first = tick(instance)
    launch(instance, first.run_requests[0])
    pending = land(home, quotes(2, dt.datetime(2024, 3, 1, 1)), wall_clock=lambda: old + 60)
    rejected = home / "landing" / REJECTED_DIR
    rejected.mkdir()
    stale = rejected / ingested.name.replace("-000000", "-000099")
    stale.write_bytes(b"corrupt")
    clock.now = dt.datetime(2024, 3, 8, 0, 0, 1)  # 7 days and a second after both were landed
    collector_alive(home, clock.now)
    result = tick(instance, first.cursor)
    assert not ingested.exists() and pending.exists() and stale.exists()
    assert files_of(result.run_requests[0]) == [str(pending)]  # still to be ingested
    clock.now = dt.datetime(2024, 3, 31, 0, 0, 1)  # 30 days: rejected files go too
    collector_alive(home, clock.now)
    tick(instance, result.cursor)
    assert not stale.exists()


# --- today's raw_prints ------------------------------------------------------------------------


def test_todays_raw_prints_merge_live_predictions_with_settlements(home, instance, monkeypatch):
    now = dt.datetime(2024, 3, 6, 23, 59)
    monkeypatch.setattr(live, "utcnow", lambda: now)
    monkeypatch.setenv("FUNDING_ASSETS_VENUES", "okx")
    collector_alive(home, now)
    predictions = quotes(40, dt.datetime(2024, 3, 6, 9))
    land(home, predictions)
    launch(instance, tick(instance).run_requests[0])
    for _ in range(2):  # twice: no duplicates
        result = dg.materialize(
            ASSETS,
            selection=["raw_prints"],
            instance=instance,
            resources=build_resources(FundingConfig.from_env()),
            partition_key=dg.MultiPartitionKey({"date": str(DAY), "venue": "okx"}),
        )
        assert result.success
    raw = warehouse_rows(home, "raw_prints").filter(pl.col("symbol") == "BTC")
    live_quotes = raw.filter((pl.col("kind") == "predicted") & (pl.col("source") != "reconstructed"))
    assert live_quotes.height == 40
    # beside them, the predictions rebuilt from premium history: one per 10 minutes before each settlement
    # and, where no live quote was seen at the same instant, the predictions rebuilt from
    # premium history (every 10 minutes before each settlement)
    assert raw.filter(pl.col("source") == "reconstructed").height == 3 * 47 - 4
    assert raw.filter(pl.col("kind") == "realised").height == 3  # 00:00, 08:00, 16:00 settlements
    assert raw.height == raw.unique(["venue", "symbol", "ts", "funding_time"]).height
