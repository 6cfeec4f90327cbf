"""Bybit v5 linear perpetuals: settled funding history, current predictions, ticker stream.

Endpoints (``https://api.bybit.com``, ``wss://stream.bybit.com/v5/public/linear``):

- ``GET /v5/market/funding/history`` -- settled rates, **newest first**, at most 200 rows;
  a window holding more returns the *newest* rows up to ``endTime``, so history is paged
  backwards by ``endTime`` (paging forward from ``startTime`` silently skips rows).
- ``GET /v5/market/tickers?category=linear`` -- every symbol in one call: ``fundingRate``
  is the estimate of the open window, settling at ``nextFundingTime``.
- WebSocket ``tickers.<SYMBOL>`` -- a snapshot, then deltas carrying only changed fields.
- ``GET /v5/market/premium-index-price-kline?category=linear&symbol=&interval=1&start=&end=
  &limit=`` -- premium-index candles ``[startTime, open, high, low, close]`` (all strings),
  **newest first**, at most 1000: the newest ``limit`` in ``[start, end]``, so pages go
  backwards by ``end`` like the funding history. Bybit updates the premium index once a
  minute: a 1-minute candle is one sample, known at the minute's end (``startTime + 1 min``).

Payload units: rates are decimal strings, a fraction per native interval; times are ms
strings (UTC) except the envelope ``time`` / ``ts`` (ms numbers); ``fundingIntervalHour``
is a string in hours. Logical errors come with HTTP 200 and ``retCode != 0``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from typing import Any

import polars as pl
from websockets.asyncio.client import ClientConnection, connect

from ..prints import PREDICTED
from ..venues import venue_symbol
from . import (
    MINUTE_MS,
    Budget,
    VenueClient,
    VenueError,
    check_print,
    checked,
    epoch_ms,
    number,
    premium_frame,
    prints_frame,
    settled_rows,
)

HISTORY_PATH = "/v5/market/funding/history"
TICKERS_PATH = "/v5/market/tickers"
PREMIUM_KLINE_PATH = "/v5/market/premium-index-price-kline"
WS_PATH = "/v5/public/linear"
CATEGORY = "linear"
#: Most rows the history endpoint returns per request (also its default).
PAGE_LIMIT = 200
#: Most candles premium-index-price-kline returns per request (default 200).
KLINE_LIMIT = 1000
#: Bybit asks for ``{"op":"ping"}`` every 20 s.
PING_INTERVAL_S = 20.0
#: History fetched beyond each end of the asked range (ms), so the first and last rows of
#: the range have neighbours and their intervals can be inferred from the gaps.
CONTEXT_MS = 24 * 3_600_000
PING = json.dumps({"op": "ping"})


# --- pure parsing: payload -> rows --------------------------------------------------------


def result_list(payload: Any) -> list:
    """``result.list`` of a v5 envelope; :class:`VenueError` on ``retCode != 0`` or a bad shape."""
    if not isinstance(payload, dict) or "retCode" not in payload:
        raise VenueError(f"bybit: not a v5 envelope: {str(payload)[:200]!r}")
    if payload["retCode"] != 0:
        raise VenueError(f"bybit: retCode {payload['retCode']}: {payload.get('retMsg')!r}")
    rows = (payload.get("result") or {}).get("list")
    if not isinstance(rows, list):
        raise VenueError(f"bybit: envelope without result.list: {str(payload)[:200]!r}")
    return rows


def parse_history(payload: Any) -> list[tuple[str, int, float]]:
    """Funding-history rows as ``(venue symbol, settlement ts ms UTC, rate per interval)``,
    in the venue's order (newest first). Anything but funding rows is a :class:`VenueError`."""
    try:
        return [_history_row(row) for row in result_list(payload)]
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise VenueError(f"bybit: malformed funding-history row ({exc!r})") from None


def _history_row(row: Mapping[str, Any]) -> tuple[str, int, float]:
    symbol, ts_ms, rate = row["symbol"], int(row["fundingRateTimestamp"]), number(row["fundingRate"])
    check_print(rate, (ts_ms,))
    return symbol, ts_ms, rate


def parse_premium_klines(payload: Any) -> list[tuple[int, float]]:
    """premium-index-price-kline candles as ``(startTime ms, close)``, in the venue's order
    (newest first); a close is a decimal fraction. Anything else is a :class:`VenueError`."""
    try:
        return [(int(row[0]), float(row[4])) for row in result_list(payload)]
    except (IndexError, TypeError, ValueError) as exc:
        raise VenueError(f"bybit: malformed premium-index candle ({exc!r})") from None


