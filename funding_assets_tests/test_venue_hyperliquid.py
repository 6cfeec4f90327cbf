"""Hyperliquid: the parsers on real payloads, and the client against the simulator.

Fixture tests read ../shared/fixtures (skipped where it is absent) and check hand-written
values. Round trips run the client against a :class:`SimServer` whose clock is frozen at
2025-06-15 02:17:31.250 UTC, when every coin's live estimate is off the 0.0000125 baseline,
and compare with the model exactly.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import polars as pl
import pytest
from websockets.exceptions import ConnectionClosed

from funding_assets.clients import Budget, HttpClient, VenueError, client_for, instruments_of, prints_frame
from funding_assets.clients import hyperliquid as hl
from funding_assets.sim import FundingModel
from funding_assets.sim import venues as sim_venues
from funding_assets.sim.server import Faults, Request, SimClock, SimServer
from funding_assets.sim.venues.hyperliquid import Sim

VENUE = "hyperliquid"
SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "fixtures"
needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"{FIXTURES} is not present")

NOW = dt.datetime(2025, 6, 15, 2, 17, 31, 250_000)
NOW_MS = 1749953851250
NEXT_HOUR = dt.datetime(2025, 6, 15, 3)
MS = dt.timedelta(milliseconds=1)
H = dt.timedelta(hours=1)
COMPARED = ["symbol", "venue_symbol", "ts", "funding_time", "rate", "interval_hours", "kind"]
FAULTS = Faults(seed=3, error_rate=0.2, drop_rate=0.05, malformed_rate=0.05, retry_after_s=0.01, ws_garbage_rate=0.3)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def load(relative: str):
    return json.loads((FIXTURES / relative).read_text())


def frame_of(rows: list[dict]) -> pl.DataFrame:
    return prints_frame(rows, VENUE, "fixture")


def model_rows(coin: str, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """The model's settlements with funding_time in [start, end] (end inclusive, like settled())."""
    return FundingModel().settlements(VENUE, coin, start, end + MS).select(COMPARED)


async def collect(stream, done: Callable[[list[pl.DataFrame]], bool], timeout_s: float = 5.0) -> list[pl.DataFrame]:
    """Frames from ``stream`` until ``done(frames)``; fails on timeout."""
    frames: list[pl.DataFrame] = []

    async def run() -> None:
        async for frame in stream:
            frames.append(frame)
            if done(frames):
                return

    try:
        await asyncio.wait_for(run(), timeout_s)
    finally:
        await stream.aclose()
    return frames


@pytest.fixture(scope="module")
def server():
    with SimServer(clock=SimClock(start=NOW, speed=0.0), push_interval_s=0.05) as sim:
        yield sim


@pytest.fixture(scope="module")
def faulty_server():
    with SimServer(clock=SimClock(start=NOW, speed=0.0), faults=FAULTS, push_interval_s=0.02) as sim:
        yield sim


@pytest.fixture
def new_client():
    """``new_client(server, budget=...)``: a client of ``server``, closed after the test."""
    made: list[hl.Client] = []

    def build(server: SimServer, budget: Budget | dict = hl.SPEC.budgets) -> hl.Client:
        http = HttpClient(VENUE, server.rest_url(VENUE), budget, backoff_s=0.01, timeout_s=2)
        made.append(client_for(VENUE, server.rest_url(VENUE), server.ws_url(VENUE), http=http, clock=server.clock))
        return made[-1]

    yield build
    for each in made:
        each.close()


@pytest.fixture
def client(server, new_client):
    return new_client(server)


# --- fixtures: fundingHistory -----------------------------------------------------------


@pytest.fixture(scope="module")
def history_1038() -> pl.DataFrame:
    return frame_of(
        hl.parse_funding_history("BTC", load("hyperliquid/hl_fundingHistory_BTC_start1681923833000_raw.json"))
    )


