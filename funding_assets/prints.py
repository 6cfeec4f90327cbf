"""The print model: one row per funding quote, the unit every source and the strip share.

A print is ``(venue, symbol, contract, ts, funding_time, rate, interval_hours, kind)``:

- ``symbol``: the canonical coin (``PEPE`` for ``1000PEPEUSDT``); ``contract``: ``usdt``,
  ``usdc`` or ``inverse`` (:mod:`funding_assets.venues`); ``venue_symbol``: the venue's own
  instrument name. A frame without ``contract`` gets each venue's main perpetual of the coin.

- ``ts``: when the venue quoted it (UTC, ms precision). For a realised print, its settlement
  time: ``ts = funding_time``, whenever it was published or fetched.
- ``published_at``: when the print was published or fetched, as the source stamped it (the
  original ``ts``: for a realised print often a second or, in a file, a day after
  settlement; for a predicted print ``published_at = ts``). Between two realised prints of
  one settlement (same ``ts``) the later published wins: a correction replaces the first
  print. Kept as given when the input already has it.
- ``funding_time``: when the native window it belongs to settles (UTC, snapped to the
  nearest minute: venues report ``08:00:00.018``).
- ``rate``: decimal fraction per native interval (0.0001 = 0.01 %), never percent,
  never annualised.
- ``interval_hours``: length of that native window (8 for most CEX symbols, 1 for
  Hyperliquid).
- ``kind``: ``"predicted"`` (live estimate of the open window) or ``"realised"``.

Timestamps are naive ``Datetime("ms")`` values meaning UTC, exactly as DuckDB stores
``TIMESTAMP``; timezone-aware inputs are converted to UTC on the way in.
"""

from __future__ import annotations

import polars as pl

from .errors import FundingInputError
from .venues import SPECS

PREDICTED = "predicted"
REALISED = "realised"
KINDS = (PREDICTED, REALISED)

MS = "ms"
TS = pl.Datetime(MS)

#: Columns of a print as the sources, the landing area and ``live_prints`` carry it.
PRINT_SCHEMA: dict[str, pl.DataType] = {
    "venue": pl.String(),
    "symbol": pl.String(),
    "contract": pl.String(),
    "venue_symbol": pl.String(),
    "ts": TS,
    "funding_time": TS,
    "rate": pl.Float64(),
    "interval_hours": pl.Float64(),
    "kind": pl.String(),
    "source": pl.String(),
}
#: A print as ``raw_prints`` stores it: normalised (:func:`normalise`), with ``published_at``
#: last. Sources and the live collector produce :data:`PRINT_SCHEMA` frames (their ``ts``
#: is the publication time); :func:`normalise` derives ``published_at`` from it.
STORED_PRINT_SCHEMA: dict[str, pl.DataType] = {**PRINT_SCHEMA, "published_at": TS}

#: Columns the strip engine needs; the rest are carried when present.
STRIP_COLUMNS = ("venue", "symbol", "contract", "ts", "funding_time", "rate", "interval_hours", "kind")

MINUTE_MS = 60_000


def empty_prints() -> pl.DataFrame:
    return pl.DataFrame(schema=PRINT_SCHEMA)


def from_epoch_ms(expr: pl.Expr) -> pl.Expr:
    """Epoch milliseconds -> naive UTC ``Datetime("ms")`` (polars would give microseconds)."""
    return pl.from_epoch(expr, time_unit=MS).cast(TS)


def as_utc_ms(expr: pl.Expr, dtype: pl.DataType, name: str) -> pl.Expr:
    """Convert a timestamp column (datetime of any unit/zone, or epoch ms integers) to naive UTC ms."""
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            expr = expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return expr.dt.cast_time_unit(MS)
    if dtype.is_integer():
        return from_epoch_ms(expr)
    raise FundingInputError(f"column {name!r} must be a datetime or epoch milliseconds, not {dtype}")


