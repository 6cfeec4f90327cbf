"""The daily increment is cheap: once a range is stored, the next day runs as few Dagster
runs as the partitionings allow, reuses the stored lookbacks, and the command exits without
waiting for the interpreter's teardown. (That it stores what a full backfill stores is
``test_backfill_order``.)"""

import datetime as dt
import subprocess
import sys
import textwrap

import polars as pl

from funding_assets.backfill import MERGE_DAYS, Step, merge_short_runs, plan, trim_lookbacks
from funding_assets.resources import FundingConfig

DAY = dt.date(2024, 3, 5)
TODAY = dt.date(2024, 4, 1)


def _one_day(config: FundingConfig) -> list[Step]:
    """The plan of one day with every lookback already stored."""
    return [Step(s.what, s.assets, DAY, DAY, s.venues) if s.start < DAY else s for s in plan(DAY, DAY, config, TODAY)]


def test_one_day_runs_once_per_partitioning_with_every_asset_of_the_plan():
    config = FundingConfig.from_env({"FUNDING_ASSETS_VENUES": "binance,bybit,okx"})
    steps = _one_day(config)
    merged = merge_short_runs(steps)
    assert [s.venues for s in merged] == [("binance", "bybit", "okx"), None]
    assert [a for s in merged for a in s.assets] == [a for s in steps for a in s.assets]  # same assets, same order
    assert merged[0].assets[:2] == ("instruments", "raw_prints")  # discovery first
    assert merged[0].label.startswith("prints, strips, features, pca binance,bybit,okx")


def test_venues_apart_in_the_partition_order_stay_separate_runs():
    config = FundingConfig.from_env({"FUNDING_ASSETS_VENUES": "binance,okx"})  # bybit lies between them
    merged = merge_short_runs(_one_day(config))
    assert [s.venues for s in merged] == [("binance",), ("okx",), None]


def test_long_ranges_and_different_ranges_keep_one_run_per_asset_group():
    config = FundingConfig.from_env({"FUNDING_ASSETS_VENUES": "okx"})
    end = DAY + dt.timedelta(days=MERGE_DAYS)
    long = plan(DAY, end, config, TODAY)
    assert merge_short_runs(long) == long
    short = plan(DAY, DAY, config, TODAY)  # every lookback still to compute: different ranges
    assert merge_short_runs(short) == short


class _Stored:
    """A warehouse holding every lookback day of some assets and none of the others."""

    def __init__(self, held: set[str]) -> None:
        self.held = held

    def instruments(self) -> pl.DataFrame:
        from funding_assets.instruments import empty

        return empty()

    def materialised(self, table: str, wanted: dict) -> set[str]:
        return set(wanted) if table in self.held else set()


def test_a_run_keeps_its_lookback_when_any_of_its_assets_lacks_it():
    config = FundingConfig.from_env({"FUNDING_ASSETS_VENUES": "okx", "FUNDING_ASSETS_COINS": "BTC"})
    steps = plan(DAY, DAY, config, TODAY)
    pca = next(s for s in steps if s.assets == ("pca_factors", "pca_fits"))
    assert pca.start < DAY
    # the first asset lacks the lookback, the second holds it: the run still needs it
    (kept,) = trim_lookbacks([pca], DAY, _Stored({"pca_fits"}), config)
    assert kept.start == pca.start
    (kept,) = trim_lookbacks([pca], DAY, _Stored({"pca_factors"}), config)
    assert kept.start == pca.start
    (trimmed,) = trim_lookbacks([pca], DAY, _Stored({"pca_factors", "pca_fits"}), config)
    assert trimmed.start == DAY


def test_the_command_exits_with_its_code_after_the_exit_handlers_and_flushed_output(tmp_path):
    marker = tmp_path / "handler_ran"
    script = textwrap.dedent(f"""
        import atexit, sys
        from funding_assets.cli import _end_process
        atexit.register(lambda: open({str(marker)!r}, "w").write("yes"))
        print("written before the exit", end="")
        sys.stderr.write("and on stderr")
        _end_process(3)
        print("never")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert done.stdout == "written before the exit"
    assert done.stderr == "and on stderr"
    assert marker.read_text() == "yes"


def test_a_warehouse_file_created_anew_at_the_same_path_gets_its_tables_again(tmp_path):
    """Connections skip the schema statements once a file is brought up to date, but not for
    a new file at the same path (which may even reuse the old one's inode)."""
    from funding_assets.warehouse import TABLES, Warehouse

    path = tmp_path / "warehouse.duckdb"
    warehouse = Warehouse(database=str(path))
    for _ in range(3):
        assert warehouse.replace("pca_fits", pl.DataFrame(schema=TABLES["pca_fits"])) == 0
        assert warehouse.read("pca_fits").height == 0
        path.unlink()


def test_a_range_run_plans_each_asset_once_and_still_records_every_partition(home):
    """A history run of thousands of partitions writes one "planned" event per asset, not one
    per partition (each is a write to the Dagster instance); every partition it materialised
    is still recorded as such."""
    import dagster as dg

    from funding_assets.backfill import PLANNED_EVENTS_ENV, backfill

    config = FundingConfig.from_env(
        {"FUNDING_ASSETS_VENUES": "okx", "FUNDING_ASSETS_COINS": "BTC", "FUNDING_ASSETS_RATES": "none"}
    )
    start, end = dt.date(2024, 3, 1), dt.date(2024, 3, 4)
    with dg.DagsterInstance.ephemeral() as instance:
        outcomes = backfill(start, end, config, instance, lambda _: None, lambda _: None, today=TODAY)
        assert all(o.success for o in outcomes), [o.error for o in outcomes]
        planned = [
            entry
            for run in instance.get_runs()
            for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
            if entry.dagster_event.asset_key == dg.AssetKey("curve_features")
        ]
        stored = instance.get_materialized_partitions(dg.AssetKey("curve_features"))
    runs = {entry.run_id for entry in planned}
    assert len(planned) == len(runs) == 1  # one range run, one planned event
    assert {f"{day}|okx" for day in ("2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04")} <= stored
    assert PLANNED_EVENTS_ENV not in __import__("os").environ  # the switch is the command's, not the process's
