"""A warehouse written before ``contract`` existed: its rows were each venue's main perpetual,
and the first write of this version says so, instead of leaving null keys that a
contract-scoped replace would never delete (duplicates on the next run)."""

import datetime as dt

import duckdb
import polars as pl

from funding_assets.warehouse import Warehouse, partition_filter

T = dt.datetime(2024, 3, 1, 8)


def old_warehouse(path) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA funding")
        con.execute(
            "CREATE TABLE funding.raw_prints (venue VARCHAR, symbol VARCHAR, venue_symbol VARCHAR, ts TIMESTAMP, "
            "funding_time TIMESTAMP, rate DOUBLE, interval_hours DOUBLE, kind VARCHAR, source VARCHAR, "
            "published_at TIMESTAMP)"
        )
        for venue, coin, name in [
            ("binance", "BTC", "BTCUSDT"),
            ("hyperliquid", "BTC", "BTC"),
            ("deribit", "BTC", "BTC-PERPETUAL"),
            ("deribit", "SOL", "SOL_USDC-PERPETUAL"),
        ]:
            con.execute(
                "INSERT INTO funding.raw_prints VALUES (?, ?, ?, ?, ?, 0.0001, 8, 'realised', 'sim', ?)",
                [venue, coin, name, T, T, T],
            )
        con.execute(
            "CREATE TABLE funding.spread_signals (symbol VARCHAR, venue_a VARCHAR, venue_b VARCHAR, "
            "funding_time TIMESTAMP, spread DOUBLE)"
        )
        con.execute("INSERT INTO funding.spread_signals VALUES ('BTC', 'binance', 'deribit', ?, 0.01)", [T])
        con.execute(
            "CREATE TABLE funding._partitions (asset VARCHAR, partition_key VARCHAR, symbol VARCHAR, rows BIGINT)"
        )
        con.execute("INSERT INTO funding._partitions VALUES ('raw_prints', '2024-03-01|deribit', 'SOL', 1)")
        con.execute("INSERT INTO funding._partitions VALUES ('roll_b0', '2024-03-01', 'BTC', 3)")


def test_old_rows_get_their_venues_main_contract(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    old_warehouse(path)
    warehouse = Warehouse(database=str(path))
    with warehouse.connect():
        pass  # the first writing connection evolves the schema
    prints = warehouse.read("raw_prints")
    assert set(prints.select("venue", "symbol", "contract").iter_rows()) == {
        ("binance", "BTC", "usdt"),
        ("hyperliquid", "BTC", "usdc"),
        ("deribit", "BTC", "inverse"),
        ("deribit", "SOL", "usdc"),
    }
    spreads = warehouse.read("spread_signals")
    assert spreads.select("contract_a", "contract_b").row(0) == ("usdt", "inverse")
    # venue partitions' bookkeeping is the main contract's; a daily key's stays unknown (re-run)
    assert warehouse.materialised("raw_prints", {"2024-03-01|deribit": [("SOL", "usdc")]}) == {"2024-03-01|deribit"}
    assert warehouse.materialised("roll_b0", {"2024-03-01": [("BTC", "usdt")]}) == set()


def test_a_contract_scoped_replace_then_replaces_the_old_rows(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    old_warehouse(path)
    warehouse = Warehouse(database=str(path))
    series = pl.DataFrame({"venue": ["deribit"], "symbol": ["BTC"], "contract": ["inverse"]})
    where, params, relations = partition_filter({"date": "ts", "venue": "venue"}, ["2024-03-01|deribit"], series)
    new = warehouse.read("raw_prints").filter(pl.col("symbol") == "BTC", pl.col("venue") == "deribit")
    warehouse.replace("raw_prints", new.with_columns(rate=pl.lit(0.0002)), where, params, relations=relations)
    after = warehouse.read("raw_prints").filter(pl.col("venue") == "deribit")
    assert after.select("symbol", "contract", "rate").sort("symbol").rows() == [
        ("BTC", "inverse", 0.0002),
        ("SOL", "usdc", 0.0001),
    ]