def snap_to_minute(expr: pl.Expr) -> pl.Expr:
    """Round a ms timestamp to the nearest whole minute (settlement jitter of ms to ~1.4 s)."""
    ms = expr.dt.epoch(MS)
    return from_epoch_ms(((ms + MINUTE_MS // 2) // MINUTE_MS) * MINUTE_MS)


def main_contracts(frame: pl.DataFrame) -> pl.Series:
    """Each row's venue's main perpetual of its coin (null for a venue this package does not know)."""
    pairs = frame.select(pl.col("venue").cast(pl.String), pl.col("symbol").cast(pl.String))
    lookup = {(v, c): (SPECS[v].default_contract(c) if v in SPECS else None) for v, c in pairs.unique().iter_rows()}
    return pl.Series("contract", [lookup[p] for p in pairs.iter_rows()], dtype=pl.String)


def normalise(prints: pl.DataFrame, *, default_venue: str | None = None) -> pl.DataFrame:
    """Validate and coerce a researcher's print frame to the print model.

    Adds ``interval_hours`` (8), ``kind`` (``realised``) and ``contract`` (the venue's main
    perpetual of the coin) when absent or null, converts timestamps
    to naive UTC ms and snaps ``funding_time`` to the minute. Keeps the quote time in
    ``published_at`` (unless given) and sets a realised print's ``ts`` to its settlement
    time, ``funding_time``. Idempotent. Raises
    :class:`FundingInputError` naming the missing column or bad value.
    """
    frame = prints
    if "venue" not in frame.columns:
        if default_venue is None:
            raise FundingInputError("prints: missing column 'venue'")
        frame = frame.with_columns(venue=pl.lit(default_venue))
    if "interval_hours" not in frame.columns:
        frame = frame.with_columns(interval_hours=pl.lit(8.0))
    if "kind" not in frame.columns:
        frame = frame.with_columns(kind=pl.lit(REALISED))
    if {"venue", "symbol"} <= set(frame.columns):
        if "contract" not in frame.columns:
            frame = frame.with_columns(contract=main_contracts(frame))
        elif frame["contract"].null_count():
            frame = frame.with_columns(pl.col("contract").cast(pl.String).fill_null(main_contracts(frame)))
    missing = [c for c in STRIP_COLUMNS if c not in frame.columns]
    if missing:
        raise FundingInputError(f"prints: missing column(s) {', '.join(missing)}")
    frame = frame.with_columns(
        as_utc_ms(pl.col("ts"), frame.schema["ts"], "ts").alias("ts"),
        as_utc_ms(pl.col("funding_time"), frame.schema["funding_time"], "funding_time").alias("funding_time"),
        pl.col("rate").cast(pl.Float64),
        pl.col("interval_hours").cast(pl.Float64),
        pl.col("venue").cast(pl.String),
        pl.col("symbol").cast(pl.String),
        pl.col("contract").cast(pl.String),
        pl.col("kind").cast(pl.String),
    ).with_columns(snap_to_minute(pl.col("funding_time")).alias("funding_time"))
    if "published_at" in frame.columns:
        published = as_utc_ms(pl.col("published_at"), frame.schema["published_at"], "published_at")
        frame = frame.with_columns(published_at=published.fill_null(pl.col("ts")))
    else:
        frame = frame.with_columns(published_at=pl.col("ts"))
    frame = frame.with_columns(
        ts=pl.when(pl.col("kind") == REALISED).then(pl.col("funding_time")).otherwise(pl.col("ts"))
    )
    bad_kind = frame.filter(~pl.col("kind").is_in(KINDS))
    if bad_kind.height:
        raise FundingInputError(f"prints: kind must be one of {KINDS}, got {bad_kind['kind'][0]!r}")
    bad_interval = frame.filter(~(pl.col("interval_hours") > 0))
    if bad_interval.height:
        raise FundingInputError(f"prints: interval_hours must be positive, got {bad_interval['interval_hours'][0]}")
    return frame
