"""Where prints come from: one setting (``FUNDING_ASSETS_SOURCE``) picks the source.

- ``sim``: the venue clients against the loopback simulator in this process, offline.
- ``exchanges``: the venue clients against the real venues' public APIs.
- ``replay:<dir>``: the user's own files, ``<dir>/<venue>/*.csv|*.csv.gz|*.parquet``.

A source answers two questions: which perpetuals a venue lists (:meth:`Source.instruments`),
and every print of ``venue`` for some of them whose ``ts`` falls on the UTC days
``start..end`` (inclusive), in the print model of :mod:`funding_assets.prints`.
:func:`fetch_all` asks it for several venues at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
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


#: What to fetch: ``(venue, series, start day, end day)``.
Task = tuple[str, Sequence[Instrument | str], dt.date, dt.date]


def fetch_all(
    source: Source, settled: Sequence[Task], premium: Sequence[Task] = ()
) -> tuple[list[pl.DataFrame], list[pl.DataFrame]]:
    """The prints of every ``settled`` task (:meth:`Source.fetch`) and the premium samples of
    every ``premium`` task (the source's ``premium``; none from a source without it), in the
    tasks' order.

    Every task is asked at once, on its own thread: each venue has its own request budgets,
    so one venue never waits for another, and a venue's premium pages go side by side with
    its settled history (both draw on the venue's budgets, which its client paces).
    """
    fetch_premium = getattr(source, "premium", None)
    jobs = [(source.fetch, task) for task in settled]
    jobs += [(fetch_premium, task) for task in premium] if fetch_premium is not None else []
    if not jobs:
        return [], []
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(fetch, *task) for fetch, task in jobs]
        results = [future.result() for future in futures]
    return results[: len(settled)], results[len(settled) :]


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
