"""Bybit v5 linear: fixture parsing, client <-> simulator round trips, faults and limits.

Expected values in the fixture tests are written out by hand from the JSON files in
../shared/fixtures/bybit (Bybit documentation examples, DATA.md section 2).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from contextlib import aclosing
from pathlib import Path

import httpx
import polars as pl
import pytest
import websockets
from websockets.asyncio.client import connect

from funding_assets.clients import Budget, HttpClient, RateLimiter, VenueError, bybit, client_for, settled_rows
from funding_assets.sim import FundingModel
from funding_assets.sim.server import Faults, SimClock, SimServer
from funding_assets.sim.venues import VENUE_SIMS
from funding_assets.sim.venues import bybit as bybit_sim

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "fixtures"
DOCS = FIXTURES / "bybit" / "docs_examples"
needs_shared = pytest.mark.skipif(not DOCS.is_dir(), reason=f"{DOCS} (shared fixtures) is not present")

START = dt.datetime(2025, 6, 1)
H = dt.timedelta(hours=1)
MS = dt.timedelta(milliseconds=1)
MODEL = FundingModel()
COLUMNS = ["ts", "funding_time", "rate", "interval_hours"]


def load(name: str) -> dict:
    return json.loads((DOCS / name).read_text())


def epoch(when: dt.datetime) -> int:
    return (when - dt.datetime(1970, 1, 1)) // MS


def model_rows(coin: str, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """The model's settlements with funding_time in [start, end] (the client's bounds)."""
    return MODEL.settlements("bybit", coin, start, end + MS).select(COLUMNS)


def make_client(server: SimServer, budget: Budget | dict = bybit.SPEC.budgets) -> bybit.Client:
    http = HttpClient("bybit", server.rest_url("bybit"), budget, backoff_s=0.01, timeout_s=2)
    return client_for("bybit", server.rest_url("bybit"), server.ws_url("bybit"), http=http)


async def take(client: bybit.Client, coins: list[str], n: int, timeout_s: float = 5.0, **kwargs) -> pl.DataFrame:
    """The first ``n`` prints of ``client.stream(coins)``."""
    frames = []
    async with asyncio.timeout(timeout_s), aclosing(client.stream(coins, **kwargs)) as stream:
        async for frame in stream:  # a frame per push, or per burst of pushes received together
            frames.append(frame)
            if sum(f.height for f in frames) >= n:
                break
    return pl.concat(frames).head(n)


def assert_model_predictions(prints: pl.DataFrame) -> None:
    """Every streamed/current print is the model's estimate at the quote's own ts."""
    assert prints.height and set(prints["kind"]) == {"predicted"}
    for row in prints.iter_rows(named=True):
        rate, funding_time, hours = MODEL.predicted("bybit", row["symbol"], row["ts"])
        assert (row["rate"], row["funding_time"], row["interval_hours"]) == (rate, funding_time, hours), row


@pytest.fixture(scope="module")
def server():
    with SimServer(clock=SimClock(start=START), push_interval_s=0.05) as sim:
        yield sim


@pytest.fixture
def client(server):
    c = make_client(server)
    yield c
    c.close()


# --- fixtures: documentation examples -------------------------------------------------------


@needs_shared
def test_every_bybit_fixture_is_covered_here():
    files = {p.name for p in DOCS.glob("*.json")} | {p.name for p in (FIXTURES / "ws").glob("bybit*")}
    assert files == {
        "bybit_docs_funding_history_linear.json",
        "bybit_docs_tickers_inverse.json",
        "bybit_docs_instruments_info_linear.json",
        "bybit_docs_premium_index_price_kline_linear.json",
        "bybit_docs_ws_tickers_linear_perpetual.json",
        "bybit_docs_ws_tickers_linear_futures.json",
    }


@needs_shared
def test_funding_history_fixture():
    points = bybit.parse_history(load("bybit_docs_funding_history_linear.json"))
    assert points == [("ETHPERP", 1672041600000, 0.0001)]  # "1672041600000" = 2022-12-26 08:00 UTC
    rows = settled_rows("ETH", [(ts, rate) for _, ts, rate in points], 8.0)
    assert rows == [
        {
            "coin": "ETH",
            "ts_ms": 1672041600000,
            "funding_time_ms": 1672041600000,
            "rate": 0.0001,
            "interval_hours": 8.0,
            "kind": "realised",
        }
    ]


@needs_shared
def test_tickers_fixture_gives_the_prediction_for_next_funding_time():
    payload = load("bybit_docs_tickers_inverse.json")
    assert bybit.parse_tickers(payload, {"BTCUSD": "BTC"}, 8.0) == [
        {
            "coin": "BTC",
            "ts_ms": 1760352369814,
            "funding_time_ms": 1760371200000,
            "rate": 0.0001,
            "interval_hours": 8.0,
            "kind": "predicted",
        }
    ]
    assert bybit.parse_tickers(payload, {"BTCUSDT": "BTC"}, 8.0) == []  # other symbols are skipped


@needs_shared
def test_ticker_interval_comes_from_funding_interval_hour_not_the_default():
    row = load("bybit_docs_tickers_inverse.json")["result"]["list"][0]
    four_hourly = {**row, "fundingIntervalHour": "4"}
    assert bybit.parse_ticker(four_hourly, "BTC", 1, 8.0)["interval_hours"] == 4.0
    before_the_field = {k: v for k, v in row.items() if k != "fundingIntervalHour"}
    assert bybit.parse_ticker(before_the_field, "BTC", 1, 8.0)["interval_hours"] == 8.0


@needs_shared
def test_instruments_fixture_holds_no_funding_quote():
    payload = load("bybit_docs_instruments_info_linear.json")
    (instrument,) = bybit.result_list(payload)
    assert instrument["fundingInterval"] == 480  # a number, in minutes: not read as hours
    assert bybit.parse_tickers(payload, {"BTCUSDT": "BTC"}, 8.0) == []


@needs_shared
def test_premium_index_kline_fixture_is_not_funding():
    payload = load("bybit_docs_premium_index_price_kline_linear.json")
    with pytest.raises(VenueError, match="malformed"):
        bybit.parse_history(payload)
    with pytest.raises(VenueError, match="malformed"):
        bybit.parse_tickers(payload, {"BTCUSDT": "BTC"}, 8.0)


@needs_shared
def test_ws_perpetual_snapshot_fixture():
    message = load("bybit_docs_ws_tickers_linear_perpetual.json")
    symbol, fields = bybit.merge_ticker({}, message)
    assert symbol == "BTCUSDT"
    assert bybit.parse_ticker(fields, "BTC", message["ts"], 8.0) == {
        "coin": "BTC",
        "ts_ms": 1760325052630,
        "funding_time_ms": 1760342400000,  # 2025-10-13 08:00 UTC
        "rate": -0.005,
        "interval_hours": 8.0,
        "kind": "predicted",
    }


@needs_shared
def test_ws_dated_future_fixture_gives_no_print():
    message = load("bybit_docs_ws_tickers_linear_futures.json")
    symbol, fields = bybit.merge_ticker({}, message)
    assert symbol == "BTC-26DEC25" and fields["fundingRate"] == ""
    assert bybit.parse_ticker(fields, "BTC", message["ts"], 8.0) is None


def test_deltas_carry_only_changes_and_a_snapshot_resets():
    state: dict[str, dict] = {}
    snapshot = {
        "topic": "tickers.BTCUSDT",
        "type": "snapshot",
        "ts": 1,
        "cs": 1,
        "data": {
            "symbol": "BTCUSDT",
            "fundingRate": "0.0001",
            "nextFundingTime": "28800000",
            "fundingIntervalHour": "8",
            "bid1Price": "1",
        },
    }
    bybit.merge_ticker(state, snapshot)
    _, fields = bybit.merge_ticker(
        state,
        {
            "topic": "tickers.BTCUSDT",
            "type": "delta",
            "ts": 2,
            "cs": 2,
            "data": {"symbol": "BTCUSDT", "bid1Price": "2"},
        },
    )
    assert bybit.parse_ticker(fields, "BTC", 2, 8.0)["rate"] == 0.0001  # absent = unchanged
    _, fields = bybit.merge_ticker(
        state,
        {
            "topic": "tickers.BTCUSDT",
            "type": "delta",
            "ts": 3,
            "cs": 3,
            "data": {"symbol": "BTCUSDT", "fundingRate": "-0.0002"},
        },
    )
    assert bybit.parse_ticker(fields, "BTC", 3, 8.0)["rate"] == -0.0002
    _, fields = bybit.merge_ticker(state, {**snapshot, "data": {"symbol": "BTCUSDT", "bid1Price": "3"}})
    assert fields == {"symbol": "BTCUSDT", "bid1Price": "3"}  # the new snapshot replaced everything
    assert bybit.parse_ticker(fields, "BTC", 4, 8.0) is None


# --- the simulator's query semantics -------------------------------------------------------------


def get(server: SimServer, path: str, **params) -> httpx.Response:
    return httpx.get(server.rest_url("bybit") + path, params=params, timeout=5)


def history(server: SimServer, **params) -> httpx.Response:
    return get(server, bybit_sim.HISTORY_PATH, category="linear", symbol="BTCUSDT", **params)


def test_history_is_newest_first_and_bounds_are_inclusive(server):
    first, last = dt.datetime(2025, 3, 1), dt.datetime(2025, 3, 3)
    body = history(server, startTime=epoch(first), endTime=epoch(last)).json()
    assert body["retCode"] == 0 and isinstance(body["time"], int)
    rows = body["result"]["list"]
    stamps = [int(r["fundingRateTimestamp"]) for r in rows]
    assert stamps == sorted(stamps, reverse=True)
    assert stamps[0] == epoch(last) and stamps[-1] == epoch(first)
    assert all(isinstance(r["fundingRate"], str) and isinstance(r["fundingRateTimestamp"], str) for r in rows)
    assert [float(r["fundingRate"]) for r in rows] == model_rows("BTC", first, last)["rate"].reverse().to_list()


def test_history_bound_rules(server):
    only_start = history(server, startTime=epoch(dt.datetime(2025, 1, 1)))
    assert only_start.status_code == 200 and only_start.json()["retCode"] == 10001
    end = dt.datetime(2025, 3, 1)
    only_end = history(server, endTime=epoch(end)).json()["result"]["list"]
    assert len(only_end) == 200 and int(only_end[0]["fundingRateTimestamp"]) == epoch(end)
    neither = history(server).json()["result"]["list"]
    latest = MODEL.settlements("bybit", "BTC", START - 10 * H, START + MS)["funding_time"][-1]
    assert len(neither) == 200 and int(neither[0]["fundingRateTimestamp"]) == epoch(latest)
    assert len(history(server, limit=3).json()["result"]["list"]) == 3
    assert len(history(server, limit=1000).json()["result"]["list"]) == 200  # clamped, not refused


def test_unknown_symbol_is_a_params_error_with_http_200(server):
    response = get(server, bybit_sim.HISTORY_PATH, category="linear", symbol="NOSUCHUSDT", endTime=1)
    assert response.status_code == 200
    assert response.json()["retCode"] == 10001 and response.json()["retMsg"] == "params error: symbol invalid"
    with pytest.raises(VenueError, match="retCode 10001"):
        bybit.parse_history(response.json())


def test_forward_paging_skips_rows_backward_paging_does_not(server, client):
    """The ccxt #27745 trap: a window over 200 rows answers its newest 200 only."""
    coin, first, last = "BTC", dt.datetime(2024, 1, 1), dt.datetime(2024, 5, 1)
    truth = model_rows(coin, first, last)
    assert truth.height > 300

    def forward_pager() -> list[int]:
        stamps, cursor = [], epoch(first)
        while True:
            page = history(server, startTime=cursor, endTime=epoch(last), limit=200).json()["result"]["list"]
            stamps += [int(r["fundingRateTimestamp"]) for r in page]
            if len(page) < 200:
                return stamps
            cursor = max(stamps) + 1

    naive = forward_pager()
    assert len(naive) == 200 and min(naive) > epoch(first)  # the oldest rows were silently lost
    assert client.settled(coin, first, last).select(COLUMNS).equals(truth)


