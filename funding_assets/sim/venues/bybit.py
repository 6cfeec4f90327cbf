"""Bybit v5 in the simulator: instruments, funding history, tickers, premium klines and the
``tickers.*`` streams of every linear and inverse perpetual of the universe.

Categories: ``linear`` (USDT ``BTCUSDT`` / ``1000PEPEUSDT``, USDC ``BTCUSDC``) and ``inverse``
(``BTCUSD``). REST answers HTTP 200 with ``retCode`` for logical errors, in the v5 envelope,
every value a string except the envelope ``time``:

- ``GET /v5/market/instruments-info`` (``category`` required, ``symbol``, ``status``,
  ``baseCoin``, ``limit`` in [1, 1000] default 500, ``cursor``): the category's perpetuals
  sorted by symbol, paged by ``nextPageCursor`` (``""`` on the last page); by default only
  ``status`` ``Trading`` ones, ``status=Closed`` lists the delisted ones (``deliveryTime`` =
  the delisting). Rows: ``symbol``, ``contractType`` ``LinearPerpetual`` /
  ``InversePerpetual`` (linear also lists a dated ``LinearFutures``), ``status``,
  ``baseCoin`` (``1000PEPE``), ``quoteCoin``, ``settleCoin``, ``launchTime``,
  ``deliveryTime`` (``"0"`` while trading), ``fundingInterval`` (minutes, the open window's),
  ``upperFundingRate`` / ``lowerFundingRate``, ``priceScale`` and the filters.
- ``GET /v5/market/funding/history`` (``category``, ``symbol``, ``startTime``, ``endTime``,
  ``limit`` default 200, larger values clamped to 200): the **newest** ``limit``
  settlements with ``fundingRateTimestamp`` in ``[startTime, endTime]``, newest first. Only
  ``endTime``: the newest up to it; neither: the latest; only ``startTime``: retCode 10001.
- ``GET /v5/market/tickers`` (``category``, optional ``symbol``): the open window's
  estimate ``fundingRate`` settling at ``nextFundingTime``, ``fundingIntervalHour``,
  ``fundingCap``, prices and the ranking figures: linear ``openInterest`` (base units),
  ``openInterestValue`` and ``turnover24h`` (USD), ``volume24h`` (base units); inverse
  ``openInterest`` and ``volume24h`` in USD (contracts of 1 USD), ``openInterestValue`` and
  ``turnover24h`` in coin. The all-symbols linear answer also lists a dated future with
  ``""`` funding.
- ``GET /v5/market/premium-index-price-kline`` (``category`` default ``linear``; ``symbol``,
  ``interval`` in 1/3/5/15/30/60/120/240/360/720/D -- W and M are not simulated; ``start``,
  ``end``, ``limit`` in [1, 1000], default 200): the **newest** ``limit`` candles with
  ``startTime`` in ``[start, end]`` (``end`` defaults to now), newest first, ``[startTime,
  open, high, low, close]`` as strings (6 decimals), from the model's 1-minute samples.

WebSocket ``/v5/public/linear`` and ``/v5/public/inverse`` (each its category's symbols):
``{"op":"subscribe","args":["tickers.BTCUSDT"]}`` is acknowledged, answered with a
snapshot, then every ``push_interval_s`` with a delta holding only the fields that
changed. ``{"op":"ping"}`` gets a pong; a connection that has not pinged for
``idle_timeout_s`` is closed.

Budget: 600 requests per 5 s per IP, HTTP 403 beyond it.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import itertools
import json
import uuid
from typing import Any

import numpy as np
import orjson
from websockets.exceptions import ConnectionClosed

from ...instruments import Instrument
from ...venues import INVERSE, SPECS
from ..model import EPOCH, MINUTE_DECIMALS
from ..server import Request, Response, VenueSim, WsSession, json_response
from . import wire
from .klines import Candles, candles
from .market import decimals_for, index_price, quote_price, remembered_text

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
INSTRUMENTS_PATH = "/v5/market/instruments-info"
LINEAR, INVERSE_CATEGORY = "linear", "inverse"
CATEGORIES = (LINEAR, INVERSE_CATEGORY)
WS_PATHS = {f"/v5/public/{c}": c for c in CATEGORIES}
PERPETUAL_TYPES = {LINEAR: "LinearPerpetual", INVERSE_CATEGORY: "InversePerpetual"}
MAX_LIMIT = 200
INSTRUMENTS_DEFAULT_LIMIT = 500
INSTRUMENTS_MAX_LIMIT = 1000
TRADING, CLOSED = "Trading", "Closed"
DEFAULT_CAP = SPECS["bybit"].rate_cap
UNIX = dt.datetime(1970, 1, 1)
MS = dt.timedelta(milliseconds=1)
#: Ticker fields that move (the funding of the open window); a delta carries those that did.
TICKER_MOVING = ("fundingRate", "nextFundingTime", "fundingIntervalHour")
PARAMS_ERROR = 10001


class ParamsError(ValueError):
    """A request Bybit refuses with retCode 10001 (HTTP 200)."""


def ms(when: dt.datetime) -> int:
    """Naive UTC datetime -> epoch ms (exact, truncating sub-ms)."""
    return (when - UNIX) // MS


@remembered_text
def decimal_text(value: float) -> str:
    """A rate as Bybit prints it: shortest positional decimal string (``"0.0001"``)."""
    return np.format_float_positional(value, trim="-")


def premium_text(value: float) -> str:
    """A premium-index price as the kline endpoint prints it (6 decimals)."""
    return f"{value:.6f}"


def kline_rows(page: Candles) -> bytes:
    """JSON text of premium-index candles ``[startTime, open, high, low, close]``, all strings
    (:func:`premium_text`), in ``page``'s order."""
    rows = page.open_ms.size
    ohlc = wire.quoted_decimals(page[1:5], MINUTE_DECIMALS["bybit"], 6, premium_text)
    return wire.array_of_rows(
        [wire.quoted(wire.integers(page.open_ms)), *(p for c in ohlc for p in (wire.literal(",", rows), c))], rows
    )


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


