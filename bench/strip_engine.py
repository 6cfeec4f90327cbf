"""Strip engine throughput against a per-print Python builder (DESIGN section 9).

Run:  .venv/bin/python bench/strip_engine.py [--prints 10000000] [--baseline-prints 1000000]

Generates tick-level predicted prints (several quotes a second for 10 venue/coin series,
plus the realised settlements) and measures, on the same prints:

- the vectorised engine: ``intraday_snapshots(every=0)`` (a strip at every print, the
  tick-level emission), ``intraday_snapshots(every="10m")`` and ``roll_snapshots``;
- the baseline: the obvious per-print builder, a ``deque(maxlen=8)`` of closed 8h windows
  per series updated in a Python loop, emitting the strip at every print.

The baseline is timed on ``--baseline-prints`` (it is linear in prints, so its rate carries
over) and both report prints per second; the ratio is engine rate / baseline rate. Peak
memory is the process's max RSS.
"""

import argparse
import collections
import datetime as dt
import resource
import time

import numpy as np
import polars as pl

from funding_assets import strip

SERIES = [(v, c) for v in ("binance", "bybit", "okx", "hyperliquid", "deribit") for c in ("BTC", "ETH")]
GRID_MS = 8 * 3_600_000
SPAN_MS = 10 * 86_400_000  # ten days: 30 windows per series


def tick_prints(n: int, seed: int = 1) -> pl.DataFrame:
    """``n`` predicted 8h prints spread evenly over the series and over ``SPAN`` (so every
    series has many closed windows), quoted in ts order."""
    rng = np.random.default_rng(seed)
    per = n // len(SERIES)
    start_ms = int(dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
    mean_gap_ms = SPAN_MS / per
    frames = []
    for venue, coin in SERIES:
        ts = start_ms + np.cumsum(rng.integers(1, int(2 * mean_gap_ms) + 2, per))
        funding = (ts // GRID_MS + 1) * GRID_MS
        frames.append(
            pl.DataFrame(
                {
                    "venue": venue,
                    "symbol": coin,
                    "ts": ts,
                    "funding_time": funding,
                    "rate": 0.0001 + rng.normal(0, 2e-5, per),
                    "interval_hours": 8.0,
                    "kind": "predicted",
                }
            )
        )
    return pl.concat(frames).with_columns(pl.col("ts", "funding_time").cast(pl.Datetime("ms")))


def deque_builder(prints: pl.DataFrame) -> int:
    """The per-print reference: keep the last quote of the open window and a deque of closed
    windows per series; emit the 8-bucket strip (annualised) at every print."""
    state: dict[tuple[str, str], tuple[int, float, collections.deque]] = {}
    emitted = 0
    for venue, symbol, _ts, funding_ms, rate in zip(
        prints["venue"].to_list(),
        prints["symbol"].to_list(),
        prints["ts"].dt.epoch("ms").to_list(),
        prints["funding_time"].dt.epoch("ms").to_list(),
        prints["rate"].to_list(),
    ):
        key = (venue, symbol)
        window = -(-funding_ms // GRID_MS) * GRID_MS
        if key not in state:
            state[key] = (window, rate, collections.deque(maxlen=7))
        open_window, value, closed = state[key]
        if window != open_window:
            closed.appendleft(value)
            open_window = window
        state[key] = (open_window, rate, closed)
        if len(closed) == 7:
            strip_now = [rate * 1095] + [r * 1095 for r in closed]
            emitted += len(strip_now) == 8
    return emitted


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prints", type=int, default=10_000_000)
    p.add_argument("--baseline-prints", type=int, default=1_000_000)
    p.add_argument("--skip-tick", action="store_true", help="skip the tick-level engine run")
    args = p.parse_args()

    prints = tick_prints(args.prints)
    base = tick_prints(args.baseline_prints).sort("ts")
    base_s, base_rows = timed(deque_builder, base)
    base_rate = len(base) / base_s
    print(f"prints: {len(prints):,} ({len(SERIES)} series); baseline on {len(base):,} prints")
    print(f"{'method':<36}{'seconds':>10}{'prints/s':>16}{'rows out':>14}{'x baseline':>12}")
    print(f"{'deque(maxlen=8) per print (Python)':<36}{base_s:>10.2f}{base_rate:>16,.0f}{base_rows:>14,}{1:>12.1f}")
    for label, fn in (
        ("intraday every print (tick level)", lambda f: strip.intraday_snapshots(f, every=0)),
        ("intraday every 10m", lambda f: strip.intraday_snapshots(f, every="10m")),
        ("roll snapshots", strip.roll_snapshots),
    ):
        seconds, out = timed(fn, prints)
        rate = len(prints) / seconds
        print(f"{label:<36}{seconds:>10.2f}{rate:>16,.0f}{len(out):>14,}{rate / base_rate:>12.1f}")
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak memory (max RSS): {peak_gb:.2f} GB")


if __name__ == "__main__":
    main()
