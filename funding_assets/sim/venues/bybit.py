"""Bybit v5 linear in the simulator: funding history, tickers and the ``tickers.*`` stream.

REST (HTTP 200 with ``retCode`` for logical errors, v5 envelope, every value a string
except the envelope ``time``):

- ``GET /v5/market/funding/history`` (``category=linear``, ``symbol``, ``startTime``,
  ``endTime``, ``limit`` in [1, 200], default 200): the **newest** ``limit`` settlements
  with ``fundingRateTimestamp`` in ``[startTime, endTime]``, newest first. Only
  ``endTime``: the newest up to it; neither: the latest; only ``startTime``: retCode 10001.
- ``GET /v5/market/tickers`` (``category=linear``, optional ``symbol``): the open window's
  estimate ``fundingRate`` settling at ``nextFundingTime``, ``fundingIntervalHour``,
  ``fundingCap``; the all-symbols answer also lists a dated future with ``""`` funding.
- ``GET /v5/market/premium-index-price-kline`` (``category`` optional, ``linear``;
  ``symbol``, ``interval`` in 1/3/5/15/30/60/120/240/360/720/D -- W and M are not
  simulated; ``start``, ``end``, ``limit`` in [1, 1000], default 200): the **newest**
  ``limit`` candles with ``startTime`` in ``[start, end]`` (``end`` defaults to now), newest
  first, ``[startTime, open, high, low, close]`` as strings (6 decimals), aggregated from
  the model's 1-minute samples (a 1-minute candle is one sample).

WebSocket ``/v5/public/linear``: ``{"op":"subscribe","args":["tickers.BTCUSDT"]}`` is
acknowledged, answered with a snapshot, then every ``push_interval_s`` with a delta holding
only the fields that changed. ``{"op":"ping"}`` gets a pong; a connection that has not
pinged for ``idle_timeout_s`` is closed.

Budget: 600 requests per 5 s per IP, HTTP 403 beyond it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import uuid
from typing import Any

import numpy as np
from websockets.exceptions import ConnectionClosed

from ...clients.http import Budget
from ...venues import COINS, RATE_CAPS, venue_symbol
from ..model import EPOCH
from ..server import Request, Response, VenueSim, WsSession, json_response
from .klines import candles

HISTORY_PATH = "/v5/market/funding/history"
TICKERS_PATH = "/v5/market/tickers"
PREMIUM_KLINE_PATH = "/v5/market/premium-index-price-kline"
KLINE_MAX_LIMIT = 1000
KLINE_DEFAULT_LIMIT = 200
#: premium-index-price-kline intervals served, in minutes (W and M are not simulated).
KLINE_MINUTES = {
    "1": 1,
    "3": 3,
    "5": 5,
    "15": 15,
    "30": 30,
    "60": 60,
    "120": 120,
    "240": 240,
    "360": 360,
    "720": 720,
    "D": 1440,
}
WS_PATH = "/v5/public/linear"
MAX_LIMIT = 200
UNIX = dt.datetime(1970, 1, 1)
MS = dt.timedelta(milliseconds=1)
PARAMS_ERROR = 10001


class ParamsError(ValueError):
    """A request Bybit refuses with retCode 10001 (HTTP 200)."""


def ms(when: dt.datetime) -> int:
    """Naive UTC datetime -> epoch ms (exact, truncating sub-ms)."""
    return (when - UNIX) // MS


def decimal_text(value: float) -> str:
    """A rate as Bybit prints it: shortest positional decimal string (``"0.0001"``)."""
    return np.format_float_positional(value, trim="-")


def quarterly_expiry(now: dt.datetime) -> dt.datetime:
    """The next quarterly future's delivery: last Friday of Mar/Jun/Sep/Dec, 08:00 UTC."""
    year, month = now.year, now.month
    while True:
        if month % 3 == 0:
            last_day = dt.datetime(year + month // 12, month % 12 + 1, 1, 8) - dt.timedelta(days=1)
            expiry = last_day - dt.timedelta(days=(last_day.weekday() - 4) % 7)
            if expiry > now:
                return expiry
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


class Sim(VenueSim):
    venue = "bybit"
    budget = Budget(600, 5.0)
    limit_status = 403
    #: Seconds without a client ping before the connection is closed: three of the 20 s
    #: ping intervals Bybit asks for (tests shorten it to check that clients ping).
    idle_timeout_s = 60.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.symbols = {venue_symbol(self.venue, coin): coin for coin in COINS}
        self.pings = 0
        self._cross_sequence = itertools.count(1)

    def _now(self) -> dt.datetime:
        """The simulator's now to the ms, so a quote's stamp is the instant it describes."""
        now = self.feed.clock()
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    # --- REST ---------------------------------------------------------------------------

    def error(self, status: int, message: str) -> Response:
        """HTTP-level refusals (gateway/WAF), plain text; a 403 is the IP rate limit."""
        text = "access too frequent" if status == self.limit_status else message
        return Response(status, text.encode(), {"Content-Type": "text/plain"})

    def rest(self, request: Request) -> Response:
        routes = {HISTORY_PATH: self._history, TICKERS_PATH: self._tickers, PREMIUM_KLINE_PATH: self._premium_kline}
        route = routes.get(request.path)
        if route is None or request.method != "GET":
            return Response(404, b"404 page not found", {"Content-Type": "text/plain"})
        now = self._now()
        try:
            result = route(request.query, now)
        except ParamsError as exc:
            return self._envelope(PARAMS_ERROR, f"params error: {exc}", {}, now)
        return self._envelope(0, "OK", result, now)

    @staticmethod
    def _envelope(code: int, message: str, result: dict, now: dt.datetime) -> Response:
        return json_response({"retCode": code, "retMsg": message, "result": result, "retExtInfo": {}, "time": ms(now)})

    def _coin(self, query: dict[str, str], *, required: bool) -> str | None:
        if query.get("category") != "linear":
            raise ParamsError("category invalid")
        symbol = query.get("symbol")
        if symbol is None and not required:
            return None
        if symbol not in self.symbols:
            raise ParamsError("symbol invalid")
        return self.symbols[symbol]

    @staticmethod
    def _int(query: dict[str, str], name: str) -> int | None:
        try:
            return int(query[name]) if name in query else None
        except ValueError:
            raise ParamsError(f"{name} invalid") from None

    def _history(self, query: dict[str, str], now: dt.datetime) -> dict:
        coin = self._coin(query, required=True)
        limit = self._int(query, "limit")
        limit = MAX_LIMIT if limit is None else limit
        if not 1 <= limit <= MAX_LIMIT:
            raise ParamsError("limit invalid")
        start_ms, end_ms = self._int(query, "startTime"), self._int(query, "endTime")
        if start_ms is not None and end_ms is None:
            raise ParamsError("endTime is required with startTime")
        lo = max(start_ms or 0, ms(EPOCH))
        hi = min(end_ms if end_ms is not None else ms(now), ms(now))
        rows = []
        if lo <= hi:  # inclusive bounds; the newest `limit` rows win
            frame = self.feed.settlements(self.venue, coin, UNIX + lo * MS, UNIX + (hi + 1) * MS)
            rows = frame.tail(limit).reverse().iter_rows(named=True)
        return {
            "category": "linear",
            "list": [
                {
                    "symbol": row["venue_symbol"],
                    "fundingRate": decimal_text(row["rate"]),
                    "fundingRateTimestamp": str(ms(row["ts"])),
                }
                for row in rows
            ],
        }

    def _premium_kline(self, query: dict[str, str], now: dt.datetime) -> dict:
        """Premium-index candles, newest first (see the module docstring)."""
        coin = self._coin({"category": "linear", **query}, required=True)
        minutes = KLINE_MINUTES.get(query.get("interval", ""))
        if minutes is None:
            raise ParamsError("interval invalid")
        limit = self._int(query, "limit")
        limit = KLINE_DEFAULT_LIMIT if limit is None else limit
        if not 1 <= limit <= KLINE_MAX_LIMIT:
            raise ParamsError("limit invalid")
        start_ms, end_ms = self._int(query, "start"), self._int(query, "end")
        frame = candles(self.feed, self.venue, coin, minutes, start_ms, end_ms, limit, newest=True)
        rows = [
            [str(open_ms), f"{o:.6f}", f"{h:.6f}", f"{lo:.6f}", f"{c:.6f}"]
            for open_ms, o, h, lo, c, _ in frame.reverse().iter_rows()
        ]
        return {"symbol": venue_symbol(self.venue, coin), "category": "linear", "list": rows}

    def _tickers(self, query: dict[str, str], now: dt.datetime) -> dict:
        coin = self._coin(query, required=False)
        tickers = [self._ticker(c, now) for c in ([coin] if coin else COINS)]
        if coin is None:
            tickers.append(self._dated_future(now))
        return {"category": "linear", "list": tickers}

    def _ticker(self, coin: str, now: dt.datetime) -> dict[str, str]:
        """The funding fields of a perpetual's ticker (REST row and WS data alike)."""
        rate, funding_time, hours = self.feed.model.predicted(self.venue, coin, now)
        return {
            "symbol": venue_symbol(self.venue, coin),
            "fundingRate": decimal_text(rate),
            "nextFundingTime": str(ms(funding_time)),
            "fundingIntervalHour": str(int(hours)),
            "fundingCap": decimal_text(RATE_CAPS[self.venue]),
        }

    @staticmethod
    def _dated_future(now: dt.datetime) -> dict[str, str]:
        """A quarterly BTC future: listed by tickers, with empty-string funding fields."""
        expiry = quarterly_expiry(now)
        return {
            "symbol": f"BTC-{expiry:%d%b%y}".upper(),
            "fundingRate": "",
            "nextFundingTime": "",
            "deliveryTime": str(ms(expiry)),
        }

    # --- WebSocket ----------------------------------------------------------------------

    async def ws(self, session: WsSession) -> None:
        if session.path != WS_PATH:
            await session.connection.close(1008, f"no stream at {session.path}")
            return
        # A session stalled by fault injection never returns from send(); end it when its
        # client goes away, so that server shutdown does not wait for it.
        serving = asyncio.ensure_future(self._serve(session))
        closed = asyncio.ensure_future(session.connection.wait_closed())
        try:
            await asyncio.wait({serving, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            serving.cancel()
            closed.cancel()
        if serving.done() and not serving.cancelled():
            serving.result()  # re-raise what ended the session (a dropped connection: ConnectionError)

    async def _serve(self, session: WsSession) -> None:
        """Commands, pushes and the idle cut-off of one connection."""
        subscribed: dict[str, str] = {}  # venue symbol -> coin
        pushed: dict[str, dict] = {}  # last fields sent per symbol, for deltas
        conn_id = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        last_ping = loop.time()
        next_push = last_ping + self.push_interval_s
        try:
            while True:
                now = loop.time()
                if now - last_ping >= self.idle_timeout_s:
                    await session.connection.close(1000, "no ping")
                    return
                if now >= next_push:
                    await self._push(session, subscribed, pushed)
                    next_push = now + self.push_interval_s
                    continue
                text = await session.recv(min(next_push, last_ping + self.idle_timeout_s) - now)
                if text is not None and await self._command(session, text, conn_id, subscribed, pushed):
                    last_ping = loop.time()
        except ConnectionClosed:
            return

    async def _command(self, session: WsSession, text: str, conn_id: str, subscribed: dict, pushed: dict) -> bool:
        """Answer one client message; True if it was a ping."""
        try:
            message = json.loads(text)
            op = message["op"]
        except (ValueError, TypeError, KeyError):
            return False  # not a command: ignored
        reply: dict[str, Any] = {"success": True, "ret_msg": "", "conn_id": conn_id, "op": op}
        if "req_id" in message:
            reply["req_id"] = message["req_id"]
        if op == "ping":
            self.pings += 1
            await session.send({**reply, "ret_msg": "pong"})
            return True
        if op != "subscribe":
            await session.send({**reply, "success": False, "ret_msg": f"error:handler not found,op:{op}"})
            return False
        args = message.get("args") if isinstance(message.get("args"), list) else []
        symbols = [str(a).removeprefix("tickers.") for a in args]
        bad = [a for a, s in zip(args, symbols) if not str(a).startswith("tickers.") or s not in self.symbols]
        if bad or not args:
            await session.send({**reply, "success": False, "ret_msg": f"Invalid symbol :[{','.join(map(str, bad))}]"})
            return False
        fresh = {s: self.symbols[s] for s in symbols if s not in subscribed}
        subscribed.update(fresh)
        await session.send(reply)
        await self._push(session, fresh, pushed)  # a new subscription starts with a snapshot
        return False

    async def _push(self, session: WsSession, symbols: dict[str, str], pushed: dict[str, dict]) -> None:
        """One ``tickers.<SYMBOL>`` message per symbol: a snapshot the first time, then a
        delta with only the changed fields (funding ones absent when unchanged)."""
        now = self._now()
        for symbol, coin in symbols.items():
            fields = self._ticker(coin, now)
            previous = pushed.get(symbol)
            if previous is None:
                kind, data = "snapshot", fields
            else:
                kind, data = "delta", {"symbol": symbol, **{k: v for k, v in fields.items() if previous.get(k) != v}}
            pushed[symbol] = fields
            message = {
                "topic": f"tickers.{symbol}",
                "type": kind,
                "data": data,
                "cs": next(self._cross_sequence),
                "ts": ms(now),
            }
            await session.send(message, counts_prints=1)
