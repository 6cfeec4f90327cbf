"""Read-only views of the warehouse: a terminal summary and a self-contained HTML report.

No Dagster import: the CLI and researchers call these directly on a warehouse file.

Units everywhere in this module:

- times are naive ``TIMESTAMP`` values meaning UTC, shown as ``YYYY-MM-DD HH:MM``;
- ``b0``..``b7``, ``level``, ``slope``, spreads and dispersion are stored as annualised
  decimal fractions (0.1095 = 10.95 %) and shown as annualised percent, labelled APR or
  APY from the ``annualisation`` column of ``funding.curve_snapshots``;
- z-scores are in standard deviations; PCA loadings are unitless weights; explained
  variance is shown as percent of the strip's variance.

A series is ``(venue, symbol, contract)``. Warehouses written before the ``contract`` column
existed read as if every contract were null (shown as no contract at all); ``spread_signals``
likewise for ``contract_a``/``contract_b``.

The report is built for the whole universe (hundreds of coins per venue): the cross-section
heatmap, the richest/cheapest tables and the dispersion chart cover every coin, while the
per-series charts are drawn only for a short list of coins (:func:`build_report`'s ``coins``).

Both entry points open the DuckDB file read-only with a short-lived connection and close
it before returning, so a Dagster run can take the write lock again straight away.
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import polars as pl
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from .errors import FundingInputError

SCHEMA = "funding"
N_BUCKETS = 8
BUCKETS = tuple(f"b{i}" for i in range(N_BUCKETS))
BUCKET_LABELS = tuple(
    f"{b} (newest)" if i == 0 else f"{b} (oldest)" if i == N_BUCKETS - 1 else b for i, b in enumerate(BUCKETS)
)
#: Term-structure x axis: bucket k is the 8h window that closed k x 8 h before bucket 0's.
BUCKET_AGES = tuple("b0 now" if i == 0 else f"b{i} {8 * i} h ago" for i in range(N_BUCKETS))
PERCENT = 100.0

# Caps on what one trace draws: about one point per pixel of a wide chart. 90 days of hourly
# rows (2,160) thin to 720, which keeps a 5-venue x 2-coin report with 20 spreads under
# ~10 MB, about half of it the 4.8 MB plotly.js bundle.
MAX_POINTS = 1000
MAX_FITS = 150

#: A step longer than this many times a series' median step is a hole, drawn as a break.
GAP_FACTOR = 3.0
#: Per-series detail charts are drawn for at most this many coins by default ...
SHORT_LIST_SIZE = 4
#: ... always including these when the warehouse has them.
MAJORS = ("BTC", "ETH")
#: Rows of the richest and of the cheapest table.
TOP_N = 10
#: The cross-section colour scale spans these percentiles of the cells (then clips).
CLIP_PERCENTILES = (2.0, 98.0)
#: A series whose latest roll is older than this (before the newest roll of any series) is
#: stale (a delisted coin, a venue that stopped) and left out of the cross-section.
STALE_AFTER = timedelta(hours=24)
#: Coins named in the header before "... (N in all)".
MAX_LISTED = 30

SUMMARY_TABLES = ("raw_prints", "curve_snapshots", "pca_fits", "pca_factors")
REPORT_TABLES = (*SUMMARY_TABLES, "curve_features", "spread_signals")
#: Contract columns per table; a table without them reads them as null.
CONTRACT_COLUMNS = {"spread_signals": ("contract_a", "contract_b")}
RUN_FIRST = "run `funding-assets backfill` or `funding-assets demo` first"
TIME_FORMAT = "%Y-%m-%d %H:%M"
SIMULATED = re.compile(r"^sim(ulator)?\b", re.IGNORECASE)
#: Sources derived from other prints (premium-index rebuilds): simulated only if those are.
DERIVED_SOURCES = frozenset({"reconstructed"})
SIM_BANNER = "Simulated data (funding_assets simulator) — not market data"


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


def _views(con: duckdb.DuckDBPyConnection, tables: Iterable[str]) -> dict[str, str]:
    """SQL to read each table with its contract column(s) as non-null strings.

    ``''`` stands for "no contract" (an older warehouse without the column, or a null), so
    series keys join with ``USING`` and group without null handling. A ``spread_signals``
    with one ``contract`` column instead of ``contract_a``/``contract_b`` uses it for both.
    """
    columns = set(
        con.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = ?", [SCHEMA]
        ).fetchall()
    )
    views = {}
    for table in tables:
        wanted = CONTRACT_COLUMNS.get(table, ("contract",))
        present = [c for c in wanted if (table, c) in columns]
        replaced = ", ".join(f"coalesce({c}, '') AS {c}" for c in present)
        replace = f" REPLACE ({replaced})" if present else ""
        # a spread table keyed by one shared ``contract`` gives it to both legs
        shared = "coalesce(contract, '')" if (table, "contract") in columns else "''"
        added = "".join(f", {shared} AS {c}" for c in wanted if c not in present)
        views[table] = f"(SELECT *{replace}{added} FROM {SCHEMA}.{table}) AS {table}"
    return views


def _query(con: duckdb.DuckDBPyConnection, template: str, views: dict[str, str], **params: object) -> pl.DataFrame:
    # Relations are lazy and re-run on every read, so fetch while the connection is open.
    sql = template.format(**views)
    return con.sql(sql, params=params or None).pl()


SUMMARY_SQL = """
WITH keys AS (
    SELECT venue, symbol, contract FROM {raw_prints}
    UNION SELECT venue, symbol, contract FROM {curve_snapshots}
    UNION SELECT venue, symbol, contract FROM {pca_fits}
    UNION SELECT venue, symbol, contract FROM {pca_factors}
),
prints AS (
    SELECT venue, symbol, contract, count(*) AS prints,
           min(funding_time) AS first_funding_time, max(funding_time) AS last_funding_time
    FROM {raw_prints} GROUP BY venue, symbol, contract
),
snapshots AS (
    SELECT venue, symbol, contract,
           count(*) FILTER (WHERE kind = 'roll') AS roll_snapshots,
           count(*) FILTER (WHERE kind = 'intraday') AS intraday_snapshots,
           avg(n_filled) FILTER (WHERE kind = 'roll') AS mean_n_filled
    FROM {curve_snapshots} GROUP BY venue, symbol, contract
),
latest_roll AS (
    SELECT venue, symbol, contract, annualisation, b0 AS latest_b0, b7 AS latest_b7
    FROM {curve_snapshots} WHERE kind = 'roll'
    QUALIFY row_number() OVER (PARTITION BY venue, symbol, contract ORDER BY funding_time DESC, ts DESC) = 1
),
fits AS (
    SELECT venue, symbol, contract, count(*) AS pca_fits FROM {pca_fits} GROUP BY venue, symbol, contract
),
latest_factor AS (
    SELECT venue, symbol, contract, pc1 AS latest_pc1
    FROM {pca_factors} WHERE kind = 'roll'
    QUALIFY row_number() OVER (
        PARTITION BY venue, symbol, contract ORDER BY funding_time DESC, ts DESC, fit_id DESC) = 1
)
SELECT k.venue, k.symbol, nullif(k.contract, '') AS contract,
       coalesce(p.prints, 0)::BIGINT AS prints,
       p.first_funding_time, p.last_funding_time,
       coalesce(s.roll_snapshots, 0)::BIGINT AS roll_snapshots,
       coalesce(s.intraday_snapshots, 0)::BIGINT AS intraday_snapshots,
       r.annualisation, r.latest_b0, r.latest_b7,
       s.mean_n_filled::DOUBLE AS mean_n_filled,
       coalesce(f.pca_fits, 0)::BIGINT AS pca_fits,
       l.latest_pc1
