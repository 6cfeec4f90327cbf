"""Strip engine throughput against a per-print Python builder (DESIGN section 9).

Run:  .venv/bin/python bench/strip_engine.py [--sizes 1e6,1e7,1e8] [--builder-max 1e7] [--write]

For each size, in a child process of its own (separate memory peaks):

1. generates tick prints chunk-wise into parquet, one directory per series (hive
   partitions ``venue=/symbol=/contract=``), one file per 10 days: for 5 venues x BTC, ETH a
   predicted quote of the open native window about every second (Binance, Bybit, OKX 8h
   windows; Hyperliquid, Deribit hourly), three days of realised history before the first
   quote (the pre-warm), and every settlement as a realised print, stored at its settlement
   time, 2 % of them published hours late and 1 % missing;
2. times the baseline on the same stored prints: the obvious per-print builder, a
   ``deque(maxlen=8)`` of closed 8h windows per series updated in a Python loop, emitting
   the strip at every print. Above ``--builder-max`` prints it runs on that prefix of the
   stream (it is linear in prints: its rate carries over);
3. times the engine, :func:`funding_assets.strip.stream_snapshots` over the parquet
   directory (out of core, blocks of 30 days per series), consuming every batch: tick-level
   intraday snapshots (``every=0``, a strip at every print), 10-minute intraday snapshots
   and roll snapshots, each with its own peak resident memory (``VmHWM``, reset between
   runs), and where its time went (reading and checking files, in a reader thread that
   overlaps the rest; ordering into arrays; the numba kernel; building frames);
4. times the same engine runs on each series' prints already read into one DataFrame
   (reading untimed, one series in memory at a time): the engine without parquet decoding.

Rates are prints per second of wall time; ``x builder`` = engine rate / builder rate.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from _report import machine, write_section

from funding_assets import strip
from funding_assets.venues import SPECS

SERIES = [
    (venue, coin, SPECS[venue].default_contract(coin), hours)
    for venue, hours in (("binance", 8), ("bybit", 8), ("okx", 8), ("hyperliquid", 1), ("deribit", 1))
    for coin in ("BTC", "ETH")
]
START_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
WARMUP_DAYS = 3
FILE_DAYS = 10
MODES = {
    "tick": dict(every=0, kinds=("intraday",)),
    "10m": dict(every="10m", kinds=("intraday",)),
    "roll": dict(kinds=("roll",)),
}
LABELS = {
    "builder": "deque(maxlen=8) per print (Python)",
    "tick": "engine from parquet: intraday every print (tick)",
    "10m": "engine from parquet: intraday every 10 min",
    "roll": "engine from parquet: roll snapshots",
    "memory tick": "engine, prints in memory: tick",
    "memory 10m": "engine, prints in memory: every 10 min",
    "memory roll": "engine, prints in memory: roll",
}


def _level(ft: np.ndarray, hours: int, phase: float) -> np.ndarray:
    """The rate a native window settles at: a smooth cycle around 0.01 % per 8h."""
    return (1e-4 + 6e-5 * np.sin(ft / (37 * HOUR_MS) + phase)) * hours / 8


def generate(root: Path, n_prints: int, compression: str = "snappy", seed: int = 1) -> int:
    """Write ``n_prints`` (about) stored prints under ``root``; returns the number written."""
    rng = np.random.default_rng(seed)
    per_series = n_prints // len(SERIES)
    written = 0
    for index, (venue, coin, contract, hours) in enumerate(SERIES):
        folder = root / f"venue={venue}" / f"symbol={coin}" / f"contract={contract}"
        folder.mkdir(parents=True)
        window_ms = hours * HOUR_MS
        quotes_from = START_MS + WARMUP_DAYS * DAY_MS
        ts, left, block = START_MS, per_series, 0
        while left > 0:
            lo, hi = START_MS + block * FILE_DAYS * DAY_MS, START_MS + (block + 1) * FILE_DAYS * DAY_MS
            # quotes about every second (0.5 s to 1.5 s apart) from the end of the warm-up
            quoted = np.empty(0, np.int64)
            if hi > quotes_from:
                ts = max(ts, quotes_from)
                gaps = rng.integers(500, 1500, size=min(left, (hi - ts) // 1000 + 1))
                quoted = ts + np.cumsum(gaps)
                quoted = quoted[quoted < hi][:left]
                ts = int(quoted[-1]) if quoted.size else ts
            # settlements in [lo, hi), or up to the last quote in the last file
            until = int(quoted[-1]) + 1 if left == quoted.size and quoted.size else hi
            settle = np.arange(-(-lo // window_ms) * window_ms, until, window_ms)
            settle = settle[rng.random(settle.size) >= 0.01]  # 1 % never settle
            late = rng.random(settle.size) < 0.02
            published = settle + np.where(late, rng.integers(HOUR_MS, 30 * HOUR_MS, settle.size), 18)
            q_ft = (quoted // window_ms + 1) * window_ms
            frame = pl.DataFrame(
                {
                    "ts": np.concatenate((quoted, settle)),
                    "funding_time": np.concatenate((q_ft, settle)),
                    "rate": np.concatenate(
                        (
                            _level(q_ft, hours, index) + rng.normal(0, 2e-6 * hours / 8, quoted.size),
                            _level(settle, hours, index),
                        )
                    ),
                    "interval_hours": np.full(quoted.size + settle.size, float(hours)),
                    "kind": np.repeat(["predicted", "realised"], [quoted.size, settle.size]),
                    "published_at": np.concatenate((quoted, published)),
                }
            )
            frame = frame.sort("ts", "published_at", maintain_order=True).with_columns(
                pl.col("ts", "funding_time", "published_at").cast(pl.Datetime("ms"))
            )
            frame.write_parquet(folder / f"part-{block:05d}.parquet", compression=compression)
            written += frame.height
            left -= quoted.size
            block += 1
    return written


def series_files(root: Path) -> list[tuple[str, str, list[Path]]]:
    out = []
    for venue, coin, contract, _ in SERIES:
        folder = root / f"venue={venue}" / f"symbol={coin}" / f"contract={contract}"
        out.append((venue, coin, sorted(folder.glob("*.parquet"))))
    return out


def deque_builder(root: Path, limit: int) -> tuple[int, int]:
    """The per-print reference over the stored prints (series after series, file by file, at
    most ``limit`` prints): per series the open grid window's latest 8h-equivalent quote and
    a deque of closed windows; the annualised 8-bucket strip emitted at every print.
    Returns (prints read, strips emitted)."""
    state: dict[tuple[str, str], tuple[int, float, collections.deque]] = {}
    grid_ms = 8 * HOUR_MS
    seen = emitted = 0
    for venue, coin, files in series_files(root):
        for path in files:
            if seen >= limit:
                return seen, emitted
            frame = pl.read_parquet(path, columns=["funding_time", "rate", "interval_hours"]).head(limit - seen)
            seen += frame.height
            for funding_ms, rate, hours in zip(
                frame["funding_time"].dt.epoch("ms").to_list(),
                frame["rate"].to_list(),
                frame["interval_hours"].to_list(),
            ):
                key = (venue, coin)
                window = -(-funding_ms // grid_ms) * grid_ms
                r8 = rate * 8 / hours
                if key not in state:
                    state[key] = (window, r8, collections.deque(maxlen=7))
                open_window, value, closed = state[key]
                if window > open_window:
                    closed.appendleft(value)
                    open_window = window
                state[key] = (open_window, r8, closed)
                if len(closed) == 7:
                    strip_now = [r8 * 1095] + [r * 1095 for r in closed]
                    emitted += len(strip_now) == 8
    return seen, emitted


def _peak_reset() -> bool:
    """Reset this process's peak resident memory (Linux ``clear_refs``); False if it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_gb() -> float:
    try:
        match = re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text())
        return int(match.group(1)) / 2**20
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _timed(module, name: str, spent: dict[str, float]):
    """Wrap ``module.name`` so that its wall time adds up in ``spent[name]``."""
    inner = getattr(module, name)

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - t0

    setattr(module, name, wrapper)
    return inner


