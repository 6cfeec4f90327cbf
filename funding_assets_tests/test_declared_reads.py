"""Every cross-partition read is declared and materialised; one configuration; schema evolution.

A partition's rows depend only on its declared inputs: a run whose lookback is not
materialised fails naming what to materialise, instead of computing a different answer.
"""

import datetime as dt

import dagster as dg
import duckdb
import polars as pl
import pytest

from funding_assets import strip
from funding_assets.definitions import ASSETS, defs
from funding_assets.defs.assets import FEATURES_LOOKBACK_DAYS, PCA_LOOKBACK_DAYS, SPREADS_LOOKBACK_DAYS
from funding_assets.errors import FundingInputError
from funding_assets.resources import FundingConfig, build_resources
from funding_assets.warehouse import TABLES, Warehouse

VENUES = ("okx", "hyperliquid")


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def run(instance, selection, start, end, venues=None, config=None, raise_on_error=True):
    if venues is None:
        lo, hi = start, end
    else:
        lo, hi = f"{start}|{venues[0]}", f"{end}|{venues[-1]}"
    return dg.materialize(
        ASSETS,
        selection=selection,
        instance=instance,
        resources=build_resources(config or FundingConfig.from_env()),
        tags={"dagster/asset_partition_range_start": lo, "dagster/asset_partition_range_end": hi},
        raise_on_error=raise_on_error,
    )


def failure_message(result) -> str:
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            err = event.step_failure_data.error
            while err.cause is not None and "FundingInputError" not in err.cls_name:
                err = err.cause
            return err.message
    return ""


def table(home, name, order):
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.sql(f"SELECT * FROM funding.{name} ORDER BY {order}").pl()


def test_spreads_read_bucket_zero_through_a_declared_day_lookback():
    graph = defs.resolve_asset_graph()
    upstream = graph.get_parents_partitions(dg.AssetKey("spread_signals"), "2024-03-30").parent_partitions
    days = sorted(p.partition_key for p in upstream if p.asset_key == dg.AssetKey("roll_b0"))
    assert days[0] == str(dt.date(2024, 3, 30) - dt.timedelta(days=SPREADS_LOOKBACK_DAYS))
    assert days[-1] == "2024-03-30"
    assert graph.get(dg.AssetKey("spread_signals")).parent_keys == {dg.AssetKey("roll_b0")}


def test_pca_fits_is_an_asset_beside_pca_factors():
    graph = defs.resolve_asset_graph()
    assert dg.AssetKey("pca_fits") in graph.get_all_asset_keys()
    fits = graph.get(dg.AssetKey("pca_fits"))
    assert fits.partitions_def == graph.get(dg.AssetKey("pca_factors")).partitions_def
    upstream = graph.get_parents_partitions(
        dg.AssetKey("pca_fits"), dg.MultiPartitionKey({"date": "2024-03-30", "venue": "okx"})
    ).parent_partitions
    dates = sorted(p.partition_key.keys_by_dimension["date"] for p in upstream)
    assert dates[0] == str(dt.date(2024, 3, 30) - dt.timedelta(days=PCA_LOOKBACK_DAYS))


