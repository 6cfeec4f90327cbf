"""Deribit perpetuals: hourly funding history, ticker estimates and the ticker stream.

Deribit funding accrues continuously and is quoted as an 8 h rate; its history reports the
funding realised over each hour, so a Deribit print is hourly (``interval_hours`` = 1):

- settled: ``GET /api/v2/public/get_funding_rate_history`` (JSON-RPC over HTTP GET). Rows
  ``{timestamp, index_price, prev_index_price, interest_8h, interest_1h}`` ascending, all
  JSON numbers. The settled rate is ``interest_1h``, the funding of the hour ending at
  ``timestamp`` (ms); ``interest_8h`` is a trailing 8 h figure and is never used as a rate.
  One request covers at most about a month, so requests go in windows of 30 days.
- current: ``GET /api/v2/public/ticker`` per instrument: Deribit has no call returning the
  funding of all perpetuals (``get_book_summary_by_currency`` is per currency and carries
  no quote timestamp), so it is one request per coin. The predicted print is the hourly
  estimate ``funding_8h / 8`` for the hour settling at the next top of the hour after the
  ticker's ``timestamp``; ``current_funding`` (the instantaneous 8 h-basis rate) is not it.
- stream: JSON-RPC on ``wss://www.deribit.com/ws/api/v2``, channel
  ``ticker.{instrument}.100ms``, same mapping as the ticker. Keep-alive is Deribit's
  heartbeat: ``public/set_heartbeat`` and a ``public/test`` answer to every ``test_request``,
  without which the server closes the connection.

Instruments: ``GET /api/v2/public/get_instruments?currency=any&kind=future`` lists futures of
every currency; the perpetuals are ``settlement_period`` ``perpetual``: ``instrument_type``
``reversed`` is inverse (``BTC-PERPETUAL``, USD-sized, coin-settled), ``linear`` settling in
USDC is a USDC perpetual (``SOL_USDC-PERPETUAL``). ``creation_timestamp`` is its listing.
Funding is hourly (the history rows), capped at 0.5 % (the venue's cap; Deribit states no
per-instrument figure).

Premium history: Deribit publishes none. Its hourly history is the funding itself (the
dead-band formula already applied), so :meth:`Client.premium_history` is empty.

Rates are decimal fractions per hour; timestamps are epoch ms (UTC). JSON numbers arrive as
Python floats, which ``json`` parses correctly rounded from the decimal text (no lossy
intermediate).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
import polars as pl
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from ..instruments import Instrument
from ..prints import PREDICTED, REALISED
from ..venues import INVERSE, USDC, coin_for_symbol, spec
from . import (
    HOUR_MS,
    PREMIUM_SCHEMA,
    WS_COMPRESSION,
    VenueClient,
    checked,
    epoch_ms,
    instruments_of,
    ms_datetime,
    named_perpetual,
    number,
    parse_burst,
    parse_rows,
    prints_frame,
    recv_burst,
    stream_frame,
    tagged,
)
from .http import VenueError

VENUE = "deribit"
SPEC = spec(VENUE)
HISTORY_PATH = "/api/v2/public/get_funding_rate_history"
TICKER_PATH = "/api/v2/public/ticker"
INSTRUMENTS_PATH = "/api/v2/public/get_instruments"
WS_PATH = "/ws/api/v2"
#: Deribit truncates a history request to about a month (``SPEC.history_page`` = 744 h at
#: most); 30-day windows stay inside it.
HISTORY_WINDOW_MS = 30 * 24 * HOUR_MS
INTERVAL_HOURS = SPEC.default_interval_hours
#: Heartbeat interval asked of the server, seconds (Deribit accepts 10 or more).
DEFAULT_HEARTBEAT_S = SPEC.ping_interval_s
TICKER_CHANNEL = "ticker.{instrument}.100ms"
#: ``instrument_type`` of an inverse perpetual.
REVERSED = "reversed"


def rpc_result(payload: Any, method: str) -> Any:
    """The ``result`` of a JSON-RPC answer; a :class:`VenueError` naming Deribit's error code."""
    if not isinstance(payload, dict):
        raise VenueError(f"{VENUE} {method}: not a JSON-RPC object: {str(payload)[:200]!r}")
    if "error" in payload:
        error = payload["error"] or {}
        raise VenueError(
            f"{VENUE} {method}: error {error.get('code')} {error.get('message')!r} {error.get('data', '')}"
        )
    if "result" not in payload:
        raise VenueError(f"{VENUE} {method}: answer without a result: {str(payload)[:200]!r}")
    return payload["result"]


def history_rows(coin: str, payload: Any) -> list[dict]:
    """Realised hourly rows of a ``get_funding_rate_history`` answer.

    ``rate`` is ``interest_1h`` (decimal fraction per hour) settled at ``timestamp`` (ms).
    A malformed row is a :class:`VenueError`.
    """
    rows = rpc_result(payload, "get_funding_rate_history")
    try:
        return [
            checked(
                {
                    "coin": coin,
                    "ts_ms": int(row["timestamp"]),
                    "funding_time_ms": int(row["timestamp"]),
                    "rate": number(row["interest_1h"]),
                    "interval_hours": INTERVAL_HOURS,
                    "kind": REALISED,
                }
            )
            for row in rows
        ]
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise VenueError(f"{VENUE} {HISTORY_PATH}: malformed row ({exc!r})") from None