def run_engine(root: Path, mode: str) -> dict:
    spent: dict[str, float] = {}
    wrapped = {
        (strip, "_read_file"): None,
        (strip, "_in_order"): None,
        (strip.kernel, "snapshots"): None,
        (strip, "_frame"): None,
    }
    for module, name in wrapped:
        wrapped[(module, name)] = _timed(module, name, spent)
    try:
        reset = _peak_reset()
        t0 = time.perf_counter()
        rows = sum(batch.height for batch in strip.stream_snapshots(root, **MODES[mode]))
        seconds = time.perf_counter() - t0
    finally:
        for (module, name), inner in wrapped.items():
            setattr(module, name, inner)
    split = {
        "read": spent.get("_read_file", 0.0),
        "order": spent.get("_in_order", 0.0),
        "kernel": spent.get("snapshots", 0.0),
        "frames": spent.get("_frame", 0.0),
    }
    return {"mode": mode, "seconds": seconds, "rows": rows, "peak_gb": _peak_gb() if reset else None, "split": split}


def run_in_memory(root: Path, mode: str) -> dict:
    """The engine on each series' prints already read into a DataFrame (reading untimed):
    the engine without the parquet decoding."""
    seconds = rows = 0
    reset = _peak_reset()
    for venue, coin, files in series_files(root):
        frame = pl.concat([pl.read_parquet(f) for f in files], rechunk=True).with_columns(
            venue=pl.lit(venue), symbol=pl.lit(coin), contract=pl.lit(SPECS[venue].default_contract(coin))
        )
        t0 = time.perf_counter()
        rows += sum(batch.height for batch in strip.stream_snapshots(frame, **MODES[mode]))
        seconds += time.perf_counter() - t0
        del frame
    return {"mode": f"memory {mode}", "seconds": seconds, "rows": rows, "peak_gb": _peak_gb() if reset else None}


