"""Deribit: real payloads parse, the client reproduces the simulator's model exactly
(hourly interest_1h history in 30-day windows, ticker estimates, the ticker stream with
heartbeats), through faults and within the credit budget."""

import asyncio
import datetime as dt
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from funding_assets.clients import Budget, HttpClient, VenueError, client_for, prints_frame
from funding_assets.clients.deribit import SPEC, Client, history_rows, notification_row
from funding_assets.sim.model import FundingModel
from funding_assets.sim.server import Faults, SimClock, SimServer
from funding_assets.sim.venues import VENUE_SIMS
from funding_assets.sim.venues.deribit import Sim

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "fixtures"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared (real payloads) is absent")

VENUE = "deribit"
COINS = ("BTC", "ETH", "SOL")
NOW = dt.datetime(2025, 3, 10, 12, 20)  # mid-hour: the open hour's estimate is stable for minutes
HEARTBEAT_S = 0.3
MS = dt.timedelta(milliseconds=1)
HOUR = dt.timedelta(hours=1)
COLUMNS = ["venue", "symbol", "venue_symbol", "ts", "funding_time", "rate", "interval_hours", "kind"]
HISTORY = "/api/v2/public/get_funding_rate_history"
TICKER = "/api/v2/public/ticker"


def start_server(**kwargs) -> SimServer:
    server = SimServer(clock=SimClock(start=NOW), push_interval_s=0.05, **kwargs).start()
    server.sims[VENUE].min_heartbeat_s = 0.05  # Deribit's 10 s minimum, shortened for tests
    return server


@pytest.fixture(scope="module")
def server():
    server = start_server()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def faulty():
    server = start_server(
        faults=Faults(
            seed=3, error_rate=0.2, drop_rate=0.05, malformed_rate=0.05, retry_after_s=0.01, ws_garbage_rate=0.2
        )
    )
    yield server
    server.stop()


def make_client(server: SimServer, budget: Budget | dict = SPEC.budgets) -> Client:
    http = HttpClient(VENUE, server.rest_url(VENUE), budget, backoff_s=0.01, timeout_s=2)
    return client_for(VENUE, server.rest_url(VENUE), server.ws_url(VENUE), http=http)


