"""OKX v5: fixture parsing, simulator round trips (REST window + archives, current, stream),
faults and the request budget."""

import asyncio
import datetime as dt
import io
import json
import zipfile
from contextlib import aclosing
from pathlib import Path

import httpx
import polars as pl
import pytest
from websockets.exceptions import ConnectionClosed

from funding_assets.clients import Budget, HttpClient, VenueError, client_for, epoch_ms, instruments_of, settled_rows
from funding_assets.clients.okx import (
    CURRENT_PATH,
    HISTORY_PATH,
    SPEC,
    Client,
    parse_archive,
    parse_funding_rates,
    parse_history,
)
from funding_assets.instruments import Instrument
from funding_assets.sim.model import FundingModel
from funding_assets.sim.server import Faults, SimClock, SimServer
from funding_assets.sim.venues import VENUE_SIMS
from funding_assets.sim.venues import okx as okx_sim

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "fixtures"
needs_shared = pytest.mark.skipif(not FIXTURES.is_dir(), reason="/work/shared fixtures absent")

#: The simulator's frozen now: the REST window reaches back to 2025-09-02 03:20.
NOW = dt.datetime(2025, 12, 1, 3, 20)
MODEL = FundingModel()
COMPARED = ["symbol", "ts", "funding_time", "rate", "interval_hours", "kind"]
MS = dt.timedelta(milliseconds=1)


def utc(ms: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1) + ms * MS


def load(*parts: str):
    return json.loads(FIXTURES.joinpath(*parts).read_text())


def make_client(server: SimServer, client_class: type[Client] = Client, budget: Budget | None = None) -> Client:
    http = HttpClient("okx", server.rest_url("okx"), budget or SPEC.budgets, backoff_s=0.01, timeout_s=2)
    if client_class is Client:
        return client_for("okx", server.rest_url("okx"), server.ws_url("okx"), http=http)
    return client_class(server.rest_url("okx"), server.ws_url("okx"), http=http)


