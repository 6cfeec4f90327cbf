"""Pendle Boros: funding-rate swaps on the perpetual venues' funding, over HTTP.

Open API (``https://api.boros.finance``, public, no key; Swagger at ``/open-api/docs``):

- ``GET /open-api/v1/markets?skip=&limit=`` -- ``limit`` at most :data:`PAGE_LIMIT`, so the
  list is read page by page (``skip`` += rows) until ``total`` is reached or a page comes
  back short. Body ``{"results": [...], "total", "skip"}``. A market: ``marketId``,
  ``imData.symbol`` and ``imData.maturity`` (unix s; ``maturity`` at the top level in the
  pre-launch doc example), ``metadata.platformName`` (the underlying venue, ``Binance``),
  ``metadata.name`` (its instrument, ``BTCUSDT``) or ``metadata.assetSymbol`` (the coin),
  ``data.markApr`` / ``midApr`` / ``lastTradedApr`` / ``impliedApr`` (implied fixed APR) and
  ``data.floatingApr`` (the underlying's funding, annualised). No term start is listed:
  :attr:`~funding_assets.rates.schema.Market.term_start` is None.
- ``GET /open-api/v1/markets/chart?marketId=&timeFrame=&startTimestamp=&endTimestamp=`` --
  ``timeFrame`` one of :data:`INTERVALS`, bounds unix seconds. Body ``{"results": [...]}``
  (also read: ``{"chart": [...]}``, ``{"data": [...]}``, a bare array). A candle: ``ts``
  (or ``t``) unix s, ``o/h/l/c`` the implied APR (``c`` falling back to ``i``, the implied
  APR, or ``mr``, the mark rate), ``u`` (or ``ofr``, the oracle floating rate) the
  underlying APR, ``v`` volume. A candle with no rate at all (null close, no ``i``/``mr``)
  is skipped and counted (:attr:`BorosClient.skipped_candles`). How many candles one
  request may return is not documented: a range is asked :data:`CHART_STEP` candles at a time.

Units: every APR is an annualised decimal (0.07 = 7 % APR); every time unix seconds. Boros
settles every 8 h (``fIndexCfg.paymentPeriod`` 28 800 s).

The legacy ``/open-api`` mount is announced to close on 2026-06-20 in favour of
``https://api-boros.pendle.finance/apis/v1/markets`` and ``/apis/v1/markets/ohlcv``
(docs.pendle.finance "API Migration"); the paths are the constants below. No request
budget is published for these paths: :data:`BUDGET` is a conservative 10 requests a second.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from ..clients.http import Budget, HttpClient
from .paging import RatesError, error_message, get, records, term_range, windows
from .schema import BOROS, Market, candle_frame, check_interval, empty_candles, in_range, resolve_underlying
from .units import decimal_apr, from_unix_s, unix_seconds

BOROS_URL = "https://api.boros.finance"
MARKETS_PATH = "/open-api/v1/markets"
CHART_PATH = "/open-api/v1/markets/chart"
PAGE_LIMIT = 100
INTERVALS = ("5m", "1h", "1d", "1w")
CHART_STEP = 500
PAYMENT_PERIOD_HOURS = 8
BUDGET = Budget(10, 1.0)
#: Where a market's implied APR is read, first present wins.
IMPLIED_KEYS = ("markApr", "midApr", "impliedApr", "lastTradedApr")
#: A page count no listing reaches: past it the server is paging in circles.
MAX_PAGES = 1000


def _first(row: dict, keys: tuple[str, ...]) -> Any:
    return next((row[k] for k in keys if row.get(k) is not None), None)


def parse_market(row: dict) -> Market:
    """One market of ``/markets`` (or the doc example's single market) -> :class:`Market`."""
    im = row.get("imData") or {}
    meta = row.get("metadata") or {}
    data = row.get("data") or {}
    maturity = im.get("maturity", row.get("maturity"))
    platform = meta["platformName"]
    found = None
    for name in (meta.get("name"), im.get("symbol")):
        try:
            found = resolve_underlying(platform, name)
            break
        except ValueError:
            continue
    venue, coin, contract, venue_symbol = found or resolve_underlying(platform, None, meta.get("assetSymbol"))
    implied = _first(data, IMPLIED_KEYS)
    market_id = row["marketId"]
    if isinstance(market_id, bool) or not isinstance(market_id, (int, str)) or not str(market_id).strip():
        raise ValueError(f"marketId {market_id!r}")
    return Market(
        provider=BOROS,
        market_id=str(market_id).strip(),
        venue=venue,
        symbol=coin,
        contract=contract,
        venue_symbol=venue_symbol,
        term_start=None,
        maturity=unix_seconds(maturity),
        implied_apr=None if implied is None else decimal_apr(implied),
    )


def parse_chart(payload: Any) -> tuple[list[tuple], int]:
    """Chart candles -> ``(ts, open, high, low, close, underlying)`` rows (annualised decimals,
    ``underlying`` None when absent) and the count of candles without any rate (skipped)."""
    rows, skipped = [], 0
    for row in records(payload, ("results", "chart", "data")):
        close = _first(row, ("c", "i", "mr"))
        if close is None:
            skipped += 1
            continue
        close = decimal_apr(close)
        o, h, lo = (close if row.get(k) is None else decimal_apr(row[k]) for k in ("o", "h", "l"))
        underlying = _first(row, ("u", "ofr"))
        ts = row["ts"] if row.get("ts") is not None else row["t"]
        rows.append((unix_seconds(ts), o, h, lo, close, None if underlying is None else decimal_apr(underlying)))
    return rows, skipped


class BorosClient:
    """Boros markets and implied-APR charts (see the module docstring)."""

    provider = BOROS

    def __init__(
        self,
        base_url: str = BOROS_URL,
        *,
        http: HttpClient | None = None,
        page_size: int = PAGE_LIMIT,
        source_label: str | None = None,
    ) -> None:
        if not 1 <= page_size <= PAGE_LIMIT:
            raise ValueError(f"page_size {page_size} is not in 1..{PAGE_LIMIT}")
        self.http = http or HttpClient(BOROS, base_url, BUDGET)
        self.page_size = page_size
        self.source = source_label or BOROS
        #: Markets of the last :meth:`markets` call that could not be read (skipped).
        self.skipped_markets = 0
        #: Candles without any rate met by :meth:`candles` so far (skipped).
        self.skipped_candles = 0

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> BorosClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def markets(self) -> list[Market]:
        """Every market the listing holds, all pages, by venue, coin, maturity and id."""
        found: dict[str, Market] = {}
        skipped, skip = 0, 0
        for _ in range(MAX_PAGES):
            what = f"{BOROS} markets (skip={skip}, limit={self.page_size})"
            payload = get(self.http, MARKETS_PATH, {"skip": skip, "limit": self.page_size}, what)
            try:
                rows = records(payload, ("results", "markets", "data"))
                total = payload.get("total") if isinstance(payload, dict) else None
                total = None if total is None else int(total)
            except (TypeError, ValueError) as exc:
                raise RatesError(f"{what}: malformed page ({exc})") from None
            for row in rows:
                try:
                    market = parse_market(row)
                except (KeyError, TypeError, ValueError, AttributeError):
                    skipped += 1
                    continue
                found.setdefault(market.market_id, market)
            skip += len(rows)
            if not rows or len(rows) < self.page_size or (total is not None and skip >= total):
                break
        else:
            raise RatesError(f"{BOROS} markets: still paging after {MAX_PAGES} pages")
        self.skipped_markets = skipped
        return sorted(found.values(), key=lambda m: (m.venue, m.symbol, m.maturity, m.market_id))

    def candles(self, market: Market, start: dt.datetime, end: dt.datetime, interval: str = "1h") -> pl.DataFrame:
        """The market's implied-APR candles opening in ``[start, end)`` (naive UTC), as
        :data:`~funding_assets.rates.schema.CANDLE_SCHEMA` with ``underlying_apr`` from ``u``."""
        check_interval(interval, INTERVALS, f"{BOROS} chart timeFrame")
        rows = []
        for lo, hi in windows(*term_range(start, end, None, market.maturity, interval), interval, CHART_STEP):
            params = {"marketId": market.market_id, "timeFrame": interval, "startTimestamp": lo, "endTimestamp": hi - 1}
            what = (
                f"{BOROS} chart of market {market.market_id} ({market.venue} {market.venue_symbol}, {interval}) "
                f"for {from_unix_s(lo):%Y-%m-%d %H:%M} .. {from_unix_s(hi - 1):%Y-%m-%d %H:%M:%S} UTC"
            )
            payload = get(self.http, CHART_PATH, params, what)
            error = error_message(payload)
            if error is not None:
                raise RatesError(f"{what}: {error}")
            try:
                got, skipped = parse_chart(payload)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise RatesError(f"{what}: malformed candles ({exc})") from None
            rows.extend(got)
            self.skipped_candles += skipped
        frame = candle_frame(market, interval, rows, self.source)
        return in_range(frame, start, end) if frame.height else empty_candles()
