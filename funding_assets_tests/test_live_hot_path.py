"""The live path at tens of thousands of messages a second (DESIGN section 9), and that none of
what makes it fast changes what it produces.

- the clients read what arrived together as one burst and build one frame of it, every
  message a print, in arrival order (:func:`funding_assets.clients.recv_burst`,
  :func:`funding_assets.clients.stream_frame`); the collector still counts venue messages;
- the live strip's epoch-ms path gives the rows its datetime path gives;
- the live store inserts rows whose key is new without a replace, and the table is still
  "the last row of a key wins";
- the simulator computes a push's predictions at once (the same values as one by one),
  writes a push in one go with every fault applied per message, keeps its cadence, and
  quotes published settlements as its settlements say.
"""

import asyncio
import datetime as dt
import json
from contextlib import aclosing

import hypothesis.strategies as st
import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from funding_assets.clients import VenueError, client_for, parse_burst, prints_frame, recv_burst, stream_frame
from funding_assets.live.collector import Collector
from funding_assets.live.livestrip import LiveStrip, from_ms, rows_frame
from funding_assets.live.store import KEY, PUT_SCHEMA, LiveStore, live_store_path
from funding_assets.prints import PRINT_SCHEMA
from funding_assets.sim import FundingModel, universe
from funding_assets.sim.model import EPOCH as MODEL_EPOCH
from funding_assets.sim.server import Faults, Feed, VenueSim, WsSession, text_frame
from funding_assets.strip import SNAPSHOT_SCHEMA

MODEL = FundingModel()
H = dt.timedelta(hours=1)
T0 = dt.datetime(2025, 3, 10, 6)
UNIX = dt.datetime(1970, 1, 1)


def ms(when: dt.datetime) -> int:
    return (when - UNIX) // dt.timedelta(milliseconds=1)


# --- clients: bursts -----------------------------------------------------------------------------


async def _bursts(sends: list[list[str]]) -> list[list[str]]:
    """What recv_burst returns for messages a server writes in groups, each group in one write
    once the client has read the one before."""

    async def venue(connection) -> None:
        for group in sends:
            for text in group:
                connection.protocol.send_text(text.encode())
            # the group leaves in one write, as the simulator's pushes do
            connection.transport.write(b"".join(connection.protocol.data_to_send()))
            await connection.recv()  # the client read it
        await connection.wait_closed()

    got: list[list[str]] = []
    async with serve(venue, "127.0.0.1", 0) as server:
        async with connect(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}") as ws:
            for group in sends:
                read: list[str] = []
                while len(read) < len(group):
                    burst = await recv_burst(ws, 5.0)
                    got.append(burst)
                    read += burst
                await ws.send("read")
            with pytest.raises(TimeoutError):
                await recv_burst(ws, 0.05)  # nothing more: waits no longer than asked
    return got


def test_messages_that_arrive_together_are_read_as_one_burst_in_order():
    sends = [["a"], ["b", "c", "d"], ["e"], [f"m{i}" for i in range(50)]]
    assert asyncio.run(_bursts(sends)) == sends  # a lone message alone, each group as one burst


def test_a_burst_never_exceeds_its_limit():
    async def run() -> list[list[str]]:
        async def venue(connection) -> None:
            for i in range(30):
                connection.protocol.send_text(str(i).encode())
            connection.transport.write(b"".join(connection.protocol.data_to_send()))
            await connection.wait_closed()

        async with (
            serve(venue, "127.0.0.1", 0) as server,
            connect(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}") as ws,
        ):
            await asyncio.sleep(0.1)  # all 30 received
            return [await recv_burst(ws, 1.0, limit=8) for _ in range(4)]

    got = asyncio.run(run())
    assert [len(b) for b in got] == [8, 8, 8, 6] and [m for b in got for m in b] == [str(i) for i in range(30)]


ROW = st.fixed_dictionaries(
    {
        "coin": st.sampled_from(["BTC", "ETH"]),
        "ts_ms": st.integers(ms(T0), ms(T0) + 600_000),
        "funding_time_ms": st.sampled_from([ms(T0 + 2 * H), ms(T0 + 2 * H) + 18, ms(T0 + 3 * H)]),
        "rate": st.floats(-0.003, 0.003),
        "interval_hours": st.sampled_from([1.0, 8.0]),
        "kind": st.just("predicted"),
    }
)


