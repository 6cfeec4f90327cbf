"""Venue clients: one module per venue behind one small interface.

Each client speaks its venue's real public protocol (httpx for REST, websockets for
streams) and parses into the print model of :mod:`funding_assets.prints`:

- :meth:`VenueClient.settled` -- realised settlements of a coin between two instants,
  complete, ordered, deduplicated, each with its interval;
- :meth:`VenueClient.current` -- the current predicted funding of several coins, in as few
  requests as the venue allows;
- :meth:`VenueClient.stream` -- live predicted prints from the venue's WebSocket, one frame
  per message, or per burst of messages received together (:func:`recv_burst`);
- :meth:`VenueClient.premium_history` -- the premium-index samples a venue publishes to
  rebuild its funding, in :data:`PREMIUM_SCHEMA` (``ts`` = the instant a sample is known);
- :meth:`VenueClient.instruments` -- every perpetual the venue lists, parsed from its own
  instrument endpoints (:class:`~funding_assets.instruments.Instrument`).

Every method that takes coins takes either a coin (``"BTC"``: the venue's main perpetual of
it) or an :class:`~funding_assets.instruments.Instrument` (any contract: inverse, USDC, a
``1000PEPE``-style name); see :func:`_instrument`. Prints carry the canonical coin in
``symbol``, the contract type in ``contract`` and the venue's own name in ``venue_symbol``.

Clients reach the real venue or the loopback simulator by base URL alone; everything a
client knows about its venue that is a venue fact (URLs, page sizes, ping intervals, names)
comes from :func:`funding_assets.venues.spec`.
"""

import asyncio
import collections
import datetime as dt
import functools
import logging
import math
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import aclosing
from typing import Any, ClassVar

import polars as pl
from websockets.frames import Opcode

from ..errors import FundingInputError
from ..instruments import Instrument
from ..premium import PREMIUM_SCHEMA
from ..prints import PRINT_SCHEMA, REALISED, TS
from ..venues import SPECS, Named, check_coin, coin_for_symbol, spec, split_multiplier
from .http import Budget, HttpClient, RateLimiter, VenueError

__all__ = [
    "PREMIUM_SCHEMA",
    "Budget",
    "HttpClient",
    "Instrument",
    "RateLimiter",
    "VenueClient",
    "VenueError",
    "check_print",
    "checked",
    "client_for",
    "infer_intervals",
    "merge_streams",
    "number",
    "parse_burst",
    "premium_frame",
    "prints_frame",
    "recv_burst",
    "stream_frame",
]

HOUR_MS = 3_600_000
MINUTE_MS = 60_000
#: Native funding intervals venues use (hours).
KNOWN_INTERVALS = (1.0, 2.0, 4.0, 6.0, 8.0)
#: What reading one instrument row can raise: the row is skipped and counted, the listing goes on.
ROW_ERRORS = (KeyError, TypeError, ValueError, AttributeError, OverflowError, IndexError)

log = logging.getLogger(__name__)

#: Epoch ms a print's times lie in, [2015-01-01, 2100-01-01): anything else is a damaged payload
#: (and a time beyond int64 would fail only later, building the prints frame).
PLAUSIBLE_MS = (1_420_070_400_000, 4_102_444_800_000)


def epoch_ms(when: dt.datetime) -> int:
    """Naive-UTC (or aware) datetime -> epoch milliseconds."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def snap_ms(ms: int) -> int:
    """Round epoch ms to the nearest whole minute (settlement jitter)."""
    return (ms + 30_000) // 60_000 * 60_000


def number(value: Any) -> float:
    """A JSON number or a decimal string as a float; a boolean, which ``float()`` would take for
    1 or 0, is a ``ValueError``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def check_print(rate: Any, times_ms: Iterable[Any], interval_hours: Any = KNOWN_INTERVALS[0]) -> None:
    """Refuse (``ValueError``) values no venue could mean: a rate that is a boolean or not finite,
    an interval no venue uses (hours), a time (epoch ms) that is a boolean or outside
    :data:`PLAUSIBLE_MS`. Parsers call it inside their error handling, so a bad stream frame is
    skipped and counted and a bad REST row is the client's :class:`VenueError`."""
    if isinstance(rate, bool) or not math.isfinite(rate):
        raise ValueError(f"rate {rate!r} is not a finite number")
    if isinstance(interval_hours, bool) or interval_hours not in KNOWN_INTERVALS:
        raise ValueError(f"interval {interval_hours!r} h is not one the venues use")
    lo, hi = PLAUSIBLE_MS
    for ms in times_ms:
        if isinstance(ms, bool) or not lo <= ms < hi:
            raise ValueError(f"time {ms!r} ms is outside 2015..2100")


