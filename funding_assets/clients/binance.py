"""Binance USD-M futures: settled funding history, live predictions and the mark-price stream.

Endpoints (public, no key), all rates decimal fractions per native interval, times epoch ms UTC:

- ``GET /fapi/v1/fundingRate?symbol=&startTime=&endTime=&limit=`` -- settled history,
  inclusive bounds, ascending, at most 1000 rows: more rows than ``limit`` in the range give
  the *first* ``limit`` from ``startTime``, so pages go forward (``startTime = last + 1``).
  Rows carry no interval (intervals change dynamically): it is inferred from the gaps.
  ``fundingTime`` is the engine's stamp, a few ms after the boundary.
- ``GET /fapi/v1/premiumIndex`` -- every symbol in one call; ``lastFundingRate`` is misnamed:
  it is the *prediction* of the open window settling at ``nextFundingTime``; ``time`` is the
  quote time. Rows with ``nextFundingTime: 0`` (settling, delisted, delivery) carry no funding.
- ``GET /fapi/v1/fundingInfo`` -- ``fundingIntervalHours`` of adjusted symbols (absent = 8 h):
  the interval of the open window, which ``premiumIndex`` does not give.
- ``GET /fapi/v1/premiumIndexKlines?symbol=&interval=1m&startTime=&endTime=&limit=`` --
  premium-index candles ``[openTime, open, high, low, close, "0", closeTime, "0", n, "0",
  "0", "0"]`` (times ms numbers, OHLC decimal strings), ascending, at most 1500: the first
  ``limit`` from ``startTime``, so pages go forward. A 1-minute candle summarises the
  minute's 5-second samples; its ``close`` is taken as the minute's sample, known at the
  minute's end (``openTime + 1 min``). Weight by ``limit``: 1 / 2 / 5 / 10.
- ``wss://fstream.binance.com/market/stream?streams=<sym>@markPrice@1s/...`` -- the routed
  path: the legacy ``/ws`` and ``/stream`` paths still connect but never push mark prices.
  The server pings every 3 min (websockets answers); frames ``{"stream", "data": {"r", "T", ...}}``.

Budgets: ``fundingRate`` and ``fundingInfo`` share their own bucket of 500 requests per 5 min
per IP; ``premiumIndex`` draws 10 weight (1 with a symbol) and ``premiumIndexKlines`` up to 10
from the 2400 weight/min bucket.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import polars as pl
from websockets.asyncio.client import connect

from ..prints import PREDICTED
from ..venues import venue_symbol
from . import (
    KNOWN_INTERVALS,
    MINUTE_MS,
    VenueClient,
    check_print,
    checked,
    epoch_ms,
    number,
    premium_frame,
    prints_frame,
    settled_rows,
)
from .http import Budget, HttpClient, VenueError

VENUE = "binance"
FUNDING_RATE = "/fapi/v1/fundingRate"
PREMIUM_INDEX = "/fapi/v1/premiumIndex"
FUNDING_INFO = "/fapi/v1/fundingInfo"
PREMIUM_KLINES = "/fapi/v1/premiumIndexKlines"
STREAM_PATH = "/market/stream"

#: ``fundingRate`` + ``fundingInfo``: their own bucket, 500 requests / 5 min / IP.
HISTORY_BUDGET = Budget(500, 300)
#: ``REQUEST_WEIGHT``: 2400 weight / min / IP (``premiumIndex`` and the rest of the API).
WEIGHT_BUDGET = Budget(2400, 60)
PREMIUM_INDEX_WEIGHT_ALL = 10
PREMIUM_INDEX_WEIGHT_ONE = 1

PAGE_LIMIT = 1000  # the endpoint's maximum
KLINE_LIMIT = 1500  # premiumIndexKlines' maximum
HOUR_MS = 3_600_000
#: History fetched around the asked range so the gap before its first settlement and after
#: its last is known (up to three missing 8 h settlements in a row).
LOOKBACK_MS = 72 * HOUR_MS
LOOKAHEAD_MS = 72 * HOUR_MS
#: fundingInfo changes within ~15 min of an interval switch; re-read it after this long.
FUNDING_INFO_TTL_S = 60.0
DEFAULT_HOURS = 8.0
#: Binance's interest component per hour of interval (0.01 % per 8 h).
INTEREST_PER_HOUR = Decimal("0.0000125")
#: A markPrice@1s stream pushes every second: this long without a frame is a dead stream.
STALE_AFTER_S = 30.0
#: Client pings (the server pings every 3 min; an unsolicited ping doubles as a check of the
#: socket, answered or the connection is dropped after the same delay).
PING_INTERVAL_S = 180.0


def weight_cost(weight: float) -> float:
    """A ``REQUEST_WEIGHT`` cost in units of :data:`HISTORY_BUDGET`, the client's one bucket.

    The weight bucket refills 24 times faster, so ``premiumIndex`` (10) costs 10/24 units.
    """
    return weight * HISTORY_BUDGET.per_second / WEIGHT_BUDGET.per_second


def kline_weight(limit: int) -> int:
    """``REQUEST_WEIGHT`` of a ``premiumIndexKlines`` call asking for ``limit`` candles."""
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


def _rate(text: Any) -> float:
    """A decimal string (``"0.00010000"``) as the nearest float; anything else is malformed."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"expected a decimal string, got {text!r}")
    return float(text)