def next_hour_ms(ts_ms: int) -> int:
    """The top of the hour after ``ts_ms`` (an instant on the hour opens the next window)."""
    return (ts_ms // HOUR_MS + 1) * HOUR_MS


def ticker_row(coin: str, ticker: dict) -> dict:
    """Predicted row of a ticker: ``funding_8h / 8`` per hour, settling at the next top of the hour.

    Raises KeyError/TypeError/ValueError/OverflowError on a malformed ticker."""
    ts_ms = int(ticker["timestamp"])
    return checked(
        {
            "coin": coin,
            "ts_ms": ts_ms,
            "funding_time_ms": next_hour_ms(ts_ms),
            "rate": number(ticker["funding_8h"]) / 8,
            "interval_hours": INTERVAL_HOURS,
            "kind": PREDICTED,
        }
    )


def notification_row(message: dict, wanted: dict[str, Instrument] | None = None) -> dict | None:
    """Predicted row of a ``ticker.{instrument}.{interval}`` notification; None for other messages
    or instruments that are not a perpetual (not in ``wanted``, by instrument name, when
    given; the row then carries the instrument's names). Raises KeyError/TypeError/ValueError
    (or OverflowError) on a notification missing its fields."""
    if message.get("method") != "subscription":
        return None
    params = message["params"]
    channel, _, _ = params["channel"].rpartition(".")
    kind, _, instrument = channel.partition(".")
    if kind != "ticker":
        return None
    if wanted is None:
        coin = coin_for_symbol(VENUE, instrument) if SPEC.parse(instrument) else None
        return None if coin is None else ticker_row(coin, params["data"])
    inst = wanted.get(instrument)
    return None if inst is None else tagged(ticker_row(inst.symbol, params["data"]), inst)


def parse_instruments(payload: Any) -> tuple[list[Instrument], int]:
    """``get_instruments`` (futures) -> its perpetuals and the count of rows that could not be
    read. ``reversed`` -> inverse; ``linear`` must settle in USDC (other linear settlements
    are not served: their names do not parse, and they are counted as skipped)."""

    def one(row: dict) -> Instrument | None:
        if row["settlement_period"] != "perpetual":
            return None
        name = row["instrument_name"]
        named = named_perpetual(VENUE, name)
        settle = row["settlement_currency"]
        reversed_ = row["instrument_type"] == REVERSED
        contract = INVERSE if reversed_ else (USDC if settle == "USDC" else None)
        if contract != named.contract:
            raise ValueError(f"{name}: {row['instrument_type']!r} settling in {settle!r} is not {named.contract}")
        return Instrument(
            venue=VENUE,
            symbol=named.coin,
            contract=contract,
            venue_symbol=name,
            multiplier=named.multiplier,
            settle=settle,
            listed_at=ms_datetime(row.get("creation_timestamp")),
            interval_hours=INTERVAL_HOURS,
            rate_cap=SPEC.rate_cap,
            rate_floor=-SPEC.rate_cap,
        )

    return parse_rows(VENUE, rpc_result(payload, "get_instruments"), one, INSTRUMENTS_PATH)


def history_windows(start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """``(start_timestamp, end_timestamp)`` requests covering settlements in [start_ms, end_ms].

    Each is at most :data:`HISTORY_WINDOW_MS` long. Deribit does not document whether its
    bounds are inclusive (ccxt asks from ``since - 1``), so the windows reach 1 ms beyond
    both ends and share their edges: whichever way they are read, no settlement is missed;
    the caller trims and deduplicates.
    """
    if end_ms < start_ms:
        return []
    low, high = start_ms - 1, end_ms + 1
    edges = [*range(low, high, HISTORY_WINDOW_MS), high]
    return list(zip(edges, edges[1:]))


def rpc_request(request_id: int, method: str, params: dict) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})


