"""The DuckDB warehouse: table definitions and the one resource that opens the file.

Everything in schema ``funding`` of ``$FUNDING_ASSETS_HOME/warehouse.duckdb``. Assets never
open the file themselves: they go through :class:`Warehouse` (directly, or via
:class:`funding_assets.io_manager.WarehouseIOManager`), which keeps connections short so
other processes (the webserver, a notebook copy) are blocked as little as possible.

Writes replace whole partitions atomically: one transaction deletes the partition's rows
and inserts the new ones, so a failed write leaves the previous rows in place and a
re-materialisation never duplicates.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl
from dagster._utils.backoff import backoff
from dagster_duckdb import DuckDBResource

from .features import FEATURE_COLUMNS
from .pca import FITS_SCHEMA
from .prints import PRINT_SCHEMA, TS
from .settings import ensure_writable_home
from .spreads import SPREAD_SCHEMA
from .strip import SNAPSHOT_SCHEMA

SCHEMA = "funding"

_SNAPSHOT_KEY = {"venue": pl.String(), "symbol": pl.String(), "kind": pl.String(), "ts": TS, "funding_time": TS}

TABLES: dict[str, dict[str, pl.DataType]] = {
    "raw_prints": PRINT_SCHEMA,
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
    "spread_signals": SPREAD_SCHEMA,
}


#: Each table's key, also the order every read returns rows in, so that float sums over a
#: partition's rows see them in the same order on every run (same bytes out).
TABLE_KEYS: dict[str, list[str]] = {
    "raw_prints": ["venue", "symbol", "ts", "funding_time"],
    "live_prints": ["venue", "symbol", "ts", "funding_time"],
    "curve_snapshots": ["venue", "symbol", "kind", "ts"],
    "curve_features": ["venue", "symbol", "kind", "ts"],
    "pca_factors": ["venue", "symbol", "kind", "ts"],
    "pca_fits": ["fit_id"],
    "spread_signals": ["symbol", "venue_a", "venue_b", "funding_time"],
}


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
    }
    for polars_type, sql in names.items():
        if isinstance(dtype, polars_type):
            return sql
    raise TypeError(f"no DuckDB type for {dtype}")


def create_statements() -> list[str]:
    out = [f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"]
    for table, schema in TABLES.items():
        cols = ", ".join(f'"{c}" {duckdb_type(t)}' for c, t in schema.items())
        out.append(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{table} ({cols})")
    return out


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


class Warehouse(DuckDBResource):
    """The warehouse file (a :class:`DuckDBResource` with atomic partition writes)."""

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection; waits (with back-off) while another process holds the lock."""
        if not read_only and self.database not in _WRITABLE:
            ensure_writable_home(Path(self.database).parent)
            _WRITABLE.add(self.database)
        con = backoff(
            fn=duckdb.connect,
            retry_on=(duckdb.IOException,),
            kwargs={"database": self.database, "read_only": read_only},
            max_retries=10,
        )
        try:
            if not read_only:
                for statement in create_statements():
                    con.execute(statement)
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
    ) -> int:
        """Atomically delete ``where`` from ``table`` and insert ``frame``; returns rows written.

        ``relations`` are frames registered by name for ``where`` to refer to (key lists).
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
        return conform(table, frame) if frame.height else empty(table)
