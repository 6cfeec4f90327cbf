"""Market figures the funding model does not have, shared by the simulated venues.

The model has no prices: every venue quotes fixed synthetic ones. A coin's index price is
a few known round figures, else a deterministic draw per coin between 1e-4 and 300 USD (six
significant digits) divided by the coin's multiplier in the universe (a coin quoted per
1000 is cheap), so a multiplier name (``1000PEPEUSDT``) quotes ``multiplier`` coins.
Open interest and 24 h volume in USD are the universe's (:class:`Instrument`); the venues
convert them to their own units (coins, contracts) with these prices.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable

from ...instruments import Instrument
from ..universe import COINS

_MULTIPLIERS = {c.name: c.multiplier for c in COINS}

KNOWN_PRICES = {"BTC": 60_000.0, "ETH": 3_000.0, "SOL": 150.0}
#: Deterministic prices of other coins span 10**LOW .. 10**HIGH USD.
LOW, HIGH = -4.0, 2.5


def remembered_text(text_of: Callable[[float], str]) -> Callable[[float], str]:
    """``text_of`` (a number -> the venue's text of it) remembered per number: streams print
    the same few rates over and over. A zero is not remembered (``-0.0 == 0.0``, but the two
    may print differently)."""
    remembered = functools.lru_cache(maxsize=1 << 16, typed=True)(text_of)

    @functools.wraps(text_of)
    def text(value: float) -> str:
        return text_of(value) if value == 0 else remembered(value)

    return text


@functools.cache
def index_price(coin: str) -> float:
    """USD price of one ``coin`` (six significant digits, fixed per coin)."""
    known = KNOWN_PRICES.get(coin)
    if known is not None:
        return known
    draw = int.from_bytes(hashlib.blake2b(coin.encode(), digest_size=8).digest(), "little") / 2**64
    value = 10 ** (LOW + (HIGH - LOW) * draw) / _MULTIPLIERS.get(coin, 1.0)
    return round(value, 5 - math.floor(math.log10(value)))


def quote_price(instrument: Instrument) -> float:
    """USD price of the venue's quoted unit (``multiplier`` coins)."""
    return index_price(instrument.symbol) * instrument.multiplier


def open_interest_usd(instrument: Instrument) -> float:
    return float(instrument.open_interest_usd or 0.0)


def volume_usd(instrument: Instrument) -> float:
    return float(instrument.volume_usd or 0.0)


def decimals_for(price: float, significant: int = 6) -> int:
    """Decimal places that show ``price`` to about ``significant`` digits (0..10)."""
    if price <= 0:
        return 2
    return max(0, min(10, significant - 1 - math.floor(math.log10(price))))
