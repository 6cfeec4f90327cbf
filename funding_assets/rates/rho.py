"""Rho: fixed-rate futures on the funding of the perpetual venues, over HTTP.

**Legacy Rho** (Arbitrum, ``https://ds.rhoservice.com``), the data the seed notebook read:

- :data:`MARKETS_PATH` -- the market descriptors, a JSON array of the SDK's ``MarketInfo``:
  ``descriptor.id``, ``descriptor.sourceName`` (the underlying venue, ``Binance``),
  ``descriptor.instrumentName`` (``BTCUSDT``) and ``futures[]`` with ``id``, ``marketId``,
  ``termStart`` / ``termLength`` (``BigNumber`` seconds) and ``vAMMParams.currentFutureRate``
  (``BigNumber``, decimal APR x 1e18). This is the notebook's shape; the notebook took it
  from the SDK (``getActiveMarkets``, an on-chain read). **Which REST path serves it on
  ``ds.rhoservice.com`` is unverified** (only ``/api/v1/stats/volume`` is confirmed in
  public code): the simulator serves it at this path, and the real one is this one
  constant to change.
- :data:`CANDLES_PATH` ``?futureId=&from=&to=&interval=`` -- the future's implied fixed
  rate: ``from`` / ``to`` epoch seconds, inclusive bounds on candle open times; intervals
  :data:`INTERVALS`; at most :data:`CANDLE_LIMIT` candles a request, so a range is walked
  in steps of that many; a body with an ``error`` key is a failure (:class:`RatesError`
  naming the future and the range). Candles are a JSON array (or ``{"candles": [...]}``) of
  ``{timestamp (ISO-8601 UTC), open, high, low, close}`` with the rates as integers x 1e16
  (:func:`~funding_assets.rates.units.rho_candle_apr`).

**Rho X** (``https://x.rho.trading/api/v1``, the current exchange, Swagger "Rho Exchange
API"): ``GET /markets/{marketId}/floating-rate-candles?interval=&startTime=&endTime=&limit=``
(RFC 3339 times, ``limit`` <= 1000, intervals 1m..1d, every field a string) serves the
**floating** rate of a market's underlying -- the funding the futures settle against --
not the implied fixed rate: it fills ``underlying_apr`` (:meth:`RhoClient.floating_candles`),
joined onto the fixed-rate candles by the futures' ``marketId`` when a Rho X base URL is
given. The fixed rate of a Rho X future trades as a symbol (``/symbols/{symbol}/candles``);
it is not read here: the swagger gives no unit for its price strings and nothing ties Rho X
symbols to the legacy futures. The unit of the floating-rate strings is not documented
either (the swagger's examples are ``'0'``): they are read as annualised decimals unless
``floating_unit="percent"``.

Budgets: neither API publishes a request limit for these paths (Rho X answers 429 with
``X-RateLimit-*`` headers): :data:`BUDGET` is a conservative 5 requests a second.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import polars as pl

from ..clients.http import Budget, HttpClient
from ..errors import FundingInputError
from .paging import RatesError, error_message, get, records, term_range, windows
from .schema import (
    INTERVALS as CANDLE_SECONDS,
)
from .schema import (
    RHO,
    Market,
    candle_frame,
    check_interval,
    empty_candles,
    in_range,
    resolve_underlying,
)
from .units import (
    decimal_apr,
    from_unix_s,
    iso_utc,
    percent_apr,
    rfc3339,
    rho_candle_apr,
    rho_seconds,
    wad_apr,
)

RHO_URL = "https://ds.rhoservice.com"
RHOX_URL = "https://x.rho.trading/api/v1"
#: Market descriptors (the notebook's shape; the real legacy path is unverified, see above).
MARKETS_PATH = "/api/v1/market-data/markets"
CANDLES_PATH = "/api/v1/market-data/candles"
#: Rho X floating-rate candles of a market (``{marketId}`` is URL-quoted).
FLOATING_PATH = "/markets/{market_id}/floating-rate-candles"
INTERVALS = ("1m", "5m", "15m", "30m", "1h", "4h", "1d", "1w")
RHOX_INTERVALS = ("1m", "5m", "15m", "30m", "1h", "4h", "1d")
#: Candles a legacy candles request may span (more is an ``error`` body).
CANDLE_LIMIT = 350
#: Rho X ``limit`` maximum (and default).
RHOX_LIMIT = 1000
BUDGET = Budget(5, 1.0)
FLOATING_UNITS: dict[str, Callable[[Any], float]] = {"decimal": decimal_apr, "percent": percent_apr}
#: Time fields a legacy candle may carry its open time in, first found wins.
TIME_KEYS = ("timestamp", "time", "openTime", "startTime", "t")


def parse_markets(payload: Any) -> tuple[list[Market], int]:
    """Market descriptors -> their futures as :class:`Market` s, and the count of futures (or
    whole descriptors) that could not be read: an underlying on a venue this package does
    not know, a missing field. Sorted by venue, coin, maturity, id."""
    markets, skipped = [], 0
    for item in records(payload, ("markets", "data", "results")):
        try:
            descriptor = item["descriptor"]
            venue, coin, contract, name = resolve_underlying(descriptor["sourceName"], descriptor["instrumentName"])
            futures = item["futures"]
            if not isinstance(futures, list):
                raise ValueError("futures is not a list")
        except (KeyError, TypeError, ValueError):
            skipped += 1
            continue
        for future in futures:
            try:
                start = rho_seconds(future["termStart"])
                rate = (future.get("vAMMParams") or {}).get("currentFutureRate")
                markets.append(
                    Market(
                        provider=RHO,
                        market_id=str(future["id"]),
                        venue=venue,
                        symbol=coin,
                        contract=contract,
                        venue_symbol=name,
                        term_start=from_unix_s(start),
                        maturity=from_unix_s(start + rho_seconds(future["termLength"])),
                        implied_apr=None if rate is None else wad_apr(rate),
                        underlying_id=str(future.get("marketId") or descriptor["id"]),
                    )
                )
            except (KeyError, TypeError, ValueError, AttributeError):
                skipped += 1
    markets.sort(key=lambda m: (m.venue, m.symbol, m.maturity, m.market_id))
    return markets, skipped


def parse_candles(payload: Any) -> list[tuple[dt.datetime, float, float, float, float]]:
    """Legacy candles -> ``(open time, open, high, low, close)`` rows (annualised decimals).

    ``ValueError`` for a malformed body; an ``error`` body is the caller's to report."""
    out = []
    for row in records(payload, ("candles", "data", "results")):
        key = next((k for k in TIME_KEYS if k in row), None)
        if key is None:
            raise ValueError(f"candle without a time ({', '.join(TIME_KEYS)}): {str(row)[:200]}")
        out.append((iso_utc(row[key]), *(rho_candle_apr(row[k]) for k in ("open", "high", "low", "close"))))
    return out


