"""live_prints: landed files ingested exactly once, corrupt ones skipped, REST polling when
no collector runs, and today's raw_prints merging the live prints."""

import datetime as dt

import dagster as dg
import duckdb
import polars as pl
import pytest

from funding_assets.definitions import ASSETS, defs
from funding_assets.defs import live
from funding_assets.live.landing import LandingWriter, landed_files
from funding_assets.live.status import VenueStatus, write_status
from funding_assets.resources import FundingConfig, build_resources

DAY = dt.date(2024, 3, 6)


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


def land(home, frame):
    writer = LandingWriter(home / "landing")
    writer.write(frame)
    writer.close()


def collector_alive(home, now):
    (home / "live").mkdir(parents=True, exist_ok=True)
    status = VenueStatus("okx", "live", now, now, 1, 1, 0, 0, 0, None)
    write_status(home / "live" / "status.json", [status], now)


def tick(instance, cursor=None):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    return defs.resolve_sensor_def("live_prints_sensor").evaluate_tick(ctx)


def ingest(instance, request):
    job = defs.resolve_job_def("live_prints_job")
    result = job.execute_in_process(
        run_config=request.run_config, instance=instance, resources=build_resources(FundingConfig.from_env())
    )
    assert result.success
    return result


def warehouse_rows(home, table):
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.sql(f"SELECT * FROM funding.{table} ORDER BY venue, symbol, ts").pl()


def test_landed_files_are_ingested_exactly_once_across_restarts(home, instance, monkeypatch):
    now = dt.datetime(2024, 3, 6, 12)
    monkeypatch.setattr(live, "utcnow", lambda: now)
    collector_alive(home, now)
    land(home, quotes(30, dt.datetime(2024, 3, 6, 8)))
    land(home, quotes(20, dt.datetime(2024, 3, 6, 12)))
    first = tick(instance)
    assert len(first.run_requests) == 1
    ingest(instance, first.run_requests[0])
    assert warehouse_rows(home, "live_prints").height == 50
    # the daemon restarts with the stored cursor: nothing new, nothing twice
    assert tick(instance, first.cursor).run_requests == []
    land(home, quotes(5, dt.datetime(2024, 3, 6, 15)))
    second = tick(instance, first.cursor)
    assert len(second.run_requests) == 1 and second.run_requests[0].run_key != first.run_requests[0].run_key
    ingest(instance, second.run_requests[0])
    ingest(instance, second.run_requests[0])  # a replayed run changes nothing
    assert warehouse_rows(home, "live_prints").height == 55


def test_a_corrupt_file_is_reported_and_skipped_never_half_ingested(home, instance, monkeypatch):
    now = dt.datetime(2024, 3, 6, 12)
    monkeypatch.setattr(live, "utcnow", lambda: now)
    collector_alive(home, now)
    land(home, quotes(10, dt.datetime(2024, 3, 6, 8)))
    good = landed_files(home / "landing")[-1]
    bad = good.with_name(good.name.replace(good.name[-14:-8], "999999"))
    bad.write_bytes(good.read_bytes()[:200])  # a truncated parquet file under a final name
    result = tick(instance)
    files = result.run_requests[0].run_config["ops"]["live_prints"]["config"]["files"]
    assert files == [str(good)]
    assert result.cursor == bad.name
    ingest(instance, result.run_requests[0])
    assert warehouse_rows(home, "live_prints").height == 10


def test_without_a_collector_the_sensor_polls_current_funding(home, instance, monkeypatch):
    monkeypatch.setenv("FUNDING_ASSETS_VENUES", "bybit,okx")
    result = tick(instance)
    files = result.run_requests[0].run_config["ops"]["live_prints"]["config"]["files"]
    ingest(instance, result.run_requests[0])
    rows = warehouse_rows(home, "live_prints")
    assert len(files) == 1
    assert rows.height == 4 and set(rows["kind"]) == {"predicted"}
    assert set(rows["venue"]) == {"bybit", "okx"} and set(rows["symbol"]) == {"BTC", "ETH"}


def test_todays_raw_prints_merge_live_predictions_with_settlements(home, instance, monkeypatch):
    now = dt.datetime(2024, 3, 6, 23, 59)
    monkeypatch.setattr(live, "utcnow", lambda: now)
    monkeypatch.setenv("FUNDING_ASSETS_VENUES", "okx")
    collector_alive(home, now)
    predictions = quotes(40, dt.datetime(2024, 3, 6, 9))
    land(home, predictions)
    ingest(instance, tick(instance).run_requests[0])
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
    assert raw.filter(pl.col("kind") == "predicted").height == 40
    assert raw.filter(pl.col("kind") == "realised").height == 3  # 00:00, 08:00, 16:00 settlements
    assert raw.height == raw.unique(["venue", "symbol", "ts", "funding_time"]).height
