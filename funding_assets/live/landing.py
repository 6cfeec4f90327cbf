"""The landing area: prints handed from the collector to the pipeline as whole Parquet files.

A :class:`LandingWriter` buffers prints in memory and writes them as one file when the
buffer's first row is ``rotate_s`` old, when it holds ``max_rows``, or on ``flush()``/``close()``.
Each file is written under a hidden temporary name in the same folder, fsynced, then given
its final name in one atomic step, so a reader lists only whole files.

Final names sort in write order::

    prints-<UTC yyyymmddThhmmss.fff>-<6-digit sequence>.parquet

The timestamp never goes below the newest name already in the folder (a wall clock stepped
back, a restarted writer) and the sequence continues after it, so a file written later always
has a greater name. That is what lets the ``live_prints`` sensor keep the last name ingested
as its cursor and ask for :func:`landed_files` ``after`` it.

**Journal** (``journal=True``, the collector's writer): every frame buffered is also appended
to a write-ahead journal in the same folder (``.journal-<generation>.wal``: length, CRC32 and
Arrow IPC bytes per frame), written through to the operating system at once and fsynced at
most every ``journal_fsync_s`` (:data:`JOURNAL_FSYNC_S`, 1 s). Killing the process therefore
loses nothing that reached :meth:`LandingWriter.write`; an OS crash or power cut loses at
most the last ``journal_fsync_s`` of it. Each buffer has its own journal generation; before
a file takes its final name the generation is renamed to carry that name, and deleted once
the file exists, so a crash at any point neither loses nor duplicates rows: the next
journaled writer lands what the journal holds as one whole file before anything else (a
torn last record, cut by the crash, is dropped).

**Lifecycle** of a landed file: ingested by a successful ``live_prints`` run, then deleted
by :func:`prune_landed` once older than the retention (:data:`LANDING_RETENTION`, 7 days);
a corrupt file is moved to ``rejected/`` (:func:`reject_landed`) and deleted from there after
:data:`REJECTED_RETENTION` (30 days). Only files directly inside the folder are ever ingested
(:func:`confined_landed_path`).

Rows are :data:`LANDING_SCHEMA`: the print model plus ``received_at`` (naive UTC
``Datetime("ms")``: when the collector received the message). Files and journals written
before prints carried ``contract`` (:data:`LEGACY_SCHEMA`) are read with ``contract`` set to
each venue's main perpetual of the coin, the only one the collector followed then.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path

import polars as pl

from ..prints import PRINT_SCHEMA, TS, as_utc_ms, main_contracts

#: Columns of a landed file, in storage order: the print model plus ``received_at``.
LANDING_SCHEMA: dict[str, pl.DataType] = {**PRINT_SCHEMA, "received_at": TS}
#: Columns of a landed file written before prints carried ``contract``.
LEGACY_SCHEMA: dict[str, pl.DataType] = {c: t for c, t in LANDING_SCHEMA.items() if c != "contract"}

PREFIX = "prints-"
SUFFIX = ".parquet"
NAME_RE = re.compile(r"prints-(\d{8}T\d{6}\.\d{3})-(\d{6})\.parquet")
NAME_TS_FORMAT = "%Y%m%dT%H%M%S"
SEQUENCE_LIMIT = 1_000_000
#: Temp files of a crashed writer older than this are removed when a writer starts.
STALE_TEMP_S = 600.0
#: Where corrupt landed files are moved (a subfolder of the landing folder).
REJECTED_DIR = "rejected"
#: Ingested landed files are deleted once their name's timestamp is this old.
LANDING_RETENTION = dt.timedelta(days=7)
#: Rejected files are kept this long for a human to look at, then deleted.
REJECTED_RETENTION = dt.timedelta(days=30)
#: Longest time (s) journal records wait in the OS before an fsync; what an OS crash can lose.
JOURNAL_FSYNC_S = 1.0
#: Journal generations: open ``.journal-<gen>.wal``, claimed ``.journal-<gen>.wal.<final name>``.
JOURNAL_RE = re.compile(r"\.journal-(\d{9})\.wal(?:\.(prints-.+\.parquet))?")
_RECORD = struct.Struct("<II")  # payload length, CRC32 of the payload


class LandingError(ValueError):
    """A landed file that cannot be read as whole, well-formed prints; the message names it."""

    def __init__(self, path: Path | str, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"landed file {self.path}: {reason}")


class LandingPathError(ValueError):
    """A path given for ingestion that is not a landed file directly inside the landing folder."""


def conform_landing(frame: pl.DataFrame) -> pl.DataFrame:
    """Select and cast ``frame`` to :data:`LANDING_SCHEMA` (timestamps to naive UTC ms); a
    missing or null ``contract`` is the venue's main perpetual of the coin.

    Raises :class:`ValueError` naming missing columns. A frame already in the schema is
    returned as is: the collector calls this once per message.
    """
    if list(frame.schema.items()) == list(LANDING_SCHEMA.items()):
        return frame
    frame = with_contract(frame)
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


def with_contract(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with ``contract`` set where it is missing or null: the venue's main perpetual
    of the coin (:func:`funding_assets.prints.main_contracts`). Needs ``venue`` and ``symbol``
    for that; a frame without them is returned as is."""
    if "contract" in frame.columns and not frame["contract"].null_count():
        return frame
    if not {"venue", "symbol"} <= set(frame.columns):
        return frame
    main = main_contracts(frame)
    if "contract" in frame.columns:
        return frame.with_columns(pl.col("contract").cast(pl.String).fill_null(main))
    return frame.with_columns(main)


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