def parse_ticker(fields: Mapping[str, Any], coin: str, ts_ms: int, default_hours: float) -> dict | None:
    """The predicted print row of one ticker (REST row or merged WS state), or None.

    ``fundingRate`` is the open window's estimate (per native interval) settling at
    ``nextFundingTime`` (ms string); dated futures send both as ``""`` and give None, as
    does a state that has not seen them yet. ``fundingIntervalHour`` (hours, a string) is
    the native interval; payloads from before that field existed (2025-10) get
    ``default_hours``. Callers pass the row through :func:`checked` inside their error handling.
    """
    rate, funding_time = fields.get("fundingRate"), fields.get("nextFundingTime")
    if rate in (None, "") or funding_time in (None, ""):
        return None
    hours = fields.get("fundingIntervalHour")
    return {
        "coin": coin,
        "ts_ms": int(ts_ms),
        "funding_time_ms": int(funding_time),
        "rate": number(rate),
        "interval_hours": number(hours) if hours not in (None, "") else float(default_hours),
        "kind": PREDICTED,
    }


def parse_tickers(payload: Any, symbols: Mapping[str, str], default_hours: float) -> list[dict]:
    """Predicted rows of a ``/v5/market/tickers`` answer for the symbols in ``symbols``
    (venue symbol -> coin), stamped with the envelope ``time`` (ms); others are skipped."""
    rows = result_list(payload)
    try:
        ts_ms = int(payload["time"])
        parsed = (
            parse_ticker(t, symbols[t["symbol"]], ts_ms, default_hours) for t in rows if t.get("symbol") in symbols
        )
        return [checked(row) for row in parsed if row is not None]
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as exc:
        raise VenueError(f"bybit: malformed tickers answer ({exc!r})") from None


def merge_ticker(state: dict[str, dict], message: Mapping[str, Any]) -> tuple[str, dict]:
    """Fold one ``tickers.*`` push into ``state`` (venue symbol -> merged fields).

    A ``snapshot`` replaces the symbol's fields; a ``delta`` updates only the fields it
    carries (a missing field is unchanged, never null). The symbol's fields are replaced by
    a new dict, never updated in place, so a shallow copy of ``state`` is a safe trial.
    Returns the symbol and its merged fields; raises KeyError/TypeError/ValueError on a
    malformed push.
    """
    data = message["data"]
    symbol = data["symbol"]
    kind = message["type"]
    if kind == "snapshot":
        state[symbol] = dict(data)
    elif kind == "delta":
        state[symbol] = {**state.get(symbol, {}), **data}
    else:
        raise ValueError(f"unknown tickers message type {kind!r}")
    return symbol, state[symbol]


# --- the client ---------------------------------------------------------------------------


