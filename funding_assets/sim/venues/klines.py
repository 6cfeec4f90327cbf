"""Premium-index history in the simulator: the model's per-minute samples as the venues serve them.

Binance (``premiumIndexKlines``) and Bybit (``premium-index-price-kline``) serve OHLC
candles of the premium index, OKX (``premium-history``) the samples themselves; each venue
module shapes the payload, this one picks what a query asks for. A minute's sample exists
once the minute has ended (it is known at its end), so a candle is served as soon as its
first minute has ended, with the minutes so far (its close is the latest sample), as the
venues serve the open candle. Candles of ``k`` minutes open on multiples of ``k`` minutes
since the Unix epoch. Times are epoch ms (UTC), premiums decimal fractions.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

import numpy as np

from ...instruments import Instrument
from ..model import EPOCH_MS, HORIZON_MS, MINUTE_MS
from ..server import Feed

UNIX = dt.datetime(1970, 1, 1)


def at_ms(ms: int) -> dt.datetime:
    """Epoch ms -> naive UTC datetime."""
    return UNIX + dt.timedelta(milliseconds=ms)


def now_ms(feed: Feed) -> int:
    return (feed.clock() - UNIX) // dt.timedelta(milliseconds=1)


def to_ms(when: dt.datetime) -> int:
    return (when - UNIX) // dt.timedelta(milliseconds=1)


class Candles(NamedTuple):
    """Premium-index candles, ascending: ``open_ms`` (epoch ms), OHLC of the candle's samples
    (decimal fractions) and ``samples``, how many minutes it holds."""

    open_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    samples: np.ndarray

    def reversed(self) -> Candles:
        """The same candles, newest first (columns that were one array stay one array)."""
        views: dict[int, np.ndarray] = {}
        return Candles(*(views.setdefault(id(column), column[::-1]) for column in self))


def known_minutes(feed: Feed, instrument: Instrument, lo_ms: int, hi_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Samples ``(minute start in epoch ms, premium)`` of the minutes starting in ``[lo_ms, hi_ms)``
    that have ended by the simulator's now while ``instrument`` was listed, oldest first."""
    hi_ms = min(hi_ms, now_ms(feed) // MINUTE_MS * MINUTE_MS, HORIZON_MS)
    lo_ms = max(lo_ms, EPOCH_MS)
    if instrument.listed_at is not None:
        lo_ms = max(lo_ms, to_ms(instrument.listed_at))
    if instrument.delisted_at is not None:
        hi_ms = min(hi_ms, to_ms(instrument.delisted_at))
    venue, coin, contract = instrument.key
    return feed.model.minute_samples(venue, coin, at_ms(lo_ms), at_ms(max(lo_ms, hi_ms)), contract=contract)


def candles(
    feed: Feed,
    instrument: Instrument,
    minutes: int,
    lo_ms: int | None,
    hi_ms: int | None,
    limit: int,
    *,
    newest: bool,
) -> Candles:
    """``instrument``'s candles of ``minutes`` minutes opening in ``[lo_ms, hi_ms]`` (None: unbounded), ascending.

    ``newest``: the last ``limit`` of them (up to ``hi_ms`` or now), else the first
    ``limit`` from ``lo_ms``.
    """
    width = minutes * MINUTE_MS
    known_end = min(now_ms(feed) // MINUTE_MS * MINUTE_MS, HORIZON_MS)  # minutes before it have ended
    first_open = EPOCH_MS // width * width
    if lo_ms is not None:
        first_open = max(first_open, -(-lo_ms // width) * width)
    last_open = (known_end - 1) // width * width
    if hi_ms is not None:
        last_open = min(last_open, hi_ms // width * width)
    if newest:
        first_open = max(first_open, last_open - (limit - 1) * width)
    else:
        last_open = min(last_open, first_open + (limit - 1) * width)
    if last_open < first_open:
        return _no_candles()
    minute_ms, premium = known_minutes(feed, instrument, first_open, last_open + width)
    if minute_ms.size == 0:
        return _no_candles()
    if minutes == 1:
        return Candles(minute_ms, premium, premium, premium, premium, np.ones(minute_ms.size, dtype=np.int64))
    open_ms = minute_ms // width * width
    first = np.flatnonzero(np.r_[True, open_ms[1:] != open_ms[:-1]])
    last = np.r_[first[1:], open_ms.size] - 1
    return Candles(
        open_ms[first],
        premium[first],
        np.maximum.reduceat(premium, first),
        np.minimum.reduceat(premium, first),
        premium[last],
        last - first + 1,
    )


def _no_candles() -> Candles:
    return Candles(np.zeros(0, dtype=np.int64), *(np.zeros(0),) * 4, np.zeros(0, dtype=np.int64))
