"""Smoke test of ``bench/fetch_path.py``: a day of premium history per venue and a week of
fixed-rate candles, each row counting what the simulator served."""

import datetime as dt
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import fetch_path as bench  # noqa: E402


def test_the_fetch_path_bench_measures_every_venue_and_provider():
    premium, rates = bench.main(1, dt.date(2025, 2, 1), dt.date(2025, 2, 8))
    by_venue = {r.what: r for r in premium}
    assert list(by_venue) == list(bench.VENUES)
    for venue in ("binance", "bybit", "okx"):
        assert by_venue[venue].rows == 1440  # one sample a minute
    assert by_venue["hyperliquid"].rows == 24  # one an hour
    assert by_venue["okx"].requests >= 15  # 100 rows a page
    assert all(r.cpu_s > 0 and 0 < r.sim_cpu_s <= r.cpu_s for r in premium)
    assert [r.what for r in rates] == list(bench.PROVIDERS)
    assert all(r.rows >= 7 * 24 and r.requests > 0 for r in rates)
    assert "| okx | 1,440 |" in bench.table(premium, "venue")
