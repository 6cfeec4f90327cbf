"""Binance USD-M: fixture parsing, client <-> simulator round trips, faults and limits."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import httpx
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from funding_assets.clients import HttpClient, binance, client_for, instruments_of, settled_rows
from funding_assets.clients.http import Budget
from funding_assets.sim import FundingModel
from funding_assets.sim import venues as sim_venues
from funding_assets.sim.server import Faults, SimClock, SimServer
from funding_assets.sim.venues.binance import Sim

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "fixtures"
needs_shared = pytest.mark.skipif(not FIXTURES.is_dir(), reason="../shared/fixtures is absent")

#: The simulator's frozen now: inside BTC's 1 h episode (2025-01-13 09:00 .. 01-17 08:00),
#: ETH and SOL at 8 h.
NOW = dt.datetime(2025, 1, 15, 13, 27, 45, 123000)
MODEL = FundingModel()
COMPARED = ["symbol", "venue_symbol", "ts", "funding_time", "rate", "interval_hours", "kind"]
UNIX = dt.datetime(1970, 1, 1)


def load(relative: str):
    return json.loads((FIXTURES / relative).read_text())


def ms(when: dt.datetime) -> int:
    return (when - UNIX) // dt.timedelta(milliseconds=1)


def at_ms(value: int) -> dt.datetime:
    return UNIX + dt.timedelta(milliseconds=value)


def make_client(server: SimServer, budget: Budget | dict = binance.SPEC.budgets) -> binance.Client:
    http = HttpClient("binance", server.rest_url("binance"), budget, backoff_s=0.01, timeout_s=2)
    return client_for("binance", server.rest_url("binance"), server.ws_url("binance"), http=http)


def expected(coin: str, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """The model's settlements with funding_time in [start, end] (the client's bounds)."""
    return MODEL.settlements("binance", coin, start, end + dt.timedelta(milliseconds=1)).select(COMPARED)


def stream_frames(client: binance.Client, coins, count: int, **kwargs) -> list[pl.DataFrame]:
    async def collect():
        frames = []
        async for frame in client.stream(coins, **kwargs):
            frames.append(frame)
            if len(frames) == count:
                return frames

    return asyncio.run(asyncio.wait_for(collect(), 10))


@pytest.fixture(scope="module")
def server():
    with SimServer(clock=SimClock(start=NOW, speed=0.0), push_interval_s=0.02) as sim:
        yield sim


@pytest.fixture
def client(server):
    c = make_client(server)
    yield c
    c.close()


# --- fixtures of the real venue -------------------------------------------------------------


@needs_shared
def test_fixture_funding_rate_history_parses_jittered_rows():
    payload = load("binance/binance_fundingRate_BTCUSDT_limit2_2026-09-15_livenote.json")
    points = binance.parse_funding_history(payload, "BTCUSDT")
    assert points == [(1789430400000, 0.00003563), (1789459200005, 0.00006188)]
    rows = settled_rows("BTC", points, 8.0)
    assert [(r["ts_ms"], r["funding_time_ms"], r["interval_hours"], r["kind"]) for r in rows] == [
        (1789430400000, 1789430400000, 8.0, "realised"),
        (1789459200005, 1789459200000, 8.0, "realised"),  # 08:00:00.005 snapped to 08:00
    ]


@needs_shared
def test_fixture_funding_info_intervals():
    payload = load("binance/binance_fundingInfo_excerpt_2026-09-15_livenote.json")
    assert binance.parse_funding_info(payload) == {"GTCUSDT": 8.0, "LPTUSDT": 4.0, "BTCUSDT": 8.0}


@needs_shared
def test_fixture_premium_index_all_symbols():
    payload = load("binance/binance_premiumIndex_all_2024-11-27_BitVigil.json")
    quotes = {q["symbol"]: q for q in binance.parse_premium_index(payload, {})}
    assert len(payload) == 379 and len(quotes) == 375  # 4 delivery rows with nextFundingTime 0
    assert not {"BTCUSDT_241227", "BTCUSDT_250328", "ETHUSDT_241227", "ETHUSDT_250328"} & quotes.keys()
    assert quotes["BTCUSDT"] == {
        "symbol": "BTCUSDT",
        "ts_ms": 1732715655000,
        "funding_time_ms": 1732723200000,
        "rate": 0.00013062,
        "interval_hours": 8.0,
        "kind": "predicted",
    }
    assert quotes["ETHUSDT"]["rate"] == 0.00019922
    assert quotes["UXLINKUSDT"]["rate"] == 0.00005 and quotes["UXLINKUSDT"]["interval_hours"] == 4.0
    assert quotes["NEIROETHUSDT"]["rate"] == 0.00026888 and quotes["NEIROETHUSDT"]["interval_hours"] == 4.0
    hours = [q["interval_hours"] for q in quotes.values()]
    assert (hours.count(4.0), hours.count(8.0)) == (166, 209)  # interestRate 0.00005 marks 4 h
    # fundingInfo, when it lists a symbol, wins over the interestRate hint
    listed = binance.parse_premium_index(payload, {"UXLINKUSDT": 1.0})
    assert next(q for q in listed if q["symbol"] == "UXLINKUSDT")["interval_hours"] == 1.0


@needs_shared
def test_fixture_premium_index_to_prints():
    payload = load("binance/binance_premiumIndex_all_2024-11-27_BitVigil.json")
    wanted = instruments_of("binance", ["BTC", "ETH", "SOL"])
    frame = binance.quote_prints(binance.parse_premium_index(payload, {}), wanted, "binance REST")
    assert frame.select("symbol", "contract", "venue_symbol", "rate", "interval_hours", "kind").rows() == [
        ("BTC", "usdt", "BTCUSDT", 0.00013062, 8.0, "predicted"),
        ("ETH", "usdt", "ETHUSDT", 0.00019922, 8.0, "predicted"),
        ("SOL", "usdt", "SOLUSDT", 0.0001, 8.0, "predicted"),
    ]
    assert frame["funding_time"].unique().to_list() == [dt.datetime(2024, 11, 27, 16)]
    assert frame["ts"].unique().to_list() == [dt.datetime(2024, 11, 27, 13, 54, 15)]


@needs_shared
def test_fixture_premium_index_single_symbol():
    payload = load("binance/binance_premiumIndex_BTCUSDT_2026-09-15_livenote.json")
    assert binance.parse_premium_index(payload, {}) == [
        {
            "symbol": "BTCUSDT",
            "ts_ms": 1789478303000,
            "funding_time_ms": 1789488000000,
            "rate": 0.00008972,
            "interval_hours": 8.0,
            "kind": "predicted",
        }
    ]


@needs_shared
@pytest.mark.parametrize(
    ("name", "ts_ms", "funding_ms", "rate"),
    [
        ("binance_ws_markPrice_btcusdt_combined_frame_with_ap.json", 1791044809001, 1791072000000, -0.00005353),
        ("binance_ws_markPrice_btcusdt_combined_frame_2026-02-16.json", 1771263510000, 1771286400000, -0.00004435),
        ("binance_ws_markPrice_docs_example_via_nautilus.json", 1562305380000, 1562306400000, 0.00038167),
    ],
)
def test_fixture_ws_mark_price_frames(name, ts_ms, funding_ms, rate):
    text = (FIXTURES / "ws" / name).read_text()
    assert binance.parse_mark_price(text, {"BTCUSDT": 4.0}) == [
        {
            "symbol": "BTCUSDT",
            "ts_ms": ts_ms,
            "funding_time_ms": funding_ms,
            "rate": rate,
            "interval_hours": 4.0,
            "kind": "predicted",
        }
    ]
    assert binance.parse_mark_price(text, {})[0]["interval_hours"] == 8.0  # not in fundingInfo: 8 h


def test_mark_price_junk_and_non_funding_frames():
    assert binance.parse_mark_price("\x00not json", {}) is None
    assert (
        binance.parse_mark_price('{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","s":"BTC', {}) is None
    )
    assert binance.parse_mark_price('{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","T":2}', {}) is None  # no r
    assert binance.parse_mark_price('{"result":null,"id":1}', {}) == []
    delivery = '{"e":"markPriceUpdate","E":1,"s":"BTCUSDT_250328","r":"","T":0}'
    assert binance.parse_mark_price(delivery, {}) == []


# --- round trips against the simulator --------------------------------------------------------


@pytest.mark.parametrize(
    ("coin", "start", "end"),
    [
        # 7.5 months, two pages: two 1 h episodes, a 24 h gap, ends inside the open 1 h episode
        ("BTC", dt.datetime(2024, 6, 1), NOW),
        # a 4 h episode and a 32 h gap (three missing settlements)
        ("ETH", dt.datetime(2024, 3, 1), dt.datetime(2024, 6, 1)),
        # a 4 h episode, a 24 h and a 16 h gap
        ("SOL", dt.datetime(2024, 1, 20), dt.datetime(2024, 6, 1)),
        # starts right after a gap / inside a 1 h episode / ends inside a 4 h episode
        ("BTC", dt.datetime(2024, 10, 29, 10), dt.datetime(2024, 11, 2)),
        ("BTC", dt.datetime(2024, 8, 19, 10, 30), dt.datetime(2024, 8, 20)),
        ("ETH", dt.datetime(2024, 3, 8), dt.datetime(2024, 3, 9, 6)),
        # the first row is an episode's last 1 h settlement: only the row before tells
        ("BTC", dt.datetime(2024, 8, 23, 7, 30), dt.datetime(2024, 8, 25)),
    ],
)
def test_settled_equals_model(client, coin, start, end):
    got = client.settled(coin, start, end)
    assert_frame_equal(got.select(COMPARED), expected(coin, start, end))
    assert got["source"].unique().to_list() == ["binance REST"]
    assert got["funding_time"].is_unique().all()


def test_settled_multi_page_range_is_complete(client, server):
    before = server.requests["binance"]
    got = client.settled("BTC", dt.datetime(2024, 3, 1), NOW)
    assert got.height > binance.PAGE_LIMIT
    assert_frame_equal(got.select(COMPARED), expected("BTC", dt.datetime(2024, 3, 1), NOW))
    assert server.requests["binance"] - before == 2


@pytest.mark.parametrize(
    ("rows", "upper", "requests"),
    [
        (999, "on", 1),
        (1000, "on", 1),  # the full page reaches endTime: no second request
        (1000, "before next", 2),  # a full page short of endTime: the second one is empty
        (1001, "on", 2),
    ],
)
def test_settled_page_boundaries(client, server, rows, upper, requests):
    """The client's query window holds exactly ``rows`` stamped settlements, its endTime
    on the last one or just before the next one."""
    start = dt.datetime(2024, 1, 1)
    lo = ms(start) - binance.LOOKBACK_MS
    stamps = [ms(t) for t in MODEL.settlements("binance", "BTC", at_ms(lo - 60_000), NOW)["ts"] if ms(t) >= lo]
    end_time = stamps[rows - 1] if upper == "on" else stamps[rows] - 1
    end = at_ms(end_time - binance.LOOKAHEAD_MS)
    before = server.requests["binance"]
    got = client.settled("BTC", start, end)
    assert server.requests["binance"] - before == requests
    assert_frame_equal(got.select(COMPARED), expected("BTC", start, end))


def test_current_equals_feed_prediction(client, server):
    before = server.requests["binance"]
    got = client.current(["BTC", "ETH", "SOL"])
    assert server.requests["binance"] - before == 2  # fundingInfo + one all-symbols premiumIndex
    for row in got.iter_rows(named=True):
        rate, funding_time, hours = server.feed.predicted("binance", row["symbol"])
        assert (row["rate"], row["funding_time"], row["interval_hours"]) == (rate, funding_time, hours)
        assert row["ts"] == NOW.replace(microsecond=NOW.microsecond // 1000 * 1000) and row["kind"] == "predicted"
    assert got["symbol"].to_list() == ["BTC", "ETH", "SOL"]
    assert got.filter(symbol="BTC")["interval_hours"].item() == 1.0  # from fundingInfo
    client.current(["BTC"])
    assert server.requests["binance"] - before == 3  # fundingInfo cached


def test_stream_yields_predictions_and_answers_pings(client, server, monkeypatch):
    sim = server.sims["binance"]
    monkeypatch.setattr(sim, "ping_interval_s", 0.02)
    pongs = sim.pongs
    frames = stream_frames(client, ["BTC", "ETH"], 20, ping_interval_s=0.05)
    prints = pl.concat(frames)
    assert set(prints["symbol"]) == {"BTC", "ETH"} and prints.height == client.stream_messages  # a print a message
    for row in prints.unique(subset=["symbol"]).iter_rows(named=True):
        rate, funding_time, hours = server.feed.predicted("binance", row["symbol"])
        assert (row["rate"], row["funding_time"], row["interval_hours"], row["ts"]) == (rate, funding_time, hours, NOW)
    assert prints["kind"].unique().to_list() == ["predicted"]
    assert prints["source"].unique().to_list() == ["binance WS"]
    assert sim.pongs > pongs  # the server's keep-alive pings were answered
    assert client.skipped_frames == 0


def test_stream_uses_the_routed_market_path():
    url = binance.stream_url(binance.Client.ws_url, ["BTC", "ETH"])
    assert url == "wss://fstream.binance.com/market/stream?streams=btcusdt@markPrice@1s/ethusdt@markPrice@1s"


def test_sim_legacy_paths_connect_but_never_push(server):
    async def first_message(path: str):
        async with connect(server.ws_url("binance") + path) as ws:
            try:
                return json.loads(await asyncio.wait_for(ws.recv(), 0.3))
            except TimeoutError:
                return None

    async def run():
        return [
            await first_message(p)
            for p in (
                "/ws/btcusdt@markPrice@1s",
                "/stream?streams=btcusdt@markPrice@1s",
                "/market/ws/btcusdt@markPrice",
            )
        ]

    legacy_ws, legacy_stream, routed_raw = asyncio.run(run())
    assert legacy_ws is None and legacy_stream is None
    assert routed_raw["e"] == "markPriceUpdate" and routed_raw["s"] == "BTCUSDT" and "stream" not in routed_raw


def test_sim_stream_subscribe_requests(server):
    async def run():
        async with connect(server.ws_url("binance") + "/market/ws") as ws:
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@markPrice@1s"], "id": 7}))
            ack = json.loads(await ws.recv())
            event = json.loads(await ws.recv())
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 8}))
            while "id" not in (listing := json.loads(await ws.recv())):
                pass
            return ack, event, listing

    ack, event, listing = asyncio.run(asyncio.wait_for(run(), 5))
    assert ack == {"result": None, "id": 7}
    assert event["s"] == "ETHUSDT" and event["r"] == f"{server.feed.predicted('binance', 'ETH')[0]:.8f}"
    assert listing == {"result": ["ethusdt@markPrice@1s"], "id": 8}


# --- the simulator's REST semantics -----------------------------------------------------------


def get(server, path: str, **params) -> httpx.Response:
    return httpx.get(server.rest_url("binance") + path, params=params)


def test_sim_funding_rate_query_semantics(server):
    history = "/fapi/v1/fundingRate"
    model = MODEL.settlements("binance", "BTC", dt.datetime(2024, 1, 1), NOW)
    stamps = [ms(t) for t in model["ts"]]
    latest = get(server, history, symbol="BTCUSDT").json()
    assert [r["fundingTime"] for r in latest] == stamps[-200:]  # neither bound: latest 200
    assert [r["fundingTime"] for r in get(server, history, symbol="BTCUSDT", limit=2).json()] == stamps[-2:]
    first = get(server, history, symbol="BTCUSDT", startTime=stamps[10]).json()
    assert [r["fundingTime"] for r in first] == stamps[10:110]  # default limit 100, from start
    capped = get(server, history, symbol="BTCUSDT", startTime=stamps[0], limit=5000).json()
    assert len(capped) == 1000
    one = get(server, history, symbol="BTCUSDT", startTime=stamps[5], endTime=stamps[5]).json()
    assert one == [
        {
            "symbol": "BTCUSDT",
            "fundingTime": stamps[5],
            "fundingRate": f"{model['rate'][5]:.8f}",
            "markPrice": "60000.00000000",
            "rateType": "Regular",
        }
    ]
    assert get(server, history, symbol="BTCUSDT", startTime=stamps[5] + 1, endTime=stamps[6] - 1).json() == []
    before_end = get(server, history, symbol="BTCUSDT", endTime=stamps[50], limit=3).json()
    assert [r["fundingTime"] for r in before_end] == stamps[48:51]
    mixed = get(server, history, startTime=stamps[0], limit=300).json()
    assert {"BTCUSDT", "ETHUSDT", "SOLUSDT"} < {r["symbol"] for r in mixed}
    assert [r["fundingTime"] for r in mixed] == sorted(r["fundingTime"] for r in mixed)
    old = get(server, history, symbol="BTCUSDT", startTime=ms(dt.datetime(2023, 1, 1)), limit=1).json()
    assert old[0]["markPrice"] == ""  # before markPrice was published


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"symbol": "FOOUSDT"}, -1121),
        ({"symbol": "btcusdt"}, -1121),
        ({"symbol": "BTCUSDT", "startTime": "2", "endTime": "1"}, -1023),
        ({"symbol": "BTCUSDT", "startTime": "yesterday"}, -1100),
        ({"symbol": "BTCUSDT", "limit": "0"}, -1130),
    ],
)
def test_sim_funding_rate_errors(server, params, code):
    response = get(server, "/fapi/v1/fundingRate", **params)
    assert response.status_code == 400 and response.json()["code"] == code


def test_sim_premium_index_shapes(server):
    single = get(server, "/fapi/v1/premiumIndex", symbol="ETHUSDT").json()
    rate, funding_time, _ = server.feed.predicted("binance", "ETH")
    assert single["symbol"] == "ETHUSDT" and single["lastFundingRate"] == f"{rate:.8f}"
    assert single["nextFundingTime"] == ms(funding_time) and single["interestRate"] == "0.00010000"
    assert single["time"] == ms(NOW)  # milliseconds, not whole seconds
    every = get(server, "/fapi/v1/premiumIndex").json()
    settling = [r["symbol"] for r in every if r["nextFundingTime"] == 0]
    assert settling == ["BTCUSDT_250328", "ETHUSDT_250328"]
    assert get(server, "/fapi/v1/premiumIndex", symbol="BTCUSDT_250328").json()["nextFundingTime"] == 0
    btc = next(r for r in every if r["symbol"] == "BTCUSDT")
    assert btc["interestRate"] == "0.00001250"  # 1 h window
    assert get(server, "/fapi/v1/premiumIndex", symbol="NOSUCHUSDT").json() == {"code": -1121, "msg": "Invalid symbol."}
    info = get(server, "/fapi/v1/fundingInfo", symbol="ETHUSDT").json()  # symbol ignored
    listed = {r["symbol"]: r["fundingIntervalHours"] for r in info}
    assert listed["BTCUSDT"] == 1 and "ETHUSDT" not in listed  # ETH: 8 h at the default cap


# --- faults and limits ------------------------------------------------------------------------


def test_settled_survives_rest_faults():
    faults = Faults(error_rate=0.2, drop_rate=0.05, malformed_rate=0.05, retry_after_s=0.01)
    with SimServer(clock=SimClock(start=NOW, speed=0.0), faults=faults) as sim:
        c = make_client(sim)
        start = dt.datetime(2024, 6, 1)
        assert_frame_equal(c.settled("BTC", start, NOW).select(COMPARED), expected("BTC", start, NOW))
        assert_frame_equal(c.settled("ETH", start, NOW).select(COMPARED), expected("ETH", start, NOW))
        assert c.http.retries > 0
        c.close()


def test_stream_skips_garbage_frames():
    with SimServer(
        clock=SimClock(start=NOW, speed=0.0), faults=Faults(ws_garbage_rate=0.3), push_interval_s=0.01
    ) as sim:
        c = make_client(sim)
        prints = pl.concat(stream_frames(c, ["BTC", "SOL"], 30))
        assert prints.height == c.stream_messages >= 30 and set(prints["symbol"]) == {"BTC", "SOL"}
        assert c.skipped_frames > 0 and sim.sims["binance"].garbage_frames >= c.skipped_frames
        c.close()


def test_stream_raises_on_drop_and_on_silence():
    for faults, error in ((Faults(ws_drop_after=3), ConnectionClosed), (Faults(ws_stall_after=2), ConnectionError)):
        with SimServer(clock=SimClock(start=NOW, speed=0.0), faults=faults, push_interval_s=0.01) as sim:
            c = make_client(sim)
            with pytest.raises(error):
                stream_frames(c, ["BTC"], 100, stale_after_s=0.3)
            c.close()


class TinyBudgetSim(Sim):
    budgets = {"history": Budget(3, 1.0)}  # every request draws on it


def test_limits_answered_with_429_and_client_completes(monkeypatch):
    monkeypatch.setitem(sim_venues.VENUE_SIMS, "binance", TinyBudgetSim)
    with SimServer(clock=SimClock(start=NOW, speed=0.0), limits=True) as sim:
        burst = [get(sim, "/fapi/v1/fundingInfo") for _ in range(6)]
        limited = [r for r in burst if r.status_code == 429]
        assert limited and limited[0].json()["code"] == -1003 and float(limited[0].headers["Retry-After"]) > 0
        c = make_client(sim, budget=Budget(1000, 1.0))  # the client bursts past the server's budget
        start = dt.datetime(2024, 12, 1)
        for coin in ("BTC", "ETH", "SOL", "BTC"):
            assert_frame_equal(c.settled(coin, start, NOW).select(COMPARED), expected(coin, start, NOW))
        assert c.http.retries > 0
        c.close()
