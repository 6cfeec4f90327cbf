"""The report's "Fixed against floating" sections (DESIGN section 11), one per coin.

No Dagster import. Built from frames, not from the warehouse: :func:`fixed_sections` takes
``fixed_vs_floating`` rows (:data:`~funding_assets.fixedfloat.FIXED_VS_FLOATING_SCHEMA`),
fixed-rate spreads (:data:`~funding_assets.fixedfloat.FIXED_SPREAD_SCHEMA`) and roll
snapshots (:data:`~funding_assets.strip.SNAPSHOT_SCHEMA`), and returns sections in the form
:mod:`funding_assets.report` lays out (the page, the plotly.js embedding and the simulated
data banner are its business). Per coin:

- the implied fixed APR of every future (one line per provider, underlying and maturity)
  over time, beside the realised strip of each underlying (roll b0 and the mean of b0..b7);
- the fixed curve now: each future's latest implied APR by maturity, the underlying's
  latest strip mean as a level;
- the carry, implied minus the realised APR accrued since the term start;
- what receiving fixed earned (matured futures whose term the prints cover);
- the fixed-rate spreads with their mean and bands, Binance - Bybit first.

Units: every rate is an annualised decimal in the frames and shown as percent APR (an
``apy`` strip is shown as its APR, :func:`~funding_assets.fixedfloat.roll_apr`); times UTC.
Candle rows are drawn at their close (``as_of``), spreads at the candle open (``ts``).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import plotly.graph_objects as go
import polars as pl
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from .fixedfloat import CANDLE, OUTCOME, interval_ms, roll_apr
from .report import (
    MAX_POINTS,
    PERCENT,
    _div_id,
    _fmt_time,
    _label,
    _line,
    _pct,
    _Section,
    _sections_html,
    _signal_markers,
    _style,
    _thin,
    _times,
    break_gaps,
)

HEADING = "Fixed against floating"
#: The candle interval drawn when a coin has several (else the one with the most rows).
REPORT_INTERVAL = "1h"
#: Spread figures per coin at most (Binance - Bybit first, then the latest maturities).
MAX_SPREAD_FIGURES = 6
#: Pairs drawn first, in this order of (venue_a, venue_b).
FIRST_PAIRS = (("binance", "bybit"),)
PROVIDER_DASH = {"rho": "solid", "boros": "dash"}
NO_DATA = "No fixed-rate data"

NOTE = (
    "Implied fixed APR of each funding future (Rho, Boros) on a perpetual's funding, beside "
    "the realised floating APR of that perpetual: all annualised percent APR, times UTC. "
    "Candle values are drawn at the candle's close; the realised APR to date sums the "
    "settlements since the term start before that close (sum of rates x 8760 / hours "
    "covered). Carry = implied minus realised to date. Fixed earned = implied minus the "
    "realised APR from the candle to maturity, per unit notional before fees, for matured "
    "futures whose settlements cover the term. Holes in the data are left as gaps."
)


def _market_label(provider: str, venue: str, contract: str | None, maturity) -> str:
    return _label(provider, venue, contract, maturity.strftime("%Y-%m-%d"))


def _one_interval(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows of one candle interval: :data:`REPORT_INTERVAL` when present, else the interval
    with the most rows (ties: the shorter)."""
    if frame.is_empty():
        return frame
    counts = frame.group_by("interval").len()
    if REPORT_INTERVAL in counts["interval"].to_list():
        chosen = REPORT_INTERVAL
    else:
        rows = counts.rows()
        chosen = min(rows, key=lambda r: (-r[1], interval_ms(r[0]), r[0]))[0]
    return frame.filter(pl.col("interval") == chosen)


def _colours(keys: Sequence[tuple]) -> dict[tuple, str]:
    palette = qualitative.Plotly
    return {k: palette[i % len(palette)] for i, k in enumerate(keys)}


def _by_market(rows: pl.DataFrame) -> dict[tuple, pl.DataFrame]:
    """Candle rows per market, sorted by maturity then provider and underlying."""
    keys = ["maturity", "provider", "venue", "contract", "market_id"]
    return rows.sort([*keys, "as_of"]).partition_by(keys, as_dict=True, maintain_order=True)


