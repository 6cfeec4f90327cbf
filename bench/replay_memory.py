"""Peak memory and parse count of the replay source on one large CSV (not a timed test).

Run:  .venv/bin/python bench/replay_memory.py [--size 200MB] [--days 7] [--keep DIR]
      .venv/bin/python bench/replay_memory.py --size 1GB

Writes ``<dir>/binance/quotes.csv``: predicted quotes for BTCUSDT, ETHUSDT and SOLUSDT
every 5 seconds with epoch-ms ``ts``/``funding_time`` (about 3 MB a day) plus each 8h
settlement, day after day until the file reaches ``--size``. Then, in a fresh process (so
writing the file does not count), it does what a backfill does: ``check`` the venue on one
source (the preflight), then ``fetch`` ``--days`` days from the middle of the file, three
times in a row, on a second source (the runs). It prints the process's peak RSS (max RSS,
after importing the package and after the reads), the size of the prints of the range in
memory, and how many times a file was parsed (one is the goal: the preflight and every
run share one read).
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

START = dt.datetime(2023, 1, 1)
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
QUOTE_EVERY_MS = 5_000
H8_MS = 8 * 3_600_000
DAY_MS = 86_400_000


def parse_size(text: str) -> int:
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "B": 1}
    for suffix, factor in units.items():
        if text.upper().endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


def one_day(day: int, rng: np.random.Generator) -> pl.DataFrame:
    """A day of predicted quotes and settlements for every symbol, in ts order."""
    day_ms = int((START - dt.datetime(1970, 1, 1)).total_seconds() * 1000) + day * DAY_MS
    quotes = day_ms + np.arange(0, DAY_MS, QUOTE_EVERY_MS, dtype=np.int64)
    frames = []
    for symbol in SYMBOLS:
        ts = quotes + rng.integers(0, 1000, quotes.size)
        predicted = pl.DataFrame(
            {
                "ts": ts,
                "funding_time": (ts // H8_MS + 1) * H8_MS,
                "rate": np.round(rng.normal(1e-4, 5e-5, ts.size), 8),
                "kind": "predicted",
            }
        )
        windows = day_ms + np.arange(0, DAY_MS, H8_MS, dtype=np.int64)
        realised = pl.DataFrame(
            {
                "ts": windows + rng.integers(0, 40, windows.size),
                "funding_time": windows,
                "rate": np.round(rng.normal(1e-4, 5e-5, windows.size), 8),
                "kind": "realised",
            }
        )
        frames.append(pl.concat([predicted, realised]).with_columns(symbol=pl.lit(symbol)))
    return pl.concat(frames).sort("ts").select("symbol", "ts", "funding_time", "rate", "kind")


def write_csv(path: Path, size: int) -> int:
    """Append whole days to ``path`` until it holds ``size`` bytes; the number of days."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    days = 0
    with path.open("wb") as f:
        while f.tell() < size:
            one_day(days, rng).write_csv(f, include_header=days == 0)
            days += 1
    return days


def max_rss_mb() -> float:
    """This process's peak RSS in MiB: Linux's VmHWM (ru_maxrss would carry the parent's
    peak over the exec), else ru_maxrss."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")) / 1024


def measure(folder: Path, start: dt.date, end: dt.date) -> None:
    """The backfill's reads in this (fresh) process; prints the figures."""
    from funding_assets.sources import replay

    imported = max_rss_mb()
    t0 = time.monotonic()
    replay.ReplaySource(folder).check("binance")  # the preflight
    checked = time.monotonic() - t0
    source = replay.ReplaySource(folder)  # the runs' source, another instance

    def fetch() -> tuple[int, float]:  # the prints are dropped before the next run, as a run's are
        prints = source.fetch("binance", ("BTC", "ETH", "SOL"), start, end)
        return prints.height, prints.estimated_size() / 2**20

    t0 = time.monotonic()
    rows, mib = [fetch() for _ in range(3)][-1]
    fetched = (time.monotonic() - t0) / 3
    first, last = source.span("binance")
    print(f"data span            {first} .. {last}")
    print(f"range                {start} .. {end}: {rows:,} prints, {mib:.0f} MiB")
    print(f"files parsed         {replay.files_parsed} (preflight check + 3 fetches on a second source)")
    print(f"check (parse) time   {checked:.1f} s; fetch of the range {fetched:.2f} s")
    print(f"peak RSS             {max_rss_mb():.0f} MiB (after import: {imported:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="200MB", help="CSV size: 200MB (default), 1GB, ...")
    parser.add_argument("--days", type=int, default=7, help="days fetched from the middle of the file")
    parser.add_argument("--keep", type=Path, help="write the replay directory here and keep it")
    parser.add_argument("--measure", nargs=3, metavar=("DIR", "START", "END"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        folder, start, end = args.measure
        measure(Path(folder), dt.date.fromisoformat(start), dt.date.fromisoformat(end))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        path = folder / "binance" / "quotes.csv"
        t0 = time.monotonic()
        days = write_csv(path, parse_size(args.size))
        print(f"wrote {path}: {path.stat().st_size / 1e6:.0f} MB, {days} days, in {time.monotonic() - t0:.0f} s")
        start = START.date() + dt.timedelta(days=max(0, days // 2 - args.days // 2))
        end = start + dt.timedelta(days=args.days - 1)
        child = [sys.executable, __file__, "--measure", str(folder), start.isoformat(), end.isoformat()]
        subprocess.run(child, check=True)


if __name__ == "__main__":
    main()
