"""Read-only views of the warehouse: a terminal summary and a self-contained HTML report.

No Dagster import: the CLI and researchers call these directly on a warehouse file.

Units everywhere in this module:

- times are naive ``TIMESTAMP`` values meaning UTC, shown as ``YYYY-MM-DD HH:MM``;
- ``b0``..``b7``, ``level``, ``slope`` and spreads are stored as annualised decimal
  fractions (0.1095 = 10.95 %) and shown as annualised percent, labelled APR or APY
  from the ``annualisation`` column of ``funding.curve_snapshots``;
- z-scores are in standard deviations; PCA loadings are unitless weights; explained
  variance is shown as percent of the strip's variance.

Both entry points open the DuckDB file read-only with a short-lived connection and close
it before returning, so a Dagster run can take the write lock again straight away.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from .errors import FundingInputError

SCHEMA = "funding"
N_BUCKETS = 8
BUCKETS = tuple(f"b{i}" for i in range(N_BUCKETS))
BUCKET_LABELS = tuple(
    f"{b} (newest)" if i == 0 else f"{b} (oldest)" if i == N_BUCKETS - 1 else b for i, b in enumerate(BUCKETS)
)
PERCENT = 100.0

# Caps on what one trace draws: about one point per pixel of a wide chart. 90 days of hourly
# rows (2,160) thin to 720, which keeps a 5-venue x 2-coin report with 20 spreads under
# ~10 MB, about half of it the 4.8 MB plotly.js bundle.
MAX_POINTS = 1000
MAX_FITS = 150

SUMMARY_TABLES = ("raw_prints", "curve_snapshots", "pca_fits", "pca_factors")
REPORT_TABLES = (*SUMMARY_TABLES, "curve_features", "spread_signals")
RUN_FIRST = "run `funding-assets backfill` or `funding-assets demo` first"
TIME_FORMAT = "%Y-%m-%d %H:%M"
TEXT_COLUMNS = 2  # venue and symbol are left-aligned; every other column is a number or time


# --------------------------------------------------------------------------- warehouse


@contextmanager
def _read_only(warehouse: Path, tables: Iterable[str]) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to ``warehouse`` that has ``tables`` in schema ``funding``.

    Raises :class:`FundingInputError` naming the file, or the missing tables, before any
    query runs.
    """
    # DuckDB's own "database does not exist" error does not tell users how to make one.
    if not warehouse.is_file():
        raise FundingInputError(f"{warehouse}: warehouse file not found; {RUN_FIRST}")
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.IOException as exc:
        # Not a DuckDB file, or a writer holds the lock: name the file instead of a traceback.
        raise FundingInputError(f"{warehouse}: cannot open the warehouse read-only ({exc})") from None
    with con:
        _require_tables(con, warehouse, tables)
        yield con


def _require_tables(con: duckdb.DuckDBPyConnection, warehouse: Path, tables: Iterable[str]) -> None:
    present = {
        name
        for (name,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [SCHEMA]
        ).fetchall()
    }
    missing = [f"{SCHEMA}.{t}" for t in tables if t not in present]
    if missing:
        raise FundingInputError(f"{warehouse}: missing table(s) {', '.join(missing)}; {RUN_FIRST}")


def _query(con: duckdb.DuckDBPyConnection, sql: str) -> pl.DataFrame:
    # Relations are lazy and re-run on every read, so fetch while the connection is open.
    return con.sql(sql).pl()


