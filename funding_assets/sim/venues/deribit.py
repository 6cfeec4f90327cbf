"""Deribit in the simulator: JSON-RPC over HTTP GET and over WebSocket.

Every perpetual of the universe listed by the simulator's now: inverse ``BTC-PERPETUAL`` and
``ETH-PERPETUAL``, linear USDC ``SOL_USDC-PERPETUAL`` (and ``BTC_USDC-PERPETUAL``); BTC and
ETH also list a quarterly future (``BTC-27JUN25``), which has no funding.

REST (``/api/v2/public/<method>``, answers ``{"jsonrpc", "result" | "error", "usIn",
"usOut", "usDiff", "testnet"}``; errors are HTTP 400, the rate limit HTTP 429):

- ``get_funding_rate_history?instrument_name&start_timestamp&end_timestamp`` (all three
  required, ms): hourly rows ``{timestamp, index_price, prev_index_price, interest_8h,
  interest_1h}`` ascending, JSON numbers, with ``start_timestamp < timestamp <=
  end_timestamp`` (start exclusive: ccxt asks from ``since - 1``; end inclusive --
  UNVERIFIED). A request spans at most :data:`MAX_HISTORY_WINDOW` (744 h = 31 days): a
  longer range keeps the last 744 h before ``end_timestamp``, as the venue counts back
  from the end. ``interest_1h`` is the model's hourly rate;
  ``interest_8h`` the sum of the hourly rates of the 8 h ending at ``timestamp``.
- ``get_funding_rate_value?instrument_name&start_timestamp&end_timestamp``: the funding
  accrued over ``[start, end]``, a JSON number: each hour's rate (``interest_1h``) pro-rated
  by the share of the hour inside the range (funding accrues continuously).
- ``get_instruments?currency=BTC|ETH|USDC|USDT|any[&kind=future][&expired=true]``: the
  perpetuals (``settlement_period`` ``perpetual``, ``expiration_timestamp`` 32503708800000)
  and quarterly futures of the currency (inverse ones under their coin, linear ones under
  ``USDC``), active ones by default; ``expired=true`` lists the delisted perpetuals instead
  (``is_active`` false, ``expiration_timestamp`` their delisting). Fields:
  ``instrument_name``, ``instrument_id``, ``kind``, ``instrument_type`` (``reversed`` /
  ``linear``), ``future_type``, ``base_currency``, ``counter_currency``, ``quote_currency``,
  ``settlement_currency``, ``price_index``, ``contract_size``, ``creation_timestamp``,
  ``expiration_timestamp``, ``is_active``, ``tick_size``, ``min_trade_amount``,
  ``max_leverage``, commissions. Other kinds answer ``[]``.
- ``get_book_summary_by_currency?currency=&kind=future``: per active instrument
  ``open_interest`` (USD for inverse, coin for linear), ``volume_usd`` (the ranking
  source), ``volume``, ``mark_price``, ``current_funding`` / ``funding_8h`` (perpetuals).
- ``ticker?instrument_name``: ``timestamp`` (sim now, ms), ``funding_8h`` = the open hour's
  predicted rate x 8 (8 h basis), ``current_funding`` = the instantaneous 8 h-basis rate
  of the current hour's premium, ``interest_value`` = cumulative hourly funding since the
  model starts, synthetic constant prices (the model has none): a subset of the real fields.
- Unknown instruments: error 13020 ``not_found``; dated futures and options (``BTC-27JUN25``)
  are refused with -32602 ``Invalid params`` (code UNVERIFIED); missing or non-integer
  parameters: -32602.
- Budget: credits, 500 a request from a 50 000 pool refilled at 10 000/s (100 requests,
  20 a second: the spec's budget in requests); beyond it HTTP 429 with error 10028
  ``too_many_requests``.

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
import hashlib
import json
import re
from typing import Any

import numpy as np
import polars as pl
from websockets.exceptions import ConnectionClosed

from ...clients import epoch_ms
from ...instruments import Instrument
from ...venues import INVERSE
from ..model import funding_rate
from ..server import Request, Response, VenueSim, WsSession, json_response
from .market import index_price

VENUE = "deribit"
PUBLIC = "/api/v2/public/"
WS_PATH = "/ws/api/v2"
HOUR = dt.timedelta(hours=1)
MS = dt.timedelta(milliseconds=1)
UNIX_EPOCH = dt.datetime(1970, 1, 1)
MAX_HISTORY_WINDOW = dt.timedelta(hours=744)
TRAILING_WINDOW = "8h"
SERVER_VERSION = "1.2.26"
#: Synthetic index prices, USD (the funding model has no prices).
INDEX_PRICE = {"BTC": 65_000.0, "ETH": 3_200.0, "SOL": 150.0}
#: expiration_timestamp of a perpetual (3000-01-01).
PERPETUAL_EXPIRY_MS = 32_503_708_800_000
CURRENCIES = ("BTC", "ETH", "USDC", "USDT", "EURR", "any")
KINDS = ("future", "option", "spot", "future_combo", "option_combo")
#: Coins with a quarterly future (inverse, no funding).
FUTURE_COINS = ("BTC", "ETH")
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


def hash_id(name: str) -> int:
    """A stable positive instrument_id for a name."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=3).digest(), "little")


