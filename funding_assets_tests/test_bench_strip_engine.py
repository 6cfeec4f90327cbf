"""The strip engine benchmark runs end to end at a tiny size and reports every figure."""

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "strip_engine.py"


def load_bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH.parent))  # as when run as a script: its helpers import
    spec = importlib.util.spec_from_file_location("strip_engine_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_measures_builder_and_engine_on_the_same_prints(tmp_path, monkeypatch):
    bench = load_bench(monkeypatch)
    rows = bench.main(["--sizes", "2e4", "--builder-max", "1e4", "--data-dir", str(tmp_path), "--repeat", "2"])
    modes = ["tick", "10m", "roll"]
    assert [r["mode"] for r in rows] == ["builder", *modes, *(f"memory {m}" for m in modes)]
    builder, tick, ten_minutes, roll, *in_memory = rows
    assert builder["prints"] == 10_000 and builder["x_builder"] == 1.0  # timed on a prefix
    prints = tick["prints"]
    assert 19_000 < prints < 21_000 and ten_minutes["prints"] == roll["prints"] == prints
    # tick level: about a strip per print (a sample needs its open window quoted); the rest far fewer
    assert 0.9 * prints < tick["rows"] <= prints
    assert 0 < roll["rows"] < ten_minutes["rows"] < tick["rows"] / 10
    for row in rows:
        assert row["seconds"] > 0 and row["prints_per_s"] > 0 and row["x_builder"] > 0
        assert 0 < row["peak_gb"] < 4
    for row in (tick, ten_minutes, roll):
        assert set(row["split"]) == {"read", "order", "kernel", "frames"}
    assert [r["rows"] for r in in_memory] == [tick["rows"], ten_minutes["rows"], roll["rows"]]  # the same rows
    assert not list(tmp_path.iterdir())  # generated prints are removed
    table = bench.render(rows)
    assert "| 20," in table and "engine from parquet: roll snapshots" in table and "x builder" in table


def test_repeated_runs_count_the_fastest_with_the_highest_peak(monkeypatch):
    bench = load_bench(monkeypatch)
    runs = [
        {"mode": "tick", "seconds": 2.0, "rows": 5, "peak_gb": 1.5},
        {"mode": "tick", "seconds": 1.0, "rows": 5, "peak_gb": 1.0},
        {"mode": "tick", "seconds": 3.0, "rows": 5, "peak_gb": None},
    ]
    assert bench._best(runs) == {"mode": "tick", "seconds": 1.0, "rows": 5, "peak_gb": 1.5, "runs": 3}
