"""Live path: messages per second and latency from venue message to stored live strip (DESIGN section 9).

Run:  .venv/bin/python bench/live_latency.py [--rates 2000,20000] [--seconds 30] [--coins 100] [--write]

End to end through the real venue clients and WebSockets, for each offered rate in turn:

- the venue simulator runs in a child process of its own (this script, ``--serve-sim``), in
  wall-clock time, pushing every ``--push-interval`` seconds on each stream: the ``--coins``
  most traded main perpetuals of each of the five venues of the simulator's universe (500
  streams at the default), so a rate is spread over many streams as on a real venue, each
  message one instrument's funding update (one print);
- the collector (:class:`funding_assets.live.collector.Collector`, the ``funding-assets
  collect`` code) runs in this process: pre-warm over REST, the five venue clients over
  loopback WebSockets, the live strip, the landing writer (journal + Parquet files) and the
  live store (DuckDB commits).

After the pre-warm, every stream live and ``WARMUP_S`` more, it measures for ``--seconds``:

- offered: streams / push interval; sent: prints the simulator wrote to its sockets per
  second; received: prints the collector's clients handed over per second; stored: live
  strip rows committed to the live store per second; landed once: the landed files hold
  every stream print the clients handed over in the whole run, once (counted in the files);
- latency per stored intraday row, in ms, from the message's own event time (its print's
  ``ts``: the simulator's stamp of the message, taken as it builds the push; Hyperliquid
  messages carry no time and are stamped by the client on arrival) to its commit in the live
  store having returned; p50 / p99 / max over every row of the measured period, and the p99
  from the collector's receipt of the message (``received_at``);
- CPU seconds per second of the collector process (and of its event loop's thread and its
  live store's writer) and of the simulator process, which runs at ``nice`` :data:`SIM_NICENESS`;
  the collector's (and its event loop's) CPU microseconds per message received; the machine's
  load average.

``--write`` puts the table in BENCHMARKS.md (``## Live path``), with the machine and the command.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl
from _report import machine, write_section

from funding_assets import strip
from funding_assets.clients import Budget, HttpClient
from funding_assets.instruments import Instrument
from funding_assets.live.collector import LANDING_DIR, Collector
from funding_assets.live.landing import landed_files, read_landed
from funding_assets.sim import universe
from funding_assets.venues import VENUES, spec

UNLIMITED = Budget(1e9, 1.0)
#: Seconds after every stream is live before the measurement starts.
WARMUP_S = 3.0
#: CPU priority of the simulator's process (``nice``): it stands for venues that run on
#: machines of their own, so on a shared machine it yields the CPU to the collector first.
SIM_NICENESS = 10
#: Seconds between two readings of the live store's latency samples.
SAMPLE_EVERY_S = 0.5
SECTION = "## Live path"


def instruments(coins_per_venue: int, now: dt.datetime) -> list[Instrument]:
    """The ``coins_per_venue`` most traded main perpetuals trading at ``now`` on each venue."""
    out = []
    for venue in VENUES:
        main = [
            i
            for i in universe.listing(venue)
            if universe.listed_at(i, now) and i.contract == spec(venue).default_contract(i.symbol)
        ]
        main.sort(key=lambda i: (-(i.volume_usd or 0.0), i.venue_symbol))
        if len(main) < coins_per_venue:
            raise SystemExit(f"{venue} lists {len(main)} main perpetuals, fewer than --coins {coins_per_venue}")
        out += main[:coins_per_venue]
    return out


# --- the simulator's process ---------------------------------------------------------------------


def serve_sim(push_interval_s: float) -> None:
    """The simulator on loopback (wall-clock time): prints its ports as a JSON line, then answers
    each ``stats`` line on stdin with the prints and frames each venue sent; stops at EOF."""
    from funding_assets.sim.server import SimServer

    os.nice(SIM_NICENESS)  # before any thread starts: every thread of the simulator inherits it
    with SimServer(push_interval_s=push_interval_s) as server:
        print(json.dumps({"port": server.port, "ws_port": server.ws_port}), flush=True)
        for line in sys.stdin:
            if line.strip() == "stats":
                usage = resource.getrusage(resource.RUSAGE_SELF)
                stats = {v: [s.prints_sent, s.frames_sent] for v, s in server.sims.items()}
                print(json.dumps({"sent": stats, "cpu_s": usage.ru_utime + usage.ru_stime}), flush=True)


class SimProcess:
    """The simulator in a child process (this script with ``--serve-sim``)."""

    def __init__(self, push_interval_s: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-sim", "--push-interval", repr(push_interval_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        ports = json.loads(self.proc.stdout.readline())
        self.port, self.ws_port = ports["port"], ports["ws_port"]
        self._lock = threading.Lock()

    def urls(self) -> dict[str, tuple[str, str]]:
        return {v: (f"http://127.0.0.1:{self.port}/{v}", f"ws://127.0.0.1:{self.ws_port}/{v}") for v in VENUES}

    def stats(self) -> tuple[int, int, float]:
        """(prints sent, frames sent, CPU seconds used) so far, every venue together."""
        with self._lock:
            self.proc.stdin.write("stats\n")
            self.proc.stdin.flush()
            got = json.loads(self.proc.stdout.readline())
        prints = sum(p for p, _ in got["sent"].values())
        frames = sum(f for _, f in got["sent"].values())
        return prints, frames, got["cpu_s"]

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- one measurement -----------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    offered: float  # messages (prints) per second the streams are scheduled to carry
    streams: int
    push_interval_s: float
    seconds: float  # measured period
    sent: float  # prints per second the simulator wrote
    frames_sent: float  # WebSocket data frames per second the simulator wrote
    received: float  # prints per second the clients handed over
    frames_handled: float  # frames (bursts of messages) per second the collector handled
    stored: float  # live strip rows per second committed
    landed_ok: bool  # every print received landed exactly once by the end
    landed: int  # stream prints in the landed files
    received_total: int  # stream prints the clients handed over, the whole run
    event_ms: np.ndarray  # latency samples from the message's event time
    received_ms: np.ndarray  # latency samples from the collector's receipt
    commit_ms: np.ndarray  # wall ms of each store commit of the period (its statements, checkpoints included)
    collector_cpu: float  # CPU seconds per second of this process
    loop_cpu: float  # ... of its event loop's thread (clients, live strip, hand-over)
    store_cpu: float  # ... of the live store's writer thread (DuckDB commits)
    sim_cpu: float  # CPU seconds per second of the simulator's process
    reconnects: int
    load: float  # the machine's 1-minute load average at the end of the period (other work included)


def cpu_s() -> dict[str, float]:
    """CPU seconds used so far by this process, by the thread running the event loop (this
    one) and by the live store's writer thread (Linux ``/proc``; 0 where it cannot be read)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    store = next((t.native_id for t in threading.enumerate() if t.name.startswith("live-store-")), None)
    return {
        "process": usage.ru_utime + usage.ru_stime,
        "loop": _thread_cpu_s(threading.get_native_id()),
        "store": _thread_cpu_s(store),
    }


