"""The universe end to end against the simulator: the seed notebook's coin-margined and USDC
instruments beside the USDT ones, discovery into ``instruments``, and runs narrowed to a
contract type that leave every other series' rows byte-identical."""

import duckdb
import polars as pl
import pytest

from funding_assets import cli

START, END = "2024-03-01", "2024-03-02"


def rows(home, table: str, where: str = "TRUE") -> pl.DataFrame:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.sql(f"SELECT * FROM funding.{table} WHERE {where} ORDER BY ALL").pl()


@pytest.fixture
def seed_notebook(home, monkeypatch):
    """BTC on Binance, Bybit and OKX in every contract type they list, from the simulator."""
    monkeypatch.setenv("FUNDING_ASSETS_VENUES", "binance,bybit,okx")
    monkeypatch.setenv("FUNDING_ASSETS_RECONSTRUCT", "0")
    args = ["backfill", "--start", START, "--end", END, "--coins", "BTC", "--contracts", "all"]
    assert cli.main(args) == 0
    return home


def test_discovery_stores_every_perpetual_the_venues_list(seed_notebook):
    listed = rows(seed_notebook, "instruments")
    per_venue = dict(listed.group_by("venue").len().iter_rows())
    assert set(per_venue) == {"binance", "bybit", "okx"} and min(per_venue.values()) >= 100
    pepe = listed.filter((pl.col("venue") == "binance") & (pl.col("symbol") == "PEPE") & (pl.col("contract") == "usdt"))
    assert pepe.select("venue_symbol", "multiplier").row(0) == ("1000PEPEUSDT", 1000.0)


def test_the_seed_notebooks_instruments_are_backfilled_stripped_and_spread(seed_notebook):
    prints = rows(seed_notebook, "raw_prints")
    names = set(prints.select("venue", "contract", "venue_symbol").unique().iter_rows())
    assert {
        ("binance", "inverse", "BTCUSD_PERP"),
        ("bybit", "usdc", "BTCUSDC"),
        ("okx", "inverse", "BTC-USD-SWAP"),
    } <= names
    assert {("binance", "usdt", "BTCUSDT"), ("bybit", "usdt", "BTCUSDT"), ("okx", "usdt", "BTC-USDT-SWAP")} <= names
    strips = rows(seed_notebook, "curve_snapshots", "kind = 'roll'")
    series = set(strips.select("venue", "contract").unique().iter_rows())
    assert {("binance", "inverse"), ("bybit", "usdc"), ("okx", "inverse"), ("binance", "usdt")} <= series
    spreads = rows(seed_notebook, "spread_signals")
    pairs = set(spreads.select("venue_a", "contract_a", "venue_b", "contract_b").unique().iter_rows())
    assert ("binance", "inverse", "binance", "usdt") in pairs  # across contract types of one venue
    assert ("binance", "inverse", "okx", "inverse") in pairs  # the same type across venues
    assert spreads["n_venues"].max() == len(series)


def test_a_contract_narrowed_run_leaves_every_other_series_byte_identical(seed_notebook):
    others = "NOT (venue IN ('binance', 'okx') AND contract = 'inverse')"
    before = {t: rows(seed_notebook, t, others) for t in ("raw_prints", "curve_snapshots", "curve_features")}
    spreads_before = rows(seed_notebook, "spread_signals", "contract_a <> 'inverse' AND contract_b <> 'inverse'")
    args = ["backfill", "--start", END, "--end", END, "--coins", "BTC", "--contracts", "inverse"]
    assert cli.main(args) == 0
    for table, frame in before.items():
        assert rows(seed_notebook, table, others).equals(frame), table
    assert rows(seed_notebook, "spread_signals", "contract_a <> 'inverse' AND contract_b <> 'inverse'").equals(
        spreads_before
    )


def test_a_coin_no_venue_lists_is_refused_naming_it(home, monkeypatch, capsys):
    monkeypatch.setenv("FUNDING_ASSETS_VENUES", "binance")
    assert cli.main(["backfill", "--start", END, "--end", END, "--coins", "BTC,NOSUCHCOIN"]) != 0
    assert "--coins: 'NOSUCHCOIN' listed by no configured venue (binance)" in capsys.readouterr().err
