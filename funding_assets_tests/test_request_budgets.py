"""Request budgets: the venues' published budgets, the clients' pacing and the simulator's
enforcement agree, and the pacing spends the budget without refusals or wasted time.

Rules (DESIGN section 9, VENUES.md): each venue's budgets are declared once
(``VenueSpec.budgets``); a client draws every request from the bucket the venue counts it
in, at the venue's cost; the simulator enforces the same buckets; a client paced to a
budget is not refused when its answers' latency swings, and takes no longer than the budget
needs; a refusal always names a wait; every venue is fetched side by side.
"""

import datetime as dt
import threading
import time
from itertools import cycle

import httpx
import pytest

from funding_assets.clients import client_for
from funding_assets.clients.http import RESERVE_SHARE, HttpClient, RateLimiter
from funding_assets.sim.server import SimClock, SimServer, _Bucket
from funding_assets.sources import fetch_all
from funding_assets.venues import SPECS, VENUES
from funding_assets.venues.spec import Budget

NOW = dt.datetime(2025, 6, 1, 12, 0)
EARLY = dt.datetime(2023, 1, 1)  # Hyperliquid settles every 8 h until 2023-06-08
DAY = dt.timedelta(days=1)


class ManualClock:
    """Monotonic seconds that move only when someone sleeps on them."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


# --- the pacing itself ---------------------------------------------------------------------


def test_a_client_at_the_venues_rate_is_never_refused_when_answers_come_back_faster():
    """The venue counts a request when it arrives, the client when it sends it: a request whose
    trip is shorter than the one before arrives early. Sent back to back at the budget's
    rate, every other request here travels 70 ms faster; the client's reserve absorbs it."""
    budget = SPECS["okx"].budgets["public"]  # 10 per 2 s: one every 200 ms
    clock = ManualClock()
    arrival = [0.0]
    client = RateLimiter(budget, clock=clock, sleep=clock.sleep)
    venue = _Bucket(budget, clock=lambda: arrival[0])
    trips = cycle([0.08, 0.01])  # one way, seconds
    refused = 0
    n = 300
    for _ in range(n):
        client.acquire(1.0)
        trip = next(trips)
        arrival[0] = clock.now + trip
        refused += venue.take(1.0) > 0
        clock.sleep(2 * trip)  # the answer comes back before the next request
    assert refused == 0
    # and it costs the reserve once, not a share of every request
    floor = (n - budget.requests) / budget.per_second
    assert floor < clock.now <= floor + RESERVE_SHARE * budget.period_s + 2 * 0.08


def test_okx_premium_history_takes_exactly_its_budgets_time():
    """premium-history's own 20 / 2 s, paced by the client and enforced by the simulator on
    the same clock: the pages take (pages - burst) / rate and not a share more, and none is
    refused."""
    clock = ManualClock()
    with SimServer(clock=SimClock(start=NOW, speed=0.0), limits=True, limits_clock=clock) as server:
        http = HttpClient("okx", server.rest_url("okx"), SPECS["okx"].budgets, clock=clock, sleep=clock.sleep)
        client = client_for("okx", server.rest_url("okx"), server.ws_url("okx"), http=http)
        samples = client.premium_history("BTC", NOW - 10 * DAY, NOW)
        premium = server.buckets["okx"]["premium"]
        budget = premium.budget
    assert samples.height > 14_000  # ten days of minutes: 144 pages of 100
    assert premium.granted == 144 and premium.refused == 0 and client.http.retries == 0
    burst = budget.requests * (1 - RESERVE_SHARE)
    assert clock.now == pytest.approx((premium.granted - burst) / budget.per_second)


@pytest.mark.parametrize("venue", VENUES)
def test_the_client_and_the_venue_count_the_same_units_in_every_bucket(venue):
    """Discovery, settled history and premium history: every unit the client pays is one the
    venue charges, bucket by bucket (Binance's klines in weight, OKX's premium pages in their
    own bucket, Hyperliquid's history by the rows it returns: 8-hourly in 2023, a fraction of
    what the window could hold)."""
    with SimServer(clock=SimClock(start=NOW, speed=0.0), limits=True) as server:
        client = client_for(venue, server.rest_url(venue), server.ws_url(venue))
        client.instruments()
        client.settled("BTC", EARLY, EARLY + 10 * DAY)
        client.premium_history("BTC", NOW - DAY, NOW)
        charged = {name: bucket.granted for name, bucket in server.buckets[venue].items()}
        refused = sum(bucket.refused for bucket in server.buckets[venue].values())
        client.close()
    paid = {name: limiter.spent for name, limiter in client.http.limiters.items()}
    assert set(charged) == set(SPECS[venue].budgets)
    assert paid == pytest.approx(charged) and refused == 0
    assert sum(charged.values()) > 0


def test_a_refusal_always_asks_for_a_wait():
    """A bucket a hair short of a unit still says how long to wait (at least 1 ms), never 0."""
    now = [0.0]
    with SimServer(
        clock=SimClock(start=NOW, speed=0.0),
        limits=True,
        limits_clock=lambda: now[0],
        budgets={"bybit": {"ip": Budget(1, 1.0)}},
    ) as server:
        url = server.rest_url("bybit") + "/v5/market/tickers"
        assert httpx.get(url, params={"category": "linear"}).status_code == 200
        now[0] = 1.0 - 1e-6
        refused = httpx.get(url, params={"category": "linear"})
    assert refused.status_code == 403
    assert float(refused.headers["Retry-After"]) == 0.001


# --- venues side by side ------------------------------------------------------------------


class MeetingSource:
    """A source whose binance history and bybit premium can only finish together."""

    name = "meeting"

    def __init__(self) -> None:
        self.meet = threading.Barrier(2, timeout=5)

    def fetch(self, venue, series, start, end):
        if venue == "binance":
            self.meet.wait()
        return venue

    def premium(self, venue, series, start, end):
        if venue == "bybit":
            self.meet.wait()
        return venue


def test_every_venue_history_and_premium_are_fetched_side_by_side():
    """One venue's premium pages never wait for another venue's history (each venue has its
    own budgets); results come back in the tasks' order."""
    day = dt.date(2025, 1, 1)
    settled = [(v, ["BTC"], day, day) for v in ("binance", "okx")]
    premium = [(v, ["BTC"], day, day) for v in ("bybit", "okx")]
    t0 = time.monotonic()
    assert fetch_all(MeetingSource(), settled, premium) == (["binance", "okx"], ["bybit", "okx"])
    assert time.monotonic() - t0 < 5
