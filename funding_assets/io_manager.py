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

from . import instruments
from .errors import FundingInputError
from .instruments import MAIN, Selection
from .partitions import split_key
from .venues import VENUES
from .warehouse import SCHEMA, SERIES_LEGS, Warehouse, _keys, empty, partition_filter

#: The contract column that goes with a table's venue column (spreads: the first leg's).
SERIES_CONTRACT = {"venue": "contract", "venue_a": "contract_a"}


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
    ``coins`` and ``contracts``: the run's instrument selection (as the settings write it:
    coins, ``all`` or ``top:N``; ``main``, ``all`` or contract types), resolved against the
    discovered ``instruments`` into series (venue, coin, contract). An output replaces only
    its series' rows of its partitions (a run narrowed to BTC leaves ETH alone) and is
    recorded as materialised per series; an input requires every one of them.
    """

    warehouse: Warehouse
    venues: list[str] | None = None
    coins: list[str]
    contracts: list[str] = [MAIN]

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

    def _series(self, keys: list[str]) -> pl.DataFrame:
        """The run's series on the venues of ``keys`` (every configured venue for daily keys)."""
        venues = sorted({v for _, v in map(split_key, keys) if v is not None}) or list(self.venues or VENUES)
        selection = Selection(tuple(self.coins), tuple(self.contracts))
        return instruments.series(self.warehouse.instruments(), selection, venues)

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame) -> None:
        table = self._table(context)
        if not context.has_asset_partitions:
            written = self.warehouse.replace(table, obj)
        else:
            expr = self._expr(context)
            keys = list(context.asset_partition_keys)
            series = self._series(keys)
            legs = SERIES_LEGS[table]
            self._check_inside(table, obj, expr, _keys(keys), series, legs)
            where, params, relations = partition_filter(expr, keys, series, legs)
            written = self.warehouse.replace(
                table, obj, where, params, relations=relations, partitions=_rows_per_key(obj, expr, keys, series)
            )
        context.add_output_metadata({"rows": dg.MetadataValue.int(written), "table": f"{SCHEMA}.{table}"})

    @staticmethod
    def _check_inside(
        table: str,
        obj: pl.DataFrame,
        expr: dict[str, str],
        keys: pl.DataFrame,
        series: pl.DataFrame,
        legs: list[tuple[str, str]],
    ) -> None:
        """Refuse rows outside the partitions and series being written: they would survive a re-run twice."""
        if obj.height == 0:
            return
        for venue, contract in legs:
            leg = obj.select(venue=pl.col(venue), symbol=pl.col("symbol"), contract=pl.col(contract))
            other = leg.join(series, on=["venue", "symbol", "contract"], how="anti", nulls_equal=True)
            if other.height:
                names = sorted(
                    {f"{r['venue']}:{r['symbol']}:{r['contract']}" for r in other.head(50).iter_rows(named=True)}
                )
                raise dg.DagsterInvariantViolationError(
                    f"{SCHEMA}.{table}: {other.height} row(s) of series this run does not write "
                    f"({', '.join(names[:6])}; the run writes {series.height} series)"
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
        series = self._series(keys)
        missing = sorted(set(keys) - self.warehouse.materialised(table, wanted_series(keys, series)))
        if missing:
            raise FundingInputError(
                f"{SCHEMA}.{table} is not materialised for {len(missing)} of the {len(keys)} partition(s) "
                f"this run reads ({', '.join(self.coins)}; contracts {', '.join(self.contracts)}): "
                f"{describe_keys(missing)}. Materialise them first "
                "(funding-assets backfill materialises every lookback before the requested days); "
                "computing without them would give different numbers"
            )
        where, params, relations = partition_filter(self._expr(context), keys, series, SERIES_LEGS[table])
        return self.warehouse.read(table, where, params, relations=relations)

    def _configured(self, key: str) -> bool:
        _, venue = split_key(key)
        return venue is None or self.venues is None or venue in self.venues


def _series_of_key(key: str, series: pl.DataFrame) -> list[tuple[str, str]]:
    """(coin, contract) pairs a partition key holds: its venue's series, or every series'
    (coin, contract) for a daily all-venue key."""
    _, venue = split_key(key)
    rows = series if venue is None else series.filter(pl.col("venue") == venue)
    return sorted(set(rows.select("symbol", "contract").iter_rows()))


def wanted_series(keys: list[str], series: pl.DataFrame) -> dict[str, list[tuple[str, str]]]:
    """Per partition key, the (coin, contract) pairs it must hold to count as materialised."""
    cache: dict[str | None, list[tuple[str, str]]] = {}
    out = {}
    for key in keys:
        venue = split_key(key)[1]
        if venue not in cache:
            cache[venue] = _series_of_key(key, series)
        out[key] = cache[venue]
    return out


def _rows_per_key(
    obj: pl.DataFrame, expr: dict[str, str], keys: list[str], series: pl.DataFrame
) -> dict[tuple[str, str, str], int]:
    """Rows written per (partition key, coin, contract); 0 for a series with no rows: it is
    still materialised (a coin listed later, or delisted, has days without prints)."""
    counts = {(k, c, t): 0 for k, pairs in wanted_series(keys, series).items() for c, t in pairs}
    contract = SERIES_CONTRACT.get(expr.get("venue", ""), "contract")
    if obj.height and contract in obj.columns:
        by = [pl.col(expr["date"]).dt.date().alias("_date"), pl.col("symbol"), pl.col(contract).alias("_contract")]
        if "venue" in expr:
            by.append(pl.col(expr["venue"]).alias("_venue"))
        for row in obj.group_by(by).len().iter_rows(named=True):
            key = f"{row['_date']}|{row['_venue']}" if "venue" in expr else str(row["_date"])
            k = (key, row["symbol"], row["_contract"])
            counts[k] = counts.get(k, 0) + row["len"]
    return counts
