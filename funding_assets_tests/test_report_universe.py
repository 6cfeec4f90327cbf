"""The HTML report at universe scale: hundreds of coins, several contracts, holes, simulated data.

Warehouses are written by hand in temp dirs (schema ``funding`` as the pipeline writes it, with
or without the ``contract`` columns of older warehouses); figures are read back from the page's
``Plotly.newPlot`` calls, so the tests check what a browser draws.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from funding_assets.errors import FundingInputError
from funding_assets.report import (
    BUCKET_AGES,
    GAP_FACTOR,
    SIM_BANNER,
    break_gaps,
    build_report,
    colour_range,
    default_coins,
    summary,
)

T0 = datetime(2025, 3, 1)
EIGHT_H = timedelta(hours=8)
VENUES = ("binance", "bybit", "deribit", "hyperliquid", "okx")

DDL = """
CREATE SCHEMA funding;
CREATE TABLE funding.raw_prints (
    venue VARCHAR, symbol VARCHAR, {c} venue_symbol VARCHAR, ts TIMESTAMP, funding_time TIMESTAMP,
    rate DOUBLE, interval_hours DOUBLE, kind VARCHAR, source VARCHAR);
CREATE TABLE funding.curve_snapshots (
    venue VARCHAR, symbol VARCHAR, {c} kind VARCHAR, ts TIMESTAMP, funding_time TIMESTAMP,
    interval_hours DOUBLE, annualisation VARCHAR,
    b0 DOUBLE, b1 DOUBLE, b2 DOUBLE, b3 DOUBLE, b4 DOUBLE, b5 DOUBLE, b6 DOUBLE, b7 DOUBLE,
    n_filled INTEGER);
CREATE TABLE funding.curve_features (
    venue VARCHAR, symbol VARCHAR, {c} kind VARCHAR, ts TIMESTAMP, funding_time TIMESTAMP,
    level DOUBLE, slope DOUBLE, curvature DOUBLE, shock_age INTEGER, level_z DOUBLE, slope_z DOUBLE);
CREATE TABLE funding.pca_factors (
    venue VARCHAR, symbol VARCHAR, {c} kind VARCHAR, ts TIMESTAMP, funding_time TIMESTAMP,
    fit_id VARCHAR, pc1 DOUBLE, pc2 DOUBLE);
CREATE TABLE funding.pca_fits (
    fit_id VARCHAR, venue VARCHAR, symbol VARCHAR, {c} fitted_at TIMESTAMP, window_start TIMESTAMP,
    window_end TIMESTAMP, n_obs INTEGER, loadings DOUBLE[][], explained_variance DOUBLE[], mean DOUBLE[]);
CREATE TABLE funding.spread_signals (
    symbol VARCHAR, venue_a VARCHAR, {ca} venue_b VARCHAR, {cb} funding_time TIMESTAMP,
    b0_a DOUBLE, b0_b DOUBLE, spread DOUBLE, mean DOUBLE, std DOUBLE, z DOUBLE,
    upper DOUBLE, lower DOUBLE, signal INTEGER, dispersion DOUBLE, n_venues INTEGER);
