"""Bybit v5 perpetuals: settled funding history, current predictions, ticker stream, instruments.

Linear perpetuals (USDT ``BTCUSDT``, USDC ``BTCUSDC``) are category ``linear``, inverse ones
(``BTCUSD``) category ``inverse``: every REST call takes the instrument's category and each
category streams on its own path (``wss://stream.bybit.com/v5/public/linear|inverse``).
Endpoints (``https://api.bybit.com``):

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
  Linear only: an inverse perpetual has no premium-index history here.
- ``GET /v5/market/instruments-info?category=&limit=1000&cursor=`` -- the category's
  instruments, paged by ``nextPageCursor`` (over 500 linear symbols): ``contractType``
  ``LinearPerpetual`` / ``InversePerpetual`` (dated futures are skipped), ``fundingInterval``
  in **minutes**, ``upperFundingRate`` / ``lowerFundingRate``, ``launchTime``, ``settleCoin``.
  Tickers rank them: ``openInterestValue`` and ``turnover24h`` (USD) for linear; for inverse
  those are in coin, so ``openInterest`` and ``volume24h`` (USD contracts) are used.

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
from operator import itemgetter
from typing import Any

import orjson
import polars as pl
from websockets.asyncio.client import ClientConnection, connect

from ..instruments import Instrument
from ..premium import PREMIUM_SCHEMA
from ..prints import PREDICTED
from ..venues import INVERSE, USDC, USDT, spec
from . import (
    HOUR_MS,
    KNOWN_INTERVALS,
    MINUTE_MS,
    WS_COMPRESSION,
    VenueClient,
    VenueError,
    check_print,
    checked,
    epoch_ms,
    instruments_of,
    merge_streams,
    ms_datetime,
    named_perpetual,
    number,
    optional_number,
    parse_burst,
    parse_rows,
    premium_frame,
    prints_frame,
    recv_burst,
    settled_rows,
    stream_frame,
    tagged,
)
from .http import page_json

VENUE = "bybit"
SPEC = spec(VENUE)
HISTORY_PATH = "/v5/market/funding/history"
TICKERS_PATH = "/v5/market/tickers"
PREMIUM_KLINE_PATH = "/v5/market/premium-index-price-kline"
INSTRUMENTS_PATH = "/v5/market/instruments-info"
LINEAR, INVERSE_CATEGORY = "linear", "inverse"
CATEGORY = LINEAR
#: WebSocket path of each category.
WS_PATHS = {LINEAR: "/v5/public/linear", INVERSE_CATEGORY: "/v5/public/inverse"}
WS_PATH = WS_PATHS[LINEAR]
#: Most rows the history endpoint returns per request (also its default).
PAGE_LIMIT = SPEC.history_page
#: Most candles premium-index-price-kline returns per request (default 200).
KLINE_LIMIT = 1000
#: Most instruments instruments-info returns per page (default 500).
INSTRUMENTS_LIMIT = 1000
#: Bybit asks for ``{"op":"ping"}`` every 20 s.
PING_INTERVAL_S = SPEC.ping_interval_s
#: contractType of a perpetual, by category.
PERPETUALS = {LINEAR: "LinearPerpetual", INVERSE_CATEGORY: "InversePerpetual"}
SETTLE_CONTRACTS = {"USDT": USDT, "USDC": USDC}
#: Ticker fields of open interest and 24 h volume in USD, by category (inverse
#: ``openInterestValue`` / ``turnover24h`` are in coin; its contracts are worth 1 USD each).
RANKING_FIELDS = {LINEAR: ("openInterestValue", "turnover24h"), INVERSE_CATEGORY: ("openInterest", "volume24h")}
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


def parse_premium_klines(payload: Any) -> tuple[list[int], list[float]]:
    """premium-index-price-kline candles as ``(startTime ms, close)`` columns, in the venue's
    order (newest first); a close is a decimal fraction. Anything else is a :class:`VenueError`."""
    rows = result_list(payload)
    try:
        return list(map(int, map(itemgetter(0), rows))), list(map(float, map(itemgetter(4), rows)))
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


def category_of(inst: Instrument) -> str:
    """The v5 category an instrument is asked under."""
    return INVERSE_CATEGORY if inst.contract == INVERSE else LINEAR


def ticker_row(fields: Mapping[str, Any], wanted: str | Instrument, ts_ms: int, default_hours: float) -> dict | None:
    """:func:`parse_ticker` of a coin, or of an instrument (the row then carries its names)."""
    if isinstance(wanted, Instrument):
        row = parse_ticker(fields, wanted.symbol, ts_ms, wanted.interval_hours or default_hours)
        return None if row is None else tagged(row, wanted)
    return parse_ticker(fields, wanted, ts_ms, default_hours)


def parse_tickers(payload: Any, symbols: Mapping[str, str | Instrument], default_hours: float) -> list[dict]:
    """Predicted rows of a ``/v5/market/tickers`` answer for the symbols in ``symbols``
    (venue symbol -> coin or instrument), stamped with the envelope ``time`` (ms); others
    are skipped."""
    rows = result_list(payload)
    try:
        ts_ms = int(payload["time"])
        parsed = (ticker_row(t, symbols[t["symbol"]], ts_ms, default_hours) for t in rows if t.get("symbol") in symbols)
        return [checked(row) for row in parsed if row is not None]
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as exc:
        raise VenueError(f"bybit: malformed tickers answer ({exc!r})") from None


def parse_rankings(payload: Any, category: str) -> dict[str, tuple[float | None, float | None]]:
    """Tickers of a category -> ``{symbol: (open interest USD, 24 h volume USD)}``; a figure
    that cannot be read is None (the instrument is then unranked, not lost)."""
    oi_field, volume_field = RANKING_FIELDS[category]
    out = {}
    for row in result_list(payload):
        figures = []
        for field in (oi_field, volume_field):
            try:
                figures.append(optional_number(row.get(field)))
            except (TypeError, ValueError):
                figures.append(None)
        if isinstance(row, dict) and isinstance(row.get("symbol"), str):
            out[row["symbol"]] = (figures[0], figures[1])
    return out


def parse_instruments(
    payload: Any, category: str, rankings: Mapping[str, tuple[float | None, float | None]]
) -> tuple[list[Instrument], int, str]:
    """One instruments-info page -> (its perpetuals, rows that could not be read, next cursor).

    Kept: ``contractType`` ``LinearPerpetual`` / ``InversePerpetual`` with ``status``
    ``Trading``; dated futures and pre-launch symbols are left out. ``fundingInterval`` is in
    minutes; ``upperFundingRate`` / ``lowerFundingRate`` are the cap and floor per interval;
    ``rankings``: :func:`parse_rankings`.
    """
    rows = result_list(payload)
    cursor = (payload.get("result") or {}).get("nextPageCursor") or ""

    def one(row: dict) -> Instrument | None:
        if row["contractType"] != PERPETUALS[category] or row["status"] != "Trading":
            return None
        symbol = row["symbol"]
        named = named_perpetual(VENUE, symbol)
        settle = row["settleCoin"]
        contract = INVERSE if category == INVERSE_CATEGORY else SETTLE_CONTRACTS.get(settle)
        if contract != named.contract:
            raise ValueError(f"{symbol}: settles in {settle!r}, not a {named.contract} contract")
        hours = number(row["fundingInterval"]) * MINUTE_MS / HOUR_MS
        if hours not in KNOWN_INTERVALS:
            raise ValueError(f"{symbol}: funding interval {row['fundingInterval']!r} min")
        oi, volume = rankings.get(symbol, (None, None))
        return Instrument(
            venue=VENUE,
            symbol=named.coin,
            contract=contract,
            venue_symbol=symbol,
            multiplier=named.multiplier,
            settle=settle,
            listed_at=ms_datetime(row.get("launchTime")),
            interval_hours=hours,
            rate_cap=optional_number(row.get("upperFundingRate")),
            rate_floor=optional_number(row.get("lowerFundingRate")),
            open_interest_usd=oi,
            volume_usd=volume,
        )

    found, skipped = parse_rows(VENUE, rows, one, f"{INSTRUMENTS_PATH}?category={category}")
    return found, skipped, cursor if isinstance(cursor, str) else ""


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
    """Bybit v5 linear and inverse perpetuals (``BTCUSDT``, ``BTCUSDC``, ``BTCUSD``...) over REST
    and WebSocket."""

    venue = VENUE
    rest_url = SPEC.rest_url
    ws_url = SPEC.ws_url

    def __init__(self, rest_url: str | None = None, ws_url: str | None = None, **kwargs) -> None:
        super().__init__(rest_url, ws_url, **kwargs)
        self.page_limit = PAGE_LIMIT
        self.skipped_frames = 0
        self.pongs = 0

    @staticmethod
    def _categories(coins: Sequence[str | Instrument]) -> dict[str, dict[str, Instrument]]:
        """Wanted instruments by category: ``{category: {venue symbol: instrument}}``."""
        out: dict[str, dict[str, Instrument]] = {}
        for name, inst in instruments_of(VENUE, coins).items():
            out.setdefault(category_of(inst), {})[name] = inst
        return out

    def instruments(self) -> list[Instrument]:
        """Every linear and inverse perpetual trading: ``instruments-info`` of each category,
        every cursor page of 1000, ranked by the category's ``tickers`` (one call each)."""
        found: list[Instrument] = []
        skipped = 0
        for category in (LINEAR, INVERSE_CATEGORY):
            rankings = parse_rankings(self.http.get(TICKERS_PATH, {"category": category}), category)
            cursor, seen = "", set()
            while True:
                params = {"category": category, "limit": INSTRUMENTS_LIMIT}
                if cursor:
                    params["cursor"] = cursor
                page, bad, cursor = parse_instruments(self.http.get(INSTRUMENTS_PATH, params), category, rankings)
                found += page
                skipped += bad
                if not cursor:
                    break
                if cursor in seen:
                    raise VenueError(f"bybit {INSTRUMENTS_PATH}: cursor {cursor!r} repeated")
                seen.add(cursor)
        self.skipped_instruments = skipped
        return found

    def settled(self, coin: str | Instrument, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        """Realised prints with ``funding_time`` in ``[start, end]`` (naive UTC), one per
        settlement, oldest first; rate per native interval, interval inferred from the gaps."""
        inst = self._instrument(coin)
        first, last = epoch_ms(start), epoch_ms(end)
        points = self._history(inst, first - CONTEXT_MS, last + CONTEXT_MS)
        rows = settled_rows(inst.symbol, points, self._interval(inst))
        return prints_frame([r for r in rows if first <= r["funding_time_ms"] <= last], self.venue, self.source, inst)

    def _history(self, inst: Instrument, lo_ms: int, hi_ms: int) -> list[tuple[int, float]]:
        """Every ``(ts ms, rate)`` settled in ``[lo_ms, hi_ms]``, paging backwards by endTime."""
        symbol = inst.venue_symbol
        points: list[tuple[int, float]] = []
        end_ms = hi_ms
        while end_ms >= lo_ms:
            params = {
                "category": category_of(inst),
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

    def premium_history(self, coin: str | Instrument, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        """Per-minute premium samples known in ``(start, end]`` (naive UTC), in :data:`PREMIUM_SCHEMA`.

        ``ts`` = ``startTime + 1 min`` of each 1-minute candle, ``premium`` its ``close``
        (decimal fraction). Pages of 1000 go backwards: ``end`` = oldest ``startTime`` - 1.
        Empty for an inverse perpetual: Bybit serves premium-index candles for linear only.
        """
        inst = self._instrument(coin)
        if category_of(inst) != LINEAR:
            return pl.DataFrame(schema=PREMIUM_SCHEMA)
        symbol = inst.venue_symbol
        start_ms, end_ms = epoch_ms(start), epoch_ms(end)
        first, last = start_ms - MINUTE_MS + 1, end_ms - MINUTE_MS  # startTime of samples known in range
        times: list[int] = []
        premiums: list[float] = []
        while last >= first:
            params = {
                "category": LINEAR,
                "symbol": symbol,
                "interval": "1",
                "start": first,
                "end": last,
                "limit": KLINE_LIMIT,
            }
            opens, closes = parse_premium_klines(self.http.get(PREMIUM_KLINE_PATH, params, decode=page_json))
            times += opens
            premiums += closes
            if len(opens) < KLINE_LIMIT:
                break  # the whole of [first, last] fitted in this page
            oldest = min(opens)
            if oldest > last:
                raise VenueError(f"bybit: premium-index candles for {symbol} past the asked end ({oldest} > {last})")
            last = oldest - 1
        known = pl.Series(times, dtype=pl.Int64) + MINUTE_MS  # a sample is known at its minute's end
        return premium_frame(self.venue, inst, known, premiums, start_ms, end_ms)

    def current(self, coins: Sequence[str | Instrument]) -> pl.DataFrame:
        """Current predicted prints, one all-symbols tickers request per category asked; ``ts``
        is the answer's ``time``, ``funding_time`` the ``nextFundingTime`` they settle at."""
        rows: list[dict] = []
        wanted: set[str] = set()
        for category, symbols in self._categories(coins).items():
            wanted |= set(symbols)
            payload = self.http.get(TICKERS_PATH, {"category": category})
            rows += parse_tickers(payload, symbols, self.default_interval)
        missing = wanted - {row["venue_symbol"] for row in rows}
        if missing:
            raise VenueError(f"bybit: no funding in tickers for {', '.join(sorted(missing))}")
        return prints_frame(rows, self.venue, self.source)

    async def stream(
        self, coins: Sequence[str | Instrument], *, ping_interval_s: float = PING_INTERVAL_S
    ) -> AsyncIterator[pl.DataFrame]:
        """Predicted prints from ``tickers.<SYMBOL>``, one per push whose merged state has a
        funding rate (``ts`` = the push's ``ts``, ms), a frame per push or per burst of pushes
        received together (in arrival order). Linear and inverse
        instruments stream on their categories' paths (two connections, merged).

        Sends ``{"op":"ping"}`` every ``ping_interval_s`` seconds; a connection silent for two
        ping intervals, closed or dropped raises (ConnectionError or a websockets
        ConnectionClosed): reconnecting, which restarts from a fresh snapshot, is the
        caller's job. Frames that are not JSON or not a valid push are counted in
        ``skipped_frames``.
        """
        streams = [
            self._stream_category(category, symbols, ping_interval_s)
            for category, symbols in self._categories(coins).items()
        ]
        async with aclosing(merge_streams(*streams)) as merged:
            async for frame in merged:
                yield frame

    async def _stream_category(
        self, category: str, symbols: dict[str, Instrument], ping_interval_s: float
    ) -> AsyncIterator[pl.DataFrame]:
        state: dict[str, dict] = {}  # per connection: a reconnect starts from a new snapshot
        async with connect(self.ws_base + WS_PATHS[category], ping_interval=None, compression=WS_COMPRESSION) as ws:
            await ws.send(json.dumps({"op": "subscribe", "args": [f"tickers.{s}" for s in symbols]}))
            async with aclosing(self._bursts(ws, ping_interval_s)) as bursts:
                async for texts in bursts:
                    rows, error = parse_burst(texts, lambda text: self._push_row(text, symbols, state))
                    if rows:  # the pushes before a refusal were received: handed over first
                        yield self._counted(rows)
                    if error is not None:
                        raise error

    def _counted(self, rows: list[dict]) -> pl.DataFrame:
        self.stream_messages += len(rows)
        return stream_frame(rows, self.venue, self.stream_source)

    async def _bursts(self, ws: ClientConnection, ping_interval_s: float) -> AsyncIterator[list[str | bytes]]:
        """Frames from ``ws``, a burst at a time (:func:`recv_burst`), while keeping the
        connection alive with pings."""
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
                texts = await recv_burst(ws, min(next_ping, heard + silence_s) - now)
            except TimeoutError:
                continue
            heard = loop.time()
            yield texts

    def _push_row(self, text: str | bytes, symbols: Mapping[str, Instrument], state: dict[str, dict]) -> dict | None:
        """The print row of one frame (:meth:`_ticker_row`); None for junk (counted in
        ``skipped_frames``), acks and pongs."""
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            message = None
        if not isinstance(message, dict):
            self.skipped_frames += 1
            return None
        return self._ticker_row(message, symbols, state)

    def _ticker_row(self, message: dict, symbols: Mapping[str, Instrument], state: dict[str, dict]) -> dict | None:
        """The print row of a push, None for acks/pongs/pushes without funding."""
        if "op" in message:
            self._control(message)
            return None
        try:
            # a trial on the push's own symbol (not a copy of every symbol's state): kept below
            # only if it parses
            data = message.get("data")
            named = data.get("symbol") if isinstance(data, dict) else None
            trial = {named: state[named]} if isinstance(named, str) and named in state else {}
            symbol, fields = merge_ticker(trial, message)
            inst = symbols.get(symbol)
            row = ticker_row(fields, inst, message["ts"], self.default_interval) if inst else None
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
