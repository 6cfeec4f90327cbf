"""Deribit in the simulator: JSON-RPC over HTTP GET and over WebSocket, perpetuals only.

REST (``/api/v2/public/<method>``, answers ``{"jsonrpc", "result" | "error", "usIn",
"usOut", "usDiff", "testnet"}``; errors are HTTP 400, the rate limit HTTP 429):

- ``get_funding_rate_history?instrument_name&start_timestamp&end_timestamp`` (all three
  required, ms): hourly rows ``{timestamp, index_price, prev_index_price, interest_8h,
  interest_1h}`` ascending, JSON numbers, with ``start_timestamp < timestamp <=
  end_timestamp`` (start exclusive: ccxt asks from ``since - 1``; end inclusive --
  UNVERIFIED). A request spans at most :data:`MAX_HISTORY_WINDOW` (744 h = 31 days): a
  longer range keeps the first 744 h after ``start_timestamp`` (Deribit truncates at about
  a month; which end it keeps is UNVERIFIED). ``interest_1h`` is the model's hourly rate;
  ``interest_8h`` the sum of the hourly rates of the 8 h ending at ``timestamp``.
- ``ticker?instrument_name``: ``timestamp`` (sim now, ms), ``funding_8h`` = the open hour's
  predicted rate x 8 (8 h basis), ``current_funding`` = the instantaneous 8 h-basis rate
  of the current hour's premium, ``interest_value`` = cumulative hourly funding since the
  model starts, synthetic constant prices (the model has none): a subset of the real fields.
- Unknown instruments: error 13020 ``not_found``; dated futures and options (``BTC-27JUN25``)
  are refused with -32602 ``Invalid params`` (code UNVERIFIED); missing or non-integer
  parameters: -32602.
- Budget: credits, 500 a request from a 50 000 pool refilled at 10 000/s (about 20 req/s
  sustained); beyond it HTTP 429 with error 10028 ``too_many_requests``.

WebSocket (``/ws/api/v2``): ``public/set_heartbeat {interval}`` (at least
``min_heartbeat_s``, 10 s like Deribit; tests may lower it) makes the server send
``{"method":"heartbeat","params":{"type":"test_request"}}`` every interval and close the
connection if the previous one was not answered by ``public/test``.
``public/subscribe {channels}`` accepts ``ticker.{instrument}.100ms|agg2`` of known
perpetuals and answers the list of accepted channels; every ``push_interval_s`` each
channel gets ``{"method":"subscription","params":{"channel","data": <ticker>}}``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from typing import Any

import numpy as np
import polars as pl
from websockets.exceptions import ConnectionClosed

from ...clients import epoch_ms
from ...clients.http import Budget
from ...venues import COINS, venue_symbol
from ..model import EPOCH, funding_rate
from ..server import Request, Response, VenueSim, WsSession, json_response

VENUE = "deribit"
PUBLIC = "/api/v2/public/"
WS_PATH = "/ws/api/v2"
HOUR = dt.timedelta(hours=1)
MS = dt.timedelta(milliseconds=1)
UNIX_EPOCH = dt.datetime(1970, 1, 1)
MAX_HISTORY_WINDOW = dt.timedelta(hours=744)
TRAILING_WINDOW = "8h"
CREDITS_PER_REQUEST = 500.0
SERVER_VERSION = "1.2.26"
#: Synthetic index prices, USD (the funding model has no prices).
INDEX_PRICE = {"BTC": 65_000.0, "ETH": 3_200.0, "SOL": 150.0}
INSTRUMENTS = {venue_symbol(VENUE, coin): coin for coin in COINS}
# Futures (BTC-27JUN25) and options (BTC-27JUN25-70000-C; Deribit writes a strike's
# decimal point as "d"): Deribit's dated instruments.
DATED = re.compile(r"^[A-Z0-9_]+-\d{1,2}[A-Z]{3}\d{2}(-[0-9d]+-[CP])?$")
TICKER_CHANNEL = re.compile(r"^ticker\.(?P<instrument>[^.]+)\.(100ms|agg2)$")

LIMIT_ERROR = (10028, "too_many_requests")
STATUS_ERRORS = {429: LIMIT_ERROR, 418: LIMIT_ERROR, 403: (13021, "forbidden")}
SERVER_ERROR = (11094, "internal_server_error")
BAD_REQUEST = (11050, "bad_request")


class RpcError(Exception):
    """A JSON-RPC error: Deribit's ``code``, ``message`` and optional ``data``."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def body(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def invalid_param(name: str, reason: str) -> RpcError:
    return RpcError(-32602, "Invalid params", {"param": name, "reason": reason})


