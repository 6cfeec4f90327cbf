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

COIN-M (inverse ``BTCUSD_PERP``) is the same protocol under ``/dapi`` on its own hosts
(``dapi.binance.com``, stream ``wss://dstream.binance.com/stream?streams=``, not routed):
``/dapi/v1/fundingRate`` (``symbol`` required), ``/dapi/v1/premiumIndex`` (always an array),
``/dapi/v1/premiumIndexKlines``, ``/dapi/v1/fundingInfo``. An inverse instrument is routed there.

Instruments: ``/fapi/v1/exchangeInfo`` and ``/dapi/v1/exchangeInfo`` (``contractType``
``PERPETUAL``; ``status`` / COIN-M ``contractStatus`` ``TRADING``, or ``SETTLING`` / ``CLOSE``
for a delisted one whose ``deliveryDate`` is its delisting; ``onboardDate``; ``marginAsset``),
caps and intervals from both ``fundingInfo`` (``adjustedFundingRateCap`` / ``Floor``, decimal
strings per interval; an unlisted symbol has 8 h and the venue's default cap), 24 h volume
from ``/fapi/v1/ticker/24hr`` ``quoteVolume`` and ``/dapi/v1/ticker/24hr`` ``volume``
(contracts) x ``contractSize`` (USD a contract). Open interest takes a call per symbol and
is not read.

Budgets (``SPEC.budgets``): ``fundingRate`` and ``fundingInfo`` share their own bucket of 500
requests per 5 min per IP (:data:`HISTORY`); everything else draws its weight from the 2400
weight/min bucket (:data:`WEIGHT`): ``premiumIndex`` 10 (1 with a symbol),
``premiumIndexKlines`` 1 to 10 by ``limit``, ``exchangeInfo`` 1, all-symbol tickers 40.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from decimal import Decimal, InvalidOperation
from operator import itemgetter
from typing import Any

import orjson
import polars as pl
from websockets.asyncio.client import connect

from ..instruments import Instrument
from ..prints import PREDICTED
from ..venues import INVERSE, USDC, USDT, spec
from ..venues.binance import HISTORY, WEIGHT
from . import (
    KNOWN_INTERVALS,
    MINUTE_MS,
    WS_COMPRESSION,
    VenueClient,
    check_print,
    checked,
    epoch_ms,
    instruments_of,
    merge_streams,
    ms_datetime,
    named_perpetual,
    number,
    parse_burst,
    parse_rows,
    premium_frame,
    prints_frame,
    recv_burst,
    settled_rows,
    stream_frame,
    tagged,
)
from .http import HttpClient, VenueError, page_json

VENUE = "binance"
SPEC = spec(VENUE)
FUNDING_RATE = "/fapi/v1/fundingRate"
PREMIUM_INDEX = "/fapi/v1/premiumIndex"
FUNDING_INFO = "/fapi/v1/fundingInfo"
PREMIUM_KLINES = "/fapi/v1/premiumIndexKlines"
EXCHANGE_INFO = "/fapi/v1/exchangeInfo"
TICKER_24H = "/fapi/v1/ticker/24hr"
STREAM_PATH = "/market/stream"
#: COIN-M (inverse) counterparts, same shapes.
COIN_M_FUNDING_RATE = "/dapi/v1/fundingRate"
COIN_M_PREMIUM_INDEX = "/dapi/v1/premiumIndex"
COIN_M_FUNDING_INFO = "/dapi/v1/fundingInfo"
COIN_M_PREMIUM_KLINES = "/dapi/v1/premiumIndexKlines"
COIN_M_EXCHANGE_INFO = "/dapi/v1/exchangeInfo"
COIN_M_TICKER_24H = "/dapi/v1/ticker/24hr"
COIN_M_STREAM_PATH = "/stream"
#: The COIN-M hosts of the real venue's USD-M hosts; any other base (the simulator) serves both.
COIN_M_HOSTS = {"fapi.binance.com": "dapi.binance.com", "fstream.binance.com": "dstream.binance.com"}

PREMIUM_INDEX_WEIGHT_ALL = 10
PREMIUM_INDEX_WEIGHT_ONE = 1
EXCHANGE_INFO_WEIGHT = 1
TICKER_24H_WEIGHT_ALL = 40

PAGE_LIMIT = SPEC.history_page  # fundingRate's maximum
KLINE_LIMIT = 1500  # premiumIndexKlines' maximum
HOUR_MS = 3_600_000
#: History fetched around the asked range so the gap before its first settlement and after
#: its last is known (up to three missing 8 h settlements in a row).
LOOKBACK_MS = 72 * HOUR_MS
LOOKAHEAD_MS = 72 * HOUR_MS
#: fundingInfo changes within ~15 min of an interval switch; re-read it after this long.
FUNDING_INFO_TTL_S = 60.0
DEFAULT_HOURS = SPEC.default_interval_hours
#: Binance's interest component per hour of interval (0.01 % per 8 h).
INTEREST_PER_HOUR = Decimal("0.0000125")
#: A markPrice@1s stream pushes every second: this long without a frame is a dead stream.
STALE_AFTER_S = 30.0
#: Client pings (the server pings every 3 min; an unsolicited ping doubles as a check of the
#: socket, answered or the connection is dropped after the same delay).
PING_INTERVAL_S = SPEC.ping_interval_s
#: Statuses of a listed perpetual: trading, or delisted (``deliveryDate`` = its delisting).
TRADING = "TRADING"
DELISTED = ("SETTLING", "CLOSE")
QUOTES = {"USDT": USDT, "USDC": USDC}


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


def parse_funding_history(payload: Any, symbol: str, path: str = FUNDING_RATE) -> list[tuple[int, float]]:
    """``fundingRate`` rows of ``symbol`` -> ``(fundingTime ms as stamped, rate per interval)``.

    ``markPrice`` (absent or ``""`` on old rows) and ``rateType`` are not needed. A row of
    another symbol is a :class:`VenueError`: dropping it could lose a settlement unnoticed.
    """
    if not isinstance(payload, list):
        raise VenueError(f"{VENUE} {path}: expected a list, got {str(payload)[:200]}")
    points = []
    for row in payload:
        try:
            if row["symbol"] != symbol:
                raise ValueError(f"symbol {row['symbol']!r}, asked for {symbol}")
            point = _ms(row["fundingTime"]), _rate(row["fundingRate"])
            check_print(point[1], point[:1])
        except (KeyError, TypeError, ValueError) as exc:
            raise VenueError(f"{VENUE} {path}: malformed row {str(row)[:200]} ({exc})") from None
        points.append(point)
    return points


def parse_premium_klines(payload: Any) -> tuple[list[int], list[float]]:
    """``premiumIndexKlines`` candles -> ``(openTime ms, close)`` columns, as sent (ascending).

    ``openTime`` must be a JSON integer and ``close`` a decimal string (:func:`_ms`,
    :func:`_rate`), checked column by column."""
    if not isinstance(payload, list):
        raise VenueError(f"{VENUE} {PREMIUM_KLINES}: expected a list, got {str(payload)[:200]}")
    try:
        times, closes = list(map(itemgetter(0), payload)), list(map(itemgetter(4), payload))
        if not set(map(type, times)) <= {int}:
            _ms(next(t for t in times if type(t) is not int))
        if not set(map(type, closes)) <= {str}:
            _rate(next(c for c in closes if type(c) is not str))
        return times, list(map(float, closes))  # float("") is a ValueError, as _rate's
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


def parse_funding_caps(payload: Any) -> tuple[dict[str, tuple[float, float, float]], int]:
    """``fundingInfo`` -> ``{symbol: (cap, floor, interval hours)}`` (caps decimal fractions
    per interval) and the number of rows that could not be read (skipped)."""
    rows = payload if isinstance(payload, list) else []
    caps: dict[str, tuple[float, float, float]] = {}
    skipped = 0 if isinstance(payload, list) else 1
    for row in rows:
        try:
            hours = number(row["fundingIntervalHours"])
            if hours not in KNOWN_INTERVALS:
                raise ValueError(f"interval {hours} h")
            caps[row["symbol"]] = (
                _rate(row["adjustedFundingRateCap"]),
                _rate(row["adjustedFundingRateFloor"]),
                hours,
            )
        except (KeyError, TypeError, ValueError):
            skipped += 1
    return caps, skipped


def parse_ticker_volumes(payload: Any, field: str) -> dict[str, float]:
    """24 h tickers (the all-symbols array) -> ``{symbol: float(row[field])}``; rows without
    a readable figure are left out (the instrument is then unranked, not lost)."""
    volumes = {}
    for row in payload if isinstance(payload, list) else []:
        try:
            volumes[row["symbol"]] = _rate(row[field])
        except (KeyError, TypeError, ValueError):
            continue
    return volumes


def parse_exchange_info(
    payload: Any,
    *,
    coin_margined: bool,
    caps: Mapping[str, tuple[float, float, float]],
    volumes: Mapping[str, float],
) -> tuple[list[Instrument], int]:
    """``exchangeInfo`` (USD-M or COIN-M) -> its perpetuals and the count of unreadable rows.

    Kept: ``contractType`` ``PERPETUAL`` with status ``TRADING`` (listed) or ``SETTLING`` /
    ``CLOSE`` (delisted at ``deliveryDate``); other contract types and statuses (dated
    futures, pending listings) are not perpetuals trading or traded, and are left out.
    USD-M contracts by ``quoteAsset`` (USDT / USDC), COIN-M ones are inverse. ``caps``:
    :func:`parse_funding_caps` (absent: 8 h and the venue's default cap); ``volumes``: 24 h
    volume, quote units for USD-M, contracts for COIN-M (USD = contracts x ``contractSize``).
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("symbols"), list):
        raise VenueError(f"{VENUE} exchangeInfo: expected an object with symbols, got {str(payload)[:200]}")

    def one(row: dict) -> Instrument | None:
        if row["contractType"] != "PERPETUAL":
            return None
        status = row["contractStatus" if coin_margined else "status"]
        if status != TRADING and status not in DELISTED:
            return None
        symbol = row["symbol"]
        named = named_perpetual(VENUE, symbol)
        contract = INVERSE if coin_margined else QUOTES.get(row["quoteAsset"])
        if contract != named.contract:
            raise ValueError(f"{symbol}: quote {row.get('quoteAsset')!r} is not its contract {named.contract}")
        cap, floor, hours = caps.get(symbol, (SPEC.rate_cap, -SPEC.rate_cap, DEFAULT_HOURS))
        volume = volumes.get(symbol)
        if volume is not None and coin_margined:
            volume *= number(row["contractSize"])
        return Instrument(
            venue=VENUE,
            symbol=named.coin,
            contract=named.contract,
            venue_symbol=symbol,
            multiplier=named.multiplier,
            settle=row["marginAsset"],
            listed_at=ms_datetime(row["onboardDate"]),
            delisted_at=ms_datetime(row["deliveryDate"]) if status in DELISTED else None,
            interval_hours=hours,
            rate_cap=cap,
            rate_floor=floor,
            volume_usd=volume,
        )

    what = COIN_M_EXCHANGE_INFO if coin_margined else EXCHANGE_INFO
    return parse_rows(VENUE, payload["symbols"], one, what)


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
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
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


def quote_prints(quotes: list[dict], wanted: Mapping[str, Instrument], source: str) -> pl.DataFrame:
    """Quotes of the wanted instruments (by venue symbol) as a print-model frame (others dropped)."""
    rows = [tagged(q, wanted[q["symbol"]]) for q in quotes if q["symbol"] in wanted]
    return prints_frame(rows, VENUE, source)


def stream_url(ws_base: str, coins: Sequence[str | Instrument], path: str = STREAM_PATH) -> str:
    """The combined-stream URL of the instruments' ``@markPrice@1s``: ``/market/stream`` (the
    routed USD-M path) or, for COIN-M, ``/stream``."""
    streams = "/".join(f"{name.lower()}@markPrice@1s" for name in instruments_of(VENUE, coins))
    return f"{ws_base.rstrip('/')}{path}?streams={streams}"


def coin_m_url(base: str) -> str:
    """The COIN-M host of a USD-M base URL (the real venue's), or the base itself (the simulator)."""
    for usd_m, coin_m in COIN_M_HOSTS.items():
        if usd_m in base:
            return base.replace(usd_m, coin_m)
    return base


class Client(VenueClient):
    """Binance USD-M (``BTCUSDT``, ``BTCUSDC``) and COIN-M (``BTCUSD_PERP``) perpetuals; see the
    module docstring for the protocol. ``coin_m_rest_url`` / ``coin_m_ws_url``: the COIN-M
    bases (default :func:`coin_m_url` of the USD-M ones)."""

    venue = VENUE
    rest_url = SPEC.rest_url
    ws_url = SPEC.ws_url

    def __init__(
        self,
        rest_url: str | None = None,
        ws_url: str | None = None,
        *,
        http: HttpClient | None = None,
        source_label: str | None = None,
        coin_m_rest_url: str | None = None,
        coin_m_ws_url: str | None = None,
    ) -> None:
        super().__init__(rest_url, ws_url, http=http, source_label=source_label)
        self.coin_m_rest = coin_m_rest_url or coin_m_url(self.rest_base)
        self.coin_m_ws = coin_m_ws_url or coin_m_url(self.ws_base)
        self._coin_m_http: HttpClient | None = None
        self.skipped_frames = 0
        self._intervals: dict[str, float] = {}
        self._intervals_expire = 0.0
        self._coin_m_intervals: dict[str, float] = {}
        self._coin_m_intervals_expire = 0.0

    @property
    def coin_m_http(self) -> HttpClient:
        """The COIN-M REST client: the USD-M one when both share a base (the simulator), else
        one of its own on the same budgets (COIN-M's hosts count their own)."""
        if self.coin_m_rest.rstrip("/") == self.http.base_url:
            return self.http
        if self._coin_m_http is None:
            self._coin_m_http = HttpClient(VENUE, self.coin_m_rest, self.http.budgets)
        return self._coin_m_http

    def close(self) -> None:
        super().close()
        if self._coin_m_http is not None:
            self._coin_m_http.close()

    def _rest(self, inst: Instrument) -> tuple[HttpClient, bool]:
        """(REST client, is COIN-M) of an instrument: inverse contracts live on ``/dapi``."""
        coin_m = inst.contract == INVERSE
        return (self.coin_m_http if coin_m else self.http), coin_m

    # instruments ---------------------------------------------------------------------------

    def instruments(self) -> list[Instrument]:
        """Every USD-M and COIN-M perpetual (trading, or delisted but still listed).

        Calls ``/fapi/v1/exchangeInfo``, ``/fapi/v1/fundingInfo``, ``/fapi/v1/ticker/24hr``
        and their ``/dapi`` counterparts: six requests, no per-symbol calls.
        """
        found: list[Instrument] = []
        skipped = 0
        families = (
            (self.http, False, EXCHANGE_INFO, FUNDING_INFO, TICKER_24H, "quoteVolume"),
            (self.coin_m_http, True, COIN_M_EXCHANGE_INFO, COIN_M_FUNDING_INFO, COIN_M_TICKER_24H, "volume"),
        )
        for http, coin_margined, info_path, caps_path, ticker_path, volume_field in families:
            caps, bad_caps = parse_funding_caps(http.get(caps_path, bucket=HISTORY))
            tickers = http.get(ticker_path, cost=TICKER_24H_WEIGHT_ALL, bucket=WEIGHT)
            volumes = parse_ticker_volumes(tickers, volume_field)
            info = http.get(info_path, cost=EXCHANGE_INFO_WEIGHT, bucket=WEIGHT)
            listed, bad = parse_exchange_info(info, coin_margined=coin_margined, caps=caps, volumes=volumes)
            found += listed
            skipped += bad + bad_caps
        self.skipped_instruments = skipped
        return found

    # settled -------------------------------------------------------------------------------

    def settled(self, coin: str | Instrument, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        """Realised prints with ``funding_time`` in ``[start, end]`` (naive UTC), one per settlement.

        History from ``LOOKBACK_MS`` before to ``LOOKAHEAD_MS`` after the range is read so
        every row's interval comes from its real neighbours, then trimmed. An inverse
        instrument reads ``/dapi/v1/fundingRate``.
        """
        inst = self._instrument(coin)
        start_ms, end_ms = epoch_ms(start), epoch_ms(end)
        points = self._history(inst, start_ms - LOOKBACK_MS, end_ms + LOOKAHEAD_MS)
        rows = [
            r
            for r in settled_rows(inst.symbol, points, self._interval(inst))
            if start_ms <= r["funding_time_ms"] <= end_ms
        ]
        return prints_frame(rows, self.venue, self.source, inst)

    def _history(self, inst: Instrument, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
        """Every ``(fundingTime, rate)`` with fundingTime in ``[start_ms, end_ms]``, paging forward."""
        http, coin_m = self._rest(inst)
        path = COIN_M_FUNDING_RATE if coin_m else FUNDING_RATE
        symbol = inst.venue_symbol
        points: list[tuple[int, float]] = []
        while start_ms <= end_ms:
            params = {"symbol": symbol, "startTime": start_ms, "endTime": end_ms, "limit": PAGE_LIMIT}
            page = parse_funding_history(http.get(path, params, bucket=HISTORY), symbol, path)
            points.extend(page)
            if len(page) < PAGE_LIMIT:
                break
            start_ms = max(ts for ts, _ in page) + 1
        return points

    def premium_history(self, coin: str | Instrument, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        """Per-minute premium samples known in ``(start, end]`` (naive UTC), in :data:`PREMIUM_SCHEMA`.

        One 1-minute candle per sample: ``ts`` = ``openTime + 1 min`` (the minute's end, when
        the sample is known), ``premium`` = its ``close`` (decimal fraction). Pages of 1500
        go forward from ``startTime`` (= last ``openTime`` + 1). An inverse instrument reads
        ``/dapi/v1/premiumIndexKlines``.
        """
        inst = self._instrument(coin)
        http, coin_m = self._rest(inst)
        path = COIN_M_PREMIUM_KLINES if coin_m else PREMIUM_KLINES
        start_ms, end_ms = epoch_ms(start), epoch_ms(end)
        first, last = start_ms - MINUTE_MS + 1, end_ms - MINUTE_MS  # openTime of samples known in range
        times: list[int] = []
        premiums: list[float] = []
        cost = kline_weight(KLINE_LIMIT)
        while first <= last:
            params = {
                "symbol": inst.venue_symbol,
                "interval": "1m",
                "startTime": first,
                "endTime": last,
                "limit": KLINE_LIMIT,
            }
            opens, closes = parse_premium_klines(http.get(path, params, cost=cost, bucket=WEIGHT, decode=page_json))
            times += opens
            premiums += closes
            if len(opens) < KLINE_LIMIT:
                break
            if opens[-1] < first:
                raise VenueError(f"{VENUE} {path}: page went backwards ({opens[-1]} < {first})")
            first = opens[-1] + 1
        known = pl.Series(times, dtype=pl.Int64) + MINUTE_MS  # a sample is known at its minute's end
        return premium_frame(self.venue, inst, known, premiums, start_ms, end_ms)

    # live ----------------------------------------------------------------------------------

    def funding_intervals(self, coin_m: bool = False) -> dict[str, float]:
        """``fundingInfo`` intervals by symbol (hours), re-read after :data:`FUNDING_INFO_TTL_S`;
        ``coin_m``: COIN-M's (``/dapi/v1/fundingInfo``)."""
        now = time.monotonic()
        if coin_m:
            if now >= self._coin_m_intervals_expire:
                self._coin_m_intervals = parse_funding_info(self.coin_m_http.get(COIN_M_FUNDING_INFO, bucket=HISTORY))
                self._coin_m_intervals_expire = now + FUNDING_INFO_TTL_S
            return self._coin_m_intervals
        if now >= self._intervals_expire:
            self._intervals = parse_funding_info(self.http.get(FUNDING_INFO, bucket=HISTORY))
            self._intervals_expire = now + FUNDING_INFO_TTL_S
        return self._intervals

    def _expired(self, coin_m: bool) -> bool:
        return time.monotonic() >= (self._coin_m_intervals_expire if coin_m else self._intervals_expire)

    @staticmethod
    def _families(wanted: Mapping[str, Instrument]) -> dict[bool, dict[str, Instrument]]:
        """Wanted instruments split by family: ``{is COIN-M: {venue symbol: instrument}}``."""
        out: dict[bool, dict[str, Instrument]] = {}
        for name, inst in wanted.items():
            out.setdefault(inst.contract == INVERSE, {})[name] = inst
        return out

    def current(self, coins: Sequence[str | Instrument]) -> pl.DataFrame:
        """Predicted prints of the open windows, one per instrument, from one all-symbols
        ``premiumIndex`` call per family (USD-M, and COIN-M if an inverse one is asked)."""
        wanted = instruments_of(VENUE, coins)
        frames = []
        for coin_m, family in sorted(self._families(wanted).items()):
            intervals = self.funding_intervals(coin_m)
            http = self.coin_m_http if coin_m else self.http
            path = COIN_M_PREMIUM_INDEX if coin_m else PREMIUM_INDEX
            payload = http.get(path, cost=PREMIUM_INDEX_WEIGHT_ALL, bucket=WEIGHT)
            frames.append(quote_prints(parse_premium_index(payload, intervals), family, self.source))
        frame = pl.concat(frames) if frames else prints_frame([], VENUE, self.source)
        missing = set(wanted) - set(frame["venue_symbol"])
        if missing:
            raise VenueError(f"{VENUE} {PREMIUM_INDEX}: no funding for {', '.join(sorted(missing))}")
        return frame

    async def stream(
        self,
        coins: Sequence[str | Instrument],
        *,
        ping_interval_s: float | None = PING_INTERVAL_S,
        stale_after_s: float = STALE_AFTER_S,
    ) -> AsyncIterator[pl.DataFrame]:
        """Predicted prints from ``<sym>@markPrice@1s``, one frame per message with funding, or
        per burst of such messages received together (in arrival order).

        USD-M instruments on the routed ``/market/stream`` of ``fstream``, inverse ones on
        COIN-M's ``/stream`` of ``dstream`` (a second connection, merged). Intervals come
        from ``fundingInfo`` (re-read every :data:`FUNDING_INFO_TTL_S`). The server's pings
        are answered by websockets; ``ping_interval_s`` paces the client's own pings, which
        drop a socket whose pong is that late (None: no client pings). Malformed frames are
        skipped and counted in ``skipped_frames``. Raises :class:`ConnectionError` when no
        frame arrives for ``stale_after_s`` and websockets' ``ConnectionClosed`` when the
        connection drops; reconnecting is the caller's job.
        """
        families = self._families(instruments_of(VENUE, coins))
        streams = [
            self._stream_family(family, coin_m, ping_interval_s, stale_after_s)
            for coin_m, family in sorted(families.items())
        ]
        async with aclosing(merge_streams(*streams)) as merged:
            async for frame in merged:
                yield frame

    async def _stream_family(
        self, wanted: dict[str, Instrument], coin_m: bool, ping_interval_s: float | None, stale_after_s: float
    ) -> AsyncIterator[pl.DataFrame]:
        base, path = (self.coin_m_ws, COIN_M_STREAM_PATH) if coin_m else (self.ws_base, STREAM_PATH)
        url = stream_url(base, list(wanted.values()), path)
        intervals = await asyncio.to_thread(self.funding_intervals, coin_m)
        async with connect(
            url,
            ping_interval=ping_interval_s,
            ping_timeout=ping_interval_s,
            max_size=2**22,
            compression=WS_COMPRESSION,
        ) as ws:
            while True:
                try:
                    messages = await recv_burst(ws, stale_after_s)
                except TimeoutError:
                    raise ConnectionError(f"{self.venue} stream {url}: no frame for {stale_after_s} s") from None
                if self._expired(coin_m):
                    intervals = await asyncio.to_thread(self.funding_intervals, coin_m)
                rows, error = parse_burst(
                    messages, functools.partial(self._stream_rows, intervals=intervals, wanted=wanted)
                )
                if rows:
                    yield stream_frame(rows, VENUE, self.stream_source)
                if error is not None:
                    raise error

    def _stream_rows(
        self, message: str | bytes, intervals: Mapping[str, float], wanted: dict[str, Instrument]
    ) -> list[dict]:
        """The print rows of one stream message of the ``wanted`` instruments (counted in
        ``stream_messages`` when it has some); none for replies and (counted) junk."""
        quotes = parse_mark_price(message, intervals)
        if quotes is None:
            self.skipped_frames += 1
            return []
        mine = [tagged(q, wanted[q["symbol"]]) for q in quotes if q["symbol"] in wanted]
        self.stream_messages += bool(mine)
        return mine
