"""The venues, each declared once in its own module, and the names of what they list.

``VENUES`` is the registry (partition order); ``spec(venue)`` is everything known about one
venue (:class:`~funding_assets.venues.spec.VenueSpec`). Canonical symbols are coins (``BTC``,
``PEPE`` for ``1000PEPEUSDT`` and ``kPEPE``) so venues join; ``contract`` (``usdt``, ``usdc``,
``inverse``) tells a coin's perpetuals on one venue apart; ``venue_symbol`` is the venue's
own instrument name. Caps are the largest absolute rate a venue settles, as a decimal
fraction per native funding interval; an instrument's own cap, when the venue states one,
is kept in the ``instruments`` table.
"""

from __future__ import annotations

import re

from ..errors import FundingInputError
from . import binance, bybit, deribit, hyperliquid, okx
from .spec import CONTRACTS, INVERSE, USDC, USDT, Named, VenueSpec, split_multiplier

__all__ = [
    "CONTRACTS",
    "DEFAULT_COINS",
    "DEFAULT_INTERVAL_HOURS",
    "INVERSE",
    "RATE_CAPS",
    "SPECS",
    "USDC",
    "USDT",
    "VENUES",
    "Named",
    "VenueSpec",
    "check_coin",
    "check_contract",
    "check_venue",
    "coin_for_symbol",
    "parse_symbol",
    "spec",
    "split_multiplier",
    "venue_symbol",
]

SPECS: dict[str, VenueSpec] = {m.SPEC.name: m.SPEC for m in (binance, bybit, okx, hyperliquid, deribit)}
VENUES: tuple[str, ...] = tuple(SPECS)
#: The coins a run covers with no setting.
DEFAULT_COINS: tuple[str, ...] = ("BTC", "ETH")

# Views of the specs for code that needs one fact of every venue.
RATE_CAPS: dict[str, float] = {v: s.rate_cap for v, s in SPECS.items()}
DEFAULT_INTERVAL_HOURS: dict[str, float] = {v: s.default_interval_hours for v, s in SPECS.items()}

_COIN = re.compile(r"^[A-Z0-9]{1,20}$")


def spec(venue: str) -> VenueSpec:
    """Everything known about ``venue`` (raises naming the known venues)."""
    return SPECS[check_venue(venue)]


def check_venue(venue: str, setting: str = "venue") -> str:
    """Return ``venue`` normalised, or raise naming the setting and the known venues."""
    name = venue.strip().lower()
    if name not in SPECS:
        raise FundingInputError(f"{setting}: unknown venue {venue!r}; known venues are {', '.join(VENUES)}")
    return name


def check_coin(coin: str, setting: str = "coin") -> str:
    """A coin as written by a user -> its canonical name (``btc`` -> ``BTC``, ``1000PEPE`` and
    ``kPEPE`` -> ``PEPE``). Whether a venue lists it is known only from the venue's instruments."""
    text = coin.strip()
    name, _ = split_multiplier(text if text.startswith("k") else text.upper())
    if not _COIN.match(name):
        raise FundingInputError(f"{setting}: {coin!r} is not a coin name (letters and digits, e.g. BTC)")
    return name


def check_contract(contract: str, setting: str = "contract") -> str:
    name = contract.strip().lower()
    if name not in CONTRACTS:
        raise FundingInputError(f"{setting}: unknown contract type {contract!r}; known are {', '.join(CONTRACTS)}")
    return name


def venue_symbol(venue: str, coin: str, contract: str | None = None, multiplier: float = 1.0) -> str:
    """The venue's own instrument name (``okx``, ``BTC`` -> ``BTC-USDT-SWAP``); without a
    contract, the venue's main perpetual of the coin."""
    s = SPECS[venue]
    return s.name_of(coin, contract or s.default_contract(coin), multiplier)


def parse_symbol(venue: str, name: object) -> Named | None:
    """A venue instrument name (or a bare coin) -> (coin, contract, multiplier); None if it is
    not one of the venue's perpetuals or not a string (a damaged payload field)."""
    if not isinstance(name, str) or not name.strip():
        return None
    s = SPECS[venue]
    text = name.strip()
    found = s.parse(text) or s.parse(text.upper())
    if found is not None:
        return found
    coin, multiplier = split_multiplier(text.upper())
    return Named(coin, s.default_contract(coin), multiplier) if _COIN.match(coin) else None


def coin_for_symbol(venue: str, symbol: object) -> str | None:
    """Map a coin or a venue instrument name back to the canonical coin; None if unknown or
    not a string (a damaged payload field)."""
    named = parse_symbol(venue, symbol)
    return named.coin if named else None
