"""Building fixed-rate candles, realised prints and roll snapshots for the fixed-vs-floating tests.

Candles carry every column of the ``fixed_rate_candles`` frame (rates annualised decimals,
times naive UTC); prints are realised settlements as ``raw_prints`` holds them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from funding_assets.prints import PRINT_SCHEMA
from funding_assets.rates.schema import CANDLE_SCHEMA
from funding_assets.strip import BUCKETS, SNAPSHOT_SCHEMA

H = timedelta(hours=1)
H8 = timedelta(hours=8)

#: The fixed-rate candle frame, column for column.
CANDLES = CANDLE_SCHEMA
VENUE_SYMBOLS = {("binance", "usdt"): "BTCUSDT", ("bybit", "usdt"): "BTCUSDT", ("binance", "inverse"): "BTCUSD_PERP"}


def candle(
    ts: datetime,
    close: float | None,
    *,
    market_id: str = "m1",
    provider: str = "rho",
    venue: str = "binance",
    symbol: str = "BTC",
    contract: str = "usdt",
    term_start: datetime | None,
    maturity: datetime,
    interval: str = "1h",
) -> dict:
    return {
        "provider": provider,
        "market_id": market_id,
        "venue": venue,
        "symbol": symbol,
        "contract": contract,
        "venue_symbol": VENUE_SYMBOLS.get((venue, contract), f"{symbol}USDT"),
        "term_start": term_start,
        "maturity": maturity,
        "interval": interval,
        "ts": ts,
        "open": close,
        "high": close,
        "low": close,
        "close": close,
        "underlying_apr": None,
        "source": "sim",
    }


def candles(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=CANDLES)


def hourly(
    start: datetime, closes: list[float | None], *, step: timedelta = H, interval: str | None = None, **market
) -> list[dict]:
    """Candles every ``step`` from ``start``; ``interval`` defaults to ``step`` in hours."""
    interval = interval or f"{int(step / H)}h"
    return [candle(start + i * step, c, interval=interval, **market) for i, c in enumerate(closes)]


def settlement(
    funding_time: datetime,
    rate: float,
    hours: float = 8.0,
    *,
    venue: str = "binance",
    symbol: str = "BTC",
    contract: str = "usdt",
    kind: str = "realised",
    ts: datetime | None = None,
) -> dict:
    return {
        "venue": venue,
        "symbol": symbol,
        "contract": contract,
        "venue_symbol": VENUE_SYMBOLS.get((venue, contract), f"{symbol}USDT"),
        "ts": ts or funding_time,
        "funding_time": funding_time,
        "rate": rate,
        "interval_hours": hours,
        "kind": kind,
        "source": "sim",
    }


def prints(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=PRINT_SCHEMA)


def roll(
    funding_time: datetime,
    buckets: list[float],
    *,
    as_of: datetime | None = None,
    venue: str = "binance",
    symbol: str = "BTC",
    contract: str | None = "usdt",
    annualisation: str = "apr",
) -> dict:
    return {
        "venue": venue,
        "symbol": symbol,
        "contract": contract,
        "kind": "roll",
        "ts": funding_time,
        "funding_time": funding_time,
        "interval_hours": 8.0,
        "annualisation": annualisation,
        **dict(zip(BUCKETS, map(float, buckets), strict=True)),
        "n_filled": 0,
        "as_of": as_of or funding_time,
        "coverage": 1.0,
        "min_coverage": 1.0,
    }


def rolls(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SNAPSHOT_SCHEMA)


NO_ROLLS = rolls([])
NO_PRINTS = prints([])