def parse_floating_candles(payload: Any, to_apr: Callable[[Any], float] = decimal_apr) -> list[tuple]:
    """Rho X ``floating-rate-candles`` -> ``(openTime, open, high, low, close)`` rows."""
    if not isinstance(payload, dict) or not isinstance(payload.get("candles"), list):
        raise ValueError(f"expected {{'candles': [...]}}, got {str(payload)[:200]}")
    return [
        (iso_utc(row["openTime"]), *(to_apr(row[k]) for k in ("openPrice", "highPrice", "lowPrice", "closePrice")))
        for row in payload["candles"]
    ]


class RhoClient:
    """Rho market data: descriptors and implied fixed-rate candles (legacy), and floating-rate
    candles (Rho X) when ``floating_url`` is given. See the module docstring for units."""

    provider = RHO

    def __init__(
        self,
        base_url: str = RHO_URL,
        *,
        http: HttpClient | None = None,
        floating_url: str | None = None,
        floating_http: HttpClient | None = None,
        floating_unit: str = "decimal",
        source_label: str | None = None,
    ) -> None:
        if floating_unit not in FLOATING_UNITS:
            raise FundingInputError(f"floating_unit: {floating_unit!r} is not one of {', '.join(FLOATING_UNITS)}")
        self.http = http or HttpClient(RHO, base_url, BUDGET)
        if floating_http is None and floating_url is not None:
            floating_http = HttpClient(RHO, floating_url, BUDGET)
        self.floating_http = floating_http
        self.to_floating_apr = FLOATING_UNITS[floating_unit]
        self.source = source_label or RHO
        #: Futures (or whole descriptors) of the last :meth:`markets` call that could not be read.
        self.skipped_markets = 0

    def close(self) -> None:
        self.http.close()
        if self.floating_http is not None:
            self.floating_http.close()

    def __enter__(self) -> RhoClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def markets(self) -> list[Market]:
        """Every future the descriptors list (implied APR at the time of the call)."""
        payload = get(self.http, MARKETS_PATH, None, f"{RHO} market descriptors")
        error = error_message(payload)
        if error is not None:
            raise RatesError(f"{RHO} market descriptors ({MARKETS_PATH}): {error}")
        try:
            markets, self.skipped_markets = parse_markets(payload)
        except ValueError as exc:
            raise RatesError(f"{RHO} market descriptors ({MARKETS_PATH}): {exc}") from None
        return markets

    def candles(self, market: Market, start: dt.datetime, end: dt.datetime, interval: str = "1h") -> pl.DataFrame:
        """The future's implied fixed-rate candles opening in ``[start, end)`` (naive UTC), as
        :data:`~funding_assets.rates.schema.CANDLE_SCHEMA`, with ``underlying_apr`` from
        Rho X floating-rate candles when configured (and the interval is one Rho X has)."""
        check_interval(interval, INTERVALS, f"{RHO} candles")
        rows = []
        for lo, hi in windows(
            *term_range(start, end, market.term_start, market.maturity, interval), interval, CANDLE_LIMIT
        ):
            params = {"futureId": market.market_id, "from": lo, "to": hi - 1, "interval": interval}
            what = (
                f"{RHO} candles of future {market.market_id} ({market.venue} {market.venue_symbol}, {interval}) "
                f"for {from_unix_s(lo):%Y-%m-%d %H:%M} .. {from_unix_s(hi - 1):%Y-%m-%d %H:%M:%S} UTC"
            )
            payload = get(self.http, CANDLES_PATH, params, what)
            error = error_message(payload)
            if error is not None:
                raise RatesError(f"{what}: {error}")
            try:
                rows.extend(parse_candles(payload))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise RatesError(f"{what}: malformed candles ({exc})") from None
        floating = {}
        if self.floating_http is not None and market.underlying_id and interval in RHOX_INTERVALS and rows:
            # only the candles' own span: the floating rate of a candle does not depend on the range asked
            first, last = min(r[0] for r in rows), max(r[0] for r in rows)
            span_end = min(end, last + dt.timedelta(seconds=CANDLE_SECONDS[interval]))
            got = self.floating_candles(market.underlying_id, max(start, first), span_end, interval)
            floating = dict(zip(got["ts"].to_list(), got["close"].to_list()))
        frame = candle_frame(market, interval, [(*r, floating.get(r[0])) for r in rows], self.source)
        return in_range(frame, start, end) if frame.height else empty_candles()

    def floating_candles(
        self, market_id: str, start: dt.datetime, end: dt.datetime, interval: str = "1h"
    ) -> pl.DataFrame:
        """Rho X floating-rate candles of a market opening in ``[start, end)``: columns ``ts``,
        ``open``, ``high``, ``low``, ``close`` (annualised decimals), sorted, one per ``ts``."""
        if self.floating_http is None:
            raise FundingInputError(f"{RHO}: no Rho X base URL was given (floating_url)")
        check_interval(interval, RHOX_INTERVALS, f"{RHO} X floating-rate candles")
        path = FLOATING_PATH.format(market_id=quote(str(market_id), safe=""))
        rows = []
        for lo, hi in windows(start, end, interval, RHOX_LIMIT):
            lo_t, hi_t = from_unix_s(lo), from_unix_s(hi - 1)  # whichever way endTime is bounded
            params = {"interval": interval, "startTime": rfc3339(lo_t), "endTime": rfc3339(hi_t), "limit": RHOX_LIMIT}
            what = f"{RHO} X floating-rate candles of market {market_id} ({interval}) for {lo_t} .. {hi_t} UTC"
            payload = get(self.floating_http, path, params, what)
            try:
                rows.extend(parse_floating_candles(payload, self.to_floating_apr))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise RatesError(f"{what}: malformed candles ({exc})") from None
        schema = {"ts": pl.Datetime("ms"), **{c: pl.Float64 for c in ("open", "high", "low", "close")}}
        frame = pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
        return in_range(frame.unique("ts", keep="first", maintain_order=True).sort("ts"), start, end)