@given(st.lists(ROW, max_size=30))
def test_a_stream_frame_is_every_message_in_arrival_order(rows):
    frame = stream_frame(rows, "bybit", "bybit WS")
    assert frame.schema == pl.Schema(PRINT_SCHEMA) and frame.height == len(rows)
    assert frame["symbol"].to_list() == [r["coin"] for r in rows]
    assert frame["ts"].to_list() == [from_ms(r["ts_ms"]) for r in rows]
    assert frame["funding_time"].to_list() == [
        from_ms((r["funding_time_ms"] + 30_000) // 60_000 * 60_000) for r in rows
    ]
    assert frame["rate"].to_list() == [r["rate"] for r in rows]
    # the REST builder merges duplicates and sorts: the same prints as a set
    assert prints_frame(rows, "bybit", "bybit WS").equals(
        frame.unique(keep="last", maintain_order=True)
        .sort("symbol", "contract", "ts", "funding_time", maintain_order=True)  # ties keep arrival order
        .unique(["symbol", "contract", "ts", "funding_time"], keep="last", maintain_order=True)
    )


class BurstClient:
    """A client whose stream yields bursts: a frame of several messages, counted as such."""

    venue = "bybit"

    def __init__(self, bursts: list[int]) -> None:
        self.bursts = bursts
        self.skipped_frames = 0
        self.stream_messages = 0

    def settled(self, coin, start, end):
        return prints_frame([], self.venue, "bybit REST")

    async def stream(self, coins, **kwargs):
        for k, n in enumerate(self.bursts):
            rows = [
                {
                    "coin": "BTC",
                    "ts_ms": ms(T0) + 1000 * k + i,
                    "funding_time_ms": ms(T0 + 2 * H),
                    "rate": 0.0001,
                    "interval_hours": 8.0,
                    "kind": "predicted",
                }
                for i in range(n)
            ]
            self.stream_messages += n
            yield stream_frame(rows, self.venue, "bybit WS")
        await asyncio.sleep(3600)

    def close(self):
        pass


def test_the_collector_counts_venue_messages_not_frames(tmp_path):
    client = BurstClient([3, 1, 5])
    collector = Collector(
        tmp_path, ["bybit"], ["BTC"], client_factory=lambda venue: client, clock=lambda: T0, settle_delay_s=None
    )

    async def run():
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        while collector.runtimes.get("bybit") is None or collector.runtimes["bybit"].prints < 9:
            await asyncio.sleep(0.01)
        stop.set()
        await task

    asyncio.run(asyncio.wait_for(run(), 20))
    rt = collector.runtimes["bybit"]
    assert (rt.messages, rt.frames, rt.prints) == (9, 3, 9)
    assert rt.status().messages == 9


# --- the live strip: epoch-ms rows ---------------------------------------------------------------


SERIES = [("binance", "BTC", "usdt", "BTCUSDT", 8.0), ("hyperliquid", "BTC", "usdc", "BTC", 1.0)]
PRINT = st.tuples(
    st.sampled_from(SERIES),
    st.integers(0, 40 * 3600),  # seconds after T0 the quote is stamped
    st.floats(-0.002, 0.002),
    st.booleans(),  # realised (a settlement) or predicted
)


def _prints(draws) -> list[tuple]:
    out = []
    for (venue, coin, contract, name, hours), seconds, rate, realised in draws:
        ts = T0 + dt.timedelta(seconds=seconds)
        window = dt.timedelta(hours=hours)
        end = UNIX + -(-(ts - UNIX) // window) * window
        if realised:
            ts = end
        out.append((venue, coin, contract, name, ts, end, rate, hours, "realised" if realised else "predicted", "t"))
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PRINT, min_size=1, max_size=60))
def test_the_epoch_ms_path_gives_the_rows_of_the_datetime_path(draws):
    prints = _prints(draws)
    history = _prints([(series, -k * 3600, 0.0001, True) for k in range(1, 80) for series in SERIES])
    by_datetime, by_ms = LiveStrip(), LiveStrip()
    by_datetime.update(history, intraday=False)
    by_ms.update(history, intraday=False)
    rows, jobs = by_datetime.update_deferred(prints)
    raw = [(*p[:4], ms(p[4]), ms(p[5]), *p[6:]) for p in prints]
    rows_ms, jobs_ms = by_ms.update_deferred(raw, epoch_ms=True)
    assert rows_frame(rows_ms, epoch_ms=True).equals(rows_frame(rows))
    assert [(j.lo, j.hi) for j in jobs_ms] == [(j.lo, j.hi) for j in jobs]
    assert rows_frame(rows).schema == pl.Schema(SNAPSHOT_SCHEMA)


# --- the live store: plain inserts of new keys, the last row of a key wins ----------------------