# --- round trips against the model -----------------------------------------------------------------


@pytest.mark.parametrize("coin", ["BTC", "ETH", "SOL"])
def test_settled_over_months_equals_the_model(client, coin):
    first, last = dt.datetime(2024, 6, 1), dt.datetime(2024, 9, 30)
    got = client.settled(coin, first, last)
    assert got.select(COLUMNS).equals(model_rows(coin, first, last))
    assert set(got["kind"]) == {"realised"} and set(got["source"]) == {"bybit REST"} and set(got["symbol"]) == {coin}
    assert client.http.requests >= 2  # several backward pages


def test_settled_across_an_interval_episode_and_a_gap(client):
    # Bybit's majors never went hourly; AR did, in the model, with a missing settlement.
    first, last = dt.datetime(2024, 10, 7), dt.datetime(2024, 10, 15)
    truth = model_rows("AR", first, last)
    gaps = truth["funding_time"].diff().dt.total_hours() / truth["interval_hours"]
    assert set(truth["interval_hours"]) == {8.0, 1.0} and gaps.max() > 1  # preconditions from the model
    assert client.settled("AR", first, last).select(COLUMNS).equals(truth)


@pytest.mark.parametrize(("rows_fetched", "requests"), [(199, 1), (200, 1), (201, 2)])
def test_page_boundaries(server, rows_fetched, requests):
    """The fetched window ([start, end] plus CONTEXT_MS each side) holds 199/200/201 rows;
    a full page whose oldest row is the window's start needs no second request."""
    client = make_client(server)
    lo = dt.datetime(2025, 1, 19)
    hi = lo + (rows_fetched - 1) * 8 * H
    context = bybit.CONTEXT_MS * MS
    first, last = lo + context, hi - context
    assert model_rows("SOL", lo, hi).height == rows_fetched  # a gap-free 8 h stretch
    assert client.settled("SOL", first, last).select(COLUMNS).equals(model_rows("SOL", first, last))
    assert client.http.requests == requests


