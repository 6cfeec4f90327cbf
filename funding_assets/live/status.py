"""What ``funding-assets status`` shows: the collector's per-venue health, as a JSON file.

The collector rewrites ``$FUNDING_ASSETS_HOME/live/status.json`` every few seconds (temp file
then rename, so a reader never sees half of it); the CLI and the ``live_prints`` sensor read
it. A status file that stops being rewritten means the collector is not running.

Times are naive UTC datetimes (the project's convention, see :mod:`funding_assets.prints`);
timezone-aware values are converted to UTC on the way in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import uuid
from pathlib import Path

from .store import live_dir

STATUS_FILE = "status.json"
STATES = ("connecting", "live", "reconnecting", "stopped")
#: A status written longer ago than this means the collector has probably stopped.
STALE_AFTER = dt.timedelta(seconds=30)
ERROR_WIDTH = 60


def status_path(home: Path) -> Path:
    """``<home>/live/status.json``."""
    return live_dir(home) / STATUS_FILE


def _naive_utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None)


@dataclasses.dataclass
class VenueStatus:
    """One venue's stream as the collector sees it.

    ``last_message_at``: when the last WebSocket message arrived (UTC). ``last_print_ts``:
    the venue's ``ts`` of the newest print (UTC). ``gaps_filled``: prints recovered from REST
    after reconnects. ``skipped_frames``: malformed messages dropped.
    """

    venue: str
    state: str
    last_message_at: dt.datetime | None = None
    last_print_ts: dt.datetime | None = None
    messages: int = 0
    prints: int = 0
    reconnects: int = 0
    gaps_filled: int = 0
    skipped_frames: int = 0
    last_error: str | None = None

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"venue status {self.venue}: state must be one of {STATES}, got {self.state!r}")
        self.last_message_at = _naive_utc(self.last_message_at)
        self.last_print_ts = _naive_utc(self.last_print_ts)


_TIMES = ("last_message_at", "last_print_ts")


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds")


def write_status(path: Path, statuses: list[VenueStatus], now: dt.datetime) -> None:
    """Write the statuses and ``written_at`` = ``now`` (UTC) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "written_at": _iso(_naive_utc(now)),
        "venues": [{**dataclasses.asdict(s), **{t: _iso(getattr(s, t)) for t in _TIMES}} for s in statuses],
    }
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_status(path: Path) -> tuple[dt.datetime, list[VenueStatus]]:
    """``(written_at, statuses)`` from a status file, times naive UTC.

    Raises :class:`FileNotFoundError` when no collector has written one yet and
    :class:`ValueError` naming the file for anything else: a file that cannot be read, is not
    UTF-8 JSON, or does not have the shape :func:`write_status` writes.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no collector status at {path}: no collector has run with this data directory "
            "(start one with `funding-assets collect`)"
        ) from None
    except OSError as exc:
        raise ValueError(f"collector status {path} is unreadable: {exc.strerror or exc}") from None
    try:
        return _parse_status(json.loads(raw.decode("utf-8")))
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise ValueError(
            f"collector status {path} is unreadable: {exc}; a running collector rewrites it every few seconds"
        ) from None


_COUNTS = ("messages", "prints", "reconnects", "gaps_filled", "skipped_frames")


def _time(value) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO time, got {value!r}")
    return dt.datetime.fromisoformat(value)


def _parse_status(doc) -> tuple[dt.datetime, list[VenueStatus]]:
    """The statuses of a decoded status document; TypeError/ValueError on any other shape."""
    if not isinstance(doc, dict) or not isinstance(doc.get("venues"), list) or not doc.get("written_at"):
        raise TypeError("expected an object with 'written_at' and a 'venues' list")
    statuses = []
    for item in doc["venues"]:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("venue"), str)
            or not isinstance(item.get("state"), str)
        ):
            raise TypeError(f"expected a venue object with 'venue' and 'state', got {str(item)[:80]}")
        for name in _COUNTS:
            if type(item.get(name, 0)) is not int:
                raise TypeError(f"{item['venue']}: {name} must be a whole number, got {item[name]!r}")
        if not isinstance(item.get("last_error"), str | None):
            raise TypeError(f"{item['venue']}: last_error must be text, got {item['last_error']!r}")
        statuses.append(VenueStatus(**{**item, **{t: _time(item.get(t)) for t in _TIMES}}))
    return _naive_utc(_time(doc["written_at"])), statuses


def _seconds(now: dt.datetime, then: dt.datetime | None) -> str:
    return "-" if then is None else f"{(now - then).total_seconds():.1f}"


def status_table(home: Path, now: dt.datetime | None = None) -> str:
    """The collector's status as a fixed-width table, one line per venue.

    ``age s``: seconds since the venue's last message; ``lag s``: seconds since the ``ts`` of
    its newest print; both as of ``now`` (default: the current UTC time). The header says
    when the status was written and warns when that is more than 30 s ago.
    """
    now = _naive_utc(now) if now is not None else dt.datetime.now(dt.UTC).replace(tzinfo=None)
    written_at, statuses = read_status(status_path(home))
    age = (now - written_at).total_seconds()
    lines = [f"collector status written {written_at:%Y-%m-%d %H:%M:%S} UTC ({age:.0f} s ago)"]
    if now - written_at > STALE_AFTER:
        lines.append(
            f"WARNING: status is {age:.0f} s old (> {STALE_AFTER.seconds} s): the collector is "
            "probably not running (start it with `funding-assets collect`)"
        )
    header = (
        "venue",
        "state",
        "age s",
        "lag s",
        "messages",
        "prints",
        "reconnects",
        "gaps filled",
        "skipped",
        "last error",
    )
    rows = [
        (
            s.venue,
            s.state,
            _seconds(now, s.last_message_at),
            _seconds(now, s.last_print_ts),
            str(s.messages),
            str(s.prints),
            str(s.reconnects),
            str(s.gaps_filled),
            str(s.skipped_frames),
            " ".join((s.last_error or "-").split())[:ERROR_WIDTH],
        )
        for s in statuses
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    text_cols = {0, 1, len(header) - 1}  # left-aligned; numbers right-aligned

    def line(cells) -> str:
        return "  ".join(
            c.ljust(w) if i in text_cols else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    lines += [line(header), *(line(r) for r in rows)]
    if not statuses:
        lines.append("(no venues)")
    return "\n".join(lines)
