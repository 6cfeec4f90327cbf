"""Binance USD-M (``/fapi``) and COIN-M (``/dapi``) futures in the simulator.

Every perpetual of the universe (:mod:`funding_assets.sim.universe`) listed by the
simulator's now: USD-M ``BTCUSDT``, ``1000PEPEUSDT``, ``BTCUSDC`` under ``/fapi/v1``, COIN-M
``BTCUSD_PERP`` under ``/dapi/v1`` (the simulator serves both families on one base; the
real venue has them on ``fapi``/``dapi.binance.com``). BTC and ETH also have a quarterly
delivery contract in each family (``BTCUSDT_250328``, ``BTCUSD_250328``), which carries no
funding. Rates are 8-dp decimal strings per native interval, times ms numbers. Paths (each
under ``/fapi/v1`` and ``/dapi/v1``):

- ``GET fundingRate``: ``symbol`` (USD-M: omitted = every symbol, mixed; COIN-M: required),
  ``startTime`` / ``endTime`` inclusive on the stamped ``fundingTime`` (ms jitter of the
  model's ``ts``), ``limit`` default 100, larger values capped at 1000; ascending. Both
  bounds or only ``startTime``: the first ``limit`` rows from the start. Neither: the latest
  ``limit`` rows (200 when ``limit`` is not sent, as documented). Only ``endTime``: the
  latest ``limit`` rows up to it (UNVERIFIED on the real venue). Rows exist only while the
  symbol is listed; a delivery contract gives ``[]``.
- ``GET premiumIndex``: USD-M one object with ``symbol``, else an array of every trading
  perpetual and delivery contract; COIN-M always an array, with ``pair``, filtered by
  ``symbol`` or ``pair``. ``lastFundingRate`` is the open window's prediction, ``time`` the
  quote time in ms; delivery contracts and delisted perpetuals carry ``lastFundingRate`` and
  ``interestRate`` ``""`` and ``nextFundingTime`` 0.
- ``GET fundingInfo``: trading symbols whose open window is not 8 h or whose cap/floor is
  not the venue default (absent = 8 h and +-0.375 %); ``symbol`` is ignored, as on the venue.
- ``GET premiumIndexKlines``: ``symbol`` and ``interval`` (``1m`` .. ``3d``; ``1w`` and ``1M``
  are not simulated) required, ``startTime`` / ``endTime`` inclusive on ``openTime``,
  ``limit`` default 500, larger values capped at 1500; ascending. With ``startTime``: the
  first ``limit`` candles from it; otherwise the latest ``limit`` up to ``endTime`` or now.
  Candles ``[openTime, open, high, low, close, "0", closeTime, "0", samples x 12, "0", "0",
  "0"]`` (OHLC 8-dp strings) aggregate the model's 1-minute samples; weight 1/2/5/10.
- ``GET exchangeInfo``: ``{timezone, serverTime, rateLimits, exchangeFilters, symbols}``
  (USD-M also ``futuresType``, ``assets``). A symbol row has ``symbol``, ``pair``,
  ``contractType`` (``PERPETUAL`` / ``CURRENT_QUARTER``), ``deliveryDate`` (4133404800000 for
  a perpetual that trades; its delisting for a delisted one), ``onboardDate``, ``status``
  (COIN-M ``contractStatus``): ``TRADING``, ``SETTLING`` for 90 days after a delisting, then
  ``CLOSE``; ``baseAsset`` (``1000PEPE``), ``quoteAsset``, ``marginAsset``, COIN-M
  ``contractSize`` (USD a contract: 100 for BTC, 10 else), precisions and filters.
- ``GET ticker/24hr``: USD-M one object with ``symbol``, else an array; COIN-M always an
  array. ``quoteVolume`` is the 24 h volume in USD (USD-M); COIN-M ``volume`` is contracts
  and ``baseVolume`` coins. Weight 1 with ``symbol``, 40 without.
- ``GET openInterest?symbol=`` (required): USD-M ``{openInterest (base units), symbol,
  time}``, COIN-M ``{symbol, pair, openInterest (contracts), contractType, time}``.

Errors: ``{"code": <negative int>, "msg": ...}``; unknown symbol -> 400 ``-1121``; missing
parameter -> ``-1102``; bad kline interval -> ``-1120``; limits -> 429 ``-1003`` with
``Retry-After``.

Streams (``ws://.../binance``): USD-M on the routed ``/market/stream?streams=a/b`` (combined
envelope ``{"stream", "data"}``) and ``/market/ws/<stream>[/<stream>]`` (raw events):
``<sym>@markPrice[@1s]`` and ``!markPrice@arr[@1s]`` every ``push_interval_s``. COIN-M on
``/stream`` and ``/ws`` (dstream's paths): ``<sym>@markPrice[@1s]`` and
``<pair>@markPrice[@1s]``; a USD-M stream there is never pushed, as on fstream's legacy
unrouted paths since 2026-04-23. ``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS``
requests are answered ``{"result", "id"}``. The server pings every ``ping_interval_s`` and
drops a connection whose pong is ``pong_timeout_s`` late.

Prices (``markPrice``, ``p``, ``i``, ...) are fixed placeholders (:mod:`.market`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
from collections.abc import Sequence
from urllib.parse import parse_qsl

import orjson
from websockets.exceptions import ConnectionClosed

from ...clients.binance import (
    KLINE_LIMIT,
    PREMIUM_INDEX_WEIGHT_ALL,
    PREMIUM_INDEX_WEIGHT_ONE,
    kline_weight,
)
from ...instruments import Instrument
from ...venues import INVERSE, SPECS, USDC
from ...venues.binance import HISTORY, WEIGHT
from ..model import INTEREST_8H, MINUTE_DECIMALS, MINUTE_MS
from ..server import Request, Response, VenueSim, WsSession, json_response
from . import wire
from .klines import Candles, candles
from .market import decimals_for, index_price, quote_price, remembered_text

VENUE = "binance"
USD_M, COIN_M = "/fapi/v1", "/dapi/v1"
FUNDING_RATE = "/fundingRate"
PREMIUM_INDEX = "/premiumIndex"
FUNDING_INFO = "/fundingInfo"
PREMIUM_KLINES = "/premiumIndexKlines"
EXCHANGE_INFO = "/exchangeInfo"
TICKER_24H = "/ticker/24hr"
OPEN_INTEREST = "/openInterest"
EXCHANGE_INFO_WEIGHT = 1
TICKER_WEIGHT_ONE, TICKER_WEIGHT_ALL = 1, 40
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
#: deliveryDate of a perpetual that trades (2100-12-25 08:00 UTC).
PERPETUAL_DELIVERY_MS = 4_133_404_800_000
#: A delisted perpetual shows SETTLING this long, then CLOSE.
SETTLING_FOR = dt.timedelta(days=90)
#: Coins with a quarterly delivery contract in each family (no funding).
DELIVERY_COINS = ("BTC", "ETH")
DEFAULT_CAP = SPECS[VENUE].rate_cap
DEFAULT_HOURS = SPECS[VENUE].default_interval_hours
RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
    {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
]

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


@remembered_text
def rate_text(rate: float) -> str:
    return f"{rate:.8f}"


def kline_rows(page: Candles, minutes: int) -> bytes:
    """JSON text of ``premiumIndexKlines`` candles: ``[openTime, open, high, low, close, "0",
    closeTime, "0", samples x 12, "0", "0", "0"]`` (OHLC as :func:`rate_text` writes them)."""
    rows = page.open_ms.size
    zero = wire.literal(',"0",', rows)
    ohlc = wire.quoted_decimals(page[1:5], MINUTE_DECIMALS["binance"], 8, rate_text)
    return wire.array_of_rows(
        [
            wire.integers(page.open_ms),
            *(part for column in ohlc for part in (wire.literal(",", rows), column)),
            zero,
            wire.integers(page.open_ms + minutes * MINUTE_MS - 1),
            zero,
            wire.integers(page.samples * SAMPLES_PER_MINUTE),
            wire.literal(',"0","0","0"', rows),
        ],
        rows,
    )


def price_text(price: float) -> str:
    return f"{price:.8f}"


def int_param(query: dict[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    if not value.isdigit() or len(value) > 20:
        raise BadParam(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.")
    return int(value)


def required(query: dict[str, str], name: str) -> str:
    value = query.get(name)
    if not value:
        raise BadParam(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    return value


def quarterly_delivery(now: dt.datetime) -> dt.datetime:
    """The current quarter's delivery: last Friday of Mar/Jun/Sep/Dec, 08:00 UTC."""
    year, month = now.year, (now.month - 1) // 3 * 3 + 3
    while True:
        first_next = dt.datetime(year + month // 12, month % 12 + 1, 1, 8)
        last_day = first_next - dt.timedelta(days=1)
        delivery = last_day - dt.timedelta(days=(last_day.weekday() - 4) % 7)
        if delivery >= now:
            return delivery
        year, month = (year + 1, 3) if month == 12 else (year, month + 3)


def contract_size(coin: str) -> int:
    """USD per COIN-M contract."""
    return 100 if coin == "BTC" else 10


def pair_of(instrument: Instrument) -> str:
    """``BTCUSDT`` (USD-M: the symbol itself) or ``BTCUSD`` (COIN-M)."""
    return instrument.venue_symbol.removesuffix("_PERP")


def base_asset(instrument: Instrument) -> str:
    """``1000PEPE`` of ``1000PEPEUSDT``; the coin for COIN-M."""
    if instrument.contract == INVERSE:
        return instrument.symbol
    return instrument.venue_symbol[: -len(quote_asset(instrument))]


def quote_asset(instrument: Instrument) -> str:
    return "USD" if instrument.contract == INVERSE else (instrument.settle or "USDT")


class Delivery:
    """A quarterly delivery contract: listed, quoted, never funded."""

    def __init__(self, perpetual: Instrument, delivery: dt.datetime) -> None:
        self.perpetual = perpetual
        self.delivery = delivery
        self.symbol = f"{pair_of(perpetual)}_{delivery:%y%m%d}"


class Sim(VenueSim):
    venue = VENUE
    limit_status = 429
    ping_interval_s = 180.0
    pong_timeout_s = 600.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pongs = 0
        self._price_texts: dict[str, tuple[str, str]] = {}

    # --- REST -------------------------------------------------------------------------

    def bucket(self, request: Request) -> str:
        """fundingRate / fundingInfo draw on their own bucket, the rest on REQUEST_WEIGHT."""
        _, path = self._route(request.path)
        return HISTORY if path in (FUNDING_RATE, FUNDING_INFO) else WEIGHT

    def cost(self, request: Request) -> float:
        """fundingRate / fundingInfo: 1 of their bucket; the others their weight."""
        _, path = self._route(request.path)
        one = "symbol" in request.query
        if path == PREMIUM_INDEX:
            return PREMIUM_INDEX_WEIGHT_ONE if one else PREMIUM_INDEX_WEIGHT_ALL
        if path == TICKER_24H:
            return TICKER_WEIGHT_ONE if one else TICKER_WEIGHT_ALL
        if path == EXCHANGE_INFO:
            return EXCHANGE_INFO_WEIGHT
        if path == PREMIUM_KLINES:
            try:
                limit = int_param(request.query, "limit") or KLINE_DEFAULT
            except BadParam:
                limit = KLINE_DEFAULT
            return kline_weight(min(limit, KLINE_LIMIT))
        return 1.0

    def error(self, status: int, message: str) -> Response:
        code = ERROR_CODES.get(status, -1000)
        return binance_error(status, code, ERROR_MESSAGES.get(status, message))

    @staticmethod
    def _route(path: str) -> tuple[bool, str]:
        """(is COIN-M, path after the family prefix); ``""`` for a path of neither family."""
        for prefix, coin_m in ((USD_M, False), (COIN_M, True)):
            if path.startswith(prefix + "/"):
                return coin_m, path[len(prefix) :]
        return False, ""

    def rest(self, request: Request) -> Response:
        coin_m, path = self._route(request.path)
        routes = {
            FUNDING_RATE: self.funding_rate,
            PREMIUM_INDEX: self.premium_index,
            FUNDING_INFO: self.funding_info,
            PREMIUM_KLINES: self.premium_klines,
            EXCHANGE_INFO: self.exchange_info,
            TICKER_24H: self.ticker_24h,
            OPEN_INTEREST: self.open_interest,
        }
        handler = routes.get(path) if request.method == "GET" else None
        if handler is None:
            return super().rest(request)
        try:
            return json_response(handler(request.query, coin_m))
        except BadParam as exc:
            return binance_error(400, exc.code, exc.msg)

    # --- instruments of a family ------------------------------------------------------

    def _listed(self, coin_m: bool) -> list[Instrument]:
        """The family's perpetuals listed by now (delisted ones included)."""
        return [i for i in self.feed.listing(VENUE) if (i.contract == INVERSE) == coin_m]

    def _trading(self, coin_m: bool) -> list[Instrument]:
        now = self.feed.clock()
        return [i for i in self._listed(coin_m) if self.feed.trading(i, now)]

    def _deliveries(self, coin_m: bool, now: dt.datetime) -> list[Delivery]:
        when = quarterly_delivery(now)
        return [Delivery(i, when) for i in self._trading(coin_m) if i.symbol in DELIVERY_COINS and i.contract != USDC]

    def _perpetual(self, symbol: str | None, coin_m: bool) -> Instrument | None:
        found = self.feed.instrument(VENUE, symbol)
        return found if found is not None and (found.contract == INVERSE) == coin_m else None

    def _one(self, symbol: str, coin_m: bool, now: dt.datetime) -> Instrument | Delivery:
        """The family's perpetual or delivery contract named ``symbol`` (exact), or -1121."""
        found = self._perpetual(symbol, coin_m) or next(
            (d for d in self._deliveries(coin_m, now) if d.symbol == symbol), None
        )
        if found is None:
            raise BadParam(-1121, "Invalid symbol.")
        return found

    def _status(self, instrument: Instrument, now: dt.datetime) -> str:
        if self.feed.trading(instrument):
            return "TRADING"
        return "SETTLING" if now - instrument.delisted_at < SETTLING_FOR else "CLOSE"

    # --- funding history --------------------------------------------------------------

    def funding_rate(self, query: dict[str, str], coin_m: bool) -> list[dict]:
        if coin_m:
            required(query, "symbol")
        start, end = int_param(query, "startTime"), int_param(query, "endTime")
        limit = int_param(query, "limit")
        if limit is not None and limit < 1:
            raise BadParam(-1130, "Data sent for parameter 'limit' is not valid.")
        if start is not None and end is not None and start > end:
            raise BadParam(-1023, "Start time is greater than end time.")
        count = min(limit or (LATEST_DEFAULT if start is None and end is None else DEFAULT_LIMIT), MAX_LIMIT)
        now = self.feed.clock()
        symbol = query.get("symbol")
        if symbol is None:
            perpetuals = self._listed(coin_m)
        else:
            found = self._one(symbol, coin_m, now)
            perpetuals = [found] if isinstance(found, Instrument) else []  # delivery: no funding
        now_ms = to_ms(now)
        hi = from_ms(min(end, now_ms)) if end is not None else now
        lo = from_ms(min(start, now_ms)) if start is not None else hi - count * LATEST_SPAN_PER_ROW
        rows = sorted(
            (row for inst in perpetuals for row in self._history_rows(inst, lo, hi)),
            key=lambda row: (row["fundingTime"], row["symbol"]),
        )
        return rows[:count] if start is not None else rows[-count:]

    def _history_rows(self, inst: Instrument, lo: dt.datetime, hi: dt.datetime) -> list[dict]:
        """Rows of ``inst`` with the stamped fundingTime in ``[lo, hi]``."""
        frame = self.feed.settlements(VENUE, inst.symbol, lo - STAMP_SLACK, hi + STAMP_SLACK, inst.contract)
        lo_ms, hi_ms = to_ms(lo), to_ms(hi)
        mark = price_text(quote_price(inst))
        rows = []
        for ts, funding_time, rate in frame.select("ts", "funding_time", "rate").iter_rows():
            stamp = to_ms(ts)
            if lo_ms <= stamp <= hi_ms:
                rows.append(
                    {
                        "symbol": inst.venue_symbol,
                        "fundingTime": stamp,
                        "fundingRate": rate_text(rate),
                        "markPrice": mark if funding_time >= MARKPRICE_FROM else "",
                        "rateType": "Regular",
                    }
                )
        return rows

    # --- live -------------------------------------------------------------------------

    def premium_index(self, query: dict[str, str], coin_m: bool) -> dict | list[dict]:
        now = self.feed.clock()
        symbol = query.get("symbol")
        if symbol is not None:
            contracts = [self._one(symbol, coin_m, now)]
        else:
            contracts = [*self._trading(coin_m), *self._deliveries(coin_m, now)]
            pair = query.get("pair")
            if coin_m and pair is not None:
                contracts = [c for c in contracts if pair_of(c if isinstance(c, Instrument) else c.perpetual) == pair]
        rows = [self._premium_row(c, now, coin_m) for c in contracts]
        return rows[0] if symbol is not None and not coin_m else rows

    def _premium_row(self, contract: Instrument | Delivery, now: dt.datetime, coin_m: bool) -> dict:
        """A perpetual's open-window prediction, or a funding-less row (delivery, delisted)."""
        perpetual = contract if isinstance(contract, Instrument) else contract.perpetual
        funded = isinstance(contract, Instrument) and self.feed.trading(contract)
        price = price_text(quote_price(perpetual))
        row = {"symbol": contract.venue_symbol if isinstance(contract, Instrument) else contract.symbol}
        if coin_m:
            row["pair"] = pair_of(perpetual)
        row.update(markPrice=price, indexPrice=price, estimatedSettlePrice=price)
        if funded:
            rate, funding_time, hours = self.feed.predicted(*contract.key, at=now)
            row.update(
                lastFundingRate=rate_text(rate),
                interestRate=rate_text(INTEREST_8H * hours / 8),
                nextFundingTime=to_ms(funding_time),
            )
        else:
            row.update(lastFundingRate="", interestRate="", nextFundingTime=0)
        row["time"] = to_ms(now)
        return row

    def funding_info(self, query: dict[str, str], coin_m: bool) -> list[dict]:
        """Trading symbols with an adjusted interval or an adjusted cap/floor."""
        rows = []
        for inst in self._trading(coin_m):
            cap = inst.rate_cap if inst.rate_cap is not None else DEFAULT_CAP
            floor = inst.rate_floor if inst.rate_floor is not None else -cap
            hours = self.feed.interval_hours(inst)
            if hours != DEFAULT_HOURS or cap != DEFAULT_CAP or floor != -DEFAULT_CAP:
                rows.append(
                    {
                        "symbol": inst.venue_symbol,
                        "adjustedFundingRateCap": rate_text(cap),
                        "adjustedFundingRateFloor": rate_text(floor),
                        "fundingIntervalHours": int(hours),
                        "disclaimer": False,
                        "updateTime": to_ms(inst.listed_at) if inst.listed_at else None,
                    }
                )
        return rows

    def premium_klines(self, query: dict[str, str], coin_m: bool) -> orjson.Fragment:
        """Premium-index candles of one perpetual (see the module docstring)."""
        symbol, interval = required(query, "symbol"), required(query, "interval")
        inst = self._perpetual(symbol, coin_m)
        if inst is None:
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
        page = candles(self.feed, inst, minutes, start, end, count, newest=start is None)
        return orjson.Fragment(kline_rows(page, minutes))

    # --- instruments ------------------------------------------------------------------

    def exchange_info(self, query: dict[str, str], coin_m: bool) -> dict:
        now = self.feed.clock()
        symbols = [self._symbol_row(i, now, coin_m) for i in self._listed(coin_m)]
        symbols += [self._symbol_row(d.perpetual, now, coin_m, delivery=d) for d in self._deliveries(coin_m, now)]
        info: dict = {"timezone": "UTC", "serverTime": to_ms(now)}
        if not coin_m:
            info["futuresType"] = "U_MARGINED"
        info.update(rateLimits=RATE_LIMITS, exchangeFilters=[])
        if not coin_m:
            info["assets"] = [
                {"asset": a, "marginAvailable": True, "autoAssetExchange": "-10000"} for a in ("USDT", "USDC", "BTC")
            ]
        info["symbols"] = symbols
        return info

    def _symbol_row(self, inst: Instrument, now: dt.datetime, coin_m: bool, delivery: Delivery | None = None) -> dict:
        price = quote_price(inst)
        decimals = decimals_for(price, 5)
        tick = f"{10.0**-decimals:.{decimals}f}"
        status = "TRADING" if delivery is not None else self._status(inst, now)
        if delivery is not None:
            delivery_ms = to_ms(delivery.delivery)
        elif status == "TRADING":
            delivery_ms = PERPETUAL_DELIVERY_MS
        else:
            delivery_ms = to_ms(inst.delisted_at)
        row: dict = {
            "symbol": delivery.symbol if delivery else inst.venue_symbol,
            "pair": pair_of(inst),
            "contractType": "CURRENT_QUARTER" if delivery else "PERPETUAL",
            "deliveryDate": delivery_ms,
            "onboardDate": to_ms(inst.listed_at) if inst.listed_at else 0,
            "contractStatus" if coin_m else "status": status,
        }
        if coin_m:
            row["contractSize"] = contract_size(inst.symbol)
        row.update(
            {
                "maintMarginPercent": "2.5000",
                "requiredMarginPercent": "5.0000",
                "baseAsset": base_asset(inst),
                "quoteAsset": quote_asset(inst),
                "marginAsset": inst.symbol if coin_m else quote_asset(inst),
                "pricePrecision": decimals,
                "quantityPrecision": 0 if coin_m else max(0, min(3, math.floor(math.log10(price)) - 1)),
                "baseAssetPrecision": 8,
                "quotePrecision": 8,
                "underlyingType": "COIN",
                "underlyingSubType": [],
                "triggerProtect": "0.0500",
                "liquidationFee": "0.012500",
                "marketTakeBound": "0.05",
                "maxMoveOrderLimit": 10000,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000", "tickSize": tick},
                    {"filterType": "LOT_SIZE", "minQty": "1", "maxQty": "1000000", "stepSize": "1"},
                    {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                    {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500"},
                ],
                "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"],
                "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
            }
        )
        if coin_m:
            row["equalQtyPrecision"] = 4
        else:
            row["settlePlan"] = 0
        return row

    def ticker_24h(self, query: dict[str, str], coin_m: bool) -> dict | list[dict]:
        now = self.feed.clock()
        symbol = query.get("symbol")
        if symbol is not None:
            found = self._perpetual(symbol, coin_m)
            if found is None:
                raise BadParam(-1121, "Invalid symbol.")
            rows = [self._ticker_row(found, now, coin_m)]
        else:
            rows = [self._ticker_row(i, now, coin_m) for i in self._trading(coin_m)]
        return rows[0] if symbol is not None and not coin_m else rows

    def _ticker_row(self, inst: Instrument, now: dt.datetime, coin_m: bool) -> dict:
        """24 h statistics at a constant price (the model has none): the volume is the universe's."""
        price = quote_price(inst)
        volume_usd = float(inst.volume_usd or 0.0) if self.feed.trading(inst) else 0.0
        text = price_text(price)
        row: dict = {"symbol": inst.venue_symbol}
        if coin_m:
            row["pair"] = pair_of(inst)
        row.update(priceChange="0.00000000", priceChangePercent="0.000", weightedAvgPrice=text, lastPrice=text)
        row.update(lastQty="1", openPrice=text, highPrice=text, lowPrice=text)
        if coin_m:
            row["volume"] = str(round(volume_usd / contract_size(inst.symbol)))
            row["baseVolume"] = f"{volume_usd / price:.8f}"
        else:
            row["volume"] = f"{volume_usd / price:.3f}"
            row["quoteVolume"] = f"{volume_usd:.2f}"
        trades = round(volume_usd / 5_000)
        row.update(
            openTime=to_ms(now - dt.timedelta(days=1)),
            closeTime=to_ms(now),
            firstId=1,
            lastId=trades,
            count=trades,
        )
        return row

    def open_interest(self, query: dict[str, str], coin_m: bool) -> dict:
        inst = self._perpetual(required(query, "symbol"), coin_m)
        if inst is None:
            raise BadParam(-1121, "Invalid symbol.")
        usd = float(inst.open_interest_usd or 0.0) if self.feed.trading(inst) else 0.0
        now_ms = to_ms(self.feed.clock())
        if coin_m:
            contracts = str(round(usd / contract_size(inst.symbol)))
            return {
                "symbol": inst.venue_symbol,
                "pair": pair_of(inst),
                "openInterest": contracts,
                "contractType": "PERPETUAL",
                "time": now_ms,
            }
        return {"openInterest": f"{usd / quote_price(inst):.3f}", "symbol": inst.venue_symbol, "time": now_ms}

    # --- stream -----------------------------------------------------------------------

    async def ws(self, session: WsSession) -> None:
        path, _, query = session.path.partition("?")
        if path == "/market/stream":
            coin_m, combined, streams = False, True, dict(parse_qsl(query)).get("streams", "").split("/")
        elif path == "/market/ws" or path.startswith("/market/ws/"):
            coin_m, combined, streams = False, False, path.removeprefix("/market/ws").split("/")
        elif path == "/stream":  # dstream's paths serve COIN-M; fstream's legacy ones never push USD-M
            coin_m, combined, streams = True, True, dict(parse_qsl(query)).get("streams", "").split("/")
        elif path == "/ws" or path.startswith("/ws/"):
            coin_m, combined, streams = True, False, path.removeprefix("/ws").split("/")
        else:
            await session.connection.close(1008, "no stream at this path")
            return
        subscribed = {s for s in streams if s}
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._keepalive(session))
                tasks.create_task(self._push(session, subscribed, combined, coin_m))
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

    async def _push(self, session: WsSession, subscribed: set[str], combined: bool, coin_m: bool) -> None:
        """Every ``push_interval_s``, each subscribed stream's payload of one instant, in one
        write."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            messages = []
            # the model's work off the event loop, which stays free to read the client
            for stream, events in await asyncio.to_thread(self._stream_events, sorted(subscribed), coin_m):
                count = len(events) if isinstance(events, list) else 1
                messages.append(({"stream": stream, "data": events} if combined else events, count))
            await session.send_many(messages)
            due = self.next_push(due, loop.time())
            await asyncio.sleep(max(0.0, due - loop.time()))

    def _stream_events(self, streams: Sequence[str], coin_m: bool) -> list[tuple[str, dict | list[dict]]]:
        """``(stream, payload)`` now of the stream names this path serves, in order: an event
        for a symbol's stream, a list for ``!markPrice@arr`` and COIN-M pair streams."""
        trading = self._trading(coin_m)
        by_name = {i.venue_symbol.lower(): i for i in trading}
        by_pair: dict[str, list[Instrument]] = {}
        if coin_m:
            for i in trading:
                by_pair.setdefault(pair_of(i).lower(), []).append(i)
        served: list[tuple[str, list[Instrument], bool]] = []  # stream, instruments, a list payload
        for stream in streams:
            if stream in ("!markPrice@arr", "!markPrice@arr@1s"):
                if not coin_m:
                    served.append((stream, trading, True))
                continue
            name, _, kind = stream.partition("@")
            if kind not in ("markPrice", "markPrice@1s"):
                continue
            if name in by_name:
                served.append((stream, [by_name[name]], False))
            elif by_pair.get(name):
                served.append((stream, by_pair[name], True))
        quoted = list({i.key: i for _, insts, _ in served for i in insts}.values())
        events = dict(zip((i.key for i in quoted), self._mark_price_events(quoted, coin_m)))
        return [(s, [events[i.key] for i in insts] if many else events[insts[0].key]) for s, insts, many in served]

    def _mark_price_event(self, inst: Instrument, coin_m: bool) -> dict:
        return self._mark_price_events([inst], coin_m)[0]

    def _mark_price_events(self, insts: Sequence[Instrument], coin_m: bool) -> list[dict]:
        """``markPriceUpdate`` events of ``insts`` at one instant (the clock read once: each
        event's ``E`` and its rate are of that instant)."""
        now = self.feed.clock()
        now_ms = to_ms(now)
        out = []
        for inst, (rate, funding_time, _) in zip(insts, self.feed.predicted_many(insts, now)):
            price, index = self._prices(inst)
            event = {"e": "markPriceUpdate", "E": now_ms, "s": inst.venue_symbol, "p": price}
            if not coin_m:
                event["ap"] = price
            event.update(P=price, i=index, r=rate_text(rate))
            event["T"] = to_ms(funding_time)
            out.append(event)
        return out

    def _prices(self, inst: Instrument) -> tuple[str, str]:
        """(mark, index) price texts of an instrument: fixed placeholders (:mod:`.market`)."""
        found = self._price_texts.get(inst.venue_symbol)
        if found is None:
            found = (price_text(quote_price(inst)), price_text(index_price(inst.symbol) * inst.multiplier))
            self._price_texts[inst.venue_symbol] = found
        return found