def checked(row: dict) -> dict:
    """A print row ``{coin, ts_ms, funding_time_ms, rate, interval_hours, kind}`` after
    :func:`check_print`."""
    check_print(row["rate"], (row["ts_ms"], row["funding_time_ms"]), row["interval_hours"])
    return row


def infer_intervals(funding_times_ms: Sequence[int], default_hours: float) -> list[float]:
    """Interval of each settlement from the gap to the previous one (sorted, snapped times).

    The gap is the native window, except where settlements are missing inside a steady
    regime: a gap that is a whole multiple of the previous interval, followed by a gap equal
    to that interval, keeps the previous interval. After a gap no venue uses (16 h, 20 h) a
    settlement keeps the previous interval when it lies on that interval's UTC grid, else
    takes the next gap's (the interval changed while settlements were missing). The first
    settlement takes the next gap.
    """
    out: list[float] = []
    n = len(funding_times_ms)
    for i in range(n):
        gap = (funding_times_ms[i] - funding_times_ms[i - 1]) / HOUR_MS if i else None
        nxt = (funding_times_ms[i + 1] - funding_times_ms[i]) / HOUR_MS if i + 1 < n else None
        prev = out[-1] if out else None
        if gap is None:
            value = nxt if nxt in KNOWN_INTERVALS else default_hours
        elif prev is not None and gap > prev and gap % prev == 0 and nxt == prev:
            value = prev  # settlements missing in a steady regime
        elif gap in KNOWN_INTERVALS:
            value = gap
        else:
            value = _across_gap(funding_times_ms[i], gap, prev, nxt, default_hours)
        out.append(float(value))
    return out


def _across_gap(t_ms: int, gap: float, prev: float | None, nxt: float | None, default_hours: float) -> float:
    """The interval of a settlement after missing ones: the previous interval, or the next
    one when the settlement is not on the previous one's UTC grid (the interval changed
    inside the gap: 00:00 then, after two missing, 20:00 belongs to a 4 h schedule)."""
    for candidate in (prev, nxt):
        if candidate in KNOWN_INTERVALS and t_ms % round(candidate * HOUR_MS) == 0 and gap % candidate == 0:
            return candidate
    return prev if prev is not None else (nxt if nxt in KNOWN_INTERVALS else default_hours)


def _instrument(venue: str, item: "str | Instrument") -> Instrument:
    """A coin or an :class:`Instrument` -> the instrument a client call is about.

    An ``Instrument`` of ``venue`` is taken as is. A string is a coin: the venue's main
    perpetual of it (``"BTC"``; ``"1000PEPE"`` / ``"kPEPE"`` keep their multiplier in the
    venue's name). Raises :class:`FundingInputError` for an instrument of another venue or a
    string that is no coin name.
    """
    if isinstance(item, Instrument):
        if item.venue != venue:
            raise FundingInputError(f"{venue} client: {item.venue_symbol!r} is a {item.venue} instrument")
        return item
    text = item.strip() if isinstance(item, str) else item
    if not isinstance(text, str):
        raise FundingInputError(f"{venue}: {item!r} is neither a coin nor an instrument")
    coin = check_coin(text)
    _, multiplier = split_multiplier(text if text.startswith("k") else text.upper())
    s = SPECS[venue]
    contract = s.default_contract(coin)
    name = s.name_of(coin, contract, multiplier)
    named = s.parse(name)
    return Instrument(
        venue=venue,
        symbol=coin,
        contract=contract,
        venue_symbol=name,
        multiplier=named.multiplier if named else multiplier,
    )


