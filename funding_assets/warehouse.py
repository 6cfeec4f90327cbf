"""The DuckDB warehouse: table definitions and the one resource that opens the file.

Everything in schema ``funding`` of ``$FUNDING_ASSETS_HOME/warehouse.duckdb``. Assets never
open the file themselves: they go through :class:`Warehouse` (directly, or via
:class:`funding_assets.io_manager.WarehouseIOManager`), which keeps connections short so
other processes (the webserver, a notebook copy) are blocked as little as possible.

Writes replace whole partitions atomically: one transaction deletes the partition's rows
and inserts the new ones, so a failed write leaves the previous rows in place and a
re-materialisation never duplicates. The same transaction records the partition keys it
wrote in ``funding._partitions`` (asset, partition_key, rows): a run reads another
partition only if that table says it was materialised in this warehouse, so a missing
lookback is reported instead of silently computing a different answer.

Schema evolution: a column added to a table definition is added to an existing warehouse
(``ALTER TABLE ... ADD COLUMN``, null in old rows) by the first writing connection; reads
of a warehouse not yet written by this version see the new columns as nulls.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
from dagster_duckdb import DuckDBResource

from .errors import FundingInputError
from .features import FEATURE_COLUMNS
from .fixedfloat import FIXED_PAIR, FIXED_SPREAD_SCHEMA, FIXED_VS_FLOATING_SCHEMA
from .instruments import INSTRUMENT_SCHEMA
from .partitions import split_key
from .pca import FITS_SCHEMA
from .prints import PRINT_SCHEMA, STORED_PRINT_SCHEMA, TS
from .rates.schema import CANDLE_SCHEMA
from .rates.schema import KEY as CANDLE_KEY
from .settings import ensure_writable_home
from .spreads import SPREAD_SCHEMA
from .strip import BUCKETS, SNAPSHOT_SCHEMA
from .venues import INVERSE, SPECS

SCHEMA = "funding"

_SNAPSHOT_KEY = {
    "venue": pl.String(),
    "symbol": pl.String(),
    "contract": pl.String(),
    "kind": pl.String(),
    "ts": TS,
    "funding_time": TS,
    "as_of": TS,
}

TABLES: dict[str, dict[str, pl.DataType]] = {
    "raw_prints": STORED_PRINT_SCHEMA,
    "live_prints": {**PRINT_SCHEMA, "received_at": TS},
    "curve_snapshots": SNAPSHOT_SCHEMA,
    "curve_features": {
        **_SNAPSHOT_KEY,
        **{c: (pl.Int32() if c == "shock_age" else pl.Float64()) for c in FEATURE_COLUMNS},
    },
    "pca_factors": {
        **_SNAPSHOT_KEY,
        "fit_id": pl.String(),
        "pc1": pl.Float64(),
        "pc2": pl.Float64(),
    },
    "pca_fits": FITS_SCHEMA,
    "roll_b0": {
        "venue": pl.String(),
        "symbol": pl.String(),
        "contract": pl.String(),
        "funding_time": TS,
        "as_of": TS,
        **{b: pl.Float64() for b in BUCKETS},
        "annualisation": pl.String(),
    },
    "spread_signals": {**SPREAD_SCHEMA, "as_of": TS},
    "instruments": INSTRUMENT_SCHEMA,
    "realised_funding": STORED_PRINT_SCHEMA,
    "fixed_rate_candles": CANDLE_SCHEMA,
    # partition_day: the UTC day whose partition holds the row (a candle's day, an outcome
    # row's maturity day)
    "fixed_vs_floating": {**FIXED_VS_FLOATING_SCHEMA, "partition_day": pl.Date()},
    "fixed_rate_spreads": FIXED_SPREAD_SCHEMA,
}


#: Each table's key, also the order every read returns rows in, so that float sums over a
#: partition's rows see them in the same order on every run (same bytes out).
TABLE_KEYS: dict[str, list[str]] = {
    "raw_prints": ["venue", "symbol", "contract", "ts", "funding_time"],
    "live_prints": ["venue", "symbol", "contract", "ts", "funding_time"],
    "curve_snapshots": ["venue", "symbol", "contract", "kind", "ts"],
    "curve_features": ["venue", "symbol", "contract", "kind", "ts"],
    "pca_factors": ["venue", "symbol", "contract", "kind", "ts"],
    "pca_fits": ["fit_id"],
    "roll_b0": ["venue", "symbol", "contract", "funding_time"],
    "spread_signals": ["symbol", "venue_a", "contract_a", "venue_b", "contract_b", "funding_time"],
    "instruments": ["venue", "symbol", "contract"],
    "realised_funding": ["venue", "symbol", "contract", "ts", "funding_time"],
    "fixed_rate_candles": list(CANDLE_KEY),
    "fixed_vs_floating": ["provider", "market_id", "interval", "ts", "kind"],
    "fixed_rate_spreads": [*FIXED_PAIR, "ts"],
}
#: The (venue, contract) column pairs that place a table's row in a series (venue, symbol,
#: contract); a spread row belongs to two series and is in a run's scope when both are.
SERIES_LEGS: dict[str, list[tuple[str, str]]] = {
    table: [("venue_a", "contract_a"), ("venue_b", "contract_b")]
    if table in ("spread_signals", "fixed_rate_spreads")
    else [("venue", "contract")]
    for table in TABLES
}
SERIES_SCHEMA = {"venue": pl.String, "symbol": pl.String, "contract": pl.String}


def duckdb_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.List):
        return f"{duckdb_type(dtype.inner)}[]"
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMP"
    names = {
        pl.String: "VARCHAR",
        pl.Float64: "DOUBLE",
        pl.Int64: "BIGINT",
        pl.Int32: "INTEGER",
        pl.Int8: "TINYINT",
        pl.Boolean: "BOOLEAN",
        pl.Date: "DATE",
    }
    for polars_type, sql in names.items():
        if isinstance(dtype, polars_type):
            return sql
    raise TypeError(f"no DuckDB type for {dtype}")


def _keys(partition_keys: list[str]) -> pl.DataFrame:
    pairs = [split_key(k) for k in partition_keys]
    return pl.DataFrame(
        {"_date": [d for d, _ in pairs], "_venue": [v for _, v in pairs]},
        schema={"_date": pl.Date, "_venue": pl.String},
    )


def partition_filter(
    expr: dict[str, str],
    partition_keys: list[str],
    series: pl.DataFrame | None = None,
    legs: list[tuple[str, str]] | None = None,
) -> tuple[str, list, dict[str, pl.DataFrame]]:
    """SQL ``where``, its parameters and relations selecting exactly these partitions' rows.

    ``series`` (columns venue, symbol, contract): only these series' rows (a run narrowed to
    some coins or contracts replaces those, no others); ``legs`` are the table's
    (venue, contract) column pairs (:data:`SERIES_LEGS`), every one of which must be in scope.
    """
    keys = _keys(partition_keys)
    where, params = _where(expr, keys)
    relations = {"_keys": keys}
    if series is not None:
        for venue, contract in legs or [("venue", "contract")]:
            # the relation's columns are named apart from the table's: an unqualified name in
            # the subquery must resolve to the row being filtered
            where += (
                f" AND EXISTS (SELECT 1 FROM _series AS _s WHERE _s._venue = {venue} "
                f"AND _s._symbol = symbol AND _s._contract = {contract})"
            )
        relations["_series"] = (
            series.select(list(SERIES_SCHEMA))
            .cast(SERIES_SCHEMA)
            .unique()
            .rename({"venue": "_venue", "symbol": "_symbol", "contract": "_contract"})
        )
    return where, params, relations


def main_contract_sql(venue: str, symbol: str) -> str:
    """SQL giving each venue's main perpetual of a coin (the contract rows written before
    ``contract`` existed were for)."""
    cases = []
    for name, spec in SPECS.items():
        first = spec.contracts[0]
        if first == INVERSE and spec.inverse_coins is not None:
            coins = ", ".join(f"'{c}'" for c in spec.inverse_coins)
            cases.append(f"WHEN {venue} = '{name}' AND {symbol} IN ({coins}) THEN '{first}'")
            cases.append(f"WHEN {venue} = '{name}' THEN '{spec.contracts[1]}'")
        else:
            cases.append(f"WHEN {venue} = '{name}' THEN '{first}'")
    return f"CASE {' '.join(cases)} END"


def _where(expr: dict[str, str], keys: pl.DataFrame) -> tuple[str, list]:
    """SQL selecting the rows of ``keys``: a date-range prefilter plus an exact key join, or
    the venues alone when the keys are every day of the range for each of their venues."""
    ts = expr["date"]
    first, last = keys["_date"].min(), keys["_date"].max()
    params = [dt.datetime.combine(first, dt.time()), dt.datetime.combine(last, dt.time()) + dt.timedelta(days=1)]
    where = f"{ts} >= ? AND {ts} < ?"
    days = (last - first).days + 1
    venues = keys["_venue"].drop_nulls().n_unique()
    if keys.unique().height == days * max(venues, 1) and keys["_venue"].null_count() in (0, keys.height):
        # every day of the range for every venue (a range run): the range and the venues
        # select exactly the keys' rows, without matching each row's day against them
        return where + (f" AND {expr['venue']} IN (SELECT _venue FROM _keys)" if "venue" in expr else ""), params
    match = f"CAST({ts} AS DATE) = _k._date"
    if "venue" in expr:
        match += f" AND {expr['venue']} = _k._venue"
    return where + f" AND EXISTS (SELECT 1 FROM _keys AS _k WHERE {match})", params


#: Bookkeeping of materialised partitions (not a user table: no wall-clock time either).
PARTITIONS_TABLE = "_partitions"


#: Its columns: one row per asset, partition key and series (coin, contract) written (rows may be 0).
PARTITIONS_COLUMNS = {
    "asset": "VARCHAR",
    "partition_key": "VARCHAR",
    "symbol": "VARCHAR",
    "contract": "VARCHAR",
    "rows": "BIGINT",
}


def create_statements() -> list[str]:
    out = [f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"]
    for table, schema in TABLES.items():
        cols = ", ".join(f'"{c}" {duckdb_type(t)}' for c, t in schema.items())
        out.append(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{table} ({cols})")
    cols = ", ".join(f"{c} {t}" for c, t in PARTITIONS_COLUMNS.items())
    out.append(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{PARTITIONS_TABLE} ({cols})")
    return out


def add_missing_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Add the columns a table definition has and the stored table lacks; ``table.column`` added.

    Bookkeeping rows written before ``_partitions.symbol`` existed keep a null coin: they
    prove nothing about a coin, so those partitions read as not materialised until re-run.
    Rows written before ``contract`` existed were each venue's main perpetual of the coin:
    the new column is filled so (and so is the bookkeeping of venue partitions; that of
    the daily all-venue tables stays null, so those days read as not materialised).
    """
    stored: dict[str, set[str]] = {}
    for table, column in con.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = ?", [SCHEMA]
    ).fetchall():
        stored.setdefault(table, set()).add(column)
    wanted = {table: {c: duckdb_type(t) for c, t in schema.items()} for table, schema in TABLES.items()}
    wanted[PARTITIONS_TABLE] = PARTITIONS_COLUMNS
    added = []
    for table, schema in wanted.items():
        for column, sql_type in schema.items():
            if column not in stored.get(table, set()):
                con.execute(f'ALTER TABLE {SCHEMA}.{table} ADD COLUMN "{column}" {sql_type}')
                added.append(f"{table}.{column}")
                _fill_contract(con, table, column, stored.get(table, set()))
    return added


