"""Live collector: message rate and latency from venue message to stored strip (DESIGN section 9).

Run:  .venv/bin/python bench/live_latency.py [--rate 20000] [--seconds 5] [--e2e-seconds 10] [--push-interval 0.02]

Two measurements, both through :class:`funding_assets.live.collector.Collector`:

1. **Per-print path** (what the collector does with each message once a venue client has
   parsed it): ``Collector.handle`` (LiveStrip update, intraday row) -> micro-batched hand-over
   -> ``LandingWriter`` (Parquet files in the landing area) and ``LiveStore`` (DuckDB commits),
   plus the roll worker. One-print frames, as the clients yield them, for 5 venues x BTC,ETH
   (8h and hourly series, pre-warmed with 4 days of settlements), are fed on a schedule at
   ``--rate`` messages per second for ``--seconds``; then once more as fast as possible to
   show the ceiling. Reported: the sustained rate achieved (messages/s) and how far the feed
   fell behind its schedule (ms), and the latency per stored row, in ms, from the message's
   receipt (``received_at``) to its commit returning (``LiveStore.latencies_ms``).
2. **End to end**: the venue simulator in a child process (``funding-assets sim``, wall-clock
   time, pushing every ``--push-interval`` seconds on each of the 10 streams), the full
   collector (real clients over loopback WebSockets, pre-warm over REST) for
   ``--e2e-seconds``: message rate and the same latency, after the pre-warm.

Latency percentiles are over every stored row of the measured period (p50 / p99 / max, ms).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from funding_assets.clients import Budget, HttpClient
from funding_assets.live.collector import Collector
from funding_assets.prints import PRINT_SCHEMA
from funding_assets.venues import DEFAULT_INTERVAL_HOURS, spec, venue_symbol

VENUES = ("binance", "bybit", "okx", "hyperliquid", "deribit")
COINS = ("BTC", "ETH")
H = dt.timedelta(hours=1)
UNLIMITED = Budget(1e9, 1.0)


def percentiles(values: list[float]) -> str:
    if not values:
        return "no samples"
    a = np.asarray(values)
    return f"p50 {np.percentile(a, 50):7.1f} ms   p99 {np.percentile(a, 99):7.1f} ms   max {a.max():7.1f} ms   ({a.size:,} rows)"


def history(now: dt.datetime) -> list[tuple[str, pl.DataFrame]]:
    """4 days of realised settlements per series (8h CEX, hourly Hyperliquid/Deribit)."""
    out = []
    for venue in VENUES:
        hours = DEFAULT_INTERVAL_HOURS[venue]
        last = now.replace(minute=0, second=0, microsecond=0)
        last -= dt.timedelta(hours=last.hour % hours)
        times = [last - k * dt.timedelta(hours=hours) for k in range(int(96 / hours))][::-1]
        for coin in COINS:
            out.append(
                (
                    venue,
                    pl.DataFrame(
                        {
                            "venue": venue,
                            "symbol": coin,
                            "contract": spec(venue).default_contract(coin),
                            "venue_symbol": venue_symbol(venue, coin),
                            "ts": times,
                            "funding_time": times,
                            "rate": 0.0001 * hours / 8,
                            "interval_hours": hours,
                            "kind": "realised",
                            "source": f"{venue} REST",
                        },
                    ).cast(PRINT_SCHEMA),
                )
            )
    return out


def quote_frames(n: int, start: dt.datetime, span: dt.timedelta) -> list[tuple[str, pl.DataFrame]]:
    """``n`` one-print predicted frames, round-robin over the series, quoted over ``span``."""
    series = [(v, c) for v in VENUES for c in COINS]
    rng = np.random.default_rng(7)
    step = span / n
    rows = []
    for i in range(n):
        venue, coin = series[i % len(series)]
        ts = start + i * step
        hours = DEFAULT_INTERVAL_HOURS[venue]
        end = ts.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=hours - ts.hour % hours)
        rows.append(
            (
                venue,
                coin,
                spec(venue).default_contract(coin),
                venue_symbol(venue, coin),
                ts,
                end,
                float(1e-4 * hours / 8 + rng.normal(0, 1e-5)),
                hours,
                "predicted",
                f"{venue} WS",
            )
        )
    big = pl.DataFrame(rows, schema=PRINT_SCHEMA, orient="row")
    return [(rows[i][0], big.slice(i, 1)) for i in range(n)]


async def settle(collector: Collector) -> None:
    """Wait until every roll job is computed and every row is committed."""
    await collector._roll_jobs.join()
    await collector.flush_pending()
    await asyncio.to_thread(collector.store.flush)


async def drive(
    collector: Collector, frames: list[tuple[str, pl.DataFrame]], rate: float | None
) -> tuple[float, float]:
    """Feed frames at ``rate`` per second (None: flat out) while the collector's housekeeping,
    roll and landing workers run; returns (achieved messages/s, worst lag behind schedule, ms)."""
    t0 = time.perf_counter()
    worst = 0.0
    i, n = 0, len(frames)
    while i < n:
        if rate is None:
            due = min(n, i + 200)
        else:
            elapsed = time.perf_counter() - t0
            due = min(n, int(elapsed * rate) + 1)
            worst = max(worst, (elapsed - i / rate) * 1000.0)
        while i < due:
            venue, frame = frames[i]
            collector.handle(venue, frame)
            i += 1
        await asyncio.sleep(0 if rate is None else 0.001)
    achieved = n / (time.perf_counter() - t0)
    await settle(collector)
    return achieved, worst


async def per_print_path(rate: float, seconds: float) -> None:
    home = Path(tempfile.mkdtemp(prefix="live-bench-"))
    try:
        now = dt.datetime(2025, 3, 10, 6)
        collector = Collector(home, VENUES, COINS, client_factory=lambda venue: _NoClient(venue), log_interval_s=3600)
        collector.open()
        workers = [
            asyncio.create_task(w)
            for w in (collector._housekeeping(), collector._roll_worker(), collector._landing_worker())
        ]
        for venue, frame in history(now):
            collector.handle(venue, frame, live=False)
        await settle(collector)  # the pre-warm's roll rows (and the engine's first call) are not measured
        n = int(rate * seconds)
        frames = quote_frames(
            n, now + dt.timedelta(minutes=1), dt.timedelta(hours=20)
        )  # crosses rolls at 08:00 and 16:00
        done = len(collector.store.latencies_ms())
        achieved, worst = await drive(collector, frames, rate)
        lat = collector.store.latencies_ms()[done:]
        print(
            f"per-print path, paced at {rate:,.0f} msg/s for {seconds:g} s: sustained {achieved:,.0f} msg/s, "
            f"worst lag behind schedule {worst:.1f} ms"
        )
        print(f"  message -> stored strip row: {percentiles(lat)}")
        frames = quote_frames(n, now + dt.timedelta(hours=21), dt.timedelta(hours=20))
        done = len(collector.store.latencies_ms())
        achieved, _ = await drive(collector, frames, None)
        lat = collector.store.latencies_ms()[done:]
        print(f"per-print path, flat out ({n:,} messages): {achieved:,.0f} msg/s")
        print(f"  message -> stored strip row: {percentiles(lat)}")
        await collector.shutdown([], workers)
        print(
            f"  landed {collector.landing.rows_written:,} prints in {collector.landing.files_written} files, "
            f"stored {collector.store.rows_stored:,} strip rows"
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)


class _NoClient:
    """The per-print benchmark needs no venue: a stand-in with the client's counters."""

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self.skipped_frames = 0

    def close(self) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def end_to_end(seconds: float, push_interval_s: float) -> None:
    port, ws_port = _free_port(), _free_port()
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "funding_assets.cli",
            "sim",
            "--port",
            str(port),
            "--ws-port",
            str(ws_port),
            "--push-interval",
            str(push_interval_s),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    home = Path(tempfile.mkdtemp(prefix="live-bench-e2e-"))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", ws_port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        urls = {v: (f"http://127.0.0.1:{port}/{v}", f"ws://127.0.0.1:{ws_port}/{v}") for v in VENUES}
        collector = Collector(
            home, VENUES, COINS, urls=urls, http_factory=lambda v, r: HttpClient(v, r, UNLIMITED), log_interval_s=3600
        )
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        while not collector.runtimes or not all(rt.messages for rt in collector.runtimes.values()):
            await asyncio.sleep(0.05)  # pre-warm done, every stream live
        await asyncio.sleep(1.0)
        done = len(collector.store.latencies_ms())
        m0, t0 = sum(rt.messages for rt in collector.runtimes.values()), time.perf_counter()
        await asyncio.sleep(seconds)
        messages = sum(rt.messages for rt in collector.runtimes.values()) - m0
        elapsed = time.perf_counter() - t0
        lat = collector.store.latencies_ms()[done:]
        stop.set()
        await task
        reconnects = sum(rt.reconnects for rt in collector.runtimes.values())
        print(
            f"end to end, simulator pushing every {push_interval_s:g} s on {len(VENUES) * len(COINS)} streams, {seconds:g} s: "
            f"{messages / elapsed:,.0f} msg/s received, {reconnects} reconnects"
        )
        print(f"  message -> stored strip row: {percentiles(lat)}")
    finally:
        sim.terminate()
        sim.wait(10)
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=20_000, help="messages per second fed to the per-print path")
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds at that rate")
    ap.add_argument("--e2e-seconds", type=float, default=10.0, help="seconds of the end-to-end run (0: skip)")
    ap.add_argument("--push-interval", type=float, default=0.02, help="simulator push interval per stream (s)")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    asyncio.run(per_print_path(args.rate, args.seconds))
    if args.e2e_seconds > 0:
        asyncio.run(end_to_end(args.e2e_seconds, args.push_interval))


if __name__ == "__main__":
    main()
