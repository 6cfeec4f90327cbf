"""OKX v5 in the simulator: instruments, funding history, archives, current funding, open
interest and the WS channel.

Serves every swap of the universe listed by the simulator's now (``BTC-USDT-SWAP``,
``BTC-USDC-SWAP``, inverse ``BTC-USD-SWAP``; OKX names no multiplier) with OKX's shapes: string envelopes ``{"code":"0","msg":"","data":[...]}``, every number and
epoch-ms time a string, rates with 16 decimals. Paths (under ``/okx``):

- ``GET /api/v5/public/instruments?instType=SWAP`` (``instType`` required; ``uly``,
  ``instFamily``, ``instId`` filters): every live swap in one answer, as OKX lists only the
  instruments that trade (a delisted swap disappears). Rows: ``instType``, ``instId``,
  ``uly`` / ``instFamily`` (``BTC-USDT``), ``settleCcy``, ``ctVal`` / ``ctValCcy`` (coins a
  linear contract is worth, USD an inverse one is), ``ctMult`` ``"1"``, ``ctType``
  (``linear`` / ``inverse``), ``listTime``, ``expTime`` ``""``, ``state`` ``live``, ``lever``,
  ``tickSz``, ``lotSz``, ``minSz`` and the other fields OKX sends (``""`` where unused). Other
  instrument types answer ``[]``.
- ``GET /api/v5/public/open-interest?instType=SWAP`` (``instId`` optional): ``{instType,
  instId, oi (contracts), oiCcy (coins), oiUsd, ts}`` per live swap: the ranking source.

- ``GET /api/v5/public/funding-rate-history``: newest first; ``after`` / ``before`` are
  exclusive bounds on ``fundingTime`` (older than / newer than); with ``before`` alone the
  newest rows still come first; ``limit`` defaults to and is capped at
  :attr:`Sim.history_limit_max` (400; 100 in older OKX docs); only the last
  :data:`REST_HISTORY` (about three months) is served. ``realizedRate`` is the model rate;
  ``fundingRate`` is the same rate off by a few 1e-11 (OKX's published value differs from
  the charged one in late decimals).
- ``GET /api/v5/public/market-data-history?module=3&instType=SWAP&instFamilyList=
  &dateAggrType=monthly&begin=&end=``: links to the monthly archives (month buckets in
  UTC+8) overlapping ``[begin, end]`` whose month has ended; the links are root-relative
  (``/okx/cdn/...``) because the simulator serves the files itself, where OKX answers
  absolute ``static.okx.com`` URLs. Only ``monthly`` is simulated.
- ``GET /cdn/okex/traderecords/swaprate/monthly/YYYYMM/<family>-fundingrates-YYYY-MM.zip``:
  a zip of one CSV in the layout :mod:`funding_assets.clients.okx` assumes (UNVERIFIED):
  ``instrument_name,contract_type,funding_rate,real_funding_rate,funding_time``.
- ``GET /api/v5/public/funding-rate?instId=<id>|ANY``: the open window's prediction (``ANY``:
  every live swap); ``maxFundingRate`` / ``minFundingRate`` are the swap's cap and floor;
  ``fundingTime`` is its (upcoming) settlement, ``prevFundingTime`` its start,
  ``nextFundingTime`` the settlement after it (so ``nextFundingTime - fundingTime`` is the
  NEXT window's length), ``nextFundingRate`` is ``""``, ``ts`` the simulator's now.
- ``GET /api/v5/public/premium-history?instId=&after=&before=&limit=``: the model's
  per-minute premium samples, newest first, ``{instId, premium (16 decimals), ts}``
  strings; ``ts`` is the sample's generation time, 0-9 s (fixed per minute) after the end
  of the minute it was taken in; ``after`` / ``before`` exclusive bounds on ``ts``, with
  ``before`` alone the newest rows still come first; ``limit`` default and maximum 100.
  OKX keeps about six months; the simulator serves the whole model span (so backfills can
  be tested). Budget: 20 requests / 2 s, a bucket of its own.
- WS ``/ws/v5/public``: ``subscribe`` / ``unsubscribe`` to channel ``funding-rate`` (ack
  ``{"event":"subscribe","arg":..,"connId":..}``, error event ``60018`` for an unknown
  instrument), a push of the current row per subscribed instrument on subscribing and every
  ``push_interval_s``, text ``ping`` answered by text ``pong``, and the connection closed
  (code 4004) after :attr:`Sim.idle_timeout_s` without traffic either way.

Errors use OKX's envelope with HTTP 400 (``51001`` unknown instrument, ``51000`` bad
parameter); the other reads share OKX's 10 requests / 2 s, enforced per venue rather than
per IP + instId, answered with HTTP 429 and code ``50011``. Archive downloads cost nothing.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import math
import re
import zipfile
from decimal import Decimal

import numpy as np
import orjson
from websockets.exceptions import ConnectionClosed

from ...clients import epoch_ms
from ...clients.okx import (
    ALL_PERPETUALS,
    ARCHIVE_COLUMNS,
    ARCHIVE_MODULE,
    ARCHIVE_PATH,
    CHANNEL,
    CURRENT_PATH,
    HISTORY_PATH,
    PREMIUM_LIMIT,
    PREMIUM_PATH,
    SWAP,
    WS_PATH,
)
from ...instruments import Instrument
from ...venues import INVERSE, SPECS
from ...venues.okx import PREMIUM, PUBLIC
from ..model import MINUTE_DECIMALS, MINUTE_MS
from ..server import Request, Response, VenueSim, WsSession, json_response
from . import wire
from .klines import known_minutes, now_ms
from .market import decimals_for, index_price, remembered_text

INSTRUMENTS_PATH = "/api/v5/public/instruments"
OPEN_INTEREST_PATH = "/api/v5/public/open-interest"
INST_TYPES = ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION")
DEFAULT_CAP = SPECS["okx"].rate_cap

REST_HISTORY = dt.timedelta(days=90)
ARCHIVE_TZ_OFFSET = dt.timedelta(hours=8)  # OKX archives bucket days and months in UTC+8
CDN_PREFIX = "/cdn/okex/traderecords/swaprate/monthly/"
CDN_FILE = re.compile(
    r"^/cdn/okex/traderecords/swaprate/monthly/(\d{4})(\d{2})/([A-Z0-9]+-[A-Z0-9]+)-fundingrates-\1-\2\.zip$"
)
UNIX_EPOCH = dt.datetime(1970, 1, 1)
MS = dt.timedelta(milliseconds=1)
INTEREST = "0.0001000000000000"
IDLE_CLOSE_CODE = 4004
STATUS_CODES = {400: "51000", 404: "404", 429: "50011"}  # anything else: 50001 service unavailable


@remembered_text
def decimal_string(rate: float) -> str:
    """A rate as OKX prints it: 16 decimals, exactly the float's shortest decimal, padded."""
    return format(Decimal(repr(float(rate))), ".16f")


