"""The backfill benchmark keeps working: a tiny run of bench/backfill.py prints its figures."""

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "backfill.py"


def test_the_backfill_benchmark_measures_a_range_a_new_day_and_bytes_per_print(monkeypatch):
    monkeypatch.setenv("FUNDING_ASSETS_RATES", "none")
    monkeypatch.setenv("FUNDING_ASSETS_COINS", "BTC")
    spec = importlib.util.spec_from_file_location("bench_backfill", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    section = bench.main(["--start", "2024-03-01", "--end", "2024-03-02", "--venues", "okx", "--reconstruct", "0"])
    assert section.startswith("## Backfill")
    assert "| one new day (2024-03-03), wall, end to end |" in section
    per_print = next(line for line in section.splitlines() if line.startswith("| raw_prints: bytes on disk per print"))
    assert float(per_print.split("|")[2].strip().removesuffix(" B")) > 0
    assert "| prints okx |" in section  # the runs the command printed, with their seconds
