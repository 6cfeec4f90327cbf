"""Smoke test of ``bench/request_budget.py``: a small backfill's fetch against the simulator
with budgets scaled down so each venue that has enough requests is budget-bound for a few
seconds, finishing within 10 % of its floor, with no request refused; the requests counted
from the clients' paging rules are the ones the simulator served."""

import datetime as dt
import sys
from pathlib import Path

import pytest

from funding_assets.clients import binance, hyperliquid
from funding_assets.clients.http import RESERVE_SHARE
from funding_assets.sim import universe
from funding_assets.venues import SPECS, VENUES
from funding_assets.venues.spec import Budget

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import request_budget as bench  # noqa: E402

DAYS = (dt.date(2025, 5, 1), dt.date(2025, 5, 6))
#: Seconds each budget-bound venue's fetch should take.
FLOOR_S = 3.0
#: The most one request costs in a bucket (the venue must be able to grant it): Binance's
#: all-symbol tickers, a full Hyperliquid history page as the client charges it up front.
LARGEST = {("binance", "weight"): binance.TICKER_24H_WEIGHT_ALL, ("hyperliquid", "weight"): 45}


def scaled(need: dict[str, tuple[bench.Need, bench.Need]]) -> tuple[dict, set[str]]:
    """Budgets under which each bucket the fetch draws at least three bursts from holds a
    tenth of what it draws (at least its largest request) and refills the rest in
    ``FLOOR_S``; other buckets keep the venue's. Also the venues so bound."""
    budgets, bound = {}, set()
    for venue, (_, fetch) in need.items():
        budgets[venue] = dict(SPECS[venue].budgets)
        for bucket in budgets[venue]:
            drawn = fetch.units.get(bucket, 0.0)
            held = max(drawn / 10, LARGEST.get((venue, bucket), 1.0) / (1 - RESERVE_SHARE))
            if drawn >= 3 * held:
                budgets[venue][bucket] = Budget(held, held * FLOOR_S / (drawn - held), "scaled")
                bound.add(venue)
    return budgets, bound


def test_a_small_backfill_fetch_finishes_within_ten_percent_of_its_budget_floor():
    assert hyperliquid.page_weight(hyperliquid.PAGE_ROWS) == LARGEST[("hyperliquid", "weight")]
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    listed = {v: [i for i in universe.listing(v) if i.listed_at is None or i.listed_at <= now] for v in VENUES}
    budgets, bound = scaled(bench.needs(bench.Range.of_days(*DAYS, now), listed))
    assert bound >= {"binance", "bybit", "okx"}

    proof = bench.prove(DAYS, budgets)

    # a request whose trip swings past the client's reserve (a loaded machine) is refused
    # and retried after its Retry-After; the pacing keeps that rare
    assert sum(proof.refused.values()) <= 0.02 * sum(proof.requests.values())
    for venue, (_, fetch) in proof.need.items():
        # every request counted was served, and each refused one once more when retried
        assert proof.requests[venue] == fetch.requests + fetch.free + proof.refused[venue], venue
        assert proof.venue_s[venue] <= proof.floor() * 1.1, venue  # nobody outlasts the slowest budget
    for venue in bound:
        assert proof.floor(venue) > 0.8 * FLOOR_S
        assert proof.venue_s[venue] / proof.floor(venue) == pytest.approx(1.0, abs=0.1), venue
    assert proof.ratio == pytest.approx(1.0, abs=0.1)
    table = bench.report(proof, proof.need, DAYS, DAYS, "smoke")
    assert table.startswith(bench.SECTION) and f"**{proof.ratio:.3f}**" in table