class Client(VenueClient):
    """Bybit v5 linear perpetuals (``BTCUSDT``...) over REST and WebSocket."""

    venue = "bybit"
    rest_url = "https://api.bybit.com"
    ws_url = "wss://stream.bybit.com"
    #: 600 requests per 5 s per IP; beyond it Bybit answers HTTP 403.
    budget = Budget(600, 5.0)

    def __init__(self, rest_url: str | None = None, ws_url: str | None = None, **kwargs) -> None:
        super().__init__(rest_url, ws_url, **kwargs)
        self.page_limit = PAGE_LIMIT
        self.skipped_frames = 0
        self.pongs = 0

    def _symbols(self, coins: Sequence[str]) -> dict[str, str]:
        return {venue_symbol(self.venue, coin): coin for coin in coins}

    def settled(self, coin: str, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        """Realised prints with ``funding_time`` in ``[start, end]`` (naive UTC), one per
        settlement, oldest first; rate per native interval, interval inferred from the gaps."""
        first, last = epoch_ms(start), epoch_ms(end)
        points = self._history(venue_symbol(self.venue, coin), first - CONTEXT_MS, last + CONTEXT_MS)
        rows = settled_rows(coin, points, self.default_interval)
        return prints_frame([r for r in rows if first <= r["funding_time_ms"] <= last], self.venue, self.source)

    def _history(self, symbol: str, lo_ms: int, hi_ms: int) -> list[tuple[int, float]]:
        """Every ``(ts ms, rate)`` settled in ``[lo_ms, hi_ms]``, paging backwards by endTime."""
        points: list[tuple[int, float]] = []
        end_ms = hi_ms
        while end_ms >= lo_ms:
            params = {
                "category": CATEGORY,
                "symbol": symbol,
                "startTime": lo_ms,
                "endTime": end_ms,
                "limit": self.page_limit,
            }
            page = parse_history(self.http.get(HISTORY_PATH, params))
            if any(row_symbol != symbol for row_symbol, _, _ in page):
                raise VenueError(f"bybit: funding history for {symbol} returned another symbol")
            points.extend((ts_ms, rate) for _, ts_ms, rate in page)
            if len(page) < self.page_limit:
                break  # the whole of [lo_ms, end_ms] fitted in this page
            end_ms = min(ts_ms for _, ts_ms, _ in page) - 1
        return points

    def premium_history(self, coin: str, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        """Per-minute premium samples known in ``(start, end]`` (naive UTC), in :data:`PREMIUM_SCHEMA`.

        ``ts`` = ``startTime + 1 min`` of each 1-minute candle, ``premium`` its ``close``
        (decimal fraction). Pages of 1000 go backwards: ``end`` = oldest ``startTime`` - 1.
        """
        symbol = venue_symbol(self.venue, coin)
        start_ms, end_ms = epoch_ms(start), epoch_ms(end)
        first, last = start_ms - MINUTE_MS + 1, end_ms - MINUTE_MS  # startTime of samples known in range
        points: list[tuple[int, float]] = []
        while last >= first:
            params = {
                "category": CATEGORY,
                "symbol": symbol,
                "interval": "1",
                "start": first,
                "end": last,
                "limit": KLINE_LIMIT,
            }
            page = parse_premium_klines(self.http.get(PREMIUM_KLINE_PATH, params))
            points.extend((open_ms + MINUTE_MS, close) for open_ms, close in page)
            if len(page) < KLINE_LIMIT:
                break  # the whole of [first, last] fitted in this page
            oldest = min(open_ms for open_ms, _ in page)
            if oldest > last:
                raise VenueError(f"bybit: premium-index candles for {symbol} past the asked end ({oldest} > {last})")
            last = oldest - 1
        return premium_frame(self.venue, coin, points, start_ms, end_ms)

    def current(self, coins: Sequence[str]) -> pl.DataFrame:
        """Current predicted prints of ``coins`` from one all-symbols tickers request; ``ts``
        is the answer's ``time``, ``funding_time`` the ``nextFundingTime`` they settle at."""
        symbols = self._symbols(coins)
        rows = parse_tickers(self.http.get(TICKERS_PATH, {"category": CATEGORY}), symbols, self.default_interval)
        missing = set(symbols.values()) - {row["coin"] for row in rows}
        if missing:
            raise VenueError(f"bybit: no funding in tickers for {', '.join(sorted(missing))}")
        return prints_frame(rows, self.venue, self.source)

    async def stream(
        self, coins: Sequence[str], *, ping_interval_s: float = PING_INTERVAL_S
    ) -> AsyncIterator[pl.DataFrame]:
        """Predicted prints from ``tickers.<SYMBOL>``, one one-row frame per push whose merged
        state has a funding rate (``ts`` = the push's ``ts``, ms).

        Sends ``{"op":"ping"}`` every ``ping_interval_s`` seconds; a connection silent for two
        ping intervals, closed or dropped raises (ConnectionError or a websockets
        ConnectionClosed): reconnecting, which restarts from a fresh snapshot, is the
        caller's job. Frames that are not JSON or not a valid push are counted in
        ``skipped_frames``.
        """
        symbols = self._symbols(coins)
        state: dict[str, dict] = {}  # per connection: a reconnect starts from a new snapshot
        async with connect(self.ws_base + WS_PATH, ping_interval=None) as ws:
            await ws.send(json.dumps({"op": "subscribe", "args": [f"tickers.{s}" for s in symbols]}))
            async with aclosing(self._messages(ws, ping_interval_s)) as messages:
                async for message in messages:
                    row = self._ticker_row(message, symbols, state)
                    if row is not None:
                        yield prints_frame([row], self.venue, f"{self.venue} WS")

    async def _messages(self, ws: ClientConnection, ping_interval_s: float) -> AsyncIterator[dict]:
        """Decoded JSON objects from ``ws`` while keeping the connection alive with pings."""
        loop = asyncio.get_running_loop()
        silence_s = 2 * ping_interval_s
        next_ping = heard = loop.time()
        while True:
            now = loop.time()
            if now >= next_ping:
                await ws.send(PING)
                next_ping = now + ping_interval_s
            if now - heard > silence_s:
                raise ConnectionError(f"bybit: no message for {silence_s:g} s")
            try:
                # recv() raises ConnectionClosed on any close, clean or not: the stream never
                # just ends. Cancelling it on timeout is safe in websockets' asyncio API.
                text = await asyncio.wait_for(ws.recv(), min(next_ping, heard + silence_s) - now)
            except TimeoutError:
                continue
            heard = loop.time()
            try:
                message = json.loads(text)
            except ValueError:
                self.skipped_frames += 1
                continue
            if isinstance(message, dict):
                yield message
            else:
                self.skipped_frames += 1

    def _ticker_row(self, message: dict, symbols: Mapping[str, str], state: dict[str, dict]) -> dict | None:
        """The print row of a push, None for acks/pongs/pushes without funding."""
        if "op" in message:
            self._control(message)
            return None
        try:
            symbol, fields = merge_ticker(dict(state), message)  # a trial: kept below only if it parses
            coin = symbols.get(symbol)
            row = parse_ticker(fields, coin, message["ts"], self.default_interval) if coin else None
            if row is not None:
                checked(row)
        except (KeyError, TypeError, ValueError, OverflowError, AttributeError):
            self.skipped_frames += 1
            return None
        state[symbol] = fields  # a malformed push must not poison the deltas after it
        return row

    def _control(self, message: dict) -> None:
        """Subscribe acks and pongs: a refused subscription is fatal, pongs are counted."""
        if not message.get("success"):
            raise VenueError(f"bybit: {message.get('op')} refused: {message.get('ret_msg')!r}")
        if message.get("op") == "ping":
            self.pongs += 1
