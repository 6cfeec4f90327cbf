"""The live collector (DESIGN section 5): venue streams -> live strip -> landing + live store.

``funding-assets collect`` runs :func:`main_collect`, which runs :class:`Collector` until
SIGINT/SIGTERM. Per venue, one asyncio task for steps 1-3 and one for step 4:

1. **Pre-warm**: realised settlements of the last :data:`PREWARM` (4 days) from REST
   (``client.settled`` in a worker thread), so the 8-window strip exists within seconds of
   start, never after 64 hours.
2. **Stream** ``client.stream(series, **stream_kwargs)``. Each frame of prints (a venue
   message, or the burst of messages that arrived together) must arrive within
   ``watchdog_s`` seconds of the previous one, or the stream is treated as dead and torn
   down (the venue client answers the venue's own keep-alives: Binance pings,
   Bybit/OKX/Hyperliquid application pings, Deribit heartbeats; see VENUES.md 8.7).
3. On any disconnect, error or watchdog expiry: **reconnect** after an exponential back-off
   with full jitter (``uniform(0, min(backoff_cap_s, backoff_s * 2**n))`` seconds, ``n``
   reset once a connection stayed up ``healthy_s`` seconds), and **fill the gap from REST**
   before consuming the new stream: ``client.settled(one, last realised funding_time seen,
   now)`` for each series; the realised prints it recovers are counted in ``gaps_filled``.
4. **Settlement poll**: a stream carries predictions only, so on a healthy connection the
   realised rate of a window would only arrive with the next reconnect's gap fill. Shortly
   after every settlement (``settle_delay_s``, 30 s, after the instant on ``clock``: venues
   publish a few seconds late) the venue's settled history is asked for the windows just
   settled, by the gap fill's own request, and the new realised prints take the gap fill's
   path (the strip re-emits every roll row they revise, the prints land). The schedule is
   the venue's settlement cadence, :data:`funding_assets.venues.DEFAULT_INTERVAL_HOURS`
   (00/08/16 UTC for the 8 h venues, every hour for the hourly ones), plus, per series, the
   settlement of every window its stream announced (a prediction's ``funding_time``): a
   symbol the venue moved to a shorter interval (4 h, 1 h) is polled at each of its own
   settlements, so the poll follows the finest cadence the venue uses, and a series whose
   stream announces its windows is only expected at those. A settlement not yet published
   is asked again every ``settle_retry_s`` (30 s), at most ``settle_retries`` (10) times,
   then a WARN names venue, series and window (the next poll or gap fill still picks it up
   from the last realised print). While a venue reconnects the poll waits: the gap fill
   after the reconnect covers the same windows.

**Series.** The collector follows what it is given: coins (each venue's main perpetual of
the coin, as the clients read a coin) or :class:`~funding_assets.instruments.Instrument` s
(any contract; an instrument is followed on its own venue only), and hands them to the
clients as given. Everything it keeps per series (the strip, the last realised settlement,
the windows announced, the fills and polls) is keyed by ``(coin, contract)``
(:func:`series_key`), never by coin alone: Binance BTCUSDT and BTCUSD_PERP are two series.

Every print, from the stream or from REST, goes through the in-memory
:class:`~funding_assets.live.livestrip.LiveStrip` (one task owns it: no locks) and, with
``received_at`` (wall-clock UTC when the message reached the collector), to the
:class:`~funding_assets.live.landing.LandingWriter` (``<home>/landing``); the strip rows it
causes go to the :class:`~funding_assets.live.store.LiveStore` (``<home>/live/live.duckdb``).
Roll rows (a window closed, or a late settlement revised one) are computed by
:func:`funding_assets.strip.roll_snapshots` itself in a worker thread, jobs in order, so the
event loop never waits the tens of milliseconds that takes. Rows are handed over in
micro-batches every ``flush_interval_s`` (20 ms): strip rows straight to the store's queue,
prints to a landing worker that writes files in a thread, in arrival order.

**Hot path** (DESIGN section 9: 20,000 messages/s, p99 under 250 ms to the stored strip):
the event loop does per message only what cannot be done per frame or per micro-batch. A
client hands over a whole burst as one frame; :meth:`Collector.handle` reads a frame's
times as epoch-ms ints (no datetime per print), folds its prints into the strip, whose
intraday rows come back with epoch-ms times too, and queues the frame itself; a
micro-batch becomes one frame of prints (a concatenation) and one frame of strip rows
(built column by column), both built off the event loop, by the landing worker's thread and
the store's writer. ``rt.messages`` counts venue messages (the client's
``stream_messages``), ``rt.frames`` the frames. The same
housekeeping task writes ``<home>/live/status.json`` every ``status_interval_s`` (1 s) and
logs each venue's state and lag (``logging``, logger ``funding_assets.live``; lag = the
venue clock's now minus the newest print's ``ts``, seconds). The collector never opens the
warehouse file.

Clean shutdown (the stop event, SIGINT or SIGTERM): streams are cancelled (their sockets
closed), the roll jobs finish, everything pending is handed over, the landing buffer is
landed as a whole file, the store commits and closes, and a final status with every venue
``stopped`` is written.

Crash (SIGKILL, OOM kill, power cut): the landing writer journals every frame it is handed
(:mod:`funding_assets.live.landing`, "Journal") and the next start lands that journal as one
file before anything else. A killed process therefore loses only the prints received in the
last :data:`CRASH_LOSS_S` (those still in the micro-batch or queued for the landing worker);
an OS crash loses at most :data:`~funding_assets.live.landing.JOURNAL_FSYNC_S` more. Realised
prints lost that way come back with the next start's pre-warm; predictions do not.

Times: ``clock`` is the venues' "now" (naive UTC; the simulator's clock when talking to a
simulator running faster than real time), bounds the REST ranges and times the settlement
poll; ``received_at``, the status times and the latencies are wall-clock. Durations are
seconds unless named ``_ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import inspect
import logging
import random
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from .. import instruments
from ..clients import VenueClient, client_for
from ..instruments import MAIN, Instrument
from ..prints import PRINT_SCHEMA, REALISED, TS
from ..venues import DEFAULT_INTERVAL_HOURS, SPECS, check_coin, spec
from .landing import LandingWriter, with_contract
from .livestrip import PRINT_COLUMNS, LiveStrip, compute_jobs, rows_frame
from .status import VenueStatus, status_path, write_status
from .store import PUT_SCHEMA, LiveStore, live_store_path

log = logging.getLogger("funding_assets.live")

#: Realised history fetched at start-up: 8 windows of 8 h plus the interpolation reach and
#: the day a window's prints may be quoted ahead (the batch engine's lookback).
PREWARM = dt.timedelta(days=4)
LANDING_DIR = "landing"
#: Watchdog per venue for the real venues (s), each venue's ``VenueSpec.watchdog_s``: a data
#: message comes at least every second on Binance, Bybit, Hyperliquid and Deribit, but OKX
#: pushes ``funding-rate`` only every 30-90 s (its keep-alive pongs are not data).
VENUE_WATCHDOG_S = {venue: facts.watchdog_s for venue, facts in SPECS.items()}
#: Settlement poll (module docstring, 4): seconds on ``clock`` after a settlement instant
#: before its settled history is asked (venues publish a few seconds late), seconds between
#: two polls of a settlement not yet published, and polls after the first before the WARN.
SETTLE_DELAY_S = 30.0
SETTLE_RETRY_S = 30.0
SETTLE_RETRIES = 10
#: The crash window (s): a SIGKILL loses at most the prints received this long before it
#: (the 20 ms micro-batch, ``flush_interval_s``, plus the hand-over to the landing worker's
#: thread); everything older is in the landing journal, on disk within JOURNAL_FSYNC_S.
#: Measured by test_live_reliability.py against the simulator.
CRASH_LOSS_S = 0.1
#: Turns of the event loop the watchdog gives a stream, once its time is up, to deliver the
#: messages that had already arrived (:meth:`Collector._next_frame`).
WATCHDOG_GRACE_TURNS = 4
#: Longest wall-clock sleep (s) between two readings of ``clock`` while waiting for a
#: settlement: ``clock`` may run faster than the wall clock (a simulator).
CLOCK_CHECK_S = 1.0
_UNIX = dt.datetime(1970, 1, 1)  # cadence boundaries count from here (00:00 UTC)
_MS = dt.timedelta(milliseconds=1)
_PRINT_SCHEMA_ITEMS = list(PRINT_SCHEMA.items())
_PRINT_COLUMNS = list(PRINT_COLUMNS)
_TS = PRINT_COLUMNS.index("ts")
_FT = PRINT_COLUMNS.index("funding_time")
_KIND = PRINT_COLUMNS.index("kind")
_SYMBOL = PRINT_COLUMNS.index("symbol")
_CONTRACT = PRINT_COLUMNS.index("contract")

#: A series the collector follows on a venue: (canonical coin, contract).
SeriesKey = tuple[str, str]


def series_key(venue: str, item: str | Instrument) -> SeriesKey:
    """(coin, contract) of an instrument, or of the venue's main perpetual of a coin."""
    if isinstance(item, Instrument):
        return item.symbol, item.contract
    coin = check_coin(item)
    return coin, spec(venue).default_contract(coin)