SUMMARY_SQL = f"""
WITH keys AS (
    SELECT venue, symbol FROM {SCHEMA}.raw_prints
    UNION SELECT venue, symbol FROM {SCHEMA}.curve_snapshots
    UNION SELECT venue, symbol FROM {SCHEMA}.pca_fits
    UNION SELECT venue, symbol FROM {SCHEMA}.pca_factors
),
prints AS (
    SELECT venue, symbol, count(*) AS prints,
           min(funding_time) AS first_funding_time, max(funding_time) AS last_funding_time
    FROM {SCHEMA}.raw_prints GROUP BY venue, symbol
),
snapshots AS (
    SELECT venue, symbol,
           count(*) FILTER (WHERE kind = 'roll') AS roll_snapshots,
           count(*) FILTER (WHERE kind = 'intraday') AS intraday_snapshots,
           avg(n_filled) FILTER (WHERE kind = 'roll') AS mean_n_filled
    FROM {SCHEMA}.curve_snapshots GROUP BY venue, symbol
),
latest_roll AS (
    SELECT venue, symbol, annualisation, b0 AS latest_b0, b7 AS latest_b7
    FROM {SCHEMA}.curve_snapshots WHERE kind = 'roll'
    QUALIFY row_number() OVER (PARTITION BY venue, symbol ORDER BY funding_time DESC, ts DESC) = 1
),
fits AS (
    SELECT venue, symbol, count(*) AS pca_fits FROM {SCHEMA}.pca_fits GROUP BY venue, symbol
),
latest_factor AS (
    SELECT venue, symbol, pc1 AS latest_pc1
    FROM {SCHEMA}.pca_factors WHERE kind = 'roll'
    QUALIFY row_number() OVER (
        PARTITION BY venue, symbol ORDER BY funding_time DESC, ts DESC, fit_id DESC) = 1
)
SELECT k.venue, k.symbol,
       coalesce(p.prints, 0)::BIGINT AS prints,
       p.first_funding_time, p.last_funding_time,
       coalesce(s.roll_snapshots, 0)::BIGINT AS roll_snapshots,
       coalesce(s.intraday_snapshots, 0)::BIGINT AS intraday_snapshots,
       r.annualisation, r.latest_b0, r.latest_b7,
       s.mean_n_filled::DOUBLE AS mean_n_filled,
       coalesce(f.pca_fits, 0)::BIGINT AS pca_fits,
       l.latest_pc1
FROM keys k
LEFT JOIN prints p USING (venue, symbol)
LEFT JOIN snapshots s USING (venue, symbol)
LEFT JOIN latest_roll r USING (venue, symbol)
LEFT JOIN fits f USING (venue, symbol)
LEFT JOIN latest_factor l USING (venue, symbol)
ORDER BY k.venue, k.symbol
"""

STRIPS_SQL = f"""
SELECT venue, symbol, funding_time, annualisation, {", ".join(BUCKETS)}
FROM {SCHEMA}.curve_snapshots WHERE kind = 'roll'
ORDER BY venue, symbol, funding_time, ts
"""

FEATURES_SQL = f"""
SELECT venue, symbol, funding_time, level, slope, level_z, slope_z
FROM {SCHEMA}.curve_features WHERE kind = 'roll'
ORDER BY venue, symbol, funding_time, ts
"""

FITS_SQL = f"""
SELECT venue, symbol, fit_id, fitted_at, loadings, explained_variance
FROM {SCHEMA}.pca_fits
ORDER BY venue, symbol, fitted_at, fit_id
"""

SPREADS_SQL = f"""
SELECT symbol, venue_a, venue_b, funding_time, spread, mean, upper, lower, signal
FROM {SCHEMA}.spread_signals
ORDER BY symbol, venue_a, venue_b, funding_time
"""


def summary(warehouse: Path) -> pl.DataFrame:
    """One row per (venue, symbol) present in the warehouse, sorted by venue then symbol.

    Columns: ``prints`` (rows in ``raw_prints``), ``first_funding_time`` and
    ``last_funding_time`` of those prints (naive UTC), ``roll_snapshots`` and
    ``intraday_snapshots`` counts, ``annualisation`` (``apr``/``apy``), ``latest_b0`` and
    ``latest_b7`` of the latest roll snapshot (annualised decimal fractions, not percent),
    ``mean_n_filled`` over roll snapshots (filled buckets of 8), ``pca_fits`` count and
    ``latest_pc1`` (PC1 score of the latest roll snapshot, in the units of the fitted strip).
    Counts are 0 and values null where a table has no rows for the pair.
    """
    with _read_only(Path(warehouse), SUMMARY_TABLES) as con:
        return _query(con, SUMMARY_SQL)