def model_settlements(coin: str, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """The model's settlements with funding_time in [start, end] (both inclusive)."""
    return FundingModel().settlements(VENUE, coin, start, end + MS)


def assert_same_prints(got: pl.DataFrame, want: pl.DataFrame) -> None:
    assert got.height == want.height > 0
    assert_frame_equal(got.select(COLUMNS), want.select(COLUMNS), check_exact=True)


async def collect(
    client: Client, coins, *, until, ping_interval_s: float = HEARTBEAT_S, timeout_s: float = 5.0
) -> pl.DataFrame:
    """Stream frames until ``until(frames)`` holds; the stream is closed afterwards."""
    frames: list[pl.DataFrame] = []
    stream = client.stream(coins, ping_interval_s=ping_interval_s)
    try:
        async with asyncio.timeout(timeout_s):
            async for frame in stream:
                frames.append(frame)
                if until(frames):
                    break
    finally:
        await stream.aclose()
    return pl.concat(frames)


# --- real payloads ------------------------------------------------------------------------

# file under fixtures/ -> (parse payload to print rows, expected (ts, funding_time, rate, interval_hours, kind))
FIXTURE_PRINTS = {
    "deribit/deribit_get_funding_rate_history_BTC-PERPETUAL_single_row_excerpt.json": (
        lambda payload: history_rows("BTC", payload),
        [(dt.datetime(2026, 9, 18, 1), dt.datetime(2026, 9, 18, 1), 1.257606590607552e-06, 1.0, "realised")],
    ),
    # funding_8h 0.00001742 / 8 per hour, for the hour ending at the next top of the hour.
    "deribit/deribit_ws_ticker_BTC-PERPETUAL_via_nautilus.json": (
        lambda payload: [notification_row(payload)],
        [(dt.datetime(2025, 12, 12, 12, 11, 14, 86_000), dt.datetime(2025, 12, 12, 13), 2.1775e-06, 1.0, "predicted")],
    ),
}


@needs_shared
def test_every_deribit_fixture_has_expected_prints():
    files = {
        p.relative_to(FIXTURES).as_posix()
        for p in [*FIXTURES.glob("deribit/*.json"), *FIXTURES.glob("ws/deribit*.json")]
    }
    assert files == set(FIXTURE_PRINTS)


@needs_shared
@pytest.mark.parametrize("name", sorted(FIXTURE_PRINTS))
def test_fixture_parses_into_its_prints(name):
    parse, expected = FIXTURE_PRINTS[name]
    frame = prints_frame(parse(json.loads((FIXTURES / name).read_text())), VENUE, "fixture")
    got = frame.select("ts", "funding_time", "rate", "interval_hours", "kind").rows()
    assert got == expected
    assert frame["symbol"].to_list() == ["BTC"] and frame["venue_symbol"].to_list() == ["BTC-PERPETUAL"]


@needs_shared
def test_history_fixture_rate_is_interest_1h_not_interest_8h():
    name = "deribit/deribit_get_funding_rate_history_BTC-PERPETUAL_single_row_excerpt.json"
    payload = json.loads((FIXTURES / name).read_text())
    (row,) = history_rows("BTC", payload)
    assert row["rate"] == payload["result"][0]["interest_1h"] != payload["result"][0]["interest_8h"]


def test_error_envelope_raises_venue_error():
    with pytest.raises(VenueError, match="13020"):
        history_rows("BTC", {"jsonrpc": "2.0", "error": {"code": 13020, "message": "not_found"}})


# --- round trip through the simulator -------------------------------------------------------


@pytest.mark.parametrize("coin", COINS)
def test_settled_over_six_weeks_equals_the_model(server, coin):
    start, end = dt.datetime(2025, 1, 1), dt.datetime(2025, 2, 12, 7)
    assert_same_prints(make_client(server).settled(coin, start, end), model_settlements(coin, start, end))


def test_settled_across_a_model_gap_keeps_the_gap_and_hourly_intervals(server):
    start, end = dt.datetime(2024, 2, 26), dt.datetime(2024, 3, 11)
    want = model_settlements("BTC", start, end)
    hours = {start + HOUR * k for k in range(14 * 24 + 1)}
    missing = hours - set(want["funding_time"].to_list())  # unpublished hours before 03-09 15:00
    assert 1 <= len(missing) <= 3 and max(missing) == dt.datetime(2024, 3, 9, 14)
    assert want.height == len(hours) - len(missing)
    got = make_client(server).settled("BTC", start, end)
    assert_same_prints(got, want)
    assert got["interval_hours"].unique().to_list() == [1.0]


@pytest.mark.parametrize(("hours", "requests"), [(720, 1), (721, 2)])
def test_settled_windows_are_at_most_thirty_days(server, hours, requests):
    start = dt.datetime(2025, 1, 5)
    end = start + (hours - 1) * HOUR  # `hours` hourly settlements, both ends included
    before = server.requests[VENUE]
    got = make_client(server).settled("ETH", start, end)
    assert server.requests[VENUE] - before == requests
    assert_same_prints(got, model_settlements("ETH", start, end))
    assert got["funding_time"].min() == start and got["funding_time"].max() == end


def test_settled_single_instant_and_future_range(server):
    client = make_client(server)
    instant = dt.datetime(2025, 2, 1, 5)
    assert client.settled("BTC", instant, instant)["funding_time"].to_list() == [instant]
    assert client.settled("BTC", NOW + HOUR, NOW + 48 * HOUR).height == 0


def test_current_equals_the_feeds_prediction(server):
    got = make_client(server).current(COINS)
    assert got["symbol"].to_list() == list(COINS)
    for row in got.iter_rows(named=True):
        rate, funding_time, hours = server.feed.predicted(VENUE, row["symbol"])
        assert (row["rate"], row["funding_time"], row["interval_hours"], row["kind"]) == (
            rate,
            funding_time,
            hours,
            "predicted",
        )
        assert abs(row["ts"] - server.clock()) < dt.timedelta(seconds=5)


def test_stream_yields_predictions_and_answers_heartbeats(server):
    sim = server.sims[VENUE]
    answered = sim.test_replies
    started = time.monotonic()

    def long_enough(frames) -> bool:
        # past several heartbeat intervals: an unanswered test_request would close the stream
        return time.monotonic() - started > 4 * HEARTBEAT_S

    frames = asyncio.run(collect(make_client(server), ["BTC", "SOL"], until=long_enough))
    assert set(frames["symbol"]) == {"BTC", "SOL"}
    assert sim.test_replies - answered >= 3
    assert (frames["kind"] == "predicted").all() and (frames["interval_hours"] == 1.0).all()
    for coin in ("BTC", "SOL"):
        rate, funding_time, _ = server.feed.predicted(VENUE, coin)
        mine = frames.filter(pl.col("symbol") == coin)
        assert mine["rate"].unique().to_list() == [rate] and mine["funding_time"].unique().to_list() == [funding_time]


def test_sim_closes_a_connection_that_ignores_test_requests(server):
    async def ignore_heartbeats() -> list[dict]:
        seen = []
        async with connect(server.ws_url(VENUE) + "/ws/api/v2") as ws:
            request = {"jsonrpc": "2.0", "id": 1, "method": "public/set_heartbeat", "params": {"interval": HEARTBEAT_S}}
            await ws.send(json.dumps(request))
            async with asyncio.timeout(3):
                with pytest.raises(ConnectionClosed):
                    while True:
                        seen.append(json.loads(await ws.recv()))
        return seen

    seen = asyncio.run(ignore_heartbeats())
    assert seen[0]["result"] == "ok"
    assert {"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}} in seen


def test_stream_heartbeat_below_the_minimum_is_refused(server):
    with pytest.raises(VenueError, match="-32602"):
        asyncio.run(collect(make_client(server), ["BTC"], until=lambda f: True, ping_interval_s=0.01))


# --- the simulator's query semantics ------------------------------------------------------


def rpc_get(server: SimServer, path: str, **params) -> tuple[int, dict]:
    response = httpx.get(server.rest_url(VENUE) + path, params=params)
    return response.status_code, response.json()


def test_history_bounds_truncation_and_trailing_interest_8h(server):
    start = dt.datetime(2025, 1, 1)
    start_ms = int(start.replace(tzinfo=dt.UTC).timestamp() * 1000)
    end_ms = start_ms + 40 * 24 * 3_600_000
    status, body = rpc_get(
        server, HISTORY, instrument_name="BTC-PERPETUAL", start_timestamp=start_ms, end_timestamp=end_ms
    )
    rows = body["result"]
    stamps = [r["timestamp"] for r in rows]
    # end inclusive; at most the 744 h before end, whatever the start asked (the venue counts back)
    end = start + 40 * 24 * HOUR
    assert status == 200 and stamps[0] == end_ms - 743 * 3_600_000 and stamps[-1] == end_ms
    assert stamps == sorted(stamps) and len(rows) == model_settlements("BTC", end - 743 * HOUR, end).height
    assert all(isinstance(r[k], float) for r in rows for k in ("interest_1h", "interest_8h", "index_price"))
    hourly = dict(zip(stamps, (r["interest_1h"] for r in rows)))
    for row in rows[10:20]:
        trailing = sum(hourly.get(row["timestamp"] - k * 3_600_000, 0.0) for k in range(8))
        assert row["interest_8h"] == pytest.approx(trailing, abs=1e-15)
    assert sum(r["interest_8h"] != r["interest_1h"] for r in rows) > len(rows) // 2


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"instrument_name": "XRP-PERPETUAL", "start_timestamp": 1, "end_timestamp": 2}, 13020),
        ({"instrument_name": "BTC-27JUN25", "start_timestamp": 1, "end_timestamp": 2}, -32602),
        ({"instrument_name": "BTC-PERPETUAL", "start_timestamp": 1}, -32602),
        ({"instrument_name": "BTC-PERPETUAL", "start_timestamp": "x", "end_timestamp": 2}, -32602),
    ],
)
def test_history_errors_are_json_rpc_errors(server, params, code):
    status, body = rpc_get(server, HISTORY, **params)
    assert status == 400 and body["error"]["code"] == code and "result" not in body