def premium_stamps(minute_ms: np.ndarray) -> np.ndarray:
    """OKX ``ts`` of the samples of the minutes starting at ``minute_ms``: the minute's end
    plus a generation delay of 0-9 whole seconds, fixed per minute (a multiplicative hash)."""
    minute = minute_ms // MINUTE_MS
    delay_s = (minute * 2654435761 % 2**32) >> 16
    return minute_ms + MINUTE_MS + delay_s % 10 * 1000


def premium_rows(inst_id: str, premium: np.ndarray, stamps: np.ndarray) -> bytes:
    """JSON text of premium-history rows ``{instId, premium, ts}`` (strings; the premium as
    :func:`decimal_string` writes it), in the order given."""
    rows = premium.size
    return wire.array_of_rows(
        [
            wire.literal('"instId":', rows),
            wire.json_string(inst_id, rows),
            wire.literal(',"premium":', rows),
            wire.quoted(wire.decimals(premium, MINUTE_DECIMALS["okx"], 16, decimal_string)),
            wire.literal(',"ts":', rows),
            wire.quoted(wire.integers(stamps)),
        ],
        rows,
        open_row="{",
        close_row="}",
    )


def published_rate(rate: float, funding_ms: int) -> float:
    """OKX's ``fundingRate`` next to a ``realizedRate``: equal but for the 11th decimal."""
    return rate + ((funding_ms // 3_600_000) % 5 - 2) * 1e-11


def at_ms(ms: int) -> dt.datetime:
    """Epoch ms -> naive UTC datetime."""
    return UNIX_EPOCH + ms * MS


def month_start(year: int, month: int) -> dt.datetime:
    """Naive UTC start of a UTC+8 calendar month (the archive bucket)."""
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return dt.datetime(year, month, 1) - ARCHIVE_TZ_OFFSET


def family(swap: Instrument) -> str:
    """``BTC-USDT`` of ``BTC-USDT-SWAP``: OKX's underlying and instrument family."""
    return swap.venue_symbol.removesuffix(f"-{SWAP}")


def contract_value(swap: Instrument) -> float:
    """``ctVal``: USD an inverse contract is worth (100 for BTC, 10 else), coins a linear one
    is (about 10 USD of the coin, a power of ten)."""
    if swap.contract == INVERSE:
        return 100 if swap.symbol == "BTC" else 10
    exponent = round(math.log10(10 / index_price(swap.symbol)))
    return float(10**exponent) if exponent < 0 else int(10**exponent)


class OkxFailure(Exception):
    """A request OKX rejects: HTTP status, OKX code and message."""

    def __init__(self, status: int, code: str, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


class Sim(VenueSim):
    """OKX v5 public data for the USDT swaps of our coins (see the module docstring)."""

    venue = "okx"
    limit_status = 429
    #: Page size default and maximum of funding-rate-history (100 in older OKX docs).
    history_limit_max = 400
    #: Seconds without traffic after which the server closes a WS connection (OKX: 30).
    idle_timeout_s = 30.0

    # --- REST -----------------------------------------------------------------------------

    def bucket(self, request: Request) -> str:
        return PREMIUM if request.path == PREMIUM_PATH else PUBLIC

    def cost(self, request: Request) -> float:
        return 0.0 if request.path.startswith(CDN_PREFIX) else 1.0

    def error(self, status: int, message: str) -> Response:
        return self._envelope_error(OkxFailure(status, STATUS_CODES.get(status, "50001"), message))

    def _envelope_error(self, failure: OkxFailure) -> Response:
        return json_response({"code": failure.code, "msg": failure.msg, "data": []}, failure.status)

    def rest(self, request: Request) -> Response:
        routes = {
            HISTORY_PATH: self._history,
            CURRENT_PATH: self._current,
            ARCHIVE_PATH: self._archive_links,
            PREMIUM_PATH: self._premium_history,
            INSTRUMENTS_PATH: self._instruments,
            OPEN_INTEREST_PATH: self._open_interest,
        }
        try:
            if request.path.startswith(CDN_PREFIX) and request.method == "GET":
                return self._archive_file(request.path)
            handler = routes.get(request.path)
            if handler is None or request.method != "GET":
                raise OkxFailure(404, "404", "Not Found")
            return json_response({"code": "0", "msg": "", "data": handler(request.query)})
        except OkxFailure as failure:
            return self._envelope_error(failure)

    def _known(self, inst_id: str | None) -> Instrument | None:
        """The swap of an exact instId listed by now (delisted ones too), else None."""
        return self.feed.instrument(self.venue, inst_id)

    def _swap(self, inst_id: str | None) -> Instrument:
        if not inst_id:
            raise OkxFailure(400, "50014", "Parameter instId can not be empty.")
        found = self._known(inst_id)
        if found is None:
            raise OkxFailure(400, "51001", "Instrument ID, Instrument ID code, or Spread ID doesn't exist.")
        return found

    def _live(self) -> list[Instrument]:
        """The swaps trading now, by instId."""
        return sorted((i for i in self.feed.listing(self.venue) if self.feed.trading(i)), key=lambda i: i.venue_symbol)

    @staticmethod
    def _int(query: dict[str, str], name: str, default: int | None = None) -> int | None:
        value = query.get(name)
        if value in (None, ""):
            return default
        try:
            return int(value)
        except ValueError:
            raise OkxFailure(400, "51000", f"Parameter {name} error") from None

    def _history(self, query: dict[str, str]) -> list[dict]:
        inst = query.get("instId")
        swap = self._swap(inst)
        limit = self._int(query, "limit", self.history_limit_max)
        if limit < 1:
            raise OkxFailure(400, "51000", "Parameter limit error")
        after, before = self._int(query, "after"), self._int(query, "before")
        now = self.feed.clock()
        start = now - REST_HISTORY if before is None else max(now - REST_HISTORY, at_ms(before + 1))
        end = now + MS if after is None else at_ms(after)
        rows = (
            self.feed.settlements(self.venue, swap.symbol, start, end, swap.contract)
            .reverse()
            .head(min(limit, self.history_limit_max))
        )
        return [
            self._history_row(inst, epoch_ms(t), rate) for t, rate in rows.select("funding_time", "rate").iter_rows()
        ]

    def _premium_history(self, query: dict[str, str]) -> orjson.Fragment:
        """premium-history rows, newest first (see the module docstring)."""
        inst = query.get("instId")
        swap = self._swap(inst)
        limit = self._int(query, "limit", PREMIUM_LIMIT)
        if limit < 1:
            raise OkxFailure(400, "51000", "Parameter limit error")
        limit = min(limit, PREMIUM_LIMIT)
        after, before = self._int(query, "after"), self._int(query, "before")
        upper = now_ms(self.feed) + 1 if after is None else min(after, now_ms(self.feed) + 1)  # ts < upper
        # Stamps rise with the minute and trail its start by 60-69 s: the newest row before
        # `upper` is among the two minutes starting just before upper - 60 s.
        top = (upper - MINUTE_MS) // MINUTE_MS * MINUTE_MS
        minute_ms, premium = known_minutes(self.feed, swap, top - limit * MINUTE_MS, top + MINUTE_MS)
        stamps = premium_stamps(minute_ms)
        keep = stamps < upper
        if before is not None:
            keep &= stamps > before
        return orjson.Fragment(premium_rows(inst, premium[keep][::-1][:limit], stamps[keep][::-1][:limit]))

    @staticmethod
    def _history_row(inst: str, funding_ms: int, rate: float) -> dict:
        return {
            "formulaType": "withRate",
            "fundingRate": decimal_string(published_rate(rate, funding_ms)),
            "fundingTime": str(funding_ms),
            "instId": inst,
            "instType": SWAP,
            "method": "current_period",
            "realizedRate": decimal_string(rate),
        }

    def _current(self, query: dict[str, str]) -> list[dict]:
        inst = query.get("instId")
        swaps = self._live() if inst == ALL_PERPETUALS else [self._swap(inst)]
        return [self.funding_row(swap) for swap in swaps]

    def funding_row(
        self,
        swap: Instrument,
        now: dt.datetime | None = None,
        quote: tuple[float, dt.datetime, float] | None = None,
    ) -> dict:
        """The REST / WS ``funding-rate`` row of ``swap`` at ``now`` (the simulator's now by
        default), with ``quote``, the model's estimate then, when the caller has it."""
        now = self.feed.clock() if now is None else now
        rate, funding_time, hours = quote or self.feed.predicted(*swap.key, at=now)
        fixed = self.feed.daily(
            ("okx-window", swap.venue_symbol, funding_time, hours, now.hour),
            now,
            lambda: self._window_fields(swap, now, funding_time, hours),
        )
        last = self.feed.last_published(swap, now, funding_time - dt.timedelta(days=2))
        return {
            "formulaType": "withRate",
            "fundingRate": decimal_string(rate),
            **fixed,
            "settFundingRate": "" if last is None else decimal_string(last),
            "settState": "settled",
            "ts": str(epoch_ms(now)),
        }

    def _window_fields(self, swap: Instrument, now: dt.datetime, funding_time: dt.datetime, hours: float) -> dict:
        """The fields of a ``funding-rate`` row between ``fundingRate`` and ``settFundingRate``:
        of the open window and the hour's premium, the same for every push of that hour."""
        venue, coin, contract = swap.key
        following = self.feed.model.interval_hours_at(venue, coin, funding_time, contract=contract)
        cap = swap.rate_cap if swap.rate_cap is not None else DEFAULT_CAP
        floor = swap.rate_floor if swap.rate_floor is not None else -cap
        return {
            "fundingTime": str(epoch_ms(funding_time)),
            "impactValue": "20000.0000000000000000",
            "instId": swap.venue_symbol,
            "instType": SWAP,
            "interestRate": INTEREST,
            "maxFundingRate": decimal_string(cap).rstrip("0"),
            "method": "current_period",
            "minFundingRate": decimal_string(floor).rstrip("0"),
            "nextFundingRate": "",
            "nextFundingTime": str(epoch_ms(funding_time + dt.timedelta(hours=following))),
            "premium": decimal_string(self.feed.hour_premium(swap, now)),
            "prevFundingTime": str(epoch_ms(funding_time - dt.timedelta(hours=hours))),
        }

    # --- instruments -----------------------------------------------------------------------

    def _inst_type(self, query: dict[str, str]) -> str:
        inst_type = query.get("instType")
        if not inst_type:
            raise OkxFailure(400, "50014", "Parameter instType can not be empty.")
        if inst_type not in INST_TYPES:
            raise OkxFailure(400, "51000", "Parameter instType error")
        return inst_type

    def _filtered(self, query: dict[str, str]) -> list[Instrument]:
        """Live swaps, narrowed by ``uly`` / ``instFamily`` / ``instId``; none for other types."""
        if self._inst_type(query) != SWAP:
            return []
        swaps = self._live()
        for name, of in (("uly", family), ("instFamily", family), ("instId", lambda i: i.venue_symbol)):
            if query.get(name):
                swaps = [i for i in swaps if of(i) == query[name]]
        return swaps

    def _instruments(self, query: dict[str, str]) -> list[dict]:
        return [self._instrument_row(swap) for swap in self._filtered(query)]

    @staticmethod
    def _instrument_row(swap: Instrument) -> dict:
        price = index_price(swap.symbol)
        decimals = decimals_for(price, 5)
        inverse = swap.contract == INVERSE
        return {
            "alias": "",
            "auctionEndTime": "",
            "baseCcy": "",
            "category": "1",
            "ctMult": "1",
            "ctType": "inverse" if inverse else "linear",
            "ctVal": str(contract_value(swap)),
            "ctValCcy": "USD" if inverse else swap.symbol,
            "expTime": "",
            "futureSettlement": False,
            "instFamily": family(swap),
            "instId": swap.venue_symbol,
            "instType": SWAP,
            "lever": "50" if swap.symbol in ("BTC", "ETH") else "20",
            "listTime": str(epoch_ms(swap.listed_at)) if swap.listed_at else "",
            "lotSz": "1" if inverse else "0.01",
            "maxIcebergSz": "100000000.0000000000000000",
            "maxLmtAmt": "20000000",
            "maxLmtSz": "100000000",
            "maxMktAmt": "",
            "maxMktSz": "10000",
            "maxStopSz": "10000",
            "maxTriggerSz": "100000000.0000000000000000",
            "maxTwapSz": "100000000.0000000000000000",
            "minSz": "1" if inverse else "0.01",
            "optType": "",
            "quoteCcy": "",
            "ruleType": "normal",
            "settleCcy": swap.settle or ("USDT" if not inverse else swap.symbol),
            "state": "live",
            "stk": "",
            "tickSz": f"{10.0**-decimals:.{decimals}f}",
            "uly": family(swap),
        }

    def _open_interest(self, query: dict[str, str]) -> list[dict]:
        ts = str(epoch_ms(self.feed.clock()))
        rows = []
        for swap in self._filtered(query):
            usd = float(swap.open_interest_usd or 0.0)
            coins = usd / index_price(swap.symbol)
            contracts = usd / contract_value(swap) if swap.contract == INVERSE else coins / contract_value(swap)
            rows.append(
                {
                    "instType": SWAP,
                    "instId": swap.venue_symbol,
                    "oi": f"{contracts:.2f}",
                    "oiCcy": f"{coins:.8f}",
                    "oiUsd": f"{usd:.4f}",
                    "ts": ts,
                }
            )
        return rows

    # --- archives -------------------------------------------------------------------------

    def _archive_links(self, query: dict[str, str]) -> list[dict]:
        if query.get("module") != ARCHIVE_MODULE or query.get("instType") != SWAP:
            raise OkxFailure(400, "51000", "Parameter module error")
        if query.get("dateAggrType") != "monthly":
            raise OkxFailure(400, "51000", "Parameter dateAggrType error (only monthly is simulated)")
        families = [f for f in query.get("instFamilyList", "").split(",") if f]
        if not families or any(self._known(f"{f}-{SWAP}") is None for f in families):
            raise OkxFailure(400, "51000", "Parameter instFamilyList error")
        begin, end = self._int(query, "begin"), self._int(query, "end")
        if begin is None or end is None or end < begin:
            raise OkxFailure(400, "51000", "Parameter begin/end error")
        months = self._published_months(at_ms(begin), at_ms(end))
        details = [
            {
                "instFamily": family,
                "instType": SWAP,
                "groupDetails": [self._archive_link(family, y, m) for y, m in months],
            }
            for family in families
        ]
        return [{"dateAggrType": "monthly", "details": details, "ts": str(epoch_ms(self.feed.clock()))}]

    def _published_months(self, begin: dt.datetime, end: dt.datetime) -> list[tuple[int, int]]:
        """UTC+8 months overlapping [begin, end] that have ended by now."""
        local = begin + ARCHIVE_TZ_OFFSET
        year, month = local.year, local.month
        now, months = self.feed.clock(), []
        while month_start(year, month) <= end and month_start(year, month + 1) <= now:
            months.append((year, month))
            year, month = year + month // 12, month % 12 + 1
        return months

    def _archive_link(self, family: str, year: int, month: int) -> dict:
        return {
            "dateRangeStart": str(epoch_ms(month_start(year, month))),
            "dateRangeEnd": str(epoch_ms(month_start(year, month + 1)) - 1),
            "filename": f"{family}-fundingrates-{year:04d}-{month:02d}.zip",
            "url": f"/{self.venue}{CDN_PREFIX}{year:04d}{month:02d}/{family}-fundingrates-{year:04d}-{month:02d}.zip",
        }

    def _archive_file(self, path: str) -> Response:
        match = CDN_FILE.match(path)
        if match is None:
            return Response(404, b"Not Found", {"Content-Type": "text/plain"})
        year, month, family = int(match[1]), int(match[2]), match[3]
        inst = f"{family}-{SWAP}"
        swap = self._known(inst)
        start, end = month_start(year, month), month_start(year, month + 1)
        if swap is None or end > self.feed.clock():
            return Response(404, b"Not Found", {"Content-Type": "text/plain"})
        rows = self.feed.settlements(self.venue, swap.symbol, start, end, swap.contract)
        rows = rows.select("funding_time", "rate").iter_rows()
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(ARCHIVE_COLUMNS)
        for funding_time, rate in rows:
            ms = epoch_ms(funding_time)
            writer.writerow((inst, SWAP, decimal_string(published_rate(rate, ms)), decimal_string(rate), ms))
        name = f"{family}-fundingrates-{year:04d}-{month:02d}"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(zipfile.ZipInfo(f"{name}.csv", date_time=(year, month, 1, 0, 0, 0)), text.getvalue())
        return Response(200, buffer.getvalue(), {"Content-Type": "application/zip"})

    # --- WebSocket ------------------------------------------------------------------------

    async def ws(self, session: WsSession) -> None:
        if session.path != WS_PATH:
            await session.connection.close(1008, f"no stream at {session.path}")
            return
        try:
            await self._serve_stream(session)
        except ConnectionClosed:
            pass  # the client went away

    async def _serve_stream(self, session: WsSession) -> None:
        loop = asyncio.get_running_loop()
        subscribed: dict[str, Instrument] = {}  # instId -> swap
        last_traffic = loop.time()
        next_push = float("inf")
        while True:
            now = loop.time()
            if now - last_traffic >= self.idle_timeout_s:
                await session.connection.close(IDLE_CLOSE_CODE, "No data received in 30s.")
                return
            if now >= next_push:
                # the model's work off the event loop, which stays free to read the client
                await session.send_many(await asyncio.to_thread(self._pushes, dict(subscribed)))
                last_traffic, next_push = loop.time(), self.next_push(next_push, now)
                continue
            message = await session.recv(min(last_traffic + self.idle_timeout_s, next_push) - now)
            if message is None:
                continue
            replies = self._ws_replies(message, subscribed, session)
            for reply in replies:
                await session.send(reply)
            last_traffic = loop.time()
            if subscribed and any(isinstance(r, dict) and r.get("event") == "subscribe" for r in replies):
                next_push = last_traffic  # OKX pushes the current row right after subscribing
            elif not subscribed:
                next_push = float("inf")

    def _pushes(self, subscribed: dict[str, Instrument]) -> list[tuple[dict, int]]:
        """One ``funding-rate`` push per subscribed swap, all of one instant."""
        now = self.feed.clock()
        swaps = list(subscribed.items())
        quotes = self.feed.predicted_many([swap for _, swap in swaps], now)
        return [
            ({"arg": {"channel": CHANNEL, "instId": inst}, "data": [self.funding_row(swap, now, quote)]}, 1)
            for (inst, swap), quote in zip(swaps, quotes)
        ]

    def _ws_replies(self, message: str, subscribed: dict[str, Instrument], session: WsSession) -> list:
        """The answers to one client message; updates ``subscribed`` in place."""
        if message == "ping":
            return ["pong"]
        conn_id = f"{id(session) & 0xFFFFFFFF:08x}"
        try:
            request = json.loads(message)
            op, args = request["op"], list(request["args"])
        except (ValueError, KeyError, TypeError):
            op = args = None
        if op not in ("subscribe", "unsubscribe"):
            return [{"event": "error", "code": "60012", "msg": f"Invalid request: {message[:100]}", "connId": conn_id}]
        replies = []
        for arg in args:
            arg = arg if isinstance(arg, dict) else {}
            inst, channel = arg.get("instId"), arg.get("channel")
            swap = self._known(inst)
            if channel != CHANNEL or swap is None or not self.feed.trading(swap):
                msg = f"Wrong URL or channel:{channel},instId:{inst} doesn't exist. Please use the correct URL, channel and parameters referring to API document."
                replies.append({"event": "error", "code": "60018", "msg": msg, "connId": conn_id})
                continue
            if op == "subscribe":
                subscribed[inst] = swap
            else:
                subscribed.pop(inst, None)
            replies.append({"event": op, "arg": {"channel": CHANNEL, "instId": inst}, "connId": conn_id})
        return replies
