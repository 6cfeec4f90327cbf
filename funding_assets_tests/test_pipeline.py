"""The asset chain end to end through Dagster, on a temporary warehouse."""

import datetime as dt

import dagster as dg
import duckdb
import polars as pl
import pytest

from funding_assets.definitions import ASSETS, defs
from funding_assets.resources import FundingConfig, build_resources
from funding_assets.warehouse import Warehouse

VENUES = ("okx", "hyperliquid")  # adjacent in the partition order, so a range is just these two


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def run(instance, selection, start, end, venues=None):
    if venues is None:
        tags = {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}
    else:
        tags = {
            "dagster/asset_partition_range_start": f"{start}|{venues[0]}",
            "dagster/asset_partition_range_end": f"{end}|{venues[-1]}",
        }
    result = dg.materialize(
        ASSETS, selection=selection, instance=instance, resources=build_resources(FundingConfig.from_env()), tags=tags
    )
    assert result.success
    return result


def run_one(instance, selection, key):
    result = dg.materialize(
        ASSETS,
        selection=selection,
        instance=instance,
        resources=build_resources(FundingConfig.from_env()),
        partition_key=key,
    )
    assert result.success
    return result


def table(home, name, order):
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.sql(f"SELECT * FROM funding.{name} ORDER BY {order}").pl()


def test_definitions_load_with_their_assets_checks_sensors_and_schedules():
    assets = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert assets == {
        "instruments",
        "live_prints",
        "raw_prints",
        "curve_snapshots",
        "curve_features",
        "pca_factors",
        "pca_fits",
        "roll_b0",
        "spread_signals",
        "fixed_rate_candles",
        "realised_funding",
        "fixed_vs_floating",
        "fixed_rate_spreads",
    }
    graph = defs.resolve_asset_graph()
    raw = graph.get(dg.AssetKey("raw_prints"))
    assert raw.partitions_def.get_partition_keys()[0] == "2020-01-01|binance"
    assert {c.name for c in graph.asset_check_keys} >= {
        "raw_prints_unique_keys",
        "raw_prints_within_caps",
        "raw_prints_on_grid",
        "curve_snapshots_missing_share",
        "pca_factors_no_lookahead",
    }
    assert defs.resolve_sensor_def("funding_roll_sensor")
    for name in ("instruments_schedule", "pca_refit_schedule", "daily_completion_schedule", "daily_spreads_schedule"):
        assert defs.resolve_schedule_def(name)
    for job in defs.resolve_all_job_defs():
        assert job.executor_def.name == "in_process"


def test_curve_snapshots_declare_their_lookback_as_a_partition_mapping():
    graph = defs.resolve_asset_graph()
    key = dg.MultiPartitionKey({"date": "2024-03-06", "venue": "okx"})
    parents = graph.get_parents_partitions(dg.AssetKey("curve_snapshots"), key).parent_partitions
    upstream = [p for p in parents if p.asset_key == dg.AssetKey("raw_prints")]
    assert {p.asset_key for p in parents} == {dg.AssetKey("raw_prints"), dg.AssetKey("instruments")}
    dates = sorted(p.partition_key.keys_by_dimension["date"] for p in upstream)
    assert dates == ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04", "2024-03-05", "2024-03-06"]
    assert {p.partition_key.keys_by_dimension["venue"] for p in upstream} == {"okx"}


def test_a_range_run_and_day_by_day_runs_store_identical_rows(home, tmp_path, monkeypatch, instance):
    monkeypatch.setenv("FUNDING_ASSETS_VENUES", ",".join(VENUES))
    run(instance, ["raw_prints"], "2024-02-01", "2024-03-12", VENUES)
    run(instance, ["curve_snapshots"], "2024-02-06", "2024-03-12", VENUES)
    run(instance, ["curve_features"], "2024-03-01", "2024-03-12", VENUES)
    days = [dt.date(2024, 3, 7) + dt.timedelta(days=i) for i in range(6)]
    ranged = {
        n: table(home, n, "venue, symbol, kind, ts").filter(pl.col("as_of").dt.date() >= days[0])
        for n in ("curve_snapshots", "curve_features")
    }

    other = tmp_path / "other"
    monkeypatch.setenv("FUNDING_ASSETS_HOME", str(other))
    with dg.DagsterInstance.ephemeral() as fresh:
        # the lookback as ranges, then the compared days one partition at a time
        run(fresh, ["raw_prints"], "2024-02-01", "2024-03-06", VENUES)
        run(fresh, ["curve_snapshots"], "2024-02-06", "2024-03-06", VENUES)
        for venue in reversed(VENUES):
            for day in days:
                run_one(fresh, ["raw_prints"], dg.MultiPartitionKey({"date": str(day), "venue": venue}))
            for day in days:
                run_one(fresh, ["curve_snapshots"], dg.MultiPartitionKey({"date": str(day), "venue": venue}))
            for day in days:
                run_one(fresh, ["curve_features"], dg.MultiPartitionKey({"date": str(day), "venue": venue}))
    for name, frame in ranged.items():
        assert frame.height > 500
        got = table(other, name, "venue, symbol, kind, ts").filter(pl.col("as_of").dt.date() >= days[0])
        assert got.equals(frame), name


