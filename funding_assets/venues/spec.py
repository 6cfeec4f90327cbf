"""What a venue is: every fact about one venue, declared once in its own module.

A venue module (``funding_assets.venues.binance`` ...) defines ``SPEC``, a :class:`VenueSpec`:
its endpoints, contract types and how it names them, its default funding interval and cap,
when it settles, how its streams stay alive, the request budgets it publishes, and the
client and simulator classes that speak its protocol. Everything else (partitions, clients,
the simulator, the collector, the automation) reads these facts from the registry in
:mod:`funding_assets.venues`; adding a venue is one new module and one line in the registry.
"""

from __future__ import annotations

import datetime as dt
import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

#: Contract types, by what the contract is margined and settled in: ``usdt`` and ``usdc``
#: linear perpetuals, ``inverse`` (coin-margined, USD-sized) perpetuals.
USDT, USDC, INVERSE = "usdt", "usdc", "inverse"
CONTRACTS: tuple[str, ...] = (USDT, USDC, INVERSE)

# A venue's multiplier prefix on a coin's name: 1000PEPE, 1000000MOG, 1MBABYDOGE (Binance,
# Bybit) and kPEPE (Hyperliquid). "1INCH" is a coin, not ten INCH: a multiplier prefix is
# a power of ten of at least 10, or 1M, or k, and the coin after it has two letters or more.
_MULTIPLIER = re.compile(r"^(?:(?P<digits>10+)|(?P<million>1M)|(?P<kilo>k))(?P<coin>[A-Z][A-Z0-9]+)$")


def split_multiplier(base: str) -> tuple[str, float]:
    """A venue's base name -> (canonical coin, multiplier): ``1000PEPE`` -> (PEPE, 1000),
    ``kPEPE`` -> (PEPE, 1000), ``1MBABYDOGE`` -> (BABYDOGE, 1e6), ``BTC`` -> (BTC, 1)."""
    match = _MULTIPLIER.match(base)
    if match is None:
        return base.upper(), 1.0
    if match["digits"]:
        return match["coin"], float(match["digits"])
    return match["coin"], 1e6 if match["million"] else 1e3


def multiplier_prefix(multiplier: float, style: str = "digits") -> str:
    """The prefix a venue writes for ``multiplier`` (``1000`` or ``k``); empty for 1."""
    if multiplier == 1:
        return ""
    if style == "kilo" and multiplier == 1000:
        return "k"
    return str(int(multiplier))


@dataclass(frozen=True)
class Budget:
    """At most ``requests`` request units per ``period_s`` seconds: a venue's published limit,
    kept as a token bucket that holds one period's units and refills at ``per_second``.

    A unit is a request, or the weight the venue charges for one where it counts weight;
    ``source`` says what the budget covers and where the venue publishes it.
    """

    requests: float
    period_s: float
    source: str = ""

    @property
    def per_second(self) -> float:
        return self.requests / self.period_s


@dataclass(frozen=True)
class Named:
    """A venue's own instrument name, read back: canonical coin, contract type, multiplier."""

    coin: str
    contract: str
    multiplier: float = 1.0


_COIN = re.compile(r"^[A-Z0-9]{1,20}$")


def named(base: str, contract: str) -> Named | None:
    """(coin, contract, multiplier) of a venue's base name; None if the base is no coin name."""
    coin, multiplier = split_multiplier(base)
    return Named(coin, contract, multiplier) if _COIN.match(coin) else None


@dataclass(frozen=True)
class VenueSpec:
    """Every fact about one venue (units in the field names: hours, seconds, decimals).

    ``contracts`` is the venue's preference order: a venue's *main* perpetual of a coin is
    the first of these it lists (the default contract selection). ``name_of`` builds the
    venue's instrument name from (coin, contract, multiplier); ``parse`` reads one back (None
    for a name that is not a perpetual of a known contract type).
    """

    name: str
    title: str
    rest_url: str
    ws_url: str
    contracts: tuple[str, ...]
    name_of: Callable[[str, str, float], str]
    parse: Callable[[str], Named | None]
    default_interval_hours: float
    #: |rate| cap per native interval (decimal fraction) when the venue does not state one.
    rate_cap: float
    #: A silent stream is declared dead after this long (the venue's own push cadence).
    watchdog_s: float
    #: The client pings (or the venue's heartbeat is asked) at this interval.
    ping_interval_s: float
    #: Settled-funding history: rows per page and direction ("asc" / "desc").
    history_page: int
    history_order: str
    #: Instruments endpoint(s), for the record and the simulator.
    instrument_paths: tuple[str, ...]
    #: Request budgets the venue publishes, by bucket name; a request draws on the first
    #: unless its client names another. The clients pace to them and the simulator enforces
    #: them (``limits``).
    budgets: Mapping[str, Budget]
    #: Decimal places of the venue's per-minute premium-index samples (None: publishes none).
    premium_decimals: int | None
    client_class: str
    sim_class: str
    #: The venue's funding went hourly from this day (Hyperliquid); None: as ``default_interval_hours``.
    hourly_from: dt.datetime | None = None
    #: Coins with an inverse perpetual when not every coin has one (Deribit: BTC, ETH); None: any.
    inverse_coins: tuple[str, ...] | None = None
    #: Settlement timestamps trail the boundary by up to (low, high) ms.
    settlement_jitter_ms: tuple[int, int] = (0, 0)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def main_contract(self, listed: set[str]) -> str | None:
        """The venue's main perpetual among the contract types it lists for a coin."""
        return next((c for c in self.contracts if c in listed), None)

    def default_contract(self, coin: str) -> str:
        """The main contract of ``coin`` when the venue's listing is not at hand."""
        for contract in self.contracts:
            if contract != INVERSE or self.inverse_coins is None or coin in self.inverse_coins:
                return contract
        return self.contracts[0]

    def settlement_hours(self) -> tuple[int, ...]:
        """UTC hours at which the venue's default schedule settles."""
        step = int(self.default_interval_hours)
        return tuple(range(0, 24, step))

    def client(self) -> type:
        return _load(self.client_class)

    def sim(self) -> type:
        return _load(self.sim_class)


def _load(path: str) -> type:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)