def venue_series(venue: str, series: Sequence[str | Instrument]) -> dict[SeriesKey, str | Instrument]:
    """What is followed on ``venue``: every coin, and the instruments of that venue, keyed
    by (coin, contract), once each, in the order given."""
    out: dict[SeriesKey, str | Instrument] = {}
    for item in series:
        if not isinstance(item, Instrument) or item.venue == venue:
            out.setdefault(series_key(venue, item), item)
    return out


def _label(key: SeriesKey) -> str:
    return " ".join(key)


def utcnow() -> dt.datetime:
    """Wall-clock naive UTC."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _wall_ms() -> dt.datetime:
    """Wall-clock naive UTC truncated to the millisecond (the stored precision)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _epoch_ms_rows(frame: pl.DataFrame) -> list[tuple]:
    """A print-model frame's rows with ``ts`` and ``funding_time`` as epoch ms ints: no
    datetime object per print on the hot path, and column by column (eager casts, no
    query plan), which costs a third of ``frame.rows()``."""
    columns = [frame.get_column(c) for c in _PRINT_COLUMNS]
    for i in (_TS, _FT):
        columns[i] = columns[i].cast(pl.Int64)  # Datetime("ms") is epoch ms underneath
    return list(zip(*(c.to_list() for c in columns)))


def landing_frame(prints: Sequence[tuple[pl.DataFrame, int]]) -> pl.DataFrame:
    """Print frames, each with the epoch ms its message was received at, as one frame with a
    ``received_at`` column (naive UTC ms), in order."""
    frames = [frame for frame, _ in prints]
    received = np.repeat(np.array([at for _, at in prints], dtype=np.int64), [f.height for f in frames])
    return pl.concat(frames, rechunk=True).hstack([pl.Series("received_at", received).cast(TS)])


