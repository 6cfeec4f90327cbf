"""The venue simulator: all five venues' REST and WebSocket protocols on loopback.

A peer of the real venues, not a test helper: the clients cannot tell it from the venue
except by base URL. It serves the deterministic :class:`~funding_assets.sim.FundingModel`
(settlements up to the simulated now, live predictions of the open window) through each
venue's own paths, query semantics, payload shapes and stream protocol, which live in
:mod:`funding_assets.sim.venues`.

REST is ``http://127.0.0.1:<port>/<venue>/<venue path>`` and streams are
``ws://127.0.0.1:<ws port>/<venue>/<venue path>``. Faults are injected on request
(:class:`Faults`); the venues' published request budgets are enforced on request (``limits``).
Only loopback addresses are ever bound.

Streams push every ``push_interval_s`` on a fixed cadence (:meth:`VenueSim.next_push`), each
push all of a connection's instruments at one instant: their predictions in one call of the
model (:meth:`Feed.predicted_many`), built off the event loop (a worker thread), what moves
at most hourly (premiums, published settlements) remembered for the day
(:meth:`Feed.daily`), written in one go with the faults applied per message
(:meth:`WsSession.send_many`). That is what lets one simulator offer tens of thousands of
messages a second over hundreds of streams.
"""

import asyncio
import bisect
import dataclasses
import datetime as dt
import errno
import math
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import polars as pl
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from ..clients.http import Budget
from ..instruments import Instrument
from ..prints import PRINT_SCHEMA
from ..venues import SPECS
from . import universe
from .model import EPOCH as MODEL_EPOCH
from .model import FundingModel

LOOPBACK = "127.0.0.1"
MS = dt.timedelta(milliseconds=1)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
UNIX = dt.datetime(1970, 1, 1)
_MISSING = object()


class PortInUseError(OSError):
    """A port the simulator was asked to listen on is taken (``kind``: ``REST`` or ``WebSocket``)."""

    def __init__(self, kind: str, port: int) -> None:
        super().__init__(errno.EADDRINUSE, f"{kind} port {port} on {LOOPBACK} is already in use")
        self.kind = kind
        self.port = port

    def __str__(self) -> str:
        return self.strerror


def _listen(kind: str, port: int, bind: Callable[[], Any]) -> Any:
    """``bind()``, turning "address in use" into :class:`PortInUseError`."""
    try:
        return bind()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(kind, port) from None
        raise


def _ws_socket(port: int) -> socket.socket:
    """A listening loopback TCP socket for the WebSocket server, bound now so a taken port
    fails in the constructor rather than in the server thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


class SimClock:
    """The simulator's now: wall-clock UTC, or a chosen start running ``speed`` times faster."""

    def __init__(self, start: dt.datetime | None = None, speed: float = 1.0) -> None:
        self.start = start
        self.speed = speed
        self._t0 = time.monotonic()

    def __call__(self) -> dt.datetime:
        if self.start is None:
            return dt.datetime.now(dt.UTC).replace(tzinfo=None)
        return self.start + dt.timedelta(seconds=(time.monotonic() - self._t0) * self.speed)


@dataclasses.dataclass(frozen=True)
class Faults:
    """What to break, as shares of requests or frames (0 = never). Deterministic per ``seed``.

    REST: ``error_rate`` of requests get one of ``error_statuses`` (with ``Retry-After:
    retry_after_s``), ``drop_rate`` have their connection closed without an answer,
    ``stall_rate`` are held ``stall_s`` before answering (past a client's timeout), and
    ``malformed_rate`` get a truncated body. WebSocket: ``ws_garbage_rate`` of frames are
    replaced by malformed or truncated ones, each connection is dropped without a close
    frame after ``ws_drop_after`` frames or falls silent after ``ws_stall_after`` frames.
    ``missing`` settlements, as ``(venue, coin, funding_time)``, are never reported.
    """

    seed: int = 0
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (429, 418, 403, 500, 502, 503)
    retry_after_s: float = 0.05
    drop_rate: float = 0.0
    stall_rate: float = 0.0
    stall_s: float = 2.0
    malformed_rate: float = 0.0
    ws_garbage_rate: float = 0.0
    ws_drop_after: int | None = None
    ws_stall_after: int | None = None
    missing: frozenset[tuple[str, str, dt.datetime]] = frozenset()


@dataclasses.dataclass
class Request:
    method: str
    path: str  # after the /<venue> prefix, e.g. "/fapi/v1/fundingRate"
    query: dict[str, str]
    body: bytes


