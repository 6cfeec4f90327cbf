"""What the provider clients share: their error, reading a list body, walking a range.

A range of candles is walked in windows that each hold at most a request's worth of candle
open times, rather than by following the last candle: it needs no assumption about the
order a provider returns candles in or how it bounds a range, and a gap in the data (before
a term starts) cannot end the walk early.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..clients.http import HttpClient, VenueError, VenueUnreachable, page_json
from .schema import INTERVALS, candle_open_s
from .units import UNIX, unix_s


class RatesError(VenueError):
    """A rate-market provider answered with an error (names the provider, market and range)."""


def get(http: HttpClient, path: str, params: dict | None, what: str) -> Any:
    """``http.get`` (the body parsed by :func:`~funding_assets.clients.http.page_json`), any
    error but an unreachable host reworded to say ``what`` was asked."""
    try:
        return http.get(path, params, decode=page_json)
    except VenueUnreachable:
        raise
    except VenueError as exc:
        raise RatesError(f"{what}: {exc}") from None


def error_message(payload: Any) -> str | None:
    """The message of a body with a non-empty ``error`` key, else None."""
    if isinstance(payload, dict) and payload.get("error") not in (None, ""):
        return str(payload["error"])
    return None


def records(payload: Any, keys: tuple[str, ...]) -> list:
    """The list of records of a body: the body itself, or under the first of ``keys``;
    ``ValueError`` otherwise."""
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        for key in keys:
            if isinstance(payload.get(key), list):
                return payload[key]
    raise ValueError(f"expected a list of records, got {str(payload)[:200]}")


def term_range(
    start: dt.datetime, end: dt.datetime, term_start: dt.datetime | None, maturity: dt.datetime, interval: str
) -> tuple[dt.datetime, dt.datetime]:
    """``[start, end)`` narrowed to the ``interval`` candles that can hold a minute of a future's
    term: from the candle holding ``term_start`` (None, not stated: not narrowed) to the last
    one opening before ``maturity``. A provider has no rate outside the term, so the walk asks
    for no window that can only come back empty."""
    if term_start is not None:
        start = max(start, UNIX + dt.timedelta(seconds=candle_open_s(unix_s(term_start), interval)))
    return start, max(start, min(end, maturity))


def windows(start: dt.datetime, end: dt.datetime, interval: str, per_request: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` unix-second windows covering the ``interval`` candles opening in
    ``[start, end)`` (naive UTC), each holding at most ``per_request`` candle open times."""
    step = INTERVALS[interval]
    first = unix_s(start)
    lo = candle_open_s(first, interval)
    if lo < first:
        lo += step  # the candle open before start is not asked for
    stop = unix_s(end - dt.timedelta(microseconds=1)) + 1 if end > start else lo
    out = []
    while lo < stop:
        hi = min(lo + per_request * step, stop)
        out.append((lo, hi))
        lo = hi
    return out
