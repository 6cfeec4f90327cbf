"""Venue clients: one module per venue behind one small interface.

Each client speaks its venue's real public protocol (httpx for REST, websockets for
streams) and parses into the print model of :mod:`funding_assets.prints`:

- :meth:`VenueClient.settled` -- realised settlements of a coin between two instants,
  complete, ordered, deduplicated, each with its interval;
- :meth:`VenueClient.current` -- the current predicted funding of several coins, in as few
  requests as the venue allows;
- :meth:`VenueClient.stream` -- live predicted prints from the venue's WebSocket;
- :meth:`VenueClient.premium_history` -- the premium-index samples a venue publishes to
  rebuild its funding, in :data:`PREMIUM_SCHEMA` (``ts`` = the instant a sample is known).

Clients reach the real venue or the loopback simulator by base URL alone.
"""

import datetime as dt
import math
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, ClassVar

import polars as pl

from ..premium import PREMIUM_SCHEMA
from ..prints import PRINT_SCHEMA, REALISED, TS
from ..venues import DEFAULT_INTERVAL_HOURS, venue_symbol
from .http import Budget, HttpClient, RateLimiter, VenueError

__all__ = [
    "PREMIUM_SCHEMA",
    "Budget",
    "HttpClient",
    "RateLimiter",
    "VenueClient",
    "VenueError",
    "check_print",
    "checked",
    "client_for",
    "infer_intervals",
    "number",
    "premium_frame",
    "prints_frame",
]

HOUR_MS = 3_600_000
MINUTE_MS = 60_000
#: Native funding intervals venues use (hours).
KNOWN_INTERVALS = (1.0, 2.0, 4.0, 6.0, 8.0)
#: Epoch ms a print's times lie in, [2015-01-01, 2100-01-01): anything else is a damaged payload
#: (and a time beyond int64 would fail only later, building the prints frame).
PLAUSIBLE_MS = (1_420_070_400_000, 4_102_444_800_000)


def epoch_ms(when: dt.datetime) -> int:
    """Naive-UTC (or aware) datetime -> epoch milliseconds."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def snap_ms(ms: int) -> int:
    """Round epoch ms to the nearest whole minute (settlement jitter)."""
    return (ms + 30_000) // 60_000 * 60_000


def number(value: Any) -> float:
    """A JSON number or a decimal string as a float; a boolean, which ``float()`` would take for
    1 or 0, is a ``ValueError``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def check_print(rate: Any, times_ms: Iterable[Any], interval_hours: Any = KNOWN_INTERVALS[0]) -> None:
    """Refuse (``ValueError``) values no venue could mean: a rate that is a boolean or not finite,
    an interval no venue uses (hours), a time (epoch ms) that is a boolean or outside
    :data:`PLAUSIBLE_MS`. Parsers call it inside their error handling, so a bad stream frame is
    skipped and counted and a bad REST row is the client's :class:`VenueError`."""
    if isinstance(rate, bool) or not math.isfinite(rate):
        raise ValueError(f"rate {rate!r} is not a finite number")
    if isinstance(interval_hours, bool) or interval_hours not in KNOWN_INTERVALS:
        raise ValueError(f"interval {interval_hours!r} h is not one the venues use")
    lo, hi = PLAUSIBLE_MS
    for ms in times_ms:
        if isinstance(ms, bool) or not lo <= ms < hi:
            raise ValueError(f"time {ms!r} ms is outside 2015..2100")


def checked(row: dict) -> dict:
    """A print row ``{coin, ts_ms, funding_time_ms, rate, interval_hours, kind}`` after
    :func:`check_print`."""
    check_print(row["rate"], (row["ts_ms"], row["funding_time_ms"]), row["interval_hours"])
    return row


def infer_intervals(funding_times_ms: Sequence[int], default_hours: float) -> list[float]:
    """Interval of each settlement from the gap to the previous one (sorted, snapped times).

    The gap is the native window, except where settlements are missing inside a steady
    regime: a gap that is a whole multiple of the previous interval, followed by a gap equal
    to that interval, keeps the previous interval. A gap no venue uses (16 h, 24 h) falls
    back to the previous interval. The first settlement takes the next gap.
    """
    out: list[float] = []
    n = len(funding_times_ms)
    for i in range(n):
        gap = (funding_times_ms[i] - funding_times_ms[i - 1]) / HOUR_MS if i else None
        nxt = (funding_times_ms[i + 1] - funding_times_ms[i]) / HOUR_MS if i + 1 < n else None
        prev = out[-1] if out else None
        if gap is None:
            value = nxt if nxt in KNOWN_INTERVALS else default_hours
        elif prev is not None and gap > prev and gap % prev == 0 and nxt == prev:
            value = prev  # settlements missing in a steady regime
        elif gap in KNOWN_INTERVALS:
            value = gap
        else:
            value = prev if prev is not None else (nxt if nxt in KNOWN_INTERVALS else default_hours)
        out.append(float(value))
    return out


