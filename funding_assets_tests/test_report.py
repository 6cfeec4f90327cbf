"""The terminal summary and the HTML report, read from a small hand-built warehouse."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from funding_assets.errors import FundingInputError
from funding_assets.report import build_report, format_summary, summary

T0 = datetime(2025, 3, 1, 0, 0)
EIGHT_H = timedelta(hours=8)
N_ROLLS = 9  # three days of 8h settlements
VENUES = ("binance", "okx")
COINS = ("BTC", "ETH")
BUCKETS = [f"b{i}" for i in range(8)]

DDL = """
CREATE SCHEMA funding;
CREATE TABLE funding.raw_prints (
    venue VARCHAR, symbol VARCHAR, venue_symbol VARCHAR, ts TIMESTAMP, funding_time TIMESTAMP,
    rate DOUBLE, interval_hours DOUBLE, kind VARCHAR, source VARCHAR);
CREATE TABLE funding.curve_snapshots (
    venue VARCHAR, symbol VARCHAR, kind VARCHAR, ts TIMESTAMP, funding_time TIMESTAMP,
    interval_hours DOUBLE, annualisation VARCHAR,
    b0 DOUBLE, b1 DOUBLE, b2 DOUBLE, b3 DOUBLE, b4 DOUBLE, b5 DOUBLE, b6 DOUBLE, b7 DOUBLE,
    n_filled INTEGER);
CREATE TABLE funding.curve_features (
    venue VARCHAR, symbol VARCHAR, kind VARCHAR, ts TIMESTAMP, funding_time TIMESTAMP,
    level DOUBLE, slope DOUBLE, curvature DOUBLE,
    decay1 DOUBLE, decay2 DOUBLE, decay3 DOUBLE, decay4 DOUBLE, decay5 DOUBLE, decay6 DOUBLE,
    decay7 DOUBLE, shock_age INTEGER, level_z DOUBLE, slope_z DOUBLE);
CREATE TABLE funding.pca_factors (
    venue VARCHAR, symbol VARCHAR, kind VARCHAR, ts TIMESTAMP, funding_time TIMESTAMP,
    fit_id VARCHAR, pc1 DOUBLE, pc2 DOUBLE);
CREATE TABLE funding.pca_fits (
    fit_id VARCHAR, venue VARCHAR, symbol VARCHAR, fitted_at TIMESTAMP, window_start TIMESTAMP,
    window_end TIMESTAMP, n_obs INTEGER, loadings DOUBLE[][], explained_variance DOUBLE[],
    mean DOUBLE[]);
CREATE TABLE funding.spread_signals (
    symbol VARCHAR, venue_a VARCHAR, venue_b VARCHAR, funding_time TIMESTAMP,
    b0_a DOUBLE, b0_b DOUBLE, spread DOUBLE, mean DOUBLE, std DOUBLE, z DOUBLE,
    upper DOUBLE, lower DOUBLE, signal INTEGER, dispersion DOUBLE, n_venues INTEGER);