FROM keys k
LEFT JOIN prints p USING (venue, symbol, contract)
LEFT JOIN snapshots s USING (venue, symbol, contract)
LEFT JOIN latest_roll r USING (venue, symbol, contract)
LEFT JOIN fits f USING (venue, symbol, contract)
LEFT JOIN latest_factor l USING (venue, symbol, contract)
ORDER BY k.venue, k.symbol, k.contract
"""

SOURCES_SQL = """
SELECT coalesce(source, 'unknown') AS source, count(*)::BIGINT AS prints
FROM {raw_prints} GROUP BY ALL ORDER BY prints DESC, source
"""

LATEST_SQL = f"""
SELECT venue, symbol, contract, funding_time, annualisation, {", ".join(BUCKETS)}
FROM {{curve_snapshots}} WHERE kind = 'roll'
QUALIFY row_number() OVER (PARTITION BY venue, symbol, contract ORDER BY funding_time DESC, ts DESC) = 1
ORDER BY symbol, venue, contract
"""

# Cross-venue std (ddof 1, as spread_signals.dispersion) of each coin's b0 per window, the
# contracts of a coin on one venue averaged first. ORDER BY inside the aggregates fixes the
# float summation order, so the report stays byte-identical across builds.
COIN_DISPERSION_CTE = """
WITH per_venue AS (
    SELECT symbol, venue, funding_time, avg(b0 ORDER BY contract) AS b0
    FROM {curve_snapshots} WHERE kind = 'roll' AND b0 IS NOT NULL
    GROUP BY symbol, venue, funding_time
),
per_coin AS (
    SELECT symbol, funding_time, stddev_samp(b0 ORDER BY venue) AS dispersion, count(*) AS n_venues
    FROM per_venue GROUP BY symbol, funding_time HAVING count(*) >= 2
)
"""

MEDIAN_DISPERSION_SQL = (
    COIN_DISPERSION_CTE
    + """
SELECT funding_time, median(dispersion) AS dispersion, count(*)::BIGINT AS n_coins
FROM per_coin GROUP BY funding_time ORDER BY funding_time
"""
)

SHORT_LIST_DISPERSION_SQL = (
    COIN_DISPERSION_CTE
    + """