@functools.lru_cache(maxsize=16384)
def coin_of(venue: str, name: str) -> str | None:
    """:func:`funding_assets.venues.coin_for_symbol` of a venue name (a string), remembered:
    stream parsers ask it of every message."""
    return coin_for_symbol(venue, name)


def instruments_of(venue: str, items: Iterable["str | Instrument"]) -> dict[str, Instrument]:
    """Coins or instruments -> ``{venue_symbol: Instrument}``, in the order given, once each."""
    out: dict[str, Instrument] = {}
    for item in items:
        inst = _instrument(venue, item)
        out.setdefault(inst.venue_symbol, inst)
    return out


def tagged(row: dict, inst: Instrument) -> dict:
    """A print row of ``inst``: its coin, contract and venue name set from the instrument."""
    return {**row, "coin": inst.symbol, "contract": inst.contract, "venue_symbol": inst.venue_symbol}


def _names(venue: str, row: Mapping[str, Any], inst: Instrument | None) -> tuple[str, str, str]:
    """(coin, contract, venue_symbol) of a row: its own tags, else the instrument's, else the
    venue's main perpetual of its coin."""
    if "venue_symbol" in row:
        return row["coin"], row["contract"], row["venue_symbol"]
    if inst is not None:
        return inst.symbol, inst.contract, inst.venue_symbol
    s = SPECS[venue]
    coin = row["coin"]
    contract = s.default_contract(coin)
    return coin, contract, s.name_of(coin, contract, 1.0)


def prints_frame(rows: list[dict], venue: str, source: str, instrument: Instrument | None = None) -> pl.DataFrame:
    """Rows ``{coin, ts_ms, funding_time_ms, rate, interval_hours, kind}`` -> print model frame.

    A row's ``contract`` and ``venue_symbol`` are its own (``tagged``), else ``instrument``'s,
    else the venue's main perpetual of its coin. ``funding_time`` is snapped to the minute,
    ``ts`` keeps the venue's stamp; the frame is sorted and deduplicated on (symbol,
    contract, ts, funding_time), keeping the last row.
    """
    latest: dict[tuple[str, str, int, int], tuple[str, dict]] = {}
    for r in rows:
        coin, contract, name = _names(venue, r, instrument)
        latest[(coin, contract, int(r["ts_ms"]), snap_ms(int(r["funding_time_ms"])))] = (name, r)
    return _frame(venue, source, [(*key, *latest[key]) for key in sorted(latest)])


def stream_frame(rows: list[dict], venue: str, source: str) -> pl.DataFrame:
    """Stream rows (as :func:`prints_frame` takes them) -> a print model frame in arrival
    order, one print per row: each is a venue message of its own, so nothing is merged or
    reordered (:func:`prints_frame` deduplicates the overlapping pages of REST answers)."""
    out = []
    for r in rows:
        if "venue_symbol" in r:  # tagged with its instrument, as the clients' streams tag them
            coin, contract, name = r["coin"], r["contract"], r["venue_symbol"]
        else:
            coin, contract, name = _names(venue, r, None)
        out.append((coin, contract, int(r["ts_ms"]), snap_ms(int(r["funding_time_ms"])), name, r))
    return _frame(venue, source, out)


def _frame(venue: str, source: str, rows: list[tuple]) -> pl.DataFrame:
    """``(coin, contract, ts_ms, snapped funding_time_ms, venue_symbol, row)`` tuples -> a print
    model frame. Built once with its final dtypes from Python lists: a chain of polars steps
    costs ~1 ms, and even this one construction ~0.1 ms, which is why streams build one frame
    per burst of messages, not per message."""
    n = len(rows)
    symbols, contracts, ts_ms, funding_ms, names, found = zip(*rows) if rows else ((),) * 6
    columns = {
        "venue": [venue] * n,
        "symbol": symbols,
        "contract": contracts,
        "venue_symbol": names,
        "ts": ts_ms,
        "funding_time": funding_ms,
        "rate": [float(r["rate"]) for r in found],
        "interval_hours": [float(r["interval_hours"]) for r in found],
        "kind": [r["kind"] for r in found],
        "source": [source] * n,
    }
    # one eager Series per column with its final dtype (times: epoch ms, cast in place)
    return pl.DataFrame(
        [
            pl.Series(name, columns[name], pl.Int64).cast(TS) if dtype == TS else pl.Series(name, columns[name], dtype)
            for name, dtype in PRINT_SCHEMA.items()
        ]
    )


