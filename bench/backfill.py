"""Full-history backfill, the daily increment after it, and bytes on disk per stored row.

Run:  .venv/bin/python bench/backfill.py [--start 2020-01-01] [--end YESTERDAY-1] [--write]

Three figures of DESIGN section 9, from one fresh data directory, each a child process
(``funding-assets backfill``, the simulator over loopback, its rate limits lifted; five
venues x BTC, ETH; every asset; intraday history rebuilt for BTC and ETH as by default):

1. **Full history**: ``backfill --start START --end END``: wall time, peak resident memory
   of the child, and the seconds of each run it printed (where the time goes).
2. **One new day**: then ``backfill --start END+1 --end END+1``: the lookbacks are already
   stored, so the day runs as one Dagster run per partitioning (the date x venue assets,
   then the daily ones); wall time end to end (a process start, the venue discovery, the
   Dagster runs with their venue requests and writes) and the runs' share of it.
3. **Storage**: bytes on disk per stored row of ``raw_prints`` (per print) and
   ``curve_snapshots`` (per snapshot): each table copied, in its stored order, into a fresh
   DuckDB file, checkpointed, file size / rows; and the warehouse file itself / its rows.

``--write`` puts the tables in BENCHMARKS.md (section ``Backfill``) with the machine and
this command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, write_section  # noqa: E402

SECTION = "## Backfill"
TABLES = ("raw_prints", "curve_snapshots", "curve_features", "pca_factors", "spread_signals")
STORED = ("raw_prints", "curve_snapshots")
STEP = re.compile(r"\[\d+/\d+\] (?:ok |FAILED) (.+?)\s+(\d{4}-\d\d-\d\d\.\.\d{4}-\d\d-\d\d)\s.*\((\d+\.\d)s\)")


def backfill(home: Path, start: dt.date, end: dt.date, extra: dict[str, str]) -> tuple[float, float, list[tuple]]:
    """Run the command; wall seconds, the child's peak RSS (GB) and its runs (label, range, seconds)."""
    env = {**os.environ, "FUNDING_ASSETS_HOME": str(home), **extra}
    env.pop("DAGSTER_HOME", None)
    cli = Path(sys.executable).with_name("funding-assets")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.monotonic()
    done = subprocess.run(
        [str(cli), "backfill", "--start", str(start), "--end", str(end)],
        env=env,
        cwd=home.parent,
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - t0
    if done.returncode:
        raise SystemExit(f"backfill {start}..{end} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 2**20
    text = (done.stdout + done.stderr).replace("\r", "\n")
    runs = [(" ".join(m.group(1).split()), m.group(2), float(m.group(3))) for m in STEP.finditer(text)]
    return wall, peak, runs


def bytes_per_row(warehouse: Path, table: str, scratch: Path) -> tuple[int, float]:
    """Rows of ``table`` and bytes on disk per row of a fresh copy holding only it."""
    copy = scratch / f"{table}.duckdb"
    copy.unlink(missing_ok=True)
    with duckdb.connect(str(copy)) as con:
        con.execute(f"ATTACH '{warehouse}' AS w (READ_ONLY)")
        con.execute(f"CREATE TABLE t AS SELECT * FROM w.funding.{table}")
        rows = con.execute("SELECT count(*) FROM t").fetchall()[0][0]
        con.execute("DETACH w")
        con.execute("CHECKPOINT")
    return rows, copy.stat().st_size / max(rows, 1)


def minutes(seconds: float) -> str:
    m, s = divmod(seconds, 60)
    return f"{int(m)} min {s:.0f} s" if m else f"{s:.1f} s"


def run(start: dt.date, end: dt.date, extra: dict[str, str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="backfill-bench-") as tmp:
        home = Path(tmp) / "data"
        full_wall, full_peak, full_runs = backfill(home, start, end, extra)
        day = end + dt.timedelta(days=1)
        day_wall, _, day_runs = backfill(home, day, day, extra)
        warehouse = home / "warehouse.duckdb"
        with duckdb.connect(str(warehouse), read_only=True) as con:
            rows = {t: con.execute(f"SELECT count(*) FROM funding.{t}").fetchall()[0][0] for t in TABLES}
        stored = {t: bytes_per_row(warehouse, t, Path(tmp)) for t in STORED}
        file_bytes = warehouse.stat().st_size
    return {
        "full": (full_wall, full_peak, full_runs),
        "day": (day, day_wall, day_runs),
        "rows": rows,
        "stored": stored,
        "file_bytes": file_bytes,
    }


def table(result: dict, start: dt.date, end: dt.date, command: str) -> str:
    full_wall, full_peak, full_runs = result["full"]
    day, day_wall, day_runs = result["day"]
    lines = [
        SECTION,
        "",
        f"`funding-assets backfill --start {start} --end {end}`: five venues x BTC, ETH, every asset, the simulator",
        "over loopback with its rate limits lifted, intraday history rebuilt from premium indices (the default),",
        f"into an empty data directory; then `--start {day} --end {day}`, the daily increment. Targets (DESIGN",
        "section 9): full history under 2 minutes, one new daily partition end to end under 10 s, under 8 bytes",
        "on disk per stored print.",
        "",
        f"Machine: {machine()}. Reproduce: `{command}`.",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        f"| full history, wall | {minutes(full_wall)} | 2 min |",
        f"| full history, peak resident memory | {full_peak:.1f} GB | |",
        f"| one new day ({day}), wall, end to end | {minutes(day_wall)} | 10 s |",
        f"| one new day: its {len(day_runs)} Dagster runs together (the rest: start-up, discovery) "
        f"| {sum(s for _, _, s in day_runs):.1f} s | |",
    ]
    for t, (rows, per) in result["stored"].items():
        unit = "print" if t == "raw_prints" else "snapshot"
        target = "8 B" if t == "raw_prints" else ""
        lines.append(f"| {t}: bytes on disk per {unit} ({rows:,} rows, the table alone) | {per:.2f} B | {target} |")
    total_rows = sum(result["rows"].values())
    lines.append(
        f"| warehouse file / rows of {', '.join(TABLES)} | {result['file_bytes'] / max(total_rows, 1):.2f} B "
        f"({result['file_bytes'] / 2**20:.0f} MiB) | |"
    )
    lines += ["", "Where the full-history time goes (seconds per Dagster run, as the command printed them):", ""]
    lines += ["| run | range | seconds |", "|---|---|---|"]
    lines += [f"| {label} | {span} | {seconds:.1f} |" for label, span, seconds in full_runs]
    lines += ["", f"The one new day, per run: {', '.join(f'{label} {s:.1f} s' for label, _, s in day_runs)}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    ap.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2020, 1, 1))
    ap.add_argument("--end", type=dt.date.fromisoformat, default=yesterday - dt.timedelta(days=1))
    ap.add_argument("--venues", default=None, help="FUNDING_ASSETS_VENUES for a smaller run")
    ap.add_argument("--reconstruct", default=None, help="FUNDING_ASSETS_RECONSTRUCT for a smaller run")
    ap.add_argument("--write", action="store_true", help="put the table in BENCHMARKS.md")
    args = ap.parse_args(argv)
    extra = {}
    if args.venues:
        extra["FUNDING_ASSETS_VENUES"] = args.venues
    if args.reconstruct is not None:
        extra["FUNDING_ASSETS_RECONSTRUCT"] = args.reconstruct
    command = " ".join(["bench/backfill.py", *(argv if argv is not None else sys.argv[1:])])
    result = run(args.start, args.end, extra)
    section = table(result, args.start, args.end, f".venv/bin/python {command}")
    print(section)
    if args.write:
        write_section(section)
    return section


if __name__ == "__main__":
    main()