SELECT symbol, funding_time, dispersion FROM per_coin
WHERE list_contains($coins, symbol) ORDER BY symbol, funding_time
"""
)

STRIPS_SQL = f"""
SELECT venue, symbol, contract, funding_time, annualisation, {", ".join(BUCKETS)}
FROM {{curve_snapshots}} WHERE kind = 'roll' AND list_contains($coins, symbol)
ORDER BY symbol, venue, contract, funding_time, ts
"""

FIXED_ROLL_SQL = f"""
SELECT venue, symbol, contract, kind, funding_time, as_of, annualisation, {", ".join(BUCKETS)}
FROM {{curve_snapshots}} WHERE kind = 'roll' AND list_contains($coins, symbol)
ORDER BY symbol, venue, contract, funding_time, ts
"""

FEATURES_SQL = """
SELECT venue, symbol, contract, funding_time, level, slope, level_z, slope_z
FROM {curve_features} WHERE kind = 'roll' AND list_contains($coins, symbol)
ORDER BY symbol, venue, contract, funding_time, ts
"""

FITS_SQL = """
SELECT venue, symbol, contract, fit_id, fitted_at, loadings, explained_variance
FROM {pca_fits} WHERE list_contains($coins, symbol)
ORDER BY symbol, venue, contract, fitted_at, fit_id
"""

SPREADS_SQL = """
SELECT symbol, venue_a, contract_a, venue_b, contract_b, funding_time, spread, mean, upper, lower, signal
FROM {spread_signals} WHERE list_contains($coins, symbol)
ORDER BY symbol, venue_a, contract_a, venue_b, contract_b, funding_time
"""


def summary(warehouse: Path) -> pl.DataFrame:
    """One row per series (venue, symbol, contract) in the warehouse, sorted by those keys.

    Columns: ``contract`` (null in a warehouse without the column), ``prints`` (rows in
    ``raw_prints``), ``first_funding_time`` and ``last_funding_time`` of those prints (naive
    UTC), ``roll_snapshots`` and ``intraday_snapshots`` counts, ``annualisation``
    (``apr``/``apy``), ``latest_b0`` and ``latest_b7`` of the latest roll snapshot
    (annualised decimal fractions, not percent), ``mean_n_filled`` over roll snapshots
    (filled buckets of 8), ``pca_fits`` count and ``latest_pc1`` (PC1 score of the latest
    roll snapshot, in the units of the fitted strip). Counts are 0 and values null where a
    table has no rows for the series.
    """
    with _read_only(Path(warehouse), SUMMARY_TABLES) as con:
        return _query(con, SUMMARY_SQL, _views(con, SUMMARY_TABLES))


# --------------------------------------------------------------------------- formatting


def _annualisation_label(values: Iterable[str | None]) -> str:
    """``APR``, ``APY``, ``APR/APY`` when mixed, or ``annualised`` when unknown."""
    labels = sorted({v.upper() for v in values if v})
    return "/".join(labels) or "annualised"


def _fmt_time(value: datetime | None) -> str:
    return "-" if value is None else value.strftime(TIME_FORMAT)


def _fmt_number(value: float | None, decimals: int, scale: float = 1.0) -> str:
    return "-" if value is None or np.isnan(value) else f"{value * scale:.{decimals}f}"


def _label(*parts: str | None) -> str:
    """Words of a series name, skipping the empty contract of an older warehouse."""
    return " ".join(p for p in parts if p)


def _summary_cells(df: pl.DataFrame) -> tuple[list[str], list[list[str]], int]:
    """Header, display strings and the number of left-aligned text columns, shared by the
    text and HTML tables (rates in percent). ``contract`` is shown only when known."""
    ann = _annualisation_label(df["annualisation"])
    keys = ["venue", "symbol"] + (["contract"] if df["contract"].drop_nulls().len() else [])
    header = [
        *keys,
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
            *(r[k] or "-" for k in keys),
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
    return header, rows, len(keys)


def format_summary(df: pl.DataFrame) -> str:
    """Render :func:`summary` as a fixed-width text table for a terminal.

    Times are UTC; ``b0``/``b7`` are annualised percent with 2 decimals, the header naming
    APR or APY (e.g. ``b0 % APR``).
    """
    header, rows, text_columns = _summary_cells(df)
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < text_columns else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


FIXED_SUMMARY_SQL = """
WITH latest AS (
    SELECT provider, venue, symbol, maturity, count(*) OVER w AS candles,
           row_number() OVER (PARTITION BY provider, market_id ORDER BY ts DESC) AS newest,
           ts, implied_apr, realised_apr_to_date, carry_apr
    FROM funding.fixed_vs_floating WHERE kind = 'candle'
    WINDOW w AS (PARTITION BY provider, market_id)
)
SELECT provider, venue, symbol, maturity, candles, ts AS last_candle,
       implied_apr, realised_apr_to_date, carry_apr