def premium_frame(
    venue: str,
    coin: "str | Instrument",
    times_ms: Sequence[int] | pl.Series,
    premiums: Sequence[float] | pl.Series,
    start_ms: int,
    end_ms: int,
) -> pl.DataFrame:
    """Points ``(times_ms[i], premiums[i])`` (known-at epoch ms, premium) -> a
    :data:`PREMIUM_SCHEMA` frame of those known in ``(start_ms, end_ms]``, one row per instant
    (the last point wins), sorted by ``ts``. ``coin`` is the coin or the instrument (whose
    contract and venue name fill those columns where the schema has them)."""
    inst = _instrument(venue, coin)
    points = pl.DataFrame({"ts": pl.Series(times_ms, dtype=pl.Int64), "premium": pl.Series(premiums, dtype=pl.Float64)})
    latest = (
        points.filter((pl.col("ts") > start_ms) & (pl.col("ts") <= end_ms))
        .unique("ts", keep="last", maintain_order=True)
        .sort("ts")
    )
    names = {"venue": venue, "symbol": inst.symbol, "contract": inst.contract, "venue_symbol": inst.venue_symbol}
    return latest.select(
        *(
            pl.lit(names[k], pl.String).alias(k) if k in names else pl.col(k).cast(dtype)
            for k, dtype in PREMIUM_SCHEMA.items()
        )
    )


def settled_rows(coin: str, points: list[tuple[int, float]], default_hours: float) -> list[dict]:
    """Realised rows from ``(settlement ts_ms, rate)`` pairs: sorted, one per settlement,
    intervals inferred from the gaps (see :func:`infer_intervals`)."""
    by_time: dict[int, tuple[int, float]] = {}
    for ts_ms, rate in sorted(points):
        by_time[snap_ms(ts_ms)] = (ts_ms, rate)
    times = sorted(by_time)
    hours = infer_intervals(times, default_hours)
    return [
        {
            "coin": coin,
            "ts_ms": by_time[t][0],
            "funding_time_ms": t,
            "rate": by_time[t][1],
            "interval_hours": h,
            "kind": REALISED,
        }
        for t, h in zip(times, hours)
    ]


def parse_rows(
    venue: str, rows: Iterable[Any], parse_one: Callable[[Any], Instrument | None], what: str
) -> tuple[list[Instrument], int]:
    """Instruments of a payload's rows and how many rows could not be parsed.

    ``parse_one`` returns None for a row that is deliberately not kept (a dated future, an
    option) and raises one of :data:`ROW_ERRORS` for a row it cannot read, which is skipped,
    counted and logged at debug: one damaged row never costs the rest of the listing.
    """
    found: list[Instrument] = []
    skipped = 0
    for row in rows:
        try:
            inst = parse_one(row)
        except ROW_ERRORS as exc:
            skipped += 1
            log.debug("%s %s: skipped row %s (%r)", venue, what, str(row)[:200], exc)
            continue
        if inst is not None:
            found.append(inst)
    return found, skipped


def named_perpetual(venue: str, name: Any) -> Named:
    """``spec(venue).parse`` of a listed name; ``ValueError`` if it is not one of the venue's
    perpetual names (the row is then skipped and counted)."""
    if not isinstance(name, str):
        raise ValueError(f"instrument name {name!r} is not a string")
    named = SPECS[venue].parse(name)
    if named is None:
        raise ValueError(f"{name!r} is not a {venue} perpetual name")
    return named