def category_of(instrument: Instrument) -> str:
    return INVERSE_CATEGORY if instrument.contract == INVERSE else LINEAR


def quote_coin(instrument: Instrument) -> str:
    return "USD" if instrument.contract == INVERSE else (instrument.settle or "USDT")


def base_coin(instrument: Instrument) -> str:
    """``1000PEPE`` of ``1000PEPEUSDT``."""
    return instrument.venue_symbol[: -len(quote_coin(instrument))]


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset={offset}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    """The offset an ``encode_cursor`` token holds; ParamsError for anything else."""
    try:
        name, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition("=")
        if name != "offset" or not value.isdigit():
            raise ValueError(cursor)
        return int(value)
    except ValueError:
        raise ParamsError("cursor invalid") from None


class Sim(VenueSim):
    venue = "bybit"
    limit_status = 403
    #: Seconds without a client ping before the connection is closed: three of the 20 s
    #: ping intervals Bybit asks for (tests shorten it to check that clients ping).
    idle_timeout_s = 60.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pings = 0
        self._cross_sequence = itertools.count(1)
        self._fixed: dict[tuple, tuple[dict[str, str], dict[str, str], str]] = {}

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
        routes = {
            HISTORY_PATH: self._history,
            TICKERS_PATH: self._tickers,
            PREMIUM_KLINE_PATH: self._premium_kline,
            INSTRUMENTS_PATH: self._instruments,
        }
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

    @staticmethod
    def _category(query: dict[str, str]) -> str:
        category = query.get("category")
        if category not in CATEGORIES:
            raise ParamsError("category invalid")
        return category

    def _listed(self, category: str) -> list[Instrument]:
        """The category's perpetuals listed by now (delisted ones included), by symbol."""
        found = [i for i in self.feed.listing(self.venue) if category_of(i) == category]
        return sorted(found, key=lambda i: i.venue_symbol)

    def _symbol(self, symbol: str | None, category: str) -> Instrument | None:
        found = self.feed.instrument(self.venue, symbol)
        return found if found is not None and category_of(found) == category else None

    def _instrument(self, query: dict[str, str]) -> Instrument:
        """The perpetual ``symbol`` names in ``category``, or retCode 10001."""
        category = self._category(query)
        found = self._symbol(query.get("symbol"), category)
        if found is None:
            raise ParamsError("symbol invalid")
        return found

    @staticmethod
    def _int(query: dict[str, str], name: str) -> int | None:
        try:
            return int(query[name]) if name in query else None
        except ValueError:
            raise ParamsError(f"{name} invalid") from None

    def _history(self, query: dict[str, str], now: dt.datetime) -> dict:
        inst = self._instrument(query)
        limit = self._int(query, "limit")
        limit = MAX_LIMIT if limit is None else limit
        if limit < 1:
            raise ParamsError("limit invalid")
        limit = min(limit, MAX_LIMIT)  # the venue clamps larger pages
        start_ms, end_ms = self._int(query, "startTime"), self._int(query, "endTime")
        if start_ms is not None and end_ms is None:
            raise ParamsError("endTime is required with startTime")
        lo = max(start_ms or 0, ms(EPOCH))
        hi = min(end_ms if end_ms is not None else ms(now), ms(now))
        rows = []
        if lo <= hi:  # inclusive bounds; the newest `limit` rows win
            frame = self.feed.settlements(self.venue, inst.symbol, UNIX + lo * MS, UNIX + (hi + 1) * MS, inst.contract)
            rows = frame.tail(limit).reverse().iter_rows(named=True)
        return {
            "category": category_of(inst),
            "list": [
                {
                    "symbol": inst.venue_symbol,
                    "fundingRate": decimal_text(row["rate"]),
                    "fundingRateTimestamp": str(ms(row["ts"])),
                }
                for row in rows
            ],
        }

    def _premium_kline(self, query: dict[str, str], now: dt.datetime) -> dict:
        """Premium-index candles, newest first (see the module docstring)."""
        inst = self._instrument({"category": LINEAR, **query})
        minutes = KLINE_MINUTES.get(query.get("interval", ""))
        if minutes is None:
            raise ParamsError("interval invalid")
        limit = self._int(query, "limit")
        limit = KLINE_DEFAULT_LIMIT if limit is None else limit
        if not 1 <= limit <= KLINE_MAX_LIMIT:
            raise ParamsError("limit invalid")
        start_ms, end_ms = self._int(query, "start"), self._int(query, "end")
        page = candles(self.feed, inst, minutes, start_ms, end_ms, limit, newest=True).reversed()
        return {"symbol": inst.venue_symbol, "category": category_of(inst), "list": orjson.Fragment(kline_rows(page))}

    def _tickers(self, query: dict[str, str], now: dt.datetime) -> dict:
        category = self._category(query)
        if "symbol" in query:
            tickers = [self._ticker(self._instrument(query), now)]
        else:
            tickers = [self._ticker(i, now) for i in self._listed(category) if self.feed.trading(i)]
            if category == LINEAR:
                tickers.append(self._dated_future(now))
        return {"category": category, "list": tickers}

    def _ticker(
        self, inst: Instrument, now: dt.datetime, quote: tuple[float, dt.datetime, float] | None = None
    ) -> dict[str, str]:
        """A perpetual's ticker (REST row and WS data alike): the open window's funding (``quote``,
        the model's at ``now`` unless given), fixed prices and the universe's open interest and
        volume in the category's units."""
        rate, funding_time, hours = quote or self.feed.predicted(*inst.key, at=now)
        head, tail, cap = self._ticker_fixed(inst)
        return {
            **head,
            "fundingRate": decimal_text(rate),
            "nextFundingTime": str(ms(funding_time)),
            **tail,
            "fundingIntervalHour": str(int(hours)),
            "fundingCap": cap,
        }

    def _ticker_fixed(self, inst: Instrument) -> tuple[dict[str, str], dict[str, str], str]:
        """The fields of a ticker that never move (prices, open interest, volume, cap), by
        instrument: (those before ``fundingRate``, those between it and the interval, the cap)."""
        fixed = self._fixed.get(inst.key)
        if fixed is not None:
            return fixed
        price = quote_price(inst)
        decimals = decimals_for(price, 5)
        text = f"{price:.{decimals}f}"
        oi_usd = float(inst.open_interest_usd or 0.0)
        volume_usd = float(inst.volume_usd or 0.0)
        if inst.contract == INVERSE:  # contracts of 1 USD; values in coin
            oi, oi_value = f"{oi_usd:.0f}", f"{oi_usd / price:.8f}"
            volume, turnover = f"{volume_usd:.0f}", f"{volume_usd / price:.8f}"
        else:
            oi, oi_value = f"{oi_usd / price:.3f}", f"{oi_usd:.2f}"
            volume, turnover = f"{volume_usd / price:.3f}", f"{volume_usd:.4f}"
        cap = inst.rate_cap if inst.rate_cap is not None else DEFAULT_CAP
        head = {
            "symbol": inst.venue_symbol,
            "lastPrice": text,
            "indexPrice": f"{index_price(inst.symbol) * inst.multiplier:.{decimals}f}",
            "markPrice": text,
            "prevPrice24h": text,
            "price24hPcnt": "0",
            "highPrice24h": text,
            "lowPrice24h": text,
            "prevPrice1h": text,
            "openInterest": oi,
            "openInterestValue": oi_value,
            "turnover24h": turnover,
            "volume24h": volume,
        }
        tail = {"predictedDeliveryPrice": "", "basisRate": "", "deliveryFeeRate": "", "deliveryTime": "0"}
        fixed = self._fixed[inst.key] = (head, tail, decimal_text(cap))
        return fixed

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

    def _instruments(self, query: dict[str, str], now: dt.datetime) -> dict:
        """instruments-info of a category, one cursor page (see the module docstring)."""
        category = self._category(query)
        limit = self._int(query, "limit")
        limit = INSTRUMENTS_DEFAULT_LIMIT if limit is None else limit
        if not 1 <= limit <= INSTRUMENTS_MAX_LIMIT:
            raise ParamsError("limit invalid")
        offset = decode_cursor(query["cursor"]) if query.get("cursor") else 0
        status = query.get("status", TRADING)
        base = query.get("baseCoin")
        if base is not None:  # the venue answers every category of the coin
            listed = [i for c in CATEGORIES for i in self._listed(c) if base_coin(i) == base]
        else:
            listed = self._listed(category)
        if "symbol" in query:
            listed = [i for i in listed if i.venue_symbol == query["symbol"]]
        rows = [self._instrument_row(i, now) for i in listed if self._status(i) == status]
        if category == LINEAR and status == TRADING and base in (None, "BTC") and "symbol" not in query:
            rows.append(self._dated_future_row(now))
        page = rows[offset : offset + limit]
        more = offset + limit < len(rows)
        return {
            "category": category,
            "list": page,
            "nextPageCursor": encode_cursor(offset + limit) if more else "",
        }

    def _status(self, inst: Instrument) -> str:
        return TRADING if self.feed.trading(inst) else CLOSED

    def _instrument_row(self, inst: Instrument, now: dt.datetime) -> dict:
        trading = self.feed.trading(inst)
        hours = self.feed.interval_hours(inst) if trading else inst.interval_hours or 8.0
        cap = inst.rate_cap if inst.rate_cap is not None else DEFAULT_CAP
        floor = inst.rate_floor if inst.rate_floor is not None else -cap
        decimals = decimals_for(quote_price(inst), 5)
        tick = f"{10.0**-decimals:.{decimals}f}"
        quote = quote_coin(inst)
        return {
            "symbol": inst.venue_symbol,
            "contractType": PERPETUAL_TYPES[category_of(inst)],
            "status": self._status(inst),
            "baseCoin": base_coin(inst),
            "quoteCoin": quote,
            "launchTime": str(ms(inst.listed_at)) if inst.listed_at else "0",
            "deliveryTime": "0" if trading else str(ms(inst.delisted_at)),
            "deliveryFeeRate": "",
            "priceScale": str(decimals),
            "leverageFilter": {"minLeverage": "1", "maxLeverage": "25.00", "leverageStep": "0.01"},
            "priceFilter": {"minPrice": tick, "maxPrice": "1999999.00", "tickSize": tick},
            "lotSizeFilter": {
                "maxOrderQty": "1000000",
                "minOrderQty": "1",
                "qtyStep": "1",
                "postOnlyMaxOrderQty": "1000000",
                "maxMktOrderQty": "100000",
                "minNotionalValue": "5",
            },
            "unifiedMarginTrade": True,
            "fundingInterval": int(hours * 60),
            "settleCoin": inst.settle or quote,
            "copyTrading": "none",
            "upperFundingRate": decimal_text(cap),
            "lowerFundingRate": decimal_text(floor),
            "isPreListing": False,
            "preListingInfo": None,
            "riskParameters": {"priceLimitRatioX": "0.05", "priceLimitRatioY": "0.1"},
            "symbolType": "",
        }

    @staticmethod
    def _dated_future_row(now: dt.datetime) -> dict:
        """The quarterly BTC future of :meth:`_dated_future` as instruments-info lists it."""
        expiry = quarterly_expiry(now)
        return {
            "symbol": f"BTC-{expiry:%d%b%y}".upper(),
            "contractType": "LinearFutures",
            "status": TRADING,
            "baseCoin": "BTC",
            "quoteCoin": "USDC",
            "launchTime": str(ms(expiry - dt.timedelta(days=91))),
            "deliveryTime": str(ms(expiry)),
            "deliveryFeeRate": "0.0005",
            "priceScale": "2",
            "fundingInterval": 0,
            "settleCoin": "USDC",
            "upperFundingRate": "",
            "lowerFundingRate": "",
        }

    # --- WebSocket ----------------------------------------------------------------------

    async def ws(self, session: WsSession) -> None:
        category = WS_PATHS.get(session.path)
        if category is None:
            await session.connection.close(1008, f"no stream at {session.path}")
            return
        # A session stalled by fault injection never returns from send(); end it when its
        # client goes away, so that server shutdown does not wait for it.
        serving = asyncio.ensure_future(self._serve(session, category))
        closed = asyncio.ensure_future(session.connection.wait_closed())
        try:
            await asyncio.wait({serving, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            serving.cancel()
            closed.cancel()
        if serving.done() and not serving.cancelled():
            serving.result()  # re-raise what ended the session (a dropped connection: ConnectionError)

    async def _serve(self, session: WsSession, category: str) -> None:
        """Commands, pushes and the idle cut-off of one connection."""
        subscribed: dict[str, Instrument] = {}  # venue symbol -> instrument
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
                    next_push = self.next_push(next_push, now)
                    continue
                text = await session.recv(min(next_push, last_ping + self.idle_timeout_s) - now)
                if text is not None and await self._command(session, text, conn_id, category, subscribed, pushed):
                    last_ping = loop.time()
        except ConnectionClosed:
            return

    async def _command(
        self, session: WsSession, text: str, conn_id: str, category: str, subscribed: dict, pushed: dict
    ) -> bool:
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
        found = {str(a): self._symbol(str(a).removeprefix("tickers."), category) for a in args}
        bad = [
            a
            for a, inst in found.items()
            if not a.startswith("tickers.") or inst is None or not self.feed.trading(inst)
        ]
        if bad or not args:
            await session.send({**reply, "success": False, "ret_msg": f"Invalid symbol :[{','.join(bad)}]"})
            return False
        fresh = {i.venue_symbol: i for i in found.values() if i.venue_symbol not in subscribed}
        subscribed.update(fresh)
        await session.send(reply)
        await self._push(session, fresh, pushed)  # a new subscription starts with a snapshot
        return False

    async def _push(self, session: WsSession, symbols: dict[str, Instrument], pushed: dict[str, dict]) -> None:
        """One ``tickers.<SYMBOL>`` message per symbol: a snapshot the first time, then a
        delta with only the changed fields (funding ones absent when unchanged)."""
        await session.send_many(await asyncio.to_thread(self._ticker_messages, dict(symbols), pushed))

    def _ticker_messages(self, symbols: dict[str, Instrument], pushed: dict[str, dict]) -> list[tuple[dict, int]]:
        """The ``tickers.<SYMBOL>`` messages of one instant (run off the event loop, which stays
        free to read the client)."""
        now = self._now()
        messages = []
        for (symbol, inst), quote in zip(symbols.items(), self.feed.predicted_many(list(symbols.values()), now)):
            fields = self._ticker(inst, now, quote)
            previous = pushed.get(symbol)
            if previous is None:
                kind, data = "snapshot", fields
            else:  # the other fields are the instrument's fixed ones (_ticker_fixed): never in a delta
                changed = {k: fields[k] for k in TICKER_MOVING if previous.get(k) != fields[k]}
                kind, data = "delta", {"symbol": symbol, **changed}
            pushed[symbol] = fields
            message = {
                "topic": f"tickers.{symbol}",
                "type": kind,
                "data": data,
                "cs": next(self._cross_sequence),
                "ts": ms(now),
            }
            messages.append((message, 1))
        return messages
