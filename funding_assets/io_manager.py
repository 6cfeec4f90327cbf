"""IO manager that stores each asset as a table of the warehouse, one partition at a time.

Built on the public IO-manager API: a partitioned output replaces exactly its partitions'
rows in one transaction (``DELETE ... USING`` the key list, then ``INSERT``), whatever the
shape of the key set (one key, a date range for several venues, scattered keys); inputs
load exactly the mapped upstream partitions. The asset declares how its rows map to
partitions with ``metadata={"partition_expr": {"date": "<timestamp column>", "venue": "venue"}}``.
"""

import datetime as dt

import dagster as dg
import polars as pl

from .partitions import split_key
from .warehouse import SCHEMA, Warehouse, empty


def _keys(partition_keys: list[str]) -> pl.DataFrame:
    pairs = [split_key(k) for k in partition_keys]
    return pl.DataFrame(
        {"_date": [d for d, _ in pairs], "_venue": [v for _, v in pairs]},
        schema={"_date": pl.Date, "_venue": pl.String},
    )


def partition_filter(expr: dict[str, str], partition_keys: list[str]) -> tuple[str, list, dict[str, pl.DataFrame]]:
    """SQL ``where``, its parameters and relations selecting exactly these partitions' rows."""
    keys = _keys(partition_keys)
    where, params = _where(expr, keys)
    return where, params, {"_keys": keys}


def _where(expr: dict[str, str], keys: pl.DataFrame) -> tuple[str, list]:
    """SQL selecting the rows of ``keys``: a date-range prefilter plus an exact key join."""
    ts = expr["date"]
    first, last = keys["_date"].min(), keys["_date"].max()
    params = [dt.datetime.combine(first, dt.time()), dt.datetime.combine(last, dt.time()) + dt.timedelta(days=1)]
    match = f"CAST({ts} AS DATE) = _k._date"
    if "venue" in expr:
        match += f" AND {expr['venue']} = _k._venue"
    where = f"{ts} >= ? AND {ts} < ? AND EXISTS (SELECT 1 FROM _keys AS _k WHERE {match})"
    return where, params


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Tables in schema ``funding``; partitions replaced atomically, never duplicated."""

    warehouse: Warehouse

    def _table(self, context: dg.OutputContext | dg.InputContext) -> str:
        return context.asset_key.path[-1]

    def _expr(self, context: dg.OutputContext | dg.InputContext) -> dict[str, str]:
        metadata = context.definition_metadata or {}
        if isinstance(context, dg.InputContext) and context.upstream_output is not None:
            metadata = context.upstream_output.definition_metadata or {}
        expr = metadata.get("partition_expr")
        if not expr:
            raise dg.DagsterInvariantViolationError(
                f"{context.asset_key.to_user_string()}: partitioned tables need partition_expr metadata"
            )
        return expr

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame) -> None:
        table = self._table(context)
        if not context.has_asset_partitions:
            written = self.warehouse.replace(table, obj)
        else:
            expr = self._expr(context)
            self._check_inside(table, obj, expr, _keys(context.asset_partition_keys))
            where, params, relations = partition_filter(expr, context.asset_partition_keys)
            written = self.warehouse.replace(table, obj, where, params, relations=relations)
        context.add_output_metadata({"rows": dg.MetadataValue.int(written), "table": f"{SCHEMA}.{table}"})

    @staticmethod
    def _check_inside(table: str, obj: pl.DataFrame, expr: dict[str, str], keys: pl.DataFrame) -> None:
        """Refuse rows outside the partitions being written: they would survive a re-run twice."""
        if obj.height == 0:
            return
        venue = pl.col(expr["venue"]) if "venue" in expr else pl.lit(None, pl.String)
        got = obj.select(_date=pl.col(expr["date"]).dt.date(), _venue=venue)
        outside = got.join(keys, on=["_date", "_venue"], how="anti", nulls_equal=True)
        if outside.height:
            row = outside.row(0, named=True)
            raise dg.DagsterInvariantViolationError(
                f"{SCHEMA}.{table}: {outside.height} row(s) fall outside the partitions being "
                f"written (first: date {row['_date']}, venue {row['_venue']})"
            )

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        table = self._table(context)
        if not context.has_asset_partitions:
            return self.warehouse.read(table)
        keys = context.asset_partition_keys
        if not keys:
            return empty(table)
        where, params, relations = partition_filter(self._expr(context), list(keys))
        return self.warehouse.read(table, where, params, relations=relations)