def ms_datetime(value: Any) -> dt.datetime | None:
    """Epoch ms (number or decimal string) -> naive UTC datetime; None for ``""``, 0 or None."""
    if value in (None, "", 0, "0"):
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected epoch ms, got {value!r}")
    ms = int(value)
    lo, hi = PLAUSIBLE_MS
    if not lo <= ms < hi:
        return None  # "never" sentinels: 4133404800000 (2100), 32503708800000 (3000)
    return dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=ms)


def optional_number(value: Any) -> float | None:
    """A number or decimal string as a float; None for ``""`` or None (the venue states none)."""
    return None if value in (None, "") else number(value)


#: Most messages one stream frame gathers (:func:`recv_burst`).
BURST_LIMIT = 2000
#: Per-message compression of the streams (websockets' ``compression``): none. Inflating
#: every message costs the collector more CPU than funding messages save in bandwidth.
WS_COMPRESSION = None


def received_frames(ws: Any) -> collections.deque:
    """The incoming frame queue of a websockets connection: frames received and not yet read
    (``recv_messages.frames.queue`` of websockets' asyncio connection, websockets 17 as
    pinned); empty where that is absent. While its first frame has ``fin``, a whole message
    is queued, which ``recv()`` returns without waiting (a first frame without ``fin`` is a
    fragmented message still arriving)."""
    return getattr(getattr(getattr(ws, "recv_messages", None), "frames", None), "queue", collections.deque())


async def recv_burst(ws: Any, timeout_s: float | None, limit: int = BURST_LIMIT) -> list[str | bytes]:
    """The next message of ``ws`` and every further one already received (at most ``limit``).

    Waits at most ``timeout_s`` seconds for the first (then ``TimeoutError``), never for the
    others: a quiet stream hands over one message at a time, a busy one the whole burst that
    arrived together, parsed into one frame (building a frame costs more than parsing a
    message). Raises what ``ws.recv`` raises (websockets' ``ConnectionClosed``).
    """
    async with asyncio.timeout(timeout_s):
        first = await ws.recv()
    messages = [first]
    queued = received_frames(ws)
    if not queued:
        return messages
    # the whole messages already queued are taken off the queue here, as ``recv()`` would take
    # them (a final text or binary frame is a whole message; control frames never queue), at a
    # fraction of a ``recv()`` per message; the reader resumes once, if the queue had paused it
    while queued and queued[0].fin and len(messages) < limit:
        frame = queued.popleft()
        messages.append(frame.data.decode() if frame.opcode is Opcode.TEXT else bytes(frame.data))
    ws.recv_messages.maybe_resume()
    return messages


def parse_burst(
    messages: Iterable[Any], row_of: Callable[[Any], dict | list[dict] | None]
) -> tuple[list[dict], Exception | None]:
    """The print rows of a burst of stream messages (:func:`recv_burst`), in arrival order, and
    the exception that stopped it, if any.

    ``row_of(message)`` gives a message's print row, its rows (a list) or None (an ack, a pong,
    junk it counted). An exception it raises (a venue's error event, a refused subscription)
    ends the burst there: the rows of the messages before it come back with it, and the caller
    hands them over before raising it, since they were received and a reconnect's gap fill
    brings back realised prints only, never predictions.
    """
    rows: list[dict] = []
    try:
        for message in messages:
            got = row_of(message)
            if got is None:
                continue
            if isinstance(got, list):
                rows += got
            else:
                rows.append(got)
    except Exception as exc:  # noqa: BLE001 - handed to the caller, which re-raises it
        return rows, exc
    return rows, None


async def merge_streams(*streams: AsyncIterator[pl.DataFrame]) -> AsyncIterator[pl.DataFrame]:
    """Frames of several streams as they arrive (one stream per venue host or category).

    The first stream to raise ends the merge with its exception; closing the merge closes
    every stream (their connections).
    """
    if len(streams) == 1:
        async with aclosing(streams[0]) as only:
            async for frame in only:
                yield frame
        return
    queue: asyncio.Queue = asyncio.Queue()
    stopping = False

    async def pump(stream: AsyncIterator[pl.DataFrame]) -> None:
        try:
            async for frame in stream:
                if stopping:
                    return
                queue.put_nowait((frame, None))
        except Exception as exc:  # handed to the consumer, which re-raises it
            queue.put_nowait((None, exc))
            return
        queue.put_nowait((None, ConnectionError("a stream ended")))

    tasks = [asyncio.create_task(pump(s)) for s in streams]
    try:
        while True:
            frame, exc = await queue.get()
            if exc is not None:
                raise exc
            yield frame
    finally:
        stopping = True
        # Python 3.11's wait_for can swallow a cancellation that meets a message arriving at
        # the same moment: cancel again until every pump has ended.
        while not all(task.done() for task in tasks):
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=0.1)
        for stream in streams:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()


