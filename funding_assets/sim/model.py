"""A deterministic synthetic funding model: the offline data source and the simulator's backbone.

Everything is generated on an absolute hourly grid starting at :data:`EPOCH`
(2020-01-01 00:00 UTC) and ending at :data:`HORIZON` (2040-01-01 00:00 UTC). Each
(seed, venue, coin) path is generated once over the whole grid and cached, so a print
depends only on its instant, never on the range that was asked for.

Units:

- premium: decimal fraction of the index price (``0.0001`` = 1 bp), averaged over each
  hour; venues read it as an 8 h rate in their funding formula.
- rate: decimal fraction per native funding interval (Hyperliquid and Deribit hourly
  prints are per hour), rounded to 8 decimals like the venues publish it.
- interval_hours: length of the native window in hours.
- timestamps: naive ``datetime`` / polars ``Datetime("ms")`` meaning UTC.

How each venue turns the premium into a rate (venue funding mechanics as documented by
Binance, Bybit, Hyperliquid and Deribit):

- binance, bybit, okx: ``F = P_avg + clamp(I - P_avg, -0.0005, +0.0005)`` with the
  interest ``I = 0.0001 * interval_hours / 8``; the premium and the clamp band are not
  pro-rated, as on Binance.
- hyperliquid: the same formula on an 8 h basis (``I = 0.0001``) paid at
  ``interval_hours / 8`` of the result (one eighth each hour).
- deribit: no interest; the premium outside a +-0.00025 dead band, as an 8 h rate paid
  at ``interval_hours / 8``.

Every rate is finally clamped to ``+-RATE_CAPS[venue]``.

Premium-index history (what the venues publish to rebuild their funding) is built from the
settlements, never the other way round, so the two agree by construction as on the venues:

- Binance, Bybit, OKX: one sample a minute on the venue's decimal grid
  (:meth:`FundingModel.premium_minutes`). The sample taken in minute ``[m, m + 1 min)`` is
  known at ``m + 1 min`` and belongs to the window whose ``(start, end]`` holds that instant;
  the venue formula of :mod:`funding_assets.premium` (weights 1..n over the window's
  samples) gives exactly the settled rate of every window, published or not.
- Hyperliquid: each hour's average premium (:meth:`FundingModel.window_premiums`), from
  which the formula gives exactly the hour's rate.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import numpy as np
import polars as pl

from ..errors import FundingInputError
from ..premium import formula
from ..prints import PRINT_SCHEMA, REALISED, TS
from ..venues import COINS, RATE_CAPS, VENUES, check_coin, check_venue, venue_symbol

SOURCE = "sim"

EPOCH = datetime(2020, 1, 1)
HORIZON = datetime(2040, 1, 1)
HOUR = timedelta(hours=1)
HOUR_MS = 3_600_000
EPOCH_MS = int(EPOCH.replace(tzinfo=timezone.utc).timestamp()) * 1000
N_HOURS = (HORIZON - EPOCH) // HOUR
HORIZON_MS = EPOCH_MS + N_HOURS * HOUR_MS

# Settlement schedules are built from 8 h blocks aligned on 00/08/16 UTC; a block settles
# once (8 h), twice (4 h) or eight times (1 h), so the 8 h grid survives interval changes.
BLOCK_HOURS = 8
N_BLOCKS = N_HOURS // BLOCK_HOURS

# Funding formula constants, decimal fractions per 8 h: every venue states its formula for
# an 8 h window.
RATE_BASIS_HOURS = 8.0
INTEREST_8H = 0.0001
CLAMP_8H = 0.0005
DERIBIT_DEAD_BAND_8H = 0.00025

# Premium model. The long-run premium sits at the interest rate so CEX funding prints the
# 0.0001 baseline most of the time; the common factor moves all venues of a coin together.
PREMIUM_MEAN = 0.0001
COMMON_HALF_LIFE_H = 72.0
COMMON_SD = 0.00025
VENUE_HALF_LIFE_H = 12.0
VENUE_SD = 0.0001

# Squeezes: per coin, about one a month, shared by every venue. Sizes are log-normal so a
# few per year push the 8 h average past the 0.00375 CEX cap.
SQUEEZE_PER_HOUR = 1.0 / (30 * 24)
SQUEEZE_UP_PROB = 0.8
SQUEEZE_MEDIAN = 0.002
SQUEEZE_LOG_SD = 0.7
SQUEEZE_HALF_LIFE_H = (8.0, 24.0)  # gone (below ~10 %) after 1-3 days
SQUEEZE_TAIL_H = 240  # 10+ half-lives: the truncated tail is below 0.1 % of the jump

# Interval episodes on the CEX venues: each calendar year is cut into 2 or 3 equal slots
# and each slot holds one episode of 3-15 blocks (1-5 days) at 4 h or 1 h.
EPISODE_VENUES = ("binance", "bybit", "okx")
EPISODES_PER_YEAR = (2, 3)
EPISODE_BLOCKS = (3, 15)
EPISODE_INTERVALS = (4, 1)
EPISODE_INTERVAL_PROBS = (0.6, 0.4)

HYPERLIQUID_HOURLY_FROM = datetime(2023, 6, 8)
HOURLY_VENUES = ("deribit",)

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


@dataclass(frozen=True)
class _Windows:
    """Every settlement window of one (seed, venue, coin) over the model span, published or not."""

    end_hour: np.ndarray  # window end (its settlement), hours since EPOCH, increasing
    hours: np.ndarray  # window length in hours; windows tile the span without gaps
    premium_avg: np.ndarray  # mean of the hourly premium over the window
    rate: np.ndarray  # settled rate per window (decimal fraction per window)


@dataclass(frozen=True)
class _Series:
    """All realised prints of one (seed, venue, coin) over the model span."""

    prints: pl.DataFrame
    funding_ms: np.ndarray  # funding_time as epoch ms, sorted, for slicing


class FundingModel:
    """Deterministic funding prints for every venue and coin from 2020-01-01 to 2040-01-01.

    Two models with the same ``seed`` return identical data; paths are cached per
    process, so only the first call for a (seed, venue, coin) pays for generation.
    """

    def __init__(self, seed: int = 7):
        self.seed = int(seed)

    def settlements(self, venue: str, coin: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Realised settlements with funding_time in [start, end) (naive UTC datetimes).

        Columns and dtypes are :data:`~funding_assets.prints.PRINT_SCHEMA`, sorted by
        ``funding_time``; ``rate`` is a decimal fraction per ``interval_hours``. The model
        has no settlements before 2020-01-01 08:00; ``end`` must not pass 2040-01-01.
        """
        venue, coin = check_venue(venue), check_coin(coin)
        start_ms, end_ms = _range_ms(start, end)
        series = _series(self.seed, venue, coin)
        lo, hi = np.searchsorted(series.funding_ms, [start_ms, end_ms])
        return series.prints.slice(int(lo), int(hi - lo))

    def interval_hours_at(self, venue: str, coin: str, when: datetime) -> float:
        """Length in hours of the native funding window containing ``when`` (naive UTC)."""
        venue, coin = check_venue(venue), check_coin(coin)
        when_ms = _utc_ms(when, "when")
        if not EPOCH_MS <= when_ms < HORIZON_MS:
            raise FundingInputError(f"when: {when} is outside the model span {EPOCH} to {HORIZON}")
        block = (when_ms - EPOCH_MS) // (BLOCK_HOURS * HOUR_MS)
        return float(_block_intervals(self.seed, venue, coin)[block])

    def predicted(self, venue: str, coin: str, at: datetime) -> tuple[float, datetime, float]:
        """The live estimate at ``at`` of the open native window: (rate, funding_time, hours).

        The window is the one ``at`` falls in (an instant on a boundary opens the next one);
        the rate applies the settlement formula to the mean premium elapsed so far, so it
        converges to the realised rate as the window closes. Rate is a decimal fraction per
        ``interval_hours``; ``funding_time`` is the window's end (naive UTC).
        """
        venue, coin = check_venue(venue), check_coin(coin)
        at_ms = _utc_ms(at, "at")
        if not EPOCH_MS <= at_ms < HORIZON_MS - BLOCK_HOURS * HOUR_MS:
            raise FundingInputError(f"at: {at} is outside the model span {EPOCH} to {HORIZON}")
        interval = int(self.interval_hours_at(venue, coin, at))
        hours_in = (at_ms - EPOCH_MS) / HOUR_MS
        end_hour = int(hours_in // interval) * interval + interval
        start_hour = end_hour - interval
        elapsed = hours_in - start_hour
        path = _venue_premium(self.seed, venue, coin)
        whole = int(elapsed)
        total = float(path[start_hour : start_hour + whole].sum()) + (elapsed - whole) * float(path[start_hour + whole])
        average = total / elapsed if elapsed > 0 else float(path[start_hour])
        rate = float(funding_rate(venue, np.array([average]), np.array([float(interval)]))[0])
        return rate, EPOCH + end_hour * HOUR, float(interval)

    def premium(self, venue: str, coin: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Hourly premium path (columns: ts, premium) — later used for live predicted prints.

        One row per hour starting in [start, end): ``ts`` is the start of the hour (naive
        UTC, ms) and ``premium`` the venue's mean premium index over that hour, a decimal
        fraction of the index price. The path starts at 2020-01-01 00:00.
        """
        venue, coin = check_venue(venue), check_coin(coin)
        start_ms, end_ms = _range_ms(start, end)
        first, stop = _first_hour_from(start_ms), _first_hour_from(end_ms)
        hours = np.arange(first, stop, dtype=np.int64)
        return pl.DataFrame(
            {
                "ts": pl.Series(EPOCH_MS + hours * HOUR_MS).cast(TS),
                "premium": _venue_premium(self.seed, venue, coin)[first:stop],
            }
        )

    def premium_minutes(self, venue: str, coin: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Premium-index samples, one a minute, of the minutes starting in [start, end).

        Columns ``ts`` (the start ``m`` of the sample's minute, naive UTC, ms) and ``premium``
        (decimal fraction on the venue's grid of :data:`MINUTE_DECIMALS` places). The sample
        is taken during ``[m, m + 1 min)``, known at ``m + 1 min`` and belongs to the window
        whose ``(start, end]`` holds ``m + 1 min``; ``formula(venue).rate`` of a window's
        samples is exactly the model's rate of that window. Venues: Binance, Bybit, OKX.
        Samples are generated per window when asked (the same minute always has the same
        value) and a few thousand windows are cached.
        """
        venue, coin = check_venue(venue), check_coin(coin)
        if venue not in MINUTE_VENUES:
            raise FundingInputError(f"venue: {venue} publishes no per-minute premium index (only {MINUTE_VENUES})")
        start_ms, end_ms = _range_ms(start, end)
        first = max(0, -(-(start_ms - EPOCH_MS) // MINUTE_MS))
        stop = max(first, -(-(end_ms - EPOCH_MS) // MINUTE_MS))
        if stop == first:
            return pl.DataFrame({"ts": pl.Series([], dtype=TS), "premium": pl.Series([], dtype=pl.Float64)})
        windows = _windows(self.seed, venue, coin)
        lo, hi = np.searchsorted(windows.end_hour, [first // 60, (stop - 1) // 60], side="right")
        samples = np.concatenate([_window_samples(self.seed, venue, coin, int(w)) for w in range(lo, hi + 1)])
        offset = first - int(windows.end_hour[lo] - windows.hours[lo]) * 60
        minutes = np.arange(first, stop, dtype=np.int64)
        return pl.DataFrame(
            {
                "ts": pl.Series(EPOCH_MS + minutes * MINUTE_MS).cast(TS),
                "premium": samples[offset : offset + minutes.size],
            }
        )

    def window_premiums(self, venue: str, coin: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Each window's average premium as a venue publishes it, for windows ending in [start, end).

        Columns ``funding_time`` (window end, naive UTC, ms), ``interval_hours``, ``rate``
        (the model's, also for settlements the venue does not publish) and ``premium``: a
        decimal fraction of :data:`WINDOW_PREMIUM_DECIMALS` places from which
        ``formula(venue).rate_from_average`` gives exactly ``rate`` (Hyperliquid's hourly
        ``fundingHistory`` premium): the model's mean premium inside the clamp band and past
        a cap, within rounding of it elsewhere (see :func:`target_average`).
        """
        venue, coin = check_venue(venue), check_coin(coin)
        start_ms, end_ms = _range_ms(start, end)
        windows = _windows(self.seed, venue, coin)
        end_ms_all = EPOCH_MS + windows.end_hour * HOUR_MS
        lo, hi = np.searchsorted(end_ms_all, [start_ms, end_ms])
        picked = slice(int(lo), int(hi))
        hours, rate, mean = windows.hours[picked], windows.rate[picked], windows.premium_avg[picked]
        premium = [
            published_average(venue, float(r), float(h), float(m), WINDOW_PREMIUM_DECIMALS)
            for r, h, m in zip(rate, hours, mean)
        ]
        return pl.DataFrame(
            {
                "funding_time": pl.Series(end_ms_all[picked]).cast(TS),
                "interval_hours": hours.astype(np.float64),
                "rate": rate,
                "premium": pl.Series(premium, dtype=pl.Float64),
            }
        )


def funding_rate(venue: str, premium_avg: np.ndarray, interval_hours: np.ndarray) -> np.ndarray:
    """Settled rate per native interval from the mean premium over each window.

    ``premium_avg`` is a decimal fraction of the index price, ``interval_hours`` the window
    length in hours; the result is a decimal fraction per window, capped at
    ``RATE_CAPS[venue]`` and rounded to 8 decimals (see the module docstring).
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
    cap = RATE_CAPS[venue]
    return np.round(np.clip(rate, -cap, cap), 8)


def _clamp_formula(premium: np.ndarray, interest: np.ndarray | float) -> np.ndarray:
    """The interest, unless the premium is more than the clamp band away from it."""
    return premium + np.clip(interest - premium, -CLAMP_8H, CLAMP_8H)


def _dead_band(premium: np.ndarray, band: float) -> np.ndarray:
    """Zero inside +-band, the premium less the band outside it (Deribit's formula)."""
    return np.maximum(premium, band) + np.minimum(premium, -band)


def target_average(venue: str, rate: float, interval_hours: float, premium_avg: float) -> float:
    """An average premium from which ``formula(venue)`` gives exactly ``rate`` for the window.

    Inverts the venue formula: a rate equal to the interest's (Deribit: zero) leaves the
    average anywhere inside the clamp band (dead band), so ``premium_avg`` is kept, pulled
    :data:`BAND_MARGIN` inside the band if needed; any other rate fixes the average at the
    rate (on the formula's own basis: x 8 / interval for Hyperliquid and Deribit) plus or
    minus the clamp; a capped rate needs an average at least that far out, so
    ``premium_avg`` is kept if it is further. Decimal fraction, not rounded.
    """
    f = formula(venue)
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


def published_average(venue: str, rate: float, interval_hours: float, premium_avg: float, decimals: int) -> float:
    """:func:`target_average` rounded to ``decimals`` places, checked against the formula."""
    average = round(target_average(venue, rate, interval_hours, premium_avg), decimals)
    if formula(venue).rate_from_average(average, interval_hours) != rate:
        raise RuntimeError(f"{venue}: average premium {average!r} does not give the settled rate {rate!r}")
    return average


# --- inputs -----------------------------------------------------------------------------


def _utc_ms(when: datetime, name: str) -> int:
    """Epoch milliseconds of a naive-UTC (or timezone-aware) datetime."""
    if not isinstance(when, datetime):
        raise FundingInputError(f"{name}: expected a datetime, got {type(when).__name__}")
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc).replace(tzinfo=None)
    return EPOCH_MS + (when - EPOCH) // timedelta(milliseconds=1)


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


# --- random streams ---------------------------------------------------------------------


def _rng(seed: int, *key: str) -> np.random.Generator:
    """An independent generator per (seed, purpose, venue/coin), stable across processes.

    Python's ``hash`` is salted per process, so the key is hashed with blake2b instead.
    """
    digest = hashlib.blake2b("|".join((str(seed), *key)).encode(), digest_size=16).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def _ar1(rng: np.random.Generator, n: int, half_life_h: float, sd: float) -> np.ndarray:
    """Stationary zero-mean hourly AR(1) with the given half-life (hours) and std dev."""
    phi = 0.5 ** (1.0 / half_life_h)
    alpha = 1.0 - phi
    shocks = rng.standard_normal(n) * (sd * np.sqrt(1.0 - phi**2))
    # x_t = phi x_{t-1} + e_t is an adjust=False EWM (alpha = 1 - phi) of e_t / alpha whose
    # first value is x_0 itself. Polars runs that recursion natively, which spares the
    # ~1 s import of scipy.signal for lfilter.
    inputs = shocks / alpha
    inputs[0] = rng.standard_normal() * sd  # start in the stationary distribution
    return pl.Series(inputs).ewm_mean(alpha=alpha, adjust=False).to_numpy()


def _squeezes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Hourly premium added by squeezes: jumps at random hours decaying exponentially."""
    starts = np.flatnonzero(rng.random(n) < SQUEEZE_PER_HOUR)
    count = starts.size
    sign = np.where(rng.random(count) < SQUEEZE_UP_PROB, 1.0, -1.0)
    size = sign * SQUEEZE_MEDIAN * np.exp(SQUEEZE_LOG_SD * rng.standard_normal(count))
    half_life = rng.uniform(*SQUEEZE_HALF_LIFE_H, count)
    lag = np.arange(SQUEEZE_TAIL_H)
    hour = starts[:, None] + lag
    value = size[:, None] * 0.5 ** (lag / half_life[:, None])
    inside = hour < n
    return np.bincount(hour[inside], weights=value[inside], minlength=n)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s + l)`` for each start/length pair, without a loop."""
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + offsets


# --- cached paths -----------------------------------------------------------------------

# Room for every series of two seeds: one seed's 15 series and their paths take ~60 MB, so
# Monte Carlo runs over many seeds recycle the cache instead of growing it.
_SERIES_CACHE = 2 * len(VENUES) * len(COINS)
_COIN_CACHE = 2 * len(COINS)


def _frozen(values: np.ndarray) -> np.ndarray:
    """Mark a cached array read-only so no caller can corrupt the shared path."""
    values.flags.writeable = False
    return values


@lru_cache(maxsize=_COIN_CACHE)
def _coin_premium(seed: int, coin: str) -> np.ndarray:
    """Hourly premium shared by every venue of ``coin``: mean + AR(1) + squeezes."""
    common = _ar1(_rng(seed, "common", coin), N_HOURS, COMMON_HALF_LIFE_H, COMMON_SD)
    return _frozen(PREMIUM_MEAN + common + _squeezes(_rng(seed, "squeeze", coin), N_HOURS))


@lru_cache(maxsize=_SERIES_CACHE)
def _venue_premium(seed: int, venue: str, coin: str) -> np.ndarray:
    """Hourly premium of one venue: the coin's path plus the venue's own AR(1) basis noise."""
    own = _ar1(_rng(seed, "venue", venue, coin), N_HOURS, VENUE_HALF_LIFE_H, VENUE_SD)
    return _frozen(_coin_premium(seed, coin) + own)


@lru_cache(maxsize=_SERIES_CACHE)
def _block_intervals(seed: int, venue: str, coin: str) -> np.ndarray:
    """Native interval in hours (8, 4 or 1) of every 8 h block of the model span."""
    if venue in HOURLY_VENUES:
        intervals = np.ones(N_BLOCKS, dtype=np.int64)
    elif venue == "hyperliquid":
        switch = (HYPERLIQUID_HOURLY_FROM - EPOCH) // (BLOCK_HOURS * HOUR)
        intervals = np.where(np.arange(N_BLOCKS) < switch, BLOCK_HOURS, 1)
    else:
        intervals = np.full(N_BLOCKS, BLOCK_HOURS, dtype=np.int64)
    if venue in EPISODE_VENUES:
        blocks, interval = _episodes(_rng(seed, "episodes", venue, coin))
        intervals[blocks] = interval
    return _frozen(intervals)


def _episodes(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
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
    per_year = rng.integers(low, high + 1, year_blocks.size - 1)
    slot_len = np.repeat(np.diff(year_blocks) // per_year, per_year)
    slot_index = _ranges(np.zeros_like(per_year), per_year)
    slot_start = np.repeat(year_blocks[:-1], per_year) + slot_index * slot_len
    count = slot_start.size
    length = rng.integers(EPISODE_BLOCKS[0], EPISODE_BLOCKS[1] + 1, count)
    start = slot_start + rng.integers(0, slot_len - length + 1)
    interval = rng.choice(EPISODE_INTERVALS, size=count, p=EPISODE_INTERVAL_PROBS)
    return _ranges(start, length), np.repeat(interval, length)


def _schedule(block_intervals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Settlement hours (end of each window, hours since EPOCH) and each window's length."""
    per_block = BLOCK_HOURS // block_intervals
    block_start = np.arange(block_intervals.size, dtype=np.int64) * BLOCK_HOURS
    interval = np.repeat(block_intervals, per_block)
    nth_in_block = _ranges(np.ones_like(per_block), per_block)  # 1-based
    return np.repeat(block_start, per_block) + nth_in_block * interval, interval


def _present(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mask of settlements that were published; the rest fall in runs of 1-3 missing ones."""
    starts = np.flatnonzero(rng.random(n) < GAP_START_PROB)
    starts = starts[np.diff(starts, prepend=-GAP_MIN_SPACING) >= GAP_MIN_SPACING]
    lengths = rng.choice(GAP_RUN_LENGTHS, size=starts.size, p=GAP_RUN_PROBS)
    missing = _ranges(starts, lengths)
    present = np.ones(n, dtype=bool)
    present[missing[missing < n]] = False
    return present


def _jitter_ms(rng: np.random.Generator, venue: str, n: int) -> np.ndarray:
    """Milliseconds between the settlement boundary and the venue-reported ts."""
    if venue not in JITTER_MS:
        return np.zeros(n, dtype=np.int64)
    low, high = JITTER_MS[venue]
    return rng.integers(low, high + 1, n)


def _window_rates(seed: int, venue: str, coin: str) -> _Windows:
    """Every window of (seed, venue, coin) with its mean premium and settled rate."""
    end_hour, interval = _schedule(_block_intervals(seed, venue, coin))
    # Mean premium over each window [end - interval, end) from a running sum of hours.
    running = np.concatenate(([0.0], np.cumsum(_venue_premium(seed, venue, coin))))
    premium_avg = (running[end_hour] - running[end_hour - interval]) / interval
    rate = funding_rate(venue, premium_avg, interval)
    return _Windows(*(_frozen(a) for a in (end_hour, interval, premium_avg, rate)))


# Cached apart from _series, and only for venues whose premium history is asked for: the
# prints alone do not need the windows of Deribit's 175 000 hours kept.
_windows = lru_cache(maxsize=_SERIES_CACHE)(_window_rates)


@lru_cache(maxsize=_WINDOW_SAMPLES_CACHE)
def _window_samples(seed: int, venue: str, coin: str, window: int) -> np.ndarray:
    """The per-minute premium samples of one window, oldest first (see the module docstring).

    Built from the window's settled rate: the target average of :func:`target_average`,
    reached exactly on the venue's decimal grid by integer arithmetic, then checked with
    the venue formula.
    """
    windows = _windows(seed, venue, coin)
    end_hour, hours = int(windows.end_hour[window]), int(windows.hours[window])
    rate = float(windows.rate[window])
    target = target_average(venue, rate, hours, float(windows.premium_avg[window]))
    n = hours * 60
    start_hour = end_hour - hours
    rng = _rng(seed, "minutes", venue, coin, str(start_hour))
    # The hourly path (each value the mean of its hour) interpolated at the minute centres.
    path = _venue_premium(seed, venue, coin)
    lo, hi = max(start_hour - 1, 0), min(end_hour + 1, N_HOURS)
    minute_hours = start_hour + (np.arange(n) + 0.5) / 60.0
    base = np.interp(minute_hours, np.arange(lo, hi) + 0.5, path[lo:hi])
    walk = np.cumsum(rng.standard_normal(n) * MINUTE_STEP_SD)
    bridge = walk - walk[-1] * np.arange(1, n + 1) / n  # zero at both ends of the window
    values = base + bridge + rng.standard_normal(n) * MINUTE_NOISE_SD
    weights = np.arange(1, n + 1, dtype=np.float64)
    bump = np.sin(np.pi * (np.arange(n) + 0.5) / n)
    bump /= weights @ bump / weights.sum()  # linear-weighted average 1
    values += (target - weights @ values / weights.sum()) * bump
    scale = 10 ** MINUTE_DECIMALS[venue]
    units = _with_weighted_sum(np.rint(values * scale).astype(np.int64), round(target * scale * (n * (n + 1) // 2)))
    samples = units / scale
    if formula(venue).rate(samples, hours) != rate:
        raise RuntimeError(f"{venue} {coin}: premium samples of the window ending at hour {end_hour} miss its rate")
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
    step = 1 if rest > 0 else -1
    for i in range(n, 0, -1):
        if abs(rest) >= i:
            units[i - 1] += step
            rest -= step * i
    return units


@lru_cache(maxsize=_SERIES_CACHE)
def _series(seed: int, venue: str, coin: str) -> _Series:
    """Every realised print of (seed, venue, coin) from EPOCH to HORIZON, gaps removed."""
    windows = _window_rates(seed, venue, coin)
    end_hour, interval, rate = windows.end_hour, windows.hours, windows.rate

    funding_ms = EPOCH_MS + end_hour * HOUR_MS
    ts_ms = funding_ms + _jitter_ms(_rng(seed, "jitter", venue, coin), venue, end_hour.size)
    keep = _present(_rng(seed, "gaps", venue, coin), end_hour.size)
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
        pl.lit(venue_symbol(venue, coin)).alias("venue_symbol"),
        "ts",
        "funding_time",
        "rate",
        "interval_hours",
        pl.lit(REALISED).alias("kind"),
        pl.lit(SOURCE).alias("source"),
    )
    return _Series(prints=prints.cast(PRINT_SCHEMA), funding_ms=_frozen(funding_ms[keep]))