def store_frame(intraday: Sequence[tuple[list[tuple], int]], rolls: Sequence[tuple]) -> pl.DataFrame:
    """A micro-batch's strip rows as one :data:`~funding_assets.live.store.PUT_SCHEMA` frame:
    ``intraday``, per message, its epoch-ms intraday rows (:meth:`LiveStrip.update_deferred`)
    and the epoch ms it was received at; ``rolls``, roll rows with their ``received_at``."""
    parts = []
    if intraday:
        snaps = [row for batch, _ in intraday for row in batch]
        received = np.repeat(np.array([at for _, at in intraday], dtype=np.int64), [len(b) for b, _ in intraday])
        parts.append(rows_frame(snaps, epoch_ms=True).hstack([pl.Series("received_at", received).cast(TS)]))
    if rolls:
        parts.append(pl.DataFrame(list(rolls), schema=PUT_SCHEMA, orient="row"))
    return pl.concat(parts) if len(parts) > 1 else parts[0] if parts else pl.DataFrame(schema=PUT_SCHEMA)


class StreamSilent(ConnectionError):
    """The watchdog saw no message for ``watchdog_s`` seconds."""


@dataclasses.dataclass
class VenueRuntime:
    """One venue's live state: its client, what it follows, counters (the status) and
    gap-fill record. Per-series state is keyed by (coin, contract)."""

    venue: str
    client: VenueClient
    #: what is followed: (coin, contract) -> the coin or instrument the client is asked with
    series: dict[SeriesKey, str | Instrument] = dataclasses.field(default_factory=dict)
    state: str = "connecting"
    last_message_at: dt.datetime | None = None
    last_print_ts: dt.datetime | None = None
    messages: int = 0  # stream messages that carried prints
    frames: int = 0  # frames the stream handed over (a message, or a burst received together)
    prints: int = 0  # prints received from the stream
    client_messages: int = 0  # the client's ``stream_messages`` when last read
    reconnects: int = 0
    gaps_filled: int = 0  # realised prints recovered from REST after reconnects
    settled_polled: int = 0  # realised prints learned by the settlement poll
    prewarmed: int = 0  # realised prints fetched at start-up
    last_error: str | None = None
    connections: int = 0
    watchdog_expiries: int = 0  # streams declared dead for silence
    #: latest realised funding_time seen per series (where the next gap fill starts)
    last_realised: dict[SeriesKey, dt.datetime] = dataclasses.field(default_factory=dict)
    #: every REST fill: (kind 'prewarm'|'gap', series, start, end, new realised prints)
    fills: list[tuple[str, SeriesKey, dt.datetime, dt.datetime, int]] = dataclasses.field(default_factory=list)
    #: per series, the settlements of the windows the stream announced (predicted prints'
    #: funding_time) not yet learned; a series is present once its stream announced a window
    announced: dict[SeriesKey, set[dt.datetime]] = dataclasses.field(default_factory=dict)
    #: every settlement poll: (series, window, start, end, new realised prints)
    polls: list[tuple[SeriesKey, dt.datetime, dt.datetime, dt.datetime, int]] = dataclasses.field(default_factory=list)
    prewarm_done: asyncio.Event = dataclasses.field(default_factory=asyncio.Event, repr=False)

    def status(self) -> VenueStatus:
        return VenueStatus(
            self.venue,
            self.state,
            self.last_message_at,
            self.last_print_ts,
            self.messages,
            self.prints,
            self.reconnects,
            self.gaps_filled,
            int(getattr(self.client, "skipped_frames", 0)),
            self.last_error,
        )


def _error_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