@needs_fixtures
def test_funding_history_file_spans_the_8h_to_1h_switch(history_1038):
    prints = history_1038
    assert prints.height == 1038
    assert prints["kind"].unique().to_list() == ["realised"]
    assert (prints["funding_time"].dt.minute() == 0).all() and (prints["funding_time"].dt.second() == 0).all()
    eight = prints.filter(pl.col("interval_hours") == 8.0)
    assert eight.height == 82 and prints.filter(pl.col("interval_hours") == 1.0).height == 956
    assert eight["funding_time"].max() == utc("2023-06-08 00:00")
    first = prints.row(0, named=True)
    assert (first["funding_time"], first["ts"], first["rate"], first["interval_hours"]) == (
        utc("2023-05-12 00:00"),
        utc("2023-05-12 00:00:00.048"),
        -0.00061334,
        8.0,
    )
    around_switch = prints.filter(pl.col("funding_time").is_between(utc("2023-06-07 16:00"), utc("2023-06-08 02:00")))
    assert around_switch.select("funding_time", "rate", "interval_hours").rows() == [
        (utc("2023-06-07 16:00"), 0.0001, 8.0),
        (utc("2023-06-08 00:00"), 0.0001, 8.0),
        (utc("2023-06-08 01:00"), 0.0000125, 1.0),
        (utc("2023-06-08 02:00"), 0.0000125, 1.0),
    ]
    last = prints.row(-1, named=True)
    assert (last["funding_time"], last["ts"]) == (utc("2023-07-17 21:00"), utc("2023-07-17 21:00:00.065"))


@needs_fixtures
def test_funding_history_missing_hour_keeps_the_hourly_interval(history_1038):
    around_gap = history_1038.filter(
        pl.col("funding_time").is_between(utc("2023-07-02 18:00"), utc("2023-07-02 22:00"))
    )
    assert around_gap.select("funding_time", "interval_hours").rows() == [
        (utc("2023-07-02 18:00"), 1.0),
        (utc("2023-07-02 19:00"), 1.0),
        (utc("2023-07-02 21:00"), 1.0),  # 20:00 never settled: a 2 h gap, still hourly
        (utc("2023-07-02 22:00"), 1.0),
    ]
    assert around_gap.filter(pl.col("funding_time") == utc("2023-07-02 21:00"))["rate"].to_list() == [0.00004734]


@needs_fixtures
def test_funding_history_late_stamps_snap_to_their_hour(history_1038):
    late = history_1038.filter((pl.col("ts") - pl.col("funding_time")) > dt.timedelta(seconds=2))
    assert late.select("funding_time", "ts", "rate", "interval_hours").rows() == [
        (utc("2023-05-23 08:00"), utc("2023-05-23 08:23:53.040"), -0.00017541, 8.0),
        (utc("2023-07-12 18:00"), utc("2023-07-12 18:00:05.457"), 0.00004173, 1.0),
    ]
    jitter_ms = (history_1038["ts"] - history_1038["funding_time"]).dt.total_milliseconds()
    assert jitter_ms.min() >= 0 and (jitter_ms < 2000).sum() == 1036  # all others within 2 s after


@needs_fixtures
def test_funding_history_with_end_time_is_34_eight_hourly_rows(history_1038):
    payload = load("hyperliquid/hl_fundingHistory_BTC_start1681923833000_end1684811870000_raw.json")
    prints = frame_of(hl.parse_funding_history("BTC", payload))
    assert prints.height == 34
    assert prints["interval_hours"].unique().to_list() == [8.0]
    assert prints["funding_time"].diff().drop_nulls().unique().to_list() == [dt.timedelta(hours=8)]
    assert (prints["funding_time"][0], prints["funding_time"][-1], prints["rate"][-1]) == (
        utc("2023-05-12 00:00"),
        utc("2023-05-23 00:00"),
        -0.00018991,
    )
    assert prints.equals(history_1038.head(34))


# --- fixtures: live payloads ------------------------------------------------------------

RECEIVED_MS = 1790517000123
RECEIVED = utc("2026-09-27 13:50:00.123")
RECEIVED_NEXT_HOUR = utc("2026-09-27 14:00")


@needs_fixtures
def test_meta_and_asset_ctxs_gives_one_hourly_estimate_per_listed_coin():
    prints = frame_of(
        hl.parse_meta_and_asset_ctxs(load("hyperliquid/hl_metaAndAssetCtxs_Yassi80_subset.json"), RECEIVED_MS)
    )
    assert prints.select("symbol", "contract", "ts", "funding_time", "rate", "interval_hours", "kind").rows() == [
        (coin, "usdc", RECEIVED, RECEIVED_NEXT_HOUR, 0.0000125, 1.0, "predicted")
        for coin in ("BTC", "ETH", "HYPE", "SOL")
    ]