def _implied_figure(coin: str, candles: pl.DataFrame, strips: pl.DataFrame) -> go.Figure:
    """Implied fixed APR per future over time, and each underlying's roll b0 and strip mean."""
    markets = _by_market(candles)
    colours = _colours(list(markets))
    traces = []
    for key, rows in markets.items():
        maturity, provider, venue, contract, _ = key
        line = break_gaps(_thin(rows, MAX_POINTS), "as_of")
        traces.append(
            _line(
                _times(line["as_of"]),
                _pct(line["implied_apr"]),
                _market_label(provider, venue, contract, maturity),
                line={"color": colours[key], "dash": PROVIDER_DASH.get(provider, "dashdot")},
                hovertemplate="%{x} UTC<br>implied %{y:.2f} % APR<extra>%{fullData.name}</extra>",
            )
        )
    for (venue, contract), rows in strips.partition_by(
        ["venue", "contract"], as_dict=True, maintain_order=True
    ).items():
        line = break_gaps(_thin(rows, MAX_POINTS))
        name = _label(venue, contract)
        x = _times(line["funding_time"])
        traces.append(_line(x, _pct(line["b0_apr"]), f"{name} realised b0", line={"color": "grey", "width": 1}))
        traces.append(_line(x, _pct(line["mean_apr"]), f"{name} strip mean", line={"color": "black", "width": 2}))
    fig = go.Figure(traces)
    fig.update_yaxes(title_text="% APR")
    fig.update_xaxes(title_text="time (UTC)")
    return _style(fig, f"{coin}: implied fixed APR by future, and the realised strip (% APR)", 460)


def _curve_figure(coin: str, candles: pl.DataFrame) -> go.Figure:
    """Latest implied APR of each future by maturity, per provider and underlying, with the
    underlying's latest strip mean as a level."""
    latest = candles.sort("as_of").group_by(["provider", "market_id"], maintain_order=True).last()
    as_of = latest["as_of"].max()
    # a future that stopped quoting long before the newest candle is not on today's curve
    latest = latest.filter(pl.col("maturity") > as_of).sort("provider", "venue", "contract", "maturity")
    fig = go.Figure()
    span = [_fmt_time(latest["maturity"].min()), _fmt_time(latest["maturity"].max())] if latest.height else []
    for (provider, venue, contract), rows in latest.partition_by(
        ["provider", "venue", "contract"], as_dict=True, maintain_order=True
    ).items():
        name = _label(provider, venue, contract)
        fig.add_trace(
            go.Scatter(
                x=_times(rows["maturity"]),
                y=_pct(rows["implied_apr"]),
                name=name,
                mode="lines+markers",
                line={"dash": PROVIDER_DASH.get(provider, "dashdot")},
                hovertemplate=f"{name}<br>maturity %{{x}}<br>implied %{{y:.2f}} % APR<extra></extra>",
            )
        )
    for (venue, contract), rows in latest.partition_by(
        ["venue", "contract"], as_dict=True, maintain_order=True
    ).items():
        level = rows.sort("as_of")["strip_mean_apr"].drop_nulls()
        if level.len():
            fig.add_trace(
                go.Scatter(
                    x=span,
                    y=[level[-1] * PERCENT] * 2,
                    name=f"{_label(venue, contract)} strip mean now",
                    mode="lines",
                    line={"color": "black", "dash": "dot"},
                )
            )
    fig.update_yaxes(title_text="% APR")
    fig.update_xaxes(title_text="maturity (UTC)")
    return _style(fig, f"{coin}: fixed curve as of {_fmt_time(as_of)} UTC (implied % APR by maturity)", 400)