def test_a_run_whose_lookback_is_not_materialised_says_so_and_writes_nothing(home, monkeypatch, instance):
    monkeypatch.setenv("FUNDING_ASSETS_VENUES", ",".join(VENUES))
    run(instance, ["raw_prints"], "2024-03-03", "2024-03-06", VENUES)
    result = run(instance, ["curve_snapshots"], "2024-03-05", "2024-03-06", VENUES, raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert "funding.raw_prints is not materialised" in message
    first_needed = dt.date(2024, 3, 5) - dt.timedelta(days=strip.LOOKBACK_DAYS)
    for venue in VENUES:
        assert f"{first_needed}..2024-03-02|{venue}" in message
    assert table(home, "curve_snapshots", "ts").height == 0


def test_the_same_spread_partition_whatever_else_the_warehouse_holds(home, tmp_path, monkeypatch, instance):
    """Formerly the trailing window was a hidden read: null z with a short history, a number
    with a longer one. Now a short history is refused and a complete one gives one answer."""
    monkeypatch.setenv("FUNDING_ASSETS_VENUES", ",".join(VENUES))
    monkeypatch.setenv("FUNDING_ASSETS_COINS", "BTC")
    day = dt.date(2024, 4, 10)
    first = day - dt.timedelta(days=SPREADS_LOOKBACK_DAYS)
    snaps_from = first - dt.timedelta(days=FEATURES_LOOKBACK_DAYS)
    run(instance, ["raw_prints"], str(snaps_from - dt.timedelta(days=strip.LOOKBACK_DAYS)), str(day), VENUES)
    run(instance, ["curve_snapshots"], str(snaps_from), str(day), VENUES)
    run(instance, ["curve_features"], str(first), str(day), VENUES)
    run(instance, ["roll_b0"], str(day - dt.timedelta(days=2)), str(day))
    short = run(instance, ["spread_signals"], str(day), str(day), raise_on_error=False)
    assert not short.success and "funding.roll_b0 is not materialised" in failure_message(short)
    run(instance, ["roll_b0"], str(first), str(day))
    run(instance, ["spread_signals"], str(day), str(day))
    once = table(home, "spread_signals", "symbol, venue_a, venue_b, funding_time")
    assert once.height == 3 and once["z"].is_not_null().all()
    after = (str(day + dt.timedelta(days=1)), str(day + dt.timedelta(days=3)))  # more data around
    for asset in ("raw_prints", "curve_snapshots", "curve_features"):
        run(instance, [asset], *after, VENUES)
    run(instance, ["roll_b0", "spread_signals"], *after)
    run(instance, ["spread_signals"], str(day), str(day))
    again = table(home, "spread_signals", "symbol, venue_a, venue_b, funding_time")
    assert again.filter(pl.col("as_of").dt.date() == day).equals(once)


def test_a_configuration_beyond_the_declared_lookback_is_refused(home, monkeypatch, instance):
    monkeypatch.setenv("FUNDING_ASSETS_VENUES", "okx")
    monkeypatch.setenv("FUNDING_ASSETS_COINS", "BTC")
    snaps_from = dt.date(2024, 3, 5) - dt.timedelta(days=PCA_LOOKBACK_DAYS)
    run(instance, ["raw_prints"], str(snaps_from - dt.timedelta(days=strip.LOOKBACK_DAYS)), "2024-03-05", ["okx"])
    run(instance, ["curve_snapshots"], str(snaps_from), "2024-03-05", ["okx"])
    config = FundingConfig.from_env().with_(pca_window_days=60)
    result = run(instance, ["pca_factors", "pca_fits"], "2024-03-05", "2024-03-05", ["okx"], config, False)
    assert not result.success
    message = failure_message(result)
    assert "pca_factors needs" in message and "FUNDING_ASSETS_PCA_WINDOW_DAYS" in message
    with pytest.raises(FundingInputError, match="declaring"):
        from funding_assets.backfill import plan

        plan(dt.date(2024, 3, 5), dt.date(2024, 3, 5), config, dt.date(2024, 4, 1))


def test_a_bad_setting_is_refused_naming_the_variable():
    with pytest.raises(FundingInputError, match="FUNDING_ASSETS_BAND_K"):
        FundingConfig.from_env({"FUNDING_ASSETS_BAND_K": "-1"})
    with pytest.raises(FundingInputError, match="FUNDING_ASSETS_Z_WINDOW"):
        FundingConfig.from_env({"FUNDING_ASSETS_Z_WINDOW": "thirty"})
    with pytest.raises(FundingInputError, match="FUNDING_ASSETS_Z_INCLUDE_CURRENT"):
        FundingConfig.from_env({"FUNDING_ASSETS_Z_INCLUDE_CURRENT": "maybe"})


def test_one_configuration_object_drives_backfill_plan_and_lookbacks(monkeypatch):
    from funding_assets.backfill import plan

    config = FundingConfig.from_env({"FUNDING_ASSETS_VENUES": "okx,deribit"})
    steps = plan(dt.date(2024, 3, 5), dt.date(2024, 3, 6), config, dt.date(2024, 4, 1))
    assert steps[0].assets == ("instruments", "raw_prints")  # discovery in the first run
    assert all("instruments" not in s.assets for s in steps[1:])
    assert {s.venues for s in steps if s.venues} == {("okx",), ("deribit",)}
    pca_step = next(s for s in steps if "pca_factors" in s.assets)
    strips = next(s for s in steps if s.assets == ("curve_snapshots",))
    assert (pca_step.start - strips.start).days >= PCA_LOOKBACK_DAYS


def _old_warehouse(path):
    """A warehouse as the previous version wrote it: tables without today's new columns."""
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA funding")
        con.execute(
            "CREATE TABLE funding.raw_prints (venue VARCHAR, symbol VARCHAR, venue_symbol VARCHAR, ts TIMESTAMP, "
            "funding_time TIMESTAMP, rate DOUBLE, interval_hours DOUBLE, kind VARCHAR, source VARCHAR)"
        )
        con.execute(
            "INSERT INTO funding.raw_prints VALUES ('okx', 'BTC', 'BTC-USDT-SWAP', '2024-01-01 08:00:00', "
            "'2024-01-01 08:00:00', 0.0001, 8, 'realised', 'okx REST')"
        )


def test_a_warehouse_written_by_the_previous_schema_gains_new_columns_on_first_write(home):
    home.mkdir(parents=True)
    path = home / "warehouse.duckdb"
    _old_warehouse(path)
    warehouse = Warehouse(database=str(path))
    old = warehouse.read("raw_prints")  # read before any write: new columns read as null
    assert old.height == 1 and old["published_at"].is_null().all()
    new = old.with_columns(
        ts=pl.lit(dt.datetime(2024, 1, 1, 16)),
        funding_time=pl.lit(dt.datetime(2024, 1, 1, 16)),
        published_at=pl.lit(dt.datetime(2024, 1, 1, 16, 0, 1)),
    )
    assert warehouse.replace("raw_prints", new, "ts = ?", [dt.datetime(2024, 1, 1, 16)]) == 1
    with duckdb.connect(str(path), read_only=True) as con:
        columns = [r[0] for r in con.execute("DESCRIBE funding.raw_prints").fetchall()]
        rows = con.execute("SELECT ts, published_at FROM funding.raw_prints ORDER BY ts").fetchall()
    assert set(TABLES["raw_prints"]) <= set(columns)
    assert rows == [
        (dt.datetime(2024, 1, 1, 8), None),
        (dt.datetime(2024, 1, 1, 16), dt.datetime(2024, 1, 1, 16, 0, 1)),
    ]


def test_a_day_the_source_has_no_prints_for_is_materialised_empty(home, tmp_path, monkeypatch, instance):
    """Formerly the empty merge fell back to the live_prints frame, which lacks
    published_at, and the run failed with a schema error."""
    folder = tmp_path / "replay" / "okx"
    folder.mkdir(parents=True)
    (folder / "btc.csv").write_text("symbol,ts,funding_time,rate\nBTC,2024-03-01T08:00:00,2024-03-01T08:00:00,0.0001\n")
    monkeypatch.setenv("FUNDING_ASSETS_SOURCE", f"replay:{tmp_path / 'replay'}")
    monkeypatch.setenv("FUNDING_ASSETS_VENUES", "okx")
    monkeypatch.setenv("FUNDING_ASSETS_COINS", "BTC")
    run(instance, ["raw_prints"], "2024-03-05", "2024-03-05", ["okx"])
    assert table(home, "raw_prints", "ts").height == 0
    assert Warehouse(database=str(home / "warehouse.duckdb")).materialised(
        "raw_prints", {"2024-03-05|okx": [("BTC", "usdt")]}
    ) == {"2024-03-05|okx"}


def test_rebuilt_predictions_before_the_first_day_are_not_reported_as_unfiled(home, monkeypatch, instance):
    """The window settling at the first day's 00:00 starts the day before: its rebuilt
    predictions fall outside the run, which formerly warned that source prints went unfiled."""
    monkeypatch.setenv("FUNDING_ASSETS_VENUES", "binance")
    monkeypatch.setenv("FUNDING_ASSETS_COINS", "BTC")
    result = run(instance, ["raw_prints"], "2024-03-05", "2024-03-05", ["binance"])
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["raw_prints_all_filed"] is True
    assert table(home, "raw_prints", "ts").filter(pl.col("source") == "reconstructed").height > 100
