"""Hyperliquid in the simulator: ``POST /info`` reads and the ``/ws`` activeAssetCtx stream.

Semantics served (VENUES.md section 4):

- ``fundingHistory {coin, startTime, endTime?}``: rows stamped in ``[startTime, endTime]``
  (``endTime`` defaults to now), ascending, the first 500; ``fundingRate``/``premium`` as
  decimal strings, ``time`` as a ms number carrying the model's 10-1400 ms jitter.
  ``premium`` is the window's average premium (8 decimals) from which Hyperliquid's formula
  (:func:`funding_assets.premium.formula`) gives exactly ``fundingRate``.
- ``metaAndAssetCtxs``, ``meta`` and ``predictedFundings`` from the model's open windows;
  the universe holds a delisted, book-less coin between ours (``null`` premium, midPx and
  impactPxs) so clients must join ctxs by index and skip ``isDelisted``.
- Errors as the venue's HTTP layer gives them: a body that is not JSON -> 400, an unknown
  request type or a bad field -> 422 (plain-text reasons), a coin it does not list -> 500
  with body ``null``.
- Weight: 20 per info read, plus 1 per 20 ``fundingHistory`` rows returned; 1200 a minute.
- Stream: subscribe -> ``subscriptionResponse`` ack echoing the request, then the coin's ctx
  at once and every ``push_interval_s``; ``{"method":"ping"}`` -> ``{"channel":"pong"}``;
  the connection is closed when the client has sent nothing for ``idle_timeout_s`` (60 s).

The page size and weights are restated here rather than imported from the client: the
simulator stands for the venue, so a client that misreads them is caught.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from decimal import Decimal
from typing import Any

import polars as pl
from websockets.exceptions import ConnectionClosed

from ...clients.http import Budget
from ...venues import COINS
from ..server import Request, Response, VenueSim, WsSession, json_response

VENUE = "hyperliquid"
PAGE_ROWS = 500
INFO_WEIGHT = 20
ROWS_PER_EXTRA_WEIGHT = 20
HOUR = dt.timedelta(hours=1)
EPOCH = dt.datetime(1970, 1, 1)

#: Static per-coin market figures (prices are not modelled): szDecimals, maxLeverage,
#: marginTableId, oracle price, open interest, day volume in coins.
ASSETS: dict[str, tuple[int, int, int, float, float, float]] = {
    "BTC": (5, 40, 56, 64429.0, 32227.66018, 17577.61508),
    "ETH": (4, 25, 55, 3120.5, 1109512.2198, 158647.2869),
    "SOL": (2, 20, 54, 142.31, 5671239.42, 1735938.95),
}
#: A delisted coin kept in the universe with a book-less ctx.
DELISTED = {"szDecimals": 1, "name": "MATIC", "maxLeverage": 20, "marginTableId": 51, "isDelisted": True}
DELISTED_CTX = {
    "funding": "0.0",
    "openInterest": "0.0",
    "prevDayPx": "0.3812",
    "dayNtlVlm": "0.0",
    "premium": None,
    "oraclePx": "0.3809",
    "markPx": "0.3812",
    "midPx": None,
    "impactPxs": None,
    "dayBaseVlm": "0.0",
}
MARGIN_TABLES = [[50, {"description": "", "marginTiers": [{"lowerBound": "0.0", "maxLeverage": 50}]}]]
#: predictedFundings venue names, in the venue's order.
PREDICTED_VENUES = (("BinPerp", "binance"), ("HlPerp", VENUE), ("BybitPerp", "bybit"))
#: Perp prices carry at most 6 - szDecimals decimals.
MAX_PRICE_DECIMALS = 6


class BadRequest(Exception):
    """A request the venue's HTTP layer rejects: (status, plain-text reason)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class UnknownCoin(Exception):
    """The venue answers a coin it does not list with HTTP 500 and body ``null``."""


def decimal_str(value: float) -> str:
    """A float as the venue's plain decimal string (``1.25e-05`` -> ``"0.0000125"``), exact."""
    return format(Decimal(repr(float(value))), "f")


def to_ms(when: dt.datetime) -> int:
    return (when - EPOCH) // dt.timedelta(milliseconds=1)


def from_ms(ms: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=ms)