def _ms(value: Any) -> int:
    """An epoch-ms JSON number (never a bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected epoch ms, got {value!r}")
    return value


def parse_funding_history(payload: Any, symbol: str) -> list[tuple[int, float]]:
    """``fundingRate`` rows of ``symbol`` -> ``(fundingTime ms as stamped, rate per interval)``.

    ``markPrice`` (absent or ``""`` on old rows) and ``rateType`` are not needed. A row of
    another symbol is a :class:`VenueError`: dropping it could lose a settlement unnoticed.
    """
    if not isinstance(payload, list):
        raise VenueError(f"{VENUE} {FUNDING_RATE}: expected a list, got {str(payload)[:200]}")
    points = []
    for row in payload:
        try:
            if row["symbol"] != symbol:
                raise ValueError(f"symbol {row['symbol']!r}, asked for {symbol}")
            point = _ms(row["fundingTime"]), _rate(row["fundingRate"])
            check_print(point[1], point[:1])
        except (KeyError, TypeError, ValueError) as exc:
            raise VenueError(f"{VENUE} {FUNDING_RATE}: malformed row {str(row)[:200]} ({exc})") from None
        points.append(point)
    return points


def parse_premium_klines(payload: Any) -> list[tuple[int, float]]:
    """``premiumIndexKlines`` candles -> ``(openTime ms, close)``, as sent (ascending)."""
    if not isinstance(payload, list):
        raise VenueError(f"{VENUE} {PREMIUM_KLINES}: expected a list, got {str(payload)[:200]}")
    try:
        return [(_ms(row[0]), _rate(row[4])) for row in payload]
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        raise VenueError(f"{VENUE} {PREMIUM_KLINES}: malformed candle ({exc})") from None


def parse_funding_info(payload: Any) -> dict[str, float]:
    """``fundingInfo`` -> ``{symbol: fundingIntervalHours}`` (symbols listed; absent = 8 h)."""
    if not isinstance(payload, list):
        raise VenueError(f"{VENUE} {FUNDING_INFO}: expected a list, got {str(payload)[:200]}")
    try:
        return {row["symbol"]: number(row["fundingIntervalHours"]) for row in payload}
    except (KeyError, TypeError, ValueError) as exc:
        raise VenueError(f"{VENUE} {FUNDING_INFO}: malformed row ({exc})") from None


def interval_from_interest(text: str) -> float | None:
    """The interval an ``interestRate`` implies (0.0001 -> 8 h, 0.00005 -> 4 h); None if 0."""
    try:
        hours = Decimal(text) / INTEREST_PER_HOUR
    except (InvalidOperation, TypeError):
        return None
    return float(hours) if float(hours) in KNOWN_INTERVALS else None


def parse_premium_index(payload: Any, intervals: Mapping[str, float]) -> list[dict]:
    """``premiumIndex`` (one object or the all-symbols array) -> predicted quotes per symbol.

    Each quote is ``{symbol, ts_ms, funding_time_ms, rate, interval_hours, kind}``: ``rate``
    from ``lastFundingRate`` (the open window's estimate), ``funding_time_ms`` from
    ``nextFundingTime``, ``ts_ms`` from ``time``. Rows with ``nextFundingTime: 0`` are skipped.
    The interval is ``intervals[symbol]`` (fundingInfo), else the one ``interestRate``
    implies, else 8 h.
    """
    rows = payload if isinstance(payload, list) else [payload]
    quotes = []
    try:
        for row in rows:
            funding_ms = _ms(row["nextFundingTime"])
            if funding_ms == 0:
                continue
            symbol = row["symbol"]
            hours = intervals.get(symbol) or interval_from_interest(row.get("interestRate")) or DEFAULT_HOURS
            quotes.append(_quote(symbol, _ms(row["time"]), funding_ms, _rate(row["lastFundingRate"]), hours))
    except (KeyError, TypeError, ValueError) as exc:
        raise VenueError(f"{VENUE} {PREMIUM_INDEX}: malformed row ({exc})") from None
    return quotes


def parse_mark_price(text: str | bytes, intervals: Mapping[str, float]) -> list[dict] | None:
    """One stream message -> predicted quotes (as :func:`parse_premium_index`); None if malformed.

    Accepts combined (``{"stream", "data"}``) and raw frames, single events or the
    ``!markPrice@arr`` array. Messages without mark-price events (subscription replies) give
    ``[]``; events with ``r: ""`` or ``T: 0`` (delivery contracts) carry no funding.
    """
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if isinstance(message, dict) and "stream" in message:
        message = message.get("data")
    events = message if isinstance(message, list) else [message]
    if not all(isinstance(event, dict) for event in events):
        return None
    quotes = []
    try:
        for event in events:
            if event.get("e") != "markPriceUpdate" or event.get("r") == "" or event.get("T") == 0:
                continue
            symbol = event["s"]
            quotes.append(
                _quote(
                    symbol, _ms(event["E"]), _ms(event["T"]), _rate(event["r"]), intervals.get(symbol, DEFAULT_HOURS)
                )
            )
    except (KeyError, TypeError, ValueError):
        return None
    return quotes


def _quote(symbol: str, ts_ms: int, funding_time_ms: int, rate: float, hours: float) -> dict:
    """A predicted quote, checked (:func:`check_print`: ``ValueError`` if no venue could mean it)."""
    return checked(
        {
            "symbol": symbol,
            "ts_ms": ts_ms,
            "funding_time_ms": funding_time_ms,
            "rate": rate,
            "interval_hours": hours,
            "kind": PREDICTED,
        }
    )


def quote_prints(quotes: list[dict], coins: Sequence[str], source: str) -> pl.DataFrame:
    """Quotes of the wanted coins' symbols as a print-model frame (other symbols dropped)."""
    wanted = {venue_symbol(VENUE, coin): coin for coin in coins}
    rows = [{**q, "coin": wanted[q["symbol"]]} for q in quotes if q["symbol"] in wanted]
    return prints_frame(rows, VENUE, source)


def stream_url(ws_base: str, coins: Sequence[str]) -> str:
    """The routed combined-stream URL (``/market/stream``) of the coins' ``@markPrice@1s``."""
    streams = "/".join(f"{venue_symbol(VENUE, coin).lower()}@markPrice@1s" for coin in coins)
    return f"{ws_base.rstrip('/')}{STREAM_PATH}?streams={streams}"


class Client(VenueClient):
    """Binance USD-M futures (``BTCUSDT`` etc.); see the module docstring for the protocol."""

    venue = VENUE
    rest_url = "https://fapi.binance.com"
    ws_url = "wss://fstream.binance.com"
    budget = HISTORY_BUDGET

    def __init__(
        self, rest_url: str | None = None, ws_url: str | None = None, *, http: HttpClient | None = None
    ) -> None:
        super().__init__(rest_url, ws_url, http=http)
        self.skipped_frames = 0
        self._intervals: dict[str, float] = {}
        self._intervals_expire = 0.0

    @property
    def stream_source(self) -> str:
        return f"{self.venue} WS"

    def settled(self, coin: str, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        """Realised prints with ``funding_time`` in ``[start, end]`` (naive UTC), one per settlement.

        History from ``LOOKBACK_MS`` before to ``LOOKAHEAD_MS`` after the range is read so
        every row's interval comes from its real neighbours, then trimmed.
        """
        start_ms, end_ms = epoch_ms(start), epoch_ms(end)
        symbol = venue_symbol(self.venue, coin)
        points = self._history(symbol, start_ms - LOOKBACK_MS, end_ms + LOOKAHEAD_MS)
        rows = [
            r for r in settled_rows(coin, points, self.default_interval) if start_ms <= r["funding_time_ms"] <= end_ms
        ]
        return prints_frame(rows, self.venue, self.source)

    def _history(self, symbol: str, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
        """Every ``(fundingTime, rate)`` with fundingTime in ``[start_ms, end_ms]``, paging forward."""
        points: list[tuple[int, float]] = []
        while start_ms <= end_ms:
            params = {"symbol": symbol, "startTime": start_ms, "endTime": end_ms, "limit": PAGE_LIMIT}
            page = parse_funding_history(self.http.get(FUNDING_RATE, params), symbol)
            points.extend(page)
            if len(page) < PAGE_LIMIT:
                break
            start_ms = max(ts for ts, _ in page) + 1
        return points

    def premium_history(self, coin: str, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        """Per-minute premium samples known in ``(start, end]`` (naive UTC), in :data:`PREMIUM_SCHEMA`.

        One 1-minute candle per sample: ``ts`` = ``openTime + 1 min`` (the minute's end, when
        the sample is known), ``premium`` = its ``close`` (decimal fraction). Pages of 1500
        go forward from ``startTime`` (= last ``openTime`` + 1).
        """
        symbol = venue_symbol(self.venue, coin)
        start_ms, end_ms = epoch_ms(start), epoch_ms(end)
        first, last = start_ms - MINUTE_MS + 1, end_ms - MINUTE_MS  # openTime of samples known in range
        points: list[tuple[int, float]] = []
        cost = weight_cost(kline_weight(KLINE_LIMIT))
        while first <= last:
            params = {"symbol": symbol, "interval": "1m", "startTime": first, "endTime": last, "limit": KLINE_LIMIT}
            page = parse_premium_klines(self.http.get(PREMIUM_KLINES, params, cost=cost))
            points.extend((open_ms + MINUTE_MS, close) for open_ms, close in page)
            if len(page) < KLINE_LIMIT:
                break
            if page[-1][0] < first:
                raise VenueError(f"{VENUE} {PREMIUM_KLINES}: page went backwards ({page[-1][0]} < {first})")
            first = page[-1][0] + 1
        return premium_frame(self.venue, coin, points, start_ms, end_ms)

    def funding_intervals(self) -> dict[str, float]:
        """``fundingInfo`` intervals by symbol (hours), re-read after :data:`FUNDING_INFO_TTL_S`."""
        if time.monotonic() >= self._intervals_expire:
            self._intervals = parse_funding_info(self.http.get(FUNDING_INFO))
            self._intervals_expire = time.monotonic() + FUNDING_INFO_TTL_S
        return self._intervals

    def current(self, coins: Sequence[str]) -> pl.DataFrame:
        """Predicted prints of the open windows, one per coin, from one all-symbols call."""
        intervals = self.funding_intervals()
        payload = self.http.get(PREMIUM_INDEX, cost=weight_cost(PREMIUM_INDEX_WEIGHT_ALL))
        frame = quote_prints(parse_premium_index(payload, intervals), coins, self.source)
        missing = set(coins) - set(frame["symbol"])
        if missing:
            raise VenueError(f"{VENUE} {PREMIUM_INDEX}: no funding for {', '.join(sorted(missing))}")
        return frame

    async def stream(
        self,
        coins: Sequence[str],
        *,
        ping_interval_s: float | None = PING_INTERVAL_S,
        stale_after_s: float = STALE_AFTER_S,
    ) -> AsyncIterator[pl.DataFrame]:
        """Predicted prints from ``<sym>@markPrice@1s``, one small frame per message with funding.

        Intervals come from ``fundingInfo`` (re-read every :data:`FUNDING_INFO_TTL_S`).
        The server's pings are answered by websockets; ``ping_interval_s`` paces the client's
        own pings, which drop a socket whose pong is that late (None: no client pings).
        Malformed frames are skipped and counted in ``skipped_frames``. Raises
        :class:`ConnectionError` when no frame arrives for ``stale_after_s`` and websockets'
        ``ConnectionClosed`` when the connection drops; reconnecting is the caller's job.
        """
        url = stream_url(self.ws_base, coins)
        intervals = await asyncio.to_thread(self.funding_intervals)
        async with connect(url, ping_interval=ping_interval_s, ping_timeout=ping_interval_s, max_size=2**22) as ws:
            while True:
                try:
                    message = await asyncio.wait_for(ws.recv(), stale_after_s)
                except TimeoutError:
                    raise ConnectionError(f"{self.venue} stream {url}: no frame for {stale_after_s} s") from None
                if time.monotonic() >= self._intervals_expire:
                    intervals = await asyncio.to_thread(self.funding_intervals)
                quotes = parse_mark_price(message, intervals)
                if quotes is None:
                    self.skipped_frames += 1
                    continue
                frame = quote_prints(quotes, coins, self.stream_source)
                if frame.height:
                    yield frame
