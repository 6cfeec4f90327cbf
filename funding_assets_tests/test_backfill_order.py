"""Stored numbers do not depend on the order history was back-filled in.

A backfill run forwards over a range, and the same range back-filled backwards in two
halves (the recent half first, then the older one, as a user extending history does), give
identical PCA fits and factors; so do the strips, features and spreads.
"""

import datetime as dt

import dagster as dg
import duckdb

from funding_assets.backfill import backfill
from funding_assets.resources import FundingConfig

START, MID, END = dt.date(2024, 2, 1), dt.date(2024, 3, 16), dt.date(2024, 4, 20)
TODAY = dt.date(2024, 5, 1)
ORDERS = {
    "pca_fits": "fit_id",
    "pca_factors": "venue, symbol, kind, ts",
    "curve_snapshots": "venue, symbol, kind, ts",
    "curve_features": "venue, symbol, kind, ts",
    "spread_signals": "symbol, venue_a, venue_b, funding_time",
}


ENV = {"FUNDING_ASSETS_VENUES": "okx,hyperliquid", "FUNDING_ASSETS_COINS": "BTC", "FUNDING_ASSETS_RATES": "none"}


def _backfill(home, ranges):
    config = FundingConfig.from_env({**ENV, "FUNDING_ASSETS_HOME": str(home)})
    with dg.DagsterInstance.ephemeral() as instance:
        for start, end in ranges:
            outcomes = backfill(start, end, config, instance, lambda _: None, lambda _: None, today=TODAY)
            assert all(o.success for o in outcomes), [o.error for o in outcomes if not o.success]


def _tables(home, start, end):
    out = {}
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        for name, order in ORDERS.items():
            column = "fitted_at" if name == "pca_fits" else ("funding_time" if name == "spread_signals" else "ts")
            out[name] = con.sql(
                f"SELECT * FROM funding.{name} WHERE {column} >= ? AND {column} < ? ORDER BY {order}",
                params=[dt.datetime.combine(start, dt.time()), dt.datetime.combine(end, dt.time())],
            ).pl()
    return out


def test_forwards_and_backwards_in_two_halves_store_identical_fits_and_factors(home, tmp_path):
    forwards, backwards = tmp_path / "forwards", tmp_path / "backwards"
    _backfill(forwards, [(START, END)])
    _backfill(backwards, [(MID, END), (START, MID - dt.timedelta(days=1))])
    # the days both runs were asked for (not the older lookback days, computed as context)
    a, b = _tables(forwards, START, END), _tables(backwards, START, END)
    assert a["pca_fits"].height >= 2 * 9  # two series (okx, hyperliquid) x weekly fits
    assert a["pca_factors"].height > 1000
    for name in ORDERS:
        assert a[name].equals(b[name]), name


def test_the_day_after_a_backfill_runs_one_day_per_asset_and_stores_what_a_full_backfill_does(tmp_path):
    """The daily increment: once a range is back-filled, the next day reuses the stored
    lookbacks (every run starts at the new day) and its rows equal a full backfill's."""
    last = START + dt.timedelta(days=6)
    day = last + dt.timedelta(days=1)
    incremental, full = tmp_path / "incremental", tmp_path / "full"
    _backfill(incremental, [(START, last)])
    config = FundingConfig.from_env({**ENV, "FUNDING_ASSETS_HOME": str(incremental)})
    with dg.DagsterInstance.ephemeral() as instance:
        outcomes = backfill(day, day, config, instance, lambda _: None, lambda _: None, today=TODAY)
    assert all(o.success for o in outcomes), [o.error for o in outcomes if not o.success]
    assert {(o.step.start, o.step.end) for o in outcomes} == {(day, day)}
    _backfill(full, [(START, day)])
    a, b = _tables(incremental, START, day + dt.timedelta(days=1)), _tables(full, START, day + dt.timedelta(days=1))
    for name in ORDERS:
        assert a[name].height and a[name].equals(b[name]), name