def from_ms(ms: int) -> dt.datetime:
    return UNIX_EPOCH + ms * MS


class Sim(VenueSim):
    venue = VENUE
    budget = Budget(50_000.0, 5.0)  # credits: 50k pool, 10k/s refill
    limit_status = 429
    #: Shortest heartbeat interval accepted, seconds (Deribit: 10).
    min_heartbeat_s = 10.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.test_replies = 0  # public/test answers received on streams: keep-alives honoured

    # --- envelopes --------------------------------------------------------------------

    def envelope(self, request_id: Any = None, **fields: Any) -> dict:
        """A JSON-RPC answer with Deribit's server timing fields (µs of the sim clock)."""
        us_in = epoch_ms(self.feed.clock()) * 1000
        head = {"jsonrpc": "2.0"} if request_id is None else {"jsonrpc": "2.0", "id": request_id}
        return {**head, **fields, "usIn": us_in, "usOut": us_in + 250, "usDiff": 250, "testnet": False}

    def cost(self, request: Request) -> float:
        return CREDITS_PER_REQUEST

    def error(self, status: int, message: str) -> Response:
        code, name = STATUS_ERRORS.get(status) or (SERVER_ERROR if status >= 500 else BAD_REQUEST)
        return json_response(self.envelope(error=RpcError(code, name, {"reason": message}).body()), status)

    # --- REST -------------------------------------------------------------------------

    def rest(self, request: Request) -> Response:
        handlers = {"get_funding_rate_history": self.history, "ticker": self.ticker_answer}
        method = request.path[len(PUBLIC) :] if request.path.startswith(PUBLIC) else None
        handler = handlers.get(method or "")
        try:
            if handler is None or request.method != "GET":
                raise RpcError(-32601, "Method not found")
            result = handler(request.query)
        except RpcError as exc:
            return json_response(self.envelope(error=exc.body()), 400)
        return json_response(self.envelope(result=result))

    def history(self, query: dict[str, str]) -> list[dict]:
        """Hourly rows with start < timestamp <= end, at most 744 h after start."""
        coin = self.perpetual(query.get("instrument_name"))
        start = from_ms(self.int_param(query, "start_timestamp"))
        end = min(from_ms(self.int_param(query, "end_timestamp")), start + MAX_HISTORY_WINDOW)
        if end <= start:
            return []
        # 7 h more before the range so every row's trailing 8 h sum is whole.
        rows = (
            self.feed.settlements(VENUE, coin, start + MS - 7 * HOUR, end + MS)
            .with_columns(
                interest_8h=pl.col("rate").rolling_sum_by("funding_time", window_size=TRAILING_WINDOW, closed="right")
            )
            .filter(pl.col("funding_time") > start)
        )
        price = INDEX_PRICE[coin]
        return [
            {
                "timestamp": epoch_ms(row["ts"]),
                "index_price": price,
                "prev_index_price": price,
                "interest_8h": row["interest_8h"],
                "interest_1h": row["rate"],
            }
            for row in rows.iter_rows(named=True)
        ]

    def ticker_answer(self, query: dict[str, str]) -> dict:
        name = query.get("instrument_name")
        if not name:
            raise invalid_param("instrument_name", "must be present")
        if name not in INSTRUMENTS:
            raise RpcError(13020, "not_found")
        return self.ticker(INSTRUMENTS[name])

    def ticker(self, coin: str) -> dict:
        """The perpetual's ticker now (funding fields as JSON numbers, per the module docstring)."""
        now = self.feed.clock()
        rate, _, interval_hours = self.feed.predicted(VENUE, coin)
        hour = now.replace(minute=0, second=0, microsecond=0)
        premium = float(self.feed.model.premium(VENUE, coin, hour, hour + HOUR)["premium"][0])
        current_8h = float(funding_rate(VENUE, np.array([premium]), np.array([8.0]))[0])
        index = INDEX_PRICE[coin]
        mark = round(index * (1 + premium), 2)
        return {
            "timestamp": epoch_ms(now),
            "state": "open",
            "instrument_name": venue_symbol(VENUE, coin),
            "index_price": index,
            "mark_price": mark,
            "last_price": mark,
            "estimated_delivery_price": index,
            "interest_value": float(self.feed.settlements(VENUE, coin, EPOCH, now)["rate"].sum()),
            "current_funding": current_8h,
            "funding_8h": rate * (8 / interval_hours),
        }

    def perpetual(self, name: str | None) -> str:
        """The coin of a perpetual's instrument name, or Deribit's error for it."""
        if not name:
            raise invalid_param("instrument_name", "must be present")
        if DATED.match(name):
            raise invalid_param("instrument_name", "perpetual instrument required")
        if name not in INSTRUMENTS:
            raise RpcError(13020, "not_found")
        return INSTRUMENTS[name]

    @staticmethod
    def int_param(query: dict[str, str], name: str) -> int:
        if name not in query:
            raise invalid_param(name, "must be present")
        try:
            return int(query[name])
        except ValueError:
            raise invalid_param(name, "must be integer") from None

    # --- WebSocket --------------------------------------------------------------------

    async def ws(self, session: WsSession) -> None:
        if session.path.rstrip("/") != WS_PATH:
            await session.connection.close(1008, f"no endpoint at {session.path}")
            return
        try:
            await _Stream(self, session).run()
        except ConnectionClosed:
            pass  # the client went away


