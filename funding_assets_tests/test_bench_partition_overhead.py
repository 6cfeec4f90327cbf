"""The Dagster per-partition benchmark keeps working: a few days of no-op range runs, one
materialisation recorded per partition, and the floor it reports for a full backfill."""

import datetime as dt
import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "partition_overhead.py"


def load_bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH.parent))  # as when run as a script: its helpers import
    spec = importlib.util.spec_from_file_location("partition_overhead_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_each_partition_of_a_range_run_is_recorded_and_the_full_backfill_floor_adds_them_up(monkeypatch):
    bench = load_bench(monkeypatch)
    runs = bench.main(["--start", "2024-03-01", "--end", "2024-03-04"])
    by = {r.partitioning: r for r in runs}
    assert by["date x venue"].partitions == 4 * 5 and by["daily"].partitions == 4
    assert all(r.seconds > 0 and r.ms_per_partition > 0 for r in runs)
    events, seconds = bench.floor(runs)
    assert events == 20 * len(bench.DATE_VENUE_ASSETS) + 4 * len(bench.DAILY_ASSETS)
    assert seconds == by["date x venue"].seconds * 5 + by["daily"].seconds * 6
    section = bench.section(runs, dt.date(2024, 3, 1), dt.date(2024, 3, 4), "the command")
    assert section.startswith(bench.SECTION + "\n") and "| date x venue, 2024-03-01..2024-03-04 | 20 |" in section
    assert "the command" in section and "Machine: " in section
