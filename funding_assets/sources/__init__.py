"""Where prints come from: one setting (``FUNDING_ASSETS_SOURCE``) picks the source.

- ``sim``: the venue clients against the loopback simulator in this process, offline.
- ``exchanges``: the venue clients against the real venues' public APIs.
- ``replay:<dir>``: the user's own files, ``<dir>/<venue>/*.csv|*.csv.gz|*.parquet``.

A source answers two questions: which perpetuals a venue lists (:meth:`Source.instruments`),
and every print of ``venue`` for some of them whose ``ts`` falls on the UTC days
``start..end`` (inclusive), in the print model of :mod:`funding_assets.prints`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import polars as pl

from ..errors import FundingInputError
from ..instruments import Instrument


class Source(Protocol):
    name: str

    def instruments(self, venue: str) -> list[Instrument]:
        """Every perpetual the source can serve for ``venue`` (listed or delisted)."""
        ...

    def fetch(self, venue: str, series: Sequence[Instrument | str], start: dt.date, end: dt.date) -> pl.DataFrame:
        """Prints of ``venue`` for ``series`` with ``ts`` on the days ``start..end`` inclusive
        (a plain coin is the venue's main perpetual of it)."""
        ...

    def check(self, venue: str) -> None:
        """Raise :class:`FundingInputError` now if ``venue`` cannot be served (bad files)."""
        ...


def open_source(spec: str) -> Source:
    """Build the source named by a ``FUNDING_ASSETS_SOURCE`` value."""
    if spec == "sim":
        from .venues import simulator_source

        return simulator_source()
    if spec == "exchanges":
        from .venues import exchanges_source

        return exchanges_source()
    if spec.startswith("replay:"):
        from .replay import ReplaySource

        return ReplaySource(Path(spec.removeprefix("replay:")))
    raise FundingInputError(f"FUNDING_ASSETS_SOURCE={spec!r}: expected 'sim', 'exchanges' or 'replay:<dir>'")


def day_bounds(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """``[start 00:00, end + 1 day 00:00)`` as naive UTC datetimes."""
    if end < start:
        raise FundingInputError(f"end date {end} is before start date {start}")
    return dt.datetime.combine(start, dt.time()), dt.datetime.combine(end, dt.time()) + dt.timedelta(days=1)