def price_of(coin: str) -> float:
    return INDEX_PRICE.get(coin) or index_price(coin)


def currency_of(inst: Instrument) -> str:
    """The ``currency`` a perpetual is listed under: its coin if inverse, else USDC."""
    return inst.symbol if inst.contract == INVERSE else (inst.settle or "USDC")


def quarterly_expiry(now: dt.datetime) -> dt.datetime:
    """The next quarterly expiry: last Friday of Mar/Jun/Sep/Dec, 08:00 UTC."""
    year, month = now.year, now.month
    while True:
        if month % 3 == 0:
            last_day = dt.datetime(year + month // 12, month % 12 + 1, 1, 8) - dt.timedelta(days=1)
            expiry = last_day - dt.timedelta(days=(last_day.weekday() - 4) % 7)
            if expiry > now:
                return expiry
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


class Sim(VenueSim):
    venue = VENUE
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

    def error(self, status: int, message: str) -> Response:
        code, name = STATUS_ERRORS.get(status) or (SERVER_ERROR if status >= 500 else BAD_REQUEST)
        return json_response(self.envelope(error=RpcError(code, name, {"reason": message}).body()), status)

    # --- REST -------------------------------------------------------------------------

    def rest(self, request: Request) -> Response:
        handlers = {
            "get_funding_rate_history": self.history,
            "get_funding_rate_value": self.funding_value,
            "get_instruments": self.instruments,
            "get_book_summary_by_currency": self.book_summary,
            "ticker": self.ticker_answer,
        }
        method = request.path[len(PUBLIC) :] if request.path.startswith(PUBLIC) else None
        handler = handlers.get(method or "")
        try:
            if handler is None or request.method != "GET":
                raise RpcError(-32601, "Method not found")
            result = handler(request.query)
        except RpcError as exc:
            return json_response(self.envelope(error=exc.body()), 400)
        return json_response(self.envelope(result=result))

    def _range(self, query: dict[str, str]) -> tuple[Instrument, dt.datetime, dt.datetime]:
        inst = self.perpetual(query.get("instrument_name"))
        start = from_ms(self.int_param(query, "start_timestamp"))
        return inst, start, from_ms(self.int_param(query, "end_timestamp"))

    def history(self, query: dict[str, str]) -> list[dict]:
        """Hourly rows with start < timestamp <= end, at most the 744 h before end."""
        inst, start, end = self._range(query)
        start = max(start, end - MAX_HISTORY_WINDOW)
        if end <= start:
            return []
        # 7 h more before the range so every row's trailing 8 h sum is whole.
        rows = (
            self.feed.settlements(VENUE, inst.symbol, start + MS - 7 * HOUR, end + MS, inst.contract)
            .with_columns(
                interest_8h=pl.col("rate").rolling_sum_by("funding_time", window_size=TRAILING_WINDOW, closed="right")
            )
            .filter(pl.col("funding_time") > start)
        )
        price = price_of(inst.symbol)
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

    def funding_value(self, query: dict[str, str]) -> float:
        """Funding accrued over [start, end]: each hour's rate times its share inside the range."""
        inst, start, end = self._range(query)
        if end <= start:
            return 0.0
        rows = self.feed.settlements(VENUE, inst.symbol, start, end + HOUR, inst.contract)
        total = 0.0
        for funding_time, rate, hours in rows.select("funding_time", "rate", "interval_hours").iter_rows():
            window = dt.timedelta(hours=hours)
            inside = min(funding_time, end) - max(funding_time - window, start)
            if inside > dt.timedelta(0):
                total += rate * (inside / window)
        return total

    def ticker_answer(self, query: dict[str, str]) -> dict:
        name = query.get("instrument_name")
        if not name:
            raise invalid_param("instrument_name", "must be present")
        inst = self.feed.instrument(VENUE, name)
        if inst is None or not self.feed.trading(inst):
            raise RpcError(13020, "not_found")
        return self.ticker(inst)

    def ticker(
        self, inst: Instrument, now: dt.datetime | None = None, quote: tuple[float, dt.datetime, float] | None = None
    ) -> dict:
        """The perpetual's ticker at ``now`` (the simulator's now by default; ``quote``: the
        model's estimate then, when the caller has it), funding fields as JSON numbers, per
        the module docstring."""
        now = self.feed.clock() if now is None else now
        index = price_of(inst.symbol)
        mark, current_8h, funding_8h = self.funding_now(inst, now, quote)
        return {
            "timestamp": epoch_ms(now),
            "state": "open",
            "instrument_name": inst.venue_symbol,
            "index_price": index,
            "mark_price": mark,
            "last_price": mark,
            "estimated_delivery_price": index,
            "interest_value": self.feed.published_sum(inst, now),
            "current_funding": current_8h,
            "funding_8h": funding_8h,
        }

    def funding_now(
        self, inst: Instrument, now: dt.datetime | None = None, quote: tuple[float, dt.datetime, float] | None = None
    ) -> tuple[float, float, float]:
        """(mark price, ``current_funding``, ``funding_8h``) at ``now`` (default: the simulator's
        now): the current hour's premium as an instantaneous 8 h-basis rate, and the open
        hour's predicted rate (``quote``, the model's then unless given) x 8."""
        now = self.feed.clock() if now is None else now
        rate, _, interval_hours = quote or self.feed.predicted(*inst.key, at=now)

        def of_hour() -> tuple[float, float]:
            premium = self.feed.hour_premium(inst, now)
            current_8h = float(funding_rate(VENUE, np.array([premium]), np.array([8.0]))[0])
            return round(price_of(inst.symbol) * (1 + premium), 2), current_8h

        mark, current_8h = self.feed.daily(("deribit-premium", inst.key, now.hour), now, of_hour)
        return mark, current_8h, rate * (8 / interval_hours)

    def perpetual(self, name: str | None) -> Instrument:
        """The perpetual an instrument name names, or Deribit's error for it."""
        if not name:
            raise invalid_param("instrument_name", "must be present")
        if DATED.match(name):
            raise invalid_param("instrument_name", "perpetual instrument required")
        inst = self.feed.instrument(VENUE, name)
        if inst is None:
            raise RpcError(13020, "not_found")
        return inst

    # --- instruments ------------------------------------------------------------------

    @staticmethod
    def _choice(query: dict[str, str], name: str, allowed: tuple[str, ...], *, required: bool) -> str | None:
        value = query.get(name)
        if value is None and not required:
            return None
        if value not in allowed:
            raise invalid_param(name, "must be present" if value is None else f"must be one of {', '.join(allowed)}")
        return value

    def _of_currency(self, query: dict[str, str]) -> list[Instrument]:
        """Perpetuals listed by now under ``currency`` (kind ``future`` or none asked)."""
        currency = self._choice(query, "currency", CURRENCIES, required=True)
        kind = self._choice(query, "kind", KINDS, required=False)
        if kind not in (None, "future"):
            return []
        return [i for i in self.feed.listing(VENUE) if currency in ("any", currency_of(i))]

    def instruments(self, query: dict[str, str]) -> list[dict]:
        expired = query.get("expired", "false")
        if expired not in ("true", "false"):
            raise invalid_param("expired", "must be a boolean")
        now = self.feed.clock()
        listed = self._of_currency(query)
        if expired == "true":
            return [self._instrument_row(i) for i in listed if not self.feed.trading(i)]
        rows = [self._instrument_row(i) for i in listed if self.feed.trading(i)]
        expiry = quarterly_expiry(now)
        rows += [
            self._instrument_row(i, expiry=expiry)
            for i in listed
            if i.symbol in FUTURE_COINS and i.contract == INVERSE and self.feed.trading(i)
        ]
        return rows

    def _instrument_row(self, inst: Instrument, expiry: dt.datetime | None = None) -> dict:
        inverse = inst.contract == INVERSE
        quote = "USD" if inverse else "USDC"
        active = expiry is not None or self.feed.trading(inst)
        if expiry is not None:
            name, period, expires = f"{inst.symbol}-{expiry.day}{expiry:%b%y}".upper(), "month", epoch_ms(expiry)
        elif active:
            name, period, expires = inst.venue_symbol, "perpetual", PERPETUAL_EXPIRY_MS
        else:
            name, period, expires = inst.venue_symbol, "perpetual", epoch_ms(inst.delisted_at)
        kind = "reversed" if inverse else "linear"
        return {
            "tick_size": 0.5 if inverse else 0.01,
            "tick_size_steps": [],
            "taker_commission": 0.0005,
            "settlement_period": period,
            "settlement_currency": inst.symbol if inverse else "USDC",
            "rfq": False,
            "quote_currency": quote,
            "price_index": f"{inst.symbol.lower()}_{quote.lower()}",
            "min_trade_amount": 10 if inverse else 0.1,
            "max_liquidation_commission": 0.0075,
            "max_leverage": 50 if inverse else 25,
            "maker_commission": 0.0,
            "kind": "future",
            "is_active": active,
            "instrument_type": kind,
            "instrument_name": name,
            "instrument_id": hash_id(name),
            "future_type": kind,
            "expiration_timestamp": expires,
            "creation_timestamp": epoch_ms(inst.listed_at) if inst.listed_at else 0,
            "counter_currency": quote,
            "contract_size": (10 if inst.symbol == "BTC" else 1) if inverse else 1,
            "block_trade_tick_size": 0.01,
            "block_trade_min_trade_amount": 200000 if inverse else 25,
            "block_trade_commission": 0.00025,
            "base_currency": inst.symbol,
        }

    def book_summary(self, query: dict[str, str]) -> list[dict]:
        """Open interest and 24 h volume of each active perpetual of ``currency``."""
        now = self.feed.clock()
        rows = []
        for inst in self._of_currency(query):
            if not self.feed.trading(inst):
                continue
            mark, current_8h, funding_8h = self.funding_now(inst)
            price = price_of(inst.symbol)
            oi_usd, volume_usd = float(inst.open_interest_usd or 0.0), float(inst.volume_usd or 0.0)
            inverse = inst.contract == INVERSE
            rows.append(
                {
                    "volume_usd": round(volume_usd, 2),
                    "volume_notional": round(volume_usd if not inverse else volume_usd / price, 4),
                    "volume": round(volume_usd / price, 4),
                    "quote_currency": "USD" if inverse else "USDC",
                    "price_change": 0.0,
                    "open_interest": round(oi_usd if inverse else oi_usd / price, 4),
                    "mid_price": mark,
                    "mark_price": mark,
                    "low": mark,
                    "last": mark,
                    "instrument_name": inst.venue_symbol,
                    "high": mark,
                    "estimated_delivery_price": price,
                    "current_funding": current_8h,
                    "funding_8h": funding_8h,
                    "creation_timestamp": epoch_ms(now),
                    "bid_price": mark,
                    "base_currency": inst.symbol,
                    "ask_price": mark,
                }
            )
        return rows

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
        self.channels: dict[str, Instrument] = {}  # channel -> perpetual
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
                next_push = self.sim.next_push(next_push, now)
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
            inst = self.sim.feed.instrument(VENUE, match["instrument"]) if match else None
            if inst is not None and self.sim.feed.trading(inst):
                self.channels[channel] = inst
        return [c for c in channels if c in self.channels]

    def test(self, params: dict) -> dict:
        self.awaiting_test = False
        self.sim.test_replies += 1
        return {"version": SERVER_VERSION}

    async def push(self) -> None:
        """One ticker notification per subscribed channel, all of one instant, in one write."""
        await self.session.send_many(await asyncio.to_thread(self.notifications, list(self.channels.items())))

    def notifications(self, channels: list[tuple[str, Instrument]]) -> list[tuple[dict, int]]:
        """The ticker notifications of one instant (run off the event loop, which stays free to
        read the client)."""
        now = self.sim.feed.clock()
        quotes = self.sim.feed.predicted_many([inst for _, inst in channels], now)
        return [
            (
                {
                    "jsonrpc": "2.0",
                    "method": "subscription",
                    "params": {"channel": channel, "data": self.sim.ticker(inst, now, quote)},
                },
                1,
            )
            for (channel, inst), quote in zip(channels, quotes)
        ]
