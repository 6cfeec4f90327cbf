"""Binance USD-M futures in the simulator: fundingRate, premiumIndex, fundingInfo, markPrice stream.

REST (under ``/binance``), rates as 8-dp decimal strings per native interval, times as ms numbers:

- ``GET /fapi/v1/fundingRate``: ``symbol`` (omitted: every symbol, mixed), ``startTime`` /
  ``endTime`` inclusive on the stamped ``fundingTime`` (ms jitter of the model's ``ts``),
  ``limit`` default 100, larger values capped at 1000; ascending. Both bounds or only
  ``startTime``: the first ``limit`` rows from the start. Neither: the latest ``limit`` rows
  (200 when ``limit`` is not sent, as documented). Only ``endTime``: the latest ``limit``
  rows up to it (UNVERIFIED on the real venue).
- ``GET /fapi/v1/premiumIndex``: one object with ``symbol``, else an array of every symbol,
  with one quarterly delivery contract per coin carrying ``nextFundingTime: 0`` as on the
  venue. ``lastFundingRate`` is the open window's prediction; ``time`` is whole seconds.
- ``GET /fapi/v1/fundingInfo``: only symbols whose open window is not 8 h (absent = 8 h);
  ``symbol`` is ignored, as on the venue.
- ``GET /fapi/v1/premiumIndexKlines``: ``symbol`` and ``interval`` (``1m`` .. ``3d``; ``1w``
  and ``1M`` are not simulated) required, ``startTime`` / ``endTime`` inclusive on
  ``openTime``, ``limit`` default 500, larger values capped at 1500; ascending. With
  ``startTime``: the first ``limit`` candles from it; otherwise the latest ``limit`` up to
  ``endTime`` or now. Candles ``[openTime, open, high, low, close, "0", closeTime, "0",
  samples x 12, "0", "0", "0"]`` (OHLC 8-dp strings) aggregate the model's 1-minute samples
  (the sample of minute ``m`` is the 1-minute candle opening at ``m``); weight 1/2/5/10 by
  ``limit``.

Errors: ``{"code": <negative int>, "msg": ...}``; unknown symbol -> 400 ``-1121``; missing
parameter -> ``-1102``; bad kline interval -> ``-1120``; limits -> 429 ``-1003`` with
``Retry-After``.

Stream (``ws://.../binance``): ``/market/stream?streams=a/b`` (combined envelope
``{"stream", "data"}``) and ``/market/ws/<stream>[/<stream>]`` (raw events) push
``<sym>@markPrice[@1s]`` events (and the ``!markPrice@arr[@1s]`` array) every
``push_interval_s``; ``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` requests are
answered ``{"result", "id"}``. The legacy unrouted ``/ws`` and ``/stream`` paths accept the
connection and never push, as on the venue since 2026-04-23. The server pings every
``ping_interval_s`` and drops a connection whose pong is ``pong_timeout_s`` late.

Prices (``markPrice``, ``p``, ``i``, ...) are fixed placeholders: the model has no price path.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from urllib.parse import parse_qsl

from websockets.exceptions import ConnectionClosed

from ...clients.binance import (
    FUNDING_INFO,
    FUNDING_RATE,
    HISTORY_BUDGET,
    KLINE_LIMIT,
    PREMIUM_INDEX,
    PREMIUM_INDEX_WEIGHT_ALL,
    PREMIUM_INDEX_WEIGHT_ONE,
    PREMIUM_KLINES,
    kline_weight,
    weight_cost,
)
from ...venues import COINS, RATE_CAPS, venue_symbol
from ..model import INTEREST_8H, MINUTE_MS
from ..server import Request, Response, VenueSim, WsSession, json_response
from .klines import candles

VENUE = "binance"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
LATEST_DEFAULT = 200  # rows when neither bound is sent and no limit is given
KLINE_DEFAULT = 500  # premiumIndexKlines candles when no limit is given
#: premiumIndexKlines intervals served, in minutes (1w and 1M are not simulated).
KLINE_MINUTES = {
    "1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "2h": 120, "4h": 240,
    "6h": 360, "8h": 480, "12h": 720, "1d": 1440, "3d": 4320,
}  # fmt: skip
SAMPLES_PER_MINUTE = 12  # the venue samples the premium every 5 s
#: How far back "the latest n rows" may reach: 16 h per row covers runs of missing rows.
LATEST_SPAN_PER_ROW = dt.timedelta(hours=16)
MARKPRICE_FROM = dt.datetime(2023, 11, 1)  # fundingRate rows carry markPrice from here on
STAMP_SLACK = dt.timedelta(minutes=1)  # stamped fundingTime trails the boundary by < 1 min
UNIX = dt.datetime(1970, 1, 1)
PRICES = {"BTC": "60000.00000000", "ETH": "3000.00000000", "SOL": "150.00000000"}

ERROR_CODES = {429: -1003, 418: -1003, 403: -1003}
ERROR_MESSAGES = {
    429: "Too many requests; current limit of IP is 500 requests per 5 minutes. Please use the websocket for live updates to avoid polling the API.",
    418: "Way too many requests; IP banned. Please use the websocket for live updates to avoid bans.",
}


class BadParam(ValueError):
    """A query parameter Binance would refuse: (code, msg) of its error envelope."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def binance_error(status: int, code: int, msg: str) -> Response:
    return json_response({"code": code, "msg": msg}, status)