def prints_frame(rows: list[dict], venue: str, source: str) -> pl.DataFrame:
    """Rows ``{coin, ts_ms, funding_time_ms, rate, interval_hours, kind}`` -> print model frame.

    ``funding_time`` is snapped to the minute, ``ts`` keeps the venue's stamp; the frame is
    sorted and deduplicated on (symbol, ts, funding_time), keeping the last row.
    """
    # Snap, deduplicate (last row wins) and sort in Python, then build the frame once with its
    # final dtypes: streams call this per message, where a chain of polars steps cost ~1 ms.
    latest: dict[tuple[str, int, int], dict] = {}
    for r in rows:
        latest[(r["coin"], int(r["ts_ms"]), snap_ms(int(r["funding_time_ms"])))] = r
    keys = sorted(latest)
    chosen = [latest[k] for k in keys]
    return pl.DataFrame(
        {
            "venue": [venue] * len(keys),
            "symbol": [k[0] for k in keys],
            "venue_symbol": [venue_symbol(venue, k[0]) for k in keys],
            "ts": pl.Series([k[1] for k in keys], dtype=pl.Int64).cast(TS),
            "funding_time": pl.Series([k[2] for k in keys], dtype=pl.Int64).cast(TS),
            "rate": [float(r["rate"]) for r in chosen],
            "interval_hours": [float(r["interval_hours"]) for r in chosen],
            "kind": [r["kind"] for r in chosen],
            "source": [source] * len(keys),
        },
        schema=PRINT_SCHEMA,
    )


def premium_frame(
    venue: str, coin: str, points: Iterable[tuple[int, float]], start_ms: int, end_ms: int
) -> pl.DataFrame:
    """``(known-at epoch ms, premium)`` points -> a :data:`PREMIUM_SCHEMA` frame of those known in
    ``(start_ms, end_ms]``, one row per instant (the last point wins), sorted by ``ts``."""
    latest = {ts_ms: premium for ts_ms, premium in points if start_ms < ts_ms <= end_ms}
    times = sorted(latest)
    return pl.DataFrame(
        {
            "venue": [venue] * len(times),
            "symbol": [coin] * len(times),
            "ts": pl.Series(times, dtype=pl.Int64).cast(TS),
            "premium": pl.Series([latest[t] for t in times], dtype=pl.Float64),
        },
        schema=PREMIUM_SCHEMA,
    )


def settled_rows(coin: str, points: list[tuple[int, float]], default_hours: float) -> list[dict]:
    """Realised rows from ``(settlement ts_ms, rate)`` pairs: sorted, one per settlement,
    intervals inferred from the gaps (see :func:`infer_intervals`)."""
    by_time: dict[int, tuple[int, float]] = {}
    for ts_ms, rate in sorted(points):
        by_time[snap_ms(ts_ms)] = (ts_ms, rate)
    times = sorted(by_time)
    hours = infer_intervals(times, default_hours)
    return [
        {
            "coin": coin,
            "ts_ms": by_time[t][0],
            "funding_time_ms": t,
            "rate": by_time[t][1],
            "interval_hours": h,
            "kind": REALISED,
        }
        for t, h in zip(times, hours)
    ]


class VenueClient:
    """The interface every venue module implements."""

    venue: ClassVar[str]
    rest_url: ClassVar[str]
    ws_url: ClassVar[str]
    budget: ClassVar[Budget]

    def __init__(
        self, rest_url: str | None = None, ws_url: str | None = None, *, http: HttpClient | None = None
    ) -> None:
        self.rest_base = rest_url or self.rest_url
        self.ws_base = ws_url or self.ws_url
        self.http = http or HttpClient(self.venue, self.rest_base, self.budget)
        self.default_interval = DEFAULT_INTERVAL_HOURS[self.venue]

    @property
    def source(self) -> str:
        """The ``source`` of prints from REST (history, current funding)."""
        return f"{self.venue} REST"

    @property
    def stream_source(self) -> str:
        """The ``source`` of prints from the WebSocket stream."""
        return f"{self.venue} WS"

    def close(self) -> None:
        self.http.close()

    def settled(self, coin: str, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        """Realised prints with ``funding_time`` in ``[start, end]`` (UTC), one per settlement."""
        raise NotImplementedError

    def current(self, coins: Sequence[str]) -> pl.DataFrame:
        """Current predicted prints (``kind='predicted'``), one per coin."""
        raise NotImplementedError

    def stream(self, coins: Sequence[str]) -> AsyncIterator[pl.DataFrame]:
        """Live predicted prints as they arrive, one small frame per venue message."""
        raise NotImplementedError

    def premium_history(self, coin: str, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        """Premium-index samples of ``coin`` known in ``(start, end]`` (naive UTC), complete,
        one per instant, sorted: :data:`PREMIUM_SCHEMA`, ``ts`` the instant the sample is known,
        ``premium`` a decimal fraction (never percent)."""
        raise NotImplementedError


def client_for(venue: str, rest_url: str | None = None, ws_url: str | None = None, **kwargs) -> VenueClient:
    """The client of ``venue``, against the real venue or the given base URLs."""
    from . import binance, bybit, deribit, hyperliquid, okx

    classes = {m.Client.venue: m.Client for m in (binance, bybit, okx, hyperliquid, deribit)}
    return classes[venue](rest_url, ws_url, **kwargs)