def _thread_cpu_s(tid: int | None) -> float:
    try:
        fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime, clock ticks


async def measure(rate: float, seconds: float, coins_per_venue: int, warmup_s: float = WARMUP_S) -> Result:
    """Offer ``rate`` prints per second (``coins_per_venue`` streams per venue) for ``seconds``."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    series = instruments(coins_per_venue, now)
    push_interval_s = len(series) / rate
    sim = SimProcess(push_interval_s)
    home = Path(tempfile.mkdtemp(prefix="live-bench-"))
    try:
        collector = Collector(
            home,
            VENUES,
            series,
            urls=sim.urls(),
            http_factory=lambda v, r: HttpClient(v, r, UNLIMITED),
            log_interval_s=3600.0,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        keys = {(i.venue, i.symbol, i.contract) for i in series}
        deadline = time.monotonic() + 300
        while not (
            len(collector.runtimes) == len(VENUES)
            and all(rt.state == "live" for rt in collector.runtimes.values())
            and keys <= {k for k, s in collector.strip.series.items() if s.last_ts >= 0}
        ):
            if task.done():
                await task
            if time.monotonic() > deadline:
                raise SystemExit("the collector did not get every stream live within 300 s")
            await asyncio.sleep(0.1)
        await asyncio.sleep(warmup_s)

        store = collector.store
        seen = dict(store.latency_samples)
        event_ms: list[float] = []
        received_ms: list[float] = []

        def take() -> None:
            for since, into in (("event", event_ms), ("received", received_ms)):
                count = store.latency_samples[since]
                into += store.latencies_ms(since, last=count - seen[since])
                seen[since] = count

        def counts() -> tuple[int, int, int]:
            runtimes = collector.runtimes.values()
            return sum(rt.prints for rt in runtimes), sum(rt.frames for rt in runtimes), store.rows_stored

        take()
        commits0 = len(store.commit_ms)
        sent0, frames_sent0, sim_cpu0 = await asyncio.to_thread(sim.stats)
        (prints0, frames0, stored0), cpu0, t0 = counts(), cpu_s(), time.monotonic()
        while time.monotonic() - t0 < seconds:
            await asyncio.sleep(SAMPLE_EVERY_S)
            take()
        (prints1, frames1, stored1), cpu1, t1 = counts(), cpu_s(), time.monotonic()
        commit_ms = list(store.commit_ms)[commits0:] if len(store.commit_ms) < store.commit_ms.maxlen else []
        load = os.getloadavg()[0]
        sent1, frames_sent1, sim_cpu1 = await asyncio.to_thread(sim.stats)
        elapsed = t1 - t0
        await asyncio.sleep(1.0)  # the rows of the last messages measured are committed
        take()
        stop.set()
        await task
        streamed = sum(rt.prints for rt in collector.runtimes.values())
        landed = pl.concat([read_landed(f) for f in landed_files(home / LANDING_DIR)])
        landed_stream = landed.filter(pl.col("source").str.ends_with(" WS")).height
        return Result(
            offered=rate,
            streams=len(series),
            push_interval_s=push_interval_s,
            seconds=elapsed,
            sent=(sent1 - sent0) / elapsed,
            frames_sent=(frames_sent1 - frames_sent0) / elapsed,
            received=(prints1 - prints0) / elapsed,
            frames_handled=(frames1 - frames0) / elapsed,
            stored=(stored1 - stored0) / elapsed,
            landed_ok=landed_stream == streamed and landed.height == collector.prints_handled,
            landed=landed_stream,
            received_total=streamed,
            event_ms=np.asarray(event_ms),
            received_ms=np.asarray(received_ms),
            commit_ms=np.asarray(commit_ms),
            collector_cpu=(cpu1["process"] - cpu0["process"]) / elapsed,
            loop_cpu=(cpu1["loop"] - cpu0["loop"]) / elapsed,
            store_cpu=(cpu1["store"] - cpu0["store"]) / elapsed,
            sim_cpu=(sim_cpu1 - sim_cpu0) / elapsed,
            reconnects=sum(rt.reconnects for rt in collector.runtimes.values()),
            load=load,
        )
    finally:
        sim.close()
        shutil.rmtree(home, ignore_errors=True)


# --- the table -----------------------------------------------------------------------------------

COLUMNS = (
    "offered msg/s",
    "sent msg/s",
    "received msg/s",
    "stored rows/s",
    "msgs per frame",
    "p50 ms",
    "p99 ms",
    "max ms",
    "p99 from receipt ms",
    "store commits p50 / p99 / max ms (over 100 ms)",
    "landed once",
    "collector CPU",
    "collector CPU µs/msg",
    "simulator CPU",
    "load avg",
)


def row(r: Result) -> dict[str, str]:
    def pct(a: np.ndarray, q: float) -> str:
        return f"{np.percentile(a, q):,.0f}" if a.size else "-"

    def per_msg(cpu: float) -> str:
        return f"{cpu / r.received * 1e6:.0f}" if r.received else "-"

    return {
        "offered msg/s": f"{r.offered:,.0f}",
        "sent msg/s": f"{r.sent:,.0f}",
        "received msg/s": f"{r.received:,.0f}",
        "stored rows/s": f"{r.stored:,.0f}",
        "msgs per frame": f"{r.received / r.frames_handled:.1f}" if r.frames_handled else "-",
        "p50 ms": pct(r.event_ms, 50),
        "p99 ms": pct(r.event_ms, 99),
        "max ms": f"{r.event_ms.max():,.0f}" if r.event_ms.size else "-",
        "p99 from receipt ms": pct(r.received_ms, 99),
        "store commits p50 / p99 / max ms (over 100 ms)": (
            f"{pct(r.commit_ms, 50)} / {pct(r.commit_ms, 99)} / {r.commit_ms.max():,.0f} ({(r.commit_ms > 100).sum()})"
            if r.commit_ms.size
            else "-"
        ),
        "landed once": f"{'yes' if r.landed_ok else 'NO'} ({r.landed:,})",
        "collector CPU": f"{r.collector_cpu:.0%} (loop {r.loop_cpu:.0%}, store {r.store_cpu:.0%})",
        "collector CPU µs/msg": f"{per_msg(r.collector_cpu)} (loop {per_msg(r.loop_cpu)})",
        "simulator CPU": f"{r.sim_cpu:.0%}",
        "load avg": f"{r.load:.1f}",
    }


def table(results: list[Result]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---:|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row(r)[c] for c in COLUMNS) + " |" for r in results]
    return "\n".join(lines)


def section(results: list[Result], command: str) -> str:
    r0 = results[0]
    return "\n".join(
        [
            SECTION,
            "",
            "End to end through the five venue clients and loopback WebSockets: the simulator in a child",
            f"process pushing {r0.streams} streams ({r0.streams // len(VENUES)} most traded main perpetuals of each",
            "venue, one print a message), the collector (`funding-assets collect`'s code: pre-warm, clients,",
            "live strip, landing journal and files, live store) in this process. Each rate is measured for",
            f"{r0.seconds:.0f} s after every stream is live. Latency: from the message's own event time (the",
            "simulator's stamp of the message; Hyperliquid's carry none and are stamped on arrival) to the",
            "commit of its live strip row in the live store having returned, over every stored intraday",
            "row of the period; the p99 from the collector's receipt is shown beside it. Store commits: the",
            "wall time of each live store commit of the period (its DuckDB statements; a commit that",
            "triggers DuckDB's automatic checkpoint, every 16 MB of WAL, includes it): rows arriving",
            "meanwhile wait for it. CPU: CPU seconds",
            "per second of each process (100 % = one core), the collector's split into its event loop's",
            "thread (clients, live strip, hand-over) and the live store's writer (DuckDB commits), and",
            "the collector's CPU microseconds per message received (the work a message costs, which a",
            "busy machine changes less than it changes the latency); the",
            f"simulator runs at `nice {SIM_NICENESS}` (it stands for venues on machines of their own). Load avg: the",
            "machine's 1-minute load average at the end of the period, other work on it included.",
            "Target (DESIGN section 9): p99 under 250 ms, 20,000 messages/s.",
            "",
            f"Machine: {machine()}. Reproduce: `{command}`.",
            "",
            table(results),
            "",
        ]
    )


def warm_up_engine() -> None:
    """Compile the strip engine's kernels before measuring (a fresh checkout has no cache of
    them yet): compiling is not part of a message's latency on a running collector."""
    t = dt.datetime(2024, 1, 1)
    prints = pl.DataFrame(
        {
            "venue": ["binance"] * 3,
            "symbol": ["BTC"] * 3,
            "ts": [t + dt.timedelta(hours=8 * k) for k in range(3)],
            "funding_time": [t + dt.timedelta(hours=8 * k) for k in range(3)],
            "rate": [0.0001] * 3,
        }
    )
    strip.partition_snapshots(prints, every=0)
    strip.partition_snapshots(prints, every="10m")


def main(argv: list[str] | None = None) -> list[Result]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rates", default="2000,20000", help="offered messages per second, comma list")
    ap.add_argument("--seconds", type=float, default=30.0, help="measured seconds per rate")
    ap.add_argument("--coins", type=int, default=100, help="streams per venue")
    ap.add_argument("--warmup", type=float, default=WARMUP_S, help="seconds live before measuring")
    ap.add_argument("--write", action="store_true", help="write the section of BENCHMARKS.md")
    ap.add_argument("--serve-sim", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--push-interval", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_sim:
        serve_sim(args.push_interval)
        return []
    rates = [float(r) for r in args.rates.split(",")]
    warm_up_engine()
    results = []
    for rate in rates:
        results.append(asyncio.run(measure(rate, args.seconds, args.coins, args.warmup)))
        print(table(results[-1:]), flush=True)
    command = (
        f".venv/bin/python bench/live_latency.py --rates {args.rates} --seconds {args.seconds:g} "
        f"--coins {args.coins} --write"
    )
    print(f"\n{machine()}\n{table(results)}")
    if args.write:
        write_section(section(results, command))
    return results


if __name__ == "__main__":
    main()
