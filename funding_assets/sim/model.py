"""A deterministic synthetic funding model: the offline data source and the simulator's backbone.

Every perpetual of the simulator's universe (:mod:`funding_assets.sim.universe`) has a
path on an absolute hourly grid from :data:`EPOCH` (2020-01-01 00:00 UTC) to
:data:`HORIZON` (2040-01-01 00:00 UTC). Paths are generated lazily in chunks of
:data:`CHUNK_HOURS` and cached, and each chunk depends only on (seed, venue, coin,
contract) and its own position, so a print depends only on its instant, never on the
range that was asked for. An instrument settles nothing before its listing nor after its
delisting.

Units:

- premium: decimal fraction of the index price (``0.0001`` = 1 bp), averaged over each
  hour; venues read it as an 8 h rate in their funding formula.
- rate: decimal fraction per native funding interval (Hyperliquid and Deribit hourly
  prints are per hour), rounded to 8 decimals like the venues publish it.
- interval_hours: length of the native window in hours.
- timestamps: naive ``datetime`` / polars ``Datetime("ms")`` meaning UTC.

**The premium** of one instrument, per hour (8 h basis), is the sum of

- the market's mood (:data:`MOOD`): a level and a volatility shared by every coin, one
  pair per quarter fitted to real BTC/ETH funding on Binance 2020-2025 (bull quarters sit
  above the clamp band, calm ones just under it, where real funding prints 0-1 bp), then
  repeated; interpolated between quarter midpoints;
- the coin's factor, shared by every venue and contract of the coin: an AR(1) scaled by the
  mood's volatility times its class's (:data:`CLASS_PARAMS`), a slow AR(1) drift that
  keeps some alts on one side for weeks, and squeezes (rare, short, sized per class: BTC
  peaks near 0.1-0.3 % per 8 h in manias, small alts reach their caps);
- the venue's own AR(1) basis noise and level (:data:`VENUE_LEVEL`);
- for USDC and inverse contracts, their own AR(1) noise around the coin's main contract
  (inverse funding drifts further, :data:`CONTRACT_NOISE`).

How each venue turns the premium into a rate (venue funding mechanics as documented by
Binance, Bybit, Hyperliquid and Deribit):

- binance, bybit, okx: ``F = P_avg + clamp(I - P_avg, -0.0005, +0.0005)`` with the
  interest ``I = 0.0001 * interval_hours / 8``; the premium and the clamp band are not
  pro-rated, as on Binance.
- hyperliquid: the same formula on an 8 h basis (``I = 0.0001``) paid at
  ``interval_hours / 8`` of the result (one eighth each hour).
- deribit: no interest; the premium outside a +-0.00025 dead band, as an 8 h rate paid
  at ``interval_hours / 8``.

Every rate is finally clamped to the instrument's cap (its ``rate_cap`` in the universe).

Premium-index history (what the venues publish to rebuild their funding) is built from the
settlements, never the other way round, so the two agree by construction as on the venues:

- Binance, Bybit, OKX: one sample a minute on the venue's decimal grid
  (:meth:`FundingModel.premium_minutes`). The sample taken in minute ``[m, m + 1 min)`` is
  known at ``m + 1 min`` and belongs to the window whose ``(start, end]`` holds that instant;
  the venue formula of :mod:`funding_assets.premium` (weights 1..n over the window's
  samples, the instrument's cap) gives exactly the settled rate of every window.
- Hyperliquid: each hour's average premium (:meth:`FundingModel.window_premiums`), from
  which the formula gives exactly the hour's rate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import numpy as np
import polars as pl

from ..errors import FundingInputError
from ..instruments import Instrument
from ..premium import Formula, formula
from ..prints import PRINT_SCHEMA, REALISED, TS
from ..venues import INVERSE, RATE_CAPS, USDC, check_coin, check_contract, check_venue
from . import universe
from .universe import LARGE, MAJOR, SMALL, coin_class, rng

SOURCE = "sim"

EPOCH = datetime(2020, 1, 1)
HORIZON = datetime(2040, 1, 1)
HOUR = timedelta(hours=1)
HOUR_MS = 3_600_000
EPOCH_MS = int(EPOCH.replace(tzinfo=timezone.utc).timestamp()) * 1000
N_HOURS = (HORIZON - EPOCH) // HOUR
HORIZON_MS = EPOCH_MS + N_HOURS * HOUR_MS

# Settlement schedules are built from 8 h blocks aligned on 00/08/16 UTC; a block settles
# once (8 h), twice (4 h), four (2 h) or eight times (1 h), so the 8 h grid survives
# interval changes.
BLOCK_HOURS = 8
N_BLOCKS = N_HOURS // BLOCK_HOURS

#: Paths are generated and cached in chunks of this many hours (365 days, whole 8 h
#: blocks); an AR(1) chunk starts from the previous chunk's shocks (:data:`BURN_IN_HALF_LIVES`),
#: so chunks join without a visible seam.
CHUNK_HOURS = 365 * 24
N_CHUNKS = -(-N_HOURS // CHUNK_HOURS)
BURN_IN_HALF_LIVES = 12  # the start state is remembered to 2**-12 of its size

# Funding formula constants, decimal fractions per 8 h: every venue states its formula for
# an 8 h window.
RATE_BASIS_HOURS = 8.0
INTEREST_8H = 0.0001
CLAMP_8H = 0.0005
DERIBIT_DEAD_BAND_8H = 0.00025

BP = 1e-4

#: The market's mood per quarter from 2020-01: (premium level, premium sd), in bp on the
#: 8 h basis, of the 8 h mean premium. Fitted quarter by quarter (a Gaussian premium
#: through the Binance formula) to the mean, sd and baseline share of real Binance
#: BTCUSDT and ETHUSDT funding 2020-2025 (supervik, yuchengzhang966 in ../shared/realdata);
#: 2026 continues calm as the 2025-26 real data does. From 2027 the 2020-2025 quarters repeat.
MOOD = (
    (6.9, 7.2), (-3.0, 2.2), (4.0, 5.4), (5.7, 4.1),  # 2020
    (11.8, 6.1), (4.7, 7.6), (5.3, 2.5), (5.7, 2.5),  # 2021
    (-4.2, 1.2), (-4.6, 1.2), (-5.4, 1.7), (-4.9, 0.9),  # 2022
    (-3.9, 0.9), (-4.4, 0.6), (-4.5, 0.6), (5.9, 1.5),  # 2023
    (6.3, 2.6), (-4.1, 0.8), (-4.6, 0.6), (5.8, 1.3),  # 2024
    (-4.5, 0.6), (-4.6, 0.5), (-4.3, 0.6), (-4.6, 0.5),  # 2025
    (-4.5, 0.5), (-4.5, 0.5), (-4.5, 0.5), (-4.5, 0.5),  # 2026
)  # fmt: skip
QUARTER_HOURS = 2190.0  # a quarter of 365 days


@dataclass(frozen=True)
class ClassParams:
    """How the funding of one coin class behaves (premiums in decimal, 8 h basis)."""

    level: float  # added to the mood's level
    vol: float  # multiplies the mood's sd
    half_life_h: float  # of the coin factor's AR(1)
    drift_sd: float  # sd of the slow coin drift
    squeezes_per_year: float
    squeeze_median: float  # |jump| of the hourly premium at a squeeze's start
    squeeze_log_sd: float
    squeeze_up: float  # share of squeezes upwards
    squeeze_half_life_h: tuple[float, float]


#: Calibrated against real settled funding per class (funding_assets_tests/test_sim_calibration.py).
CLASS_PARAMS: dict[str, ClassParams] = {
    MAJOR: ClassParams(0.0, 1.0, 16.0, 0.2 * BP, 1.0, 6 * BP, 0.5, 0.7, (4.0, 12.0)),
    LARGE: ClassParams(0.0, 2.0, 4.0, 0.5 * BP, 3.0, 12 * BP, 0.9, 0.5, (2.0, 8.0)),
    SMALL: ClassParams(0.0, 3.0, 3.0, 1.0 * BP, 5.0, 20 * BP, 1.0, 0.5, (2.0, 8.0)),
}
COIN_SHARE = 0.92  # sd share of the coin factor in the 8 h premium; the venue's is the rest
VENUE_SHARE = 0.4
VENUE_HALF_LIFE_H = 8.0
DRIFT_HALF_LIFE_H = 24.0 * 20
SQUEEZE_TAIL_H = 120  # past 10 half-lives of the longest squeeze

#: A venue's own premium level (bp, 8 h basis): Hyperliquid and Deribit perpetuals trade
#: nearer their index than the CEX ones in calm markets.
VENUE_LEVEL = {"hyperliquid": 4.5 * BP, "deribit": 4.5 * BP}
#: sd (in units of the mood sd) and half-life (h) of a USDC or inverse contract's own noise
#: around its coin's main contract.
CONTRACT_NOISE = {USDC: (0.3, 12.0), INVERSE: (0.6, 24.0)}

# Interval episodes on the CEX venues: each calendar year is cut into 2 or 3 equal slots
# and each slot holds one episode of 3-15 blocks (1-5 days) at 4 h or 1 h, on instruments
# that settle every 8 h.
EPISODE_VENUES = ("binance", "bybit", "okx")
EPISODES_PER_YEAR = (2, 3)
EPISODE_BLOCKS = (3, 15)
EPISODE_INTERVALS = (4, 1)
EPISODE_INTERVAL_PROBS = (0.6, 0.4)

# Missing settlements: any settlement starts a run of 1, 2 or 3 missing ones with this
# probability (about 0.2 % of rows go missing); a start within GAP_MIN_SPACING rows of the
# previous start is dropped so runs never merge into longer gaps.
GAP_START_PROB = 1.0 / 800
GAP_RUN_LENGTHS = (1, 2, 3)
GAP_RUN_PROBS = (0.6, 0.25, 0.15)
GAP_MIN_SPACING = max(GAP_RUN_LENGTHS) + 1

# Premium-index samples, one a minute, on the venues that publish them. A sample is the
# hourly path interpolated to the minute, plus a random walk pinned to zero at both ends of
# its window and white noise, plus a bump (zero at both ends) that moves the window's
# linear-weighted average onto the value its settled rate needs; so a window's samples join
# its neighbours' without a jump unless the settled rate forces one.
MINUTE_MS = 60_000
MINUTE_VENUES = ("binance", "bybit", "okx")
#: Decimal places of each venue's premium-index samples (Bybit documents 6, Binance prints 8).
MINUTE_DECIMALS = {"binance": 8, "bybit": 6, "okx": 10}
MINUTE_STEP_SD = 3e-6  # random-walk step per minute
MINUTE_NOISE_SD = 4e-6  # sampling noise per minute
#: Decimal places of a window's published average premium (Hyperliquid's fundingHistory).
WINDOW_PREMIUM_DECIMALS = 8
#: How far inside the clamp band (or past a cap) a target average is kept, so float
#: rounding can never move it across the edge.
BAND_MARGIN = 1e-6
_WINDOW_SAMPLES_CACHE = 4096  # windows of samples kept (<= 480 floats each)

# Delay of the venue-reported ts after the settlement boundary, ms (inclusive bounds);
# venues not listed report the exact boundary.
JITTER_MS: dict[str, tuple[int, int]] = {"binance": (1, 20), "hyperliquid": (10, 1400)}

#: One instrument of the model: (venue, coin, contract).
Key = tuple[str, str, str]


@dataclass(frozen=True)
class _Windows:
    """Every settlement window of one instrument in one chunk, published or not."""

    end_hour: np.ndarray  # window end (its settlement), hours since EPOCH, increasing
    hours: np.ndarray  # window length in hours; windows tile the chunk without gaps
    premium_avg: np.ndarray  # mean of the hourly premium over the window
    rate: np.ndarray  # settled rate per window (decimal fraction per window)


class FundingModel:
    """Deterministic funding prints for every perpetual of the universe, 2020-01-01 to 2040-01-01.

    Methods take ``(venue, coin, ...)`` and a keyword ``contract`` (``usdt``, ``usdc``,
    ``inverse``); None means the venue's main contract of the coin in the universe of this
    model's seed. Two models with the same ``seed`` return identical data; paths are cached
    per process in yearly chunks.
    """

    def __init__(self, seed: int = universe.DEFAULT_SEED):
        self.seed = int(seed)

    def instrument(self, venue: str, coin: str, contract: str | None = None) -> Instrument:
        """The universe's instrument (raises naming it if the venue never listed it)."""
        venue, coin = check_venue(venue), check_coin(coin)
        contract = None if contract is None else check_contract(contract)
        found = universe.find(venue, coin, contract, seed=self.seed)
        if found is None:
            kind = f"{contract} perpetual" if contract else "perpetual"
            raise FundingInputError(f"coin: {venue} lists no {kind} of {coin}")
        return found

    def settlements(
        self, venue: str, coin: str, start: datetime, end: datetime, *, contract: str | None = None
    ) -> pl.DataFrame:
        """Realised settlements with funding_time in [start, end) (naive UTC datetimes).

        Columns and dtypes are :data:`~funding_assets.prints.PRINT_SCHEMA`, sorted by
        ``funding_time``; ``rate`` is a decimal fraction per ``interval_hours``. Nothing
        before the instrument's listing or after its delisting; ``end`` must not pass
        2040-01-01.
        """
        inst = self.instrument(venue, coin, contract)
        start_ms, end_ms = _range_ms(start, end)
        frames = [_series(self.seed, inst.key, c) for c in _chunks_of(start_ms, end_ms)]
        out = pl.concat(frames) if frames else _series(self.seed, inst.key, 0).clear()
        return out.filter(pl.col("funding_time").is_between(_at(start_ms), _at(end_ms), closed="left"))

    def interval_hours_at(self, venue: str, coin: str, when: datetime, *, contract: str | None = None) -> float:
        """Length in hours of the native funding window containing ``when`` (naive UTC)."""
        inst = self.instrument(venue, coin, contract)
        when_ms = _utc_ms(when, "when")
        if not EPOCH_MS <= when_ms < HORIZON_MS:
            raise FundingInputError(f"when: {when} is outside the model span {EPOCH} to {HORIZON}")
        block = (when_ms - EPOCH_MS) // (BLOCK_HOURS * HOUR_MS)
        return float(_block_intervals(self.seed, inst.key)[block])

    def predicted(
        self, venue: str, coin: str, at: datetime, *, contract: str | None = None
    ) -> tuple[float, datetime, float]:
        """The live estimate at ``at`` of the open native window: (rate, funding_time, hours).

        The window is the one ``at`` falls in (an instant on a boundary opens the next one);
        the rate applies the settlement formula to the mean premium elapsed so far, so it
        converges to the realised rate as the window closes. Rate is a decimal fraction per
        ``interval_hours``; ``funding_time`` is the window's end (naive UTC).
        """
        return self.predicted_many([self.instrument(venue, coin, contract)], at)[0]

    def predicted_many(self, instruments: Sequence[Instrument], at: datetime) -> list[tuple[float, datetime, float]]:
        """:meth:`predicted` of several of the universe's instruments at one instant (a venue
        stream pushes many at once): one settlement-formula call per venue, the same values.
        :meth:`predicted` is this of one instrument: a model that changes the predictions
        overrides this method."""
        at_ms = _utc_ms(at, "at")
        if not EPOCH_MS <= at_ms < HORIZON_MS - BLOCK_HOURS * HOUR_MS:
            raise FundingInputError(f"at: {at} is outside the model span {EPOCH} to {HORIZON}")
        block = (at_ms - EPOCH_MS) // (BLOCK_HOURS * HOUR_MS)
        hours_in = (at_ms - EPOCH_MS) / HOUR_MS
        windows, by_venue = [], {}
        for i, inst in enumerate(instruments):
            key = inst.key
            interval = int(_block_intervals(self.seed, key)[block])
            end_hour = int(hours_in // interval) * interval + interval
            start_hour = end_hour - interval
            elapsed = hours_in - start_hour
            sums, path = _window_sums(self.seed, key, start_hour, end_hour)
            whole = int(elapsed)
            total = sums[whole] + (elapsed - whole) * path[whole]
            windows.append((total / elapsed if elapsed > 0 else path[0], interval, end_hour))
            by_venue.setdefault(inst.venue, []).append(i)
        rates = [0.0] * len(windows)
        for venue, members in by_venue.items():
            caps = [RATE_CAPS[venue] if instruments[i].rate_cap is None else instruments[i].rate_cap for i in members]
            got = funding_rate(
                venue,
                np.array([windows[i][0] for i in members]),
                np.array([float(windows[i][1]) for i in members]),
                np.array(caps),
            )
            for i, rate in zip(members, got.tolist()):
                rates[i] = rate
        return [(rate, EPOCH + end * HOUR, float(hours)) for rate, (_, hours, end) in zip(rates, windows)]

    def premium(
        self, venue: str, coin: str, start: datetime, end: datetime, *, contract: str | None = None
    ) -> pl.DataFrame:
        """Hourly premium path (columns: ts, premium).

        One row per hour starting in [start, end): ``ts`` is the start of the hour (naive
        UTC, ms) and ``premium`` the instrument's mean premium index over that hour, a
        decimal fraction of the index price. The path starts at 2020-01-01 00:00.
        """
        inst = self.instrument(venue, coin, contract)
        start_ms, end_ms = _range_ms(start, end)
        first, stop = _first_hour_from(start_ms), _first_hour_from(end_ms)
        hours = np.arange(first, stop, dtype=np.int64)
        return pl.DataFrame(
            {
                "ts": pl.Series(EPOCH_MS + hours * HOUR_MS).cast(TS),
                "premium": _path(self.seed, inst.key, first, stop),
            }
        )

    def premium_minutes(
        self, venue: str, coin: str, start: datetime, end: datetime, *, contract: str | None = None
    ) -> pl.DataFrame:
        """Premium-index samples, one a minute, of the minutes starting in [start, end).

        Columns ``ts`` (the start ``m`` of the sample's minute, naive UTC, ms) and ``premium``
        (decimal fraction on the venue's grid of :data:`MINUTE_DECIMALS` places). The sample
        is taken during ``[m, m + 1 min)``, known at ``m + 1 min`` and belongs to the window
        whose ``(start, end]`` holds ``m + 1 min``; :func:`instrument_formula` of a window's
        samples is exactly the model's rate of that window. Venues: Binance, Bybit, OKX.
        Samples are generated per window when asked (the same minute always has the same
        value) and a few thousand windows are cached; none outside the instrument's listing.
        """
        minute_ms, premium = self.minute_samples(venue, coin, start, end, contract=contract)
        return pl.DataFrame({"ts": pl.Series(minute_ms).cast(TS), "premium": premium})

    def minute_samples(
        self, venue: str, coin: str, start: datetime, end: datetime, *, contract: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`premium_minutes` as arrays: (minute start in epoch ms, premium), oldest first."""
        inst = self.instrument(venue, coin, contract)
        if inst.venue not in MINUTE_VENUES:
            raise FundingInputError(f"venue: {venue} publishes no per-minute premium index (only {MINUTE_VENUES})")
        start_ms, end_ms = _range_ms(start, end)
        first = max(0, -(-(start_ms - EPOCH_MS) // MINUTE_MS))
        stop = -(-(end_ms - EPOCH_MS) // MINUTE_MS)
        # A minute is listed when its end m + 1 min is after listed_at and not after delisted_at.
        if inst.listed_at is not None:
            first = max(first, _us_since_epoch(inst.listed_at) // (MINUTE_MS * 1000))
        if inst.delisted_at is not None:
            stop = min(stop, _us_since_epoch(inst.delisted_at) // (MINUTE_MS * 1000))
        if stop <= first:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        hour_lo, hour_hi = first // 60, (stop - 1) // 60
        block_lo, block_hi = hour_lo // BLOCK_HOURS, hour_hi // BLOCK_HOURS
        blocks = _block_intervals(self.seed, inst.key)[block_lo : block_hi + 1]
        ends, lengths = _schedule(blocks, block_lo)
        lo, hi = np.searchsorted(ends, [hour_lo, hour_hi], side="right")
        parts = [_window_samples(self.seed, inst.key, int(ends[w])) for w in range(lo, hi + 1)]
        samples = parts[0] if len(parts) == 1 else np.concatenate(parts)
        offset = first - int(ends[lo] - lengths[lo]) * 60
        return EPOCH_MS + np.arange(first, stop, dtype=np.int64) * MINUTE_MS, samples[offset : offset + stop - first]

    def window_premiums(
        self, venue: str, coin: str, start: datetime, end: datetime, *, contract: str | None = None
    ) -> pl.DataFrame:
        """Each window's average premium as a venue publishes it, for windows ending in [start, end).

        Columns ``funding_time`` (window end, naive UTC, ms), ``interval_hours``, ``rate``
        (the model's, also for settlements the venue does not publish) and ``premium``: a
        decimal fraction of :data:`WINDOW_PREMIUM_DECIMALS` places from which
        :func:`instrument_formula` gives exactly ``rate`` (Hyperliquid's hourly
        ``fundingHistory`` premium): the model's mean premium inside the clamp band and past
        a cap, within rounding of it elsewhere (see :func:`target_average`). Only windows
        of the instrument's listing.
        """
        inst = self.instrument(venue, coin, contract)
        start_ms, end_ms = _range_ms(start, end)
        parts = [_windows(self.seed, inst.key, c) for c in _chunks_of(start_ms, end_ms)]
        cols = ("end_hour", "hours", "premium_avg", "rate")
        end_hour, hours, mean, rate = (
            np.concatenate([getattr(p, c) for p in parts]) if parts else np.zeros(0) for c in cols
        )
        end_ms_all = EPOCH_MS + end_hour.astype(np.int64) * HOUR_MS
        keep = (end_ms_all >= start_ms) & (end_ms_all < end_ms)
        f = instrument_formula(inst)
        premium = [
            published_average(f, float(r), float(h), float(m), WINDOW_PREMIUM_DECIMALS)
            for r, h, m in zip(rate[keep], hours[keep], mean[keep])
        ]
        out = pl.DataFrame(
            {
                "funding_time": pl.Series(end_ms_all[keep], dtype=pl.Int64).cast(TS),
                "interval_hours": hours[keep].astype(np.float64),
                "rate": rate[keep].astype(np.float64),
                "premium": pl.Series(premium, dtype=pl.Float64),
            }
        )
        return out.filter(_listed(inst, pl.col("funding_time")))


def instrument_formula(instrument: Instrument) -> Formula:
    """The venue's formula with the instrument's own cap (alts settle past the venue default)."""
    f = formula(instrument.venue)
    return f if instrument.rate_cap is None else dataclasses.replace(f, cap=instrument.rate_cap)


def funding_rate(
    venue: str, premium_avg: np.ndarray, interval_hours: np.ndarray, cap: float | np.ndarray | None = None
) -> np.ndarray:
    """Settled rate per native interval from the mean premium over each window.

    ``premium_avg`` is a decimal fraction of the index price, ``interval_hours`` the window
    length in hours; the result is a decimal fraction per window, capped at ``cap`` (one or
    one per window; None: ``RATE_CAPS[venue]``) and rounded to 8 decimals (see the module
    docstring).
    """
    venue = check_venue(venue)
    share_of_8h = np.asarray(interval_hours, dtype=np.float64) / RATE_BASIS_HOURS
    premium_avg = np.asarray(premium_avg, dtype=np.float64)
    if venue == "deribit":
        rate = _dead_band(premium_avg, DERIBIT_DEAD_BAND_8H) * share_of_8h
    elif venue == "hyperliquid":
        rate = _clamp_formula(premium_avg, INTEREST_8H) * share_of_8h
    else:
        rate = _clamp_formula(premium_avg, INTEREST_8H * share_of_8h)
    cap = RATE_CAPS[venue] if cap is None else cap
    return np.round(np.clip(rate, -cap, cap), 8)


def _clamp_formula(premium: np.ndarray, interest: np.ndarray | float) -> np.ndarray:
    """The interest, unless the premium is more than the clamp band away from it."""
    return premium + np.clip(interest - premium, -CLAMP_8H, CLAMP_8H)


def _dead_band(premium: np.ndarray, band: float) -> np.ndarray:
    """Zero inside +-band, the premium less the band outside it (Deribit's formula)."""
    return np.maximum(premium, band) + np.minimum(premium, -band)


def target_average(f: Formula | str, rate: float, interval_hours: float, premium_avg: float) -> float:
    """An average premium from which formula ``f`` (or the venue's) gives exactly ``rate``.

    Inverts the venue formula: a rate equal to the interest's (Deribit: zero) leaves the
    average anywhere inside the clamp band (dead band), so ``premium_avg`` is kept, pulled
    :data:`BAND_MARGIN` inside the band if needed; any other rate fixes the average at the
    rate (on the formula's own basis: x 8 / interval for Hyperliquid and Deribit) plus or
    minus the clamp; a capped rate needs an average at least that far out, so
    ``premium_avg`` is kept if it is further. Decimal fraction, not rounded.
    """
    f = formula(f) if isinstance(f, str) else f
    share = interval_hours / f.basis_hours if f.basis_hours else 1.0
    centre = f.interest_8h * (f.basis_hours or interval_hours) / 8.0
    centre_rate = f.rate_from_average(centre, interval_hours)
    if rate == centre_rate:
        return min(max(premium_avg, centre - f.clamp + BAND_MARGIN), centre + f.clamp - BAND_MARGIN)
    side = 1.0 if rate > centre_rate else -1.0
    target = rate / share + side * f.clamp
    if abs(rate) >= f.cap:
        return side * max(side * premium_avg, side * target + BAND_MARGIN)
    return target


def published_average(f: Formula | str, rate: float, interval_hours: float, premium_avg: float, decimals: int) -> float:
    """:func:`target_average` rounded to ``decimals`` places, checked against the formula."""
    f = formula(f) if isinstance(f, str) else f
    average = round(target_average(f, rate, interval_hours, premium_avg), decimals)
    if f.rate_from_average(average, interval_hours) != rate:
        raise RuntimeError(f"{f.venue}: average premium {average!r} does not give the settled rate {rate!r}")
    return average


# --- inputs -----------------------------------------------------------------------------


def _utc_ms(when: datetime, name: str) -> int:
    """Epoch milliseconds of a naive-UTC (or timezone-aware) datetime."""
    if not isinstance(when, datetime):
        raise FundingInputError(f"{name}: expected a datetime, got {type(when).__name__}")
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc).replace(tzinfo=None)
    return EPOCH_MS + (when - EPOCH) // timedelta(milliseconds=1)


def _us_since_epoch(when: datetime) -> int:
    """Whole microseconds from :data:`EPOCH` to a naive-UTC datetime."""
    return (when - EPOCH) // timedelta(microseconds=1)


def _at(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms - EPOCH_MS)


def _first_hour_from(ms: int) -> int:
    """Index (hours since EPOCH, at least 0) of the first whole hour starting at or after ``ms``."""
    return max(0, -(-(ms - EPOCH_MS) // HOUR_MS))


def _range_ms(start: datetime, end: datetime) -> tuple[int, int]:
    start_ms, end_ms = _utc_ms(start, "start"), _utc_ms(end, "end")
    if end_ms < start_ms:
        raise FundingInputError(f"end {end} is before start {start}")
    if end_ms > HORIZON_MS:
        raise FundingInputError(f"end {end} is past the model horizon {HORIZON}")
    return start_ms, end_ms


def _chunks_of(start_ms: int, end_ms: int) -> range:
    """Chunks holding settlements with funding_time in [start_ms, end_ms): a window ending
    on a chunk's first hour belongs to the chunk before."""
    first = max(0, (start_ms - EPOCH_MS - 1) // (CHUNK_HOURS * HOUR_MS))
    last = min(N_CHUNKS - 1, (end_ms - EPOCH_MS - 1) // (CHUNK_HOURS * HOUR_MS))
    return range(first, last + 1) if end_ms > EPOCH_MS else range(0)


def _listed(inst: Instrument, at: pl.Expr) -> pl.Expr:
    """Settlement instants inside the instrument's listing: after listed_at, up to delisted_at."""
    inside = pl.lit(True)
    if inst.listed_at is not None:
        inside = inside & (at > inst.listed_at)
    if inst.delisted_at is not None:
        inside = inside & (at <= inst.delisted_at)
    return inside


# --- random streams ---------------------------------------------------------------------


def _ar1_chunk(seed: int, key: tuple[str, ...], chunk: int, half_life_h: float) -> np.ndarray:
    """Chunk ``chunk`` of a stationary unit-sd hourly AR(1) with the given half-life.

    Its state at the chunk's start comes from the previous chunk's shocks (the last
    :data:`BURN_IN_HALF_LIVES` half-lives of them), so consecutive chunks continue one path.
    """
    phi = 0.5 ** (1.0 / half_life_h)
    alpha = 1.0 - phi
    burn = min(CHUNK_HOURS, int(BURN_IN_HALF_LIVES * half_life_h))
    previous = rng(seed, *key, str(chunk - 1)).standard_normal(CHUNK_HOURS)[CHUNK_HOURS - burn :]
    shocks = np.concatenate([previous, rng(seed, *key, str(chunk)).standard_normal(CHUNK_HOURS)])
    # x_t = phi x_{t-1} + e_t is an adjust=False EWM (alpha = 1 - phi) of e_t / alpha; polars
    # runs that recursion natively, which spares the ~1 s import of scipy.signal.
    inputs = shocks * (np.sqrt(1.0 - phi**2) / alpha)
    inputs[0] = 0.0
    return pl.Series(inputs).ewm_mean(alpha=alpha, adjust=False).to_numpy()[burn:]


def _squeeze_events(seed: int, coin: str, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Squeezes starting in ``chunk``: (start hour, jump, half-life in hours)."""
    p = CLASS_PARAMS[coin_class(coin)]
    r = rng(seed, "squeeze", coin, str(chunk))
    starts = np.flatnonzero(r.random(CHUNK_HOURS) < p.squeezes_per_year / 8760.0) + chunk * CHUNK_HOURS
    count = starts.size
    sign = np.where(r.random(count) < p.squeeze_up, 1.0, -1.0)
    size = sign * p.squeeze_median * np.exp(p.squeeze_log_sd * r.standard_normal(count))
    return starts, size, r.uniform(*p.squeeze_half_life_h, count)


def _squeezes(seed: int, coin: str, chunk: int) -> np.ndarray:
    """Hourly premium the coin's squeezes add in ``chunk``: jumps decaying exponentially."""
    events = [_squeeze_events(seed, coin, c) for c in (chunk - 1, chunk)]
    starts, size, half_life = (np.concatenate(x) for x in zip(*events))
    lag = np.arange(SQUEEZE_TAIL_H)
    hour = starts[:, None] + lag - chunk * CHUNK_HOURS
    value = size[:, None] * 0.5 ** (lag / half_life[:, None])
    inside = (hour >= 0) & (hour < CHUNK_HOURS)
    return np.bincount(hour[inside], weights=value[inside], minlength=CHUNK_HOURS)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s + l)`` for each start/length pair, without a loop."""
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + offsets


# --- cached paths -----------------------------------------------------------------------

# Chunks of a year: a coin chunk is ~0.2 MB, an instrument's ~0.1 MB of path and up to
# ~0.5 MB of prints; room for every instrument of a venue for a year or two.
_COIN_CACHE = 512
_CHUNK_CACHE = 1024


def _frozen(values: np.ndarray) -> np.ndarray:
    """Mark a cached array read-only so no caller can corrupt the shared path."""
    values.flags.writeable = False
    return values


@lru_cache(maxsize=4)
def _mood() -> tuple[np.ndarray, np.ndarray]:
    """(level, sd) of the market's 8 h premium at every hour of the span (decimal)."""
    table = np.array(MOOD) * BP
    quarters = int(np.ceil(N_HOURS / QUARTER_HOURS)) + 2
    cycle = 24  # the 2020-2025 quarters repeat after the table
    index = np.arange(quarters)
    rows = np.where(index < len(table), index, (index - len(table)) % cycle)
    centres = (index + 0.5) * QUARTER_HOURS
    hours = np.arange(N_HOURS) + 0.5
    level = np.interp(hours, centres, table[rows, 0])
    sd = np.interp(hours, centres, table[rows, 1])
    return _frozen(level), _frozen(sd)


@lru_cache(maxsize=_COIN_CACHE)
def _coin_premium(seed: int, coin: str, chunk: int) -> np.ndarray:
    """Hourly premium shared by every venue and contract of ``coin`` in ``chunk``."""
    p = CLASS_PARAMS[coin_class(coin)]
    hours = slice(chunk * CHUNK_HOURS, (chunk + 1) * CHUNK_HOURS)
    level, sd = (np.resize(a[hours], CHUNK_HOURS) for a in _mood())
    fast = _ar1_chunk(seed, ("common", coin), chunk, p.half_life_h) * (COIN_SHARE * p.vol) * sd
    drift = _ar1_chunk(seed, ("drift", coin), chunk, DRIFT_HALF_LIFE_H) * p.drift_sd
    return _frozen(level + p.level + fast + drift + _squeezes(seed, coin, chunk))


@lru_cache(maxsize=_CHUNK_CACHE)
def _premium_chunk(seed: int, key: Key, chunk: int) -> np.ndarray:
    """Hourly premium of one instrument in ``chunk``: its coin's, plus the venue's basis
    noise and level, plus the contract's own noise for USDC and inverse contracts."""
    venue, coin, contract = key
    p = CLASS_PARAMS[coin_class(coin)]
    sd = np.resize(_mood()[1][chunk * CHUNK_HOURS : (chunk + 1) * CHUNK_HOURS], CHUNK_HOURS) * p.vol
    own = _ar1_chunk(seed, ("venue", venue, coin), chunk, VENUE_HALF_LIFE_H) * VENUE_SHARE * sd
    path = _coin_premium(seed, coin, chunk) + own + VENUE_LEVEL.get(venue, 0.0)
    main = universe.find(venue, coin, seed=seed)
    if main is not None and contract != main.contract and contract in CONTRACT_NOISE:
        share, half_life = CONTRACT_NOISE[contract]
        path = path + _ar1_chunk(seed, ("contract", *key), chunk, half_life) * share * sd
    return _frozen(path)


@lru_cache(maxsize=_WINDOW_SAMPLES_CACHE)
def _window_sums(seed: int, key: Key, first: int, stop: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(sum of the first k hours for k = 0..n, hourly premiums) of hours [first, stop): what a
    prediction inside the window reads, as floats (each sum exactly ``path[:k].sum()``)."""
    path = _path(seed, key, first, stop)
    return tuple(float(path[:k].sum()) for k in range(len(path) + 1)), tuple(path.tolist())


def _path(seed: int, key: Key, first: int, stop: int) -> np.ndarray:
    """Hourly premium of hours [first, stop) (hours since EPOCH, inside the span)."""
    if stop <= first:
        return np.zeros(0)
    chunks = range(first // CHUNK_HOURS, (stop - 1) // CHUNK_HOURS + 1)
    joined = np.concatenate([_premium_chunk(seed, key, c) for c in chunks])
    offset = chunks[0] * CHUNK_HOURS
    return joined[first - offset : stop - offset]


@lru_cache(maxsize=_CHUNK_CACHE)
def _block_intervals(seed: int, key: Key) -> np.ndarray:
    """Native interval in hours (8, 4, 2 or 1) of every 8 h block of the model span.

    The instrument's interval history from the universe (before its listing, its first
    interval), plus short-interval episodes on CEX instruments while they settle every 8 h.
    """
    venue, coin, _ = key
    inst = universe.find(venue, coin, key[2], seed=seed)
    steps = universe.interval_changes(inst, seed=seed) if inst is not None else ((EPOCH, 8.0),)
    block_of = [max(0, (when - EPOCH) // (BLOCK_HOURS * HOUR)) for when, _ in steps]
    intervals = np.full(N_BLOCKS, int(steps[0][1]), dtype=np.int8)
    for first, (_, hours) in zip(block_of, steps):
        intervals[first:] = int(hours)
    if venue in EPISODE_VENUES:
        blocks, interval = _episodes(rng(seed, "episodes", venue, coin))
        eight = intervals[blocks] == BLOCK_HOURS
        intervals[blocks[eight]] = interval[eight]
    return _frozen(intervals)


def _episodes(r: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Blocks inside shortened-interval episodes, and the interval each of them uses.

    Every calendar year is cut into k (2 or 3) equal slots of whole blocks; each slot
    holds one episode of 3-15 blocks at a random block offset, so episodes never overlap
    and always start and end on an 8 h boundary.
    """
    # HORIZON is a new year, so the span is whole calendar years.
    years = np.arange(np.datetime64(EPOCH, "Y"), np.datetime64(HORIZON, "Y") + 1)
    year_starts = years.astype("datetime64[h]")
    year_blocks = (year_starts - np.datetime64(EPOCH, "h")).astype(np.int64) // BLOCK_HOURS
    low, high = EPISODES_PER_YEAR
    per_year = r.integers(low, high + 1, year_blocks.size - 1)
    slot_len = np.repeat(np.diff(year_blocks) // per_year, per_year)
    slot_index = _ranges(np.zeros_like(per_year), per_year)
    slot_start = np.repeat(year_blocks[:-1], per_year) + slot_index * slot_len
    count = slot_start.size
    length = r.integers(EPISODE_BLOCKS[0], EPISODE_BLOCKS[1] + 1, count)
    start = slot_start + r.integers(0, slot_len - length + 1)
    interval = r.choice(EPISODE_INTERVALS, size=count, p=EPISODE_INTERVAL_PROBS)
    return _ranges(start, length), np.repeat(interval, length)


def _schedule(block_intervals: np.ndarray, first_block: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Settlement hours (end of each window, hours since EPOCH) and each window's length,
    for consecutive blocks starting at block ``first_block``."""
    block_intervals = block_intervals.astype(np.int64)
    per_block = BLOCK_HOURS // block_intervals
    block_start = (np.arange(block_intervals.size, dtype=np.int64) + first_block) * BLOCK_HOURS
    interval = np.repeat(block_intervals, per_block)
    nth_in_block = _ranges(np.ones_like(per_block), per_block)  # 1-based
    return np.repeat(block_start, per_block) + nth_in_block * interval, interval


def _present(r: np.random.Generator, n: int) -> np.ndarray:
    """Mask of settlements that were published; the rest fall in runs of 1-3 missing ones."""
    starts = np.flatnonzero(r.random(n) < GAP_START_PROB)
    starts = starts[np.diff(starts, prepend=-GAP_MIN_SPACING) >= GAP_MIN_SPACING]
    lengths = r.choice(GAP_RUN_LENGTHS, size=starts.size, p=GAP_RUN_PROBS)
    missing = _ranges(starts, lengths)
    present = np.ones(n, dtype=bool)
    present[missing[missing < n]] = False
    return present


def _jitter_ms(r: np.random.Generator, venue: str, n: int) -> np.ndarray:
    """Milliseconds between the settlement boundary and the venue-reported ts."""
    if venue not in JITTER_MS:
        return np.zeros(n, dtype=np.int64)
    low, high = JITTER_MS[venue]
    return r.integers(low, high + 1, n)


@lru_cache(maxsize=_CHUNK_CACHE)
def _windows(seed: int, key: Key, chunk: int) -> _Windows:
    """Every window of the instrument ending in ``chunk`` with its mean premium and rate."""
    blocks_per_chunk = CHUNK_HOURS // BLOCK_HOURS
    first_block = chunk * blocks_per_chunk
    blocks = _block_intervals(seed, key)[first_block : first_block + blocks_per_chunk]
    end_hour, interval = _schedule(blocks, first_block)
    start = first_block * BLOCK_HOURS
    path = _path(seed, key, start, start + blocks.size * BLOCK_HOURS)
    # Mean premium over each window [end - interval, end) from a running sum of hours.
    running = np.concatenate(([0.0], np.cumsum(path)))
    local = end_hour - start
    premium_avg = (running[local] - running[local - interval]) / interval
    inst = universe.find(key[0], key[1], key[2], seed=seed)
    rate = funding_rate(key[0], premium_avg, interval, inst.rate_cap if inst is not None else None)
    return _Windows(*(_frozen(a) for a in (end_hour, interval, premium_avg, rate)))


@lru_cache(maxsize=_WINDOW_SAMPLES_CACHE)
def _window_samples(seed: int, key: Key, end_hour: int) -> np.ndarray:
    """The per-minute premium samples of the window ending at ``end_hour``, oldest first.

    Built from the window's settled rate: the target average of :func:`target_average`,
    reached exactly on the venue's decimal grid by integer arithmetic, then checked with
    the instrument's formula.
    """
    venue, coin, contract = key
    chunk = (end_hour - 1) // CHUNK_HOURS
    windows = _windows(seed, key, chunk)
    window = int(np.searchsorted(windows.end_hour, end_hour))
    hours = int(windows.hours[window])
    rate = float(windows.rate[window])
    inst = universe.find(venue, coin, contract, seed=seed)
    f = instrument_formula(inst)
    target = target_average(f, rate, hours, float(windows.premium_avg[window]))
    n = hours * 60
    start_hour = end_hour - hours
    r = rng(seed, "minutes", venue, coin, contract, str(start_hour))
    # The hourly path (each value the mean of its hour) interpolated at the minute centres.
    lo, hi = max(start_hour - 1, 0), min(end_hour + 1, N_HOURS)
    minute_hours = start_hour + (np.arange(n) + 0.5) / 60.0
    base = np.interp(minute_hours, np.arange(lo, hi) + 0.5, _path(seed, key, lo, hi))
    walk = np.cumsum(r.standard_normal(n) * MINUTE_STEP_SD)
    bridge = walk - walk[-1] * np.arange(1, n + 1) / n  # zero at both ends of the window
    values = base + bridge + r.standard_normal(n) * MINUTE_NOISE_SD
    weights = np.arange(1, n + 1, dtype=np.float64)
    bump = np.sin(np.pi * (np.arange(n) + 0.5) / n)
    bump /= weights @ bump / weights.sum()  # linear-weighted average 1
    values += (target - weights @ values / weights.sum()) * bump
    scale = 10 ** MINUTE_DECIMALS[venue]
    units = _with_weighted_sum(np.rint(values * scale).astype(np.int64), round(target * scale * (n * (n + 1) // 2)))
    samples = units / scale
    if f.rate(samples, hours) != rate:
        raise RuntimeError(
            f"{venue} {coin} {contract}: premium samples of the window ending at hour {end_hour} miss its rate"
        )
    return _frozen(samples)


def _with_weighted_sum(units: np.ndarray, total: int) -> np.ndarray:
    """``units`` moved by whole units so that ``sum(i * units[i - 1])`` is exactly ``total``.

    The rest is spread one unit at a time over the heaviest samples that fit (weights n..1
    used at most once each can make any sum up to n(n+1)/2), so no sample moves by more
    than one unit beyond a common shift.
    """
    n = units.size
    weights = np.arange(1, n + 1, dtype=np.int64)
    rest = total - int(weights @ units)
    common = int(np.trunc(rest / int(weights.sum())))
    units = units + common
    rest -= common * int(weights.sum())
    # Greedy from the heaviest weight down: a run of the heaviest n, n-1, ..., n-c+1 whose
    # sum fits, then the one weight equal to what is left (lighter than the run's last).
    step = 1 if rest > 0 else -1
    run = np.cumsum(weights[::-1])
    count = int(np.searchsorted(run, abs(rest), side="right"))
    left = abs(rest) - (int(run[count - 1]) if count else 0)
    units[n - count :] += step
    if 0 < left < n - count + 1:
        units[left - 1] += step
    return units


@lru_cache(maxsize=_CHUNK_CACHE)
def _series(seed: int, key: Key, chunk: int) -> pl.DataFrame:
    """Every realised print of the instrument ending in ``chunk``, gaps and unlisted time removed."""
    venue, coin, contract = key
    windows = _windows(seed, key, chunk)
    end_hour, interval, rate = windows.end_hour, windows.hours, windows.rate
    funding_ms = EPOCH_MS + end_hour * HOUR_MS
    ts_ms = funding_ms + _jitter_ms(rng(seed, "jitter", venue, coin, contract, str(chunk)), venue, end_hour.size)
    keep = _present(rng(seed, "gaps", venue, coin, contract, str(chunk)), end_hour.size)
    inst = universe.find(venue, coin, contract, seed=seed)
    prints = pl.DataFrame(
        {
            "ts": pl.Series(ts_ms[keep]).cast(TS),
            "funding_time": pl.Series(funding_ms[keep]).cast(TS),
            "rate": rate[keep],
            "interval_hours": interval[keep].astype(np.float64),
        }
    ).select(
        pl.lit(venue).alias("venue"),
        pl.lit(coin).alias("symbol"),
        pl.lit(contract).alias("contract"),
        pl.lit(inst.venue_symbol).alias("venue_symbol"),
        "ts",
        "funding_time",
        "rate",
        "interval_hours",
        pl.lit(REALISED).alias("kind"),
        pl.lit(SOURCE).alias("source"),
    )
    return prints.filter(_listed(inst, pl.col("funding_time"))).cast(PRINT_SCHEMA)