"""


def latest_b0(venue: str, coin: str) -> float:
    """Distinct per pair so a mixed-up row shows: binance BTC = 0.1095 (10.95 % APR)."""
    return 0.1095 + 0.01 * VENUES.index(venue) + 0.1 * COINS.index(coin)


def roll_strip(venue: str, coin: str, k: int) -> list[float]:
    """b0..b7 of roll k; the last roll ends on latest_b0 and b7 = b0 - 0.07."""
    b0 = latest_b0(venue, coin) - 0.001 * (N_ROLLS - 1 - k)
    return [b0 - 0.01 * i for i in range(8)]


def insert_pair(con: duckdb.DuckDBPyConnection, venue: str, coin: str) -> None:
    for k in range(N_ROLLS):
        ft = T0 + k * EIGHT_H
        con.execute(
            "INSERT INTO funding.raw_prints VALUES (?, ?, ?, ?, ?, 0.0001, 8, 'realised', 'test')",
            [venue, coin, f"{coin}USDT", ft, ft],
        )
        con.execute(
            "INSERT INTO funding.curve_snapshots VALUES (?, ?, 'roll', ?, ?, 8, 'apr', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [venue, coin, ft, ft, *roll_strip(venue, coin, k), min(k + 1, 8)],
        )
        con.execute(
            "INSERT INTO funding.curve_features VALUES "
            "(?, ?, 'roll', ?, ?, 0.1, -0.02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.5, -1.5)",
            [venue, coin, ft, ft],
        )
        con.execute(
            "INSERT INTO funding.pca_factors VALUES (?, ?, 'roll', ?, ?, 'fit-1', ?, 0.0)",
            [venue, coin, ft, ft, float(k)],
        )
    last = T0 + (N_ROLLS - 1) * EIGHT_H
    # A predicted print and intraday rows *after* the last roll: latest b0/pc1 must ignore them.
    ahead = last + timedelta(hours=2)
    con.execute(
        "INSERT INTO funding.raw_prints VALUES (?, ?, ?, ?, ?, 0.0002, 8, 'predicted', 'test')",
        [venue, coin, f"{coin}USDT", ahead, last + EIGHT_H],
    )
    for minutes in (10, 20):
        ts = last + timedelta(minutes=minutes)
        con.execute(
            "INSERT INTO funding.curve_snapshots VALUES (?, ?, 'intraday', ?, ?, 8, 'apr', 9, 9, 9, 9, 9, 9, 9, 9, 8)",
            [venue, coin, ts, last + EIGHT_H],
        )
        con.execute(
            "INSERT INTO funding.pca_factors VALUES (?, ?, 'intraday', ?, ?, 'fit-1', 99, 0)",
            [venue, coin, ts, last + EIGHT_H],
        )
    for j, fitted in enumerate((T0 + 4 * EIGHT_H, last)):
        con.execute(
            "INSERT INTO funding.pca_fits VALUES (?, ?, ?, ?, ?, ?, 5, ?, [0.8, 0.15], ?)",
            [
                f"fit-{j}",
                venue,
                coin,
                fitted,
                T0,
                fitted,
                [[0.3535] * 8, [0.5, 0.4, 0.2, 0.0, -0.1, -0.2, -0.4, -0.5]],
                [0.1] * 8,
            ],
        )


def insert_spreads(con: duckdb.DuckDBPyConnection, coin: str) -> None:
    for k in range(N_ROLLS):
        signal = 1 if k == 3 else -1 if k == 6 else 0
        con.execute(
            "INSERT INTO funding.spread_signals VALUES "
            "(?, 'binance', 'okx', ?, 0.11, 0.12, -0.01, 0, 0.01, -1, 0.02, -0.02, ?, 0.01, 2)",
            [coin, T0 + k * EIGHT_H, signal],
        )


def titles(page: str) -> list[str]:
    """Every plotly title text in the page (figures, axes, colorbars), JSON-unescaped."""
    return [json.loads(m.group(1)) for m in re.finditer(r'"title":\{"text":("(?:[^"\\]|\\.)*")', page)]


def count_titles(page: str, prefix: str) -> int:
    return sum(t.startswith(prefix) for t in titles(page))


@pytest.fixture()
def warehouse(tmp_path: Path) -> Path:
    """binance/okx x BTC/ETH with strips, features, factors, fits and one spread per coin,
    plus bybit SOL with prints only (a venue whose strip has not been built yet)."""
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(DDL)
        for venue in VENUES:
            for coin in COINS:
                insert_pair(con, venue, coin)
        for coin in COINS:
            insert_spreads(con, coin)
        con.execute(
            "INSERT INTO funding.raw_prints VALUES ('bybit', 'SOL', 'SOLUSDT', ?, ?, 0.0001, 8, 'realised', 'test')",
            [T0, T0],
        )
    return path


def test_summary_counts_and_latest_values(warehouse: Path) -> None:
    df = summary(warehouse)
    assert df.select("venue", "symbol").rows() == [
        ("binance", "BTC"),
        ("binance", "ETH"),
        ("bybit", "SOL"),
        ("okx", "BTC"),
        ("okx", "ETH"),
    ]
    row = df.filter(venue="okx", symbol="ETH").row(0, named=True)
    assert row["prints"] == N_ROLLS + 1
    assert row["first_funding_time"] == T0
    assert row["last_funding_time"] == T0 + N_ROLLS * EIGHT_H  # the predicted print's window
    assert row["roll_snapshots"] == N_ROLLS
    assert row["intraday_snapshots"] == 2
    assert row["annualisation"] == "apr"
    assert row["latest_b0"] == pytest.approx(latest_b0("okx", "ETH"))
    assert row["latest_b7"] == pytest.approx(latest_b0("okx", "ETH") - 0.07)
    filled = [min(k + 1, 8) for k in range(N_ROLLS)]
    assert row["mean_n_filled"] == pytest.approx(sum(filled) / N_ROLLS)
    assert row["pca_fits"] == 2
    assert row["latest_pc1"] == N_ROLLS - 1  # the last roll, not the later intraday 99


def test_summary_pair_with_prints_only_has_zero_counts(warehouse: Path) -> None:
    row = summary(warehouse).filter(venue="bybit").row(0, named=True)
    assert (row["prints"], row["roll_snapshots"], row["pca_fits"]) == (1, 0, 0)
    assert row["latest_b0"] is None and row["latest_pc1"] is None


def test_format_summary_shows_annualised_percent(warehouse: Path) -> None:
    text = format_summary(summary(warehouse))
    header, rule, *rows = text.splitlines()
    assert "b0 % APR" in header and "b7 % APR" in header and "(UTC)" in header
    assert set(rule) <= {"-", " "}
    binance_btc = next(r for r in rows if r.startswith("binance") and " BTC " in r)
    assert "10.95" in binance_btc.split() and "3.95" in binance_btc.split()
    assert "2025-03-01 00:00" in binance_btc
    bybit = next(r for r in rows if r.startswith("bybit"))
    assert bybit.split()[-1] == "-"  # no pc1 yet, shown as a dash rather than "None"/"nan"


def test_summary_closes_its_connection(warehouse: Path) -> None:
    summary(warehouse)
    # DuckDB refuses a read-write connection while this process still holds a read-only one.
    with duckdb.connect(str(warehouse)) as con:
        assert con.execute("SELECT count(*) FROM funding.raw_prints").fetchone()[0] > 0


def test_report_is_self_contained_html(warehouse: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "nested" / "report.html"
    assert build_report(warehouse, out) == out
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    # plotly.js inline exactly once, and no script fetched from a CDN or anywhere else.
    assert page.count("* plotly.js v") == 1
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temp file left


def test_report_has_one_figure_per_pair_and_spread(warehouse: Path, tmp_path: Path) -> None:
    page = build_report(warehouse, tmp_path / "report.html").read_text(encoding="utf-8")
    for venue in VENUES:
        for coin in COINS:
            assert count_titles(page, f"Funding strip: {venue} {coin} (% APR") == 1
            assert count_titles(page, f"Level and slope: {venue} {coin}") == 1
            assert count_titles(page, f"PCA loadings: {venue} {coin}") == 1
    assert count_titles(page, "Funding strip: ") == 4  # bybit SOL has no strip to draw
    assert count_titles(page, "Spread: ") == 2
    assert count_titles(page, "Spread: BTC binance minus okx") == 1
    assert "funding time (UTC)" in titles(page)  # axes state the time zone
    assert "b0 (newest)" in page and "b7 (oldest)" in page


def test_report_header_and_summary_table(warehouse: Path, tmp_path: Path) -> None:
    page = build_report(warehouse, tmp_path / "report.html").read_text(encoding="utf-8")
    assert str(warehouse) in page
    assert "2025-03-01 00:00 to 2025-03-04 00:00 UTC" in page
    assert "binance, bybit, okx" in page and "BTC, ETH, SOL" in page
    assert "<th>b0 % APR</th>" in page and "<td>10.95</td>" in page


def test_report_is_a_function_of_the_warehouse(warehouse: Path, tmp_path: Path) -> None:
    first = build_report(warehouse, tmp_path / "a.html").read_bytes()
    second = build_report(warehouse, tmp_path / "b.html").read_bytes()
    assert first == second


def test_missing_warehouse_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.duckdb"
    for call in (lambda: summary(missing), lambda: build_report(missing, tmp_path / "r.html")):
        with pytest.raises(FundingInputError, match=r"nowhere\.duckdb.*funding-assets backfill"):
            call()
    assert not (tmp_path / "r.html").exists()
    assert not missing.exists()  # a read-only open must not create an empty warehouse


def test_missing_table_names_the_table_and_writes_nothing(warehouse: Path, tmp_path: Path) -> None:
    with duckdb.connect(str(warehouse)) as con:
        con.execute("DROP TABLE funding.spread_signals")
    out = tmp_path / "report.html"
    with pytest.raises(FundingInputError, match=r"funding\.spread_signals.*funding-assets demo"):
        build_report(warehouse, out)
    assert not out.exists()
    assert summary(warehouse).height == 5  # the summary does not need spreads


def test_not_a_duckdb_file_is_an_input_error(tmp_path: Path) -> None:
    bogus = tmp_path / "warehouse.duckdb"
    bogus.write_text("not a database")
    with pytest.raises(FundingInputError, match="warehouse.duckdb"):
        summary(bogus)


def test_labels_follow_the_stored_annualisation(warehouse: Path, tmp_path: Path) -> None:
    with duckdb.connect(str(warehouse)) as con:
        con.execute("UPDATE funding.curve_snapshots SET annualisation = 'apy' WHERE venue = 'okx'")
    assert "b0 % APR/APY" in format_summary(summary(warehouse)).splitlines()[0]
    page = build_report(warehouse, tmp_path / "report.html").read_text(encoding="utf-8")
    assert count_titles(page, "Funding strip: okx BTC (% APY") == 1
    assert count_titles(page, "Funding strip: binance BTC (% APR") == 1
    assert count_titles(page, "Spread: BTC binance minus okx (b0, % APR/APY)") == 1


def test_empty_warehouse_still_reports(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(DDL)
    df = summary(path)
    assert df.height == 0
    assert len(format_summary(df).splitlines()) == 2  # header and rule only
    page = build_report(path, tmp_path / "report.html").read_text(encoding="utf-8")
    assert "no prints" in page and titles(page) == []
