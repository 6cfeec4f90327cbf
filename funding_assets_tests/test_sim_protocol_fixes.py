"""Protocol fixes of the simulator, each found by running an independent exchange client
against it: what the venue does, checked on the wire (loopback only)."""

import asyncio
import datetime as dt
import json

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from funding_assets.clients import client_for
from funding_assets.clients.deribit import history_windows
from funding_assets.clients.http import Budget, HttpClient
from funding_assets.sim.model import FundingModel
from funding_assets.sim.server import SimClock, SimServer

NOW = dt.datetime(2025, 6, 15, 2, 17, 31, 250_000)
HOUR_MS = 3_600_000
MS = dt.timedelta(milliseconds=1)
MODEL = FundingModel()


def ms(when: dt.datetime) -> int:
    return int(when.replace(tzinfo=dt.UTC).timestamp() * 1000)


@pytest.fixture(scope="module")
def server():
    with SimServer(clock=SimClock(start=NOW, speed=0.0), push_interval_s=0.05) as sim:
        yield sim


def get(server: SimServer, venue: str, path: str, **params) -> httpx.Response:
    return httpx.get(server.rest_url(venue) + path, params=params, timeout=60)


# --- Deribit ---------------------------------------------------------------------------------


def deribit(server: SimServer, method: str, **params) -> dict:
    return get(server, "deribit", f"/api/v2/public/{method}", **params).json()


def test_deribit_funding_rate_value_is_the_funding_accrued_over_the_period(server):
    start = dt.datetime(2025, 3, 3)
    end = start + dt.timedelta(days=3)
    history = deribit(
        server,
        "get_funding_rate_history",
        instrument_name="ETH-PERPETUAL",
        start_timestamp=ms(start),
        end_timestamp=ms(end),
    )["result"]
    hourly = {row["timestamp"]: row["interest_1h"] for row in history}
    whole = deribit(
        server,
        "get_funding_rate_value",
        instrument_name="ETH-PERPETUAL",
        start_timestamp=ms(start),
        end_timestamp=ms(end),
    )
    assert isinstance(whole["result"], float) and whole["result"] == pytest.approx(sum(hourly.values()), abs=1e-15)
    # funding accrues continuously: half an hour at each end counts half of that hour
    half = deribit(
        server,
        "get_funding_rate_value",
        instrument_name="ETH-PERPETUAL",
        start_timestamp=ms(start) + HOUR_MS // 2,
        end_timestamp=ms(end) - HOUR_MS // 2,
    )["result"]
    first, last = hourly[ms(start) + HOUR_MS], hourly[ms(end)]
    assert half == pytest.approx(sum(hourly.values()) - first / 2 - last / 2, abs=1e-15)
    unknown = get(server, "deribit", "/api/v2/public/get_funding_rate_value", instrument_name="NOSUCH-PERPETUAL")
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == 13020  # not_found


def test_deribit_history_over_a_long_range_keeps_the_hours_before_its_end(server):
    end = dt.datetime(2025, 5, 20)
    rows = deribit(
        server,
        "get_funding_rate_history",
        instrument_name="BTC-PERPETUAL",
        start_timestamp=ms(end - dt.timedelta(days=60)),
        end_timestamp=ms(end),
    )["result"]
    stamps = [row["timestamp"] for row in rows]
    truth = MODEL.settlements("deribit", "BTC", end - dt.timedelta(hours=743), end + MS)
    assert stamps[-1] == ms(end) and stamps == [ms(t) for t in truth["ts"]]
    assert stamps[0] > ms(end) - 744 * HOUR_MS


def test_deribit_client_windows_fit_the_venue_window_and_history_stays_complete(server):
    start, end = dt.datetime(2025, 1, 1), dt.datetime(2025, 4, 15)
    windows = history_windows(ms(start), ms(end))
    assert all(high - low <= 744 * HOUR_MS for low, high in windows)  # never truncated, whichever end is kept
    http = HttpClient("deribit", server.rest_url("deribit"), Budget(1e9, 1.0), backoff_s=0.01, timeout_s=10)
    client = client_for("deribit", server.rest_url("deribit"), server.ws_url("deribit"), http=http)
    got = client.settled("BTC", start, end)
    truth = MODEL.settlements("deribit", "BTC", start, end + MS)
    assert got["funding_time"].to_list() == truth["funding_time"].to_list()
    assert got["rate"].to_list() == truth["rate"].to_list()


# --- Bybit -----------------------------------------------------------------------------------


def test_bybit_history_clamps_a_limit_above_200(server):
    for limit in (201, 1000, 5000):
        answer = get(server, "bybit", "/v5/market/funding/history", category="linear", symbol="BTCUSDT", limit=limit)
        assert answer.json()["retCode"] == 0 and len(answer.json()["result"]["list"]) == 200


# --- Hyperliquid -----------------------------------------------------------------------------


@pytest.fixture
def idle_server():
    with SimServer(clock=SimClock(start=NOW, speed=0.0), push_interval_s=0.05) as sim:
        sim.sims["hyperliquid"].idle_timeout_s = 0.3
        yield sim


def test_hyperliquid_pushes_keep_a_connection_open_the_client_never_speaks_on(idle_server):
    async def run() -> int:
        async with connect(idle_server.ws_url("hyperliquid") + "/ws") as ws:
            subscribe = {"method": "subscribe", "subscription": {"type": "activeAssetCtx", "coin": "kPEPE"}}
            await ws.send(json.dumps(subscribe))
            loop = asyncio.get_running_loop()
            deadline, frames = loop.time() + 1.2, 0  # four idle timeouts, no client message
            while loop.time() < deadline:
                message = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
                frames += message["channel"] == "activeAssetCtx"
            return frames

    assert asyncio.run(run()) >= 10


def test_hyperliquid_closes_a_connection_it_has_sent_nothing_on(idle_server):
    async def run() -> float:
        async with connect(idle_server.ws_url("hyperliquid") + "/ws") as ws:
            loop = asyncio.get_running_loop()
            opened = loop.time()
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 2.0)
            return loop.time() - opened

    assert 0.25 <= asyncio.run(run()) < 1.0


# --- Binance ---------------------------------------------------------------------------------


def test_binance_premium_index_time_is_in_milliseconds(server):
    one = get(server, "binance", "/fapi/v1/premiumIndex", symbol="BTCUSDT").json()
    coin_m = get(server, "binance", "/dapi/v1/premiumIndex", symbol="BTCUSD_PERP").json()
    assert one["time"] == ms(NOW) == 1749953851250 and coin_m[0]["time"] == ms(NOW)


@pytest.mark.parametrize("family", ["/fapi/v1", "/dapi/v1"])
def test_binance_funding_info_lists_adjusted_caps_of_8h_symbols_too(server, family):
    info = get(server, "binance", f"{family}/fundingInfo").json()
    eight_hourly = [r for r in info if r["fundingIntervalHours"] == 8]
    assert eight_hourly and all(r["adjustedFundingRateCap"] != "0.00375000" for r in eight_hourly)
    assert all(r["adjustedFundingRateFloor"] == "-" + r["adjustedFundingRateCap"] for r in info)
    assert {
        "symbol",
        "adjustedFundingRateCap",
        "adjustedFundingRateFloor",
        "fundingIntervalHours",
        "disclaimer",
    } <= set(info[0])
