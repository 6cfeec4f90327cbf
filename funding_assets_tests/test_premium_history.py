"""Premium-index history: the simulator serves it from the model that settles, the clients page
through it in each venue's direction, and each venue's formula turns a settled window's
samples into exactly its settled rate (VENUES.md 1.5, 2.1, 3.1, 4.1-4.2).

Sample instants (``ts``, the instant a sample is known): Binance ``openTime`` + 1 min,
Bybit ``startTime`` + 1 min, OKX ``ts`` floored to the minute, Hyperliquid the settlement
hour. A window ``(funding_time - interval_hours, funding_time]`` owns the samples known
inside it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

import httpx
import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funding_assets.clients import PREMIUM_SCHEMA, Budget, HttpClient, VenueClient, client_for
from funding_assets.premium import formula
from funding_assets.sim import FundingModel
from funding_assets.sim import model as sim_model
from funding_assets.sim import universe as sim_universe
from funding_assets.sim.server import SimClock, SimServer
from funding_assets.sources.venues import UNLIMITED, ClientSource
from funding_assets.venues import RATE_CAPS

#: The simulator's frozen now.
NOW = dt.datetime(2025, 6, 15, 2, 17, 30)
MODEL = FundingModel()
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
MS = dt.timedelta(milliseconds=1)
UNIX = dt.datetime(1970, 1, 1)
PER_MINUTE = ("binance", "bybit", "okx")
PUBLISHING = (*PER_MINUTE, "hyperliquid")


def epoch(when: dt.datetime) -> int:
    return (when - UNIX) // MS


def fast_client(server: SimServer, venue: str) -> VenueClient:
    """A client with the venue budget lifted: these tests are about content, not pacing."""
    http = HttpClient(venue, server.rest_url(venue), Budget(1e9, 1.0), backoff_s=0.01, timeout_s=5)
    return client_for(venue, server.rest_url(venue), server.ws_url(venue), http=http)


@pytest.fixture(scope="module")
def server():
    with SimServer(clock=SimClock(start=NOW, speed=0.0)) as sim:
        yield sim


@pytest.fixture(scope="module")
def clients(server):
    made = {venue: fast_client(server, venue) for venue in (*PUBLISHING, "deribit")}
    yield made
    for client in made.values():
        client.close()


def episode(venue: str, coin: str) -> tuple[dt.datetime, dt.datetime]:
    """From half a day before the model's first shortened-interval episode after 2024-06 to
    half a day after it ends (Hyperliquid: around its 8 h -> 1 h switch of 2023-06-08)."""
    if venue == "hyperliquid":
        return dt.datetime(2023, 6, 6), dt.datetime(2023, 6, 10)
    prints = MODEL.settlements(venue, coin, dt.datetime(2024, 6, 1), dt.datetime(2025, 6, 1))
    changes = prints.filter(pl.col("interval_hours").diff() != 0)["funding_time"]
    return changes[0] - 12 * HOUR, changes[1] + 12 * HOUR


def window_samples(samples: pl.DataFrame, settled: pl.DataFrame) -> list[tuple[dict, np.ndarray]]:
    """Each settled window with the premiums of the samples known inside it, oldest first."""
    ts = samples["ts"].dt.epoch("ms").to_numpy()
    premium = samples["premium"].to_numpy()
    out = []
    for row in settled.iter_rows(named=True):
        end = epoch(row["funding_time"])
        start = end - round(row["interval_hours"] * 3_600_000)
        lo, hi = np.searchsorted(ts, [start, end], side="right")
        out.append((row, premium[lo:hi]))
    return out


def assert_rates_rebuild(venue: str, settled: pl.DataFrame, samples: pl.DataFrame, cap: float | None = None) -> None:
    """Every settled window: a full set of samples whose formula (with the instrument's
    ``cap`` when given) is exactly the settled rate."""
    assert settled.height
    form = formula(venue) if cap is None else dataclasses.replace(formula(venue), cap=cap)
    for row, premiums in window_samples(samples, settled):
        expected = 1 if venue == "hyperliquid" else round(row["interval_hours"] * 60)
        assert premiums.size == expected, row
        assert form.rate(premiums, row["interval_hours"]) == row["rate"], row


def assert_complete(samples: pl.DataFrame, start: dt.datetime, end: dt.datetime, step: dt.timedelta) -> None:
    """Every step in (start, end], once, in order."""
    assert samples.schema == pl.Schema(PREMIUM_SCHEMA)
    expected = pl.datetime_range(start + step, end, step, time_unit="ms", eager=True)
    assert samples["ts"].to_list() == expected.to_list()


# --- paging: complete in each venue's direction ------------------------------------------


@pytest.mark.parametrize(
    ("venue", "pages"),
    [("binance", 3), ("bybit", 5), ("okx", 44)],  # 4320 samples over 1500 / 1000 / 100 a page
)
def test_per_minute_history_pages_through_three_days_without_gaps_or_duplicates(clients, server, venue, pages):
    start, end = dt.datetime(2025, 5, 1), dt.datetime(2025, 5, 4)
    client = clients[venue]
    before = server.requests[venue]
    samples = client.premium_history("ETH", start, end)
    assert_complete(samples, start, end, MINUTE)
    assert samples["venue"].unique().to_list() == [venue] and samples["symbol"].unique().to_list() == ["ETH"]
    assert server.requests[venue] - before == pages


def test_hyperliquid_history_pages_through_25_days_one_sample_per_settlement(clients, server):
    start, end = dt.datetime(2025, 4, 1), dt.datetime(2025, 4, 26)  # 600 hours: two pages of 500
    client = clients["hyperliquid"]
    before = server.requests["hyperliquid"]
    samples = client.premium_history("BTC", start, end)
    settled = client.settled("BTC", start + MS, end)
    assert samples.schema == pl.Schema(PREMIUM_SCHEMA) and samples["ts"].is_sorted() and samples["ts"].is_unique().all()
    assert samples["ts"].to_list() == settled["funding_time"].to_list()  # the model's rare missing hours too
    assert samples.height > 500 and server.requests["hyperliquid"] - before == 4  # 2 pages for each call


def test_deribit_publishes_no_premium_history(clients, server):
    before = server.requests["deribit"]
    samples = clients["deribit"].premium_history("BTC", dt.datetime(2025, 5, 1), dt.datetime(2025, 5, 2))
    assert samples.is_empty() and samples.schema == pl.Schema(PREMIUM_SCHEMA)
    assert server.requests["deribit"] == before


def test_the_future_and_a_range_before_the_model_are_empty(clients):
    for venue in PUBLISHING:
        late = clients[venue].premium_history("BTC", NOW, NOW + DAY)
        early = clients[venue].premium_history("BTC", dt.datetime(2019, 12, 30), dt.datetime(2020, 1, 1))
        assert late.is_empty() and early.is_empty(), venue


# --- values: the model's, as decimal fractions ----------------------------------------------


@pytest.mark.parametrize("venue", PER_MINUTE)
def test_samples_are_the_models_decimal_fractions_at_the_end_of_their_minute(clients, venue):
    start, end = dt.datetime(2025, 5, 10, 6), dt.datetime(2025, 5, 10, 18)
    samples = clients[venue].premium_history("SOL", start, end)
    model = MODEL.premium_minutes(venue, "SOL", start, end)  # ts = the minute's start
    assert samples["ts"].to_list() == (model["ts"] + MINUTE).to_list()
    assert samples["premium"].to_list() == model["premium"].to_list()
    typical = samples["premium"].abs().median()
    assert 1e-6 < typical < 1e-2  # a few basis points: a fraction, not a percent


def test_hyperliquid_premium_is_the_windows_published_average(clients):
    start, end = dt.datetime(2025, 5, 10), dt.datetime(2025, 5, 12)
    samples = clients["hyperliquid"].premium_history("ETH", start, end)
    model = MODEL.window_premiums("hyperliquid", "ETH", start + MS, end + MS)
    assert (
        samples.join(model, left_on="ts", right_on="funding_time")
        .select((pl.col("premium") == pl.col("premium_right")).all())
        .item()
    )
    assert samples.height >= model.height - 2  # the model drops a settlement now and then


# --- by construction: the formula over a window's samples is its settled rate --------------


@pytest.mark.parametrize("venue", PUBLISHING)
@pytest.mark.parametrize("coin", ["BTC", "SOL"])
def test_settled_rates_follow_from_the_window_samples_across_an_interval_change(clients, venue, coin):
    start, end = episode(venue, coin)
    client = clients[venue]
    settled = client.settled(coin, start + 8 * HOUR, end)
    assert settled["interval_hours"].n_unique() > 1  # the windows change length in the range
    assert_rates_rebuild(venue, settled, client.premium_history(coin, start, end))


#: An alt's squeeze to its own cap (1 % per interval, wider than the venue's BTC cap) on each venue.
CAPPED = {
    "binance": ("ID", dt.datetime(2025, 2, 1, 8)),
    "bybit": ("WOO", dt.datetime(2024, 4, 14, 16)),
    "okx": ("EGLD", dt.datetime(2020, 12, 3, 13)),
}


@pytest.mark.parametrize("venue", PER_MINUTE)
def test_capped_windows_follow_from_their_samples_too(clients, venue):
    coin, first_capped = CAPPED[venue]
    inst = sim_universe.find(venue, coin, "usdt")
    start, end = first_capped - 16 * HOUR, first_capped + 16 * HOUR
    client = clients[venue]
    settled = client.settled(inst, start + 8 * HOUR, end)
    assert (settled["rate"].abs() == inst.rate_cap).sum() >= 2 and inst.rate_cap > RATE_CAPS[venue]
    assert_rates_rebuild(venue, settled, client.premium_history(inst, start, end), cap=inst.rate_cap)


def test_every_window_of_half_a_year_follows_from_the_models_samples():
    """The model alone, every window of every coin, 1/4/8 h windows and caps included."""
    start, end = dt.datetime(2024, 7, 1), dt.datetime(2025, 1, 1)
    for venue in PER_MINUTE:
        for coin in ("BTC", "ETH", "SOL"):
            samples = MODEL.premium_minutes(venue, coin, start - 8 * HOUR, end).with_columns(pl.col("ts") + MINUTE)
            assert_rates_rebuild(venue, MODEL.settlements(venue, coin, start, end), samples)


# --- the model's samples: lazy, deterministic, plausible ------------------------------------


def test_samples_are_generated_per_window_and_the_same_whatever_the_request():
    sim_model._window_samples.cache_clear()
    one = MODEL.premium_minutes("okx", "ETH", dt.datetime(2038, 3, 1, 5, 7), dt.datetime(2038, 3, 1, 5, 8))
    assert one.height == 1 and sim_model._window_samples.cache_info().currsize == 1  # one window, not years
    wide = MODEL.premium_minutes("okx", "ETH", dt.datetime(2038, 2, 27), dt.datetime(2038, 3, 2))
    sim_model._window_samples.cache_clear()
    again = FundingModel(7).premium_minutes("okx", "ETH", dt.datetime(2038, 3, 1, 5), dt.datetime(2038, 3, 1, 6))
    assert wide.join(one, on="ts")["premium_right"].to_list() == one["premium"].to_list()
    assert wide.join(again, on="ts").select((pl.col("premium") == pl.col("premium_right")).all()).item()
    assert (
        FundingModel(8)
        .premium_minutes("okx", "ETH", dt.datetime(2038, 3, 1, 5), dt.datetime(2038, 3, 1, 6))["premium"]
        .to_list()
        != again["premium"].to_list()
    )


@pytest.mark.parametrize("venue", PER_MINUTE)
def test_samples_wander_around_the_hourly_path_on_the_venues_grid(venue):
    start, end = dt.datetime(2025, 3, 1), dt.datetime(2025, 3, 8)
    samples = MODEL.premium_minutes(venue, "BTC", start, end)["premium"].to_numpy()
    hourly = MODEL.premium(venue, "BTC", start, end)["premium"].to_numpy()
    steps = np.abs(np.diff(samples))
    assert (samples.reshape(-1, 60).std(axis=1) > 0).all()  # every hour moves: no constant windows
    assert np.median(steps) < 2e-5 and steps.max() < 5e-4  # a walk, not white noise
    assert np.abs(samples.reshape(-1, 60).mean(axis=1) - hourly).max() < 3e-4  # around the model's path
    scale = 10 ** sim_model.MINUTE_DECIMALS[venue]
    assert np.array_equal(np.round(samples * scale) / scale, samples)


# --- the wire: each venue's shapes, order, bounds and limits --------------------------------


def get(server: SimServer, venue: str, path: str, **params) -> httpx.Response:
    return httpx.get(server.rest_url(venue) + path, params=params, timeout=5)


def test_binance_premium_index_klines_wire(server):
    path = "/fapi/v1/premiumIndexKlines"
    start = epoch(dt.datetime(2025, 5, 1))
    rows = get(server, "binance", path, symbol="BTCUSDT", interval="1m", startTime=start).json()
    assert len(rows) == 500 and [r[0] for r in rows] == [start + 60_000 * i for i in range(500)]  # default 500, asc
    row = rows[0]
    assert len(row) == 12 and isinstance(row[0], int) and isinstance(row[6], int) and row[6] == row[0] + 59_999
    assert all(isinstance(v, str) and len(v.split(".")[1]) == 8 for v in row[1:5]) and row[1] == row[4]
    assert row[5] == row[7] == row[9] == row[10] == row[11] == "0" and row[8] == 12
    assert (
        len(get(server, "binance", path, symbol="BTCUSDT", interval="1m", startTime=start, limit=5000).json()) == 1500
    )
    both = get(server, "binance", path, symbol="BTCUSDT", interval="1m", startTime=start + 1, endTime=start + 180_000)
    assert [r[0] for r in both.json()] == [start + 60_000, start + 120_000, start + 180_000]  # inclusive on openTime
    latest = get(server, "binance", path, symbol="BTCUSDT", interval="1m", limit=2).json()
    assert [r[0] for r in latest] == [epoch(NOW) // 60_000 * 60_000 - 120_000, epoch(NOW) // 60_000 * 60_000 - 60_000]
    five = get(server, "binance", path, symbol="BTCUSDT", interval="5m", startTime=start, limit=1).json()[0]
    ones = rows[:5]
    highs, lows = [r[2] for r in ones], [r[3] for r in ones]
    assert five[1:5] == [ones[0][1], max(highs, key=float), min(lows, key=float), ones[-1][4]]
    assert five[6] == start + 300_000 - 1 and five[8] == 60
    for params, code in [
        ({"interval": "1m"}, -1102),
        ({"symbol": "BTCUSDT"}, -1102),
        ({"symbol": "BTCUSDT", "interval": "7m"}, -1120),
        ({"symbol": "NOSUCHUSDT", "interval": "1m"}, -1121),
    ]:
        response = get(server, "binance", path, **params)
        assert response.status_code == 400 and response.json()["code"] == code, params


def test_binance_kline_weight_follows_the_limit(server):
    from funding_assets.sim.server import Request

    sim = server.sims["binance"]
    for limit, weight in [(None, 5), (50, 1), (100, 2), (999, 5), (1000, 5), (1001, 10), (1500, 10)]:
        query = {"symbol": "BTCUSDT", "interval": "1m", **({"limit": str(limit)} if limit else {})}
        request = Request("GET", "/fapi/v1/premiumIndexKlines", query, b"")
        assert sim.cost(request) == weight and sim.bucket(request) == "weight"


def test_bybit_premium_index_price_kline_wire(server):
    path = "/v5/market/premium-index-price-kline"
    end = epoch(dt.datetime(2025, 5, 2))
    body = get(server, "bybit", path, category="linear", symbol="BTCUSDT", interval="1", end=end).json()
    assert body["retCode"] == 0 and body["result"]["symbol"] == "BTCUSDT" and body["result"]["category"] == "linear"
    rows = body["result"]["list"]
    assert len(rows) == 200 and [int(r[0]) for r in rows] == [end - 60_000 * i for i in range(200)]  # newest first
    assert all(isinstance(v, str) for r in rows for v in r) and all(len(r) == 5 and r[1] == r[4] for r in rows)
    assert all(len(v.split(".")[1]) == 6 for v in rows[0][1:])
    newest_in = get(server, "bybit", path, symbol="BTCUSDT", interval="1", start=end - 600_000, end=end, limit=3)
    assert [int(r[0]) for r in newest_in.json()["result"]["list"]] == [end, end - 60_000, end - 120_000]
    hour = get(server, "bybit", path, symbol="BTCUSDT", interval="60", start=end - 3_600_000, end=end - 3_600_000)
    (candle,) = hour.json()["result"]["list"]
    minutes = [r for r in rows if end - 3_600_000 <= int(r[0]) < end][::-1]
    assert candle[1:] == [
        minutes[0][1],
        max(minutes, key=lambda r: float(r[2]))[2],
        min(minutes, key=lambda r: float(r[3]))[3],
        minutes[-1][4],
    ]
    for params in ({"symbol": "BTCUSDT", "interval": "1", "limit": 1001}, {"symbol": "BTCUSDT", "interval": "2"}):
        refused = get(server, "bybit", path, **params)
        assert refused.status_code == 200 and refused.json()["retCode"] == 10001, params


def test_okx_premium_history_wire(server):
    path = "/api/v5/public/premium-history"
    body = get(server, "okx", path, instId="BTC-USDT-SWAP").json()
    rows = body["data"]
    assert body["code"] == "0" and len(rows) == 100  # default and maximum 100
    assert all(set(r) == {"instId", "premium", "ts"} and all(isinstance(v, str) for v in r.values()) for r in rows)
    stamps = [int(r["ts"]) for r in rows]
    assert stamps == sorted(stamps, reverse=True) and stamps[0] <= epoch(NOW)  # newest first, generated by now
    assert all(0 <= s % 60_000 < 10_000 for s in stamps) and len({s // 60_000 for s in stamps}) == 100
    assert all(len(r["premium"].split(".")[1]) == 16 for r in rows)
    older = get(server, "okx", path, instId="BTC-USDT-SWAP", after=stamps[2], limit=2).json()["data"]
    assert [int(r["ts"]) for r in older] == stamps[3:5]  # `after` is exclusive
    between = get(server, "okx", path, instId="BTC-USDT-SWAP", after=stamps[2], before=stamps[6]).json()["data"]
    assert [int(r["ts"]) for r in between] == stamps[3:6]  # `before` is exclusive too
    assert len(get(server, "okx", path, instId="BTC-USDT-SWAP", limit=500).json()["data"]) == 100
    refused = get(server, "okx", path, instId="NOSUCH-USDT-SWAP")
    assert refused.status_code == 400 and refused.json()["code"] == "51001"


# --- properties: any sub-range is the slice of a big request --------------------------------

BIG = {venue: (dt.datetime(2025, 5, 20), dt.datetime(2025, 5, 21)) for venue in PER_MINUTE} | {
    "hyperliquid": (dt.datetime(2025, 4, 1), dt.datetime(2025, 5, 1))
}
_big_answers: dict[str, pl.DataFrame] = {}


@pytest.mark.parametrize("venue", PUBLISHING)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_sub_range_is_exactly_the_slice_of_a_big_request(clients, venue, data):
    lo, hi = BIG[venue]
    if venue not in _big_answers:
        _big_answers[venue] = clients[venue].premium_history("BTC", lo, hi)
    span_ms = epoch(hi) - epoch(lo)
    a = data.draw(st.integers(0, span_ms), label="start offset ms")
    b = data.draw(st.integers(a, span_ms), label="end offset ms")
    start, end = lo + a * MS, lo + b * MS
    sub = clients[venue].premium_history("BTC", start, end)
    expected = _big_answers[venue].filter((pl.col("ts") > start) & (pl.col("ts") <= end))
    assert sub.equals(expected)


# --- the venues' budgets: paging is never refused -------------------------------------------


@pytest.mark.parametrize(
    ("venue", "days"),
    [("binance", 3), ("bybit", 3), ("okx", 3), ("hyperliquid", 25)],
)
def test_paging_with_the_venue_budget_is_never_refused_by_the_limited_simulator(simulator, venue, days):
    server = simulator(clock=SimClock(start=NOW, speed=0.0), limits=True)
    client = client_for(venue, server.rest_url(venue), server.ws_url(venue))  # the venue's own budget
    start = dt.datetime(2025, 5, 1)
    samples = client.premium_history("BTC", start, start + days * DAY)
    assert samples.height > 500
    assert client.http.retries == 0  # no 429/403 along the way
    if venue == "okx":  # 44 pages at 20 / 2 s: the client paced itself instead of being refused
        assert client.http.limiter_of("premium").waited_s > 1.0
    client.close()


class ManualClock:
    """Monotonic seconds that stand still: a bucket that never refills."""

    def __call__(self) -> float:
        return 0.0


def test_okx_premium_history_has_its_own_rate_twice_funding_history(simulator):
    server = simulator(clock=SimClock(start=NOW, speed=0.0), limits=True, limits_clock=ManualClock())
    path = "/api/v5/public/premium-history"
    statuses = [get(server, "okx", path, instId="BTC-USDT-SWAP").status_code for _ in range(21)]
    assert statuses == [200] * 20 + [429]  # 20 requests per 2 s against funding history's 10


# --- the source: whole days ------------------------------------------------------------------


def test_source_premium_holds_every_window_settling_on_the_days(server):
    urls = {venue: (server.rest_url(venue), server.ws_url(venue)) for venue in server.sims}
    source = ClientSource("sim", urls, budget=UNLIMITED)
    day = dt.date(2025, 5, 10)
    lo, hi = dt.datetime(2025, 5, 10), dt.datetime(2025, 5, 12)
    binance = source.premium("binance", ("BTC", "ETH"), day, day + dt.timedelta(days=1))
    assert binance.schema == pl.Schema(PREMIUM_SCHEMA)
    assert binance["symbol"].unique(maintain_order=True).to_list() == ["BTC", "ETH"]
    for coin in ("BTC", "ETH"):
        times = binance.filter(symbol=coin)["ts"].to_list()
        # from the start of the window settling at the first 00:00 to just before the last 00:00
        assert times == pl.datetime_range(lo - 8 * HOUR + MINUTE, hi, MINUTE, closed="left", eager=True).to_list()
        settled = MODEL.settlements("binance", coin, lo, hi)
        assert_rates_rebuild("binance", settled, binance.filter(symbol=coin))
    hyperliquid = source.premium("hyperliquid", ("BTC",), day, day)
    assert hyperliquid["ts"].min() > lo - 8 * HOUR and hyperliquid["ts"].max() < lo + DAY
    assert_rates_rebuild("hyperliquid", MODEL.settlements("hyperliquid", "BTC", lo, lo + DAY), hyperliquid)
    assert source.premium("deribit", ("BTC",), day, day).is_empty()


# --- timing (informative) ----------------------------------------------------------------------


def test_a_day_of_minutes_comes_back_quickly(clients):
    started = time.perf_counter()
    clients["binance"].premium_history("ETH", dt.datetime(2025, 2, 1), dt.datetime(2025, 2, 2))
    assert time.perf_counter() - started < 5.0