# --------------------------------------------------------------------------- formatting


def _annualisation_label(values: Iterable[str | None]) -> str:
    """``APR``, ``APY``, ``APR/APY`` when mixed, or ``annualised`` when unknown."""
    labels = sorted({v.upper() for v in values if v})
    return "/".join(labels) or "annualised"


def _fmt_time(value: datetime | None) -> str:
    return "-" if value is None else value.strftime(TIME_FORMAT)


def _fmt_number(value: float | None, decimals: int, scale: float = 1.0) -> str:
    return "-" if value is None or np.isnan(value) else f"{value * scale:.{decimals}f}"


def _summary_cells(df: pl.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and display strings shared by the text and HTML tables (rates in percent)."""
    ann = _annualisation_label(df["annualisation"])
    header = [
        "venue",
        "symbol",
        "prints",
        "first funding (UTC)",
        "last funding (UTC)",
        "roll snaps",
        "intraday snaps",
        "ann",
        f"b0 % {ann}",
        f"b7 % {ann}",
        "mean n_filled",
        "PCA fits",
        "latest pc1",
    ]
    rows = [
        [
            r["venue"],
            r["symbol"],
            str(r["prints"]),
            _fmt_time(r["first_funding_time"]),
            _fmt_time(r["last_funding_time"]),
            str(r["roll_snapshots"]),
            str(r["intraday_snapshots"]),
            (r["annualisation"] or "-").upper(),
            _fmt_number(r["latest_b0"], 2, PERCENT),
            _fmt_number(r["latest_b7"], 2, PERCENT),
            _fmt_number(r["mean_n_filled"], 1),
            str(r["pca_fits"]),
            _fmt_number(r["latest_pc1"], 4),
        ]
        for r in df.iter_rows(named=True)
    ]
    return header, rows


def format_summary(df: pl.DataFrame) -> str:
    """Render :func:`summary` as a fixed-width text table for a terminal.

    Times are UTC; ``b0``/``b7`` are annualised percent with 2 decimals, the header naming
    APR or APY (e.g. ``b0 % APR``).
    """
    header, rows = _summary_cells(df)
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < TEXT_COLUMNS else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def _summary_html(df: pl.DataFrame) -> str:
    header, rows = _summary_cells(df)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="summary"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# --------------------------------------------------------------------------- figures


def _thin(frame: pl.DataFrame, max_rows: int) -> pl.DataFrame:
    """Every k-th row so at most ``max_rows`` remain, counted back from the newest row so
    the latest value is always drawn."""
    step = -(-frame.height // max_rows)
    return frame.reverse().gather_every(step).reverse() if step > 1 else frame


def _times(series: pl.Series) -> list[str]:
    # Minute strings are exact for snapped funding times and ~40 % smaller than ISO-us.
    return series.dt.strftime(TIME_FORMAT).to_list()


def _pct(series: pl.Series) -> np.ndarray:
    """Annualised decimal fractions -> percent, nulls as NaN (plotly draws a gap)."""
    return series.cast(pl.Float64).to_numpy() * PERCENT


def _style(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(
        title={"text": title},
        height=height,
        template="plotly_white",
        margin={"l": 70, "r": 30, "t": 70, "b": 50},
        legend={"orientation": "h", "y": -0.15},
    )
    return fig


def _strip_figure(venue: str, symbol: str, rows: pl.DataFrame) -> go.Figure:
    """Heatmap of roll snapshots: x = funding time (UTC), y = bucket, z = annualised %."""
    ann = _annualisation_label(rows["annualisation"])
    rows = _thin(rows, MAX_POINTS)
    z = np.vstack([_pct(rows[b]) for b in BUCKETS])
    fig = go.Figure(
        go.Heatmap(
            x=_times(rows["funding_time"]),
            y=list(BUCKET_LABELS),
            z=z,
            colorscale="RdBu_r",
            zmid=0,
            colorbar={"title": {"text": f"% {ann}"}},
            hovertemplate=f"%{{x}} UTC<br>%{{y}}: %{{z:.2f}} % {ann}<extra></extra>",
        )
    )
    # b0 on top: the strip reads newest-to-oldest downwards like a term structure.
    fig.update_yaxes(autorange="reversed", title_text="8h bucket")
    fig.update_xaxes(title_text="funding time (UTC)")
    return _style(fig, f"Funding strip: {venue} {symbol} (% {ann}, annualised)", 340)


def _features_figure(venue: str, symbol: str, rows: pl.DataFrame, ann: str) -> go.Figure:
    """Level and slope (annualised %) on top, their z-scores (std devs) below."""
    rows = _thin(rows, MAX_POINTS)
    x = _times(rows["funding_time"])
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    fig.add_trace(go.Scatter(x=x, y=_pct(rows["level"]), name=f"level, % {ann}"), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=_pct(rows["slope"]), name=f"slope, % {ann}"), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=rows["level_z"].to_numpy(), name="level z"), row=2, col=1)
    fig.add_trace(go.Scatter(x=x, y=rows["slope_z"].to_numpy(), name="slope z"), row=2, col=1)
    fig.update_yaxes(title_text=f"% {ann}", row=1, col=1)
    fig.update_yaxes(title_text="z (std devs)", row=2, col=1)
    fig.update_xaxes(title_text="funding time (UTC)", row=2, col=1)
    return _style(fig, f"Level and slope: {venue} {symbol} (% {ann}; z in std devs)", 500)


def _loadings(fits: pl.DataFrame, component: int) -> np.ndarray:
    """(fits x 8) loadings of one component; NaN where a fit kept fewer components."""
    return np.array(
        [
            per_fit[component] if per_fit is not None and len(per_fit) > component else [np.nan] * N_BUCKETS
            for per_fit in fits["loadings"].to_list()
        ],
        dtype=float,
    )


def _pca_figure(venue: str, symbol: str, fits: pl.DataFrame) -> go.Figure:
    """PC1 and PC2 loadings by fit (heatmaps, unitless) and explained variance (%)."""
    fits = _thin(fits, MAX_FITS)
    fitted = _times(fits["fitted_at"])
    fig = make_subplots(
        rows=1,
        cols=3,
        horizontal_spacing=0.12,
        subplot_titles=("PC1 loadings", "PC2 loadings", "explained variance"),
    )
    for col, component in ((1, 0), (2, 1)):
        fig.add_trace(
            go.Heatmap(
                x=list(BUCKET_LABELS),
                y=fitted,
                z=_loadings(fits, component),
                coloraxis="coloraxis",
                hovertemplate="fit %{y} UTC<br>%{x}: %{z:.3f}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.add_trace(
            go.Scatter(
                x=fitted,
                y=fits["explained_variance"].list.get(component, null_on_oob=True).to_numpy() * PERCENT,
                name=f"PC{component + 1} explained variance, %",
                mode="lines+markers",
            ),
            row=1,
            col=3,
        )
    # Loadings of a unit eigenvector lie in [-1, 1]; a fixed shared scale compares fits.
    fig.update_layout(
        coloraxis={
            "colorscale": "RdBu_r",
            "cmin": -1,
            "cmax": 1,
            "colorbar": {"title": {"text": "loading"}, "x": 0.635, "thickness": 12},
        },
    )
    fig.update_yaxes(title_text="fitted at (UTC)", row=1, col=1)
    fig.update_xaxes(title_text="8h bucket", row=1, col=1)
    fig.update_xaxes(title_text="8h bucket", row=1, col=2)
    fig.update_xaxes(title_text="fitted at (UTC)", row=1, col=3)
    fig.update_yaxes(title_text="% of strip variance", row=1, col=3)
    return _style(fig, f"PCA loadings: {venue} {symbol} ({fits.height} fits shown)", 420)


def _signal_markers(rows: pl.DataFrame, signal: int, symbol: str) -> go.Scatter:
    hits = _thin(rows.filter(pl.col("signal") == signal), MAX_POINTS)
    return go.Scatter(
        x=_times(hits["funding_time"]),
        y=_pct(hits["spread"]),
        mode="markers",
        name=f"signal {signal:+d}",
        marker={"symbol": symbol, "size": 8},
    )


def _spread_figure(symbol: str, venue_a: str, venue_b: str, rows: pl.DataFrame, ann: str) -> go.Figure:
    """b0 spread (venue_a minus venue_b, annualised %) with its mean, bands and signals."""
    line = _thin(rows, MAX_POINTS)
    x = _times(line["funding_time"])
    fig = go.Figure(
        [
            go.Scatter(x=x, y=_pct(line["spread"]), name="spread"),
            go.Scatter(x=x, y=_pct(line["mean"]), name="mean", line={"dash": "dash"}),
            go.Scatter(x=x, y=_pct(line["upper"]), name="upper band", line={"dash": "dot"}),
            go.Scatter(x=x, y=_pct(line["lower"]), name="lower band", line={"dash": "dot"}),
            # Markers come from all rows, not the thinned line, so no signal is dropped
            # unless there are more than MAX_POINTS of them.
            _signal_markers(rows, 1, "triangle-up"),
            _signal_markers(rows, -1, "triangle-down"),
        ]
    )
    fig.update_yaxes(title_text=f"b0 spread, % {ann}")
    fig.update_xaxes(title_text="funding time (UTC)")
    title = f"Spread: {symbol} {venue_a} minus {venue_b} (b0, % {ann})"
    return _style(fig, title, 380)


# --------------------------------------------------------------------------- page


@dataclass(frozen=True)
class _Section:
    heading: str
    note: str  # units and reading guide, shown under the heading
    figures: list[tuple[str, go.Figure]]  # (stable div id, figure)


@dataclass(frozen=True)
class _ReportData:
    summary: pl.DataFrame
    strips: pl.DataFrame
    features: pl.DataFrame
    fits: pl.DataFrame
    spreads: pl.DataFrame


def _load(warehouse: Path) -> _ReportData:
    with _read_only(warehouse, REPORT_TABLES) as con:
        return _ReportData(
            summary=_query(con, SUMMARY_SQL),
            strips=_query(con, STRIPS_SQL),
            features=_query(con, FEATURES_SQL),
            fits=_query(con, FITS_SQL),
            spreads=_query(con, SPREADS_SQL),
        )


def _div_id(*parts: str) -> str:
    # Stable ids (plotly's default is a random uuid) keep the report a pure function of the
    # warehouse: two builds from the same file are byte-identical.
    return re.sub(r"[^A-Za-z0-9_-]+", "-", "-".join(parts))


def _groups(frame: pl.DataFrame, keys: list[str]) -> dict[tuple, pl.DataFrame]:
    return frame.partition_by(keys, as_dict=True, maintain_order=True)


def _sections(data: _ReportData) -> list[_Section]:
    stored = {
        key: set(rows["annualisation"].drop_nulls()) for key, rows in _groups(data.strips, ["venue", "symbol"]).items()
    }

    def pair_ann(symbol: str, *venues: str) -> str:
        """APR/APY label of the strips behind a feature (one venue) or spread (two)."""
        return _annualisation_label(set().union(*(stored.get((v, symbol), set()) for v in venues)))

    return [
        _Section(
            "Funding strips",
            "Roll snapshots; each column is one strip, b0 the newest 8h window. "
            "Colour is the annualised rate in percent.",
            [
                (_div_id("strip", v, s), _strip_figure(v, s, rows))
                for (v, s), rows in _groups(data.strips, ["venue", "symbol"]).items()
            ],
        ),
        _Section(
            "Level and slope",
            "Curve features of roll snapshots: level and slope in annualised percent, "
            "their z-scores in standard deviations.",
            [
                (_div_id("features", v, s), _features_figure(v, s, rows, pair_ann(s, v)))
                for (v, s), rows in _groups(data.features, ["venue", "symbol"]).items()
            ],
        ),
        _Section(
            "PCA loadings",
            "Walk-forward fits: PC1/PC2 loadings per bucket for each fit (unitless, "
            "sign as fitted) and the share of strip variance each explains.",
            [
                (_div_id("pca", v, s), _pca_figure(v, s, rows))
                for (v, s), rows in _groups(data.fits, ["venue", "symbol"]).items()
            ],
        ),
        _Section(
            "Cross-venue spreads",
            "b0 of venue A minus b0 of venue B in annualised percent, with its mean, "
            "the upper/lower bands and markers where the signal is non-zero.",
            [
                (_div_id("spread", s, a, b), _spread_figure(s, a, b, rows, pair_ann(s, a, b)))
                for (s, a, b), rows in _groups(data.spreads, ["symbol", "venue_a", "venue_b"]).items()
            ],
        ),
    ]


def _header_html(warehouse: Path, df: pl.DataFrame) -> str:
    first = df["first_funding_time"].min()
    last = df["last_funding_time"].max()
    span = "no prints" if first is None else f"{_fmt_time(first)} to {_fmt_time(last)} UTC"
    facts = {
        "Generated from": str(warehouse),
        "Funding times": span,
        "Venues": ", ".join(df["venue"].unique().sort().to_list()) or "none",
        "Coins": ", ".join(df["symbol"].unique().sort().to_list()) or "none",
    }
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts.items())
    return (
        "<h1>Funding strip report</h1>"
        f"<dl>{items}</dl>"
        "<p>Rates are annualised and shown in percent (APR or APY as stored with each strip); "
        "times are UTC.</p>"
    )


def _sections_html(sections: list[_Section]) -> str:
    parts: list[str] = []
    embedded = False
    for section in sections:
        parts.append(f"<h2>{html.escape(section.heading)}</h2><p>{html.escape(section.note)}</p>")
        if not section.figures:
            parts.append("<p><em>No rows in the warehouse for this section.</em></p>")
        for div_id, fig in section.figures:
            # plotly.js goes inline once, with the first figure; the report must open offline.
            parts.append(fig.to_html(full_html=False, include_plotlyjs=not embedded, div_id=div_id))
            embedded = True
    return "\n".join(parts)


PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dt { font-weight: 600; }
table.summary { border-collapse: collapse; font-size: .85rem; }
table.summary th, table.summary td { border: 1px solid #ccc; padding: .2rem .5rem; }
table.summary td { text-align: right; font-variant-numeric: tabular-nums; }
table.summary td:nth-child(-n+2) { text-align: left; }
"""


def _page(warehouse: Path, data: _ReportData) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Funding strip report: {html.escape(warehouse.name)}</title>"
        f"<style>{PAGE_STYLE}</style></head><body>\n"
        f"{_header_html(warehouse, data.summary)}\n"
        f"<h2>Summary</h2>{_summary_html(data.summary)}\n"
        f"{_sections_html(_sections(data))}\n"
        "</body></html>\n"
    )


