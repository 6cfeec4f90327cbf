"""The collector's own strip store: ``$FUNDING_ASSETS_HOME/live/live.duckdb``, never the warehouse.

DuckDB lets one process write a file, and even a reader blocks writers, so the collector
keeps its live strip in a file of its own, holds one long-lived connection to it and is its
only writer. Table ``live_strip``: the snapshot columns of :mod:`funding_assets.strip` plus
``received_at`` (when the venue message that produced the row arrived) and ``stored_at``
(when the row was committed), both naive UTC ``Datetime("ms")``; key
``(venue, symbol, contract, kind, ts)``, a later row replacing an earlier one with the same
key. A store written before a column existed (``as_of``, ``coverage``, ``min_coverage``)
gains it when opened, null in its old rows; one written before ``contract`` (key ``(venue,
symbol, kind, ts)``) is rebuilt with the new key when opened, its rows given each venue's
main perpetual of their coin (all the collector followed then).

Rows are queued by :meth:`LiveStore.put` and committed by a background thread in batches
(one transaction per batch, no per-row SQL), which is what lets it keep up with tens of
thousands of rows per second at a latency of tens of milliseconds. A row whose key no
stored row has (an intraday row later than every stored one of its series: nearly every
row) is plainly inserted, which costs DuckDB half an insert-or-replace; the others are
inserted or replaced. The file's connection uses one thread: commits are small and
frequent, and the collector's own threads need the cores.

Retention: the store keeps what the collector committed in the last :data:`LIVE_RETENTION`
(7 days, by ``stored_at``): older rows are deleted when the store opens and then every
:data:`PRUNE_EVERY_S` (1 h) by the writer thread, and the freed space is reused, so the file
stays bounded while the collector runs for months. The strip itself is rebuilt from REST
history at every start (the collector's pre-warm); the store is a record, not the state.
"""

from __future__ import annotations

import collections
import datetime as dt
import threading
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from ..prints import TS, main_contracts
from ..settings import WAREHOUSE_FILE
from ..strip import SNAPSHOT_SCHEMA

LIVE_DIR = "live"
LIVE_FILE = "live.duckdb"
TABLE = "live_strip"
KEY = ["venue", "symbol", "contract", "kind", "ts"]

#: What :meth:`LiveStore.put` takes: a strip row and when its message arrived.
PUT_SCHEMA: dict[str, pl.DataType] = {**SNAPSHOT_SCHEMA, "received_at": TS}
#: Columns of ``live_strip``, in storage order.
LIVE_STRIP_SCHEMA: dict[str, pl.DataType] = {**PUT_SCHEMA, "stored_at": TS}

DEFAULT_BATCH_S = 0.05
LATENCY_SAMPLES = 200_000
#: Rows committed (``stored_at``) longer ago than this are pruned.
LIVE_RETENTION = dt.timedelta(days=7)
#: Seconds (monotonic) between two prunes while the store is written.
PRUNE_EVERY_S = 3600.0


def live_dir(home: Path) -> Path:
    """The collector's folder under the data directory (store and status file)."""
    return Path(home) / LIVE_DIR


def live_store_path(home: Path) -> Path:
    """``<home>/live/live.duckdb``."""
    return live_dir(home) / LIVE_FILE


def _utcnow() -> dt.datetime:
    """Naive UTC now, ms precision (the warehouse's timestamp convention)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _conform(rows: pl.DataFrame) -> pl.DataFrame:
    """Cast to :data:`PUT_SCHEMA`; cheap when the frame already has it (one call per message)."""
    if list(rows.schema.items()) == list(PUT_SCHEMA.items()):
        return rows
    missing = [c for c in PUT_SCHEMA if c not in rows.columns]
    if missing:
        raise ValueError(f"{TABLE}: rows lack column(s) {', '.join(missing)}")
    return rows.select(list(PUT_SCHEMA)).cast(PUT_SCHEMA)


class LiveStoreError(RuntimeError):
    """The store's writer thread failed; queued rows were not committed."""