FROM latest WHERE newest = 1 ORDER BY symbol, provider, maturity, venue
"""


def fixed_summary(warehouse: Path) -> str:
    """The fixed-rate futures of ``warehouse``, one line each: the latest candle's implied
    APR, the realised APR of its underlying since term start and the carry (annualised
    percent, times UTC); empty when the warehouse has no ``fixed_vs_floating`` rows."""
    with _read_only(Path(warehouse), ()) as con:
        if not _has_table(con, "fixed_vs_floating"):
            return ""
        frame = con.sql(FIXED_SUMMARY_SQL).pl()
    if frame.height == 0:
        return ""

    def pct(value: float | None) -> str:
        return "" if value is None else f"{value * 100:.2f}"

    header = [
        "provider",
        "venue",
        "coin",
        "maturity (UTC)",
        "candles",
        "last candle",
        "implied %",
        "realised %",
        "carry %",
    ]
    cells = [
        [
            r["provider"],
            r["venue"],
            r["symbol"],
            f"{r['maturity']:%Y-%m-%d %H:%M}",
            f"{r['candles']:,}",
            f"{r['last_candle']:%Y-%m-%d %H:%M}",
            pct(r["implied_apr"]),
            pct(r["realised_apr_to_date"]),
            pct(r["carry_apr"]),
        ]
        for r in frame.iter_rows(named=True)
    ]
    widths = [max(len(c) for c in column) for column in zip(header, *cells)]
    text = 4

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < text else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in cells)])


def _table_html(header: list[str], rows: list[list[str]], text: Iterable[int], css: str = "summary") -> str:
    """An HTML table; cells of the ``text`` column indices are left-aligned, numbers right."""
    text = set(text)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="text">{html.escape(c)}</td>' if i in text else f"<td>{html.escape(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _summary_html(df: pl.DataFrame) -> str:
    header, rows, text_columns = _summary_cells(df)
    table = _table_html(header, rows, range(text_columns))
    return f"<details><summary>Every series ({df.height} rows)</summary>{table}</details>"


# --------------------------------------------------------------------------- series helpers


def _thin(frame: pl.DataFrame, max_rows: int) -> pl.DataFrame:
    """Every k-th row so at most ``max_rows`` remain, counted back from the newest row so
    the latest value is always drawn."""
    step = -(-frame.height // max_rows)
    return frame.reverse().gather_every(step).reverse() if step > 1 else frame


def break_gaps(frame: pl.DataFrame, time_col: str = "funding_time") -> pl.DataFrame:
    """``frame`` (sorted by ``time_col``) with two all-null rows inside every hole.

    A hole is a step longer than ``GAP_FACTOR`` times the median positive step of the
    series. The null rows sit one median step after the last row before the hole and one
    before the first row after it, so a line (plotly breaks at null with
    ``connectgaps=False``) and a heatmap column (cells reach halfway to the neighbour)
    both show the hole as empty instead of drawing across it.
    """
    if frame.height < 3:
        return frame
    times = frame[time_col]
    epoch_ms = times.dt.epoch("ms").to_numpy()
    steps = np.diff(epoch_ms)
    positive = steps[steps > 0]
    if not positive.size:
        return frame
    step = timedelta(milliseconds=float(np.median(positive)))
    holes = np.flatnonzero(steps > GAP_FACTOR * step / timedelta(milliseconds=1))
    if not holes.size:
        return frame
    before, after = times.gather(holes), times.gather(holes + 1)
    breaks = pl.DataFrame({time_col: pl.concat([before + step, after - step])})
    return pl.concat([frame, breaks], how="diagonal_relaxed").sort(time_col, maintain_order=True)


def _times(series: pl.Series) -> list[str]:
    # Minute strings are exact for snapped funding times and ~40 % smaller than ISO-us.
    return series.dt.strftime(TIME_FORMAT).to_list()


def _pct(series: pl.Series) -> np.ndarray:
    """Annualised decimal fractions -> percent, nulls as NaN (plotly draws a gap)."""
    return series.cast(pl.Float64).to_numpy() * PERCENT


def _line(x: list[str], y: np.ndarray, name: str, **kwargs: object) -> go.Scatter:
    """A line that stops at NaN rather than bridging a hole."""
    return go.Scatter(x=x, y=y, name=name, connectgaps=False, **kwargs)


#: plotly_white's layout without its per-trace defaults (every trace here sets its own
#: colours): each figure embeds its template, and the full one is 7 kB and slow to copy.
THEME = go.layout.Template(layout=pio.templates["plotly_white"].layout)


def _style(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(
        title={"text": title},
        height=height,
        template=THEME,
        margin={"l": 70, "r": 30, "t": 70, "b": 50},
        legend={"orientation": "h", "y": -0.15},
    )
    return fig


# --------------------------------------------------------------------------- universe


def _fresh(latest: pl.DataFrame) -> pl.DataFrame:
    """Latest rolls of series that rolled within ``STALE_AFTER`` of the newest roll."""
    if latest.is_empty():
        return latest
    newest = latest["funding_time"].max()
    return latest.filter(pl.col("funding_time") >= newest - STALE_AFTER)


def cross_section(latest: pl.DataFrame) -> pl.DataFrame:
    """Coins x venues of the latest roll b0: one row per series label, one column per venue.

    ``latest`` holds each series' latest roll (``venue, symbol, contract, funding_time,
    b0``). A coin with several contracts on one venue gets a row per contract
    (``BTC usdt``, ``BTC inverse``); otherwise one row named by the coin, each venue
    contributing its one contract. Columns: ``label``, ``symbol``, one per venue (sorted, b0
    as an annualised decimal, null where the venue has no such series) and ``mean_b0``
    (mean over the venues present). Rows are sorted richest first (``mean_b0`` descending,
    ties by label).
    """
    venues = sorted(latest["venue"].unique().to_list())
    if latest.is_empty():
        return pl.DataFrame(schema={"label": pl.String, "symbol": pl.String, "mean_b0": pl.Float64})
    several = latest.group_by("venue", "symbol").agg(n=pl.len()).filter(pl.col("n") > 1)["symbol"].unique()
    labelled = latest.with_columns(
        label=pl.when(pl.col("symbol").is_in(several.implode()) & (pl.col("contract") != ""))
        .then(pl.col("symbol") + " " + pl.col("contract"))
        .otherwise(pl.col("symbol"))
    )
    wide = labelled.pivot(on="venue", index=["label", "symbol"], values="b0", aggregate_function="first")
    wide = wide.select("label", "symbol", *venues)
    return wide.with_columns(mean_b0=pl.mean_horizontal(*venues)).sort(
        ["mean_b0", "label"], descending=[True, False], nulls_last=True
    )


def colour_range(values_pct: np.ndarray) -> tuple[float, float, bool]:
    """``(low, high, symmetric)`` of the cross-section's colour scale, in percent.

    The ``CLIP_PERCENTILES`` of the finite values, rounded outward to whole percent (so one
    outlier cannot wash out the rest); when they span 0 the range is made symmetric around 0.
    Cells beyond the range take its end colour (clipped).
    """
    finite = values_pct[np.isfinite(values_pct)]
    if not finite.size:
        return -1.0, 1.0, True
    low, high = (float(v) for v in np.percentile(finite, CLIP_PERCENTILES))
    low, high = math.floor(low), math.ceil(high)
    if low < 0 < high:
        bound = max(-low, high)
        return -bound, bound, True
    if low == high:
        low, high = low - 1, high + 1
    return low, high, False


def _clip_text(low: float, high: float, symmetric: bool) -> str:
    return f"colour clipped to ±{high:g} %" if symmetric else f"colour clipped to {low:g} … {high:g} %"


def _cross_section_figure(wide: pl.DataFrame, latest: pl.DataFrame, ann: str) -> go.Figure:
    """Heatmap: rows = coins richest first, columns = venues, colour = latest b0 (% ann)."""
    venues = [c for c in wide.columns if c not in ("label", "symbol", "mean_b0")]
    z = np.vstack([_pct(wide[v]) for v in venues]).T if venues else np.empty((0, 0))
    low, high, symmetric = colour_range(z)
    beyond = int(np.sum(np.isfinite(z) & ((z < low) | (z > high))))
    clip = _clip_text(low, high, symmetric)
    as_of = _fmt_time(latest["funding_time"].max())
    fig = go.Figure(
        go.Heatmap(
            x=venues,
            y=wide["label"].to_list(),
            z=z,
            zmin=low,
            zmax=high,
            colorscale="RdBu_r" if symmetric else "Viridis",
            colorbar={"title": {"text": f"% {ann}<br>({clip.removeprefix('colour ')})"}},
            hovertemplate=f"%{{y}} on %{{x}}<br>b0 %{{z:.2f}} % {ann}<extra></extra>",
            xgap=1,
        )
    )
    fig.update_yaxes(autorange="reversed", title_text="coin (richest first)", type="category", dtick=1)
    fig.update_xaxes(side="top", title_text="venue")
    title = (
        f"Latest roll b0 by coin and venue (% {ann}, as of {as_of} UTC)<br><sub>{clip} "
        f"(percentiles {CLIP_PERCENTILES[0]:g}–{CLIP_PERCENTILES[1]:g} of the cells; "
        f"{beyond} cell{'s' * (beyond != 1)} beyond, hover for the true value)</sub>"
    )
    fig = _style(fig, title, max(320, 140 + 16 * wide.height))
    fig.update_layout(margin={"t": 110})
    return fig


def _rank_rows(wide: pl.DataFrame) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """Header, richest and cheapest rows (percent, 2 decimals) of :func:`cross_section`.

    Rows without any value are left out; cheapest lists the cheapest first and never
    repeats a row of the richest table.
    """
    venues = [c for c in wide.columns if c not in ("label", "symbol", "mean_b0")]
    ranked = wide.filter(pl.col("mean_b0").is_not_null())
    cells = [
        [
            str(i + 1),
            r["label"],
            _fmt_number(r["mean_b0"], 2, PERCENT),
            *(_fmt_number(r[v], 2, PERCENT) for v in venues),
        ]
        for i, r in enumerate(ranked.iter_rows(named=True))
    ]
    richest = cells[:TOP_N]
    cheapest = cells[len(richest) :][-TOP_N:][::-1]
    return ["rank", "coin", "mean over venues", *venues], richest, cheapest


def _dispersion_figure(median: pl.DataFrame, by_coin: pl.DataFrame, ann: str) -> go.Figure:
    """Cross-venue std of b0 per window (% ann): the median over coins, and short-list coins."""
    lines = []
    median = break_gaps(_thin(median, MAX_POINTS))
    lines.append(
        _line(
            _times(median["funding_time"]),
            _pct(median["dispersion"]),
            "median over coins",
            line={"width": 3, "color": "black"},
            customdata=median["n_coins"].to_numpy(),
            hovertemplate=f"%{{x}} UTC<br>median std %{{y:.2f}} % {ann} over %{{customdata}} coins<extra></extra>",
        )
    )
    for (symbol,), rows in by_coin.partition_by("symbol", as_dict=True, maintain_order=True).items():
        rows = break_gaps(_thin(rows, MAX_POINTS))
        lines.append(_line(_times(rows["funding_time"]), _pct(rows["dispersion"]), symbol))
    fig = go.Figure(lines)
    fig.update_yaxes(title_text=f"std of b0 across venues, % {ann}", rangemode="tozero")
    fig.update_xaxes(title_text="funding time (UTC)")
    return _style(fig, f"Cross-venue dispersion of b0 (std across venues, % {ann})", 400)


def _venue_colours(venues: Iterable[str]) -> dict[str, str]:
    """One fixed colour per venue (sorted), the same in every subplot."""
    palette = qualitative.Plotly
    return {v: palette[i % len(palette)] for i, v in enumerate(sorted(set(venues)))}


CONTRACT_DASH = {"usdt": "solid", "usdc": "dash", "inverse": "dot"}


def _term_structure_figure(latest: pl.DataFrame, coins: Sequence[str], ann: str) -> go.Figure:
    """Latest roll b0..b7 (% ann) per series, one subplot per short-list coin.

    x is the bucket's age (b0 now ... b7 56 h ago); a series whose latest roll is older
    than the coin's newest says so in its legend entry.
    """
    cols = min(2, len(coins))
    rows = -(-len(coins) // cols)
    by_coin = {c: latest.filter(pl.col("symbol") == c) for c in coins}
    titles = [
        f"{c} (as of {_fmt_time(f['funding_time'].max())} UTC)" if f.height else f"{c} (no roll)"
        for c, f in by_coin.items()
    ]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, vertical_spacing=0.25 / rows)
    colours = _venue_colours(latest["venue"])
    shown: set[str] = set()
    for i, (coin, series) in enumerate(by_coin.items()):
        newest = series["funding_time"].max()
        for r in series.iter_rows(named=True):
            name = _label(r["venue"], r["contract"])
            stale = f" ({_fmt_time(r['funding_time'])})" if r["funding_time"] != newest else ""
            fig.add_trace(
                go.Scatter(
                    x=list(BUCKET_AGES),
                    y=[_nan_pct(r[b]) for b in BUCKETS],
                    name=name + stale,
                    legendgroup=name,
                    showlegend=name not in shown or bool(stale),
                    mode="lines+markers",
                    line={"color": colours[r["venue"]], "dash": CONTRACT_DASH.get(r["contract"], "solid")},
                    hovertemplate=f"{coin} {name}<br>%{{x}}: %{{y:.2f}} % {ann}<extra></extra>",
                ),
                row=i // cols + 1,
                col=i % cols + 1,
            )
            shown.add(name)
    fig.update_yaxes(title_text=f"% {ann}")
    fig.update_xaxes(tickangle=-30)
    return _style(fig, f"Term structure now: latest roll b0..b7 per venue (% {ann})", 120 + 330 * rows)


def _nan_pct(value: float | None) -> float:
    return math.nan if value is None else value * PERCENT


# --------------------------------------------------------------------------- coin details


def _strip_figure(name: str, rows: pl.DataFrame) -> go.Figure:
    """Heatmap of roll snapshots: x = funding time (UTC), y = bucket, z = annualised %."""
    ann = _annualisation_label(rows["annualisation"])
    rows = break_gaps(_thin(rows, MAX_POINTS))
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
    return _style(fig, f"Funding strip: {name} (% {ann}, annualised)", 340)


def _features_figure(name: str, rows: pl.DataFrame, ann: str) -> go.Figure:
    """Level and slope (annualised %) on top, their z-scores (std devs) below."""
    rows = break_gaps(_thin(rows, MAX_POINTS))
    x = _times(rows["funding_time"])
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    fig.add_trace(_line(x, _pct(rows["level"]), f"level, % {ann}"), row=1, col=1)
    fig.add_trace(_line(x, _pct(rows["slope"]), f"slope, % {ann}"), row=1, col=1)
    fig.add_trace(_line(x, rows["level_z"].cast(pl.Float64).to_numpy(), "level z"), row=2, col=1)
    fig.add_trace(_line(x, rows["slope_z"].cast(pl.Float64).to_numpy(), "slope z"), row=2, col=1)
    fig.update_yaxes(title_text=f"% {ann}", row=1, col=1)
    fig.update_yaxes(title_text="z (std devs)", row=2, col=1)
    fig.update_xaxes(title_text="funding time (UTC)", row=2, col=1)
    return _style(fig, f"Level and slope: {name} (% {ann}; z in std devs)", 500)


def _loadings(fits: pl.DataFrame, component: int) -> np.ndarray:
    """(fits x 8) loadings of one component; NaN where a fit kept fewer components."""
    return np.array(
        [
            per_fit[component] if per_fit is not None and len(per_fit) > component else [np.nan] * N_BUCKETS
            for per_fit in fits["loadings"].to_list()
        ],
        dtype=float,
    )


def _pca_figure(name: str, fits: pl.DataFrame) -> go.Figure:
    """PC1 and PC2 loadings by fit (heatmaps, unitless) and explained variance (%)."""
    fits = _thin(fits, MAX_FITS)
    shown = fits.height
    fits = break_gaps(fits, "fitted_at")
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
            _line(
                fitted,
                fits["explained_variance"].list.get(component, null_on_oob=True).cast(pl.Float64).to_numpy() * PERCENT,
                f"PC{component + 1} explained variance, %",
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
    return _style(fig, f"PCA loadings: {name} ({shown} fits shown)", 420)


def _signal_markers(rows: pl.DataFrame, signal: int, symbol: str) -> go.Scatter:
    hits = _thin(rows.filter(pl.col("signal") == signal), MAX_POINTS)
    return go.Scatter(
        x=_times(hits["funding_time"]),
        y=_pct(hits["spread"]),
        mode="markers",
        name=f"signal {signal:+d}",
        marker={"symbol": symbol, "size": 8},
    )


def _spread_figure(name_a: str, name_b: str, symbol: str, rows: pl.DataFrame, ann: str) -> go.Figure:
    """b0 spread (series a minus series b, annualised %) with its mean, bands and signals."""
    line = break_gaps(_thin(rows, MAX_POINTS))
    x = _times(line["funding_time"])
    fig = go.Figure(
        [
            _line(x, _pct(line["spread"]), "spread"),
            _line(x, _pct(line["mean"]), "mean", line={"dash": "dash"}),
            _line(x, _pct(line["upper"]), "upper band", line={"dash": "dot"}),
            _line(x, _pct(line["lower"]), "lower band", line={"dash": "dot"}),
            # Markers come from all rows, not the thinned line, so no signal is dropped
            # unless there are more than MAX_POINTS of them.
            _signal_markers(rows, 1, "triangle-up"),
            _signal_markers(rows, -1, "triangle-down"),
        ]
    )
    fig.update_yaxes(title_text=f"b0 spread, % {ann}")
    fig.update_xaxes(title_text="funding time (UTC)")
    return _style(fig, f"Spread: {symbol} {name_a} minus {name_b} (b0, % {ann})", 380)


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class _ReportData:
    summary: pl.DataFrame  # one row per series, see summary()
    sources: pl.DataFrame  # source, prints
    latest: pl.DataFrame  # each series' latest roll
    median_dispersion: pl.DataFrame  # funding_time, dispersion, n_coins
    coins: list[str]  # the short list
    coin_dispersion: pl.DataFrame  # symbol, funding_time, dispersion (short list)
    strips: pl.DataFrame  # short list only, from here on
    features: pl.DataFrame
    fits: pl.DataFrame
    spreads: pl.DataFrame
    fixed: pl.DataFrame  # fixed_vs_floating rows of the short list (empty in a warehouse without them)
    fixed_spreads: pl.DataFrame
    fixed_roll: pl.DataFrame  # roll snapshots (with as_of) of the short list, when there are fixed rows


def default_coins(summary_rows: pl.DataFrame, size: int = SHORT_LIST_SIZE) -> list[str]:
    """The coins listed on the most venues (ties by name), at most ``size``; ``MAJORS``
    present in the warehouse always come first."""
    counts = (
        summary_rows.group_by("symbol")
        .agg(venues=pl.col("venue").n_unique())
        .sort(["venues", "symbol"], descending=[True, False])
    )
    ranked = counts["symbol"].to_list()
    chosen = [c for c in MAJORS if c in ranked][:size]
    return chosen + [c for c in ranked if c not in chosen][: size - len(chosen)]


def _short_list(warehouse: Path, summary_rows: pl.DataFrame, coins: Sequence[str] | None) -> list[str]:
    """``coins`` as given (deduplicated), or :func:`default_coins`; unknown coins are refused."""
    if coins is None:
        return default_coins(summary_rows)
    chosen = list(dict.fromkeys(coins))
    known = set(summary_rows["symbol"].to_list())
    unknown = [c for c in chosen if c not in known]
    if unknown:
        raise FundingInputError(
            f"{warehouse}: no rows for coin(s) {', '.join(unknown)}; "
            f"the warehouse has {len(known)} coins, e.g. {', '.join(default_coins(summary_rows))}"
        )
    return chosen


def _load(warehouse: Path, coins: Sequence[str] | None) -> _ReportData:
    with _read_only(warehouse, REPORT_TABLES) as con:
        views = _views(con, REPORT_TABLES)
        summary_rows = _query(con, SUMMARY_SQL, views)
        short = _short_list(warehouse, summary_rows, coins)

        def detail(sql: str) -> pl.DataFrame:
            return _query(con, sql, views, coins=short)

        return _ReportData(
            summary=summary_rows,
            sources=_query(con, SOURCES_SQL, views),
            latest=_query(con, LATEST_SQL, views),
            median_dispersion=_query(con, MEDIAN_DISPERSION_SQL, views),
            coins=short,
            coin_dispersion=detail(SHORT_LIST_DISPERSION_SQL),
            strips=detail(STRIPS_SQL),
            features=detail(FEATURES_SQL),
            fits=detail(FITS_SQL),
            spreads=detail(SPREADS_SQL),
            fixed=(fixed := _optional(con, "fixed_vs_floating", short)),
            fixed_spreads=_optional(con, "fixed_rate_spreads", short),
            fixed_roll=detail(FIXED_ROLL_SQL) if fixed.height else pl.DataFrame(),
        )


def _has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    present = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", [SCHEMA, table]
    ).fetchall()
    return bool(present[0][0])


def _optional(con: duckdb.DuckDBPyConnection, table: str, coins: list[str]) -> pl.DataFrame:
    """The short list's rows of a table a warehouse may not have yet (empty if absent)."""
    if not _has_table(con, table):
        return pl.DataFrame()
    return con.sql(f"SELECT * FROM {SCHEMA}.{table} WHERE list_contains($coins, symbol)", params={"coins": coins}).pl()


