"""The ``replay:<dir>`` source: a user's own funding files.

Layout ``<dir>/<venue>/*.csv`` or ``*.parquet`` with columns ``symbol, ts, funding_time,
rate`` and optionally ``interval_hours`` and ``kind``:

- ``symbol``: the coin (``BTC``) or the venue's own name (``BTCUSDT``, ``BTC-USDT-SWAP``).
- ``ts``, ``funding_time``: epoch milliseconds or ISO-8601 (UTC unless an offset is given).
- ``rate``: decimal fraction per native interval. A rate beyond +-0.05 is refused as
  "plainly percent": no venue settles 5 % per interval; a rate beyond the venue's cap
  (:data:`funding_assets.venues.RATE_CAPS`) is refused as impossible.
- ``interval_hours``: when absent, the venue's usual interval (8 h for Binance, Bybit and
  OKX; 1 h for Hyperliquid and Deribit). Files whose interval changes must carry it.
- ``kind``: ``realised`` (default) or ``predicted``.

Every problem raises :class:`FundingInputError` naming the file and, for bad values, the
line; nothing of the file is used.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from ..errors import FundingInputError
from ..prints import KINDS, PRINT_SCHEMA, REALISED, as_utc_ms, from_epoch_ms, snap_to_minute
from ..venues import DEFAULT_INTERVAL_HOURS, RATE_CAPS, coin_for_symbol, venue_symbol
from . import day_bounds

REQUIRED = ("symbol", "ts", "funding_time", "rate")
PERCENT_LIMIT = 0.05


def _line(index: int, path: Path) -> str:
    # CSV: a header line, then data lines from 2; parquet: rows from 1.
    return f"line {index + 2}" if path.suffix == ".csv" else f"row {index + 1}"


def _first_bad(frame: pl.DataFrame, bad: pl.Expr) -> int | None:
    hits = frame.with_row_index("_i").filter(bad)["_i"]
    return int(hits[0]) if hits.len() else None


def _timestamps(frame: pl.DataFrame, col: str, path: Path) -> pl.Series:
    dtype = frame.schema[col]
    if isinstance(dtype, pl.Datetime) or dtype.is_integer():
        return frame.select(as_utc_ms(pl.col(col), dtype, col)).to_series()
    text = pl.col(col).cast(pl.String).str.strip_chars()
    digits = text.str.contains(r"^\d+$")
    parsed = frame.select(
        pl.when(digits)
        .then(from_epoch_ms(text.cast(pl.Int64, strict=False)))
        .otherwise(
            text.str.to_datetime(strict=False, time_unit="ms", time_zone="UTC")
            .dt.replace_time_zone(None)
            .cast(pl.Datetime("ms"))
        )
        .alias(col)
    ).to_series()
    bad = _first_bad(frame.with_columns(parsed.alias("_p")), pl.col("_p").is_null())
    if bad is not None:
        raise FundingInputError(
            f"{path}: {_line(bad, path)}: cannot parse {col} {frame[col][bad]!r} "
            "(expected epoch milliseconds or ISO-8601 UTC)"
        )
    return parsed


def read_file(path: Path, venue: str) -> pl.DataFrame:
    """One replay file as prints, or :class:`FundingInputError` naming the file and line."""
    try:
        raw = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise FundingInputError(f"{path}: cannot read ({exc})") from None
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise FundingInputError(f"{path}: missing column(s) {', '.join(missing)}; need {', '.join(REQUIRED)}")
    if raw.height and raw["symbol"].null_count():
        raise FundingInputError(f"{path}: {_line(_first_bad(raw, pl.col('symbol').is_null()), path)}: empty symbol")
    ts = _timestamps(raw, "ts", path)
    funding_time = _timestamps(raw, "funding_time", path)
    rate = raw["rate"].cast(pl.Float64, strict=False)
    bad = _first_bad(raw.with_columns(rate.alias("_r")), pl.col("_r").is_null() | pl.col("_r").is_nan())
    if bad is not None:
        raise FundingInputError(f"{path}: {_line(bad, path)}: rate {raw['rate'][bad]!r} is not a number")
    bad = _first_bad(raw.with_columns(rate.alias("_r")), pl.col("_r").abs() > PERCENT_LIMIT)
    if bad is not None:
        raise FundingInputError(
            f"{path}: {_line(bad, path)}: rate {rate[bad]} is beyond +-{PERCENT_LIMIT} per interval; "
            "rates must be decimal fractions (0.0001 = 0.01 %), this looks like percent"
        )
    cap = RATE_CAPS[venue]
    bad = _first_bad(raw.with_columns(rate.alias("_r")), pl.col("_r").abs() > cap)
    if bad is not None:
        raise FundingInputError(
            f"{path}: {_line(bad, path)}: rate {rate[bad]} is beyond the {venue} cap of +-{cap} per interval"
        )
    interval = (
        raw["interval_hours"].cast(pl.Float64, strict=False)
        if "interval_hours" in raw.columns
        else pl.Series([DEFAULT_INTERVAL_HOURS[venue]] * raw.height, dtype=pl.Float64)
    )
    bad = _first_bad(raw.with_columns(interval.alias("_h")), ~(pl.col("_h") > 0) | pl.col("_h").is_null())
    if bad is not None:
        raise FundingInputError(f"{path}: {_line(bad, path)}: interval_hours must be a positive number of hours")
    kind = (
        raw["kind"].cast(pl.String).str.to_lowercase() if "kind" in raw.columns else pl.Series([REALISED] * raw.height)
    )
    bad = _first_bad(raw.with_columns(kind.alias("_k")), ~pl.col("_k").is_in(KINDS) | pl.col("_k").is_null())
    if bad is not None:
        raise FundingInputError(f"{path}: {_line(bad, path)}: kind must be one of {', '.join(KINDS)}")
    coins = [coin_for_symbol(venue, str(s)) for s in raw["symbol"].cast(pl.String)]
    if None in coins:
        bad = coins.index(None)
        raise FundingInputError(f"{path}: {_line(bad, path)}: unknown {venue} symbol {raw['symbol'][bad]!r}")
    return pl.DataFrame(
        {
            "venue": [venue] * raw.height,
            "symbol": coins,
            "venue_symbol": [venue_symbol(venue, c) for c in coins],
            "ts": ts,
            "funding_time": funding_time,
            "rate": rate,
            "interval_hours": interval,
            "kind": kind,
            "source": [f"replay:{path.name}"] * raw.height,
        },
        schema=PRINT_SCHEMA,
    ).with_columns(snap_to_minute(pl.col("funding_time")).alias("funding_time"))


class ReplaySource:
    """Reads a replay directory once per process (re-read when a file changes)."""

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise FundingInputError(f"FUNDING_ASSETS_SOURCE=replay:{folder}: not a directory")
        self.folder = folder
        self.name = f"replay:{folder}"
        self._cache: dict[str, tuple[tuple, pl.DataFrame]] = {}

    def _files(self, venue: str) -> list[Path]:
        folder = self.folder / venue
        if not folder.is_dir():
            raise FundingInputError(
                f"replay directory {self.folder} has no {venue}/ folder; add one or narrow "
                "FUNDING_ASSETS_VENUES / --venues to the venues you have files for"
            )
        return sorted(p for p in folder.iterdir() if p.suffix in (".csv", ".parquet"))

    def prints(self, venue: str) -> pl.DataFrame:
        files = self._files(venue)
        stamp = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
        cached = self._cache.get(venue)
        if cached is None or cached[0] != stamp:
            frames = [read_file(p, venue) for p in files]
            cached = (stamp, pl.concat(frames) if frames else pl.DataFrame(schema=PRINT_SCHEMA))
            self._cache[venue] = cached
        return cached[1]

    def check(self, venue: str) -> None:
        """Parse the venue's files now, so a bad file stops a backfill before any run."""
        self.prints(venue)

    def fetch(self, venue: str, coins: tuple[str, ...], start: dt.date, end: dt.date) -> pl.DataFrame:
        lo, hi = day_bounds(start, end)
        return self.prints(venue).filter(pl.col("symbol").is_in(coins) & (pl.col("ts") >= lo) & (pl.col("ts") < hi))
