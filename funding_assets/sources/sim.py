"""The ``sim`` source: settled funding from the deterministic model, no network."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import polars as pl

from ..prints import PRINT_SCHEMA
from ..sim import FundingModel
from . import day_bounds

# Settlement timestamps trail their boundary by at most ~1.4 s (Hyperliquid), so a day's
# prints come from settlements up to one minute before the day starts.
SETTLEMENT_SLACK = dt.timedelta(minutes=1)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class SimSource:
    """Settlements of the model up to ``clock()``: a window settles when its time comes."""

    name = "sim"

    def __init__(self, model: FundingModel | None = None, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.model = model or FundingModel()
        self.clock = clock

    def check(self, venue: str) -> None:
        """The model serves every known venue."""

    def fetch(self, venue: str, coins: tuple[str, ...], start: dt.date, end: dt.date) -> pl.DataFrame:
        lo, hi = day_bounds(start, end)
        hi = min(hi, self.clock())
        if hi <= lo:
            return pl.DataFrame(schema=PRINT_SCHEMA)
        frames = [self.model.settlements(venue, coin, lo - SETTLEMENT_SLACK, hi) for coin in coins]
        prints = pl.concat(frames) if frames else pl.DataFrame(schema=PRINT_SCHEMA)
        return prints.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))
