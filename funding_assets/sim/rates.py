"""Rho and Pendle Boros in the simulator: fixed-rate futures priced off the funding model.

**Futures.** Each provider lists futures on the funding of USDT perpetuals of the model
(:data:`UNDERLYINGS`): Rho on Binance, Bybit and OKX BTC and ETH, Boros on Binance and
Bybit BTC and ETH. A future matures on the last Friday of a month at 08:00 UTC (2025-07-25,
2025-08-29) and its term starts on the last Friday 08:00 of the month :data:`TERM_MONTHS`
earlier, so at any instant three maturities of each underlying trade. Terms start from
:data:`RATES_START`; a future is listed from its term start, and stays listed after it
matures (so a backfill finds it; candles end at maturity).

**Implied APR** (annualised decimal), per minute ``t`` of the term, from information known
at ``t`` only:

- the realised floating APR of the underlying: each published settlement's rate x 8760 /
  its interval hours, known from the print's ``ts``;
- two EWMAs of those APRs, each settlement weighted by the hours it covers: the recent level
  ``E(t)`` (half-life :data:`EWMA_HALF_LIFE_H`) and the long-run level ``L(t)`` (half-life
  :data:`LONG_RUN_HALF_LIFE_H`), both run from 1 January :data:`EWMA_FROM` (started at
  :data:`LONG_RUN_APR`) so a minute's value never depends on the range asked;
- the forecast of the mean floating APR over the remaining term ``T`` (hours): funding
  reverts to ``L`` at rate ``k = ln 2 / REVERSION_HALF_LIFE_H``, so its expected average is
  ``L + (E - L) (1 - exp(-k T)) / (k T)`` (``E`` at maturity, ``L`` for a long term);
- plus a premium: per future an hourly Ornstein-Uhlenbeck process around the provider's mean
  (:data:`PREMIUM`), joined linearly between hours with a random walk pinned at both ends of
  each hour for the minutes; deterministic per seed and future.

Prints after ``t`` never enter the value at ``t``; a candle is served once it has closed (at
the simulator's now) and only over the minutes of the term. Boros' ``u`` / Rho X floating
candles are the floating APR of the last settlement known (forward-filled, as Boros'
"Underlying APR").

**Protocols** (REST under ``/rho`` and ``/boros`` of the simulator, shapes and units of
:mod:`funding_assets.rates.rho` and :mod:`funding_assets.rates.boros`):

- Rho legacy: ``GET /api/v1/market-data/markets`` (descriptors with ``BigNumber`` hex
  fields; ``currentFutureRate`` the implied APR of the last closed minute, the final one
  for a matured future) and ``GET /api/v1/market-data/candles?futureId=&from=&to=&interval=``
  (inclusive bounds in epoch seconds on candle open times; more than :data:`RHO_CANDLE_LIMIT`
  open times in the range, or an unknown future, is an HTTP 200 ``{"error": ...}`` body; a
  missing or bad parameter a 400 one);
- Rho X: ``GET /x/api/v1/markets/{marketId}/floating-rate-candles`` (the descriptor id is
  the market id; ``limit`` at most 1000, else 400 ``{"code", "message"}``; candles opening
  in ``[startTime, endTime]``, ascending, the first ``limit``);
- Boros: ``GET /open-api/v1/markets?skip=&limit=`` (``limit`` 1..100, default 100; by
  ``marketId``; ``imData.symbol`` is a made-up ``BINANCE-BTCUSDT-27JUN2025``, the real form
  being undocumented) and ``GET /open-api/v1/markets/chart`` (the doc example's candle shape, at
  most :data:`BOROS_CHART_LIMIT` candles from ``startTimestamp``: the real cap is not
  documented). Errors ``{"statusCode", "message", "error"}`` with HTTP 400 / 404.

Faults and budgets come from the server (:class:`~funding_assets.sim.server.Faults`).
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import hashlib
import math
import re
from functools import lru_cache

import numpy as np
import polars as pl

from ..rates.boros import CHART_PATH as BOROS_CHART_PATH
from ..rates.boros import INTERVALS as BOROS_INTERVALS
from ..rates.boros import MARKETS_PATH as BOROS_MARKETS_PATH
from ..rates.boros import PAGE_LIMIT as BOROS_PAGE_LIMIT
from ..rates.rho import CANDLES_PATH, MARKETS_PATH, RHOX_INTERVALS, RHOX_LIMIT
from ..rates.rho import INTERVALS as RHO_INTERVALS
from ..rates.schema import BOROS, INTERVALS, RHO, candle_open_s
from ..rates.units import apr_to_rho_candle, apr_to_wad, big_number, from_unix_s, iso_utc, rfc3339, unix_s
from ..venues import USDT, venue_symbol
from .model import FundingModel
from .server import Request, Response, VenueSim, json_response
from .universe import rng

RATES_START = dt.datetime(2024, 1, 1)
TERM_MONTHS = 3
MATURITY_HOUR = 8
UNDERLYINGS: dict[str, tuple[tuple[str, str], ...]] = {
    RHO: (("binance", "BTC"), ("binance", "ETH"), ("bybit", "BTC"), ("bybit", "ETH"), ("okx", "BTC"), ("okx", "ETH")),
    BOROS: (("binance", "BTC"), ("binance", "ETH"), ("bybit", "BTC"), ("bybit", "ETH")),
}
#: How each provider names the underlying venue (``descriptor.sourceName``, ``platformName``).
PLATFORM = {"binance": "Binance", "bybit": "Bybit", "okx": "OKX"}

#: 0.01 % per 8 h, the interest rate of CEX funding, as an APR: where the EWMAs start.
LONG_RUN_APR = 0.0001 * 1095
#: Half-lives (hours) of the floating APR's recent level and of its long-run level.
EWMA_HALF_LIFE_H = 72.0
LONG_RUN_HALF_LIFE_H = 30 * 24.0
#: Half-life (hours) of the floating APR's reversion to its long-run level.
REVERSION_HALF_LIFE_H = 14 * 24.0
HOURS_PER_YEAR = 8760.0


@dataclasses.dataclass(frozen=True)
class Premium:
    """The OU premium of implied over forecast floating: mean and sd (APR), half-life (hours)."""

    mean: float
    sd: float
    half_life_h: float


PREMIUM = {RHO: Premium(0.004, 0.008, 48.0), BOROS: Premium(0.006, 0.010, 72.0)}

RHO_CANDLE_LIMIT = 350
BOROS_CHART_LIMIT = 1000
RHOX_PREFIX = "/x/api/v1"
_FLOATING = re.compile(r"^/markets/(?P<id>[^/]+)/floating-rate-candles$")
MINUTE_MS = 60_000
HOUR = dt.timedelta(hours=1)
SECOND = dt.timedelta(seconds=1)
#: The EWMA of each underlying's floating APR runs from 1 January of this year (a year of
#: warm-up before :data:`RATES_START`).
EWMA_FROM = 2023
#: sd of a minute's step of the premium's within-hour walk (APR).
BRIDGE_STEP_SD = 0.0002


# --------------------------------------------------------------------------- the futures


def last_friday(year: int, month: int) -> dt.datetime:
    """08:00 UTC on the last Friday of the month (a maturity, and a term start)."""
    last = calendar.monthrange(year, month)[1]
    day = dt.datetime(year, month, last, MATURITY_HOUR)
    return day - dt.timedelta(days=(day.weekday() - calendar.FRIDAY) % 7)


def _month(index: int) -> tuple[int, int]:
    """(year, month) ``index`` months after 2000-01."""
    return 2000 + index // 12, index % 12 + 1


def _month_index(when: dt.datetime) -> int:
    return (when.year - 2000) * 12 + when.month - 1


@dataclasses.dataclass(frozen=True)
class SimFuture:
    """One simulated future: the underlying (a USDT perpetual of the model) and its term."""

    provider: str
    venue: str
    coin: str
    term_start: dt.datetime
    maturity: dt.datetime
    market_id: str
    #: Rho: the id of the underlying's market descriptor; Boros: None.
    underlying_id: str | None

    @property
    def contract(self) -> str:
        return USDT

    @property
    def venue_symbol(self) -> str:
        return venue_symbol(self.venue, self.coin, USDT)


def _hex_id(seed: int, *key: str) -> str:
    return "0x" + hashlib.blake2b("|".join((str(seed), *key)).encode(), digest_size=32).hexdigest()


def descriptor_id(seed: int, venue: str, coin: str) -> str:
    """The Rho market descriptor id of an underlying (its futures' ``marketId``)."""
    return _hex_id(seed, RHO, "market", venue, coin)


def futures(provider: str, seed: int, until: dt.datetime) -> list[SimFuture]:
    """Every future of ``provider`` whose term starts by ``until``, by maturity then underlying.

    Boros ids count up from 1 in that order (a month's maturities, then the next month's);
    Rho ids are 32-byte hex, as on chain."""
    month = _month_index(until)  # the last term to start by `until` starts this month or the one before
    stop = month + TERM_MONTHS + (1 if last_friday(*_month(month)) <= until else 0)
    return list(_futures_of_months(provider, seed, max(stop, _first_maturity_month())))


def _first_maturity_month() -> int:
    """The month index of the first maturity (the first term starting from :data:`RATES_START`)."""
    first = _month_index(RATES_START) + TERM_MONTHS
    return first + 1 if last_friday(*_month(first - TERM_MONTHS)) < RATES_START else first


@lru_cache(maxsize=64)
def _futures_of_months(provider: str, seed: int, stop: int) -> tuple[SimFuture, ...]:
    """:func:`futures` of the maturities of months before month index ``stop`` (each request
    asks for the listing: its ids are hashes, made once)."""
    underlyings = UNDERLYINGS[provider]
    first = _first_maturity_month()
    out = []
    for k in range(first, stop):
        start, maturity = last_friday(*_month(k - TERM_MONTHS)), last_friday(*_month(k))
        for u, (venue, coin) in enumerate(underlyings):
            if provider == BOROS:
                market_id, underlying_id = str(1 + (k - first) * len(underlyings) + u), None
            else:
                market_id = _hex_id(seed, RHO, "future", venue, coin, f"{maturity:%Y%m%d}")
                underlying_id = descriptor_id(seed, venue, coin)
            out.append(SimFuture(provider, venue, coin, start, maturity, market_id, underlying_id))
    return tuple(out)


# --------------------------------------------------------------------------- implied rates


def settlement_aprs(settlements: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prints -> (known at, epoch ms; APR; interval hours), in the order they became known."""
    frame = settlements.sort("ts")
    known = frame["ts"].dt.epoch("ms").to_numpy()
    hours = frame["interval_hours"].to_numpy()
    # 10 places: the 8-decimal rates' APRs, without the float noise of the division
    return known, np.round(frame["rate"].to_numpy() * HOURS_PER_YEAR / hours, 10), hours


def ewma_path(apr: np.ndarray, interval_hours: np.ndarray, half_life_h: float, start: float) -> np.ndarray:
    """The EWMA after each settlement, each weighted by the hours it covers, from ``start``."""
    alpha = 1.0 - 0.5 ** (interval_hours / half_life_h)
    out = np.empty(apr.size)
    level = start
    for i in range(apr.size):
        level += alpha[i] * (apr[i] - level)
        out[i] = level
    return out


def term_forecast(level: np.ndarray, long_run: np.ndarray, remaining_h: np.ndarray) -> np.ndarray:
    """Expected mean floating APR over the next ``remaining_h`` hours, starting from ``level``
    and reverting to ``long_run`` (half-life :data:`REVERSION_HALF_LIFE_H`)."""
    kt = math.log(2.0) / REVERSION_HALF_LIFE_H * np.maximum(remaining_h, 0.0)
    safe = np.where(kt > 1e-12, kt, 1.0)
    share = np.where(kt > 1e-12, -np.expm1(-kt) / safe, 1.0)  # (1 - e^-x) / x, 1 at x = 0
    return long_run + (level - long_run) * share


def known_at(known_ms: np.ndarray, values: np.ndarray, at_ms: np.ndarray, before: float) -> np.ndarray:
    """``values`` of the last entry known at each instant (``known_ms`` <= instant), else ``before``."""
    i = np.searchsorted(known_ms, at_ms, side="right") - 1
    return np.where(i >= 0, values[np.maximum(i, 0)], before)


@lru_cache(maxsize=256)
def _underlying_year(seed: int, venue: str, coin: str, year: int) -> tuple[np.ndarray, ...]:
    """(known ms, APR, recent level, long-run level) of the underlying's settlements of one
    calendar year, both EWMAs continuing the previous year's from :data:`EWMA_FROM` on (so a
    value never depends on the range asked)."""
    if year <= EWMA_FROM:
        fast = slow = LONG_RUN_APR
    else:
        before = _underlying_year(seed, venue, coin, year - 1)
        fast, slow = float(before[2][-1]), float(before[3][-1])
    prints = FundingModel(seed).settlements(
        venue, coin, dt.datetime(year, 1, 1), dt.datetime(year + 1, 1, 1), contract=USDT
    )
    known, apr, hours = settlement_aprs(prints)
    return known, apr, ewma_path(apr, hours, EWMA_HALF_LIFE_H, fast), ewma_path(apr, hours, LONG_RUN_HALF_LIFE_H, slow)


@lru_cache(maxsize=64)
def _underlying_until(seed: int, venue: str, coin: str, year: int) -> tuple[np.ndarray, ...]:
    """:func:`_underlying_year` of :data:`EWMA_FROM` .. ``year``, joined."""
    parts = [_underlying_year(seed, venue, coin, y) for y in range(EWMA_FROM, year + 1)]
    joined = tuple(np.concatenate([p[k] for p in parts]) for k in range(4))
    for values in joined:
        values.flags.writeable = False  # shared by every caller through the cache
    return joined


def underlying_at(seed: int, venue: str, coin: str, at_ms: np.ndarray) -> tuple[np.ndarray, ...]:
    """(recent level, long-run level, floating APR of the last settlement) known at each
    instant (epoch ms, from :data:`EWMA_FROM`); before any settlement: the start level and NaN."""
    last = int(at_ms.max()) if at_ms.size else 0
    known, apr, fast, slow = _underlying_until(
        seed, venue, coin, from_unix_s(max(last // 1000, unix_s(RATES_START))).year
    )
    return (
        known_at(known, fast, at_ms, LONG_RUN_APR),
        known_at(known, slow, at_ms, LONG_RUN_APR),
        known_at(known, apr, at_ms, np.nan),
    )


@lru_cache(maxsize=1024)
def _premium_hours(seed: int, future: SimFuture) -> np.ndarray:
    """The premium at each whole hour of the term, term start to maturity inclusive: a
    stationary hourly OU with the provider's mean, sd and half-life."""
    p = PREMIUM[future.provider]
    n = (future.maturity - future.term_start) // HOUR + 1
    phi = 0.5 ** (1.0 / p.half_life_h)
    r = rng(seed, "rates", future.provider, future.venue, future.coin, f"{future.maturity:%Y%m%d}")
    shocks = r.standard_normal(n)
    path = np.empty(n)
    path[0] = shocks[0]
    scale = math.sqrt(1.0 - phi * phi)
    for i in range(1, n):
        path[i] = phi * path[i - 1] + scale * shocks[i]
    return p.mean + p.sd * path


@lru_cache(maxsize=4096)
def _bridges(seed: int, future: SimFuture, day: int) -> np.ndarray:
    """1440 minute offsets of day ``day`` of the term: per hour a random walk pinned to 0 at
    both of the hour's ends (step sd :data:`BRIDGE_STEP_SD`)."""
    r = rng(seed, "rates-minutes", future.provider, future.venue, future.coin, f"{future.maturity:%Y%m%d}", str(day))
    walk = np.cumsum(r.standard_normal((24, 60)) * BRIDGE_STEP_SD, axis=1)
    k = np.arange(60)
    # the walk before step k, less its share of where the hour's walk ends
    before = np.concatenate([np.zeros((24, 1)), walk[:, :-1]], axis=1)
    return (before - walk[:, -1:] * k / 60.0).ravel()


def premium_at(seed: int, future: SimFuture, at_ms: np.ndarray) -> np.ndarray:
    """The premium at minute starts of the term: the hourly OU joined linearly, plus the
    minute bridges."""
    hours = _premium_hours(seed, future)
    minute = (at_ms - unix_s(future.term_start) * 1000) // MINUTE_MS
    hour, k = np.divmod(minute, 60)
    base = hours[hour] + (hours[np.minimum(hour + 1, hours.size - 1)] - hours[hour]) * k / 60.0
    day, of_day = np.divmod(minute, 1440)
    bridge = np.empty(minute.size)
    for d in np.unique(day):
        pick = day == d
        bridge[pick] = _bridges(seed, future, int(d))[of_day[pick]]
    return base + bridge


def implied_at(seed: int, future: SimFuture, at_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(implied APR, floating APR) at minute starts inside the term: the forecast of the mean
    floating APR over the remaining term from what is known at each instant, plus the premium."""
    level, long_run, floating = underlying_at(seed, future.venue, future.coin, at_ms)
    remaining_h = (unix_s(future.maturity) * 1000 - at_ms) / 3_600_000
    return term_forecast(level, long_run, remaining_h) + premium_at(seed, future, at_ms), floating


def _ohlc(values: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per run of equal ``group`` (sorted): first, max, min, last, and the group keys."""
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    ends = np.r_[starts[1:], group.size] - 1
    return (
        group[starts],
        values[starts],
        np.maximum.reduceat(values, starts),
        np.minimum.reduceat(values, starts),
        values[ends],
    )


def _grid(first_s: int, last_s: int, interval: str) -> tuple[int, int]:
    """The first and last candle open times in ``[first_s, last_s]`` (first > last: none)."""
    step = INTERVALS[interval]
    first = candle_open_s(first_s, interval)
    return (first if first >= first_s else first + step), candle_open_s(last_s, interval)


def candle_opens(minutes_ms: np.ndarray, interval: str) -> np.ndarray:
    """The open (unix s) of the ``interval`` candle holding each minute start (epoch ms)."""
    step = INTERVALS[interval]
    offset = candle_open_s(0, interval) % step
    seconds = minutes_ms // 1000
    return (seconds - offset) // step * step + offset


def implied_candles(
    seed: int, future: SimFuture, interval: str, first_s: int, last_s: int, now: dt.datetime
) -> list[tuple[int, float, float, float, float, float]]:
    """Candles opening in ``[first_s, last_s]`` (unix s): ``(open s, o, h, l, c, floating at
    the close)`` over the term's minutes, each once closed by ``now`` (a candle cut by the
    maturity closes at the maturity)."""
    term_start_ms, maturity_ms = unix_s(future.term_start) * 1000, unix_s(future.maturity) * 1000
    step_ms = INTERVALS[interval] * 1000
    first_s, last_s = _grid(first_s, last_s, interval)
    lo = max(first_s * 1000, term_start_ms)
    hi = min(last_s * 1000 + step_ms, maturity_ms)
    minutes = np.arange(lo, max(lo, hi), MINUTE_MS, dtype=np.int64)
    opens = candle_opens(minutes, interval)
    keep = np.minimum(opens * 1000 + step_ms, maturity_ms) <= unix_s(now) * 1000
    minutes, opens = minutes[keep], opens[keep]
    if minutes.size == 0:
        return []
    implied, floating = implied_at(seed, future, minutes)
    keys, o, h, low, c = _ohlc(implied, opens)
    last = np.r_[opens[1:] != opens[:-1], True]
    return list(zip(keys.tolist(), o.tolist(), h.tolist(), low.tolist(), c.tolist(), floating[last].tolist()))


def floating_candles(
    seed: int, venue: str, coin: str, interval: str, first_s: int, last_s: int, now: dt.datetime
) -> list[tuple[int, float, float, float, float]]:
    """The underlying's floating APR (last settlement known) as candles opening in
    ``[first_s, last_s]``, closed by ``now``, from :data:`EWMA_FROM` on."""
    step_ms = INTERVALS[interval] * 1000
    first_s, last_s = _grid(first_s, last_s, interval)
    lo = max(first_s * 1000, unix_s(dt.datetime(EWMA_FROM, 1, 1)) * 1000)
    minutes = np.arange(lo, max(lo, last_s * 1000 + step_ms), MINUTE_MS, dtype=np.int64)
    opens = candle_opens(minutes, interval)
    keep = opens * 1000 + step_ms <= unix_s(now) * 1000
    minutes, opens = minutes[keep], opens[keep]
    if minutes.size == 0:
        return []
    floating = underlying_at(seed, venue, coin, minutes)[2]
    known = ~np.isnan(floating)
    if not known.any():
        return []
    keys, o, h, low, c = _ohlc(floating[known], opens[known])
    return list(zip(keys.tolist(), o.tolist(), h.tolist(), low.tolist(), c.tolist()))


# --------------------------------------------------------------------------- the protocols


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _int_param(query: dict[str, str], name: str) -> int:
    value = query.get(name)
    if value in (None, ""):
        raise _BadRequest(400, f"{name} is required")
    try:
        return int(value)
    except ValueError:
        raise _BadRequest(400, f"{name} must be an integer, got {value!r}") from None


class _RateSim(VenueSim):
    """A provider's protocol over the funding model (the simulator's feed: model and clock)."""

    provider = ""

    def _now(self) -> dt.datetime:
        return self.feed.clock()

    def _futures(self) -> list[SimFuture]:
        return futures(self.provider, self.feed.model.seed, self._now())

    def _future(self, market_id: str) -> SimFuture | None:
        return next((f for f in self._futures() if f.market_id == market_id), None)

    def _quote(self, future: SimFuture) -> tuple[float, float]:
        """(implied, floating) APR of the last closed minute (a matured future's last one)."""
        now_ms = unix_s(self._now()) // 60 * 60_000
        at = min(max(now_ms - MINUTE_MS, unix_s(future.term_start) * 1000), unix_s(future.maturity) * 1000 - MINUTE_MS)
        implied, floating = implied_at(self.feed.model.seed, future, np.array([at], dtype=np.int64))
        return float(implied[0]), float(floating[0])


class RhoSim(_RateSim):
    """Rho legacy market data and Rho X floating-rate candles (see the module docstring)."""

    venue = provider = RHO

    def error(self, status: int, message: str) -> Response:
        return json_response({"error": message}, status)

    def rest(self, request: Request) -> Response:
        try:
            if request.method != "GET":
                raise _BadRequest(404, f"no {request.method} {request.path}")
            if request.path == MARKETS_PATH:
                return json_response(self._descriptors())
            if request.path == CANDLES_PATH:
                return json_response(self._candles(request.query))
            floating = _FLOATING.match(request.path.removeprefix(RHOX_PREFIX))
            if request.path.startswith(RHOX_PREFIX) and floating:
                return self._floating(floating["id"], request.query)
            raise _BadRequest(404, f"unknown path {request.path}")
        except _BadRequest as bad:
            if request.path.startswith(RHOX_PREFIX):
                code = "NOT_FOUND" if bad.status == 404 else "BAD_REQUEST"
                return json_response({"code": code, "message": bad.message}, bad.status)
            return self.error(bad.status, bad.message)

    def _descriptors(self) -> list[dict]:
        seed = self.feed.model.seed
        by_underlying: dict[tuple[str, str], list[SimFuture]] = {}
        for future in self._futures():
            by_underlying.setdefault((future.venue, future.coin), []).append(future)
        out = []
        for (venue, coin), listed in by_underlying.items():
            name = venue_symbol(venue, coin, USDT)
            rows = []
            for future in listed:
                start = unix_s(future.term_start)
                rows.append(
                    {
                        "id": future.market_id,
                        "marketId": future.underlying_id,
                        "termStart": big_number(start),
                        "termLength": big_number(unix_s(future.maturity) - start),
                        "vAMMParams": {"currentFutureRate": big_number(apr_to_wad(self._quote(future)[0]))},
                    }
                )
            out.append(
                {
                    "descriptor": {
                        "id": descriptor_id(seed, venue, coin),
                        "sourceName": PLATFORM[venue],
                        "instrumentName": name,
                        "tag": f"{PLATFORM[venue]} {name}",
                        "version": 1,
                        "underlyingName": "USDT",
                        "underlyingDecimals": big_number(6),
                        "rateMathType": 0,
                    },
                    "futures": rows,
                }
            )
        return out

    def _candles(self, query: dict[str, str]) -> dict | list:
        interval = query.get("interval") or ""
        if interval not in RHO_INTERVALS:
            raise _BadRequest(400, f"interval must be one of {', '.join(RHO_INTERVALS)}")
        first_s, last_s = _int_param(query, "from"), _int_param(query, "to")
        future_id = query.get("futureId") or ""
        if not future_id:
            raise _BadRequest(400, "futureId is required")
        if last_s < first_s:
            raise _BadRequest(400, "to is before from")
        first, last = _grid(first_s, last_s, interval)
        count = max(0, (last - first) // INTERVALS[interval] + 1)
        if count > RHO_CANDLE_LIMIT:
            return {"error": f"Too many candles requested: {count} > {RHO_CANDLE_LIMIT}"}
        future = self._future(future_id)
        if future is None:
            return {"error": f"Future {future_id} not found"}
        rows = implied_candles(self.feed.model.seed, future, interval, first, last, self._now()) if count else []
        return [
            {
                "timestamp": rfc3339(from_unix_s(ts)).replace("Z", ".000Z"),
                "open": apr_to_rho_candle(o),
                "high": apr_to_rho_candle(h),
                "low": apr_to_rho_candle(low),
                "close": apr_to_rho_candle(c),
            }
            for ts, o, h, low, c, _ in rows
        ]

    def _floating(self, market_id: str, query: dict[str, str]) -> Response:
        seed = self.feed.model.seed
        underlying = next(
            ((v, c) for v, c in UNDERLYINGS[RHO] if descriptor_id(seed, v, c) == market_id),
            None,
        )
        if underlying is None:
            raise _BadRequest(404, f"market {market_id} not found")
        interval = query.get("interval") or ""
        if interval not in RHOX_INTERVALS:
            raise _BadRequest(400, f"interval must be one of {', '.join(RHOX_INTERVALS)}")
        limit = _int_param({"limit": query.get("limit") or str(RHOX_LIMIT)}, "limit")
        if not 1 <= limit <= RHOX_LIMIT:
            raise _BadRequest(400, f"limit must be in 1..{RHOX_LIMIT}")
        try:
            end = iso_utc(query["endTime"]) if query.get("endTime") else self._now()
            start = (
                iso_utc(query["startTime"]) if query.get("startTime") else end - limit * INTERVALS[interval] * SECOND
            )
        except ValueError as exc:
            raise _BadRequest(400, f"startTime/endTime must be RFC 3339 ({exc})") from None
        first, last = _grid(unix_s(start), unix_s(end), interval)
        last = min(last, first + (limit - 1) * INTERVALS[interval])
        rows = floating_candles(seed, *underlying, interval, first, last, self._now()) if last >= first else []
        step = INTERVALS[interval]
        return json_response(
            {
                "candles": [
                    {
                        "marketId": market_id,
                        "interval": interval,
                        "openTime": rfc3339(from_unix_s(ts)),
                        "closeTime": rfc3339(from_unix_s(ts + step)),
                        "openPrice": repr(o),
                        "highPrice": repr(h),
                        "lowPrice": repr(low),
                        "closePrice": repr(c),
                        "seqId": str(i),
                    }
                    for i, (ts, o, h, low, c) in enumerate(rows)
                ]
            }
        )


class BorosSim(_RateSim):
    """Boros open API markets and charts (see the module docstring)."""

    venue = provider = BOROS

    def error(self, status: int, message: str) -> Response:
        reason = {400: "Bad Request", 404: "Not Found", 429: "Too Many Requests"}.get(status, "Error")
        return json_response({"statusCode": status, "message": message, "error": reason}, status)

    def rest(self, request: Request) -> Response:
        try:
            if request.method == "GET" and request.path == BOROS_MARKETS_PATH:
                return json_response(self._markets(request.query))
            if request.method == "GET" and request.path == BOROS_CHART_PATH:
                return json_response(self._chart(request.query))
            raise _BadRequest(404, f"Cannot {request.method} {request.path}")
        except _BadRequest as bad:
            return self.error(bad.status, bad.message)

    def _markets(self, query: dict[str, str]) -> dict:
        skip = _int_param({"skip": query.get("skip") or "0"}, "skip")
        limit = _int_param({"limit": query.get("limit") or str(BOROS_PAGE_LIMIT)}, "limit")
        if skip < 0 or not 1 <= limit <= BOROS_PAGE_LIMIT:
            raise _BadRequest(400, f"skip must be >= 0 and limit in 1..{BOROS_PAGE_LIMIT}")
        listed = sorted(self._futures(), key=lambda f: int(f.market_id))
        now = self._now()
        return {
            "results": [self._market(f, now) for f in listed[skip : skip + limit]],
            "total": len(listed),
            "skip": skip,
        }

    def _market(self, future: SimFuture, now: dt.datetime) -> dict:
        implied, floating = self._quote(future)
        maturity = unix_s(future.maturity)
        name = venue_symbol(future.venue, future.coin, USDT)
        settle = (unix_s(now) // (8 * 3600) + 1) * 8 * 3600
        return {
            "marketId": int(future.market_id),
            "imData": {
                "symbol": f"{PLATFORM[future.venue].upper()}-{name}-{future.maturity:%d%b%Y}".upper(),
                "maturity": maturity,
                "tickStep": 2,
            },
            "metadata": {"name": name, "assetSymbol": future.coin, "platformName": PLATFORM[future.venue]},
            "data": {
                "markApr": implied,
                "midApr": implied,
                "lastTradedApr": implied,
                "impliedApr": implied,
                "floatingApr": floating,
                "nextSettlementTime": min(settle, maturity),
                "timeToMaturity": max(0, maturity - unix_s(now)),
            },
            # how the real API shows a matured market is not documented
            "state": "Normal" if future.maturity > now else "Halted",
        }

    def _chart(self, query: dict[str, str]) -> dict:
        market_id = query.get("marketId") or ""
        interval = query.get("timeFrame") or ""
        if interval not in BOROS_INTERVALS:
            raise _BadRequest(400, f"timeFrame must be one of {', '.join(BOROS_INTERVALS)}")
        first_s, last_s = _int_param(query, "startTimestamp"), _int_param(query, "endTimestamp")
        future = self._future(market_id)
        if future is None:
            raise _BadRequest(400, f"market {market_id!r} not found")
        first, last = _grid(first_s, last_s, interval)
        last = min(last, first + (BOROS_CHART_LIMIT - 1) * INTERVALS[interval])
        rows = (
            implied_candles(self.feed.model.seed, future, interval, first, last, self._now()) if last >= first else []
        )
        return {
            "results": [
                {"ts": ts, "t": ts, "o": o, "h": h, "l": low, "c": c, "v": 0, "u": u, "i": c}
                for ts, o, h, low, c, u in rows
            ]
        }


#: The providers the simulator serves beside the venues, by the path prefix they answer under.
RATE_SIMS: dict[str, type[_RateSim]] = {RHO: RhoSim, BOROS: BorosSim}
