"""The report's "Fixed against floating" sections (funding_assets.report_fixed), from small frames.

Per coin: the implied fixed APR of each future over time beside the underlying's realised
strip (b0 and strip mean), the fixed curve by maturity, the carry, what receiving fixed
earned, and the fixed-rate spreads with their bands, Binance - Bybit first; all in percent
APR. Empty frames give a section that says there is no fixed-rate data.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from fixedfloat_frames import NO_ROLLS, H, hourly, prints, settlement

from funding_assets import strip
from funding_assets.fixedfloat import FIXED_SPREAD_SCHEMA, FIXED_VS_FLOATING_SCHEMA, fixed_spreads, fixed_vs_floating
from funding_assets.report_fixed import fixed_section, fixed_sections

T0 = datetime(2024, 3, 1)
DAY = timedelta(days=1)
MATURED = {"term_start": T0, "maturity": T0 + 2 * DAY}
LIVE = {"term_start": T0, "maturity": T0 + 30 * DAY}
MARKETS = [  # market id, venue, contract, term, implied APR level
    ("bin-mar", "binance", "usdt", MATURED, 0.10),
    ("byb-mar", "bybit", "usdt", MATURED, 0.09),
    ("bin-apr", "binance", "usdt", LIVE, 0.12),
    ("byb-apr", "bybit", "usdt", LIVE, 0.11),
    ("inv-apr", "binance", "inverse", LIVE, 0.08),
]
N_HOURS = 72


@pytest.fixture(scope="module")
def frames() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(11)
    bars = []
    for market_id, venue, contract, term, level in MARKETS:
        n = min(N_HOURS, int((term["maturity"] - T0) / H))
        closes = list(level + rng.normal(0, 0.01, n))
        bars += hourly(T0, closes, market_id=market_id, venue=venue, contract=contract, **term)
    settled = prints(
        [
            settlement(T0 + k * 8 * H, 0.0001 + 0.00001 * (k % 3), venue=venue, contract=contract)
            for venue, contract in [("binance", "usdt"), ("bybit", "usdt"), ("binance", "inverse")]
            for k in range(1, N_HOURS // 8 + 1)
        ]
    )
    roll = strip.roll_snapshots(settled)
    candles = pl.DataFrame(bars)
    fvf = fixed_vs_floating(candles, settled, roll, known_until=T0 + 3 * DAY)
    return fvf, fixed_spreads(candles), roll


def test_one_section_per_coin_and_a_note_for_a_coin_without_fixed_rates(frames):
    sections = fixed_sections(*frames, ["BTC", "ETH"])
    assert [s.heading for s in sections] == ["Fixed against floating: BTC", "Fixed against floating: ETH"]
    btc, eth = sections
    assert [div for div, _ in btc.figures][:4] == [
        "fixed-BTC-implied",
        "fixed-BTC-curve",
        "fixed-BTC-carry",
        "fixed-BTC-earned",
    ]
    assert eth.figures == [] and "No fixed-rate data for ETH" in eth.extra_html
    assert "annualised percent APR" in btc.note


def figure(frames, div: str):
    return dict(fixed_sections(*frames, ["BTC"])[0].figures)[div]


def test_the_implied_rates_are_drawn_in_percent_beside_the_realised_strip(frames):
    fvf, _, roll = frames
    fig = figure(frames, "fixed-BTC-implied")
    names = [t.name for t in fig.data]
    assert "rho binance usdt 2024-03-31" in names and "rho bybit usdt 2024-03-03" in names
    for name in (
        "binance usdt realised b0",
        "binance usdt strip mean",
        "bybit usdt strip mean",
        "binance inverse strip mean",
    ):
        assert name in names, name
    trace = fig.data[names.index("rho binance usdt 2024-03-31")]
    implied = fvf.filter(pl.col("kind") == "candle", pl.col("market_id") == "bin-apr").sort("as_of")["implied_apr"]
    assert np.allclose(np.asarray(trace.y, dtype=float), implied.to_numpy() * 100, rtol=0, atol=1e-12)
    mean = fig.data[names.index("binance usdt strip mean")]
    rolls = roll.filter(pl.col("venue") == "binance", pl.col("contract") == "usdt").sort("funding_time")
    expected = rolls.select(pl.mean_horizontal(strip.BUCKETS) * 100).to_series().to_numpy()
    assert np.allclose(np.asarray(mean.y, dtype=float), expected[: len(mean.y)], atol=1e-12)


def test_the_curve_shows_only_futures_still_to_mature(frames):
    fig = figure(frames, "fixed-BTC-curve")
    maturities = {x for t in fig.data if "strip mean" not in t.name for x in t.x}
    assert maturities == {"2024-03-31 00:00"}  # the March 3rd futures matured before the last candle


def test_the_carry_is_implied_minus_realised_to_date_in_percent(frames):
    fvf = frames[0]
    fig = figure(frames, "fixed-BTC-carry")
    first = fig.data[0]
    rows = fvf.filter(pl.col("kind") == "candle", pl.col("market_id") == "bin-mar").sort("as_of")
    assert first.name == "rho binance usdt 2024-03-03"
    assert np.allclose(np.asarray(first.y, dtype=float), rows["carry_apr"].to_numpy() * 100, equal_nan=True, atol=1e-12)


def test_what_receiving_fixed_earned_is_drawn_for_matured_futures_only(frames):
    fig = figure(frames, "fixed-BTC-earned")
    assert sorted(t.name for t in fig.data) == ["rho binance usdt 2024-03-03", "rho bybit usdt 2024-03-03"]


def test_fixed_spreads_binance_minus_bybit_first_with_their_bands(frames):
    figures = fixed_sections(*frames, ["BTC"])[0].figures
    spreads = [(div, fig) for div, fig in figures if div.startswith("fixed-spread")]
    titles = [fig.layout.title.text for _, fig in spreads]
    # binance inverse sorts before binance usdt, yet Binance - Bybit comes first, latest maturity first
    assert "binance usdt minus bybit usdt, maturity 2024-03-31" in titles[0]
    assert "binance usdt minus bybit usdt, maturity 2024-03-03" in titles[1]
    assert len(spreads) == 4  # + inverse - usdt and inverse - bybit of the live maturity
    names = [t.name for t in spreads[0][1].data]
    assert names[:4] == ["spread", "mean", "upper band", "lower band"]
    assert np.isfinite(np.asarray(spreads[0][1].data[2].y, dtype=float)).sum() > 10  # bands after 48 candles


def test_the_html_fits_a_page_that_embeds_plotly_once(frames):
    inline = fixed_section(*frames, ["BTC"])
    assert "* plotly.js v" not in inline
    assert 'id="fixed-BTC-implied"' in inline and "<h2>Fixed against floating: BTC</h2>" in inline
    standalone = fixed_section(*frames, ["BTC"], plotlyjs_embedded=False)
    assert standalone.count("* plotly.js v") == 1
    assert fixed_section(*frames, ["BTC"]) == inline  # stable ids: the same bytes every build


def test_no_fixed_rate_data_gives_one_section_that_says_so():
    fvf = pl.DataFrame(schema=FIXED_VS_FLOATING_SCHEMA)
    spreads = pl.DataFrame(schema=FIXED_SPREAD_SCHEMA)
    for roll in (NO_ROLLS, pl.DataFrame()):
        sections = fixed_sections(fvf, spreads, roll, ["BTC", "ETH"])
        assert [(s.heading, s.figures) for s in sections] == [("Fixed against floating", [])]
        assert "No fixed-rate data" in sections[0].extra_html
    page = fixed_section(fvf, spreads, NO_ROLLS, [])
    assert "No fixed-rate data" in page and "<script" not in page