def _fill_contract(con: duckdb.DuckDBPyConnection, table: str, column: str, existing: set[str]) -> None:
    """Old rows of a ``contract`` column just added: the venue's main perpetual of the coin."""
    if column == "contract" and table == PARTITIONS_TABLE:
        venue = "split_part(partition_key, '|', 2)"
        con.execute(f"UPDATE {SCHEMA}.{table} SET contract = {main_contract_sql(venue, 'symbol')} WHERE {venue} <> ''")
        return
    legs = {"contract": "venue", "contract_a": "venue_a", "contract_b": "venue_b"}
    if column in legs and legs[column] in existing and "symbol" in existing:
        con.execute(f"UPDATE {SCHEMA}.{table} SET {column} = {main_contract_sql(legs[column], 'symbol')}")


def empty(table: str) -> pl.DataFrame:
    return pl.DataFrame(schema=TABLES[table])


def conform(table: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Select and cast ``frame`` to the table's columns, or raise naming what is missing."""
    schema = TABLES[table]
    missing = [c for c in schema if c not in frame.columns]
    if missing:
        raise ValueError(f"{SCHEMA}.{table}: frame lacks column(s) {', '.join(missing)}")
    return frame.select(list(schema)).cast(schema)


#: Warehouse paths whose directory was proven writable in this process (checked once, not
#: with a probe file on every connection).
_WRITABLE: set[str] = set()
#: Warehouse files (path, inode) this process brought to the current tables and columns: a
#: connection to one skips the schema statements (a file created since is brought up again).
_EVOLVED: set[tuple[str, int]] = set()


class WarehouseError(RuntimeError):
    """The warehouse file cannot be opened: locked too long by another process, or not a DuckDB file."""


class WarehouseLockedError(WarehouseError):
    pass


_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.*?) \(PID (?P<pid>\d+)\)")
#: Seconds between attempts while the file is locked (grows to the maximum).
_LOCK_POLL_S = (0.05, 1.0)