def _write_atomic(out: Path, text: str) -> None:
    """Write to a sibling temp file and rename, so a reader never sees half a report.

    A directory that cannot be written (read-only, not a directory) is a
    :class:`FundingInputError` naming ``out``; nothing is left behind.
    """
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)
    except OSError as exc:
        raise FundingInputError(f"{out}: cannot write the report ({exc.strerror or exc})") from None
    finally:
        with suppress(OSError):  # a temp file under a non-directory never existed
            tmp.unlink(missing_ok=True)


def build_report(warehouse: Path, out: Path) -> Path:
    """Write one self-contained HTML report of ``warehouse`` to ``out`` and return ``out``.

    The page embeds plotly.js inline (opens offline) and holds: a header (source path,
    funding-time range in UTC, venues, coins), the :func:`summary` table, and per
    (venue, symbol) the strip heatmap, level/slope with z-scores and PCA loadings by fit,
    then one figure per cross-venue spread. Rates are annualised percent (APR/APY), times
    UTC. Long series are thinned to at most ``MAX_POINTS`` points per trace. Nothing is
    written if the warehouse or a table is missing (:class:`FundingInputError`).
    """
    warehouse, out = Path(warehouse), Path(out)
    data = _load(warehouse)
    _write_atomic(out, _page(warehouse, data))
    return out
