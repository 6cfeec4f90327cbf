"""The venues and coins the pipeline knows, their symbols and their funding caps.

Canonical symbols are coins (``BTC``); each venue has its own instrument name
(``venue_symbol``). Caps are the largest absolute rate a venue can settle, as a decimal
fraction per native funding interval; a print beyond its cap is a data error.
"""

from __future__ import annotations

from .errors import FundingInputError

VENUES: tuple[str, ...] = ("binance", "bybit", "okx", "hyperliquid", "deribit")
COINS: tuple[str, ...] = ("BTC", "ETH", "SOL")
DEFAULT_COINS: tuple[str, ...] = ("BTC", "ETH")

VENUE_SYMBOLS: dict[str, dict[str, str]] = {
    "binance": {"BTC": "BTCUSDT", "ETH": "ETHUSDT", "SOL": "SOLUSDT"},
    "bybit": {"BTC": "BTCUSDT", "ETH": "ETHUSDT", "SOL": "SOLUSDT"},
    "okx": {"BTC": "BTC-USDT-SWAP", "ETH": "ETH-USDT-SWAP", "SOL": "SOL-USDT-SWAP"},
    "hyperliquid": {"BTC": "BTC", "ETH": "ETH", "SOL": "SOL"},
    "deribit": {"BTC": "BTC-PERPETUAL", "ETH": "ETH-PERPETUAL", "SOL": "SOL_USDC-PERPETUAL"},
}

# |rate| cap per native interval (decimal fraction). Binance and Bybit BTC/ETH settled at
# +-0.375 % (ETHUSDT 2021, public history); OKX uses the same band for its majors;
# Hyperliquid caps at 4 % per hour; Deribit's perpetual funding is capped at 0.5 % (8h).
RATE_CAPS: dict[str, float] = {
    "binance": 0.00375,
    "bybit": 0.00375,
    "okx": 0.00375,
    "hyperliquid": 0.04,
    "deribit": 0.005,
}

# The native funding interval a venue uses unless the data says otherwise (hours).
DEFAULT_INTERVAL_HOURS: dict[str, float] = {
    "binance": 8.0,
    "bybit": 8.0,
    "okx": 8.0,
    "hyperliquid": 1.0,
    "deribit": 1.0,
}


def check_venue(venue: str, setting: str = "venue") -> str:
    """Return ``venue`` normalised, or raise naming the setting and the known venues."""
    name = venue.strip().lower()
    if name not in VENUES:
        raise FundingInputError(f"{setting}: unknown venue {venue!r}; known venues are {', '.join(VENUES)}")
    return name


def check_coin(coin: str, setting: str = "coin") -> str:
    """Return ``coin`` normalised, or raise naming the setting and the known coins."""
    name = coin.strip().upper()
    if name not in COINS:
        raise FundingInputError(f"{setting}: unknown coin {coin!r}; known coins are {', '.join(COINS)}")
    return name


def venue_symbol(venue: str, coin: str) -> str:
    """The venue's own instrument name for ``coin`` (``okx``, ``BTC`` -> ``BTC-USDT-SWAP``)."""
    return VENUE_SYMBOLS[venue][coin]


def coin_for_symbol(venue: str, symbol: object) -> str | None:
    """Map a coin or a venue instrument name back to the canonical coin; None if unknown or
    not a string (a damaged payload field)."""
    if not isinstance(symbol, str):
        return None
    wanted = symbol.strip().upper()
    if wanted in COINS:
        return wanted
    for coin, name in VENUE_SYMBOLS[venue].items():
        if name.upper() == wanted:
            return coin
    return None