class _Stream:
    """One WebSocket session: JSON-RPC requests, heartbeats and ticker pushes."""

    def __init__(self, sim: Sim, session: WsSession) -> None:
        self.sim = sim
        self.session = session
        self.channels: dict[str, str] = {}  # channel -> coin
        self.heartbeat_s: float | None = None
        self.awaiting_test = False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_push = loop.time() + self.sim.push_interval_s
        next_beat: float | None = None
        while True:
            deadline = next_push if next_beat is None else min(next_push, next_beat)
            text = await self.session.recv(max(0.0, deadline - loop.time()))
            if text is not None:
                if await self.answer(text) and self.heartbeat_s is not None:
                    next_beat = loop.time() + self.heartbeat_s  # (re)armed by set_heartbeat
            now = loop.time()
            if now >= next_push:
                await self.push()
                next_push = now + self.sim.push_interval_s
            if next_beat is not None and now >= next_beat:
                if self.awaiting_test:
                    await self.session.connection.close(1000, "heartbeat test_request not answered")
                    return
                await self.session.send({"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}})
                self.awaiting_test = True
                next_beat = now + self.heartbeat_s

    async def answer(self, text: str) -> bool:
        """Answer one client request; True if it (re)configured the heartbeat."""
        try:
            request = json.loads(text)
            method, params = request["method"], request.get("params") or {}
        except (ValueError, KeyError, TypeError):
            await self.session.send(self.sim.envelope(error=RpcError(-32700, "Parse error").body()))
            return False
        handlers = {
            "public/set_heartbeat": self.set_heartbeat,
            "public/subscribe": self.subscribe,
            "public/test": self.test,
        }
        try:
            if method not in handlers:
                raise RpcError(-32601, "Method not found")
            result = handlers[method](params)
        except RpcError as exc:
            await self.session.send(self.sim.envelope(request.get("id"), error=exc.body()))
            return False
        await self.session.send(self.sim.envelope(request.get("id"), result=result))
        return method == "public/set_heartbeat"

    def set_heartbeat(self, params: dict) -> str:
        interval = params.get("interval")
        if not isinstance(interval, (int, float)) or interval < self.sim.min_heartbeat_s:
            raise invalid_param("interval", f"must be a number of seconds, at least {self.sim.min_heartbeat_s:g}")
        self.heartbeat_s = float(interval)
        self.awaiting_test = False
        return "ok"

    def subscribe(self, params: dict) -> list[str]:
        channels = params.get("channels")
        if not isinstance(channels, list):
            raise invalid_param("channels", "must be a list")
        for channel in channels:
            match = TICKER_CHANNEL.match(channel) if isinstance(channel, str) else None
            if match and match["instrument"] in INSTRUMENTS:
                self.channels[channel] = INSTRUMENTS[match["instrument"]]
        return [c for c in channels if c in self.channels]

    def test(self, params: dict) -> dict:
        self.awaiting_test = False
        self.sim.test_replies += 1
        return {"version": SERVER_VERSION}

    async def push(self) -> None:
        for channel, coin in list(self.channels.items()):
            params = {"channel": channel, "data": self.sim.ticker(coin)}
            await self.session.send({"jsonrpc": "2.0", "method": "subscription", "params": params}, counts_prints=1)