BATCH = st.lists(
    st.tuples(
        st.sampled_from(["intraday", "roll"]), st.sampled_from(["BTC", "ETH"]), st.integers(0, 6), st.floats(0, 1)
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(BATCH, min_size=1, max_size=5))
def test_the_store_keeps_the_last_row_of_every_key_however_batches_meet(tmp_path_factory, batches):
    path = live_store_path(tmp_path_factory.mktemp("store"))
    want: dict[tuple, float] = {}
    with LiveStore(path) as store:
        for batch in batches:
            rows = pl.DataFrame(
                {
                    "venue": "binance",
                    "symbol": [s for _, s, _, _ in batch],
                    "contract": "usdt",
                    "kind": [k for k, _, _, _ in batch],
                    "ts": [T0 + dt.timedelta(milliseconds=t) for _, _, t, _ in batch],
                    "funding_time": T0 + 2 * H,
                    "interval_hours": 8.0,
                    "annualisation": "apr",
                    **{f"b{i}": [b for *_, b in batch] for i in range(8)},
                    "n_filled": 0,
                    "as_of": T0,
                    "coverage": 1.0,
                    "min_coverage": 1.0,
                    "received_at": T0,
                }
            ).cast(PUT_SCHEMA)
            store.put(rows)
            store.flush()
            for kind, symbol, t, b in batch:
                want[(symbol, kind, ms(T0) + t)] = b
    with LiveStore(path) as reopened:  # and a store opened on those rows goes on the same way
        reopened.put(rows.with_columns(pl.col("b0") + 1))
        reopened.flush()
        for kind, symbol, t, b in batch:
            want[(symbol, kind, ms(T0) + t)] = b + 1
        stored = reopened._query("SELECT * FROM live_strip", [])
    assert stored.select(KEY).is_duplicated().sum() == 0
    got = {(r["symbol"], r["kind"], ms(r["ts"])): r["b0"] for r in stored.iter_rows(named=True)}
    assert got == pytest.approx(want)


# --- the simulator --------------------------------------------------------------------------------


NOW = dt.datetime(2026, 11, 20, 9, 17, 3, 123000)
LISTED = [i for v in ("binance", "bybit", "okx", "hyperliquid", "deribit") for i in universe.listing(v)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(LISTED), min_size=1, max_size=20, unique=True), st.integers(0, 5 * 365 * 86_400_000))
def test_predictions_of_many_instruments_at_once_are_each_ones_own(instruments, offset_ms):
    at = dt.datetime(2021, 1, 1) + dt.timedelta(milliseconds=offset_ms)
    many = MODEL.predicted_many(instruments, at)
    assert many == [MODEL.predicted(i.venue, i.symbol, at, contract=i.contract) for i in instruments]


@settings(max_examples=30, deadline=None)
@given(
    st.sampled_from([i for i in LISTED if i.venue in ("okx", "deribit") and universe.listed_at(i, NOW)]),
    st.integers(0, 3 * 86_400_000),
)
def test_tickers_quote_the_settlements_the_venue_published(instrument, offset_ms):
    now = NOW + dt.timedelta(milliseconds=offset_ms)
    feed = Feed(MODEL, lambda: now)
    venue, coin, contract = instrument.key
    since = now - 2 * dt.timedelta(days=1)
    published = feed.settlements(venue, coin, since, now + dt.timedelta(milliseconds=1), contract)
    want = published["rate"][-1] if published.height else None
    assert feed.last_published(instrument, now, since) == want
    everything = feed.settlements(venue, coin, MODEL_EPOCH, now + dt.timedelta(milliseconds=1), contract)
    assert feed.published_sum(instrument, now) == pytest.approx(everything["rate"].sum(), abs=1e-12)


def test_a_push_keeps_its_cadence_however_late_it_runs():
    sim = VenueSim(Feed(MODEL, lambda: NOW), Faults(), push_interval_s=0.025)
    assert sim.next_push(10.0, 10.01) == pytest.approx(10.025)  # 10 ms late: still due at 10.025
    assert sim.next_push(10.0, 10.2) == 10.2  # more than an interval late: from now, no burst


