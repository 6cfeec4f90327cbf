"""Two years of every venue through the real clients and the simulator: exactly the model's
settlements, with no gap, no duplicate and the right intervals, with and without faults."""

import datetime as dt

import polars as pl
import pytest

from funding_assets.clients import Budget, HttpClient, client_for
from funding_assets.sim import FundingModel
from funding_assets.sim.server import Faults, SimClock
from funding_assets.venues import VENUES

START, END = dt.datetime(2024, 1, 1), dt.datetime(2026, 1, 1)
NOW = dt.datetime(2026, 1, 2)
COINS = ("BTC", "ETH")
COLUMNS = ["symbol", "ts", "funding_time", "rate", "interval_hours", "kind"]
FAULTY = Faults(
    seed=5, error_rate=0.15, drop_rate=0.03, malformed_rate=0.03, stall_rate=0.005, stall_s=1.2, retry_after_s=0.0
)


def fast_client(venue, server):
    """A client with the simulator's budget lifted and quick retries, so faults cost little time."""
    http = HttpClient(
        venue,
        server.rest_url(venue),
        Budget(1e9, 1),
        timeout_s=1.0,
        backoff_s=0.002,
        backoff_cap_s=0.02,
        max_attempts=40,
    )
    return client_for(venue, server.rest_url(venue), server.ws_url(venue), http=http)


@pytest.mark.parametrize("faults", [Faults(), FAULTY], ids=["clean", "faults"])
def test_two_years_of_all_venues_come_back_exactly(simulator, faults):
    server = simulator(clock=SimClock(NOW), faults=faults)
    model = FundingModel()
    retries = 0
    for venue in VENUES:
        client = fast_client(venue, server)
        for coin in COINS:
            got = client.settled(coin, START, END - dt.timedelta(milliseconds=1))
            want = model.settlements(venue, coin, START, END)
            assert got.select(COLUMNS).equals(want.select(COLUMNS)), f"{venue} {coin}"
            assert got["source"].unique().to_list() == [f"{venue} REST"]
        retries += client.http.retries
        client.close()
    if faults.error_rate:
        assert retries > 20  # the faults really happened, and the clients rode them out


def test_settlements_the_venue_never_reported_stay_missing_and_nothing_else_does(simulator):
    model = FundingModel()
    start, end = dt.datetime(2025, 3, 1), dt.datetime(2025, 3, 20)
    gone = {venue: model.settlements(venue, "BTC", start, end)["funding_time"].to_list()[5:7] for venue in VENUES}
    missing = frozenset((venue, "BTC", t) for venue, times in gone.items() for t in times)
    server = simulator(clock=SimClock(NOW), faults=Faults(missing=missing))
    for venue in VENUES:
        got = fast_client(venue, server).settled("BTC", start, end - dt.timedelta(milliseconds=1))
        want = model.settlements(venue, "BTC", start, end).filter(~pl.col("funding_time").is_in(gone[venue]))
        assert got.select(COLUMNS).equals(want.select(COLUMNS)), venue