@needs_fixtures
def test_meta_and_asset_ctxs_joins_by_index_and_skips_delisted():
    meta, ctxs = copy.deepcopy(load("hyperliquid/hl_metaAndAssetCtxs_Yassi80_subset.json"))
    for i, ctx in enumerate(ctxs):
        ctx["funding"] = f"0.00000{i + 1}"
    meta["universe"][1]["isDelisted"] = True  # ETH
    rows = hl.parse_meta_and_asset_ctxs([meta, ctxs], RECEIVED_MS)
    assert [(r["coin"], r["rate"]) for r in rows] == [("BTC", 0.000001), ("SOL", 0.000003), ("HYPE", 0.000004)]
    with pytest.raises(ValueError, match="universe"):
        hl.parse_meta_and_asset_ctxs([meta, ctxs[:3]], RECEIVED_MS)


@needs_fixtures
def test_meta_2023_universe_maps_positions_to_canonical_coins():
    meta = load("hyperliquid/hl_meta_2023-07-17_raw.json")
    coins = hl.universe_coins(meta)
    assert len(coins) == 28 and all(coins)
    assert (coins[0], coins[1], coins[5]) == ("BTC", "ETH", "SOL")
    assert hl.universe_names(meta)[15] == "kPEPE" and coins[15] == "PEPE"  # 1000 PEPE a unit


@needs_fixtures
def test_predicted_fundings_keep_each_venues_own_interval():
    rows = hl.parse_predicted_fundings(load("hyperliquid/hl_predictedFundings_Yassi80_subset.json"), RECEIVED_MS)
    got = {(r["coin"], r["venue"]): (r["rate"], r["interval_hours"], r["funding_time_ms"]) for r in rows}
    assert got == {
        ("BTC", "binance"): (0.00003866, 8.0, 1790524800000),
        ("BTC", "hyperliquid"): (0.0000125, 1.0, 1790517600000),
        ("BTC", "bybit"): (0.0000501, 8.0, 1790524800000),
        ("ETH", "binance"): (0.00009363, 8.0, 1790524800000),
        ("ETH", "hyperliquid"): (0.0000125, 1.0, 1790517600000),
        ("ETH", "bybit"): (0.00006392, 8.0, 1790524800000),
        ("HYPE", "hyperliquid"): (0.0000125, 1.0, 1790517600000),  # its BinPerp and BybitPerp are null
        ("SOL", "binance"): (0.00000564, 8.0, 1790524800000),
        ("SOL", "hyperliquid"): (0.0000125, 1.0, 1790517600000),
        ("SOL", "bybit"): (0.0001, 8.0, 1790524800000),
    }
    assert {r["kind"] for r in rows} == {"predicted"} and {r["ts_ms"] for r in rows} == {RECEIVED_MS}


@needs_fixtures
def test_predicted_fundings_skip_null_entries_and_entries_without_interval():
    payload = copy.deepcopy(load("hyperliquid/hl_predictedFundings_Yassi80_subset.json"))
    by_coin = dict(payload)
    hype_as_sol = ["SOL", by_coin["HYPE"]]  # HYPE's BinPerp and BybitPerp entries are null
    del by_coin["BTC"][0][1]["fundingIntervalHours"]  # as seen live for some BinPerp coins
    rows = hl.parse_predicted_fundings([["BTC", by_coin["BTC"]], hype_as_sol], RECEIVED_MS)
    assert [(r["coin"], r["venue"]) for r in rows] == [("BTC", "hyperliquid"), ("BTC", "bybit"), ("SOL", "hyperliquid")]


@needs_fixtures
def test_ws_active_asset_ctx_btc_is_a_predicted_hourly_print():
    row = hl.parse_ws_message(load("ws/hl_ws_activeAssetCtx_BTC.json"), RECEIVED_MS)
    assert row == {
        "coin": "BTC",
        "ts_ms": RECEIVED_MS,
        "funding_time_ms": 1790517600000,
        "rate": 0.0000052974,
        "interval_hours": 1.0,
        "kind": "predicted",
    }
    on_the_hour = hl.parse_ws_message(load("ws/hl_ws_activeAssetCtx_BTC.json"), 1790517600000)
    assert on_the_hour["funding_time_ms"] == 1790521200000  # a quote at 14:00:00.000 is for the hour to 15:00


