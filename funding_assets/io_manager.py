"""IO manager that stores each asset as a table of the warehouse, one partition at a time.

Built on the public IO-manager API: a partitioned output replaces exactly its partitions'
rows in one transaction (``DELETE ... USING`` the key list, then ``INSERT``), whatever the
shape of the key set (one key, a date range for several venues, scattered keys); inputs
load exactly the mapped upstream partitions. The asset declares how its rows map to
partitions with ``metadata={"partition_expr": {"date": "<timestamp column>", "venue": "venue"}}``.

Every write records its partition keys in the warehouse (same transaction). An input is
loaded only when every mapped upstream partition of a configured venue is recorded there:
otherwise the run fails naming the partitions to materialise first, because computing from
a partial lookback would silently give different numbers.
"""

import datetime as dt

import dagster as dg
import polars as pl

from .errors import FundingInputError
from .partitions import split_key
from .warehouse import SCHEMA, Warehouse, _keys, empty, partition_filter


def describe_keys(partition_keys: list[str], limit: int = 6) -> str:
    """``2024-01-01..2024-01-04|okx, 2024-01-03|bybit``: keys as day ranges per venue."""
    by_venue: dict[str | None, list[dt.date]] = {}
    for key in partition_keys:
        day, venue = split_key(key)
        by_venue.setdefault(venue, []).append(day)
    parts = []
    for venue, days in sorted(by_venue.items(), key=lambda kv: kv[0] or ""):
        days = sorted(set(days))
        runs: list[list[dt.date]] = []
        for day in days:
            if runs and day == runs[-1][1] + dt.timedelta(days=1):
                runs[-1][1] = day
            else:
                runs.append([day, day])
        for lo, hi in runs:
            span = str(lo) if lo == hi else f"{lo}..{hi}"
            parts.append(f"{span}|{venue}" if venue else span)
    more = f" and {len(parts) - limit} more" if len(parts) > limit else ""
    return ", ".join(parts[:limit]) + more


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Tables in schema ``funding``; partitions replaced atomically, never duplicated.

    ``venues``: the configured venues; inputs load (and require) only their partitions.
    ``coins``: the coins of the run. An output replaces only these coins' rows of its
    partitions (a run narrowed to BTC leaves ETH alone) and is recorded as materialised per
    coin; an input requires every one of them to be materialised.
    """

    warehouse: Warehouse
    venues: list[str] | None = None
    coins: list[str]

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
            keys = list(context.asset_partition_keys)
            self._check_inside(table, obj, expr, _keys(keys), self.coins)
            where, params, relations = partition_filter(expr, keys, self.coins)
            written = self.warehouse.replace(
                table, obj, where, params, relations=relations, partitions=_rows_per_key(obj, expr, keys, self.coins)
            )
        context.add_output_metadata({"rows": dg.MetadataValue.int(written), "table": f"{SCHEMA}.{table}"})

    @staticmethod
    def _check_inside(table: str, obj: pl.DataFrame, expr: dict[str, str], keys: pl.DataFrame, coins) -> None:
        """Refuse rows outside the partitions and coins being written: they would survive a re-run twice."""
        if obj.height == 0:
            return
        other = obj.filter(~pl.col("symbol").is_in(list(coins)))
        if other.height:
            raise dg.DagsterInvariantViolationError(
                f"{SCHEMA}.{table}: {other.height} row(s) of coin(s) this run does not write "
                f"({', '.join(sorted(other['symbol'].unique().to_list()))}; the run writes {', '.join(coins)})"
            )
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
        keys = [k for k in context.asset_partition_keys if self._configured(k)]
        if not keys:
            return empty(table)
        missing = sorted(set(keys) - self.warehouse.materialised(table, keys, self.coins))
        if missing:
            raise FundingInputError(
                f"{SCHEMA}.{table} is not materialised for {len(missing)} of the {len(keys)} partition(s) "
                f"this run reads (coins {','.join(self.coins)}): {describe_keys(missing)}. Materialise them first "
                "(funding-assets backfill materialises every lookback before the requested days); "
                "computing without them would give different numbers"
            )
        where, params, relations = partition_filter(self._expr(context), keys, self.coins)
        return self.warehouse.read(table, where, params, relations=relations)

    def _configured(self, key: str) -> bool:
        _, venue = split_key(key)
        return venue is None or self.venues is None or venue in self.venues


def _rows_per_key(
    obj: pl.DataFrame, expr: dict[str, str], keys: list[str], coins: list[str]
) -> dict[tuple[str, str], int]:
    """Rows written per (partition key, coin); 0 for a pair with no rows: it is still materialised."""
    counts = {(k, c): 0 for k in keys for c in coins}
    if obj.height:
        by = [pl.col(expr["date"]).dt.date().alias("_date"), pl.col("symbol")]
        if "venue" in expr:
            by.append(pl.col(expr["venue"]).alias("_venue"))
        for row in obj.group_by(by).len().iter_rows(named=True):
            key = f"{row['_date']}|{row['_venue']}" if "venue" in expr else str(row["_date"])
            counts[(key, row["symbol"])] = counts.get((key, row["symbol"]), 0) + row["len"]
    return counts
