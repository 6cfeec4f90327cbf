"""The simulator's universe: every perpetual each venue ever listed, deterministic per seed.

About 150 real coin tickers, each of a class (:data:`MAJOR` BTC and ETH, :data:`LARGE`
alts, :data:`SMALL` alts and memes) that sets how its funding behaves (see
:mod:`funding_assets.sim.model`) and how wide its caps are. Each venue lists a coin's
perpetuals under its own names (:func:`funding_assets.venues.venue_symbol`), with the
contract types it really offers:

- binance: USDT for every coin it lists (``1000PEPEUSDT`` for the multiplier coins), USDC
  for a few majors from 2024 (``BTCUSDC``), COIN-M inverse for about fifteen (``BTCUSD_PERP``);
- bybit: USDT for every coin, USDC for a dozen (``BTCUSDC``), inverse for a few (``BTCUSD``);
- okx: USDT (``PEPE-USDT-SWAP``, no multiplier), USDC for a few, inverse for about a dozen;
- hyperliquid: USDC for every coin (``BTC``, ``kPEPE``), listed from 2023;
- deribit: inverse ``BTC-PERPETUAL`` and ``ETH-PERPETUAL``, USDC linear for the rest
  (``SOL_USDC-PERPETUAL``), listed from 2022.

Listings fall in 2020..2025, some coins are born in 2023, 2024 and 2025, and some are
delisted (coins that died, like LUNA and FTT, on every venue; a few more on one venue).
BTC, ETH and SOL are listed on every venue from 2020-01-01 and never delisted, so any
backfill of them over the model span finds them.

Units and conventions are those of :class:`~funding_assets.instruments.Instrument`: naive
UTC datetimes, ``interval_hours`` the current native interval, caps per native interval.
Each instrument's interval history is :func:`interval_changes` (what the model settles on).
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime, timedelta
from functools import lru_cache

import numpy as np

from ..instruments import Instrument
from ..venues import INVERSE, SPECS, USDC, USDT, check_coin, check_venue, venue_symbol

DEFAULT_SEED = 7

MAJOR, LARGE, SMALL = "major", "large", "small"
CLASSES: tuple[str, ...] = (MAJOR, LARGE, SMALL)

START = datetime(2020, 1, 1)
#: Listings and delistings happen before this instant; after it the universe is fixed.
LAST_CHANGE = datetime(2026, 1, 1)
#: Listed everywhere from START and never delisted (the pipeline's default coins and more).
ALWAYS_LISTED: tuple[str, ...] = ("BTC", "ETH", "SOL")

HYPERLIQUID_LAUNCH = datetime(2023, 3, 1)
DERIBIT_LINEAR_LAUNCH = datetime(2022, 3, 1)
BINANCE_USDC_LAUNCH = datetime(2024, 1, 8)
BYBIT_USDC_LAUNCH = datetime(2022, 11, 1)
OKX_USDC_LAUNCH = datetime(2023, 6, 1)


@dataclasses.dataclass(frozen=True)
class Coin:
    """A coin of the universe: its class, when perpetuals of it could first list, when it died."""

    name: str
    cls: str
    born: datetime
    died: datetime | None = None
    #: Binance/Bybit quote it per this many coins (``1000PEPEUSDT``); Hyperliquid writes ``k``
    #: for 1000 and lists it plainly otherwise; OKX never multiplies.
    multiplier: float = 1.0


def _d(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m" if len(text) == 7 else "%Y-%m-%d")


# name class born [died] [xMULT]; born is the month perpetuals of the coin appear.
_COINS = """
BTC major 2020-01
ETH major 2020-01
SOL large 2020-01
XRP large 2020-01
BNB large 2020-02
DOGE large 2020-07
ADA large 2020-01
AVAX large 2020-09
LINK large 2020-01
DOT large 2020-08
LTC large 2020-01
TRX large 2020-01
BCH large 2020-01
TON large 2024-04
NEAR large 2020-10
ATOM large 2020-02
ETC large 2020-01
UNI large 2020-09
FIL large 2020-10
APT large 2022-10
ARB large 2023-03
OP large 2022-06
SUI large 2023-05
ICP large 2021-05
HBAR large 2020-06
XLM large 2020-01
AAVE large 2020-10
XMR large 2020-02
MATIC large 2020-10 2024-09-10
POL large 2024-09
HYPE large 2024-11
PEPE small 2023-05 x1000
SHIB small 2021-05 x1000
BONK small 2023-11 x1000
FLOKI small 2023-05 x1000
LUNC small 2022-05 x1000
XEC small 2021-10 x1000
SATS small 2023-12 x1000
RATS small 2023-12 x1000
CAT small 2024-11 x1000
MOG small 2024-11 x1000000
INJ small 2020-10
ORDI small 2023-05
SEI small 2023-08
TIA small 2023-10
WIF small 2024-03
1INCH small 2020-12
AR small 2021-05
ALGO small 2020-03
APE small 2022-03
AXS small 2020-11
BAT small 2020-03
BLUR small 2023-02
CHZ small 2020-10
COMP small 2020-06
CRV small 2020-08
DYDX small 2021-09
EGLD small 2020-09
ENJ small 2021-02
ENS small 2021-11
FET small 2020-06
GALA small 2021-09
GMT small 2022-03
GRT small 2020-12
IMX small 2022-03
JASMY small 2022-06
KAVA small 2020-04
KSM small 2020-09
LDO small 2022-05
LRC small 2021-03
MANA small 2020-12
MASK small 2021-05
NEO small 2020-01
ONE small 2021-01
PEOPLE small 2021-12
QNT small 2022-03
RUNE small 2020-09
SAND small 2020-11
SNX small 2020-06
STX small 2021-11
SUSHI small 2020-09
THETA small 2020-02
VET small 2020-02
WOO small 2022-02
XTZ small 2020-01
YFI small 2020-08
ZEC small 2020-01
ZIL small 2020-03
ZRX small 2020-06
CFX small 2022-03
FLOW small 2021-10
HOOK small 2022-12
ID small 2023-03
JOE small 2023-01
MAGIC small 2022-12
RDNT small 2023-03
SSV small 2023-02
STG small 2022-11
TRB small 2020-08
WLD small 2023-07
JTO small 2023-12
JUP small 2024-01
PYTH small 2023-11
STRK small 2024-02
ENA small 2024-04
ETHFI small 2024-03
W small 2024-04
TAO small 2024-04
NOT small 2024-05
IO small 2024-06
ZK small 2024-06
ZRO small 2024-06
BOME small 2024-03
MEW small 2024-03
POPCAT small 2024-06
NEIRO small 2024-09
EIGEN small 2024-10
DOGS small 2024-08
GOAT small 2024-10
PNUT small 2024-11
ACT small 2024-11
MOODENG small 2024-11
VIRTUAL small 2024-12
PENGU small 2024-12
ONDO small 2024-01
TRUMP small 2025-01
AIXBT small 2025-01
S small 2025-01
BERA small 2025-02
IP small 2025-02
KAITO small 2025-02
LAYER small 2025-02
RENDER small 2024-08
RNDR small 2023-01 2024-08-05
FTM small 2020-03 2025-01-13
LUNA large 2020-06 2022-05-13
FTT small 2020-01 2022-11-14
SRM small 2020-09 2022-11-30
RAY small 2021-08 2022-11-30
BTS small 2020-06 2022-09-06
COCOS small 2020-10 2023-03-15
SC small 2020-12 2023-06-20
ANT small 2020-12 2023-11-01
TOMO small 2021-01 2023-11-15
OCEAN small 2021-01 2024-07-01
AGIX small 2023-02 2024-07-01
UNFI small 2021-10 2024-06-20
STMX small 2021-04 2024-04-01
EOS large 2020-01
IOTA small 2020-02
QTUM small 2020-02
ONT small 2020-02
IOST small 2020-02
"""


def _parse_coins(text: str) -> tuple[Coin, ...]:
    coins = []
    for line in text.strip().splitlines():
        name, cls, born, *rest = line.split()
        died = next((_d(w) for w in rest if not w.startswith("x")), None)
        mult = next((float(w[1:]) for w in rest if w.startswith("x")), 1.0)
        coins.append(Coin(name, cls, _d(born), died, mult))
    return tuple(coins)


COINS: tuple[Coin, ...] = _parse_coins(_COINS)
_BY_NAME = {c.name: c for c in COINS}

# Extra contract types: coin -> first month it can list (the venue's own launch otherwise).
_BINANCE_INVERSE = ("BTC", "ETH", "BNB", "SOL", "XRP", "ADA", "DOGE", "DOT", "LINK", "LTC", "BCH", "AVAX")
_BINANCE_INVERSE += ("ETC", "TRX", "FIL", "EOS", "LUNA")
_BINANCE_USDC = ("BTC", "ETH", "SOL", "XRP", "DOGE", "BNB", "LINK", "AVAX", "LTC", "NEAR", "SUI", "ARB")
_BINANCE_USDC += ("ORDI", "TIA", "WIF", "PEPE")
_BYBIT_INVERSE = ("BTC", "ETH", "XRP", "EOS", "DOT", "ADA", "LTC", "SOL", "MANA", "LUNA")
_BYBIT_USDC = ("BTC", "ETH", "SOL", "XRP", "DOGE", "ARB", "OP", "SUI", "LINK", "BNB", "LTC", "INJ", "ORDI")
_BYBIT_USDC += ("SEI", "TIA", "TON", "TRX", "WIF")
_OKX_INVERSE = ("BTC", "ETH", "SOL", "XRP", "DOGE", "ADA", "DOT", "LTC", "BCH", "ETC", "LINK", "FIL", "TRX")
_OKX_INVERSE += ("AVAX", "LUNA")
_OKX_USDC = ("BTC", "ETH", "SOL", "XRP", "DOGE")
#: Share of the eligible small alts a venue lists (it lists every major and large alt).
_COVERAGE = {"binance": 0.97, "bybit": 0.93, "okx": 0.85, "hyperliquid": 0.9, "deribit": 0.85}
#: Share of a venue's linear alts it delists once for its own reasons (the dead coins aside).
_VENUE_DELIST = 0.06

#: |rate| cap per native interval, per coin class, on Binance/Bybit/OKX.
_CEX_CAPS = {MAJOR: (0.00375,), LARGE: (0.0075, 0.01), SMALL: (0.01, 0.015, 0.02)}

# Open interest in USD of a coin's main perpetual on Binance, by class (median), and each
# venue's and contract's share of that.
_OI_MEDIAN = {MAJOR: 5e9, LARGE: 4e8, SMALL: 3e7}
_OI_VENUE = {"binance": 1.0, "bybit": 0.6, "okx": 0.45, "hyperliquid": 0.35, "deribit": 0.08}
_OI_CONTRACT = {USDT: 1.0, USDC: 0.08, INVERSE: 0.25}
_VOLUME_TURNOVER = 2.5  # 24 h volume / open interest


def rng(seed: int, *key: str) -> np.random.Generator:
    """An independent generator per (seed, purpose, names), stable across processes.

    Python's ``hash`` is salted per process, so the key is hashed with blake2b instead.
    """
    digest = hashlib.blake2b("|".join((str(seed), *key)).encode(), digest_size=16).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def coin_class(coin: str) -> str:
    """The class of ``coin`` (:data:`MAJOR`, :data:`LARGE` or :data:`SMALL`); unknown coins are small."""
    known = _BY_NAME.get(coin)
    return known.cls if known else SMALL


# --- the listing ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Entry:
    instrument: Instrument
    #: (from, interval_hours) steps, oldest first; the first from is the listing.
    intervals: tuple[tuple[datetime, float], ...]


def listing(venue: str, seed: int = DEFAULT_SEED) -> list[Instrument]:
    """Every perpetual ``venue`` ever listed, delisted ones included, sorted by key."""
    return [e.instrument for e in _entries(check_venue(venue), int(seed))]


def lookup(venue: str, name: str, seed: int = DEFAULT_SEED) -> Instrument | None:
    """The instrument ``venue`` names ``name`` (its own name, exact), or None."""
    return _by_name(check_venue(venue), int(seed)).get(name)


def find(venue: str, coin: str, contract: str | None = None, seed: int = DEFAULT_SEED) -> Instrument | None:
    """``venue``'s perpetual of ``coin`` in ``contract``; ``contract`` None: the venue's main
    contract of the coin among those it ever listed. None if the venue never listed it."""
    venue = check_venue(venue)
    listed = _by_coin(venue, int(seed)).get(check_coin(coin), {})
    chosen = contract if contract is not None else SPECS[venue].main_contract(set(listed))
    return listed.get(chosen) if chosen is not None else None


def listed_at(instrument: Instrument, when: datetime) -> bool:
    """Whether ``instrument`` trades at ``when`` (naive UTC): listed, not yet delisted."""
    after = instrument.listed_at is None or instrument.listed_at <= when
    return after and (instrument.delisted_at is None or when < instrument.delisted_at)


def interval_changes(instrument: Instrument, seed: int = DEFAULT_SEED) -> tuple[tuple[datetime, float], ...]:
    """The instrument's native interval history: ``(from, interval_hours)`` steps, oldest
    first, each ``from`` on an 8 h boundary (00/08/16 UTC); the last is the current one.
    The model adds short episodes of shorter intervals on 8 h CEX instruments."""
    return _by_key(instrument.venue, int(seed))[instrument.key].intervals


@lru_cache(maxsize=16)
def _entries(venue: str, seed: int) -> tuple[_Entry, ...]:
    entries = [e for coin in COINS for e in _coin_entries(venue, coin, seed)]
    return tuple(sorted(entries, key=lambda e: e.instrument.key))


@lru_cache(maxsize=16)
def _by_name(venue: str, seed: int) -> dict[str, Instrument]:
    return {e.instrument.venue_symbol: e.instrument for e in _entries(venue, seed)}


@lru_cache(maxsize=16)
def _by_key(venue: str, seed: int) -> dict[tuple[str, str, str], _Entry]:
    return {e.instrument.key: e for e in _entries(venue, seed)}


@lru_cache(maxsize=16)
def _by_coin(venue: str, seed: int) -> dict[str, dict[str, Instrument]]:
    out: dict[str, dict[str, Instrument]] = {}
    for e in _entries(venue, seed):
        out.setdefault(e.instrument.symbol, {})[e.instrument.contract] = e.instrument
    return out


def _contracts(venue: str, coin: Coin) -> dict[str, datetime]:
    """Contract types ``venue`` may list for ``coin``, each with its earliest listing."""
    name, born = coin.name, coin.born
    core = START if name in ALWAYS_LISTED else None
    if venue == "hyperliquid":
        return {USDC: core or max(born, HYPERLIQUID_LAUNCH)}
    if venue == "deribit":
        out = {USDC: core or max(born, DERIBIT_LINEAR_LAUNCH)}
        if name in ("BTC", "ETH"):
            out = {INVERSE: START, USDC: DERIBIT_LINEAR_LAUNCH}
        return out
    extra = {
        "binance": ((USDC, _BINANCE_USDC, BINANCE_USDC_LAUNCH), (INVERSE, _BINANCE_INVERSE, START)),
        "bybit": ((USDC, _BYBIT_USDC, BYBIT_USDC_LAUNCH), (INVERSE, _BYBIT_INVERSE, START)),
        "okx": ((USDC, _OKX_USDC, OKX_USDC_LAUNCH), (INVERSE, _OKX_INVERSE, START)),
    }[venue]
    out = {USDT: core or born}
    for contract, names, launch in extra:
        if name in names:
            out[contract] = max(born, launch)
    return out


def _on_hour(day: datetime, hours: int) -> datetime:
    return datetime(day.year, day.month, day.day) + timedelta(hours=hours)


def _coin_entries(venue: str, coin: Coin, seed: int) -> list[_Entry]:
    r = rng(seed, "universe", venue, coin.name)
    core = coin.name in ALWAYS_LISTED
    coverage, lag_days, hour = r.random(), r.integers(0, 60), r.integers(0, 24)
    delist_draw, delist_frac = r.random(), r.random()
    cap = float(r.choice(_CEX_CAPS[coin.cls]))
    oi_noise = float(np.exp(0.8 * r.standard_normal()))
    if coin.cls == SMALL and coverage > _COVERAGE[venue]:
        return []
    died = None
    if coin.died is not None:
        died = _on_hour(coin.died + timedelta(days=int(r.integers(0, 8))), int(r.integers(0, 24)))
    elif not core and coin.cls != MAJOR and delist_draw < _VENUE_DELIST:
        died = "venue"  # resolved per instrument below, after its listing
    entries = []
    for contract, earliest in _contracts(venue, coin).items():
        if core and earliest == START:
            listed = START
        else:
            listed = _on_hour(earliest + timedelta(days=int(lag_days)), int(hour))
        delisted = died
        if died == "venue":
            delisted = listed + (LAST_CHANGE - listed) * (0.3 + 0.6 * delist_frac)
            delisted = _on_hour(delisted, int(hour))
        if listed >= LAST_CHANGE or (delisted is not None and delisted <= listed + timedelta(days=30)):
            continue
        intervals = _intervals(venue, coin, contract, listed, seed)
        entries.append(_entry(venue, coin, contract, listed, delisted, intervals, cap, oi_noise))
    return entries


def _intervals(
    venue: str, coin: Coin, contract: str, listed: datetime, seed: int
) -> tuple[tuple[datetime, float], ...]:
    """Native interval steps: 8 h on the CEX unless a small alt was moved to 4/2/1 h."""
    if venue == "deribit":
        return ((listed, 1.0),)
    if venue == "hyperliquid":
        hourly = SPECS[venue].hourly_from
        return ((listed, 1.0),) if listed >= hourly else ((listed, 8.0), (hourly, 1.0))
    if coin.cls == MAJOR or contract == INVERSE:
        return ((listed, 8.0),)
    r = rng(seed, "intervals", venue, coin.name, contract)
    draw = r.random()
    # Shares of coins moved off 8 h, and the interval they moved to, as the venues did.
    shorter = {"binance": 0.25, "bybit": 0.35, "okx": 0.2}[venue] * (1.0 if coin.cls == SMALL else 0.4)
    if draw >= shorter:
        return ((listed, 8.0),)
    hours = float(r.choice([4.0, 2.0, 1.0], p=[0.7, 0.15, 0.15]))
    if r.random() < 0.4:  # listed at the short interval
        return ((listed, hours),)
    switch = listed + (LAST_CHANGE - listed) * r.uniform(0.2, 0.9)
    block = datetime(switch.year, switch.month, switch.day)
    return ((listed, 8.0), (block, hours)) if block > listed else ((listed, hours),)


def _entry(
    venue: str,
    coin: Coin,
    contract: str,
    listed: datetime,
    delisted: datetime | None,
    intervals: tuple[tuple[datetime, float], ...],
    cap_cex: float,
    oi_noise: float,
) -> _Entry:
    multiplier = (
        coin.multiplier if venue in ("binance", "bybit") or (venue == "hyperliquid" and coin.multiplier == 1e3) else 1.0
    )
    cap = {"hyperliquid": SPECS["hyperliquid"].rate_cap, "deribit": SPECS["deribit"].rate_cap}.get(venue, cap_cex)
    trading = delisted is None
    oi = _OI_MEDIAN[coin.cls] * _OI_VENUE[venue] * _OI_CONTRACT[contract] * oi_noise if trading else 0.0
    instrument = Instrument(
        venue=venue,
        symbol=coin.name,
        contract=contract,
        venue_symbol=venue_symbol(venue, coin.name, contract, multiplier),
        multiplier=multiplier,
        settle=_settle(venue, coin.name, contract),
        listed_at=listed,
        delisted_at=delisted,
        interval_hours=intervals[-1][1],
        rate_cap=cap,
        rate_floor=-cap,
        open_interest_usd=round(oi, 2),
        volume_usd=round(oi * _VOLUME_TURNOVER, 2),
    )
    return _Entry(instrument, intervals)


def _settle(venue: str, coin: str, contract: str) -> str:
    if contract == INVERSE:
        return coin
    return "USDT" if contract == USDT else "USDC"