@needs_fixtures
def test_ws_bookless_and_hip3_coins_do_not_break_the_stream(client):
    bookless = load("ws/hl_ws_activeAssetCtx_MATIC_bookless_nulls.json")
    hip3 = load("ws/hl_ws_activeAssetCtx_xyzAAPL_2026-07-31_captured.json")
    assert hl.parse_ws_message(bookless, RECEIVED_MS)["rate"] == 0.0  # null premium/midPx/impactPxs
    assert hl.parse_ws_message(hip3, RECEIVED_MS) is None  # "xyz:AAPL": a HIP-3 dex, not listed
    assert client._stream_frame(json.dumps(hip3)) is None
    assert client._stream_frame(json.dumps(bookless))["rate"].to_list() == [0.0]
    wanted = instruments_of("hyperliquid", ["BTC"])
    assert client._stream_frame(json.dumps(bookless), wanted) is None  # MATIC was not subscribed
    bookless["data"]["coin"] = "BTC"
    frame = client._stream_frame(json.dumps(bookless), wanted)
    assert frame.select("symbol", "contract", "venue_symbol", "rate").rows() == [("BTC", "usdc", "BTC", 0.0)]
    assert client.skipped_frames == 0


def test_stream_frames_skip_junk_and_raise_on_venue_errors(client):
    for junk in ("not json", '{"channel":"activeAssetCtx","data":{"coin":"BTC"}}', "[1, 2]"):
        assert client._stream_frame(junk) is None
    assert client.skipped_frames == 3
    assert client._stream_frame('{"channel":"pong"}') is None and client.pongs == 1
    with pytest.raises(VenueError, match="Invalid subscription"):
        client._stream_frame('{"channel":"error","data":"Invalid subscription {}"}')


# --- the simulator speaks Hyperliquid ---------------------------------------------------


def info(server: SimServer, body) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(server.rest_url(VENUE) + "/info", content=content)


def test_sim_funding_history_bounds_order_page_size_and_shapes(server):
    start_ms = 1735689600000  # 2025-01-01 00:00
    rows = info(server, {"type": "fundingHistory", "coin": "BTC", "startTime": start_ms}).json()
    assert len(rows) == 500 and [r["time"] for r in rows] == sorted(r["time"] for r in rows)
    assert all(
        isinstance(r["fundingRate"], str) and isinstance(r["premium"], str) and isinstance(r["time"], int) for r in rows
    )
    assert all(10 <= r["time"] % 3_600_000 <= 1400 for r in rows)
    first, third = rows[0]["time"], rows[2]["time"]
    both_ends = info(server, {"type": "fundingHistory", "coin": "BTC", "startTime": first, "endTime": third}).json()
    assert [r["time"] for r in both_ends] == [r["time"] for r in rows[:3]]  # startTime and endTime inclusive
    assert info(
        server, {"type": "fundingHistory", "coin": "BTC", "startTime": first + 1, "endTime": third - 1}
    ).json() == [rows[1]]
    latest = info(server, {"type": "fundingHistory", "coin": "BTC", "startTime": NOW_MS - 3 * 3_600_000}).json()
    # 00:00, 01:00 and 02:00 have settled by 02:17; 03:00 has not
    assert [r["time"] // 3_600_000 * 3_600_000 for r in latest] == [1749945600000, 1749949200000, 1749952800000]


def test_sim_errors_and_weights_are_the_venues(server):
    assert (response := info(server, {"type": "fundingHistory", "coin": "NOSUCH", "startTime": 0})).status_code == 500
    assert response.text == "null"
    assert info(server, {"type": "fundingHistory", "coin": "BTC"}).status_code == 422
    assert info(server, {"type": "candles"}).status_code == 422
    assert info(server, b"{not json").status_code == 400
    assert httpx.get(server.rest_url(VENUE) + "/info").status_code == 405
    sim = server.sims[VENUE]

    def request(body: dict) -> Request:
        return Request("POST", "/info", {}, json.dumps(body).encode())

    assert sim.cost(request({"type": "metaAndAssetCtxs"})) == 20
    assert sim.cost(request({"type": "fundingHistory", "coin": "BTC", "startTime": 1735689600000})) == 20 + 500 // 20
    assert sim.cost(request({"type": "fundingHistory", "coin": "BTC", "startTime": NOW_MS - 3 * 3_600_000})) == 20


def test_sim_universe_keeps_delisted_bookless_coins_in_place(server):
    meta, ctxs = info(server, {"type": "metaAndAssetCtxs"}).json()
    names = [a["name"] for a in meta["universe"]]
    assert names[:3] == ["BTC", "ETH", "SOL"] and len(ctxs) == len(names)
    delisted = [i for i, a in enumerate(meta["universe"]) if a.get("isDelisted")]
    assert delisted and all(ctxs[i]["premium"] is None and ctxs[i]["impactPxs"] is None for i in delisted)
    assert all("isDelisted" not in a for i, a in enumerate(meta["universe"]) if i not in delisted)
    assert all(isinstance(ctx["funding"], str) for ctx in ctxs)
    assert info(server, {"type": "meta"}).json() == meta


# --- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("coin", "start", "end"),
    [
        ("BTC", utc("2025-04-01 00:00"), utc("2025-05-13 12:00")),  # 3 pages, gaps on 04-05 and 05-06
        ("BTC", utc("2023-06-01 00:00"), utc("2023-07-01 00:00")),  # 8 h -> 1 h on 06-08, gap on 06-27
        ("ETH", utc("2023-04-20 00:00"), utc("2023-06-10 00:00")),  # 8 h era gap on 05-08, then the switch
        ("SOL", utc("2025-06-01 00:00"), utc("2025-06-20 00:00")),  # gap on 06-04; ends after the sim's now
        # The first settlement's interval needs the one before it (the lookback):
        ("BTC", utc("2023-06-08 00:00"), utc("2023-06-08 12:00")),  # the last 8 h one, then hourly
        ("BTC", utc("2025-06-13 00:00"), utc("2025-06-13 12:00")),  # hourly, then a missing hour (01:00)
    ],
)
def test_settled_equals_the_model(client, coin, start, end):
    got = client.settled(coin, start, end)
    expected = model_rows(coin, start, min(end, NOW))
    assert expected.height > 0
    assert got.select(COMPARED).equals(expected)
    assert got["source"].unique().to_list() == [client.source]


