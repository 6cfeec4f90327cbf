"""The fixed-rate candle frame and the markets it comes from.

A fixed-rate market is one future of a rate-market provider (Rho, Pendle Boros) on the
funding of one perpetual (the *underlying*, e.g. Binance BTCUSDT) from ``term_start`` to
``maturity``. Its candles are the market's implied fixed rate, **annualised decimal**
(0.036451 = 3.6451 % APR), on an interval grid of UTC candle open times.

:data:`CANDLE_SCHEMA` is the frame every provider client, the simulator and the replay
reader produce (and the ``fixed_rate_candles`` table stores); the key is
``provider, market_id, interval, ts`` and ``market_id`` determines the underlying and the
dates. The partition day of a candle is the UTC day of ``ts``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

import polars as pl

from ..errors import FundingInputError
from ..prints import TS
from ..venues import SPECS, check_coin, check_venue, venue_symbol

RHO, BOROS = "rho", "boros"
PROVIDERS: tuple[str, ...] = (RHO, BOROS)

#: Candle intervals by name, in seconds. A ``1d`` candle opens at 00:00 UTC, a ``1w`` one on
#: Monday 00:00 UTC; shorter ones on multiples of their length since the epoch.
INTERVALS: dict[str, int] = {
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "4h": 14_400,
    "1d": 86_400,
    "1w": 604_800,
}
#: 1970-01-01 was a Thursday: weeks open 4 days after the epoch's multiples of 7 days.
WEEK_OFFSET_S = 4 * 86_400

#: The fixed-rate candle frame (see the module docstring); ``underlying_apr`` is null when the
#: provider gives no floating rate at the candle, ``term_start`` when it states no term start.
CANDLE_SCHEMA: dict[str, pl.DataType] = {
    "provider": pl.String(),
    "market_id": pl.String(),
    "venue": pl.String(),
    "symbol": pl.String(),
    "contract": pl.String(),
    "venue_symbol": pl.String(),
    "term_start": TS,
    "maturity": TS,
    "interval": pl.String(),
    "ts": TS,
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "underlying_apr": pl.Float64(),
    "source": pl.String(),
}
KEY = ("provider", "market_id", "interval", "ts")
RATE_COLUMNS = ("open", "high", "low", "close")


@dataclasses.dataclass(frozen=True)
class Market:
    """One fixed-rate future of a provider. Times naive UTC; ``implied_apr`` annualised decimal.

    ``term_start`` is None when the provider does not state it (Boros lists maturities only).
    ``implied_apr`` is the provider's current implied fixed rate when it lists one (Rho
    ``vAMMParams.currentFutureRate``, Boros ``markApr``), else None. ``underlying_id`` is the
    provider's id of the underlying's market: the futures of one underlying share it (Rho's
    market descriptor id, which keys Rho X floating-rate candles); None for Boros.
    """

    provider: str
    market_id: str
    venue: str
    symbol: str
    contract: str
    venue_symbol: str
    term_start: dt.datetime | None
    maturity: dt.datetime
    implied_apr: float | None = None
    underlying_id: str | None = None


def check_provider(provider: str, setting: str = "provider") -> str:
    name = str(provider).strip().lower()
    if name not in PROVIDERS:
        raise FundingInputError(
            f"{setting}: unknown fixed-rate provider {provider!r}; known are {', '.join(PROVIDERS)}"
        )
    return name


def check_interval(interval: str, allowed: Iterable[str] = INTERVALS, who: str = "interval") -> str:
    allowed = tuple(allowed)
    if interval not in allowed:
        raise FundingInputError(f"{who}: candle interval {interval!r} is not one of {', '.join(allowed)}")
    return interval


def candle_open_s(epoch_s: int, interval: str) -> int:
    """The open time (epoch seconds) of the ``interval`` candle holding ``epoch_s``."""
    step = INTERVALS[interval]
    offset = WEEK_OFFSET_S if interval == "1w" else 0
    return (epoch_s - offset) // step * step + offset


#: Parsers tried after the stated venue's own: a provider may write an underlying in another
#: venue's style (``BTCUSDT`` for an OKX swap). Hyperliquid's reads any bare name as a coin,
#: so it is used for Hyperliquid only.
_PARSE_ORDER = ("binance", "bybit", "okx", "deribit")


def resolve_underlying(platform: str, name: str | None, coin: str | None = None) -> tuple[str, str, str, str]:
    """(venue, coin, contract, venue_symbol) of a provider's underlying, or ``ValueError``.

    ``platform`` is the venue as a provider writes it (``Binance``); ``name`` its instrument
    (``BTCUSDT``, ``BTC-USDT-SWAP``), read with the venue's own naming first, then the other
    venues' (``BTCUSDT`` on OKX is ``BTC-USDT-SWAP``); a contract the venue does not list
    gives way to the venue's main perpetual of the coin. A bare coin name (``BTC``), or
    ``coin`` (Boros ``assetSymbol``) when ``name`` is no perpetual name, is the venue's main
    perpetual of that coin.
    """
    try:
        venue = check_venue(str(platform))
    except FundingInputError:
        raise ValueError(f"underlying venue {platform!r} is not one this package knows") from None
    facts = SPECS[venue]
    found = None
    text = name.strip() if isinstance(name, str) else ""
    if text:
        parsers = (venue, *(v for v in _PARSE_ORDER if v != venue)) if venue != "hyperliquid" else (venue,)
        for parser in parsers:
            found = SPECS[parser].parse(text) or SPECS[parser].parse(text.upper())
            if found is not None:
                break
    if found is None:
        try:
            symbol = check_coin(str(coin or text))
        except FundingInputError:
            raise ValueError(f"underlying {name!r} on {venue} is not a perpetual or coin name") from None
        contract, multiplier = facts.default_contract(symbol), 1.0
    else:
        symbol, multiplier = found.coin, found.multiplier
        contract = found.contract if found.contract in facts.contracts else facts.default_contract(symbol)
    return venue, symbol, contract, venue_symbol(venue, symbol, contract, multiplier)


def empty_candles() -> pl.DataFrame:
    return pl.DataFrame(schema=CANDLE_SCHEMA)


def candle_frame(
    market: Market,
    interval: str,
    rows: list[tuple[dt.datetime, float, float, float, float, float | None]],
    source: str,
) -> pl.DataFrame:
    """Candles ``(ts, open, high, low, close, underlying_apr)`` of one market as a
    :data:`CANDLE_SCHEMA` frame, sorted by ``ts``, one row per ``ts`` (the first kept)."""
    if not rows:
        return empty_candles()
    ts, o, h, lo, c, u = zip(*rows)
    n = len(rows)
    facts = {
        "provider": market.provider,
        "market_id": market.market_id,
        "venue": market.venue,
        "symbol": market.symbol,
        "contract": market.contract,
        "venue_symbol": market.venue_symbol,
        "term_start": market.term_start,
        "maturity": market.maturity,
        "interval": interval,
    }
    frame = pl.DataFrame(
        {
            **{k: pl.Series(k, [v] * n, dtype=CANDLE_SCHEMA[k]) for k, v in facts.items()},
            "ts": pl.Series("ts", ts, dtype=TS),
            "open": pl.Series("open", o, dtype=pl.Float64),
            "high": pl.Series("high", h, dtype=pl.Float64),
            "low": pl.Series("low", lo, dtype=pl.Float64),
            "close": pl.Series("close", c, dtype=pl.Float64),
            "underlying_apr": pl.Series("underlying_apr", u, dtype=pl.Float64),
            "source": pl.Series("source", [source] * n, dtype=pl.String),
        }
    )
    return frame.unique("ts", keep="first", maintain_order=True).sort("ts")


def in_range(frame: pl.DataFrame, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Rows with ``start <= ts < end``."""
    return frame.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