def _lock_holder(message: str) -> str | None:
    """``pid 123 (python3.11)`` from DuckDB's lock error, or None when it is not a lock error."""
    if "Could not set lock" not in message and "Conflicting lock" not in message:
        return None
    found = _LOCK_HOLDER.search(message)
    return f"pid {found['pid']} ({Path(found['exe']).name})" if found else "pid unknown"


def _say(text: str) -> None:
    """Tell the user once: on stderr (the command line) and in the Dagster run's log."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
    dg.get_dagster_logger("funding_assets").warning(text)


def open_database(path: str, read_only: bool, timeout_s: float) -> duckdb.DuckDBPyConnection:
    """Open ``path``; while another process holds its lock, say so once and wait up to ``timeout_s``.

    A file that is not a DuckDB database fails at once, naming it (retrying cannot help).
    """
    deadline = time.monotonic() + timeout_s
    delay, max_delay = _LOCK_POLL_S
    announced = False
    while True:
        try:
            return duckdb.connect(path, read_only=read_only)
        except duckdb.IOException as exc:
            message = str(exc)
            if "not a valid DuckDB database file" in message:
                raise WarehouseError(
                    f"{path} is not a DuckDB database (corrupt or another kind of file): move it aside "
                    "and run funding-assets backfill to rebuild it"
                ) from None
            holder = _lock_holder(message)
            if holder is None:
                raise WarehouseError(f"cannot open the warehouse {path}: {message.splitlines()[0]}") from None
            if time.monotonic() >= deadline:
                raise WarehouseLockedError(
                    f"warehouse {path} still locked by another process ({holder}) after {timeout_s:g} s; "
                    "close that connection (notebooks: query funding_assets.warehouse.snapshot()), "
                    "or raise FUNDING_ASSETS_LOCK_TIMEOUT"
                ) from None
            if not announced:
                _say(f"warehouse locked by another process ({holder}); waiting up to {timeout_s:g} s")
                announced = True
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, max_delay)


class Warehouse(DuckDBResource):
    """The warehouse file (a :class:`DuckDBResource` with atomic partition writes)."""

    #: Seconds a connection waits for another process's lock before failing (``FUNDING_ASSETS_LOCK_TIMEOUT``).
    lock_timeout_s: float = 120.0

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection; waits up to ``lock_timeout_s`` while another process holds the file."""
        if not read_only and self.database not in _WRITABLE:
            ensure_writable_home(Path(self.database).parent)
            _WRITABLE.add(self.database)
        path = Path(self.database)
        existed = path.is_file()
        con = open_database(self.database, read_only, self.lock_timeout_s)
        try:
            if not read_only:
                if not existed or (self.database, path.stat().st_ino) not in _EVOLVED:
                    for statement in create_statements():
                        con.execute(statement)
                    add_missing_columns(con)
                    if path.is_file():
                        _EVOLVED.add((self.database, path.stat().st_ino))
            yield con
        finally:
            con.close()

    def replace(
        self,
        table: str,
        frame: pl.DataFrame,
        where: str = "TRUE",
        params: list | None = None,
        *,
        relations: dict[str, pl.DataFrame] | None = None,
        partitions: dict[tuple[str, str, str], int] | None = None,
    ) -> int:
        """Atomically delete ``where`` from ``table`` and insert ``frame``; returns rows written.

        ``relations`` are frames registered by name for ``where`` to refer to (key lists);
        ``partitions`` ((partition key, coin, contract) -> rows) are recorded as materialised
        in the same transaction.
        """
        rows = conform(table, frame)
        with self.connect() as con:
            for name, rel in (relations or {}).items():
                con.register(name, rel.to_arrow())
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f"DELETE FROM {SCHEMA}.{table} WHERE {where}", params or [])
                if rows.height:
                    con.register("incoming", rows.to_arrow())
                    con.execute(f"INSERT INTO {SCHEMA}.{table} BY NAME SELECT * FROM incoming")
                if partitions:
                    done = pl.DataFrame(
                        [(*k, n) for k, n in partitions.items()],
                        schema={
                            "partition_key": pl.String,
                            "symbol": pl.String,
                            "contract": pl.String,
                            "rows": pl.Int64,
                        },
                        orient="row",
                    )
                    con.register("_done", done.to_arrow())
                    con.execute(
                        f"DELETE FROM {SCHEMA}.{PARTITIONS_TABLE} AS p WHERE asset = ? AND EXISTS "
                        "(SELECT 1 FROM _done AS d WHERE d.partition_key = p.partition_key "
                        "AND ((d.symbol = p.symbol AND d.contract = p.contract) OR p.symbol IS NULL "
                        "OR (d.symbol = p.symbol AND p.contract IS NULL)))",
                        [table],
                    )
                    con.execute(
                        f"INSERT INTO {SCHEMA}.{PARTITIONS_TABLE} BY NAME "
                        "SELECT ? AS asset, partition_key, symbol, contract, rows FROM _done",
                        [table],
                    )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return rows.height

    def read(
        self,
        table: str,
        where: str = "TRUE",
        params: list | None = None,
        *,
        relations: dict[str, pl.DataFrame] | None = None,
    ) -> pl.DataFrame:
        """Rows of ``table`` matching ``where``, cast to the table's polars schema."""
        with self.connect() as con:
            for name, rel in (relations or {}).items():
                con.register(name, rel.to_arrow())
            order = ", ".join(TABLE_KEYS[table])
            query = f"SELECT * FROM {SCHEMA}.{table} WHERE {where} ORDER BY {order}"
            frame = con.sql(query, params=params or None).pl()
        if not frame.height:
            return empty(table)
        # a warehouse not yet evolved by a write of this version: its new columns read as null
        absent = [pl.lit(None, dtype).alias(c) for c, dtype in TABLES[table].items() if c not in frame.columns]
        return conform(table, frame.with_columns(absent))

    def materialised(self, table: str, wanted: dict[str, list[tuple[str, str]]]) -> set[str]:
        """Which partition keys of ``table`` this warehouse holds as materialised for every
        one of their series (``{key: [(coin, contract), ...]}``; a key with no series is
        materialised when any write recorded it)."""
        if not wanted:
            return set()
        pairs = pl.DataFrame(
            [(k, c, t) for k, series in wanted.items() for c, t in (series or [(None, None)])],
            schema={"partition_key": pl.String, "symbol": pl.String, "contract": pl.String},
            orient="row",
        )
        with self.connect() as con:
            con.register("_wanted", pairs.to_arrow())
            found = con.execute(
                f"SELECT w.partition_key FROM _wanted AS w LEFT JOIN {SCHEMA}.{PARTITIONS_TABLE} AS p "
                "ON p.asset = ? AND p.partition_key = w.partition_key "
                "AND ((p.symbol = w.symbol AND p.contract = w.contract) OR w.symbol IS NULL) "
                "GROUP BY w.partition_key HAVING bool_and(p.asset IS NOT NULL)",
                [table],
            ).fetchall()
        return {k for (k,) in found}

    def instruments(self) -> pl.DataFrame:
        """Every instrument discovered so far (empty before the first discovery)."""
        return self.read("instruments")

    # Typed questions the assets ask (no SQL in the assets, so another store can stand here).

    def live_prints_in(self, partition_keys: list[str]) -> pl.DataFrame:
        """Live prints whose (UTC day of ``ts``, venue) is one of the ``date|venue`` keys."""
        where, params, relations = partition_filter({"date": "ts", "venue": "venue"}, partition_keys)
        return self.read("live_prints", where, params, relations=relations)

    def roll_snapshots_between(self, venues: list[str], start, end) -> pl.DataFrame:
        """Stored roll snapshots of ``venues`` with ``start <= ts < end`` (UTC)."""
        rows = self.read("curve_snapshots", "kind = 'roll' AND ts >= ? AND ts < ?", [start, end])
        return rows.filter(pl.col("venue").is_in(list(venues)))

    def realised_counts(self, partition_keys: list[str], series: pl.DataFrame) -> dict[tuple[str, str, str], int]:
        """Stored realised prints per (``date|venue`` key, coin, contract), for the keys and series given."""
        where, params, relations = partition_filter({"date": "ts", "venue": "venue"}, partition_keys, series)
        with self.connect() as con:
            for name, rel in relations.items():
                con.register(name, rel.to_arrow())
            rows = con.execute(
                f"SELECT CAST(ts AS DATE), venue, symbol, contract, count(*) FROM {SCHEMA}.raw_prints "
                f"WHERE kind = 'realised' AND {where} GROUP BY ALL",
                params,
            ).fetchall()
        return {(f"{day}|{venue}", symbol, contract): n for day, venue, symbol, contract, n in rows}

    def upsert_live_prints(self, rows: pl.DataFrame) -> int:
        """Insert live prints, replacing rows with the same (venue, symbol, contract, ts, funding_time)."""
        key = TABLE_KEYS["live_prints"]
        match = " AND ".join(f"live_prints.{c} = _k.{c}" for c in key)
        return self.replace(
            "live_prints", rows, f"EXISTS (SELECT 1 FROM _k WHERE {match})", relations={"_k": rows.select(key)}
        )


