"""The landing area: prints handed from the collector to the pipeline as whole Parquet files.

A :class:`LandingWriter` buffers prints in memory and writes them as one file when the
buffer's first row is ``rotate_s`` old, when it holds ``max_rows``, or on ``flush()``/``close()``.
Each file is written under a hidden temporary name in the same folder, fsynced, then given
its final name in one atomic step, so a reader lists only whole files.

Final names sort in write order::

    prints-<UTC yyyymmddThhmmss.fff>-<6-digit sequence>.parquet

The timestamp never goes below the newest name already in the folder (a wall clock stepped
back, a restarted writer) and the sequence continues after it, so a file written later always
has a greater name. That is what lets the ``live_prints`` sensor keep the last name it
ingested as its cursor and ask for :func:`landed_files` ``after`` it.

Rows are :data:`LANDING_SCHEMA`: the print model plus ``received_at`` (naive UTC
``Datetime("ms")``: when the collector received the message).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import polars as pl

from ..prints import PRINT_SCHEMA, TS, as_utc_ms

#: Columns of a landed file, in storage order: the print model plus ``received_at``.
LANDING_SCHEMA: dict[str, pl.DataType] = {**PRINT_SCHEMA, "received_at": TS}

PREFIX = "prints-"
SUFFIX = ".parquet"
NAME_RE = re.compile(r"prints-(\d{8}T\d{6}\.\d{3})-(\d{6})\.parquet")
NAME_TS_FORMAT = "%Y%m%dT%H%M%S"
SEQUENCE_LIMIT = 1_000_000
#: Temp files of a crashed writer older than this are removed when a writer starts.
STALE_TEMP_S = 600.0


class LandingError(ValueError):
    """A landed file that cannot be read as whole, well-formed prints; the message names it."""

    def __init__(self, path: Path | str, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"landed file {self.path}: {reason}")


def conform_landing(frame: pl.DataFrame) -> pl.DataFrame:
    """Select and cast ``frame`` to :data:`LANDING_SCHEMA` (timestamps to naive UTC ms).

    Raises :class:`ValueError` naming missing columns. A frame already in the schema is
    returned as is: the collector calls this once per message.
    """
    if list(frame.schema.items()) == list(LANDING_SCHEMA.items()):
        return frame
    missing = [c for c in LANDING_SCHEMA if c not in frame.columns]
    if missing:
        raise ValueError(f"landing: frame lacks column(s) {', '.join(missing)}")
    exprs = []
    for name, dtype in LANDING_SCHEMA.items():
        if dtype == TS:
            exprs.append(as_utc_ms(pl.col(name), frame.schema[name], name).alias(name))
        else:
            exprs.append(pl.col(name).cast(dtype))
    return frame.select(exprs)


def _name(epoch_ms: int, sequence: int) -> str:
    stamp = dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC)
    return f"{PREFIX}{stamp.strftime(NAME_TS_FORMAT)}.{epoch_ms % 1000:03d}-{sequence:06d}{SUFFIX}"


def _parse_name(name: str) -> tuple[int, int] | None:
    """``(epoch ms, sequence)`` of a final name, None for anything else (temp files)."""
    m = NAME_RE.fullmatch(name)
    if not m:
        return None
    stamp, millis = m.group(1).split(".")
    at = dt.datetime.strptime(stamp, NAME_TS_FORMAT).replace(tzinfo=dt.UTC)
    return int(at.timestamp()) * 1000 + int(millis), int(m.group(2))


def landed_files(folder: Path, after: str | None = None) -> list[Path]:
    """Whole landed files in ``folder`` sorted by name (= write order), optionally only
    those whose name is strictly greater than ``after`` (a file name, e.g. a sensor cursor).

    Temporary files are never listed; a missing folder has no files.
    """
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    chosen = sorted(n for n in names if NAME_RE.fullmatch(n) and (after is None or n > after))
    return [Path(folder) / n for n in chosen]


def read_landed(path: Path) -> pl.DataFrame:
    """Rows of a landed file in :data:`LANDING_SCHEMA`.

    Raises :class:`LandingError` (naming the file) when it is corrupt, truncated or has other
    columns or types; :class:`FileNotFoundError` when it does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"landed file {path} does not exist")
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # polars/arrow raise several types for a damaged file
        raise LandingError(path, f"not a readable Parquet file ({type(exc).__name__}: {exc})") from None
    found = list(frame.schema.items())
    if found != list(LANDING_SCHEMA.items()):
        want = ", ".join(f"{c} {t}" for c, t in LANDING_SCHEMA.items())
        got = ", ".join(f"{c} {t}" for c, t in found)
        raise LandingError(path, f"unexpected columns: expected [{want}], found [{got}]")
    return frame


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable: the directory entry is only on disk once the folder is synced."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LandingWriter:
    """Buffers prints and lands them as whole Parquet files in ``folder``. Thread-safe.

    A file is written when the buffer's first row has waited ``rotate_s`` seconds (by
    ``clock``, monotonic) or the buffer holds at least ``max_rows`` rows; checked on every
    :meth:`write` and :meth:`tick` (call it about once a second), and on :meth:`flush` and
    :meth:`close`. A file holds every buffered row, so it may exceed ``max_rows`` by the
    last frame written. ``wall_clock`` (epoch seconds) dates the file names.

    ``files_written`` and ``rows_written`` count what this writer landed.
    """

    def __init__(
        self,
        folder: Path,
        *,
        rotate_s: float = 10.0,
        max_rows: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ):
        if rotate_s <= 0 or max_rows <= 0:
            raise ValueError(f"landing: rotate_s and max_rows must be positive, got {rotate_s}, {max_rows}")
        self.folder = Path(folder)
        self.rotate_s = rotate_s
        self.max_rows = max_rows
        self._clock = clock
        self._wall_clock = wall_clock
        self.folder.mkdir(parents=True, exist_ok=True)
        # two locks: writers of rows only ever wait for the short buffer lock, while the file
        # lock keeps files landing one at a time, in name order
        self._buffer_lock = threading.Lock()
        self._file_lock = threading.Lock()
        self._frames: list[pl.DataFrame] = []
        self._rows = 0
        self._first_at: float | None = None
        self._closed = False
        self.files_written = 0
        self.rows_written = 0
        self._last_ms, self._last_seq = self._resume_point()

    def _resume_point(self) -> tuple[int, int]:
        """Newest name already landed (or 0, -1), and remove temp files a crash left behind."""
        newest = (0, -1)
        now = time.time()
        for entry in os.scandir(self.folder):
            parsed = _parse_name(entry.name)
            if parsed is not None:
                newest = max(newest, parsed)
            elif entry.name.startswith(f".{PREFIX}") and entry.name.endswith(".tmp"):
                try:
                    if now - entry.stat().st_mtime > STALE_TEMP_S:
                        os.unlink(entry.path)
                except FileNotFoundError:
                    pass
        return newest

    def _next_name(self) -> str:
        """A name greater than every name this writer has seen or written."""
        epoch_ms = max(int(self._wall_clock() * 1000), self._last_ms)
        sequence = self._last_seq + 1
        if sequence >= SEQUENCE_LIMIT:
            # the 6-digit sequence wraps: move the timestamp on so the name still sorts after
            sequence = 0
            epoch_ms = max(epoch_ms, self._last_ms + 1)
        self._last_ms, self._last_seq = epoch_ms, sequence
        return _name(epoch_ms, sequence)

    def write(self, frame: pl.DataFrame) -> Path | None:
        """Buffer prints (cast to :data:`LANDING_SCHEMA`); lands a file when one is due.

        Returns the file landed by this call, if any.
        """
        rows = conform_landing(frame)
        with self._buffer_lock:
            if self._closed:
                raise RuntimeError(f"landing writer for {self.folder} is closed")
            if rows.height:
                self._frames.append(rows)
                self._rows += rows.height
                if self._first_at is None:
                    self._first_at = self._clock()
        return self.tick()

    def _due(self) -> bool:
        with self._buffer_lock:
            return self._rows > 0 and (self._rows >= self.max_rows or self._clock() - self._first_at >= self.rotate_s)

    def tick(self) -> Path | None:
        """Land the buffer if it is old or large enough; returns the file landed, if any."""
        if not self._due():
            return None
        return self._land(force=False)

    def flush(self) -> Path | None:
        """Land whatever is buffered now; returns the file landed, if any."""
        return self._land(force=True)

    def close(self) -> None:
        """Land the buffer and refuse further writes. Safe to call twice."""
        with self._file_lock:
            with self._buffer_lock:
                self._closed = True
            self._land_locked(force=True)

    def __enter__(self) -> LandingWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _land(self, force: bool) -> Path | None:
        with self._file_lock:
            return self._land_locked(force)

    def _land_locked(self, force: bool) -> Path | None:
        # re-check under the file lock: another thread may have landed the buffer meanwhile
        if not force and not self._due():
            return None
        with self._buffer_lock:
            frames, rows, first_at = self._frames, self._rows, self._first_at
            self._frames, self._rows, self._first_at = [], 0, None
        if not rows:
            return None
        try:
            path = self._write_file(pl.concat(frames, rechunk=True))
        except BaseException:
            # keep the rows (ahead of any written meanwhile) so a later attempt lands them
            with self._buffer_lock:
                self._frames = frames + self._frames
                self._rows += rows
                self._first_at = first_at
            raise
        self.files_written += 1
        self.rows_written += rows
        return path

    def _write_file(self, data: pl.DataFrame) -> Path:
        # the temp name is unique per attempt, so another process landing into the same
        # folder (the sensor's REST poll) can never write into our temp file
        tmp = self.folder / f".{PREFIX}{uuid.uuid4().hex}{SUFFIX}.tmp"
        try:
            with open(tmp, "wb") as fh:
                data.write_parquet(fh)
                fh.flush()
                os.fsync(fh.fileno())
            while True:
                final = self.folder / self._next_name()
                try:
                    # link, unlike rename, refuses to replace an existing file: a name taken by
                    # another writer meanwhile moves us to the next name instead of clobbering it
                    os.link(tmp, final)
                    break
                except FileExistsError:
                    continue
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        _fsync_dir(self.folder)
        return final