class Client(VenueClient):
    """Deribit's public API (REST JSON-RPC over GET, WebSocket JSON-RPC)."""

    venue = VENUE
    rest_url = SPEC.rest_url
    ws_url = SPEC.ws_url

    def __init__(self, rest_url: str | None = None, ws_url: str | None = None, **kwargs) -> None:
        super().__init__(rest_url, ws_url, **kwargs)
        self.skipped_frames = 0

    def instruments(self) -> list[Instrument]:
        """Every perpetual listed: one ``get_instruments?currency=any&kind=future`` request."""
        payload = self.http.get(INSTRUMENTS_PATH, {"currency": "any", "kind": "future"})
        found, self.skipped_instruments = parse_instruments(payload)
        return found

    def settled(self, coin: str | Instrument, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        """Realised hourly prints (``interest_1h``) with ``funding_time`` in [start, end] (UTC)."""
        inst = self._instrument(coin)
        start_ms, end_ms = epoch_ms(start), epoch_ms(end)
        rows: list[dict] = []
        for low, high in history_windows(start_ms, end_ms):
            params = {"instrument_name": inst.venue_symbol, "start_timestamp": low, "end_timestamp": high}
            rows += history_rows(inst.symbol, self.http.get(HISTORY_PATH, params))
        frame = prints_frame(rows, self.venue, self.source, inst)
        return frame.filter(pl.col("funding_time").dt.epoch("ms").is_between(start_ms, end_ms))

    def premium_history(self, coin: str | Instrument, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        """Always empty (:data:`PREMIUM_SCHEMA`): Deribit publishes no premium-index history;
        its hourly history is the funding rate itself (``interest_1h``), which is all there is
        to rebuild a window from."""
        return pl.DataFrame(schema=PREMIUM_SCHEMA)

    def current(self, coins: Sequence[str | Instrument]) -> pl.DataFrame:
        """The open hour's predicted print per coin or instrument (one ticker request each)."""
        rows = []
        for name, inst in instruments_of(VENUE, coins).items():
            ticker = rpc_result(self.http.get(TICKER_PATH, {"instrument_name": name}), "ticker")
            try:
                rows.append(tagged(ticker_row(inst.symbol, ticker), inst))
            except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as exc:
                raise VenueError(f"{VENUE} {TICKER_PATH} {name}: malformed ticker ({exc!r})") from None
        return prints_frame(rows, self.venue, self.source)

    async def stream(
        self, coins: Sequence[str | Instrument], *, ping_interval_s: float = DEFAULT_HEARTBEAT_S
    ) -> AsyncIterator[pl.DataFrame]:
        """Predicted prints from ``ticker.{instrument}.100ms``, one per notification: a frame
        per notification, or per burst of them received together (in arrival order).

        Asks for heartbeats every ``ping_interval_s`` seconds and answers each
        ``test_request``. Raises ConnectionError when the server is silent for two heartbeat
        intervals, websockets' ConnectionClosed when the connection drops, and VenueError
        when Deribit refuses a request or a subscription.
        """
        instruments = instruments_of(VENUE, coins)
        wanted = {TICKER_CHANNEL.format(instrument=name) for name in instruments}
        ids = itertools.count(1)
        methods: dict[int, str] = {}
        silence_limit_s = 2 * ping_interval_s + 1.0
        async with connect(self.ws_base.rstrip("/") + WS_PATH, ping_interval=None, compression=WS_COMPRESSION) as ws:

            async def call(method: str, params: dict) -> None:
                request_id = next(ids)
                methods[request_id] = method
                await ws.send(rpc_request(request_id, method, params))

            tests = 0  # test_requests in the burst being read

            def row_of(text: str | bytes) -> dict | None:
                """A notification's print row; None for heartbeats, answers and junk."""
                nonlocal tests
                message = self._message(text)
                if message is None:
                    return None
                if message.get("method") == "heartbeat":
                    tests += (message.get("params") or {}).get("type") == "test_request"
                    return None
                request_id = message.get("id")
                method = methods.pop(request_id, None) if isinstance(request_id, int) else None
                if method is not None or "error" in message:
                    result = rpc_result(message, method or "request")
                    if method == "public/subscribe":
                        self._check_subscribed(result, wanted)
                    return None
                return self._row(message, instruments)

            await call("public/set_heartbeat", {"interval": ping_interval_s})
            await call("public/subscribe", {"channels": sorted(wanted)})
            while True:
                try:
                    texts = await recv_burst(ws, silence_limit_s)
                except TimeoutError:
                    raise ConnectionError(f"{self.venue} stream silent for {silence_limit_s:g} s") from None
                tests = 0
                rows, error = parse_burst(texts, row_of)
                if rows:  # the notifications before an error were received: handed over first
                    yield self._counted(rows)
                if error is not None:
                    raise error
                try:
                    for _ in range(tests):  # answered once the burst's prints are handed over
                        await call("public/test", {})
                except ConnectionClosed:
                    pass  # the next recv hands over what was received before the close, then raises

    def _counted(self, rows: list[dict]) -> pl.DataFrame:
        self.stream_messages += len(rows)
        return stream_frame(rows, self.venue, self.stream_source)

    def _message(self, text: str | bytes) -> dict | None:
        """The frame as a JSON object, or None (counted in ``skipped_frames``) for junk."""
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            message = None
        if not isinstance(message, dict):
            self.skipped_frames += 1
            return None
        return message

    def _row(self, message: dict, instruments: dict[str, Instrument] | None = None) -> dict | None:
        try:
            return notification_row(message, instruments)
        except (KeyError, TypeError, ValueError, OverflowError, AttributeError):
            self.skipped_frames += 1
            return None

    def _check_subscribed(self, channels: Any, wanted: set[str]) -> None:
        missing = wanted - set(channels if isinstance(channels, list) else [])
        if missing:
            raise VenueError(f"{self.venue} subscribe: not subscribed to {sorted(missing)}")
