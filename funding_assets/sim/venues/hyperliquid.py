"""Hyperliquid in the simulator: ``POST /info`` reads and the ``/ws`` activeAssetCtx stream.

Semantics served (VENUES.md section 4):

- ``fundingHistory {coin, startTime, endTime?}``: rows stamped in ``[startTime, endTime]``
  (``endTime`` defaults to now), ascending, the first 500; ``fundingRate``/``premium`` as
  decimal strings, ``time`` as a ms number carrying the model's 10-1400 ms jitter.
  ``premium`` is the window's average premium (8 decimals) from which Hyperliquid's formula
  (:func:`funding_assets.premium.formula`) gives exactly ``fundingRate``.
- ``meta`` and ``metaAndAssetCtxs``: every perpetual of the universe listed by now
  (``BTC``, ``kPEPE``), in listing order as the venue appends new assets; a delisted one
  stays in place with ``isDelisted: true`` (the key is absent otherwise) and a book-less
  ctx (``null`` premium, midPx and impactPxs), so clients must join ctxs by index and skip
  it. A ctx has ``funding`` (the open hour's estimate), ``openInterest`` (coins of the
  name's unit), ``dayNtlVlm`` (USD), ``markPx`` / ``oraclePx`` / ``premium``: the ranking
  source is ``openInterest`` x ``oraclePx`` or ``dayNtlVlm``.
- ``predictedFundings``: per listed coin, Binance's, Hyperliquid's and Bybit's open window
  of their main perpetual of the coin, ``null`` where a venue does not list it.
- Errors as the venue's HTTP layer gives them: a body that is not JSON -> 400, an unknown
  request type or a bad field -> 422 (plain-text reasons), a coin it does not list -> 500
  with body ``null``.
- Weight: 20 per info read, plus 1 per 20 ``fundingHistory`` rows returned; 1200 a minute.
- Stream: subscribe -> ``subscriptionResponse`` ack echoing the request, then the coin's ctx
  at once and every ``push_interval_s``; ``{"method":"ping"}`` -> ``{"channel":"pong"}``;
  the connection is closed when the server has sent nothing on it for ``idle_timeout_s``
  (60 s): pushes and replies keep it open, a silent unsubscribed connection is cut.

The page size and weights are restated here rather than imported from the client: the
simulator stands for the venue, so a client that misreads them is caught.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import polars as pl
from websockets.exceptions import ConnectionClosed

from ...clients.hyperliquid import INFO_WEIGHT, page_weight
from ...instruments import Instrument
from .. import universe
from ..server import Request, Response, VenueSim, WsSession, json_response
from .market import decimals_for, index_price, remembered_text

VENUE = "hyperliquid"
PAGE_ROWS = 500
HOUR = dt.timedelta(hours=1)
EPOCH = dt.datetime(1970, 1, 1)

#: Static market figures of a few coins (prices are not modelled): szDecimals, maxLeverage,
#: marginTableId, oracle price; other coins get :func:`asset_figures`.
ASSETS: dict[str, tuple[int, int, int, float]] = {
    "BTC": (5, 40, 56, 64429.0),
    "ETH": (4, 25, 55, 3120.5),
    "SOL": (2, 20, 54, 142.31),
}
MARGIN_TABLES = [[50, {"description": "", "marginTiers": [{"lowerBound": "0.0", "maxLeverage": 50}]}]]
#: predictedFundings venue names, in the venue's order.
PREDICTED_VENUES = (("BinPerp", "binance"), ("HlPerp", VENUE), ("BybitPerp", "bybit"))
#: Perp prices carry at most 6 - szDecimals decimals.
MAX_PRICE_DECIMALS = 6


def asset_figures(inst: Instrument) -> tuple[int, int, int, float]:
    """(szDecimals, maxLeverage, marginTableId, oracle price of the name's unit) of ``inst``."""
    known = ASSETS.get(inst.venue_symbol)
    if known is not None:
        return known
    oracle = index_price(inst.symbol) * inst.multiplier
    sz = min(5, max(0, math.floor(math.log10(oracle)) + 1))
    return sz, 10, 52, round(oracle, price_decimals(sz, oracle))


def price_decimals(sz: int, price: float) -> int:
    """Decimals of a perp price: ``6 - szDecimals``, or five significant digits of a tiny one."""
    return max(MAX_PRICE_DECIMALS - sz, decimals_for(price, 5))


class BadRequest(Exception):
    """A request the venue's HTTP layer rejects: (status, plain-text reason)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class UnknownCoin(Exception):
    """The venue answers a coin it does not list with HTTP 500 and body ``null``."""


@remembered_text
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
    limit_status = 429
    #: Seconds a client may stay silent before the server closes its connection.
    idle_timeout_s = 60.0

    # --- REST ---------------------------------------------------------------------------

    def error(self, status: int, message: str) -> Response:
        return Response(status, message.encode(), {"Content-Type": "text/plain; charset=utf-8"})

    def cost(self, request: Request) -> float:
        """An info read weighs 20; ``fundingHistory`` one more per 20 rows it returns."""
        try:
            body = parse_body(request)
            return page_weight(len(self.history(body))) if body["type"] == "fundingHistory" else INFO_WEIGHT
        except (BadRequest, UnknownCoin):
            return INFO_WEIGHT

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

    def _listed(self) -> list[Instrument]:
        """The universe's perpetuals listed by now, in the order the venue appended them."""
        return sorted(self.feed.listing(VENUE), key=lambda i: (i.listed_at or dt.datetime.min, i.venue_symbol))

    def _coin(self, name: object) -> Instrument:
        found = self.feed.instrument(VENUE, name) if isinstance(name, str) else None
        if found is None:
            raise UnknownCoin(name)
        return found

    def history(self, body: dict) -> list[dict]:
        """``fundingHistory``: the first 500 settlements stamped in [startTime, endTime]."""
        inst = self._coin(body.get("coin"))
        now_ms = to_ms(self.feed.clock())
        start_ms = ms_field(body, "startTime")
        end_ms = min(ms_field(body, "endTime", now_ms), now_ms)
        if start_ms > end_ms:
            return []
        # Stamps trail their settlement by < 1.5 s: take settlements up to an hour before.
        frame = self.feed.settlements(
            VENUE, inst.symbol, from_ms(start_ms) - HOUR, from_ms(end_ms) + dt.timedelta(milliseconds=1), inst.contract
        )
        frame = frame.filter(pl.col("ts").is_between(from_ms(start_ms), from_ms(end_ms))).head(PAGE_ROWS)
        premiums = self.window_premiums(inst, frame)
        return [
            {
                "coin": inst.venue_symbol,
                "fundingRate": decimal_str(rate),
                "premium": decimal_str(premium),
                "time": to_ms(ts),
            }
            for rate, premium, ts in zip(frame["rate"], premiums, frame["ts"])
        ]

    def window_premiums(self, inst: Instrument, frame: pl.DataFrame) -> list[float]:
        """The published average premium of each settled window of ``frame`` (8 decimals)."""
        if frame.is_empty():
            return []
        windows = self.feed.model.window_premiums(
            VENUE,
            inst.symbol,
            frame["funding_time"][0],
            frame["funding_time"][-1] + dt.timedelta(milliseconds=1),
            contract=inst.contract,
        )
        premium = dict(zip(windows["funding_time"], windows["premium"]))
        return [premium[t] for t in frame["funding_time"]]

    def meta(self) -> dict:
        universe_rows = []
        for inst in self._listed():
            sz, lev, table, _ = asset_figures(inst)
            row: dict[str, Any] = {"szDecimals": sz, "name": inst.venue_symbol, "maxLeverage": lev}
            row["marginTableId"] = table
            if not self.feed.trading(inst):
                row["isDelisted"] = True
            universe_rows.append(row)
        return {"universe": universe_rows, "marginTables": MARGIN_TABLES, "collateralToken": 0}

    def ctxs(self) -> list[dict]:
        return [self.ctx(inst) for inst in self._listed()]

    def ctx(self, inst: Instrument, rate: float | None = None, now: dt.datetime | None = None) -> dict[str, Any]:
        """The live asset context at ``now`` (default: the simulator's now): the model's running
        estimate of the open hour (``rate``, the model's then unless given), or a book-less one
        for a delisted asset."""
        now = self.feed.clock() if now is None else now
        if not self.feed.trading(inst, now):
            sz, _, _, oracle = asset_figures(inst)
            price = decimal_str(oracle)
            return {
                "funding": "0.0",
                "openInterest": "0.0",
                "prevDayPx": price,
                "dayNtlVlm": "0.0",
                "premium": None,
                "oraclePx": price,
                "markPx": price,
                "midPx": None,
                "impactPxs": None,
                "dayBaseVlm": "0.0",
            }
        if rate is None:
            rate, _, _ = self.feed.predicted(*inst.key, at=now)
        return {
            "funding": decimal_str(rate),
            **self.feed.daily(("hl-ctx", inst.key, now.hour), now, lambda: self._hour_ctx(inst, now)),
        }

    def _hour_ctx(self, inst: Instrument, now: dt.datetime) -> dict[str, Any]:
        """The fields of a live context but ``funding``: fixed, or of the hour's premium."""
        sz, _, _, oracle = asset_figures(inst)
        decimals = price_decimals(sz, oracle)
        premium = self.feed.hour_premium(inst, now)
        mark = round(oracle * (1 + premium), decimals)
        tick = 10.0**-decimals
        volume = float(inst.volume_usd or 0.0)
        return {
            "openInterest": decimal_str(round(float(inst.open_interest_usd or 0.0) / oracle, sz)),
            "prevDayPx": decimal_str(oracle),
            "dayNtlVlm": decimal_str(round(volume, 2)),
            "premium": decimal_str(round(premium, 10)),
            "oraclePx": decimal_str(oracle),
            "markPx": decimal_str(mark),
            "midPx": decimal_str(mark),
            "impactPxs": [decimal_str(round(mark - tick, decimals)), decimal_str(round(mark + tick, decimals))],
            "dayBaseVlm": decimal_str(round(volume / oracle, sz)),
        }

    def predicted_fundings(self) -> list:
        """Each listed coin's next settlement on Binance, Hyperliquid and Bybit (their main
        perpetual of the coin, per its own interval); null where a venue does not list it."""
        out = []
        for inst in self._listed():
            if not self.feed.trading(inst):
                continue
            entries = []
            for name, venue in PREDICTED_VENUES:
                other = universe.find(venue, inst.symbol, None, self.feed.model.seed)
                entry = None
                if other is not None and self.feed.trading(other):
                    rate, funding_time, hours = self.feed.predicted(*other.key)
                    entry = {
                        "fundingRate": decimal_str(rate),
                        "nextFundingTime": to_ms(funding_time),
                        "fundingIntervalHours": int(hours),
                    }
                entries.append([name, entry])
            out.append([inst.venue_symbol, entries])
        return out

    # --- WebSocket ----------------------------------------------------------------------

    async def push(self, session: WsSession, insts: Sequence[Instrument]) -> None:
        """One ``activeAssetCtx`` message per instrument, all of one instant, in one write."""
        await session.send_many(await asyncio.to_thread(self._ctx_messages, insts))

    def _ctx_messages(self, insts: Sequence[Instrument]) -> list[tuple[dict, int]]:
        """The pushes of one instant (run off the event loop, which stays free to read the client)."""
        now = self.feed.clock()
        rates = self.feed.predicted_many(insts, now)
        return [
            ({"channel": "activeAssetCtx", "data": {"coin": inst.venue_symbol, "ctx": self.ctx(inst, rate, now)}}, 1)
            for inst, (rate, _, _) in zip(insts, rates)
        ]

    async def answer(self, session: WsSession, text: str, subscribed: dict[str, Instrument]) -> None:
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
        inst = self.feed.instrument(VENUE, coin) if isinstance(coin, str) else None
        known = inst is not None and self.feed.trading(inst)
        if not known or method not in ("subscribe", "unsubscribe") or sub.get("type") != "activeAssetCtx":
            await session.send({"channel": "error", "data": f"Invalid subscription {json.dumps(sub)}"})
            return
        if (method == "subscribe") == (coin in subscribed):
            state = "Already subscribed" if method == "subscribe" else "Not subscribed"
            await session.send({"channel": "error", "data": f"{state}: {json.dumps(sub)}"})
            return
        await session.send({"channel": "subscriptionResponse", "data": message})
        if method == "subscribe":
            subscribed[coin] = inst
            await self.push(session, [inst])
        else:
            del subscribed[coin]

    async def ws(self, session: WsSession) -> None:
        if session.path != "/ws":
            await session.connection.close(1008, "no stream at this path")
            return
        loop = asyncio.get_running_loop()
        subscribed: dict[str, Instrument] = {}
        next_push = loop.time() + self.push_interval_s
        try:
            while True:
                now = loop.time()
                idle_until = session.last_sent - time.monotonic() + now + self.idle_timeout_s
                if now >= idle_until:  # the venue counts what it sent, not what it heard
                    await session.connection.close(1000, "idle connection")
                    return
                if now >= next_push:
                    await self.push(session, list(subscribed.values()))
                    next_push = self.next_push(next_push, now)
                    continue
                text = await session.recv(min(next_push, idle_until) - now)
                if text is not None:
                    await self.answer(session, text, subscribed)
        except ConnectionClosed:
            return
