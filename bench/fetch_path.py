"""Throughput of the fetch path a backfill is bound by: premium-index history and fixed-rate candles.

Run:  .venv/bin/python bench/fetch_path.py [--days 90] [--rates-start 2025-01-01 --rates-end 2025-04-01] [--write]

**Premium history.** Each venue's client (``premium_history``) asks the simulator on
loopback, limits lifted, for BTC's premium-index samples over ``--days`` days from
2024-01-01, page by page with the venue's own page size and paging rule (Binance 1500
candles forward, Bybit 1000 backwards, OKX 100 rows backwards, Hyperliquid's hourly funding
history). The simulator runs in this process, as in a backfill, so the process's CPU time is
what the fetch costs on both sides together: rows per wall second and per CPU second, and the
share of the CPU spent in the simulator's request handlers (generating and encoding pages);
the rest is HTTP on both sides and the client's decoding and frame building. The model's
yearly paths are generated before the clock starts (a backfill pays that once).

**Fixed-rate candles.** Every Rho and Boros future trading in ``--rates-start..--rates-end``
is walked over that range at 1 h through ``funding_assets.rates`` (as ``fixed_rate_candles``
does): candles, requests, wall and CPU seconds per provider.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from dataclasses import dataclass

from _report import machine, write_section

from funding_assets.rates.sources import simulator_rates_source
from funding_assets.sim.server import SimServer
from funding_assets.sources.venues import UNLIMITED, ClientSource, in_process_simulator

VENUES = ("binance", "bybit", "okx", "hyperliquid")
PROVIDERS = ("rho", "boros")
START = dt.datetime(2024, 1, 1)


@dataclass(frozen=True)
class Row:
    """One measured fetch: ``what`` (venue or provider), rows, requests, wall and CPU seconds,
    and the CPU seconds of the simulator's handlers (None when not split)."""

    what: str
    rows: int
    requests: int
    wall_s: float
    cpu_s: float
    sim_cpu_s: float | None = None


def premium_rows(days: int, venues: tuple[str, ...] = VENUES) -> list[Row]:
    """Each venue's BTC premium history over ``days`` days from 2024-01-01 (see the module docstring)."""
    out = []
    with SimServer() as server:
        urls = {v: (server.rest_url(v), server.ws_url(v)) for v in server.sims}
        source = ClientSource("sim", urls, budget=UNLIMITED, label="sim")
        handle = server.handle
        for venue in venues:
            client = source.client(venue)
            client.premium_history("BTC", START - dt.timedelta(hours=2), START - dt.timedelta(hours=1))  # warm
            sim_cpu = [0.0]

            def timed(*args, _handle=handle, _cpu=sim_cpu):
                began = time.thread_time()
                try:
                    return _handle(*args)
                finally:
                    _cpu[0] += time.thread_time() - began

            server.handle = timed
            requests = server.requests[venue]
            wall, cpu = time.perf_counter(), time.process_time()
            frame = client.premium_history("BTC", START, START + dt.timedelta(days=days))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            server.handle = handle
            out.append(Row(venue, frame.height, server.requests[venue] - requests, wall, cpu, sim_cpu[0]))
    return out


def rates_rows(start: dt.date, end: dt.date, providers: tuple[str, ...] = PROVIDERS) -> list[Row]:
    """Every future of each provider trading in ``start..end``, walked over that range at 1 h."""
    source, server = simulator_rates_source(), in_process_simulator()
    lo, hi = dt.datetime.combine(start, dt.time()), dt.datetime.combine(end, dt.time())
    out = []
    for provider in providers:
        markets = [
            m
            for m in source.markets(provider)
            if m.maturity > lo and (m.term_start or m.maturity - dt.timedelta(days=92)) < hi
        ]
        requests = server.requests[provider]
        wall, cpu = time.perf_counter(), time.process_time()
        candles = sum(source.candles(provider, m, start, end, "1h").height for m in markets)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        out.append(Row(provider, candles, server.requests[provider] - requests, wall, cpu))
    return out


def table(rows: list[Row], unit: str) -> str:
    lines = [
        f"| {unit} | rows | requests | wall s | rows / wall s | CPU s | rows / CPU s | simulator share of CPU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        share = "" if r.sim_cpu_s is None else f"{r.sim_cpu_s / r.cpu_s:.0%}" if r.cpu_s else ""
        lines.append(
            f"| {r.what} | {r.rows:,} | {r.requests:,} | {r.wall_s:.2f} | {r.rows / r.wall_s:,.0f} | "
            f"{r.cpu_s:.2f} | {r.rows / r.cpu_s:,.0f} | {share} |"
        )
    return "\n".join(lines)


def main(
    days: int = 90,
    rates_start: dt.date = dt.date(2025, 1, 1),
    rates_end: dt.date = dt.date(2025, 4, 1),
    venues: tuple[str, ...] = VENUES,
    providers: tuple[str, ...] = PROVIDERS,
) -> tuple[list[Row], list[Row]]:
    """Measure and print both tables; returns their rows."""
    premium = premium_rows(days, venues)
    rates = rates_rows(rates_start, rates_end, providers)
    print(table(premium, "premium history, BTC"))
    print()
    print(table(rates, "fixed-rate candles, 1 h"))
    return premium, rates


def section(premium: list[Row], rates: list[Row], command: str) -> str:
    return f"""## Fetch path

What the backfill's two fetch-bound runs are made of, measured on a slice. Premium history:
each venue's client fetches BTC's premium-index samples over 90 days from 2024-01-01 from the
simulator on loopback (limits lifted, the simulator in the same process as in a backfill, so
CPU seconds are both sides together; the simulator's share is its request handlers).
Fixed-rate candles: every Rho and Boros future trading in 2025-01-01..2025-04-01, walked at 1 h.

Machine: {machine()}; load average {os.getloadavg()[0]:.1f} when the run ended (other work
on the machine inflates wall and CPU seconds alike). Reproduce: `{command}`.

{table(premium, "premium history, BTC")}

{table(rates, "fixed-rate candles, 1 h")}
"""


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--rates-start", type=dt.date.fromisoformat, default=dt.date(2025, 1, 1))
    parser.add_argument("--rates-end", type=dt.date.fromisoformat, default=dt.date(2025, 4, 1))
    parser.add_argument("--write", action="store_true", help="write the Fetch path section of BENCHMARKS.md")
    args = parser.parse_args()
    premium, rates = main(args.days, args.rates_start, args.rates_end)
    if args.write:
        write_section(section(premium, rates, ".venv/bin/python bench/fetch_path.py --write"))