def snapshot(source: str | Path | None = None, dest: str | Path | None = None, timeout_s: float = 120.0) -> Path:
    """A consistent read-only copy of the warehouse for notebooks; returns its path.

    Holds the file's lock only while copying (about a second per GB), so a running
    Dagster write waits that long at most, and the notebook then queries the copy without
    blocking anything. ``source`` defaults to ``$FUNDING_ASSETS_HOME/warehouse.duckdb``,
    ``dest`` to ``warehouse_snapshot.duckdb`` next to it (not named like the ``funding``
    schema, which would make ``funding.`` ambiguous).
    """
    from .resources import FundingConfig

    src = Path(source) if source is not None else FundingConfig.from_env().warehouse_path
    if not src.is_file():
        raise FundingInputError(f"{src}: no warehouse here (run funding-assets backfill or demo first)")
    out = Path(dest) if dest is not None else src.with_name("warehouse_snapshot.duckdb")
    if out.stem == SCHEMA:
        raise FundingInputError(f"{out}: a file named like the schema {SCHEMA!r} makes {SCHEMA}. ambiguous")
    partial = out.with_name(out.name + ".partial")
    # A read-only connection holds a shared lock: no writer can change the file while it is copied,
    # and an open connection has checkpointed any write-ahead log into the file.
    con = open_database(str(src), True, timeout_s)
    try:
        shutil.copyfile(src, partial)
        wal = src.with_name(src.name + ".wal")  # left by a writer that was killed: replayed on open
        if wal.is_file():
            shutil.copyfile(wal, out.with_name(out.name + ".wal"))
        else:
            out.with_name(out.name + ".wal").unlink(missing_ok=True)
    finally:
        con.close()
    partial.replace(out)
    return out