@pytest.mark.parametrize(
    "faults, delivered",
    [
        (Faults(), 7),
        (Faults(ws_drop_after=3), 3),  # the socket drops before the 4th message of the push
        (Faults(ws_stall_after=5), 5),  # silent after the 5th, within the one push
    ],
    ids=["clean", "drop", "stall"],
)
def test_one_push_in_one_write_applies_every_fault_per_message(faults, delivered):
    sim = VenueSim(Feed(MODEL, lambda: NOW), faults, push_interval_s=1.0)

    async def run() -> list[str]:
        async def venue(connection) -> None:
            try:
                await WsSession(connection, "/", sim).send_many([({"n": i}, 2) for i in range(7)])
            except (ConnectionError, ConnectionClosed):
                return
            await connection.wait_closed()

        got = []
        async with (
            serve(venue, "127.0.0.1", 0) as server,
            connect(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}") as ws,
        ):
            try:
                while True:
                    got.append(await asyncio.wait_for(ws.recv(), 0.5))
            except (ConnectionClosed, TimeoutError):
                pass
        return got

    got = asyncio.run(run())
    assert [json.loads(m)["n"] for m in got] == list(range(delivered))
    assert sim.prints_sent == 2 * delivered and sim.frames_sent == delivered


def test_garbage_frames_go_out_before_the_message_they_spoil():
    sim = VenueSim(Feed(MODEL, lambda: NOW), Faults(seed=5, ws_garbage_rate=0.5), push_interval_s=1.0)

    async def run() -> list[str]:
        async def venue(connection) -> None:
            await WsSession(connection, "/", sim).send_many([({"n": i}, 1) for i in range(40)])
            await connection.wait_closed()

        got = []
        async with (
            serve(venue, "127.0.0.1", 0) as server,
            connect(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}") as ws,
        ):
            while len(got) < 40 + sim.garbage_frames or not got:
                got.append(await asyncio.wait_for(ws.recv(), 2.0))
        return got

    got = asyncio.run(run())
    good = []
    for text in got:
        try:
            good.append(json.loads(text)["n"])
        except (ValueError, KeyError, TypeError):
            pass
    assert good == list(range(40)) and 0 < sim.garbage_frames == len(got) - 40 and sim.prints_sent == 40


# --- clients: a burst's rows, and the error that ends it ----------------------------------------


class Refused(Exception):
    """What a scripted message raises (a venue's error event)."""


MESSAGE = st.one_of(
    st.none(),  # an ack, a pong, junk
    st.integers(0, 99).map(lambda n: {"n": n}),  # one print row
    st.lists(st.integers(0, 99).map(lambda n: {"n": n}), max_size=3),  # a message of several prints
    st.just("refuse"),
)


@given(st.lists(MESSAGE, max_size=20))
def test_a_burst_hands_over_every_row_before_the_error_that_ends_it(messages):
    def row_of(message):
        if message == "refuse":
            raise Refused(len(seen))
        seen.append(message)
        return message

    seen: list = []
    rows, error = parse_burst(messages, row_of)
    stop = messages.index("refuse") if "refuse" in messages else len(messages)
    before = [m for m in messages[:stop] if m is not None]
    assert rows == [r for m in before for r in (m if isinstance(m, list) else [m])]
    assert seen == messages[:stop]  # nothing after the error is read
    assert (error is None) == (stop == len(messages))
    assert error is None or (isinstance(error, Refused) and error.args == (stop,))


T0_MS = ms(T0)
#: per venue: a push of BTC's main perpetual at ``ts`` (ms) and an error event of the venue
PUSHES = {
    "bybit": (
        lambda ts: {
            "topic": "tickers.BTCUSDT",
            "type": "snapshot",
            "data": {"symbol": "BTCUSDT", "fundingRate": "0.0001", "nextFundingTime": str(T0_MS + 7_200_000)},
            "cs": 1,
            "ts": ts,
        },
        {"op": "subscribe", "success": False, "ret_msg": "refused"},
    ),
    "okx": (
        lambda ts: {
            "arg": {"channel": "funding-rate", "instId": "BTC-USDT-SWAP"},
            "data": [
                {
                    "instType": "SWAP",
                    "instId": "BTC-USDT-SWAP",
                    "fundingRate": "0.0001",
                    "fundingTime": str(T0_MS + 7_200_000),
                    "nextFundingTime": str(T0_MS + 36_000_000),
                    "ts": str(ts),
                }
            ],
        },
        {"event": "error", "code": "60012", "msg": "refused"},
    ),
    "hyperliquid": (
        lambda ts: {"channel": "activeAssetCtx", "data": {"coin": "BTC", "ctx": {"funding": "0.0000125"}}},
        {"channel": "error", "data": "refused"},
    ),
    "deribit": (
        lambda ts: {
            "jsonrpc": "2.0",
            "method": "subscription",
            "params": {"channel": "ticker.BTC-PERPETUAL.100ms", "data": {"timestamp": ts, "funding_8h": 0.0001}},
        },
        {"jsonrpc": "2.0", "id": 77, "error": {"code": 11050, "message": "refused"}},
    ),
}