def parse_body(request: Request) -> dict:
    """The JSON request object, or BadRequest as the venue's HTTP layer words it."""
    try:
        body = json.loads(request.body or b"")
    except ValueError as exc:
        raise BadRequest(400, f"Failed to parse the request body as JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise BadRequest(422, "Failed to deserialize the JSON body into the target type: missing field `type`")
    return body


def ms_field(body: dict, name: str, default: int | None = None) -> int:
    """A ms timestamp field (a u64); absent or null takes ``default`` if the field is optional."""
    value = body.get(name)
    if value is None:
        value = default
    if value is None:
        raise BadRequest(422, f"Failed to deserialize the JSON body into the target type: missing field `{name}`")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(
            422, f"Failed to deserialize the JSON body into the target type: {name}: invalid type, expected u64"
        )
    return value


class Sim(VenueSim):
    """Hyperliquid's ``/info`` reads and ``/ws`` stream, served from the feed."""

    venue = VENUE
    budget = Budget(1200, 60.0)
    limit_status = 429
    #: Seconds a client may stay silent before the server closes its connection.
    idle_timeout_s = 60.0

    # --- REST ---------------------------------------------------------------------------

    def error(self, status: int, message: str) -> Response:
        return Response(status, message.encode(), {"Content-Type": "text/plain; charset=utf-8"})

    def cost(self, request: Request) -> float:
        try:
            body = parse_body(request)
            extra = len(self.history(body)) // ROWS_PER_EXTRA_WEIGHT if body["type"] == "fundingHistory" else 0
        except (BadRequest, UnknownCoin):
            extra = 0
        return INFO_WEIGHT + extra

    def rest(self, request: Request) -> Response:
        if request.path != "/info":
            return self.error(404, "Not Found")
        if request.method != "POST":
            return self.error(405, "Method Not Allowed")
        handlers = {
            "fundingHistory": self.history,
            "metaAndAssetCtxs": lambda body: [self.meta(), self.ctxs()],
            "meta": lambda body: self.meta(),
            "predictedFundings": lambda body: self.predicted_fundings(),
        }
        try:
            body = parse_body(request)
            handler = handlers.get(body["type"])
            if handler is None:
                raise BadRequest(
                    422, f"Failed to deserialize the JSON body into the target type: unknown variant `{body['type']}`"
                )
            return json_response(handler(body))
        except BadRequest as exc:
            return self.error(exc.status, str(exc))
        except UnknownCoin:
            return json_response(None, 500)

    def history(self, body: dict) -> list[dict]:
        """``fundingHistory``: the first 500 settlements stamped in [startTime, endTime]."""
        coin = body.get("coin")
        if coin not in COINS:
            raise UnknownCoin(coin)
        now_ms = to_ms(self.feed.clock())
        start_ms = ms_field(body, "startTime")
        end_ms = min(ms_field(body, "endTime", now_ms), now_ms)
        if start_ms > end_ms:
            return []
        # Stamps trail their settlement by < 1.5 s: take settlements up to an hour before.
        frame = self.feed.settlements(
            VENUE, coin, from_ms(start_ms) - HOUR, from_ms(end_ms) + dt.timedelta(milliseconds=1)
        )
        frame = frame.filter(pl.col("ts").is_between(from_ms(start_ms), from_ms(end_ms))).head(PAGE_ROWS)
        premiums = self.window_premiums(coin, frame)
        return [
            {"coin": coin, "fundingRate": decimal_str(rate), "premium": decimal_str(premium), "time": to_ms(ts)}
            for rate, premium, ts in zip(frame["rate"], premiums, frame["ts"])
        ]

    def window_premiums(self, coin: str, frame: pl.DataFrame) -> list[float]:
        """The published average premium of each settled window of ``frame`` (8 decimals)."""
        if frame.is_empty():
            return []
        windows = self.feed.model.window_premiums(
            VENUE, coin, frame["funding_time"][0], frame["funding_time"][-1] + dt.timedelta(milliseconds=1)
        )
        premium = dict(zip(windows["funding_time"], windows["premium"]))
        return [premium[t] for t in frame["funding_time"]]

    def meta(self) -> dict:
        universe = [
            {"szDecimals": sz, "name": coin, "maxLeverage": lev, "marginTableId": table}
            for coin, (sz, lev, table, *_) in ASSETS.items()
        ]
        universe.insert(2, DELISTED)  # between ours: only an index join gets SOL right
        return {"universe": universe, "marginTables": MARGIN_TABLES, "collateralToken": 0}

    def ctxs(self) -> list[dict]:
        ours = [self.ctx(coin) for coin in ASSETS]
        return [*ours[:2], DELISTED_CTX, *ours[2:]]

    def ctx(self, coin: str) -> dict[str, Any]:
        """The coin's live asset context: the model's running estimate of the open hour."""
        sz, _, _, oracle, open_interest, day_volume = ASSETS[coin]
        rate, _, _ = self.feed.predicted(VENUE, coin)
        now = self.feed.clock()
        hour = now.replace(minute=0, second=0, microsecond=0)
        premium = float(self.feed.model.premium(VENUE, coin, hour, hour + HOUR)["premium"][0])
        decimals = MAX_PRICE_DECIMALS - sz
        mark = round(oracle * (1 + premium), decimals)
        tick = 10.0**-decimals
        return {
            "funding": decimal_str(rate),
            "openInterest": decimal_str(open_interest),
            "prevDayPx": decimal_str(oracle),
            "dayNtlVlm": decimal_str(round(day_volume * oracle, 2)),
            "premium": decimal_str(round(premium, 10)),
            "oraclePx": decimal_str(oracle),
            "markPx": decimal_str(mark),
            "midPx": decimal_str(mark),
            "impactPxs": [decimal_str(round(mark - tick, decimals)), decimal_str(round(mark + tick, decimals))],
            "dayBaseVlm": decimal_str(day_volume),
        }

    def predicted_fundings(self) -> list:
        """Each coin's next settlement on Binance, Hyperliquid and Bybit, per venue interval."""
        out = []
        for coin in COINS:
            entries = []
            for name, venue in PREDICTED_VENUES:
                rate, funding_time, hours = self.feed.predicted(venue, coin)
                entry = {
                    "fundingRate": decimal_str(rate),
                    "nextFundingTime": to_ms(funding_time),
                    "fundingIntervalHours": int(hours),
                }
                entries.append([name, entry])
            out.append([coin, entries])
        return out

    # --- WebSocket ----------------------------------------------------------------------

    async def push(self, session: WsSession, coin: str) -> None:
        await session.send(
            {"channel": "activeAssetCtx", "data": {"coin": coin, "ctx": self.ctx(coin)}}, counts_prints=1
        )

    async def answer(self, session: WsSession, text: str, subscribed: dict[str, None]) -> None:
        """Reply to one client message: ping, subscribe or unsubscribe (activeAssetCtx)."""
        try:
            message = json.loads(text)
            method = message["method"]
        except (ValueError, KeyError, TypeError):
            await session.send({"channel": "error", "data": f"Error parsing JSON into valid websocket request: {text}"})
            return
        if method == "ping":
            await session.send({"channel": "pong"})
            return
        sub = message.get("subscription")
        coin = sub.get("coin") if isinstance(sub, dict) else None
        if coin not in COINS or method not in ("subscribe", "unsubscribe") or sub.get("type") != "activeAssetCtx":
            await session.send({"channel": "error", "data": f"Invalid subscription {json.dumps(sub)}"})
            return
        if (method == "subscribe") == (coin in subscribed):
            state = "Already subscribed" if method == "subscribe" else "Not subscribed"
            await session.send({"channel": "error", "data": f"{state}: {json.dumps(sub)}"})
            return
        await session.send({"channel": "subscriptionResponse", "data": message})
        if method == "subscribe":
            subscribed[coin] = None
            await self.push(session, coin)
        else:
            del subscribed[coin]

    async def ws(self, session: WsSession) -> None:
        if session.path != "/ws":
            await session.connection.close(1008, "no stream at this path")
            return
        loop = asyncio.get_running_loop()
        subscribed: dict[str, None] = {}
        heard = loop.time()
        next_push = heard + self.push_interval_s
        try:
            while True:
                now = loop.time()
                if now >= heard + self.idle_timeout_s:
                    await session.connection.close(1000, "idle connection")
                    return
                if now >= next_push:
                    for coin in list(subscribed):
                        await self.push(session, coin)
                    next_push = now + self.push_interval_s
                    continue
                text = await session.recv(min(next_push, heard + self.idle_timeout_s) - now)
                if text is not None:
                    heard = loop.time()
                    await self.answer(session, text, subscribed)
        except ConnectionClosed:
            return
