"""Smoke test of ``bench/live_latency.py``: a tiny end-to-end run (the simulator in its own
process, two streams per venue, two seconds after a second live) through the real clients, WebSockets,
live strip, landing and live store, and the table it reports."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import live_latency as bench  # noqa: E402


def test_the_live_path_benchmark_measures_what_the_simulator_sent_end_to_end():
    (result,) = bench.main(["--rates", "200", "--seconds", "2", "--coins", "2", "--warmup", "1"])

    assert result.streams == 10 and result.offered == 200
    assert result.push_interval_s == 10 / 200
    # every message sent was received, stored as a live strip row and landed once
    assert result.sent > 100 and result.received > 100  # messages per second
    assert abs(result.received - result.sent) <= 0.25 * result.sent
    assert result.stored > 0.5 * result.received
    assert result.landed_ok and result.landed == result.received_total > 0
    # latencies: from the message's own time, never below the part from the collector's receipt
    assert result.event_ms.size > 100 and result.received_ms.size >= result.event_ms.size
    assert 0 < result.event_ms.min() and result.event_ms.max() < 5_000
    assert np.median(result.event_ms) >= np.median(result.received_ms) - 1  # a message's time <= its receipt
    assert result.collector_cpu >= result.loop_cpu > 0 and result.sim_cpu > 0 and result.load >= 0

    table = bench.table([result])
    header, rule, line = table.splitlines()
    assert header.strip("| ").split(" | ") == list(bench.COLUMNS)
    assert rule == "|" + "---:|" * len(bench.COLUMNS)
    cells = dict(zip(bench.COLUMNS, line.strip("| ").split(" | ")))
    assert cells["offered msg/s"] == "200" and cells["landed once"].startswith("yes")
    assert "(loop " in cells["collector CPU"] and float(cells["load avg"]) >= 0
    per_msg, loop_per_msg = cells["collector CPU µs/msg"].rstrip(")").split(" (loop ")
    assert int(per_msg) == round(result.collector_cpu / result.received * 1e6) >= int(loop_per_msg) > 0
    assert int(cells["p99 ms"].replace(",", "")) >= int(cells["p50 ms"].replace(",", ""))
    # every commit of the period timed (one per batch of 50 ms at most), slow ones counted
    assert 0 < result.commit_ms.size <= result.seconds / 0.05 + 2 and result.commit_ms.min() > 0
    p50, p99, rest = cells["store commits p50 / p99 / max ms (over 100 ms)"].split(" / ")
    assert int(rest.split(" (")[1].rstrip(")")) == int((result.commit_ms > 100).sum())
    section = bench.section([result], "the command")
    assert section.startswith(bench.SECTION + "\n") and table in section and "Machine: " in section