def landed_at(name: str) -> dt.datetime | None:
    """When a landed file was written (naive UTC, from its name); None for other names."""
    parsed = _parse_name(name)
    if parsed is None:
        return None
    return dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=parsed[0])


def landed_files(folder: Path, after: str | None = None) -> list[Path]:
    """Whole landed files in ``folder`` sorted by name (= write order), optionally only
    those whose name is strictly greater than ``after`` (a file name, e.g. a sensor cursor).

    Temporary files, journals and ``rejected/`` are never listed; a missing folder has no files.
    """
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    chosen = sorted(n for n in names if NAME_RE.fullmatch(n) and (after is None or n > after))
    return [Path(folder) / n for n in chosen]


def read_landed(path: Path) -> pl.DataFrame:
    """Rows of a landed file in :data:`LANDING_SCHEMA` (a file of :data:`LEGACY_SCHEMA`
    gets each venue's main perpetual of the coin as ``contract``).

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
    if found == list(LEGACY_SCHEMA.items()):
        return with_contract(frame).select(list(LANDING_SCHEMA))
    if found != list(LANDING_SCHEMA.items()):
        want = ", ".join(f"{c} {t}" for c, t in LANDING_SCHEMA.items())
        got = ", ".join(f"{c} {t}" for c, t in found)
        raise LandingError(path, f"unexpected columns: expected [{want}], found [{got}]")
    return frame


def confined_landed_path(name: str | Path, folder: Path) -> Path:
    """``name`` resolved, if it is a landed file (by name) directly inside ``folder``.

    Refuses, with :class:`LandingPathError` naming the path: a ``..`` component, a file in
    another folder (a relative name is taken relative to the working directory), a symbolic
    link that leads out of ``folder``, and a name that is not a landed file's. The file need
    not exist (reading it reports that).
    """
    path = Path(name)
    root = Path(folder).resolve()
    why = None
    if ".." in path.parts:
        why = "'..' is not allowed"
    elif path.parent.resolve() != root:
        why = "not directly inside the landing folder"
    elif not NAME_RE.fullmatch(path.name):
        why = f"not a landed file name ({PREFIX}<UTC time>-<sequence>{SUFFIX})"
    elif path.resolve().parent != root:
        why = f"a symbolic link to {path.resolve()}, outside the landing folder"
    if why:
        raise LandingPathError(f"refusing to ingest {str(name)!r}: {why} (landing folder {root})")
    return path.resolve()


def reject_landed(path: Path) -> Path:
    """Move a landed file into ``rejected/`` next to it (never ingested again); returns the
    new path. A file already gone is not an error (returns where it would be)."""
    path = Path(path)
    target = path.parent / REJECTED_DIR / path.name
    target.parent.mkdir(exist_ok=True)
    try:
        os.replace(path, target)
    except FileNotFoundError:
        pass
    return target


def prune_landed(
    folder: Path,
    done_upto: str | None,
    now: dt.datetime,
    *,
    retention: dt.timedelta = LANDING_RETENTION,
    rejected_retention: dt.timedelta = REJECTED_RETENTION,
) -> list[Path]:
    """Delete what the landing area no longer needs; returns the deleted paths.

    - landed files whose name is at most ``done_upto`` (ingested: the sensor's cursor) and
      whose name's timestamp is older than ``now - retention``;
    - files in ``rejected/`` whose name's timestamp is older than ``now - rejected_retention``.

    Files not yet ingested are never deleted, whatever their age. ``now`` is naive UTC.
    """
    deleted = []
    if done_upto is not None:
        for path in landed_files(folder):
            if path.name > done_upto:
                break
            if landed_at(path.name) < now - retention:
                deleted.append(path)
    rejected = Path(folder) / REJECTED_DIR
    deleted += [p for p in landed_files(rejected) if landed_at(p.name) < now - rejected_retention]
    for path in deleted:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
    return deleted


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable: the directory entry is only on disk once the folder is synced."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _journal_record(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_ipc(buf)
    payload = buf.getvalue()
    return _RECORD.pack(len(payload), zlib.crc32(payload)) + payload


def read_journal(path: Path) -> list[pl.DataFrame]:
    """The frames of a journal generation, in write order, up to the first torn or damaged
    record (the tail a crash cut off)."""
    data = Path(path).read_bytes()
    frames, at = [], 0
    while at + _RECORD.size <= len(data):
        size, crc = _RECORD.unpack_from(data, at)
        payload = data[at + _RECORD.size : at + _RECORD.size + size]
        if len(payload) < size or zlib.crc32(payload) != crc:
            break
        frames.append(conform_landing(pl.read_ipc(io.BytesIO(payload))))
        at += _RECORD.size + size
    return frames


class LandingWriter:
    """Buffers prints and lands them as whole Parquet files in ``folder``. Thread-safe.

    A file is written when the buffer's first row has waited ``rotate_s`` seconds (by
    ``clock``, monotonic) or the buffer holds at least ``max_rows`` rows; checked on every
    :meth:`write` and :meth:`tick` (call it about once a second), and on :meth:`flush` and
    :meth:`close`. A file holds every buffered row, so it may exceed ``max_rows`` by the
    last frame written. ``wall_clock`` (epoch seconds) dates the file names.

    ``journal``: journal every buffered frame (module docstring) and, on start, land what a
    crashed writer's journal holds as one file before anything else (``recovered_rows``).
    One journaled writer per folder at a time (the collector); other writers (the sensor's
    REST poll) land their rows at once and leave the journal alone.

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
        journal: bool = False,
        journal_fsync_s: float = JOURNAL_FSYNC_S,
    ):
        if rotate_s <= 0 or max_rows <= 0:
            raise ValueError(f"landing: rotate_s and max_rows must be positive, got {rotate_s}, {max_rows}")
        self.folder = Path(folder)
        self.rotate_s = rotate_s
        self.max_rows = max_rows
        self._clock = clock
        self._wall_clock = wall_clock
        self.journal = journal
        self.journal_fsync_s = journal_fsync_s
        self.folder.mkdir(parents=True, exist_ok=True)
        # two locks: writers of rows only ever wait for the short buffer lock, while the file
        # lock keeps files landing one at a time, in name order
        self._buffer_lock = threading.Lock()
        self._file_lock = threading.Lock()
        self._frames: list[pl.DataFrame] = []
        self._rows = 0
        self._first_at: float | None = None
        self._closed = False
        # the journal of the buffer: closed generations (paths) and the open one (fd, path)
        self._segments: list[Path] = []
        self._segment_fd: int | None = None
        self._segment_path: Path | None = None
        self._generation = 0
        self._synced_at = clock()
        self._unsynced = False
        self.files_written = 0
        self.rows_written = 0
        self.recovered_rows = 0
        self._last_ms, self._last_seq = self._resume_point()
        if journal:
            self._recover()

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

    def _recover(self) -> None:
        """Land what the journal of a writer that did not close holds, as one file."""
        found = []
        for name in os.listdir(self.folder):
            m = JOURNAL_RE.fullmatch(name)
            if m:
                found.append((int(m.group(1)), name, m.group(2)))
        frames, segments = [], []
        for generation, name, landed_as in sorted(found):
            self._generation = max(self._generation, generation + 1)
            path = self.folder / name
            if landed_as is not None and (self.folder / landed_as).exists():
                path.unlink()  # landed; the crash came before the journal was deleted
                continue
            frames += read_journal(path)
            segments.append(path)
        rows = sum(f.height for f in frames)
        if segments:
            with self._buffer_lock:
                self._frames, self._rows, self._segments = frames, rows, segments
                self._first_at = self._clock()
            self.flush()
            self.recovered_rows = rows

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
        """Buffer prints (cast to :data:`LANDING_SCHEMA`), journaled first if the writer has a
        journal; lands a file when one is due. Returns the file landed by this call, if any."""
        rows = conform_landing(frame)
        record = _journal_record(rows) if self.journal and rows.height else None
        with self._buffer_lock:
            if self._closed:
                raise RuntimeError(f"landing writer for {self.folder} is closed")
            if rows.height:
                if record is not None:
                    self._journal_append(record)
                self._frames.append(rows)
                self._rows += rows.height
                if self._first_at is None:
                    self._first_at = self._clock()
        return self.tick()

    def _journal_append(self, record: bytes) -> None:
        # under the buffer lock: the open generation holds exactly the buffered frames
        if self._segment_fd is None:
            self._segment_path = self.folder / f".journal-{self._generation:09d}.wal"
            self._generation += 1
            self._segment_fd = os.open(self._segment_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        view = memoryview(record)
        while view:
            view = view[os.write(self._segment_fd, view) :]
        self._unsynced = True
        self._sync_if_due()

    def _sync_if_due(self) -> None:
        if self._unsynced and self._segment_fd is not None and self._clock() - self._synced_at >= self.journal_fsync_s:
            os.fsync(self._segment_fd)
            self._synced_at, self._unsynced = self._clock(), False

    def _due(self) -> bool:
        with self._buffer_lock:
            self._sync_if_due()
            return self._rows > 0 and (self._rows >= self.max_rows or self._clock() - self._first_at >= self.rotate_s)

    def tick(self) -> Path | None:
        """Land the buffer if it is old or large enough (and fsync a journal that is due);
        returns the file landed, if any."""
        if not self._due():
            return None
        return self._land(force=False)

    def flush(self) -> Path | None:
        """Land whatever is buffered now; returns the file landed, if any."""
        return self._land(force=True)

    def close(self) -> None:
        """Land the buffer (and so delete its journal) and refuse further writes. Safe to call twice."""
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
            if self._segment_fd is not None:  # the next write starts a new generation
                os.close(self._segment_fd)
                self._segments.append(self._segment_path)
                self._segment_fd = self._segment_path = None
                self._unsynced = False
            segments, self._segments = self._segments, []
        if not rows:
            for segment in segments:  # journals a crash cut before their first whole record
                segment.unlink(missing_ok=True)
            return None
        try:
            path = self._write_file(pl.concat(frames, rechunk=True), segments)
        except BaseException:
            # keep the rows and their journal (ahead of any written meanwhile) so a later
            # attempt, or the next writer's recovery, lands them
            with self._buffer_lock:
                self._frames = frames + self._frames
                self._rows += rows
                self._first_at = first_at
                self._segments = segments + self._segments
            raise
        for segment in segments:
            segment.unlink(missing_ok=True)  # another journaled writer may have recovered it
        self.files_written += 1
        self.rows_written += rows
        return path

    def _claim(self, segments: list[Path], final: str) -> None:
        """Rename (in place in ``segments``) the journal generations of a buffer to carry the
        name its file is about to take: a recovery then sees that the rows landed if that
        file exists."""
        for i, segment in enumerate(segments):
            generation = JOURNAL_RE.fullmatch(segment.name).group(1)
            target = segment.with_name(f".journal-{generation}.wal.{final}")
            os.replace(segment, target)
            segments[i] = target
        if segments:
            _fsync_dir(self.folder)

    def _write_file(self, data: pl.DataFrame, segments: list[Path]) -> Path:
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
                self._claim(segments, final.name)
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