# --------------------------------------------------------------------------- page


@dataclass(frozen=True)
class _Section:
    heading: str
    note: str  # units and reading guide, shown under the heading
    figures: list[tuple[str, go.Figure]]  # (stable div id, figure)
    extra_html: str = ""  # tables shown under the note


def _div_id(*parts: str) -> str:
    # Stable ids (plotly's default is a random uuid) keep the report a pure function of the
    # warehouse: two builds from the same file are byte-identical.
    return re.sub(r"[^A-Za-z0-9_-]+", "-", "-".join(p for p in parts if p))


def _groups(frame: pl.DataFrame, keys: list[str]) -> dict[tuple, pl.DataFrame]:
    return frame.partition_by(keys, as_dict=True, maintain_order=True)


def _universe_sections(data: _ReportData) -> list[_Section]:
    """Cross-section, richest/cheapest, dispersion and term structures: every coin at once."""
    ann = _annualisation_label(data.latest["annualisation"])
    fresh = _fresh(data.latest)
    wide = cross_section(fresh)
    stale = data.latest.height - fresh.height
    header, richest, cheapest = _rank_rows(wide)
    ranks = "".join(
        f"<h3>{name} ({len(rows)})</h3>{_table_html(header, rows, [1], 'ranks')}"
        for name, rows in (("Richest", richest), ("Cheapest", cheapest))
        if rows
    )
    return [
        _Section(
            "Cross-section: latest b0",
            f"Each cell is the latest roll's b0 (the newest closed 8h window) of a coin on a venue, "
            f"annualised percent ({ann}). Rows are coins, richest (highest mean over venues) on top; "
            "a coin with several contracts on one venue has a row per contract. The colour scale "
            f"spans percentiles {CLIP_PERCENTILES[0]:g} to {CLIP_PERCENTILES[1]:g} of the cells (symmetric "
            f"around 0 when they span it) and clips beyond (hover shows the true value). {stale} series with no roll within "
            f"{STALE_AFTER.total_seconds() / 3600:g} h of the newest are left out.",
            [("cross-section", _cross_section_figure(wide, fresh, ann))] if wide.height else [],
        ),
        _Section(
            "Richest and cheapest coins",
            f"By latest roll b0 averaged over the venues listing the coin, annualised percent ({ann}), "
            "with each venue's value (- where the venue has none).",
            [],
            ranks,
        ),
        _Section(
            "Cross-venue dispersion",
            f"Standard deviation (ddof 1) of a coin's b0 across venues at each 8h window, annualised "
            f"percent ({ann}); a coin's contracts on one venue are averaged first, and a coin counts "
            "where at least two venues have a roll. The thick line is the median over coins; thin "
            "lines the short-listed coins. Holes in the data are left as gaps.",
            [("dispersion", _dispersion_figure(data.median_dispersion, data.coin_dispersion, ann))]
            if data.median_dispersion.height
            else [],
        ),
        _Section(
            "Term structure now",
            f"The latest roll snapshot b0..b7 of each venue (and contract) as a curve, annualised "
            f"percent ({ann}): b0 is the newest closed 8h window, b7 the one that closed 56 h before it.",
            [("term-structure", _term_structure_figure(data.latest, data.coins, ann))]
            if data.coins and data.latest.filter(pl.col("symbol").is_in(data.coins)).height
            else [],
        ),
    ]