def test_current_is_the_models_prediction_in_one_request(server, client):
    listing = get(server, bybit_sim.TICKERS_PATH, category="linear").json()["result"]["list"]
    assert any(t["fundingRate"] == "" for t in listing)  # a dated future the client must skip
    got = client.current(["BTC", "ETH", "SOL"])
    assert client.http.requests == 1
    assert got["symbol"].to_list() == ["BTC", "ETH", "SOL"]
    assert_model_predictions(got)


# --- the stream -----------------------------------------------------------------------------------


@pytest.fixture
def fast_server():
    """An hour of simulated time per second, so predictions change between pushes."""
    clock = SimClock(start=dt.datetime(2025, 3, 15, 7, 45), speed=3600)  # BTC above the 0.0001 baseline
    with SimServer(clock=clock, push_interval_s=0.03) as sim:
        sim.sims["bybit"].idle_timeout_s = 0.3
        yield sim


def test_ws_protocol(server):
    async def session() -> list[dict]:
        async with connect(server.ws_url("bybit") + "/v5/public/linear") as ws:
            await ws.send(json.dumps({"op": "subscribe", "args": ["tickers.BTCUSDT"]}))
            replies = [json.loads(await ws.recv()) for _ in range(3)]
            await ws.send(json.dumps({"op": "ping"}))
            while (reply := json.loads(await ws.recv())).get("op") != "ping":
                pass
            await ws.send(json.dumps({"op": "subscribe", "args": ["tickers.NOSUCHUSDT"]}))
            while "op" not in (refusal := json.loads(await ws.recv())):
                pass
            return [*replies, reply, refusal]

    ack, snapshot, delta, pong, refusal = asyncio.run(session())
    assert ack["success"] is True and ack["op"] == "subscribe" and ack["conn_id"]
    assert snapshot["topic"] == "tickers.BTCUSDT" and snapshot["type"] == "snapshot"
    assert isinstance(snapshot["ts"], int) and isinstance(snapshot["cs"], int)
    assert {"fundingRate", "nextFundingTime", "fundingIntervalHour", "fundingCap"} <= set(snapshot["data"])
    assert delta["type"] == "delta" and "nextFundingTime" not in delta["data"]  # unchanged -> absent
    assert pong == {"success": True, "ret_msg": "pong", "conn_id": ack["conn_id"], "op": "ping"}
    assert refusal["success"] is False and "NOSUCHUSDT" in refusal["ret_msg"]