def test_ticker_of_an_unknown_instrument_is_not_found(server):
    client = make_client(server)
    with pytest.raises(VenueError, match="13020"):
        client.http.get(TICKER, {"instrument_name": "DOGE-PERPETUAL"})


# --- faults and limits ----------------------------------------------------------------------


def test_settled_is_exact_through_rest_faults(faulty):
    start, end = dt.datetime(2024, 12, 1), dt.datetime(2025, 2, 20)
    client = make_client(faulty)
    assert_same_prints(client.settled("BTC", start, end), model_settlements("BTC", start, end))
    assert client.http.retries > 0


def test_stream_skips_garbage_frames(faulty):
    client = make_client(faulty)
    frames = asyncio.run(collect(client, COINS, until=lambda f: len(f) >= 30))
    assert client.skipped_frames > 0 and faulty.sims[VENUE].garbage_frames > 0
    assert set(frames["symbol"]) == set(COINS) and (frames["kind"] == "predicted").all()


def test_stream_raises_when_the_connection_drops():
    server = start_server(faults=Faults(ws_drop_after=6))
    try:
        with pytest.raises((ConnectionError, ConnectionClosed)):
            asyncio.run(collect(make_client(server), COINS, until=lambda f: False))
    finally:
        server.stop()


class TinyBudgetSim(Sim):
    budgets = {"requests": Budget(3, 0.5)}  # 3 requests (of 500 credits), then 6 a second


def test_burst_beyond_the_budget_gets_10028_and_the_client_completes(monkeypatch):
    monkeypatch.setitem(VENUE_SIMS, VENUE, TinyBudgetSim)
    server = start_server(limits=True)
    try:
        url, params = server.rest_url(VENUE) + TICKER, {"instrument_name": "BTC-PERPETUAL"}
        with ThreadPoolExecutor(8) as pool:  # all at once, however loaded the machine is
            burst = list(pool.map(lambda _: httpx.get(url, params=params), range(8)))
        limited = [response for response in burst if response.status_code == 429]
        assert limited and limited[0].json()["error"]["code"] == 10028
        assert limited[0].json()["error"]["message"] == "too_many_requests"
        assert float(limited[0].headers["Retry-After"]) > 0

        client = make_client(server, Budget(50, 1))
        start, end = dt.datetime(2024, 11, 1), dt.datetime(2025, 1, 31)
        assert_same_prints(client.settled("SOL", start, end), model_settlements("SOL", start, end))
        assert client.current(COINS).height == 3
        assert client.http.retries > 0
    finally:
        server.stop()