def _carry_figure(coin: str, candles: pl.DataFrame) -> go.Figure:
    """Carry (implied minus realised to date) per future, and the realised APR to date."""
    markets = _by_market(candles)
    colours = _colours(list(markets))
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    for key, rows in markets.items():
        maturity, provider, venue, contract, _ = key
        name = _market_label(provider, venue, contract, maturity)
        line = break_gaps(_thin(rows, MAX_POINTS), "as_of")
        x = _times(line["as_of"])
        style = {"color": colours[key], "dash": PROVIDER_DASH.get(provider, "dashdot")}
        hours = line["realised_hours"].cast(pl.Float64).to_numpy()
        fig.add_trace(
            _line(
                x,
                _pct(line["carry_apr"]),
                name,
                legendgroup=name,
                line=style,
                customdata=hours,
                hovertemplate="%{x} UTC<br>carry %{y:.2f} % APR<br>over %{customdata:.0f} h settled"
                "<extra>%{fullData.name}</extra>",
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            _line(
                x,
                _pct(line["realised_apr_to_date"]),
                name,
                legendgroup=name,
                showlegend=False,
                line=style,
                customdata=hours,
                hovertemplate="%{x} UTC<br>realised to date %{y:.2f} % APR<br>over %{customdata:.0f} h"
                "<extra>%{fullData.name}</extra>",
            ),
            row=2,
            col=1,
        )
    fig.update_yaxes(title_text="carry, % APR", row=1, col=1)
    fig.update_yaxes(title_text="realised since term start, % APR", row=2, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=2, col=1)
    return _style(fig, f"{coin}: carry = implied minus realised since term start (% APR)", 520)


def _outcome_figure(coin: str, outcomes: pl.DataFrame) -> go.Figure:
    """Fixed earned (implied minus realised to maturity) by entry time, per matured future."""
    markets = _by_market(outcomes)
    colours = _colours(list(markets))
    traces = []
    for key, rows in markets.items():
        maturity, provider, venue, contract, _ = key
        name = _market_label(provider, venue, contract, maturity)
        line = break_gaps(_thin(rows, MAX_POINTS), "as_of")
        traces.append(
            _line(
                _times(line["as_of"]),
                _pct(line["fixed_earned_apr"]),
                name,
                line={"color": colours[key], "dash": PROVIDER_DASH.get(provider, "dashdot")},
                customdata=_pct(line["realised_term_apr"]),
                hovertemplate="entered %{x} UTC<br>fixed earned %{y:.2f} % APR"
                "<br>term realised %{customdata:.2f} % APR<extra>%{fullData.name}</extra>",
            )
        )
    fig = go.Figure(traces)
    fig.add_hline(y=0, line={"color": "grey", "width": 1})
    fig.update_yaxes(title_text="fixed earned, % APR")
    fig.update_xaxes(title_text="entered at candle close (UTC)")
    return _style(fig, f"{coin}: what receiving fixed earned to maturity (% APR, before fees)", 400)


def _spread_pairs(spreads: pl.DataFrame) -> list[tuple[tuple, pl.DataFrame]]:
    """Spread rows per pair and maturity: Binance - Bybit first (contract against the same
    contract before mixed ones), then the other pairs; within each, the latest maturities
    first."""
    keys = [
        "provider",
        "maturity",
        "interval",
        "venue_a",
        "contract_a",
        "market_id_a",
        "venue_b",
        "contract_b",
        "market_id_b",
    ]
    groups = spreads.sort([*keys, "ts"]).partition_by(keys, as_dict=True, maintain_order=True)

    def rank(item: tuple[tuple, pl.DataFrame]) -> tuple:
        provider, maturity, _, venue_a, contract_a, _, venue_b, contract_b, _ = item[0]
        first = (venue_a, venue_b)
        order = FIRST_PAIRS.index(first) if first in FIRST_PAIRS else len(FIRST_PAIRS)
        like_for_like = contract_a == contract_b
        return (
            order,
            not like_for_like,
            -maturity.timestamp(),
            venue_a,
            contract_a or "",
            venue_b,
            contract_b or "",
            provider,
        )

    return sorted(groups.items(), key=rank)


def _spread_figure(coin: str, key: tuple, rows: pl.DataFrame) -> go.Figure:
    """Implied fixed APR spread (side a minus side b) with its mean, bands and signals."""
    provider, maturity, interval, venue_a, contract_a, _, venue_b, contract_b, _ = key
    line = break_gaps(_thin(rows, MAX_POINTS), "ts")
    x = _times(line["ts"])
    fig = go.Figure(
        [
            _line(x, _pct(line["spread"]), "spread"),
            _line(x, _pct(line["mean"]), "mean", line={"dash": "dash"}),
            _line(x, _pct(line["upper"]), "upper band", line={"dash": "dot"}),
            _line(x, _pct(line["lower"]), "lower band", line={"dash": "dot"}),
            # markers from all rows, not the thinned line, so no signal is dropped
            _signal_markers(rows.rename({"ts": "funding_time"}), 1, "triangle-up"),
            _signal_markers(rows.rename({"ts": "funding_time"}), -1, "triangle-down"),
        ]
    )
    fig.update_yaxes(title_text="implied APR spread, %")
    fig.update_xaxes(title_text=f"{interval} candle open (UTC)")
    names = f"{_label(venue_a, contract_a)} minus {_label(venue_b, contract_b)}"
    title = f"{coin} fixed-rate spread: {provider} {names}, maturity {maturity:%Y-%m-%d} (% APR)"
    return _style(fig, title, 380)


def _coin_section(coin: str, fvf: pl.DataFrame, spreads: pl.DataFrame, strips: pl.DataFrame) -> _Section:
    heading = f"{HEADING}: {coin}"
    rows = _one_interval(fvf.filter(pl.col("symbol") == coin))
    pairs = _spread_pairs(_one_interval(spreads.filter(pl.col("symbol") == coin)))
    if rows.is_empty() and not pairs:
        return _Section(heading, NOTE, [], f"<p><em>{NO_DATA} for {html.escape(coin)}.</em></p>")
    candles = rows.filter(pl.col("kind") == CANDLE)
    outcomes = rows.filter(pl.col("kind") == OUTCOME)
    underlyings = candles.select("venue", "contract").unique()
    coin_strips = strips.filter(pl.col("symbol") == coin).join(underlyings, on=["venue", "contract"])
    if candles.height:
        start, end = candles["as_of"].min(), candles["as_of"].max()
        coin_strips = coin_strips.filter(pl.col("funding_time").is_between(start, end))
    coin_strips = coin_strips.sort("venue", "contract", "funding_time")
    figures = []
    if candles.height:
        figures += [
            (_div_id("fixed", coin, "implied"), _implied_figure(coin, candles, coin_strips)),
            (_div_id("fixed", coin, "curve"), _curve_figure(coin, candles)),
            (_div_id("fixed", coin, "carry"), _carry_figure(coin, candles)),
        ]
    if outcomes.height:
        figures.append((_div_id("fixed", coin, "earned"), _outcome_figure(coin, outcomes)))
    for key, pair_rows in pairs[:MAX_SPREAD_FIGURES]:
        provider, maturity, interval, venue_a, contract_a, market_a, venue_b, contract_b, market_b = key
        div = _div_id("fixed-spread", coin, provider, f"{maturity:%Y%m%d}", interval, market_a, "minus", market_b)
        figures.append((div, _spread_figure(coin, key, pair_rows)))
    left_out = len(pairs) - MAX_SPREAD_FIGURES
    extra = (
        f"<p>{left_out} more fixed-rate spread pair{'s' * (left_out != 1)} (earlier maturities or other "
        "venues) not drawn.</p>"
        if left_out > 0
        else ""
    )
    return _Section(heading, NOTE, figures, extra)


def fixed_sections(
    fvf: pl.DataFrame, spreads: pl.DataFrame, roll: pl.DataFrame, coins: Sequence[str]
) -> list[_Section]:
    """The "Fixed against floating" sections of the report: one per coin of ``coins`` (its
    figures, or a line saying it has no fixed-rate data), or, when no coin has any, a
    single section saying so. ``fvf``: :func:`~funding_assets.fixedfloat.fixed_vs_floating`
    rows; ``spreads``: :func:`~funding_assets.fixedfloat.fixed_spreads` rows; ``roll``:
    roll snapshots of the underlyings (others are ignored)."""
    if fvf.is_empty() and spreads.is_empty():
        return [_Section(HEADING, NOTE, [], f"<p><em>{NO_DATA} in the warehouse.</em></p>")]
    strips = roll_apr(roll)
    sections = [_coin_section(coin, fvf, spreads, strips) for coin in dict.fromkeys(coins)]
    if not any(s.figures for s in sections):
        return [_Section(HEADING, NOTE, [], f"<p><em>{NO_DATA} in the warehouse.</em></p>")]
    return sections


def fixed_section(
    fvf: pl.DataFrame,
    spreads: pl.DataFrame,
    roll: pl.DataFrame,
    coins: Sequence[str],
    *,
    plotlyjs_embedded: bool = True,
) -> str:
    """:func:`fixed_sections` as HTML, for a page that has already embedded plotly.js
    (``plotlyjs_embedded``; else the first figure embeds it)."""
    out, _ = _sections_html(fixed_sections(fvf, spreads, roll, coins), "coin", plotlyjs_embedded)
    return out