def _best(runs: list[dict]) -> dict:
    """The fastest of repeated runs, with the highest peak memory any of them reached."""
    best = min(runs, key=lambda r: r["seconds"])
    peaks = [r["peak_gb"] for r in runs if r["peak_gb"] is not None]
    return {**best, "peak_gb": max(peaks) if peaks else None, "runs": len(runs)}


def child(size: int, builder_max: int, data_dir: str | None, compression: str, repeat: int = 1) -> dict:
    """Everything for one size, in this (child) process."""
    with tempfile.TemporaryDirectory(dir=data_dir) as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        prints = generate(root, size, compression)
        generated_s = time.perf_counter() - t0
        # warm-up, untimed: the compiled kernel loaded, memory for a block's rows faulted in
        # (a fresh process's first touch of memory costs more than the kernel's writes)
        venue, coin, files = series_files(root)[0]
        warm = pl.read_parquet(files[0]).with_columns(venue=pl.lit(venue), symbol=pl.lit(coin))
        for _ in strip.stream_snapshots(warm, every=0, kinds=("intraday", "roll")):
            pass

        def builder() -> dict:
            t0 = time.perf_counter()
            reset = _peak_reset()
            seen, emitted = deque_builder(root, builder_max)
            return {
                "mode": "builder",
                "seconds": time.perf_counter() - t0,
                "rows": emitted,
                "prints": seen,
                "peak_gb": _peak_gb() if reset else None,
            }

        # each method ``repeat`` times in turn; the fastest run of each counts (the same rule for all)
        runs: dict[str, list[dict]] = {}
        for _ in range(repeat):
            runs.setdefault("builder", []).append(builder())
            for mode in MODES:
                runs.setdefault(mode, []).append({**run_engine(root, mode), "prints": prints})
            for mode in MODES:
                runs.setdefault(f"memory {mode}", []).append({**run_in_memory(root, mode), "prints": prints})
        results = [_best(r) for r in runs.values()]
        disk = sum(p.stat().st_size for p in root.glob("**/*.parquet"))
    return {"size": size, "prints": prints, "generate_s": generated_s, "disk_bytes": disk, "runs": results}