class LiveStore:
    """The live strip in its own DuckDB file, written by a background thread.

    ``put`` queues rows and returns at once; every ``batch_s`` seconds the writer commits
    everything queued in one transaction (insert-or-replace on the key), stamping
    ``stored_at`` with the wall-clock UTC time of that commit. ``latencies_ms()`` gives
    the last :data:`LATENCY_SAMPLES` per-row latencies in ms, measured when the commit has
    returned (so they include the commit itself and are never below ``stored_at -
    received_at``). Thread-safe. If a commit fails the writer stops and every later call
    raises :class:`LiveStoreError` with the cause.

    ``retention``: rows whose ``stored_at`` is older than ``clock() - retention`` are deleted
    on open and every ``prune_every_s`` seconds (module docstring); ``clock`` (naive UTC) also
    stamps ``stored_at``. ``rows_pruned`` counts the rows deleted.
    """

    def __init__(
        self,
        path: Path,
        *,
        batch_s: float = DEFAULT_BATCH_S,
        retention: dt.timedelta = LIVE_RETENTION,
        prune_every_s: float = PRUNE_EVERY_S,
        clock: Callable[[], dt.datetime] = _utcnow,
    ):
        self.path = Path(path)
        if self.path.name == WAREHOUSE_FILE:
            raise ValueError(f"the live store must not be the warehouse file ({self.path})")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.batch_s = batch_s
        self.retention = retention
        self.prune_every_s = prune_every_s
        self._clock = clock
        self.rows_pruned = 0
        # one thread: commits are small and frequent, and the collector's own threads need the cores
        self._con = duckdb.connect(str(self.path), config={"threads": 1})
        self._db_lock = threading.Lock()
        # column types are DuckDB's own mapping of the Arrow schema every batch arrives in
        # (timestamps become TIMESTAMP_MS), so inserts need no conversion; and no import of
        # the warehouse module (Dagster, scikit-learn) into the collector
        shape = self._con.from_arrow(pl.DataFrame(schema=LIVE_STRIP_SCHEMA).to_arrow())
        self._columns = ", ".join(f'"{c}" {t}' for c, t in zip(shape.columns, shape.types))
        self._con.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} ({self._columns}, PRIMARY KEY ({', '.join(KEY)}))")
        # a store written before a column existed gains it (null in its old rows)
        present = {r[0] for r in self._con.execute(f"DESCRIBE {TABLE}").fetchall()}
        for column, sql_type in zip(shape.columns, shape.types):
            if column not in present:
                self._con.execute(f'ALTER TABLE {TABLE} ADD COLUMN "{column}" {sql_type}')
        self._rekey()
        self.prune()
        self._pruned_at = time.monotonic()

        self._cond = threading.Condition()
        self._queue: list[pl.DataFrame | Callable[[], pl.DataFrame]] = []
        self._queued = 0  # frames ever queued
        self._committed = 0  # frames ever committed
        self._stopping = False
        self._error: BaseException | None = None
        #: per commit, the latency samples (ms) of its rows: from ``received_at`` (every row) and
        #: from ``ts`` (intraday rows), arrays kept until they hold LATENCY_SAMPLES each
        self._latencies: dict[str, collections.deque[np.ndarray]] = {
            "received": collections.deque(),
            "event": collections.deque(),
        }
        #: latency samples ever taken, by kind
        self.latency_samples = {"received": 0, "event": 0}
        target = ", ".join(f'"{c}"' for c in LIVE_STRIP_SCHEMA)
        columns = ", ".join(f'"{c}"' for c in PUT_SCHEMA)
        source = f"SELECT {columns}, ?::TIMESTAMP_MS FROM incoming"
        self._insert_new = f"INSERT INTO {TABLE} ({target}) {source} WHERE new_key"
        self._insert_or_replace = f"INSERT OR REPLACE INTO {TABLE} ({target}) {source} WHERE NOT new_key"
        #: (venue, symbol, contract) -> ts (epoch ms) of the newest intraday row stored: a later
        #: intraday row of the series has a key no stored row has (see _commit)
        self._newest: dict[tuple, int] = {
            (venue, symbol, contract): newest
            for venue, symbol, contract, newest in self._con.execute(
                f"SELECT venue, symbol, contract, epoch_ms(max(ts)) FROM {TABLE} WHERE kind = 'intraday' GROUP BY ALL"
            ).fetchall()
        }
        self.rows_stored = 0
        self.batches = 0
        #: wall ms of each recent commit's database statements (the last LATENCY_SAMPLES):
        #: what a row waits for beyond its batch, checkpoints included
        self.commit_ms: collections.deque[float] = collections.deque(maxlen=LATENCY_SAMPLES)
        self._thread = threading.Thread(target=self._run, name=f"live-store-{self.path.name}", daemon=True)
        self._thread.start()

    # -- writing ---------------------------------------------------------------------------

    def put(self, rows: pl.DataFrame | Callable[[], pl.DataFrame]) -> None:
        """Queue strip rows (:data:`PUT_SCHEMA`: snapshot columns + ``received_at``, naive UTC
        ms), or a function that builds them, which the writer thread calls before its commit
        (the caller's thread, an event loop, then never waits for polars' thread pool)."""
        if not callable(rows):
            rows = _conform(rows)
            if not rows.height:
                return
        with self._cond:
            self._raise_if_failed()
            if self._stopping:
                raise LiveStoreError(f"live store {self.path} is closed")
            self._queue.append(rows)
            self._queued += 1
            self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> None:
        """Block until every row queued before this call is committed."""
        with self._cond:
            target = self._queued
            ok = self._cond.wait_for(
                lambda: self._committed >= target or self._error is not None or not self._thread.is_alive(),
                timeout,
            )
            self._raise_if_failed()
            if not ok:
                raise TimeoutError(f"live store {self.path}: rows still queued after {timeout} s")

    def close(self) -> None:
        """Commit what is queued, stop the writer and close the file. Safe to call twice."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join()
        with self._db_lock:
            if self._con is not None:
                self._con.close()
                self._con = None
        self._raise_if_failed()

    def __enter__(self) -> LiveStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise LiveStoreError(f"live store {self.path}: writer failed: {self._error}") from self._error

    def _rekey(self) -> None:
        """Rebuild a table whose primary key is not :data:`KEY` (a store written before
        ``contract``): DuckDB cannot change a key in place. Its rows, at most the retention's
        worth, get each venue's main perpetual of their coin where ``contract`` is null."""
        keys = self._con.execute(
            "SELECT constraint_column_names FROM duckdb_constraints() "
            "WHERE table_name = ? AND constraint_type = 'PRIMARY KEY'",
            [TABLE],
        ).fetchall()
        if [list(k) for (k,) in keys] == [KEY]:
            return
        rows = self._con.sql(f"SELECT * FROM {TABLE}").pl().select(list(LIVE_STRIP_SCHEMA))
        rows = rows.with_columns(pl.col("contract").fill_null(main_contracts(rows))).cast(LIVE_STRIP_SCHEMA)
        rows = rows.unique(subset=KEY, keep="last", maintain_order=True)
        self._con.execute("BEGIN TRANSACTION")
        try:
            self._con.execute(f"DROP TABLE {TABLE}")
            self._con.execute(f"CREATE TABLE {TABLE} ({self._columns}, PRIMARY KEY ({', '.join(KEY)}))")
            self._con.register("old_rows", rows.to_arrow())
            self._con.execute(f"INSERT INTO {TABLE} SELECT * FROM old_rows")
            self._con.unregister("old_rows")
            self._con.execute("COMMIT")
        except BaseException:
            self._con.execute("ROLLBACK")
            raise

    def prune(self) -> int:
        """Delete the rows committed before ``clock() - retention``; returns how many."""
        cutoff = self._clock() - self.retention
        with self._db_lock:
            if self._con is None:
                raise LiveStoreError(f"live store {self.path} is closed")
            (deleted,) = self._con.execute(f"DELETE FROM {TABLE} WHERE stored_at < ?", [cutoff]).fetchone()
            if deleted:
                self._con.execute("CHECKPOINT")  # hand the freed blocks back for reuse
        self.rows_pruned += deleted
        return deleted

    def _run(self) -> None:
        last_commit = 0.0
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stopping)
                if not self._queue and self._stopping:
                    return
            # let a batch gather: at most one commit per batch_s, unless closing
            pause = last_commit + self.batch_s - time.monotonic()
            if pause > 0 and not self._stopping:
                with self._cond:
                    self._cond.wait_for(lambda: self._stopping, pause)
            with self._cond:
                frames, self._queue = self._queue, []
            last_commit = time.monotonic()
            try:
                self._commit(frames)
            except BaseException as exc:  # noqa: BLE001 - kept and re-raised to every caller
                with self._cond:
                    self._error = exc
                    self._cond.notify_all()
                return
            with self._cond:
                self._committed += len(frames)
                self._cond.notify_all()
            if time.monotonic() - self._pruned_at >= self.prune_every_s:
                self._pruned_at = time.monotonic()
                try:
                    self.prune()
                except BaseException as exc:  # noqa: BLE001 - kept and re-raised to every caller
                    with self._cond:
                        self._error = exc
                        self._cond.notify_all()
                    return

    def _commit(self, frames: list[pl.DataFrame | Callable[[], pl.DataFrame]]) -> None:
        """Insert-or-replace the rows in one transaction (frames given as functions are built
        first). Rows whose key no stored row has (an intraday row later than every stored one
        of its series: the common case) are plainly inserted, which costs DuckDB half an
        insert-or-replace; the others (roll rows, and any row that may meet a stored key) are
        inserted or replaced."""
        built = [_conform(f()) if callable(f) else f for f in frames]
        batch = pl.concat([f for f in built if f.height], rechunk=True) if any(f.height for f in built) else None
        if batch is None:
            return
        keys = list(zip(*(batch[c].to_list() for c in KEY[:-1]), batch["ts"].cast(pl.Int64).to_list()))
        if len(set(keys)) < len(keys):  # the last row of a key wins, as a later row would replace it
            batch = batch.unique(subset=KEY, keep="last", maintain_order=True)
            keys = list(dict.fromkeys(reversed(keys)))[::-1]  # the same rows: each key at its last place
        newest = dict(self._newest)
        new_key = []
        for venue, symbol, contract, kind, ts in keys:
            series = (venue, symbol, contract)
            fresh = kind == "intraday" and ts > newest.get(series, -1)
            if fresh:
                newest[series] = ts
            new_key.append(fresh)
        fresh_rows = sum(new_key)
        incoming = batch.hstack([pl.Series("new_key", new_key, pl.Boolean)])
        statements = [
            q for q, n in ((self._insert_new, fresh_rows), (self._insert_or_replace, batch.height - fresh_rows)) if n
        ]
        with self._db_lock:
            stored_at = self._clock()
            started = time.perf_counter()
            self._con.register("incoming", incoming)
            try:
                if len(statements) == 1:
                    self._con.execute(statements[0], [stored_at])  # one statement: one transaction
                else:
                    self._con.execute("BEGIN TRANSACTION")
                    try:
                        for statement in statements:
                            self._con.execute(statement, [stored_at])
                        self._con.execute("COMMIT")
                    except BaseException:
                        self._con.execute("ROLLBACK")
                        raise
            finally:
                self._con.unregister("incoming")
            self.commit_ms.append((time.perf_counter() - started) * 1000.0)
        self._newest = newest
        done_ms = time.time() * 1000.0
        received = done_ms - batch["received_at"].to_numpy().view(np.int64)
        intraday = (batch["kind"] == "intraday").to_numpy()
        event = done_ms - batch["ts"].to_numpy().view(np.int64)[intraday]
        with self._cond:
            for since, samples in (("received", received), ("event", event)):
                kept = self._latencies[since]
                kept.append(samples)
                self.latency_samples[since] += samples.size
                while sum(a.size for a in kept) - kept[0].size >= LATENCY_SAMPLES:
                    kept.popleft()
        self.rows_stored += batch.height
        self.batches += 1

    # -- reading ---------------------------------------------------------------------------

    def latencies_ms(self, since: str = "received", last: int | None = None) -> list[float]:
        """Per-row latency samples in ms, oldest first (at least the last :data:`LATENCY_SAMPLES`;
        ``last``: only the newest so many): from ``received_at`` (commit returned - when the
        collector received the message, every row), or, ``since="event"``, from the print's
        own ``ts`` (commit returned - the venue's stamp of the message; intraday rows, whose
        ``ts`` is their print's). ``latency_samples[since]`` counts the samples ever taken."""
        with self._cond:
            kept = list(self._latencies[since])
        samples = np.concatenate(kept) if kept else np.zeros(0)
        if last is not None:
            samples = samples[max(0, samples.size - last) :] if last else samples[:0]
        return samples.tolist()

    def _query(self, sql: str, params: list) -> pl.DataFrame:
        with self._db_lock:
            if self._con is None:
                raise LiveStoreError(f"live store {self.path} is closed")
            frame = self._con.sql(sql, params=params or None).pl()
        if not frame.height:
            return pl.DataFrame(schema=LIVE_STRIP_SCHEMA)
        return frame.select(list(LIVE_STRIP_SCHEMA)).cast(LIVE_STRIP_SCHEMA)

    def latest(self, venue: str | None = None) -> pl.DataFrame:
        """The newest intraday row (by ``ts``) of each series, sorted by venue, symbol, contract."""
        where, params = "kind = 'intraday'", []
        if venue is not None:
            where, params = f"{where} AND venue = ?", [venue]
        return self._query(
            f"SELECT * FROM {TABLE} WHERE {where} "
            "QUALIFY row_number() OVER (PARTITION BY venue, symbol, contract ORDER BY ts DESC) = 1 "
            "ORDER BY venue, symbol, contract",
            params,
        )

    def rolls(self, venue: str, symbol: str, contract: str | None = None) -> pl.DataFrame:
        """Roll rows of one series ordered by ``ts`` (the window end, UTC); ``contract`` None:
        the venue's main perpetual of the coin."""
        if contract is None:
            contract = main_contracts(pl.DataFrame({"venue": [venue], "symbol": [symbol]}))[0]
        return self._query(
            f"SELECT * FROM {TABLE} WHERE kind = 'roll' AND venue = ? AND symbol = ? AND contract = ? ORDER BY ts",
            [venue, symbol, contract],
        )