"""


# --------------------------------------------------------------------------- warehouse builder


@dataclass(frozen=True)
class Series:
    """One (venue, coin, contract) with roll snapshots at ``times``; its last b0 is ``b0``."""

    venue: str
    coin: str
    contract: str = "usdt"
    b0: float = 0.1095
    times: tuple[datetime, ...] = field(default_factory=lambda: tuple(T0 + k * EIGHT_H for k in range(12)))

    def b0_at(self, k: int) -> float:
        """Annualised decimal b0 of roll k: rises 0.0001 per roll to ``b0`` at the last one."""
        return self.b0 - 0.0001 * (len(self.times) - 1 - k)

    def strip_at(self, k: int) -> list[float]:
        return [self.b0_at(k) - 0.01 * i for i in range(8)]


def frames(series: list[Series], sources: tuple[str, ...]) -> dict[str, pl.DataFrame]:
    """Rows of every report table for ``series`` (raw prints cycle through ``sources``)."""
    prints, snaps, feats, factors, fits = [], [], [], [], []
    source = itertools.cycle(sources)
    for s in series:
        key = {"venue": s.venue, "symbol": s.coin, "contract": s.contract}
        for k, t in enumerate(s.times):
            prints.append({**key, "ts": t, "funding_time": t, "rate": s.b0_at(k) / 1095, "source": next(source)})
            strip = dict(zip([f"b{i}" for i in range(8)], s.strip_at(k)))
            row = {**key, "kind": "roll", "ts": t, "funding_time": t}
            snaps.append({**row, "annualisation": "apr", "interval_hours": 8.0, "n_filled": 0, **strip})
            feats.append({**row, "level": strip["b0"], "slope": -0.07, "level_z": 0.5, "slope_z": -1.0})
            factors.append({**row, "fit_id": "f", "pc1": float(k), "pc2": 0.0})
        for j, t in enumerate((s.times[len(s.times) // 2], s.times[-1])):
            fits.append(
                {
                    **key,
                    "fit_id": f"{s.venue}-{s.coin}-{s.contract}-{j}",
                    "fitted_at": t,
                    "loadings": [[0.3535] * 8, [0.5, 0.4, 0.2, 0.0, -0.1, -0.2, -0.4, -0.5]],
                    "explained_variance": [0.8, 0.15],
                }
            )
    snapshots = pl.DataFrame(snaps)
    return {
        "raw_prints": pl.DataFrame(prints).with_columns(kind=pl.lit("realised"), interval_hours=8.0),
        "curve_snapshots": snapshots,
        "curve_features": pl.DataFrame(feats),
        "pca_factors": pl.DataFrame(factors),
        "pca_fits": pl.DataFrame(fits),
        "spread_signals": spreads(snapshots),
    }


def spreads(snapshots: pl.DataFrame) -> pl.DataFrame:
    """b0 spreads of every venue pair of a coin (same contract) at their common windows."""
    b0 = snapshots.select("venue", "symbol", "contract", "funding_time", "b0")
    pairs = b0.join(b0, on=["symbol", "contract", "funding_time"], suffix="_b").filter(
        pl.col("venue") < pl.col("venue_b")
    )
    return pairs.select(
        "symbol",
        "funding_time",
        venue_a="venue",
        contract_a="contract",
        contract_b="contract",
        spread=pl.col("b0") - pl.col("b0_b"),
        mean=pl.lit(0.0),
        upper=pl.lit(0.02),
        lower=pl.lit(-0.02),
        signal=pl.lit(0, dtype=pl.Int32),
    ).with_columns(venue_b=pairs["venue_b"])


def write_warehouse(
    path: Path, series: list[Series], *, contract_column: bool = True, sources: tuple[str, ...] = ("sim",)
) -> Path:
    """A warehouse holding ``series``; without ``contract_column`` it is the pre-contract layout."""
    c, ca, cb = ("contract VARCHAR,", "contract_a VARCHAR,", "contract_b VARCHAR,") if contract_column else ("",) * 3
    with duckdb.connect(str(path)) as con:
        con.execute(DDL.format(c=c, ca=ca, cb=cb))
        for table, frame in frames(series, sources).items():
            if not contract_column:
                frame = frame.drop(col for col in frame.columns if col.startswith("contract"))
            con.register("rows", frame)
            con.execute(f"INSERT INTO funding.{table} BY NAME SELECT * FROM rows")
            con.unregister("rows")
    return path


def universe(n_coins: int, venues: tuple[str, ...] = VENUES, **kwargs) -> list[Series]:
    """BTC, ETH, then C002.. on every venue, b0 from 1 % to 30 % by coin (deterministic)."""
    coins = ["BTC", "ETH", *(f"C{i:03d}" for i in range(2, n_coins))]
    return [
        Series(v, coin, b0=0.01 + 0.29 * ((i * 37) % n_coins) / n_coins + 0.001 * j, **kwargs)
        for i, coin in enumerate(coins)
        for j, v in enumerate(venues)
    ]


# --------------------------------------------------------------------------- page readers


def figure(page: str, div_id: str) -> tuple[list[dict], dict]:
    """(traces, layout) of the plotly figure drawn into ``div_id``."""
    match = re.search(r'Plotly\.newPlot\(\s*"' + re.escape(div_id) + r'",\s*', page)
    assert match, f"no figure {div_id!r}"
    decoder = json.JSONDecoder()
    traces, end = decoder.raw_decode(page, match.end())
    layout, _ = decoder.raw_decode(page, page.index("{", end))
    return traces, layout


def values(data: object) -> np.ndarray:
    """A trace array as floats, NaN for null/NaN (plotly encodes numpy arrays as base64)."""
    if isinstance(data, dict):
        flat = np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"])).astype(float)
        shape = data.get("shape")
        return flat.reshape([int(n) for n in str(shape).split(",")]) if shape else flat
    return np.array([np.nan if v is None else v for v in data], dtype=float)


def title(layout: dict) -> str:
    return layout["title"]["text"]


def section_count(page: str) -> int:
    return page.count('<section class="coin"')


def figure_count(page: str) -> int:
    return page.count("Plotly.newPlot(")


def rank_tables(page: str) -> list[list[list[str]]]:
    """Rows (cell texts) of the richest and the cheapest tables."""
    tables = re.findall(r'<table class="ranks">.*?<tbody>(.*?)</tbody>', page, flags=re.S)
    return [[re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", t)] for t in tables]


def build(tmp_path: Path, series: list[Series], **kwargs) -> str:
    coins = kwargs.pop("coins", None)
    warehouse = write_warehouse(tmp_path / "warehouse.duckdb", series, **kwargs)
    return build_report(warehouse, tmp_path / "report.html", coins=coins).read_text(encoding="utf-8")


# --------------------------------------------------------------------------- 1. cross-section


def test_colour_range_is_robust_and_symmetric_around_zero() -> None:
    normal = np.linspace(-5, 30, 99)
    low, high, symmetric = colour_range(np.append(normal, [400.0, np.nan]))
    assert symmetric and low == -high and 29 <= high <= 31  # the 400 % outlier does not set it
    assert colour_range(np.linspace(5, 30, 100)) == (5, 30, False)  # one-signed: not forced to 0
    assert colour_range(np.full(10, 10.95)) == (10, 11, False)  # flat data still has a range
    assert colour_range(np.array([np.nan])) == (-1.0, 1.0, True)


def test_cross_section_heatmap_clips_an_outlier_and_says_so(tmp_path: Path) -> None:
    series = universe(60, venues=VENUES[:3])
    series[0] = Series("binance", "BTC", b0=4.0)  # +400 % APR next to 1..30 %
    series += [Series("okx", f"C{i:03d}", b0=-0.05) for i in range(10, 20)]  # negatives: the scale spans 0
    page = build(tmp_path, series)
    traces, layout = figure(page, "cross-section")
    heatmap = traces[0]
    clip = re.search(r"colour clipped to ±(\d+) %", title(layout))
    assert clip, title(layout)
    assert heatmap["zmax"] == int(clip.group(1)) == -heatmap["zmin"] and heatmap["zmax"] <= 35
    assert "1 cell beyond" in title(layout)
    assert heatmap["colorbar"]["title"]["text"].endswith(f"(clipped to ±{clip.group(1)} %)")
    assert heatmap["x"] == ["binance", "bybit", "deribit", "okx"]
    assert len(heatmap["y"]) == 60  # the universe, one row per coin
    z = values(heatmap["z"])
    assert z.shape == (60, 4)
    # Richest first: the row of mean b0 sorted descending, BTC (the outlier) on top.
    assert heatmap["y"][0] == "BTC"
    means = np.nanmean(z, axis=1)
    assert np.all(np.diff(means) <= 1e-9)
    assert z[0, 0] == pytest.approx(400.0)  # the true value stays in the data (hover)


def test_series_label_includes_contract_only_where_a_venue_lists_several(tmp_path: Path) -> None:
    series = [
        Series("binance", "BTC", "usdt", 0.10),
        Series("binance", "BTC", "inverse", 0.08),
        Series("okx", "BTC", "usdt", 0.11),
        Series("binance", "ETH", "usdt", 0.12),
        Series("hyperliquid", "ETH", "usdc", 0.13),  # one contract per venue: one row
    ]
    traces, _ = figure(build(tmp_path, series), "cross-section")
    assert sorted(traces[0]["y"]) == ["BTC inverse", "BTC usdt", "ETH"]


# --------------------------------------------------------------------------- 2. richest / cheapest


def test_richest_and_cheapest_tables_rank_by_mean_b0_with_venue_values(tmp_path: Path) -> None:
    series = universe(40, venues=VENUES[:2])
    page = build(tmp_path, series)
    richest, cheapest = rank_tables(page)
    assert len(richest) == len(cheapest) == 10
    mean = {}
    for coin in {s.coin for s in series}:
        b0s = [s.b0 for s in series if s.coin == coin]
        mean[coin] = sum(b0s) / len(b0s)
    ranked = sorted(mean, key=lambda c: (-mean[c], c))
    assert [r[1] for r in richest] == ranked[:10]
    assert [r[1] for r in cheapest] == ranked[::-1][:10]  # the cheapest first
    top = richest[0]
    assert top[0] == "1" and float(top[2]) == pytest.approx(mean[ranked[0]] * 100, abs=0.006)
    by_venue = {s.venue: s.b0 for s in series if s.coin == ranked[0]}
    assert [float(v) for v in top[3:]] == pytest.approx([by_venue[v] * 100 for v in VENUES[:2]], abs=0.006)
    assert "<th>mean over venues</th><th>binance</th><th>bybit</th>" in page


def test_small_universe_tables_do_not_repeat_a_coin(tmp_path: Path) -> None:
    page = build(tmp_path, universe(5, venues=VENUES[:2]))
    (richest,) = rank_tables(page)  # 5 coins are all "richest": no cheapest table repeats them
    assert len(richest) == 5 and "Cheapest" not in page


# --------------------------------------------------------------------------- 3. dispersion


def test_dispersion_is_the_cross_venue_std_of_b0(tmp_path: Path) -> None:
    series = [
        Series(v, coin, b0=b0)
        for coin, b0s in (("BTC", (0.10, 0.12)), ("ETH", (0.10, 0.16)))
        for v, b0 in zip(VENUES, b0s)
    ]
    traces, layout = figure(build(tmp_path, series), "dispersion")
    by_name = {t["name"]: values(t["y"]) for t in traces}
    btc, eth = np.std([10, 12], ddof=1), np.std([10, 16], ddof=1)  # percent APR
    assert by_name["BTC"] == pytest.approx(np.full(12, btc))
    assert by_name["ETH"] == pytest.approx(np.full(12, eth))
    assert by_name["median over coins"] == pytest.approx(np.full(12, (btc + eth) / 2))
    assert "std across venues" in title(layout)


# --------------------------------------------------------------------------- 4. term structure


def test_term_structure_draws_the_latest_strip_per_venue(tmp_path: Path) -> None:
    series = universe(6, venues=VENUES[:3])
    traces, layout = figure(build(tmp_path, series), "term-structure")
    assert len(traces) == 4 * 3  # 4 short-listed coins x 3 venues
    btc_deribit = next(t for t in traces if t["hovertemplate"].startswith("BTC deribit usdt"))
    assert (
        btc_deribit["x"] == list(BUCKET_AGES)
        and btc_deribit["x"][0] == "b0 now"
        and btc_deribit["x"][-1] == "b7 56 h ago"
    )
    expected = next(s for s in series if (s.venue, s.coin) == ("deribit", "BTC")).strip_at(11)
    assert values(btc_deribit["y"]) == pytest.approx(np.array(expected) * 100)
    assert "Term structure now" in title(layout)
    annotations = [a["text"] for a in layout["annotations"]]
    assert annotations[0] == "BTC (as of 2025-03-04 16:00 UTC)"


# --------------------------------------------------------------------------- 5. short list


def test_default_short_list_is_majors_then_most_venues() -> None:
    rows = pl.DataFrame(
        {
            "venue": ["a", "b", "c", "a", "a", "b", "c", "a", "b", "a", "b"],
            "symbol": ["ZZZ", "ZZZ", "ZZZ", "ETH", "DOGE", "DOGE", "DOGE", "AAA", "AAA", "BBB", "BBB"],
        }
    )
    assert default_coins(rows) == ["ETH", "DOGE", "ZZZ", "AAA"]  # no BTC here; ties by name
    assert default_coins(rows, size=1) == ["ETH"]


def test_detail_sections_only_for_the_short_list(tmp_path: Path) -> None:
    page = build(tmp_path, universe(12, venues=VENUES[:3]))
    assert section_count(page) == 4
    assert re.findall(r'<section class="coin" id="coin-(\w+)">', page) == ["BTC", "ETH", "C002", "C003"]
    assert page.count("Funding strip: ") == 4 * 3


def test_chosen_coins_get_the_detail_sections(tmp_path: Path) -> None:
    warehouse = write_warehouse(tmp_path / "w.duckdb", universe(12, venues=VENUES[:2]))
    page = build_report(warehouse, tmp_path / "r.html", coins=["C007", "C007"]).read_text(encoding="utf-8")
    assert section_count(page) == 1 and 'id="coin-C007"' in page
    with pytest.raises(FundingInputError, match=r"no rows for coin\(s\) NOPE"):
        build_report(warehouse, tmp_path / "r2.html", coins=["NOPE"])
    assert not (tmp_path / "r2.html").exists()


def test_universe_scale_keeps_figures_to_the_short_list(tmp_path: Path) -> None:
    thirty_days = tuple(T0 + k * EIGHT_H for k in range(90))
    page = build(tmp_path, universe(300, times=thirty_days))
    # 3 universe figures, then per short-listed coin 5 strips, 5 features, 5 PCA, 10 spreads.
    assert figure_count(page) == 3 + 4 * (5 + 5 + 5 + 10)
    assert section_count(page) == 4
    traces, _ = figure(page, "cross-section")
    assert len(traces[0]["y"]) == 300
    assert len(page.encode()) < 12_000_000


# --------------------------------------------------------------------------- 6. gaps


def test_break_gaps_puts_nulls_inside_a_hole_only() -> None:
    times = [T0 + k * EIGHT_H for k in (0, 1, 2, 3, 12, 13)]
    frame = pl.DataFrame({"funding_time": times, "b0": [0.1, 0.1, 0.1, 0.1, 0.2, 0.2]})
    out = break_gaps(frame)
    assert out["funding_time"].to_list() == [*times[:4], T0 + 4 * EIGHT_H, T0 + 11 * EIGHT_H, *times[4:]]
    assert out["b0"].to_list() == [0.1] * 4 + [None, None] + [0.2] * 2
    regular = pl.DataFrame({"funding_time": times[:4], "b0": [0.1] * 4})
    assert break_gaps(regular).equals(regular)


def test_a_hole_of_days_is_drawn_as_a_gap(tmp_path: Path) -> None:
    # BTC on binance: 12 windows, a 3-day hole, 12 more (two years would look the same).
    times = tuple(T0 + k * EIGHT_H for k in [*range(12), *range(21, 33)])
    series = [Series("binance", "BTC", times=times), Series("okx", "BTC", times=times, b0=0.12)]
    page = build(tmp_path, series)
    limit = GAP_FACTOR * EIGHT_H
    for div_id, trace_index in (("features-BTC-binance-usdt", 0), ("spread-BTC-binance-usdt-minus-okx-usdt", 0)):
        traces, _ = figure(page, div_id)
        trace = traces[trace_index]
        assert trace["connectgaps"] is False
        x = [datetime.strptime(t, "%Y-%m-%d %H:%M") for t in trace["x"]]
        y = values(trace["y"])
        assert np.isnan(y).sum() == 2, div_id  # the hole, and nothing else
        drawn = [t for t, v in zip(x, y) if not np.isnan(v)]
        points = list(zip(x, y))
        for (t0, y0), (t1, y1) in itertools.pairwise(points):
            if not (np.isnan(y0) or np.isnan(y1)):
                assert t1 - t0 <= limit, f"{div_id}: a line across {t0} .. {t1}"
        assert drawn[0] == T0 and drawn[-1] == T0 + 32 * EIGHT_H
    strip, _ = figure(page, "strip-BTC-binance-usdt")
    z = values(strip[0]["z"])
    assert np.isnan(z).all(axis=0).sum() == 2  # two empty columns inside the hole
    dispersion, _ = figure(page, "dispersion")
    assert np.isnan(values(dispersion[0]["y"])).sum() == 2


# --------------------------------------------------------------------------- 7. data source


def test_simulated_data_has_a_banner(tmp_path: Path) -> None:
    page = build(tmp_path, universe(3, venues=VENUES[:2]), sources=("sim", "reconstructed"))
    assert f'<p class="banner">{SIM_BANNER}</p>' in page
    source = re.search(r"<dt>Data source</dt><dd>(.*?)</dd>", page).group(1)
    assert sorted(source.split(", ")) == ["reconstructed (36 prints)", "sim (36 prints)"]


def test_market_data_has_no_banner(tmp_path: Path) -> None:
    page = build(tmp_path, universe(3, venues=VENUES[:2]), sources=("binance REST", "reconstructed"))
    assert 'class="banner"' not in page
    assert "binance REST (" in page


def test_partly_simulated_data_says_so(tmp_path: Path) -> None:
    page = build(tmp_path, universe(3, venues=VENUES[:2]), sources=("sim", "replay:my_files"))
    assert "Part of the data is simulated (source sim)" in page
    assert SIM_BANNER not in page


# --------------------------------------------------------------------------- 8. older warehouses


def test_warehouse_without_contract_columns_still_reports(tmp_path: Path) -> None:
    series = universe(8, venues=VENUES[:3])
    page = build(tmp_path, series, contract_column=False)
    assert section_count(page) == 4
    traces, _ = figure(page, "cross-section")
    assert traces[0]["y"][0] in {s.coin for s in series} and len(traces[0]["y"]) == 8
    assert "Funding strip: binance BTC (% APR" in page  # no contract in the names
    figure(page, "spread-BTC-binance-minus-bybit")
    rows = summary(tmp_path / "warehouse.duckdb")
    assert rows["contract"].null_count() == rows.height


def test_summary_keys_on_contract(tmp_path: Path) -> None:
    series = [Series("binance", "BTC", "usdt"), Series("binance", "BTC", "inverse", 0.08)]
    rows = summary(write_warehouse(tmp_path / "w.duckdb", series))
    assert rows.select("venue", "symbol", "contract").rows() == [
        ("binance", "BTC", "inverse"),
        ("binance", "BTC", "usdt"),
    ]
    assert rows["latest_b0"].to_list() == pytest.approx([0.08, 0.1095])
