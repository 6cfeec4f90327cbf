"""Settled funding and premium-index history through the venue clients: from the real venues
or the simulator.

``exchanges`` points the clients at the venues' public APIs; ``sim`` starts the loopback
simulator in this process (once) and points the same clients at it, so the demo and the
tests run every line of client code without the internet.
"""

import datetime as dt
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import polars as pl

from ..clients import KNOWN_INTERVALS, PREMIUM_SCHEMA, Budget, HttpClient, VenueClient, client_for
from ..clients.http import VenueUnreachable
from ..instruments import Instrument
from ..prints import PRINT_SCHEMA
from . import day_bounds

# A settlement's venue stamp trails its boundary by at most ~1.4 s (Hyperliquid), so a day's
# prints come from settlements up to a minute before the day starts.
SETTLEMENT_SLACK = dt.timedelta(minutes=1)
#: The window settling at a day's first 00:00 began up to one longest native window earlier.
FIRST_WINDOW = dt.timedelta(hours=max(KNOWN_INTERVALS))
MS = dt.timedelta(milliseconds=1)
#: The simulator in this process serves the pipeline unthrottled; budgets are a property of
#: the real venues (benchmarks enforce them explicitly).
UNLIMITED = Budget(1e9, 1.0)

_sim_lock = threading.Lock()
_sim_server = None


def in_process_simulator():
    """The process's loopback simulator (started on first use, wall-clock time, no faults)."""
    global _sim_server
    with _sim_lock:
        if _sim_server is None:
            from ..sim.server import SimServer

            _sim_server = SimServer().start()
        return _sim_server


class ClientSource:
    """Each venue's settled history through its client; one client per venue, reused.

    ``budget``: what the clients pace to: None, each venue's published budgets; one
    :class:`Budget` for every venue and request; or per venue, its budgets by bucket.
    """

    def __init__(
        self,
        name: str,
        urls: dict[str, tuple[str, str]] | None = None,
        budget: Budget | Mapping[str, Mapping[str, Budget]] | None = None,
        label: str | None = None,
    ) -> None:
        self.name = name
        self.urls = urls or {}
        self.budget = budget
        #: The ``source`` every print says (None: the client's own, e.g. ``binance REST``).
        self.label = label
        self._clients: dict[str, VenueClient] = {}
        self._instruments: dict[str, list[Instrument]] = {}
        self._lock = threading.Lock()

    def client(self, venue: str) -> VenueClient:
        with self._lock:
            if venue not in self._clients:
                rest, ws = self.urls.get(venue, (None, None))
                budget = self.budget.get(venue) if isinstance(self.budget, Mapping) else self.budget
                http = HttpClient(venue, rest, budget) if budget is not None else None
                extra = {"source_label": self.label} if self.label else {}
                self._clients[venue] = client_for(venue, rest, ws, http=http, **extra)
            return self._clients[venue]

    def instruments(self, venue: str) -> list[Instrument]:
        """The venue's perpetuals from its instrument endpoint (asked once per process)."""
        if venue not in self._instruments:
            with self._reaching():
                found = self.client(venue).instruments()
            with self._lock:
                self._instruments[venue] = found
        return self._instruments[venue]

    def check(self, venue: str) -> None:
        """Nothing to validate ahead: a venue's errors surface, named, when it is asked."""

    @contextmanager
    def _reaching(self) -> Iterator[None]:
        """An unreachable real venue's error, with the way to work offline added."""
        try:
            yield
        except VenueUnreachable as exc:
            if self.name != "exchanges":
                raise
            raise VenueUnreachable(
                exc.venue,
                exc.host,
                f"{exc}; check the network, or work offline on the simulator with "
                "FUNDING_ASSETS_SOURCE=sim (the default)",
            ) from None

    def fetch(self, venue: str, series: Sequence[Instrument | str], start: dt.date, end: dt.date) -> pl.DataFrame:
        lo, hi = day_bounds(start, end)
        client = self.client(venue)
        with self._reaching():
            frames = [client.settled(one, lo - SETTLEMENT_SLACK, hi) for one in _trading(series, lo, hi)]
        prints = pl.concat(frames) if frames else pl.DataFrame(schema=PRINT_SCHEMA)
        return prints.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))

    def premium(self, venue: str, series: Sequence[Instrument | str], start: dt.date, end: dt.date) -> pl.DataFrame:
        """Premium-index samples of ``venue`` for ``series`` known on the days ``start..end``,
        and those of the window settling at the first 00:00.

        :data:`~funding_assets.clients.PREMIUM_SCHEMA` rows, by coin then ``ts`` (the instant
        a sample is known), with ``ts`` in ``(start 00:00 - 8 h, end + 1 day 00:00)``: every
        window settling on these days has all its samples (the one settling at the first
        00:00 lies in the 8 h before it: windows of 1/2/4/6/8 h never cross a UTC midnight),
        and the window open at the last midnight has its samples so far. Samples of earlier
        windows the 8 h may bring belong to no window settling on these days. Deribit
        publishes none (empty frame).
        """
        lo, hi = day_bounds(start, end)
        client = self.client(venue)
        with self._reaching():
            frames = [
                client.premium_history(one, lo - FIRST_WINDOW, hi - MS)
                for one in _trading(series, lo - FIRST_WINDOW, hi)
            ]
        return pl.concat(frames) if frames else pl.DataFrame(schema=PREMIUM_SCHEMA)


def _trading(series: Sequence[Instrument | str], lo: dt.datetime, hi: dt.datetime) -> list[Instrument | str]:
    """The instruments listed at some instant of ``[lo, hi)`` (a plain coin is always asked)."""
    return [one for one in series if isinstance(one, str) or one.trades_between(lo, hi)]


def simulator_source() -> ClientSource:
    server = in_process_simulator()
    urls = {venue: (server.rest_url(venue), server.ws_url(venue)) for venue in server.sims}
    return ClientSource("sim", urls, budget=UNLIMITED, label="sim")


def exchanges_source() -> ClientSource:
    return ClientSource("exchanges")