def _coin_sections(data: _ReportData) -> list[_Section]:
    """One section per short-listed coin: its strips, features, PCA fits and spreads."""
    stored = {
        key: set(rows["annualisation"].drop_nulls())
        for key, rows in _groups(data.strips, ["venue", "symbol", "contract"]).items()
    }

    def ann_of(symbol: str, *series: tuple[str, str]) -> str:
        """APR/APY label of the strips behind a feature (one series) or spread (two)."""
        return _annualisation_label(set().union(*(stored.get((v, symbol, c), set()) for v, c in series)))

    def of(frame: pl.DataFrame, coin: str) -> pl.DataFrame:
        return frame.filter(pl.col("symbol") == coin)

    sections = []
    for coin in data.coins:
        keys = ["venue", "contract"]
        figures = [
            *(
                (_div_id("strip", coin, v, c), _strip_figure(_label(v, coin, c), rows))
                for (v, c), rows in _groups(of(data.strips, coin), keys).items()
            ),
            *(
                (_div_id("features", coin, v, c), _features_figure(_label(v, coin, c), rows, ann_of(coin, (v, c))))
                for (v, c), rows in _groups(of(data.features, coin), keys).items()
            ),
            *(
                (_div_id("pca", coin, v, c), _pca_figure(_label(v, coin, c), rows))
                for (v, c), rows in _groups(of(data.fits, coin), keys).items()
            ),
            *(
                (
                    _div_id("spread", coin, va, ca, "minus", vb, cb),
                    _spread_figure(_label(va, ca), _label(vb, cb), coin, rows, ann_of(coin, (va, ca), (vb, cb))),
                )
                for (va, ca, vb, cb), rows in _groups(
                    of(data.spreads, coin), ["venue_a", "contract_a", "venue_b", "contract_b"]
                ).items()
            ),
        ]
        sections.append(
            _Section(
                coin,
                "Per venue (and contract): the funding strip of roll snapshots over time (colour = "
                "annualised percent, b0 the newest 8h window), level and slope in annualised percent "
                "with their z-scores in standard deviations, walk-forward PCA loadings per fit "
                "(unitless) with the share of strip variance explained; then every cross-venue b0 "
                "spread with its mean, bands and signals. Holes in the data are left as gaps.",
                figures,
            )
        )
    return sections