def test_rematerialising_replaces_rows_and_never_duplicates(home, monkeypatch, instance):
    monkeypatch.setenv("FUNDING_ASSETS_VENUES", "okx")
    for _ in range(2):
        run(instance, ["raw_prints"], "2024-02-28", "2024-03-06", ["okx"])
        run(instance, ["curve_snapshots"], "2024-03-05", "2024-03-06", ["okx"])
    prints = table(home, "raw_prints", "venue, symbol, ts")
    snaps = table(home, "curve_snapshots", "venue, symbol, kind, ts")
    assert prints.height == prints.unique(["venue", "symbol", "ts", "funding_time"]).height
    assert snaps.height == snaps.unique(["venue", "symbol", "kind", "ts"]).height
    assert snaps.filter(pl.col("kind") == "roll").height == 2 * 3 * 2  # 2 coins x 3 rolls x 2 days


def test_whole_chain_with_checks_on_all_venues(home, instance):
    everywhere = ["binance", "bybit", "okx", "hyperliquid", "deribit"]
    run(instance, ["raw_prints"], "2024-01-01", "2024-03-10", everywhere)
    run(instance, ["curve_snapshots"], "2024-01-06", "2024-03-10", everywhere)
    run(instance, ["curve_features"], "2024-02-01", "2024-03-10", everywhere)
    result = run(instance, ["pca_factors", "pca_fits"], "2024-02-15", "2024-03-10", everywhere)
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["pca_factors_no_lookahead"].passed
    assert evaluations["pca_factors_no_lookahead"].metadata["sampled"].value > 0
    run(instance, ["roll_b0"], "2024-02-01", "2024-03-10")
    result = run(instance, ["spread_signals"], "2024-02-22", "2024-03-10")
    assert all(e.passed for e in result.get_asset_check_evaluations())

    # rows whose fit is at least a cadence into the range: that fit is stored beside them
    factors = table(home, "pca_factors", "venue, symbol, kind, ts").filter(pl.col("ts") >= dt.datetime(2024, 2, 23))
    fits = table(home, "pca_fits", "fit_id")
    used = factors.join(fits.select("fit_id", "fitted_at", "window_end"), on="fit_id")
    assert used.height == factors.height > 0
    assert (used["fitted_at"] < used["ts"]).all()
    spreads = table(home, "spread_signals", "symbol, venue_a, venue_b, funding_time")
    assert spreads.select("venue_a", "venue_b").unique().height == 10  # every pair of 5 venues
    assert set(spreads["signal"].drop_nulls().unique().to_list()) <= {-1, 0, 1}
    assert spreads.filter(pl.col("z").is_not_null()).height > 0


def test_a_failed_write_keeps_the_previous_rows(home, monkeypatch):
    warehouse = Warehouse(database=str(home / "warehouse.duckdb"))
    row = {
        "fit_id": "x",
        "venue": "okx",
        "symbol": "BTC",
        "contract": "usdt",
        "fitted_at": dt.datetime(2024, 1, 1),
        "window_start": dt.datetime(2023, 12, 2),
        "window_end": dt.datetime(2024, 1, 1),
        "n_obs": 90,
        "loadings": [[0.1] * 8],
        "explained_variance": [0.9],
        "mean": [0.1] * 8,
        "reference": [[0.1] * 8],
        "shapes": ["level"],
    }
    frame = pl.DataFrame([row])
    warehouse.replace("pca_fits", frame)
    calls = {"n": 0}
    original = pl.DataFrame.to_arrow

    def broken(self, *a, **k):
        calls["n"] += 1
        raise RuntimeError("disk full")

    monkeypatch.setattr(pl.DataFrame, "to_arrow", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        warehouse.replace("pca_fits", frame.with_columns(fit_id=pl.lit("y")))
    monkeypatch.setattr(pl.DataFrame, "to_arrow", original)
    assert calls["n"] == 1
    assert warehouse.read("pca_fits")["fit_id"].to_list() == ["x"]


def test_the_io_manager_refuses_rows_outside_the_partitions_it_writes(home, instance, monkeypatch):
    from funding_assets.io_manager import WarehouseIOManager, _keys

    frame = pl.DataFrame(
        {"ts": [dt.datetime(2024, 1, 2, 8)], "venue": ["okx"], "symbol": ["BTC"], "contract": ["usdt"]}
    )
    expr = {"date": "ts", "venue": "venue"}
    series = pl.DataFrame({"venue": ["okx"], "symbol": ["BTC"], "contract": ["usdt"]})
    legs = [("venue", "contract")]
    with pytest.raises(dg.DagsterInvariantViolationError, match="outside the partitions"):
        WarehouseIOManager._check_inside("raw_prints", frame, expr, _keys(["2024-01-01|okx"]), series, legs)
    for other, name in (
        (frame.with_columns(symbol=pl.lit("ETH")), "okx:ETH:usdt"),
        (frame.with_columns(contract=pl.lit("inverse")), "okx:BTC:inverse"),
    ):
        with pytest.raises(dg.DagsterInvariantViolationError, match=f"series this run does not write.*{name}"):
            WarehouseIOManager._check_inside("raw_prints", other, expr, _keys(["2024-01-02|okx"]), series, legs)
    WarehouseIOManager._check_inside("raw_prints", frame, expr, _keys(["2024-01-02|okx"]), series, legs)


def test_the_code_location_loads_as_dagster_dev_loads_it(home):
    """``dagster definitions validate`` loads the module in a fresh process, as the code
    server of ``dagster dev`` does (config classes, sensors and schedules resolved)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    dagster = Path(sys.executable).with_name("dagster")
    done = subprocess.run(
        [str(dagster), "definitions", "validate", "-m", "funding_assets.definitions"],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation successful" in done.stdout + done.stderr