@pytest.mark.parametrize("venue", sorted(PUSHES))
def test_a_stream_hands_over_the_pushes_before_an_error_then_raises_it(venue):
    """The pushes that arrived in the same burst as a venue's error event are handed over as a
    frame before the stream raises: they were received, and no gap fill brings predictions back."""
    push, error = PUSHES[venue]

    async def run():
        async def server(connection) -> None:
            await connection.recv()  # the client's first request (subscription, heartbeat)
            texts = [json.dumps(push(T0_MS + 1000 * i)) for i in range(3)] + [json.dumps(error)]
            for text in texts:
                connection.protocol.send_text(text.encode())
            connection.transport.write(b"".join(connection.protocol.data_to_send()))  # one burst
            await connection.wait_closed()

        async with serve(server, "127.0.0.1", 0) as sim:
            ws = f"ws://127.0.0.1:{sim.sockets[0].getsockname()[1]}"
            kwargs = {"clock": lambda: T0} if venue == "hyperliquid" else {}
            client = client_for(venue, "http://127.0.0.1:9", ws, **kwargs)
            frames = []
            with pytest.raises(VenueError, match="refused"):
                async with aclosing(client.stream(["BTC"])) as stream:
                    async for frame in stream:
                        frames.append(frame)
            return frames, client

    frames, client = asyncio.run(asyncio.wait_for(run(), 20))
    assert [f.height for f in frames] == [3] and client.stream_messages == 3
    assert frames[0]["symbol"].to_list() == ["BTC"] * 3


def test_a_burst_that_emptied_a_full_queue_lets_the_connection_read_again():
    """More messages than the connection queues (websockets pauses reading past its high-water
    mark) are read as bursts, and what the venue sends after them still arrives: the reader is
    resumed once a burst has taken them."""
    sends = [[f"m{i}" for i in range(200)], ["after"], [f"n{i}" for i in range(40)]]
    got = asyncio.run(_bursts(sends))
    assert [m for b in got for m in b] == [m for group in sends for m in group]


def test_a_burst_keeps_binary_messages_as_bytes():
    async def run() -> list[list]:
        async def venue(connection) -> None:
            connection.protocol.send_text(b"a")
            connection.protocol.send_binary(b"\x00\x01")
            connection.protocol.send_text("é".encode())
            connection.transport.write(b"".join(connection.protocol.data_to_send()))
            await connection.wait_closed()

        async with (
            serve(venue, "127.0.0.1", 0) as server,
            connect(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}") as ws,
        ):
            await asyncio.sleep(0.1)  # all three received
            return await recv_burst(ws, 1.0)

    assert asyncio.run(run()) == ["a", b"\x00\x01", "é"]


@given(st.binary(max_size=70_000) | st.sampled_from([b"x" * n for n in (125, 126, 65_535, 65_536)]))
@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
def test_a_prebuilt_text_frame_is_the_frame_websockets_writes(data):
    assert text_frame(data) == Frame(Opcode.TEXT, data).serialize(mask=False, extensions=[])


def test_a_push_without_extensions_or_faults_goes_out_as_prebuilt_frames():
    sim = VenueSim(Feed(MODEL, lambda: NOW), Faults(), push_interval_s=1.0)
    payloads = [{"n": i, "rate": 1e-05 * i, "name": "é"} for i in range(5)] + ["pong"]

    async def run() -> list[str]:
        async def venue(connection) -> None:
            assert not connection.protocol.extensions  # the fast path is taken
            await WsSession(connection, "/", sim).send_many([(p, 1) for p in payloads])
            await connection.wait_closed()

        async with (
            serve(venue, "127.0.0.1", 0, compression=None) as server,
            connect(f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}", compression=None) as ws,
        ):
            return [await asyncio.wait_for(ws.recv(), 2.0) for _ in payloads]

    got = asyncio.run(run())
    assert [json.loads(m) for m in got[:-1]] == payloads[:-1] and got[-1] == "pong"
    assert sim.frames_sent == len(payloads) and sim.prints_sent == len(payloads)


JSON_VALUE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@given(JSON_VALUE)
def test_orjson_reads_what_json_reads(value):
    """The clients decode stream messages with orjson: the same Python objects (floats to the
    bit) as ``json.loads``, from the simulator's orjson text and from ``json.dumps`` text alike."""
    for text in (json.dumps(value), orjson.dumps(value).decode()):
        assert repr(orjson.loads(text)) == repr(json.loads(text)) == repr(value)