def test_stream_merges_deltas_into_the_models_predictions(fast_server):
    client = make_client(fast_server)
    prints = asyncio.run(take(client, ["BTC", "ETH"], 60, ping_interval_s=0.1))
    assert set(prints["symbol"]) == {"BTC", "ETH"} and set(prints["source"]) == {"bybit WS"}
    assert_model_predictions(prints)
    assert prints["funding_time"].n_unique() >= 2  # a settlement passed mid-stream
    assert prints.filter(pl.col("symbol") == "BTC")["rate"].n_unique() > 1


def test_stream_pings_keep_the_connection_alive(fast_server):
    client = make_client(fast_server)
    sim = fast_server.sims["bybit"]
    prints = asyncio.run(take(client, ["BTC"], 30, ping_interval_s=0.1))  # ~0.9 s = 3 idle timeouts
    assert prints.height == 30
    assert client.pongs >= 5 and sim.pings >= 5


def test_a_client_that_does_not_ping_is_dropped(fast_server):
    client = make_client(fast_server)
    with pytest.raises(websockets.ConnectionClosed):
        asyncio.run(take(client, ["BTC"], 1000, ping_interval_s=10))


# --- faults and limits -----------------------------------------------------------------------------


def test_settled_and_current_survive_rest_faults():
    faults = Faults(seed=3, error_rate=0.2, drop_rate=0.05, malformed_rate=0.05, retry_after_s=0.01)
    with SimServer(clock=SimClock(start=START), faults=faults) as server:
        client = make_client(server)
        first, last = dt.datetime(2024, 6, 1), dt.datetime(2024, 11, 1)
        assert client.settled("BTC", first, last).select(COLUMNS).equals(model_rows("BTC", first, last))
        assert_model_predictions(client.current(["BTC", "ETH", "SOL"]))
        assert client.http.retries > 0