def model_settled(coin: str, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """The model's settlements with funding_time in [start, end]."""
    return MODEL.settlements("okx", coin, start, end + MS).select(COMPARED)


def assert_settled_matches(client: Client, coin: str, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    got = client.settled(coin, start, end)
    expected = model_settled(coin, start, end)
    assert expected.height > 0
    assert got.select(COMPARED).equals(expected), (got, expected)
    assert got["source"].unique().to_list() == ["okx REST"]
    return got


@pytest.fixture(scope="module")
def server():
    with SimServer(clock=SimClock(start=NOW, speed=0.0)) as running:
        yield running


@pytest.fixture
def client(server):
    c = make_client(server)
    yield c
    c.close()


# --- fixtures: real payloads ----------------------------------------------------------------


@needs_shared
def test_instid_any_rows_parse_swaps_only_with_open_window_intervals():
    rows = parse_funding_rates(load("okx", "okx_funding-rate_instId-ANY_rows_2026-09-19_livenote.json"))
    assert [(r["inst_id"], r["coin"]) for r in rows] == [
        ("BTC-USDT-SWAP", "BTC"),
        ("OKB-USDT-SWAP", "OKB"),
        ("ONE-USDT-SWAP", "ONE"),
    ]  # the FUTURES X-Perp XAU-USD_UM_XPERP-310502 is dropped
    btc, okb, one = rows
    assert (btc["rate"], btc["funding_time_ms"], btc["ts_ms"], btc["interval_hours"]) == (
        0.0001,
        1789833600000,
        1789824243998,
        8.0,
    )
    assert (okb["rate"], okb["funding_time_ms"], okb["interval_hours"]) == (0.00005, 1789833600000, 4.0)
    assert (one["rate"], one["funding_time_ms"], one["interval_hours"]) == (-0.0018087460514744, 1789826400000, 1.0)
    assert {r["kind"] for r in rows} == {"predicted"}


@needs_shared
def test_btc_funding_rate_envelope_is_the_upcoming_settlement():
    [row] = parse_funding_rates(load("okx", "okx_funding-rate_BTC-USDT-SWAP_2026-08-19_livenote.json"))
    assert row["rate"] == 0.0001  # fundingRate, not settFundingRate 0.0000467644705158
    assert utc(row["funding_time_ms"]) == dt.datetime(2026, 8, 20, 0, 0)  # fundingTime, not nextFundingTime
    assert utc(row["ts_ms"]) == dt.datetime(2026, 8, 19, 17, 31, 29, 190000)
    assert row["interval_hours"] == 8.0  # fundingTime - prevFundingTime


@needs_shared
def test_history_fixture_keeps_realized_rate_and_infers_intervals():
    points = parse_history(load("okx", "okx_funding-rate-history_BTC-USDT-SWAP_via_nautilus_semisynthetic.json"))
    assert points == [("BTC-USDT-SWAP", 1704067200000, 0.00015), ("BTC-USDT-SWAP", 1704038400000, -0.00002)]
    rows = settled_rows("BTC", [(t, rate) for _, t, rate in points], 8.0)
    assert [(utc(r["funding_time_ms"]), r["rate"], r["interval_hours"], r["kind"]) for r in rows] == [
        (dt.datetime(2023, 12, 31, 16), -0.00002, 8.0, "realised"),
        (dt.datetime(2024, 1, 1, 0), 0.00015, 8.0, "realised"),
    ]


@needs_shared
def test_ws_push_2023_zil_ignores_next_funding_rate():
    [row] = parse_funding_rates(load("ws", "okx_ws_funding-rate_ZIL-USDT-SWAP_2023-12-01.json"))
    assert row["inst_id"] == "ZIL-USDT-SWAP" and row["coin"] == "ZIL"
    assert row["rate"] == 0.0001841086622606  # not nextFundingRate 0.0002285191956124
    assert utc(row["funding_time_ms"]) == dt.datetime(2023, 12, 1, 8)
    assert row["ts_ms"] == 1701388800035
    assert row["interval_hours"] == 8.0  # no prevFundingTime: nextFundingTime - fundingTime
    assert row["kind"] == "predicted"


@needs_shared
def test_ws_docs_example_inverse_swap_is_btc_inverse_not_the_usdt_swap():
    payload = load("ws", "okx_ws_funding-rate_docs_example_BTC-USD-SWAP.json")
    [row] = parse_funding_rates(payload)
    assert (row["rate"], utc(row["funding_time_ms"]), row["ts_ms"], row["interval_hours"]) == (
        0.0001875391284828,
        dt.datetime(2023, 11, 23, 8),
        1700724675402,
        8.0,
    )
    assert row["coin"] == "BTC"
    client = Client()
    assert client._stream_frame(json.dumps(payload), instruments_of("okx", ["BTC"])) is None  # BTC-USDT-SWAP
    inverse = Instrument("okx", "BTC", "inverse", "BTC-USD-SWAP")
    frame = client._stream_frame(json.dumps(payload), instruments_of("okx", [inverse]))
    assert frame.select("symbol", "contract", "venue_symbol").rows() == [("BTC", "inverse", "BTC-USD-SWAP")]


def test_error_envelope_raises_with_the_okx_code():
    with pytest.raises(VenueError, match="51001"):
        parse_history({"code": "51001", "msg": "Instrument ID doesn't exist.", "data": []})


def test_archive_csv_is_read_by_header_name():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "x.csv",
            "funding_time,real_funding_rate,instrument_name,funding_rate,contract_type\n"
            "1714492800000,0.000004880388991,ETH-USDT-SWAP,0.0000048804,SWAP\n",
        )
    assert parse_archive(buffer.getvalue()) == [("ETH-USDT-SWAP", 1714492800000, 0.000004880388991)]
    with pytest.raises(zipfile.BadZipFile):
        parse_archive(buffer.getvalue()[:40])


# --- simulator semantics --------------------------------------------------------------------


def test_sim_history_pages_newest_first_with_exclusive_bounds(server, monkeypatch):
    url = server.rest_url("okx") + HISTORY_PATH
    window = MODEL.settlements("okx", "BTC", NOW - okx_sim.REST_HISTORY, NOW)  # ~3 months, 281 rows
    full = httpx.get(url, params={"instId": "BTC-USDT-SWAP", "limit": 1000}).json()["data"]  # capped at 400
    times = [int(r["fundingTime"]) for r in full]
    assert times == [epoch_ms(t) for t in reversed(window["funding_time"].to_list())]  # newest first
    assert [float(r["realizedRate"]) for r in full] == window["rate"].reverse().to_list()
    assert sum(r["realizedRate"] != r["fundingRate"] for r in full) > len(full) / 2
    assert all(isinstance(v, str) for r in full for v in r.values())
    older = httpx.get(url, params={"instId": "BTC-USDT-SWAP", "after": times[1], "limit": 2}).json()["data"]
    assert [int(r["fundingTime"]) for r in older] == times[2:4]
    newer = httpx.get(url, params={"instId": "BTC-USDT-SWAP", "before": times[3], "limit": 2}).json()["data"]
    assert [int(r["fundingTime"]) for r in newer] == times[:2]  # `before` alone: still the newest
    between = httpx.get(url, params={"instId": "BTC-USDT-SWAP", "after": times[0], "before": times[3]}).json()["data"]
    assert [int(r["fundingTime"]) for r in between] == times[1:3]
    old = httpx.get(url, params={"instId": "BTC-USDT-SWAP", "after": times[-1]}).json()
    assert old == {"code": "0", "msg": "", "data": []}  # older than ~3 months: archives only
    unknown = httpx.get(url, params={"instId": "NOSUCH-USDT-SWAP"})
    assert unknown.status_code == 400 and unknown.json()["code"] == "51001"
    monkeypatch.setattr(server.sims["okx"], "history_limit_max", 100)
    assert len(httpx.get(url, params={"instId": "BTC-USDT-SWAP"}).json()["data"]) == 100  # default = max


# --- round trips ----------------------------------------------------------------------------


def test_settled_rest_window_spans_an_interval_episode_and_a_gap(client):
    # BTC: 4 h from 2025-11-01 12:00 with two settlements missing before 2025-11-04 00:00.
    got = assert_settled_matches(client, "BTC", dt.datetime(2025, 10, 20), dt.datetime(2025, 11, 20))
    assert set(got["interval_hours"]) == {4.0, 8.0}
    assert got.filter(pl.col("funding_time") == dt.datetime(2025, 11, 4))["interval_hours"].to_list() == [4.0]


def test_settled_from_archives_only_across_a_one_hour_episode(client):
    # ETH: 1 h from 2024-07-15 17:00 with three settlements missing before 2024-07-17 17:00.
    got = assert_settled_matches(client, "ETH", dt.datetime(2024, 7, 10), dt.datetime(2024, 7, 25))
    assert set(got["interval_hours"]) == {1.0, 8.0}


def test_settled_stitches_archive_months_to_the_rest_window(client):
    # June..October 2025 crosses several UTC+8 month buckets, an ETH gap (2025-07-08) and a
    # 4 h episode (2025-07-28), then enters the REST window on 2025-09-02.
    assert_settled_matches(client, "ETH", dt.datetime(2025, 6, 20), dt.datetime(2025, 10, 10, 8))


@pytest.mark.parametrize("extra, requests", [(0, 1), (1, 2)])
def test_settled_page_boundaries(server, extra, requests):
    # 8 h regime: [start - 1 day, end + 1 day] holds exactly 100 settlements (one page of a
    # client asking 100 a page, as before 2025), or 101.
    start = dt.datetime(2025, 9, 5)
    end = start + dt.timedelta(hours=8 * (93 + extra))
    context = dt.timedelta(days=1)
    assert MODEL.settlements("okx", "SOL", start - context, end + context + MS).height == 100 + extra

    class AskingFor100(Client):
        page_limit = 100

    client = make_client(server, AskingFor100)
    assert_settled_matches(client, "SOL", start, end)
    assert client.http.requests == requests


def test_settled_with_a_server_page_max_of_100(server, monkeypatch):
    monkeypatch.setattr(server.sims["okx"], "history_limit_max", 100)

    class AskingFor400(Client):
        page_limit = 400

    client = make_client(server, AskingFor400)
    assert_settled_matches(client, "BTC", dt.datetime(2025, 9, 10), dt.datetime(2025, 11, 28))
    assert client.http.requests >= 3  # ~240 settlements in pages of 100


def test_current_is_the_open_window_of_every_coin_in_one_request(server, client):
    got = client.current(["BTC", "ETH", "SOL"])
    assert client.http.requests == 1
    assert got["symbol"].to_list() == ["BTC", "ETH", "SOL"]
    for row in got.iter_rows(named=True):
        rate, funding_time, hours = server.feed.predicted("okx", row["symbol"])
        assert (row["rate"], row["funding_time"], row["interval_hours"]) == (rate, funding_time, hours)
        assert row["ts"] == NOW and row["kind"] == "predicted" and row["venue_symbol"] == f"{row['symbol']}-USDT-SWAP"


def test_current_interval_is_the_open_window_not_the_next_one():
    # BTC's 8 h window 00:00-08:00 on 2025-11-01 is followed by 4 h windows.
    at = dt.datetime(2025, 11, 1, 5)
    with SimServer(clock=SimClock(start=at, speed=0.0)) as sim:
        raw = httpx.get(sim.rest_url("okx") + CURRENT_PATH, params={"instId": "BTC-USDT-SWAP"}).json()["data"][0]
        assert int(raw["nextFundingTime"]) - int(raw["fundingTime"]) == 4 * 3_600_000
        client = make_client(sim)
        got = client.current(["BTC"])
    assert got["funding_time"].to_list() == [dt.datetime(2025, 11, 1, 8)]
    assert got["interval_hours"].to_list() == [8.0] == [MODEL.predicted("okx", "BTC", at)[2]]


# --- stream ---------------------------------------------------------------------------------


async def collect(client: Client, coins, frames: int, timeout_s: float = 5.0, **kwargs) -> list[pl.DataFrame]:
    got = []

    async def run():
        async with aclosing(client.stream(coins, **kwargs)) as stream:
            async for frame in stream:
                got.append(frame)
                if len(got) == frames:
                    return

    await asyncio.wait_for(run(), timeout_s)
    return got


def test_stream_yields_predictions_of_the_subscribed_coins():
    with SimServer(clock=SimClock(start=NOW, speed=0.0), push_interval_s=0.1) as sim:
        client = make_client(sim)
        frames = asyncio.run(collect(client, ["BTC", "SOL"], 4))
        prints = pl.concat(frames)
        assert set(prints["symbol"]) == {"BTC", "SOL"}
        for row in prints.iter_rows(named=True):
            assert (row["rate"], row["funding_time"], row["interval_hours"]) == sim.feed.predicted("okx", row["symbol"])
            assert row["kind"] == "predicted" and row["ts"] == NOW and row["source"] == "okx WS"


def test_idle_stream_survives_by_pinging_and_is_dropped_without():
    with SimServer(clock=SimClock(start=NOW, speed=0.0), push_interval_s=0.6) as sim:
        sim.sims["okx"].idle_timeout_s = 0.25
        pinging = make_client(sim)
        frames = asyncio.run(collect(pinging, ["ETH"], 3, ping_interval_s=0.1))  # pushes at 0, 0.6, 1.2 s
        assert len(frames) == 3 and pinging.pongs >= 5
        silent = make_client(sim)
        with pytest.raises(ConnectionClosed) as dropped:
            asyncio.run(collect(silent, ["ETH"], 3, ping_interval_s=5.0))
        assert dropped.value.rcvd.code == 4004 and silent.pongs == 0


def test_stream_skips_garbage_frames():
    faults = Faults(seed=3, ws_garbage_rate=0.5)
    with SimServer(clock=SimClock(start=NOW, speed=0.0), push_interval_s=0.05, faults=faults) as sim:
        client = make_client(sim)
        frames = asyncio.run(collect(client, ["BTC"], 10))
        assert len(frames) == 10 and client.skipped_frames > 0
        assert sim.sims["okx"].garbage_frames >= client.skipped_frames
        assert set(pl.concat(frames)["rate"]) == {sim.feed.predicted("okx", "BTC")[0]}


# --- faults and limits ----------------------------------------------------------------------


def test_settled_is_exact_through_rest_and_archive_faults():
    faults = Faults(error_rate=0.2, drop_rate=0.05, malformed_rate=0.05, retry_after_s=0.01)
    with SimServer(clock=SimClock(start=NOW, speed=0.0), faults=faults) as sim:
        client = make_client(sim)
        assert_settled_matches(client, "BTC", dt.datetime(2025, 6, 15), dt.datetime(2025, 10, 1))
        assert client.http.retries > 0


def test_a_burst_beyond_the_budget_gets_50011_and_the_client_completes(monkeypatch):
    class TightSim(okx_sim.Sim):
        budgets = {"public": Budget(2, 0.5)}

    monkeypatch.setitem(VENUE_SIMS, "okx", TightSim)
    with SimServer(clock=SimClock(start=NOW, speed=0.0), limits=True) as sim, httpx.Client() as raw:
        url = sim.rest_url("okx") + CURRENT_PATH
        answers = [raw.get(url, params={"instId": "ANY"}) for _ in range(6)]
        limited = [a for a in answers if a.status_code == 429]
        assert limited and limited[0].json()["code"] == "50011" and "Retry-After" in limited[0].headers

        class SmallPages(Client):
            page_limit = 20

        client = make_client(sim, SmallPages, budget=Budget(100, 0.1))  # far beyond the venue's budget
        assert_settled_matches(client, "SOL", dt.datetime(2025, 10, 1), dt.datetime(2025, 10, 20))
        assert client.http.retries > 0