def data_source(sources: pl.DataFrame) -> tuple[str, str]:
    """``(description, banner)`` of ``raw_prints.source``: counts per source, and a warning
    when all (or part) of the prints are simulated (sources named ``sim...``; rebuilt
    predictions such as ``reconstructed`` take the nature of the prints they came from)."""
    rows = sources.rows()
    description = ", ".join(f"{s} ({n:,} prints)" for s, n in rows) or "no prints"
    primary = [s for s, _ in rows if s not in DERIVED_SOURCES]
    simulated = [s for s in primary if SIMULATED.match(s)]
    if simulated and len(simulated) == len(primary):
        return description, SIM_BANNER
    if simulated:
        return description, f"Part of the data is simulated (source {', '.join(simulated)}) — not market data"
    return description, ""


def _listed(values: list[str]) -> str:
    """``a, b, c`` or the first ``MAX_LISTED`` then ``… (N in all)``."""
    if len(values) <= MAX_LISTED:
        return ", ".join(values) or "none"
    return f"{', '.join(values[:MAX_LISTED])}, … ({len(values)} in all)"


def _header_html(warehouse: Path, data: _ReportData) -> str:
    df = data.summary
    first = df["first_funding_time"].min()
    last = df["last_funding_time"].max()
    span = "no prints" if first is None else f"{_fmt_time(first)} to {_fmt_time(last)} UTC"
    source, banner = data_source(data.sources)
    facts = {
        "Generated from": str(warehouse),
        "Data source": source,
        "Funding times": span,
        "Venues": _listed(df["venue"].unique().sort().to_list()),
        "Coins": _listed(df["symbol"].unique().sort().to_list()),
        "Contracts": _listed(df["contract"].drop_nulls().unique().sort().to_list()),
        "Detail for": _listed(data.coins),
    }
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts.items())
    return (
        "<h1>Funding strip report</h1>"
        + (f'<p class="banner">{html.escape(banner)}</p>' if banner else "")
        + f"<dl>{items}</dl>"
        "<p>Rates are annualised and shown in percent (APR or APY as stored with each strip); "
        "times are UTC.</p>"
    )