@dataclasses.dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer; ``obj`` may hold :class:`orjson.Fragment` parts (JSON text built ahead,
    such as a page of history rows)."""
    return Response(
        status, orjson.dumps(obj, option=_JSON_OPTIONS), {"Content-Type": "application/json", **(headers or {})}
    )


#: orjson writes what ``json.dumps`` wrote for the simulator's payloads (string keys, ints
#: and floats, numpy scalars as numbers).
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


class Feed:
    """What the venues know: the universe's instruments listed by now, their settlements up to
    now (minus the missing ones) and live estimates.

    An instrument is ``(venue, coin, contract)``; ``contract`` None is the venue's main
    perpetual of the coin. Instruments listed after the simulator's now are not known yet."""

    def __init__(self, model: FundingModel, clock: Callable[[], dt.datetime], missing: frozenset = frozenset()) -> None:
        self.model = model
        self.clock = clock
        self.missing = missing
        # what streams quote beside the live estimate, kept for one day (daily): (days since 1970, memo)
        self._memo: tuple[int, dict[tuple, Any]] = (-1, {})
        self._totals_lock = threading.Lock()
        self._totals: dict[tuple, tuple[dt.datetime, float]] = {}  # published_sum's running totals

    def listing(self, venue: str) -> list[Instrument]:
        """``venue``'s perpetuals listed by now, delisted ones included, sorted by key."""
        now = self.clock()
        return [i for i in universe.listing(venue, self.model.seed) if _listed_by(i, now)]

    def instrument(self, venue: str, name: str | None) -> Instrument | None:
        """The instrument ``venue`` names ``name`` (exact), if listed by now; else None."""
        found = universe.lookup(venue, name, self.model.seed) if isinstance(name, str) else None
        return found if found is not None and _listed_by(found, self.clock()) else None

    def trading(self, instrument: Instrument, now: dt.datetime | None = None) -> bool:
        """Listed and not delisted at ``now`` (default: the simulator's now)."""
        return universe.listed_at(instrument, self.clock() if now is None else now)

    def settlements(self, venue: str, coin: str, start: dt.datetime, end: dt.datetime, contract: str | None = None):
        """Realised prints with funding_time in [start, end) that have happened by now (the
        model has none outside the instrument's listing); empty for an instrument the venue
        never listed."""
        if universe.find(venue, coin, contract, self.model.seed) is None:
            return pl.DataFrame(schema=PRINT_SCHEMA)
        end = min(end, self.clock() + MS)
        if end <= start:
            return self.model.settlements(venue, coin, start, start, contract=contract)
        return self._settled(venue, coin, start, end, contract).filter(pl.col("ts") <= self.clock())

    def _settled(self, venue: str, coin: str, start: dt.datetime, end: dt.datetime, contract: str | None):
        """The model's settlements with funding_time in [start, end), minus the missing ones,
        published or not."""
        rows = self.model.settlements(venue, coin, start, end, contract=contract)
        if self.missing:
            gone = [t for v, c, t in self.missing if v == venue and c == coin]
            if gone:
                rows = rows.filter(~pl.col("funding_time").is_in(gone))
        return rows

    def predicted(
        self, venue: str, coin: str, contract: str | None = None, at: dt.datetime | None = None
    ) -> tuple[float, dt.datetime, float]:
        """(rate, funding_time, interval_hours) of the open window at ``at`` (the simulator's
        now by default), taken at the millisecond a message stamps: a message that reads the
        clock once for its timestamp and its rate says the model's estimate at that stamp."""
        when = self.clock() if at is None else at
        return self.model.predicted(
            venue, coin, when.replace(microsecond=when.microsecond // 1000 * 1000), contract=contract
        )

    def predicted_many(
        self, instruments: Sequence[Instrument], at: dt.datetime
    ) -> list[tuple[float, dt.datetime, float]]:
        """:meth:`predicted` of several instruments at one instant ``at`` (a stream's push
        quotes its instruments together), in one vectorised call of the model."""
        return self.model.predicted_many(instruments, at.replace(microsecond=at.microsecond // 1000 * 1000))

    def interval_hours(self, instrument: Instrument) -> float:
        """The instrument's native interval at the simulator's now (hours)."""
        i = instrument
        return self.model.interval_hours_at(i.venue, i.symbol, self.clock(), contract=i.contract)

    def daily(self, key: tuple, now: dt.datetime, make: Callable[[], Any]) -> Any:
        """``make()``, remembered under ``key`` for the rest of ``now``'s UTC day: what a stream
        quotes beside the live estimate moves at most hourly (a value of one hour has the hour
        in its key), and is built at most once an hour, not per push; a day's worth at a time
        where that is one query (premiums, settlements)."""
        day = (now - UNIX) // DAY
        held, memo = self._memo  # one (day, memo) pair, swapped whole: no lock on the hot path
        if held != day:
            memo = {}
            self._memo = (day, memo)
        value = memo.get(key, _MISSING)
        if value is _MISSING:
            value = memo[key] = make()  # two threads may both make it: the same value
        return value

    def hour_premium(self, instrument: Instrument, now: dt.datetime) -> float:
        """The instrument's mean premium over the hour holding ``now`` (decimal fraction of the
        index, :meth:`FundingModel.premium`), which tickers quote on every push."""
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        venue, coin, contract = instrument.key

        def make() -> list[float]:
            return self.model.premium(venue, coin, day, day + DAY, contract=contract)["premium"].to_list()

        return self.daily(("premium", instrument.key), now, make)[now.hour]

    def last_published(self, instrument: Instrument, now: dt.datetime, since: dt.datetime) -> float | None:
        """The last rate published by ``now`` whose funding_time is at or after ``since`` (at most
        two days before ``now``'s day), or None, as :meth:`settlements` would give it: what
        tickers quote beside the live estimate (OKX ``settFundingRate``)."""
        funding_ms, _, rates, count = self._recent(instrument, now)
        return rates[count - 1] if count and funding_ms[count - 1] >= (since - UNIX) // MS else None

    def published_sum(self, instrument: Instrument, now: dt.datetime) -> float:
        """The sum of every rate published by ``now`` (Deribit's ``interest_value``): a running
        total of the settlements before the two days before ``now``'s day, extended as the
        clock moves on, plus those since published by ``now``."""
        venue, coin, contract = instrument.key
        cut = now.replace(hour=0, minute=0, second=0, microsecond=0) - 2 * DAY
        with self._totals_lock:
            upto, total = self._totals.get(instrument.key, (MODEL_EPOCH, 0.0))
        if cut < upto:  # a clock set back: start over
            upto, total = MODEL_EPOCH, 0.0
        if cut > upto:
            total += float(self._settled(venue, coin, upto, cut, contract)["rate"].sum())
            with self._totals_lock:
                self._totals[instrument.key] = (cut, total)
        _, _, rates, count = self._recent(instrument, now)
        return total + sum(rates[:count])

    def _recent(self, instrument: Instrument, now: dt.datetime) -> tuple[list[int], list[int], list[float], int]:
        """(funding_time ms, ts ms, rate) of the settlements from two days before ``now``'s day
        to two hours after it ends, by ``ts``, and how many of them are published by ``now``."""
        venue, coin, contract = instrument.key
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)

        def make() -> tuple[list[int], list[int], list[float]]:
            rows = self._settled(venue, coin, day - 2 * DAY, day + DAY + 2 * HOUR, contract).sort("ts")
            return (
                rows["funding_time"].dt.epoch("ms").to_list(),
                rows["ts"].dt.epoch("ms").to_list(),
                rows["rate"].to_list(),
            )

        funding_ms, ts_ms, rates = self.daily(("recent", instrument.key), now, make)
        return funding_ms, ts_ms, rates, bisect.bisect_right(ts_ms, (now - UNIX) // MS)


def _listed_by(instrument: Instrument, now: dt.datetime) -> bool:
    return instrument.listed_at is None or instrument.listed_at <= now


def _encoded(payload: Any) -> bytes:
    """A stream message's bytes: text as it is, anything else as JSON."""
    return payload.encode() if isinstance(payload, str) else orjson.dumps(payload, option=_JSON_OPTIONS)


def text_frame(data: bytes) -> bytes:
    """A final, unmasked WebSocket text frame of ``data`` (RFC 6455 5.2: a server's frame
    without extensions), ready for the socket."""
    n = len(data)
    if n < 126:
        return bytes((0x81, n)) + data
    if n < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, n) + data
    return struct.pack("!BBQ", 0x81, 127, n) + data


class WsSession:
    """One client connection, with the faults of :class:`Faults` applied to what is sent."""

    def __init__(self, connection: ServerConnection, path: str, sim: "VenueSim") -> None:
        self.connection = connection
        self.path = path
        self.sim = sim
        self.sent = 0
        #: time.monotonic() of the last frame sent (or of the connection's opening).
        self.last_sent = time.monotonic()

    @property
    def feed(self) -> Feed:
        return self.sim.feed

    async def recv(self, timeout_s: float | None = None) -> str | None:
        """The next text message, or None if none arrives within ``timeout_s``."""
        try:
            message = await asyncio.wait_for(self.connection.recv(), timeout_s)
        except TimeoutError:
            return None
        return message if isinstance(message, str) else message.decode()

    async def send(self, payload: Any, *, counts_prints: int = 0) -> None:
        """Send ``payload`` (JSON-encoded unless already text), subject to the faults."""
        await self.send_many([(payload, counts_prints)])

    async def send_many(self, messages: Sequence[tuple[Any, int]]) -> None:
        """Send ``(payload, prints it carries)`` messages in order, each subject to the faults
        as :meth:`send` applies them, in one write to the socket: a push of many instruments
        at one instant costs one system call, not one per message (what lets one simulator
        thread offer tens of thousands of messages a second)."""
        if not messages:
            return
        faults = self.sim.faults
        protocol = self.connection.protocol
        if protocol.state is not State.OPEN:
            await self.connection.send("")  # raises the connection's ConnectionClosed
        if (
            not protocol.extensions
            and not faults.ws_garbage_rate
            and faults.ws_stall_after is None
            and faults.ws_drop_after is None
        ):
            self._send_frames(messages)
        else:
            await self._send_with_faults(messages)
        self._write()
        self.last_sent = time.monotonic()
        await self.connection.drain()

    def _send_frames(self, messages: Sequence[tuple[Any, int]]) -> None:
        """Queue ``messages`` as text frames built here in one piece (header + orjson text):
        what websockets' ``send_text`` writes for a server frame without extensions, at a
        fraction of its cost per message."""
        frames = [text_frame(_encoded(payload)) for payload, _ in messages]
        self._write()  # whatever the protocol holds goes first
        self.connection.transport.writelines(frames)
        self.sent += len(frames)
        self.sim.frames_sent += len(frames)
        self.sim.prints_sent += sum(prints for _, prints in messages)

    async def _send_with_faults(self, messages: Sequence[tuple[Any, int]]) -> None:
        """Queue ``messages`` through the protocol, each subject to the faults."""
        faults = self.sim.faults
        protocol = self.connection.protocol
        for payload, prints in messages:
            text = _encoded(payload).decode()
            if faults.ws_stall_after is not None and self.sent >= faults.ws_stall_after:
                self._write()
                await self.connection.wait_closed()  # silent: no data, no pong, until the client gives up
            if faults.ws_drop_after is not None and self.sent >= faults.ws_drop_after:
                self._write()
                self.connection.transport.abort()  # no close frame: a dropped socket
                raise ConnectionError("dropped by fault injection")
            if protocol.state is not State.OPEN:
                self._write()
                await self.connection.send(text)  # raises the connection's ConnectionClosed
            if faults.ws_garbage_rate and self.sim.chance(faults.ws_garbage_rate):
                protocol.send_text(self.sim.garble(text).encode())
                self.sim.garbage_frames += 1
            self.sent += 1
            protocol.send_text(text.encode())
            self.sim.frames_sent += 1
            self.sim.prints_sent += prints

    def _write(self) -> None:
        """Hand the frames the protocol holds to the transport in one write."""
        chunks = self.connection.protocol.data_to_send()
        transport = self.connection.transport
        data = [chunk for chunk in chunks if chunk]
        if data:
            transport.writelines(data)
        if len(data) < len(chunks):  # an empty chunk asks for the end of the stream, as in websockets
            if transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()


class VenueSim:
    """One venue's protocol. Subclasses answer REST requests and serve WebSocket sessions."""

    venue: str = ""
    #: Budgets enforced with ``limits``, by bucket; None: the venue's published ones (its spec).
    budgets: Mapping[str, Budget] | None = None
    limit_status: int = 429

    def __init__(self, feed: Feed, faults: Faults, push_interval_s: float) -> None:
        self.feed = feed
        self.faults = faults
        self.push_interval_s = push_interval_s
        self._rng = random.Random(f"{faults.seed}:{self.venue}")
        self._rng_lock = threading.Lock()
        self.prints_sent = 0
        self.frames_sent = 0  # data frames sent on every stream (garbage frames not counted)
        self.garbage_frames = 0

    def next_push(self, due: float, now: float) -> float:
        """When the push after one due at ``due`` is due (event-loop seconds): one
        ``push_interval_s`` later, a fixed cadence however late this one ran, so a stream
        offers the rate its interval says; a push more than an interval late starts again
        from ``now`` rather than bursting to catch up."""
        return max(due + self.push_interval_s, now)

    def chance(self, share: float) -> bool:
        with self._rng_lock:
            return self._rng.random() < share

    def garble(self, text: str) -> str:
        with self._rng_lock:
            cut = self._rng.randint(1, max(1, len(text) - 1))
        return text[:cut] if cut % 2 else "\x00not json" + text[cut:]

    def cost(self, request: Request) -> float:
        """Request units this request uses of its bucket."""
        return 1.0

    def bucket(self, request: Request) -> str | None:
        """The budget bucket this request draws on (None: the venue's first)."""
        return None

    def error(self, status: int, message: str) -> Response:
        """The venue's error envelope for an HTTP error status."""
        return json_response({"error": message}, status)

    def rest(self, request: Request) -> Response:
        return json_response({"error": f"unknown path {request.path}"}, 404)

    async def ws(self, session: WsSession) -> None:
        await session.connection.close(1008, "no stream at this path")


class _Bucket:
    """The server side of a venue budget: refuses (never waits) when it is spent.

    It holds one period's units, starts full and refills at the budget's rate; ``clock``
    (seconds, monotonic) refills it, and tests pass one they advance themselves.
    ``granted`` counts the units taken, ``refused`` the requests turned away."""

    def __init__(self, budget: Budget, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget
        self.clock = clock
        self.tokens = budget.requests
        self.stamp = clock()
        self.lock = threading.Lock()
        self.granted = 0.0
        self.refused = 0

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.budget.requests, self.tokens + (now - self.stamp) * self.budget.per_second)
        self.stamp = now

    def level(self) -> float:
        """The units it holds now."""
        with self.lock:
            self._refill()
            return self.tokens

    def take(self, cost: float) -> float:
        """0 if granted, else the seconds until it would be."""
        with self.lock:
            self._refill()
            if self.tokens >= cost:
                self.tokens -= cost
                self.granted += cost
                return 0.0
            self.refused += 1
            return (cost - self.tokens) / self.budget.per_second


class SimServer:
    """All five venues on loopback. Use as a context manager or call start()/stop().

    With ``limits``, each venue's budgets (its published ones, or ``budgets[venue]``) are
    enforced, refilling on ``limits_clock`` (monotonic seconds): ``buckets[venue][name]``."""

    def __init__(
        self,
        model: FundingModel | None = None,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        faults: Faults | None = None,
        limits: bool = False,
        limits_clock: Callable[[], float] = time.monotonic,
        budgets: Mapping[str, Mapping[str, Budget]] | None = None,
        push_interval_s: float = 1.0,
        port: int = 0,
        ws_port: int = 0,
    ) -> None:
        from .rates import RATE_SIMS
        from .venues import VENUE_SIMS

        self.clock = clock or SimClock()
        self.faults = faults or Faults()
        self.feed = Feed(model or FundingModel(), self.clock, self.faults.missing)
        self.sims: dict[str, VenueSim] = {
            v: cls(self.feed, self.faults, push_interval_s) for v, cls in VENUE_SIMS.items()
        }
        budgets = budgets or {}
        self.buckets: dict[str, dict[str, _Bucket]] = (
            {
                v: {
                    name: _Bucket(b, limits_clock)
                    for name, b in (budgets.get(v) or s.budgets or SPECS[v].budgets).items()
                }
                for v, s in self.sims.items()
            }
            if limits
            else {}
        )
        #: Rho and Boros, fixed-rate markets on the venues' funding, served beside the venues.
        self.rate_sims = {p: cls(self.feed, self.faults, push_interval_s) for p, cls in RATE_SIMS.items()}
        self.requests: dict[str, int] = {v: 0 for v in [*self.sims, *self.rate_sims]}
        self._counter_lock = threading.Lock()
        self._rng = random.Random(f"{self.faults.seed}:rest")
        # Both ports are bound here, so a taken one is a PortInUseError at once.
        self._http = _listen("REST", port, lambda: ThreadingHTTPServer((LOOPBACK, port), _handler(self)))
        self._http.daemon_threads = True
        try:
            self._ws_sock = _listen("WebSocket", ws_port, lambda: _ws_socket(ws_port))
        except OSError:
            self._http.server_close()
            raise
        self._ws_port = self._ws_sock.getsockname()[1]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ws_ready = threading.Event()
        self._ws_error: BaseException | None = None
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        return self._http.server_address[1]

    @property
    def ws_port(self) -> int:
        return self._ws_port

    def rest_url(self, venue: str) -> str:
        return f"http://{LOOPBACK}:{self.port}/{venue}"

    def ws_url(self, venue: str) -> str:
        return f"ws://{LOOPBACK}:{self.ws_port}/{venue}"

    def start(self) -> "SimServer":
        rest = threading.Thread(target=self._http.serve_forever, name="sim-rest", daemon=True)
        ws = threading.Thread(target=self._run_ws, name="sim-ws", daemon=True)
        self._threads = [rest, ws]
        rest.start()
        ws.start()
        if not self._ws_ready.wait(10) or self._ws_error is not None:
            self.stop()
            raise RuntimeError(f"the simulator's WebSocket server did not start: {self._ws_error or 'timed out'}")
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._ws_stop.set)
        for t in self._threads:
            t.join(5)
        self._ws_sock.close()  # already closed by the server if it ran; not if start() never came

    def __enter__(self) -> "SimServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- REST ---------------------------------------------------------------------------

    def _roll(self, share: float) -> bool:
        with self._counter_lock:
            return share > 0 and self._rng.random() < share

    def handle(self, method: str, raw_path: str, body: bytes) -> Response | None:
        """Dispatch one request; None means: drop the connection without answering."""
        parts = urlsplit(raw_path)
        venue, _, rest = parts.path.lstrip("/").partition("/")
        sim = self.sims.get(venue) or self.rate_sims.get(venue)
        if sim is None:
            return json_response({"error": f"unknown venue {venue!r}"}, 404)
        with self._counter_lock:
            self.requests[venue] += 1
        request = Request(method, "/" + rest, dict(parse_qsl(parts.query)), body)
        faults = self.faults
        if self._roll(faults.drop_rate):
            return None
        if self._roll(faults.stall_rate):
            time.sleep(faults.stall_s)
        if self._roll(faults.error_rate):
            with self._counter_lock:
                status = self._rng.choice(faults.error_statuses)
            response = sim.error(status, "injected fault")
            response.headers["Retry-After"] = f"{faults.retry_after_s:g}"
            return response
        if venue in self.buckets:
            buckets = self.buckets[venue]
            bucket = buckets.get(sim.bucket(request)) or next(iter(buckets.values()))
            wait = bucket.take(sim.cost(request))
            if wait:
                response = sim.error(sim.limit_status, "too many requests")
                # in whole milliseconds, rounded up: a refusal never says "0"
                response.headers["Retry-After"] = f"{max(1, math.ceil(wait * 1000 - 1e-6)) / 1000:.3f}"
                return response
        response = sim.rest(request)
        if self._roll(faults.malformed_rate):
            response.body = response.body[: max(1, len(response.body) // 2)]
        return response

    # --- WebSocket ----------------------------------------------------------------------

    def _run_ws(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve_ws())
        except Exception as exc:  # noqa: BLE001 - handed to start(), which raises it
            self._ws_error = exc
            self._ws_ready.set()

    async def _serve_ws(self) -> None:
        self._ws_stop = asyncio.Event()
        async with serve(self._ws_handler, sock=self._ws_sock, ping_interval=None, max_size=2**22):
            self._ws_ready.set()
            await self._ws_stop.wait()

    async def _ws_handler(self, connection: ServerConnection) -> None:
        venue, _, rest = connection.request.path.lstrip("/").partition("/")
        sim = self.sims.get(venue)
        if sim is None:
            await connection.close(1008, f"unknown venue {venue!r}")
            return
        try:
            await sim.ws(WsSession(connection, "/" + rest, sim))
        except (ConnectionError, ConnectionClosed):
            pass  # the client left or a fault dropped it: nothing to report


def _handler(server: SimServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as separate small writes; with Nagle's algorithm on, the
        # second waits for the client's delayed ACK (~40 ms per answer on loopback).
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            response = server.handle(self.command, self.path, body)
            if response is None:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_response(response.status)
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

        do_GET = do_POST = _serve

        def log_message(self, *args) -> None:  # quiet: the simulator is used in tests and demos
            pass

    return Handler