class Collector:
    """Streams ``series`` on ``venues`` into the live strip, the landing area and the live store.

    - ``series``: coins (each venue's main perpetual of the coin) and/or instruments (each
      followed on its own venue); module docstring, "Series".

    - ``home``: the data directory; writes ``<home>/landing/`` and ``<home>/live/``.
    - ``urls``: venue -> (REST base, WS base); absent venues use the real endpoints.
    - ``clock``: the venues' now (naive UTC), bounds the REST ranges.
    - ``http_factory(venue, rest_url)``: the :class:`~funding_assets.clients.HttpClient` of a
      venue (e.g. another budget), or None for the client's default.
    - ``stream_kwargs``: venue -> extra keyword arguments of ``client.stream`` (keep-alive
      intervals such as ``ping_interval_s``).
    - ``watchdog_s``: a stream silent this long (s) is dead; one value, or per venue (a dict;
      missing venues get 60 s). :data:`VENUE_WATCHDOG_S` suits the real venues' cadence.
    - ``backoff_s`` / ``backoff_cap_s``: first and largest reconnect delay (s, before
      jitter); ``healthy_s``: a connection up this long (s) resets the back-off (default:
      the longest watchdog, at least 30 s).
    - ``rotate_s``: the landing writer lands a file once its oldest buffered row is this old;
      the buffer is journaled (module docstring, "Crash"), so a longer ``rotate_s`` means
      fewer files, not more loss.
    - ``client_factory(venue)``: builds the venue client instead of ``client_for`` (tests,
      custom clients); ``rng``: the jitter's random source.
    - ``flush_interval_s``: micro-batch period (s) of the hand-over to landing and store;
      ``status_interval_s``: status.json period; ``log_interval_s``: period of the lag log.
    - ``settle_delay_s``: the settlement poll asks a venue's settled history this long (s on
      ``clock``) after each settlement, None = no poll; ``settle_retry_s``: clock seconds
      between polls of a settlement not yet published; ``settle_retries``: polls after the
      first before a WARN; ``clock_check_s``: longest wall-clock sleep (s) between readings
      of ``clock`` while waiting for a settlement (module docstring, 4).
    """

    def __init__(
        self,
        home: Path,
        venues: Sequence[str],
        series: Sequence[str | Instrument],
        *,
        urls: dict[str, tuple[str | None, str | None]] | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        http_factory: Callable[[str, str | None], Any] | None = None,
        stream_kwargs: dict[str, dict] | None = None,
        watchdog_s: float | dict[str, float] = 60.0,
        backoff_s: float = 1.0,
        backoff_cap_s: float = 60.0,
        rotate_s: float = 10.0,
        healthy_s: float | None = None,
        prewarm: dt.timedelta = PREWARM,
        annualisation: str = "apr",
        max_fill: int = 2,
        flush_interval_s: float = 0.02,
        status_interval_s: float = 1.0,
        log_interval_s: float = 60.0,
        store_batch_s: float = 0.05,
        rng: random.Random | None = None,
        client_factory: Callable[[str], VenueClient] | None = None,
        settle_delay_s: float | None = SETTLE_DELAY_S,
        settle_retry_s: float = SETTLE_RETRY_S,
        settle_retries: int = SETTLE_RETRIES,
        clock_check_s: float = CLOCK_CHECK_S,
    ) -> None:
        self.home = Path(home)
        self.venues = list(dict.fromkeys(venues))
        self.series = list(dict.fromkeys(series))
        self.urls = urls or {}
        self.clock = clock
        self.http_factory = http_factory
        self.stream_kwargs = stream_kwargs or {}
        self.watchdog_s = watchdog_s
        self.backoff_s = backoff_s
        self.backoff_cap_s = backoff_cap_s
        self.healthy_s = healthy_s if healthy_s is not None else max(30.0, *(self.watchdog_for(v) for v in self.venues))
        self.rotate_s = rotate_s
        self.prewarm = prewarm
        self.flush_interval_s = flush_interval_s
        self.status_interval_s = status_interval_s
        self.log_interval_s = log_interval_s
        self.store_batch_s = store_batch_s
        self.rng = rng or random.Random()
        self.client_factory = client_factory
        self.settle_delay = None if settle_delay_s is None else dt.timedelta(seconds=settle_delay_s)
        self.settle_retry = dt.timedelta(seconds=settle_retry_s)
        self.settle_retries = settle_retries
        self.clock_check_s = clock_check_s
        self.strip = LiveStrip(annualisation=annualisation, max_fill=max_fill)
        self.landing_dir = self.home / LANDING_DIR
        self.store_path = live_store_path(self.home)
        self.status_file = status_path(self.home)
        self.runtimes: dict[str, VenueRuntime] = {}
        self.landing: LandingWriter | None = None
        self.store: LiveStore | None = None
        self._pending_prints: list[tuple[pl.DataFrame, int]] = []  # (prints frame, received_at epoch ms)
        self._pending_intraday: list[tuple[list[tuple], int]] = []  # (epoch-ms intraday rows, received_at ms)
        self._pending_rows: list[tuple] = []  # roll rows + received_at
        self._stopping = False  # set at shutdown: stream loops end at their next message
        self._roll_jobs: asyncio.Queue | None = None
        self._landing_q: asyncio.Queue | None = None
        self.prints_handled = 0  # every print handed to the landing writer
        self.rows_handled = 0  # every strip row handed to the store

    # --- set-up ----------------------------------------------------------------------------

    def _make_client(self, venue: str) -> VenueClient:
        if self.client_factory is not None:
            return self.client_factory(venue)
        rest, ws = self.urls.get(venue, (None, None))
        kwargs: dict[str, Any] = {}
        if self.http_factory is not None:
            http = self.http_factory(venue, rest)
            if http is not None:
                kwargs["http"] = http
        from ..clients import binance, bybit, deribit, hyperliquid, okx

        cls = {m.Client.venue: m.Client for m in (binance, bybit, okx, hyperliquid, deribit)}[venue]
        if "clock" in inspect.signature(cls.__init__).parameters:
            kwargs["clock"] = self.clock  # stamps quotes without a venue time (Hyperliquid)
        return client_for(venue, rest, ws, **kwargs)

    def open(self) -> None:
        """Create the clients, the landing writer and the live store (idempotent)."""
        if self.store is not None:
            return
        for venue in self.venues:
            followed = venue_series(venue, self.series)
            if not followed:
                log.warning("%s: nothing to follow (no coin, and no instrument of this venue)", venue)
            elif venue not in self.runtimes:
                self.runtimes[venue] = VenueRuntime(venue, self._make_client(venue), followed)
        self._roll_jobs = asyncio.Queue()
        self._landing_q = asyncio.Queue()
        # the journal of a killed predecessor lands first, as one file
        self.landing = LandingWriter(self.landing_dir, rotate_s=self.rotate_s, journal=True)
        if self.landing.recovered_rows:
            log.warning(
                "landed %d prints from the journal of a collector that did not stop cleanly",
                self.landing.recovered_rows,
            )
        self.store = LiveStore(self.store_path, batch_s=self.store_batch_s)

    # --- the per-print path ----------------------------------------------------------------

    def handle(self, venue: str, frame: pl.DataFrame, *, live: bool = True) -> int:
        """Feed one message's prints (a print-model frame) to the strip and queue the hand-over.

        ``live``: prints from the stream (emit intraday rows); REST prints only move the state
        and the roll rows. Intraday rows are queued for the store at once; roll rows (a window
        closed or changed) are computed by :func:`funding_assets.strip.roll_snapshots` in a
        worker thread (:meth:`_roll_worker`), in order, so the event loop never waits for
        them. Returns the number of intraday rows produced. Runs on the event loop.
        """
        received_at = _wall_ms()
        frame = with_contract(frame)  # a client that does not say it: the main perpetual
        if list(frame.schema.items()) != _PRINT_SCHEMA_ITEMS:
            frame = frame.select(_PRINT_COLUMNS).cast(PRINT_SCHEMA)
        if not frame.height:
            return 0
        rows = _epoch_ms_rows(frame)
        snaps, jobs = self.strip.update_deferred(rows, intraday=live, epoch_ms=True)
        rt = self.runtimes.get(venue)
        if rt is not None:
            newest_ms = -1
            windows: dict[int, dt.datetime] = {}  # funding_time ms -> datetime, made once a frame
            for r in rows:
                if r[_TS] > newest_ms:
                    newest_ms = r[_TS]
                key, ft = (r[_SYMBOL], r[_CONTRACT]), windows.get(r[_FT])
                if ft is None:
                    ft = windows[r[_FT]] = _UNIX + r[_FT] * _MS
                seen = rt.last_realised.get(key)
                if r[_KIND] == REALISED:
                    if seen is None or ft > seen:
                        rt.last_realised[key] = ft
                        pending = rt.announced.get(key)
                        if pending:
                            pending.difference_update([t for t in pending if t <= ft])
                elif self.settle_delay is not None and (seen is None or ft > seen):
                    rt.announced.setdefault(key, set()).add(ft)
            if live:
                newest = _UNIX + newest_ms * _MS
                if rt.last_print_ts is None or newest > rt.last_print_ts:
                    rt.last_print_ts = newest
        received_ms = (received_at - _UNIX) // _MS
        self._pending_prints.append((frame, received_ms))
        if snaps:
            self._pending_intraday.append((snaps, received_ms))
        for job in jobs:
            self._roll_jobs.put_nowait((job, received_at))
        return len(snaps)

    async def _roll_worker(self) -> None:
        """Compute queued roll jobs in a thread and queue the rows they emit. Jobs waiting
        together (every series closes at the same grid boundary) share one call of the batch
        engine, one job per series per call; each series' jobs are accepted in queue order."""
        queue = self._roll_jobs
        while True:
            batch = [await queue.get()]
            while not queue.empty():
                batch.append(queue.get_nowait())
            taken = len(batch)
            try:
                while batch:
                    round_, rest, seen = [], [], set()
                    for item in batch:
                        series = item[0].series
                        key = (series.venue, series.symbol, series.contract)
                        (rest if key in seen else round_).append(item)
                        seen.add(key)
                    batch = rest
                    try:
                        computed = await asyncio.to_thread(compute_jobs, [job for job, _ in round_])
                    except Exception:  # noqa: BLE001 - a strip bug must not stop the landing of prints
                        log.exception(
                            "roll rows not computed for %s",
                            sorted({(j.series.venue, j.series.symbol, str(j.series.contract)) for j, _ in round_}),
                        )
                        continue
                    for (job, received_at), frame in zip(round_, computed):
                        rows = job.accept(frame)
                        if rows:
                            tail = (received_at,)
                            self._pending_rows.extend(r + tail for r in rows)
            finally:
                for _ in range(taken):
                    queue.task_done()

    def _take_pending(self) -> tuple[list[tuple[pl.DataFrame, int]], list[tuple[list[tuple], int]], list[tuple]]:
        prints, intraday, rows = self._pending_prints, self._pending_intraday, self._pending_rows
        self._pending_prints, self._pending_intraday, self._pending_rows = [], [], []
        return prints, intraday, rows

    async def flush_pending(self) -> None:
        """Hand everything pending over: strip rows to the store (a queue: returns at once),
        prints to the landing worker (files are written in a thread, in arrival order), each
        as one frame of the whole micro-batch, built off the event loop (the store's writer
        and the landing worker's threads): building a frame waits for polars' thread pool,
        which those threads' commits and Parquet writes may hold for tens of milliseconds."""
        prints, intraday, rows = self._take_pending()
        if intraday or rows:
            self.store.put(functools.partial(store_frame, intraday, rows))
            self.rows_handled += sum(len(batch) for batch, _ in intraday) + len(rows)
        if prints:
            self._landing_q.put_nowait(prints)
            self.prints_handled += sum(frame.height for frame, _ in prints)

    def _land(self, prints: list[tuple[pl.DataFrame, int]]) -> None:
        """Write a micro-batch's prints to the landing writer as one frame (a worker thread)."""
        self.landing.write(landing_frame(prints))

    async def _landing_worker(self) -> None:
        """Write queued micro-batches of prints to the landing writer in a thread, one at a
        time (a file landing takes a Parquet write and an fsync); tick it when idle so a quiet
        stream's rows still land within ``rotate_s``."""
        queue = self._landing_q
        while True:
            try:
                batch = await asyncio.wait_for(queue.get(), self.status_interval_s)
            except TimeoutError:
                await asyncio.to_thread(self.landing.tick)
                continue
            try:
                await asyncio.to_thread(self._land, batch)
            finally:
                queue.task_done()

    # --- REST: pre-warm and gap fill -------------------------------------------------------

    async def _fetch_settled(
        self, rt: VenueRuntime, key: SeriesKey, kind: str
    ) -> tuple[dt.datetime, dt.datetime, int] | None:
        """Fetch the series' realised prints from its last realised funding_time (or the
        pre-warm horizon) to now and feed the new ones (REST prints: state and roll rows, no
        intraday rows). Returns (start, end, new prints), or None if the request failed
        (logged; the next fill or poll asks again)."""
        now = self.clock()
        start = rt.last_realised.get(key) or (now - self.prewarm)
        try:
            frame = await asyncio.to_thread(rt.client.settled, rt.series[key], start, now)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed fill is asked again later
            rt.last_error = f"{kind} {_label(key)}: {_error_text(exc)}"
            log.warning("%s %s fill of %s failed: %s", rt.venue, kind, _label(key), rt.last_error)
            return None
        seen = rt.last_realised.get(key)  # read after the request: another fill may have run
        frame = with_contract(frame).filter(
            (pl.col("kind") == REALISED) & (pl.col("symbol") == key[0]) & (pl.col("contract") == key[1])
        )
        if seen is not None:
            frame = frame.filter(pl.col("funding_time") > seen)
        if frame.height:
            self.handle(rt.venue, frame, live=False)  # moves rt.last_realised on
        return start, now, frame.height

    async def _fill(self, rt: VenueRuntime, kind: str) -> int:
        """Fetch and feed every series' realised prints since its last realised funding_time
        (or the pre-warm horizon); returns how many were new."""
        total = 0
        for key in rt.series:
            fetched = await self._fetch_settled(rt, key, kind)
            if fetched is None:
                continue
            start, now, n = fetched
            rt.fills.append((kind, key, start, now, n))
            total += n
        if kind == "gap":
            rt.gaps_filled += total
        else:
            rt.prewarmed += total
        return total

    # --- the settlement poll (module docstring, 4) -----------------------------------------

    def _learned(self, rt: VenueRuntime, key: SeriesKey, window: dt.datetime) -> bool:
        seen = rt.last_realised.get(key)
        return seen is not None and seen >= window

    def _cadence(self, venue: str) -> dt.timedelta:
        """The venue's settlement cadence (00/08/16 UTC for 8 h venues, hourly for hourly ones;
        a venue the table does not know gets the finest, hourly)."""
        return dt.timedelta(hours=DEFAULT_INTERVAL_HOURS.get(venue, 1.0))

    def _next_settlement(self, rt: VenueRuntime, after: dt.datetime) -> dt.datetime:
        """The first settlement after ``after``: the venue's next cadence boundary, or an
        earlier window a series' stream announced."""
        step = self._cadence(rt.venue)
        boundary = _UNIX + ((after - _UNIX) // step + 1) * step
        return min([boundary, *(t for windows in rt.announced.values() for t in windows if t > after)])

    def _due_settlements(self, rt: VenueRuntime, after: dt.datetime, upto: dt.datetime) -> dict[SeriesKey, dt.datetime]:
        """Per series, its newest settlement in (``after``, ``upto``] not yet learned: the
        newest window its stream announced, or for a series without announcements the venue's
        last cadence boundary."""
        step = self._cadence(rt.venue)
        boundary = _UNIX + ((upto - _UNIX) // step) * step
        due = {}
        for key in rt.series:
            if key in rt.announced:
                window = max((t for t in rt.announced[key] if after < t <= upto), default=None)
            else:
                window = boundary if boundary > after else None
            if window is not None and not self._learned(rt, key, window):
                due[key] = window
        return due

    async def _sleep_until(self, when: Callable[[], dt.datetime]) -> None:
        """Sleep until ``clock`` reaches ``when()``, re-read every ``clock_check_s`` at most (the
        target moves as windows are announced; ``clock`` may run faster than the wall)."""
        while (left := (when() - self.clock()).total_seconds()) > 0:
            await asyncio.sleep(min(left, self.clock_check_s))

    async def _until_live(self, rt: VenueRuntime) -> None:
        """Wait while the venue reconnects: the gap fill after the reconnect asks for the same
        settlements."""
        while rt.state != "live":
            await asyncio.sleep(self.clock_check_s)

    async def _settlement_poller(self, rt: VenueRuntime) -> None:
        """Poll ``rt``'s settled history ``settle_delay`` after every settlement, from the end
        of the pre-warm on."""
        await rt.prewarm_done.wait()
        after = self.clock()
        while True:
            await self._sleep_until(lambda after=after: self._next_settlement(rt, after) + self.settle_delay)
            await self._until_live(rt)
            upto = self.clock() - self.settle_delay
            due = self._due_settlements(rt, after, upto)
            after = upto
            if due:
                await self._poll_settlements(rt, due)

    async def _poll_settlements(self, rt: VenueRuntime, due: dict[SeriesKey, dt.datetime]) -> None:
        """Ask for each series' settlement ``due[key]`` until it is learned: at most
        1 + ``settle_retries`` polls ``settle_retry`` apart, then a WARN (never raises)."""
        for attempt in range(1 + self.settle_retries):
            if attempt:
                retry_at = self.clock() + self.settle_retry
                await self._sleep_until(lambda retry_at=retry_at: retry_at)
                await self._until_live(rt)
            missing = {key: window for key, window in due.items() if not self._learned(rt, key, window)}
            if not missing:
                return
            for key, window in missing.items():
                fetched = await self._fetch_settled(rt, key, "settlement")
                if fetched is not None:
                    start, now, n = fetched
                    rt.polls.append((key, window, start, now, n))
                    rt.settled_polled += n
        for key, window in due.items():
            if not self._learned(rt, key, window):
                log.warning(
                    "%s %s: settlement of the window ending %s not published after %d polls %g s apart",
                    rt.venue,
                    _label(key),
                    window.isoformat(sep=" "),
                    1 + self.settle_retries,
                    self.settle_retry.total_seconds(),
                )
                rt.announced.get(key, set()).discard(window)

    # --- one venue --------------------------------------------------------------------------

    def _set_state(self, rt: VenueRuntime, state: str) -> None:
        if rt.state != state:
            log.info(
                "%s: %s -> %s%s",
                rt.venue,
                rt.state,
                state,
                f" ({rt.last_error})" if state == "reconnecting" and rt.last_error else "",
            )
            rt.state = state

    def watchdog_for(self, venue: str) -> float:
        """The silence (s) after which ``venue``'s stream is declared dead."""
        if isinstance(self.watchdog_s, dict):
            return float(self.watchdog_s.get(venue, 60.0))
        return float(self.watchdog_s)

    async def _consume(self, rt: VenueRuntime) -> None:
        """One connection: consume the stream until it fails or falls silent (raises)."""
        stream = rt.client.stream(list(rt.series.values()), **self.stream_kwargs.get(rt.venue, {}))
        watchdog_s = self.watchdog_for(rt.venue)
        try:
            while True:
                frame = await self._next_frame(rt, stream, watchdog_s)
                if rt.state != "live":
                    self._set_state(rt, "live")
                rt.last_message_at = utcnow()
                rt.frames += 1
                counted = getattr(rt.client, "stream_messages", None)  # a frame may hold several
                if counted is None:
                    rt.messages += 1
                else:
                    rt.messages += counted - rt.client_messages
                    rt.client_messages = counted
                rt.prints += frame.height
                self.handle(rt.venue, frame, live=True)
                if self._stopping:
                    return  # a cancellation may have been swallowed (see cancel_and_wait)
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()

    async def _next_frame(self, rt: VenueRuntime, stream, watchdog_s: float) -> pl.DataFrame:
        """The stream's next frame; :class:`StreamSilent` when none came for ``watchdog_s``.

        A busy event loop can run the watchdog after messages arrived but before the stream
        read them (the timer's callback comes first): the loop gets
        :data:`WATCHDOG_GRACE_TURNS` more turns to deliver what already arrived, so a backlog
        is not taken for a dead stream (whose unread messages would be lost with it)."""
        pending = asyncio.ensure_future(anext(stream))
        try:
            await asyncio.wait({pending}, timeout=watchdog_s)
            for _ in range(WATCHDOG_GRACE_TURNS):
                if pending.done():
                    break
                await asyncio.sleep(0)
        finally:
            if not pending.done():  # silent, or this task is being cancelled: stop the read
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending
        if pending.cancelled():
            rt.watchdog_expiries += 1
            raise StreamSilent(f"{rt.venue}: no message for {watchdog_s:g} s (watchdog)")
        try:
            return pending.result()
        except StopAsyncIteration:
            raise ConnectionError(f"{rt.venue}: stream ended") from None

    async def _venue_task(self, rt: VenueRuntime) -> None:
        self._set_state(rt, "connecting")
        n = await self._fill(rt, "prewarm")
        rt.prewarm_done.set()
        log.info("%s: pre-warmed with %d realised prints", rt.venue, n)
        failures = 0
        while not self._stopping:
            started = time.monotonic()
            rt.connections += 1
            try:
                await self._consume(rt)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every stream failure means: reconnect
                rt.last_error = _error_text(exc)
            if self._stopping:
                return
            if time.monotonic() - started >= self.healthy_s:
                failures = 0
            self._set_state(rt, "reconnecting")
            delay = self.rng.uniform(0.0, min(self.backoff_cap_s, self.backoff_s * 2**failures))
            failures += 1
            log.debug("%s: reconnecting in %.3f s", rt.venue, delay)
            await asyncio.sleep(delay)
            filled = await self._fill(rt, "gap")
            rt.reconnects += 1  # the gap is filled: the new stream starts now
            log.info("%s: reconnect %d, %d realised prints recovered from REST", rt.venue, rt.reconnects, filled)

    # --- housekeeping -----------------------------------------------------------------------

    def write_status(self) -> None:
        write_status(self.status_file, [rt.status() for rt in self.runtimes.values()], utcnow())

    def _log_lag(self) -> None:
        now = self.clock()
        for rt in self.runtimes.values():
            lag = "-" if rt.last_print_ts is None else f"{(now - rt.last_print_ts).total_seconds():.1f} s"
            log.info(
                "%s %s: lag %s, %d messages, %d prints, %d reconnects, %d gaps filled, %d settled polled, %d skipped",
                rt.venue,
                rt.state,
                lag,
                rt.messages,
                rt.prints,
                rt.reconnects,
                rt.gaps_filled,
                rt.settled_polled,
                int(getattr(rt.client, "skipped_frames", 0)),
            )

    async def _housekeeping(self) -> None:
        next_status = next_log = time.monotonic()
        while True:
            await asyncio.sleep(self.flush_interval_s)
            await self.flush_pending()
            now = time.monotonic()
            if now >= next_status:
                self.write_status()
                next_status = now + self.status_interval_s
            if now >= next_log:
                self._log_lag()
                next_log = now + self.log_interval_s

    # --- the whole --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Collect until ``stop`` is set, then shut down cleanly (see the module docstring)."""
        self.open()
        log.info(
            "collector: %s x %s -> %s, %s",
            ",".join(self.venues),
            ",".join(sorted({_label(key) for rt in self.runtimes.values() for key in rt.series})),
            self.landing_dir,
            self.store_path,
        )
        venue_tasks = [
            asyncio.create_task(self._venue_task(rt), name=f"collect-{rt.venue}") for rt in self.runtimes.values()
        ]
        if self.settle_delay is not None:
            venue_tasks += [
                asyncio.create_task(self._settlement_poller(rt), name=f"settle-{rt.venue}")
                for rt in self.runtimes.values()
            ]
        house = asyncio.create_task(self._housekeeping(), name="collect-housekeeping")
        rolls = asyncio.create_task(self._roll_worker(), name="collect-rolls")
        landing = asyncio.create_task(self._landing_worker(), name="collect-landing")
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([stopper, house, rolls, landing, *venue_tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            await self.shutdown([*venue_tasks, stopper], [rolls, house, landing])

    async def shutdown(self, tasks: Sequence[asyncio.Task] = (), workers: Sequence[asyncio.Task] = ()) -> None:
        """Stop the streams, finish the roll jobs, hand over and land everything, close the
        store, write the final status. Re-raises a failure of a worker or venue task."""
        self._stopping = True
        await cancel_and_wait(tasks)
        results = list(await asyncio.gather(*tasks, return_exceptions=True))
        failure: BaseException | None = None
        for worker in workers:
            if worker.done() and not worker.cancelled() and worker.exception() is not None:
                failure = failure or worker.exception()
        if failure is None and self._roll_jobs is not None and any(not w.done() for w in workers):
            await self._roll_jobs.join()  # the windows the last prints closed
            await self.flush_pending()
            await self._landing_q.join()
        await cancel_and_wait(workers)
        results += await asyncio.gather(*workers, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
                failure = failure or r
        try:
            await self.flush_pending()
            while self._landing_q is not None and not self._landing_q.empty():
                await asyncio.to_thread(self._land, self._landing_q.get_nowait())
            if self.landing is not None:
                await asyncio.to_thread(self.landing.close)
            if self.store is not None:
                await asyncio.to_thread(self.store.close)
        finally:
            for rt in self.runtimes.values():
                rt.state = "stopped"
                with contextlib.suppress(Exception):
                    rt.client.close()
            self.write_status()
            self._log_lag()
            log.info(
                "collector stopped: %d prints landed in %d files, %d strip rows stored",
                self.landing.rows_written if self.landing else 0,
                self.landing.files_written if self.landing else 0,
                self.store.rows_stored if self.store else 0,
            )
        if failure is not None:
            raise failure


async def cancel_and_wait(tasks: Sequence[asyncio.Task], retry_s: float = 0.1) -> None:
    """Cancel ``tasks`` and wait until every one has finished, cancelling again every
    ``retry_s`` seconds: on Python 3.11 ``asyncio.wait_for`` (which every venue client awaits
    its socket with) swallows a cancellation that lands as its inner read completes
    (CPython gh-86296, fixed in 3.12): under load (messages already buffered) nearly every
    ``cancel()`` of a busy stream is lost. The stream loops also stop at their next message
    once the collector is stopping."""
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=retry_s)


def live_series(settings, venue: str, now: dt.datetime | None = None) -> list[str | Instrument]:
    """What the live path follows on ``venue`` for ``settings`` (a
    :class:`~funding_assets.resources.FundingConfig`): its coins as they are when they are
    named and each venue's main perpetual is wanted (nothing to discover), else the venue's
    instruments the coins and contracts settings select among those trading at ``now``
    (default: the wall clock), discovered through the settings' source (once per process)."""
    selection = settings.selection
    if selection.explicit_coins is not None and selection.contracts == (MAIN,):
        return list(selection.explicit_coins)
    now = now or utcnow()
    listed = instruments.frame(settings.open_source().instruments(venue))
    chosen = instruments.select(listed, selection, [venue], now, now + dt.timedelta(milliseconds=1))
    return list(instruments.from_frame(chosen))


def collect(home: Path, venues: Sequence[str], series: Sequence[str | Instrument], **kwargs) -> int:
    """Run a :class:`Collector` until SIGINT or SIGTERM, then shut it down cleanly. Returns 0."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
        try:
            await Collector(home, venues, series, **kwargs).run(stop)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    asyncio.run(main())
    return 0


def main_collect(settings) -> int:
    """``funding-assets collect``: the collector for ``settings`` (home, source, venues, coins,
    contracts; :func:`live_series`).

    ``sim`` starts the loopback simulator in this process (wall-clock time) and collects from
    it; ``exchanges`` connects to the real venues; a replay directory has nothing live to
    collect (raises :class:`~funding_assets.errors.FundingInputError`: the CLI's exit code 2).
    Logs go to stderr. Returns 0 after a clean shutdown.
    """
    from ..errors import FundingInputError
    from ..settings import ensure_writable_home

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        for chatty in ("httpx", "websockets"):  # a line per request / connection otherwise
            logging.getLogger(chatty).setLevel(logging.WARNING)
    source = settings.source
    if source.startswith("replay:"):
        raise FundingInputError(
            f"FUNDING_ASSETS_SOURCE={source}: a replay directory has no live stream; collect from 'sim' or 'exchanges'"
        )
    home = ensure_writable_home(Path(settings.home))
    kwargs: dict[str, Any] = {"annualisation": settings.annualisation, "watchdog_s": VENUE_WATCHDOG_S}
    if source == "sim":
        from ..clients import HttpClient
        from ..sources.venues import UNLIMITED, in_process_simulator

        server = in_process_simulator()
        kwargs["urls"] = {v: (server.rest_url(v), server.ws_url(v)) for v in settings.venues}
        kwargs["http_factory"] = lambda venue, rest: HttpClient(venue, rest, UNLIMITED)
    series = [one for venue in settings.venues for one in live_series(settings, venue)]
    return collect(home, settings.venues, series, **kwargs)