class VenueClient:
    """The interface every venue module implements.

    ``rest_url`` / ``ws_url`` default to the venue's (:func:`funding_assets.venues.spec`), and
    requests pace to its published budgets unless ``http`` brings others;
    ``source_label`` replaces the ``source`` of every print (``"sim"`` for the simulator),
    otherwise ``"<venue> REST"`` and ``"<venue> WS"``.
    """

    venue: ClassVar[str]
    rest_url: ClassVar[str]
    ws_url: ClassVar[str]

    def __init__(
        self,
        rest_url: str | None = None,
        ws_url: str | None = None,
        *,
        http: HttpClient | None = None,
        source_label: str | None = None,
    ) -> None:
        self.spec = spec(self.venue)
        self.rest_base = rest_url or self.rest_url
        self.ws_base = ws_url or self.ws_url
        self.http = http or HttpClient(self.venue, self.rest_base, self.spec.budgets)
        self.default_interval = self.spec.default_interval_hours
        self.source_label = source_label
        #: Rows of the last :meth:`instruments` call that could not be parsed (skipped).
        self.skipped_instruments = 0
        #: Stream messages that carried prints, over every connection (a frame may hold several).
        self.stream_messages = 0

    @property
    def source(self) -> str:
        """The ``source`` of prints from REST (history, current funding)."""
        return self.source_label or f"{self.venue} REST"

    @property
    def stream_source(self) -> str:
        """The ``source`` of prints from the WebSocket stream."""
        return self.source_label or f"{self.venue} WS"

    def close(self) -> None:
        self.http.close()

    def _instrument(self, item: "str | Instrument") -> Instrument:
        return _instrument(self.venue, item)

    def _interval(self, inst: Instrument) -> float:
        """The interval a history's first settlement is assumed to have when no gap tells."""
        return inst.interval_hours or self.default_interval

    def instruments(self) -> list[Instrument]:
        """Every perpetual the venue lists (delisted ones too where the venue still lists
        them, with ``delisted_at``), from the venue's instrument endpoints; rows that cannot
        be parsed are skipped and counted in ``skipped_instruments``."""
        raise NotImplementedError

    def settled(self, coin: "str | Instrument", start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        """Realised prints with ``funding_time`` in ``[start, end]`` (UTC), one per settlement."""
        raise NotImplementedError

    def current(self, coins: Sequence["str | Instrument"]) -> pl.DataFrame:
        """Current predicted prints (``kind='predicted'``), one per coin or instrument."""
        raise NotImplementedError

    def stream(self, coins: Sequence["str | Instrument"]) -> AsyncIterator[pl.DataFrame]:
        """Live predicted prints as they arrive, in arrival order: one frame per venue
        message, or per burst of messages received together (:func:`recv_burst`); each
        message that carried prints is counted in ``stream_messages``."""
        raise NotImplementedError

    def premium_history(self, coin: "str | Instrument", start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        """Premium-index samples of ``coin`` known in ``(start, end]`` (naive UTC), complete,
        one per instant, sorted: :data:`PREMIUM_SCHEMA`, ``ts`` the instant the sample is known,
        ``premium`` a decimal fraction (never percent)."""
        raise NotImplementedError


def client_for(venue: str, rest_url: str | None = None, ws_url: str | None = None, **kwargs) -> VenueClient:
    """The client of ``venue`` (its spec's ``client_class``), against the real venue or the
    given base URLs; ``kwargs`` go to the client (``http``, ``source_label``, ...)."""
    return spec(venue).client()(rest_url, ws_url, **kwargs)