def to_ms(when: dt.datetime) -> int:
    return (when - UNIX) // dt.timedelta(milliseconds=1)


def from_ms(ms: int) -> dt.datetime:
    return UNIX + dt.timedelta(milliseconds=ms)


def rate_text(rate: float) -> str:
    return f"{rate:.8f}"


def int_param(query: dict[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    if not value.isdigit() or len(value) > 20:
        raise BadParam(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.")
    return int(value)


def quarterly_symbol(symbol: str, now: dt.datetime) -> str:
    """The current quarter's delivery contract (``BTCUSDT_250328``: last Friday of the quarter)."""
    year, month = now.year, (now.month - 1) // 3 * 3 + 3
    while True:
        first_next = dt.date(year + month // 12, month % 12 + 1, 1)
        last_day = first_next - dt.timedelta(days=1)
        delivery = last_day - dt.timedelta(days=(last_day.weekday() - 4) % 7)
        if delivery >= now.date():
            return f"{symbol}_{delivery:%y%m%d}"
        year, month = (year + 1, 3) if month == 12 else (year, month + 3)


class Sim(VenueSim):
    venue = VENUE
    budget = HISTORY_BUDGET
    limit_status = 429
    ping_interval_s = 180.0
    pong_timeout_s = 600.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pongs = 0

    # --- REST -------------------------------------------------------------------------

    def cost(self, request: Request) -> float:
        """fundingRate / fundingInfo: 1 of their bucket; premiumIndex: its weight, rescaled."""
        if request.path == PREMIUM_INDEX:
            return weight_cost(PREMIUM_INDEX_WEIGHT_ONE if "symbol" in request.query else PREMIUM_INDEX_WEIGHT_ALL)
        if request.path == PREMIUM_KLINES:
            try:
                limit = int_param(request.query, "limit") or KLINE_DEFAULT
            except BadParam:
                limit = KLINE_DEFAULT
            return weight_cost(kline_weight(min(limit, KLINE_LIMIT)))
        return 1.0

    def error(self, status: int, message: str) -> Response:
        code = ERROR_CODES.get(status, -1000)
        return binance_error(status, code, ERROR_MESSAGES.get(status, message))

    def rest(self, request: Request) -> Response:
        routes = {
            FUNDING_RATE: self.funding_rate,
            PREMIUM_INDEX: self.premium_index,
            FUNDING_INFO: self.funding_info,
            PREMIUM_KLINES: self.premium_klines,
        }
        handler = routes.get(request.path) if request.method == "GET" else None
        if handler is None:
            return super().rest(request)
        try:
            return json_response(handler(request.query))
        except BadParam as exc:
            return binance_error(400, exc.code, exc.msg)

    def _symbols(self, query: dict[str, str], now: dt.datetime) -> dict[str, str | None]:
        """``{symbol: coin}`` of the asked symbol (validated, exact case) or of every perpetual;
        the coin is None for a delivery contract."""
        perpetuals: dict[str, str | None] = {venue_symbol(VENUE, coin): coin for coin in COINS}
        symbol = query.get("symbol")
        if symbol is None:
            return perpetuals
        if symbol in perpetuals:
            return {symbol: perpetuals[symbol]}
        if symbol in self._delivery(now):
            return {symbol: None}
        raise BadParam(-1121, "Invalid symbol.")

    def _delivery(self, now: dt.datetime) -> dict[str, str]:
        """``{quarterly delivery symbol: coin}``: contracts without funding (nextFundingTime 0)."""
        return {quarterly_symbol(venue_symbol(VENUE, coin), now): coin for coin in COINS}

    def funding_rate(self, query: dict[str, str]) -> list[dict]:
        start, end = int_param(query, "startTime"), int_param(query, "endTime")
        limit = int_param(query, "limit")
        if limit is not None and limit < 1:
            raise BadParam(-1130, "Data sent for parameter 'limit' is not valid.")
        if start is not None and end is not None and start > end:
            raise BadParam(-1023, "Start time is greater than end time.")
        count = min(limit or (LATEST_DEFAULT if start is None and end is None else DEFAULT_LIMIT), MAX_LIMIT)
        now = self.feed.clock()
        symbols = self._symbols(query, now)
        now_ms = to_ms(now)
        hi = from_ms(min(end, now_ms)) if end is not None else now
        lo = from_ms(min(start, now_ms)) if start is not None else hi - count * LATEST_SPAN_PER_ROW
        rows = sorted(
            (
                row
                for symbol, coin in symbols.items()
                if coin is not None
                for row in self._history_rows(symbol, coin, lo, hi)
            ),
            key=lambda row: (row["fundingTime"], row["symbol"]),
        )
        return rows[:count] if start is not None else rows[-count:]

    def _history_rows(self, symbol: str, coin: str, lo: dt.datetime, hi: dt.datetime) -> list[dict]:
        """Rows of ``coin`` with the stamped fundingTime in ``[lo, hi]``."""
        frame = self.feed.settlements(VENUE, coin, lo - STAMP_SLACK, hi + STAMP_SLACK)
        lo_ms, hi_ms = to_ms(lo), to_ms(hi)
        rows = []
        for ts, funding_time, rate in frame.select("ts", "funding_time", "rate").iter_rows():
            stamp = to_ms(ts)
            if lo_ms <= stamp <= hi_ms:
                mark = PRICES[coin] if funding_time >= MARKPRICE_FROM else ""
                rows.append(
                    {
                        "symbol": symbol,
                        "fundingTime": stamp,
                        "fundingRate": rate_text(rate),
                        "markPrice": mark,
                        "rateType": "Regular",
                    }
                )
        return rows

    def premium_index(self, query: dict[str, str]) -> dict | list[dict]:
        now = self.feed.clock()
        delivery = self._delivery(now)
        rows = [
            self._premium_row(symbol, coin or delivery[symbol], now, perpetual=coin is not None)
            for symbol, coin in self._symbols(query, now).items()
        ]
        if "symbol" in query:
            return rows[0]
        return rows + [self._premium_row(symbol, coin, now, perpetual=False) for symbol, coin in delivery.items()]

    def _premium_row(self, symbol: str, coin: str, now: dt.datetime, *, perpetual: bool) -> dict:
        """A perpetual's open-window prediction, or a delivery contract's funding-less row."""
        rate, funding_time, hours = self.feed.predicted(VENUE, coin) if perpetual else (0.0, None, 0.0)
        return {
            "symbol": symbol,
            "markPrice": PRICES[coin],
            "indexPrice": PRICES[coin],
            "estimatedSettlePrice": PRICES[coin],
            "lastFundingRate": rate_text(rate),
            "interestRate": rate_text(INTEREST_8H * hours / 8),
            "nextFundingTime": to_ms(funding_time) if funding_time else 0,
            "time": to_ms(now) // 1000 * 1000,
        }

    def premium_klines(self, query: dict[str, str]) -> list[list]:
        """Premium-index candles of one perpetual (see the module docstring)."""
        symbol, interval = query.get("symbol"), query.get("interval")
        for name, value in (("symbol", symbol), ("interval", interval)):
            if not value:
                raise BadParam(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        coin = {venue_symbol(VENUE, c): c for c in COINS}.get(symbol)
        if coin is None:
            raise BadParam(-1121, "Invalid symbol.")
        if interval not in KLINE_MINUTES:
            raise BadParam(-1120, "Invalid interval.")
        start, end, limit = int_param(query, "startTime"), int_param(query, "endTime"), int_param(query, "limit")
        if limit is not None and limit < 1:
            raise BadParam(-1130, "Data sent for parameter 'limit' is not valid.")
        if start is not None and end is not None and start > end:
            raise BadParam(-1023, "Start time is greater than end time.")
        minutes = KLINE_MINUTES[interval]
        count = min(limit or KLINE_DEFAULT, KLINE_LIMIT)
        frame = candles(self.feed, VENUE, coin, minutes, start, end, count, newest=start is None)
        width = minutes * MINUTE_MS
        return [
            [
                open_ms,
                rate_text(o),
                rate_text(h),
                rate_text(lo),
                rate_text(c),
                "0",
                open_ms + width - 1,
                "0",
                n * SAMPLES_PER_MINUTE,
                "0",
                "0",
                "0",
            ]
            for open_ms, o, h, lo, c, n in frame.iter_rows()
        ]

    def funding_info(self, query: dict[str, str]) -> list[dict]:
        cap = rate_text(RATE_CAPS[VENUE])
        rows = []
        for coin in COINS:
            hours = self.feed.predicted(VENUE, coin)[2]
            if hours != 8:
                rows.append(
                    {
                        "symbol": venue_symbol(VENUE, coin),
                        "adjustedFundingRateCap": cap,
                        "adjustedFundingRateFloor": f"-{cap}",
                        "fundingIntervalHours": int(hours),
                        "disclaimer": False,
                        "updateTime": None,
                    }
                )
        return rows

    # --- stream -----------------------------------------------------------------------

    async def ws(self, session: WsSession) -> None:
        path, _, query = session.path.partition("?")
        if path == "/market/stream":
            combined, streams = True, dict(parse_qsl(query)).get("streams", "").split("/")
        elif path == "/market/ws" or path.startswith("/market/ws/"):
            combined, streams = False, path.removeprefix("/market/ws").split("/")
        else:  # legacy unrouted paths: connected, but markPrice is never pushed there
            await session.connection.wait_closed()
            return
        subscribed = {s for s in streams if s}
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._keepalive(session))
                tasks.create_task(self._push(session, subscribed, combined))
                await self._requests(session, subscribed)
        except* (ConnectionClosed, ConnectionError):
            pass

    async def _keepalive(self, session: WsSession) -> None:
        """Ping every ``ping_interval_s``; a pong later than ``pong_timeout_s`` ends the connection."""
        while True:
            await asyncio.sleep(self.ping_interval_s)
            pong = await session.connection.ping()
            try:
                await asyncio.wait_for(pong, self.pong_timeout_s)
            except TimeoutError:
                await session.connection.close(1008, "pong timeout")
                return
            self.pongs += 1

    async def _requests(self, session: WsSession, subscribed: set[str]) -> None:
        """Answer SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS until the connection closes."""
        while True:
            text = await session.connection.recv()
            await session.send(self._answer(text, subscribed))

    def _answer(self, text: str | bytes, subscribed: set[str]) -> dict:
        try:
            request = json.loads(text)
        except ValueError:
            return {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"}
        if not isinstance(request, dict):
            return {"code": 2, "msg": "Invalid request: expected an object"}
        method, params, ident = request.get("method"), request.get("params") or [], request.get("id")
        if not isinstance(params, list):
            return {"code": 1, "msg": "Invalid value type: expected an array of stream names", "id": ident}
        if method == "SUBSCRIBE":
            subscribed.update(params)
        elif method == "UNSUBSCRIBE":
            subscribed.difference_update(params)
        elif method == "LIST_SUBSCRIPTIONS":
            return {"result": sorted(subscribed), "id": ident}
        else:
            return {"code": 2, "msg": f"Invalid request: unknown variant {method!r}", "id": ident}
        return {"result": None, "id": ident}

    async def _push(self, session: WsSession, subscribed: set[str], combined: bool) -> None:
        while True:
            for stream in sorted(subscribed):
                events = self._stream_events(stream)
                if events is not None:
                    count = len(events) if isinstance(events, list) else 1
                    await session.send({"stream": stream, "data": events} if combined else events, counts_prints=count)
            await asyncio.sleep(self.push_interval_s)

    def _stream_events(self, stream: str) -> dict | list[dict] | None:
        """The payload of one stream name now; None for names this venue does not serve."""
        if stream in ("!markPrice@arr", "!markPrice@arr@1s"):
            return [self._mark_price_event(coin) for coin in COINS]
        name, _, kind = stream.partition("@")
        coin = {venue_symbol(VENUE, c).lower(): c for c in COINS}.get(name)
        if coin is None or kind not in ("markPrice", "markPrice@1s"):
            return None
        return self._mark_price_event(coin)

    def _mark_price_event(self, coin: str) -> dict:
        rate, funding_time, _ = self.feed.predicted(VENUE, coin)
        price = PRICES[coin]
        return {
            "e": "markPriceUpdate",
            "E": to_ms(self.feed.clock()),
            "s": venue_symbol(VENUE, coin),
            "p": price,
            "ap": price,
            "P": price,
            "i": price,
            "r": rate_text(rate),
            "T": to_ms(funding_time),
        }