def measure(size: int, builder_max: int, data_dir: str | None, compression: str, repeat: int = 1) -> dict:
    """:func:`child` in a child process (its own memory peak)."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        str(size),
        "--builder-max",
        str(builder_max),
        "--compression",
        compression,
        "--repeat",
        str(repeat),
    ]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"size {size:,} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: list[dict]) -> list[dict]:
    """One row per size and method: prints, seconds, prints/s, rows out, ratio, peak memory."""
    rows = []
    for result in results:
        base = next(r for r in result["runs"] if r["mode"] == "builder")
        base_rate = base["prints"] / base["seconds"]
        for run in result["runs"]:
            rate = run["prints"] / run["seconds"]
            rows.append(
                {
                    "size": result["prints"],
                    "method": LABELS[run["mode"]],
                    "mode": run["mode"],
                    "prints": run["prints"],
                    "seconds": run["seconds"],
                    "prints_per_s": rate,
                    "rows": run["rows"],
                    "x_builder": rate / base_rate,
                    "peak_gb": run["peak_gb"],
                    "split": run.get("split"),
                }
            )
    return rows


def _gb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} GB"


def render(rows: list[dict]) -> str:
    lines = [
        "| prints | method | prints timed | seconds | prints/s | rows out | x builder | peak RSS |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']:,} | {r['method']} | {r['prints']:,} | {r['seconds']:.2f} | {r['prints_per_s']:,.0f} "
            f"| {r['rows']:,} | {r['x_builder']:.1f} | {_gb(r['peak_gb'])} |"
        )
    lines += [
        "",
        "| prints | engine run | read + check files (reader thread) | order | kernel | frames |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r["split"]:
            s = r["split"]
            lines.append(
                f"| {r['size']:,} | {r['mode']} | {s['read']:.2f} s | {s['order']:.2f} s | {s['kernel']:.2f} s | {s['frames']:.2f} s |"
            )
    return "\n".join(lines)


def verdict(rows: list[dict]) -> list[str]:
    """One line per figure of DESIGN section 9: the ratios measured at each size, and the target."""
    lines = []
    for modes, label, target in (
        (("tick", "memory tick"), "tick-level", 10),
        (("10m", "memory 10m"), "10-minute", 50),
        (("roll", "memory roll"), "roll", 50),
    ):
        parts = []
        for mode, where in zip(modes, ("from parquet", "prints in memory")):
            ratios = ", ".join(f"{r['x_builder']:.1f}x" for r in rows if r["mode"] == mode)
            parts.append(f"{where} {ratios}")
        lines.append(f"- {label} (target {target}x): {'; '.join(parts)} (sizes in table order).")
    return lines


def section(rows: list[dict], results: list[dict], command: str, load: float, compression: str, repeat: int = 1) -> str:
    disk = ", ".join(f"{r['prints']:,} prints: {r['disk_bytes'] / 2**20:,.0f} MB" for r in results)
    peak = max(r["peak_gb"] or 0.0 for r in rows if r["mode"] in MODES)
    return "\n".join(
        [
            "## Strip engine",
            "",
            "DESIGN section 9: the engine at >= 10x the throughput of a per-print Python `deque(maxlen=8)` builder for",
            "tick-level emission and >= 50x for roll and 10-minute intraday snapshots, flat from 1 M to 100 M prints,",
            "under 4 GB peak memory. The engine is `strip.stream_snapshots` over parquet (one directory per series, one",
            "file per 10 days, read file after file, out of core in blocks of 30 days per series); the builder reads the",
            "same files (above 10 M prints, a 10 M prefix: it is linear). Tick prints: a quote about every second for",
            "5 venues x BTC, ETH (8h and hourly windows), realised settlements, some published late. The 'in memory' rows",
            "run the same engine on each series' prints already read into a DataFrame: the engine without parquet decoding.",
            "Before timing, one untimed tick-level run over the first file loads the compiled kernel and faults memory in.",
            *(
                [
                    f"Each method (the builder too) runs {repeat} times in turn; the table shows each one's fastest run",
                    "(a fresh process's first run also pays for its first touch of memory), with the highest peak memory.",
                ]
                if repeat > 1
                else []
            ),
            f"Parquet ({compression}) on disk: {disk}. Each size runs in a child process; peak RSS is per run.",
            "",
            f"Machine: {machine()}; load average {load:.2f} when the run started (other work on the machine would slow every method).",
            f"Reproduce: `{command}`.",
            "",
            *verdict(rows),
            f"- peak memory of the out-of-core runs: {peak:.2f} GB at most (target < 4 GB).",
            "",
            render(rows),
            "",
            "The second table splits the parquet runs' wall time: reading and checking files (in a reader thread that",
            "overlaps the rest), ordering into arrays, the numba kernel, building frames.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1e6,1e7,1e8", help="prints per run, comma separated")
    p.add_argument("--builder-max", default="1e7", help="time the builder on at most this many prints")
    p.add_argument("--data-dir", default=None, help="where the generated parquet goes (default: the temp dir)")
    p.add_argument("--compression", default="snappy", help="parquet compression of the generated prints")
    p.add_argument("--repeat", type=int, default=1, help="run each method this many times; the fastest counts")
    p.add_argument("--write", action="store_true", help="put the table in BENCHMARKS.md")
    p.add_argument("--child", type=float, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        built = child(int(args.child), int(float(args.builder_max)), args.data_dir, args.compression, args.repeat)
        print(json.dumps(built))
        return []
    load = os.getloadavg()[0]
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    results = [
        measure(size, int(float(args.builder_max)), args.data_dir, args.compression, args.repeat) for size in sizes
    ]
    rows = table(results)
    print(f"{machine()}; load average {load:.2f}")
    print(render(rows))
    if args.write:
        options = f"--sizes {args.sizes} --builder-max {args.builder_max} --compression {args.compression}"
        options += f" --repeat {args.repeat}" if args.repeat > 1 else ""
        command = f".venv/bin/python bench/strip_engine.py {options} --write"
        write_section(section(rows, results, command, load, args.compression, args.repeat))
    return rows


if __name__ == "__main__":
    main()
