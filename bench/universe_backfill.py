"""Backfill every perpetual of the simulator's universe for a range of days; wall time and peak memory.

Run:  .venv/bin/python bench/universe_backfill.py [--start 2025-01-01] [--end 2025-12-31] [--write]

Runs ``FUNDING_ASSETS_COINS=all funding-assets backfill`` (all five venues, every asset, the
simulator over loopback, intraday history rebuilt for BTC and ETH as by default) in a fresh
data directory, as a child process, and reports its wall time, the peak resident memory of
the child (``getrusage``), the rows per table and the instruments discovered. ``--write``
puts the table in BENCHMARKS.md (its ``universe backfill`` section), with the machine and
this command.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "BENCHMARKS.md"
SECTION = "## Universe backfill"
TABLES = ("instruments", "raw_prints", "curve_snapshots", "curve_features", "pca_factors", "spread_signals")


def machine() -> str:
    cores = os.cpu_count()
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cores} cores, {mem_gb:.0f} GB RAM, Python {sys.version.split()[0]}"


def run(start: str, end: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="universe-bench-") as tmp:
        env = {**os.environ, "FUNDING_ASSETS_HOME": str(Path(tmp) / "data"), "FUNDING_ASSETS_COINS": "all"}
        env.pop("DAGSTER_HOME", None)
        cli = Path(sys.executable).with_name("funding-assets")
        t0 = time.monotonic()
        done = subprocess.run(
            [str(cli), "backfill", "--start", start, "--end", end], env=env, cwd=tmp, capture_output=True, text=True
        )
        wall = time.monotonic() - t0
        if done.returncode:
            raise SystemExit(f"backfill failed ({done.returncode}):\n{done.stderr[-2000:]}")
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        with duckdb.connect(str(Path(tmp) / "data" / "warehouse.duckdb"), read_only=True) as con:
            rows = {t: con.execute(f"SELECT count(*) FROM funding.{t}").fetchone()[0] for t in TABLES}
            per_venue = dict(
                con.execute("SELECT venue, count(*) FROM funding.instruments GROUP BY 1 ORDER BY 1").fetchall()
            )
            series = con.execute("SELECT count(DISTINCT (venue, symbol, contract)) FROM funding.raw_prints").fetchone()[
                0
            ]
        runs = re.search(r"(\d+) runs in", done.stderr + done.stdout)
    return {
        "wall": wall,
        "peak_gb": peak_kb / 2**20,
        "rows": rows,
        "per_venue": per_venue,
        "series": series,
        "runs": runs,
    }


def table(result: dict, start: str, end: str) -> str:
    minutes, seconds = divmod(result["wall"], 60)
    lines = [
        f"{SECTION}",
        "",
        f"`FUNDING_ASSETS_COINS=all funding-assets backfill --start {start} --end {end}`: every perpetual the",
        "simulator lists on the five venues (each venue's main contract of every coin), every asset, intraday",
        "history rebuilt for BTC and ETH. Target: under 10 minutes on 2 cores.",
        "",
        f"Machine: {machine()}. Reproduce: `.venv/bin/python bench/universe_backfill.py --start {start} --end {end} --write`.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| wall time | {int(minutes)} min {seconds:.0f} s |",
        f"| peak resident memory | {result['peak_gb']:.1f} GB |",
        f"| instruments discovered | {sum(result['per_venue'].values())} "
        f"({', '.join(f'{v} {n}' for v, n in result['per_venue'].items())}) |",
        f"| series back-filled | {result['series']} |",
    ]
    lines += [f"| {t} rows | {n:,} |" for t, n in result["rows"].items() if t != "instruments"]
    return "\n".join(lines) + "\n"


def write(section: str) -> None:
    text = (
        BENCHMARKS.read_text()
        if BENCHMARKS.exists()
        else "# Benchmarks\n\nEach section says what it measured and the command that reproduces it.\n\n"
    )
    pattern = re.compile(rf"{re.escape(SECTION)}\n.*?(?=\n## |\Z)", re.S)
    text = pattern.sub(section.rstrip("\n"), text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    BENCHMARKS.write_text(text if text.endswith("\n") else text + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--start", default="2025-01-01")
    ap.add_argument("--end", default="2025-12-31")
    ap.add_argument("--write", action="store_true", help="put the table in BENCHMARKS.md")
    args = ap.parse_args()
    result = run(args.start, args.end)
    section = table(result, args.start, args.end)
    print(section)
    if args.write:
        write(section)


if __name__ == "__main__":
    main()