@pytest.mark.parametrize("extra_rows", [0, 1])
def test_settled_across_a_page_boundary(client, extra_rows):
    """The client fetches LOOKBACK before start: this range fills exactly 500 (+extra) rows."""
    span = (hl.PAGE_ROWS - 1 - hl.LOOKBACK // H + extra_rows) * H
    start = next(  # the first day from 2025-03-01 whose range has no missing settlement
        day
        for day in (utc("2025-03-01 00:00") + k * 24 * H for k in range(60))
        if model_rows("BTC", day - hl.LOOKBACK, day + span).height == hl.PAGE_ROWS + extra_rows
    )
    end = start + span
    got = client.settled("BTC", start, end)
    assert got.select(COMPARED).equals(model_rows("BTC", start, end))
    assert client.http.requests == 2  # a full page, then the short (or empty) one that ends it


def test_current_equals_the_open_window(client, server):
    # A coin off the 0.00125 % baseline at the frozen instant, so equality means something.
    off = next(
        i.symbol
        for i in server.feed.listing(VENUE)
        if server.feed.trading(i) and server.feed.predicted(VENUE, i.symbol)[0] != 0.0000125
    )
    got = client.current(["SOL", "BTC", "ETH", off])
    assert got["symbol"].to_list() == sorted(["BTC", "ETH", "SOL", off])
    for row in got.iter_rows(named=True):
        rate, funding_time, hours = server.feed.predicted(VENUE, row["symbol"])
        assert (row["rate"], row["funding_time"], row["interval_hours"]) == (rate, funding_time, hours)
        assert (row["ts"], row["funding_time"], row["kind"]) == (NOW, NEXT_HOUR, "predicted")
    assert client.http.requests == 1


def test_predicted_fundings_echo_each_venues_open_window(client, server):
    got = client.predicted_fundings(["BTC"])
    assert got["venue"].to_list() == ["binance", "bybit", "hyperliquid"]
    for row in got.iter_rows(named=True):
        assert (row["rate"], row["funding_time"], row["interval_hours"]) == server.feed.predicted(row["venue"], "BTC")


def test_stream_yields_predicted_prints_and_gets_pongs(client, server):
    frames = asyncio.run(
        collect(client.stream(["BTC", "SOL"], ping_interval_s=0.05), lambda f: len(f) >= 8 and client.pongs >= 2)
    )
    prints = pl.concat(frames)
    assert set(prints["symbol"]) == {"BTC", "SOL"} and prints.height == client.stream_messages  # a print a message
    for row in prints.iter_rows(named=True):
        rate, funding_time, hours = server.feed.predicted(VENUE, row["symbol"])
        assert (row["rate"], row["funding_time"], row["interval_hours"], row["ts"], row["kind"]) == (
            rate,
            funding_time,
            hours,
            NOW,
            "predicted",
        )
    assert client.pings_sent >= client.pongs >= 2 and client.skipped_frames == 0


# --- keep-alive: the venue drops a connection it has sent nothing on for 60 s ----------


@pytest.fixture
def strict_server():
    with SimServer(clock=SimClock(start=NOW, speed=0.0), push_interval_s=0.05) as sim:
        sim.sims[VENUE].idle_timeout_s = 0.3
        yield sim


def test_stream_pings_keep_an_idle_connection_open(strict_server, new_client):
    client = new_client(strict_server)

    async def run() -> list[pl.DataFrame]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0  # more than three idle timeouts
        return await collect(client.stream(["ETH"], ping_interval_s=0.1), lambda f: loop.time() > deadline)

    frames = asyncio.run(run())
    assert len(frames) >= 10 and client.pongs >= 3


def test_stream_pushes_alone_keep_the_connection_open(strict_server, new_client):
    client = new_client(strict_server)

    async def run() -> list[pl.DataFrame]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0  # more than three idle timeouts without a client ping
        return await collect(client.stream(["ETH"], ping_interval_s=30.0), lambda f: loop.time() > deadline)

    assert len(asyncio.run(run())) >= 10 and client.pings_sent == 0
    assert client.pings_sent == 0


# --- faults and limits ------------------------------------------------------------------


def test_settled_survives_rest_faults(faulty_server, new_client):
    client = new_client(faulty_server)
    start, end = utc("2025-04-20 00:00"), utc("2025-06-01 00:00")
    got = client.settled("ETH", start, end)
    assert got.select(COMPARED).equals(model_rows("ETH", start, end))
    assert client.http.retries > 0


def test_stream_skips_garbage_frames(faulty_server, new_client):
    client = new_client(faulty_server)
    frames = asyncio.run(collect(client.stream(["BTC"]), lambda f: len(f) >= 15))
    assert faulty_server.sims[VENUE].garbage_frames > 0 and client.skipped_frames > 0
    assert pl.concat(frames)["rate"].unique().to_list() == [faulty_server.feed.predicted(VENUE, "BTC")[0]]


@pytest.mark.parametrize(
    ("faults", "raised"),
    [(Faults(ws_stall_after=3), ConnectionError), (Faults(ws_drop_after=3), ConnectionClosed)],
    ids=["silent venue", "dropped socket"],
)
def test_stream_raises_when_the_connection_dies(faults, raised, new_client):
    with SimServer(clock=SimClock(start=NOW, speed=0.0), faults=faults, push_interval_s=0.05) as sim:
        client = new_client(sim)
        with pytest.raises(raised):
            asyncio.run(collect(client.stream(["BTC"], ping_interval_s=0.1), lambda f: False))


class TinySim(Sim):
    """Hyperliquid with a budget of 60 weight a second (three info reads), counting refusals."""

    budgets = {"weight": Budget(60, 1.0)}
    refused = 0

    def error(self, status, message):
        if status == self.limit_status:
            self.refused += 1
        return super().error(status, message)


@pytest.fixture
def tiny_server(monkeypatch):
    monkeypatch.setitem(sim_venues.VENUE_SIMS, VENUE, TinySim)
    with SimServer(clock=SimClock(start=NOW, speed=0.0), limits=True) as sim:
        yield sim


def test_a_burst_past_the_budget_is_refused_with_429_and_still_completes(tiny_server, new_client):
    client = new_client(tiny_server)  # believes in the real 1200/min: bursts
    results = [client.current(["BTC"])["rate"].item() for _ in range(6)]
    assert tiny_server.sims[VENUE].refused > 0 and client.http.retries > 0
    assert results == [tiny_server.feed.predicted(VENUE, "BTC")[0]] * 6


def test_a_client_within_the_weights_is_never_refused(tiny_server, new_client):
    # 10 % below the venue's budget: the server's bucket runs a request's latency behind ours.
    tiny = TinySim.budgets["weight"]
    client = new_client(tiny_server, budget=Budget(tiny.requests * 0.9, tiny.period_s))
    start = utc("2025-03-01 00:00")
    end = start + (hl.PAGE_ROWS - hl.LOOKBACK // H) * H  # a 500-row page (weight 45), then one more row
    assert client.settled("BTC", start, end).select(COMPARED).equals(model_rows("BTC", start, end))
    for _ in range(3):
        client.current(["ETH"])
    assert tiny_server.sims[VENUE].refused == 0 and client.http.retries == 0