def _sections_html(sections: list[_Section], css: str, embedded: bool) -> tuple[str, bool]:
    """HTML of ``sections`` and whether plotly.js has been embedded (once per page)."""
    parts: list[str] = []
    for section in sections:
        parts.append(
            f'<section class="{css}" id="{_div_id(css, section.heading)}">'
            f"<h2>{html.escape(section.heading)}</h2><p>{html.escape(section.note)}</p>{section.extra_html}"
        )
        if not section.figures and not section.extra_html:
            parts.append("<p><em>No rows in the warehouse for this section.</em></p>")
        for div_id, fig in section.figures:
            # plotly.js goes inline once, with the first figure; the report must open offline.
            parts.append(fig.to_html(full_html=False, include_plotlyjs=not embedded, div_id=div_id))
            embedded = True
        parts.append("</section>")
    return "\n".join(parts), embedded


PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dt { font-weight: 600; }
p.banner { background: #fff3cd; border: 2px solid #d39e00; padding: .6rem 1rem; font-weight: 700; }
table.summary, table.ranks { border-collapse: collapse; font-size: .85rem; }
table th, table td { border: 1px solid #ccc; padding: .2rem .5rem; }
table td { text-align: right; font-variant-numeric: tabular-nums; }
table td.text { text-align: left; }
section.coin, section.fixed { border-top: 3px solid #444; margin-top: 2rem; }
"""


def _page(warehouse: Path, data: _ReportData) -> str:
    universe, embedded = _sections_html(_universe_sections(data), "universe", False)
    coins, embedded = _sections_html(_coin_sections(data), "coin", embedded)
    # imported here: report_fixed builds on this module's helpers
    from .report_fixed import fixed_sections

    fixed, _ = _sections_html(
        fixed_sections(data.fixed, data.fixed_spreads, data.fixed_roll, data.coins), "fixed", embedded
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Funding strip report: {html.escape(warehouse.name)}</title>"
        f"<style>{PAGE_STYLE}</style></head><body>\n"
        f"{_header_html(warehouse, data)}\n"
        f"{universe}\n{coins}\n{fixed}\n"
        f"<h2>Summary</h2>{_summary_html(data.summary)}\n"
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


def build_report(warehouse: Path, out: Path, coins: Sequence[str] | None = None) -> Path:
    """Write one self-contained HTML report of ``warehouse`` to ``out`` and return ``out``.

    The page embeds plotly.js inline (opens offline) and holds: a header (source path, data
    source with a banner when the prints are simulated, funding-time range in UTC, venues,
    coins, contracts); for the whole universe a coins x venues heatmap of the latest roll
    b0 (robust, stated colour clip), the richest and cheapest coins, the cross-venue
    dispersion of b0 over time and the latest term structure b0..b7 of the short-listed
    coins; then one section per short-listed coin (strip heatmaps, level/slope with
    z-scores, PCA loadings by fit, spreads with bands); and the :func:`summary` table.

    ``coins`` is the short list (default :func:`default_coins`: the coins on the most
    venues, at most ``SHORT_LIST_SIZE``, BTC and ETH first when present); a coin absent from
    the warehouse is a :class:`FundingInputError`. Rates are annualised percent (APR/APY),
    times UTC. Long series are thinned to at most ``MAX_POINTS`` points per trace and holes
    longer than ``GAP_FACTOR`` median steps are drawn as gaps. Nothing is written if the
    warehouse or a table is missing (:class:`FundingInputError`).
    """
    warehouse, out = Path(warehouse), Path(out)
    data = _load(warehouse, coins)
    _write_atomic(out, _page(warehouse, data))
    return out