def test_stream_skips_garbage_frames():
    with SimServer(
        clock=SimClock(start=START), faults=Faults(seed=1, ws_garbage_rate=0.3), push_interval_s=0.02
    ) as server:
        client = make_client(server)
        prints = asyncio.run(take(client, ["BTC", "SOL"], 40, ping_interval_s=0.1))
        assert_model_predictions(prints)
        assert client.skipped_frames > 0 and server.sims["bybit"].garbage_frames >= client.skipped_frames


@pytest.mark.parametrize(
    ("faults", "error"),
    [
        (Faults(ws_drop_after=5), (ConnectionError, websockets.ConnectionClosed)),
        (Faults(ws_stall_after=5), ConnectionError),
    ],
)
def test_stream_raises_when_the_connection_drops_or_stalls(faults, error):
    with SimServer(clock=SimClock(start=START), faults=faults, push_interval_s=0.02) as server:
        client = make_client(server)
        with pytest.raises(error):
            asyncio.run(take(client, ["BTC"], 1000, ping_interval_s=0.1))


class TinyBudgetSim(bybit_sim.Sim):
    budgets = {"ip": Budget(2, 0.5)}  # one request unit every 0.25 s


class ManualClock:
    """Monotonic seconds that move only when someone sleeps on them: the simulator's budget
    and the client's limiter share it, so refills never depend on how fast this machine is."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_burst_beyond_the_budget_gets_403_and_the_client_completes(monkeypatch):
    monkeypatch.setitem(VENUE_SIMS, "bybit", TinyBudgetSim)
    clock = ManualClock()
    with SimServer(clock=SimClock(start=START), limits=True, limits_clock=clock) as server:
        statuses = [get(server, bybit_sim.TICKERS_PATH, category="linear").status_code for _ in range(3)]
        assert statuses == [200, 200, 403]
        refused = get(server, bybit_sim.TICKERS_PATH, category="linear")
        assert refused.status_code == 403 and refused.text == "access too frequent"
        assert float(refused.headers["Retry-After"]) == 0.25  # until one request unit is back
        # a client that bursts anyway (its own budget far above the venue's) on the same clock
        limiter = RateLimiter(Budget(1000, 1.0), clock=clock, sleep=clock.sleep)
        http = HttpClient("bybit", server.rest_url("bybit"), limiter.budget, limiter=limiter, sleep=clock.sleep)
        client = client_for("bybit", server.rest_url("bybit"), server.ws_url("bybit"), http=http)
        for _ in range(4):
            assert client.current(["BTC"]).height == 1
        # each call is refused once, waits exactly the Retry-After, and then gets through
        assert client.http.retries == 4 and limiter.waited_s == 1.0
