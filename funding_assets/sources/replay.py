"""The ``replay:<dir>`` source: a user's own funding files.

Layout ``<dir>/<venue>/*.csv`` or ``*.parquet`` with columns ``symbol, ts, funding_time,
rate`` and optionally ``interval_hours`` and ``kind``:

- ``symbol``: the coin (``BTC``) or the venue's own name (``BTCUSDT``, ``BTC-USDT-SWAP``).
- ``ts``, ``funding_time``: any of

  - epoch **seconds, milliseconds, microseconds or nanoseconds** (integers, or decimals
    such as ``1704067200.5``). The unit is read per column from the magnitude: the
    plausible span 2015-01-01 .. 2100-01-01 is ``[1.42e9, 4.10e9)`` in seconds,
    ``[1.42e12, 4.10e12)`` in ms, ``[1.42e15, 4.10e15)`` in us and ``[1.42e18, 4.10e18)``
    in ns; the spans do not overlap, so every plausible value has exactly one unit. A value
    in none of them, or a column whose values are in different units, is refused;
  - ISO-8601 date-times (``T`` or a space between date and time, optional fraction):
    UTC unless they carry an offset (``Z``, ``+02:00``, ``+0200``, ``+02``), which is converted
    to UTC;
  - ISO-8601 dates (``2024-01-01``), read as midnight UTC (for ``funding_time`` that is
    the 00:00 settlement);
  - in parquet, also timestamp columns (naive = UTC) and date columns (midnight UTC).

  A timestamp before 2015 or in 2100 or later is refused: no perpetual swap settled
  before 2015, and such values come from a wrong unit or a typo.
- ``rate``: decimal fraction per native interval. A rate beyond +-0.05 is refused as
  "plainly percent": no venue settles 5 % per interval; a rate beyond the venue's cap
  (:data:`funding_assets.venues.RATE_CAPS`) is refused as impossible.
- ``interval_hours``: when absent, the venue's usual interval (8 h for Binance, Bybit and
  OKX; 1 h for Hyperliquid and Deribit). Files whose interval changes must carry it.
- ``kind``: ``realised`` (default) or ``predicted``.

A print given twice, in one file or in two files of a venue, is kept once (the first, in
file-name then line order) when both rows agree. "The same print" is the same symbol and
``funding_time`` for a realised print (one settlement has one rate) and the same symbol,
``ts`` and ``funding_time`` for a predicted one. Two such rows whose ``rate`` or
``interval_hours`` differ are refused, naming both rows.

Every problem raises :class:`FundingInputError` naming the file and, for bad values, the
line (CSV: the line in a text editor, the header being line 1; parquet: the 1-based row);
nothing of the venue's files is used, so nothing is written.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from ..errors import FundingInputError
from ..prints import KINDS, PRINT_SCHEMA, REALISED, TS, as_utc_ms, from_epoch_ms, normalise, snap_to_minute
from ..venues import DEFAULT_INTERVAL_HOURS, RATE_CAPS, coin_for_symbol, venue_symbol
from . import day_bounds

REQUIRED = ("symbol", "ts", "funding_time", "rate")
PERCENT_LIMIT = 0.05

#: Plausible timestamps: ``[EARLIEST, LATEST)``, UTC.
EARLIEST = dt.datetime(2015, 1, 1)
LATEST = dt.datetime(2100, 1, 1)
_EARLIEST_S = int((EARLIEST - dt.datetime(1970, 1, 1)).total_seconds())  # 1_420_070_400
_LATEST_S = int((LATEST - dt.datetime(1970, 1, 1)).total_seconds())  # 4_102_444_800
#: Epoch units, coarsest first: unit ``k`` counts ``1000**-k`` seconds.
EPOCH_UNITS = ("seconds", "milliseconds", "microseconds", "nanoseconds")

_NUMBER = r"^\d+(\.\d*)?$"
_DIGITS = r"^\d+$"
_EXPECTED = (
    "expected epoch seconds, milliseconds, microseconds or nanoseconds, an ISO-8601 date-time "
    "(UTC unless it carries an offset) or an ISO-8601 date"
)
# Helper columns of a frame being checked; dropped before a frame leaves this module.
_ROW, _FILE, _WINDOW, _INDEX = "_row", "_file", "_window", "_index"


def _line(index: int, path: Path) -> str:
    # CSV: a header line, then data lines from 2; parquet: rows from 1.
    return f"line {index + 2}" if path.suffix == ".csv" else f"row {index + 1}"


def _first_bad(frame: pl.DataFrame, bad: pl.Expr) -> int | None:
    hits = frame.with_row_index("_i").filter(bad)["_i"]
    return int(hits[0]) if hits.len() else None


def _year(values: pl.Series, index: int) -> str:
    year = values.dt.year()[index]
    return f"the year {year}" if year is not None else "no calendar year"


def _shown(values: pl.Series, index: int) -> str:
    """A cell as the user wrote it, or nothing for a parquet timestamp (one far out of range
    has no text form; the message gives its year)."""
    return "" if values.dtype.is_temporal() else f" {values.cast(pl.String)[index]!r}"


def _epoch_unit() -> pl.Expr:
    """Index into :data:`EPOCH_UNITS` of the unit in which ``_num`` is plausible, else null."""
    num, unit = pl.col("_num"), None
    for k in range(len(EPOCH_UNITS)):
        plausible = (num >= _EARLIEST_S * 1000**k) & (num < _LATEST_S * 1000**k)
        unit = (pl.when if unit is None else unit.when)(plausible).then(pl.lit(k, dtype=pl.Int8))
    return unit.otherwise(None)


def _epoch_ms(values: pl.Series, num: pl.Series, exact: pl.Series, col: str, path: Path) -> pl.Series:
    """Epoch numbers (``num`` as Float64, ``exact`` as Int64 where integral, both null where a
    row is not a number) -> epoch ms, the unit detected for the whole column."""
    frame = pl.DataFrame({"_num": num, "_exact": exact}).with_columns(_unit=_epoch_unit())
    bad = _first_bad(frame, pl.col("_num").is_not_null() & pl.col("_unit").is_null())
    if bad is not None:
        text = values.cast(pl.String)[bad]
        hint = " (a compact date? write it as 2024-01-01)" if len(text) == 8 and text.isdigit() else ""
        raise FundingInputError(
            f"{path}: {_line(bad, path)}: {col}{_shown(values, bad)} is not a plausible epoch timestamp: "
            f"in seconds, milliseconds, microseconds or nanoseconds it falls before {EARLIEST:%Y} "
            f"or in {LATEST:%Y} or later{hint}"
        )
    first = _first_bad(frame, pl.col("_unit").is_not_null())
    if first is None:
        return pl.repeat(None, len(values), dtype=pl.Int64, eager=True).alias(col)
    unit = int(frame["_unit"][first])
    bad = _first_bad(frame, pl.col("_unit") != unit)
    if bad is not None:
        raise FundingInputError(
            f"{path}: {_line(bad, path)}: {col}{_shown(values, bad)} is epoch {EPOCH_UNITS[frame['_unit'][bad]]} "
            f"but {_line(first, path)} ({_shown(values, first).strip()}) is epoch {EPOCH_UNITS[unit]}; "
            "a column must use one unit"
        )
    # exact integers: integer arithmetic (ns do not fit a float); decimals: rounded to the ms.
    mul, div = (1000, 1) if unit == 0 else (1, 1000 ** (unit - 1))
    return frame.select(
        pl.when(pl.col("_exact").is_not_null())
        .then(pl.col("_exact") * mul // div)
        .otherwise((pl.col("_num") * mul / div).round(0).cast(pl.Int64))
        .alias(col)
    ).to_series()


#: ISO-8601 shapes, the usual first; ``%#z`` takes ``Z``, ``+02``, ``+0200`` and ``+02:00``.
ISO_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d", "%Y-%m-%dT%H:%M%#z", "%Y-%m-%dT%H:%M")


def _iso(text: pl.Series) -> pl.Series:
    """ISO-8601 text -> naive UTC ms, null where it is none of :data:`ISO_FORMATS`.

    Each shape is tried on the rows no earlier shape read, so a column of one shape is
    parsed once.
    """
    iso = text.str.replace(" ", "T", literal=True, n=1)  # "2024-01-01 08:00" is read like "…T08:00"
    parsed = pl.repeat(None, len(text), dtype=TS, eager=True).alias(text.name)
    todo = pl.Series(range(len(text)), dtype=pl.UInt32)
    for fmt in ISO_FORMATS:
        got = iso.gather(todo)
        if fmt == "%Y-%m-%d":
            got = got.str.to_date(fmt, strict=False).cast(TS)
        else:
            got = got.str.to_datetime(fmt, strict=False, time_unit="ms")
            if "z" in fmt:
                got = got.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        parsed = parsed.scatter(todo.filter(got.is_not_null()), got.drop_nulls())
        todo = todo.filter(got.is_null())
        if todo.is_empty():
            break
    return parsed


def _timestamps(frame: pl.DataFrame, col: str, path: Path) -> pl.Series:
    """A timestamp column as naive UTC ``Datetime("ms")``, or :class:`FundingInputError`."""
    dtype = frame.schema[col]
    values = frame[col]
    if isinstance(dtype, (pl.String, pl.Categorical, pl.Enum)):
        values = values.cast(pl.String).str.strip_chars()
    blank = pl.col(col).is_null() | (pl.col(col) == "") if values.dtype == pl.String else pl.col(col).is_null()
    bad = _first_bad(values.to_frame(), blank)
    if bad is not None:
        raise FundingInputError(f"{path}: {_line(bad, path)}: {col} is empty")
    if isinstance(dtype, pl.Datetime):
        parsed = values.to_frame().select(as_utc_ms(pl.col(col), dtype, col)).to_series()
    elif isinstance(dtype, pl.Date):
        parsed = values.cast(TS)
    elif dtype.is_integer():
        ms = _epoch_ms(values, values.cast(pl.Float64), values.cast(pl.Int64, strict=False), col, path)
        parsed = ms.to_frame().select(from_epoch_ms(pl.col(col))).to_series()
    elif dtype.is_float():
        num = values.to_frame().select(pl.when(pl.col(col).is_finite()).then(pl.col(col))).to_series()
        ms = _epoch_ms(values, num, pl.repeat(None, len(values), dtype=pl.Int64, eager=True), col, path)
        parsed = ms.to_frame().select(from_epoch_ms(pl.col(col))).to_series()
    elif values.dtype == pl.String:
        text = pl.col(col)
        numbers = values.to_frame().select(
            _num=pl.when(text.str.contains(_NUMBER)).then(text.cast(pl.Float64, strict=False)),
            _exact=pl.when(text.str.contains(_DIGITS)).then(text.cast(pl.Int64, strict=False)),
        )
        epochs = len(values) - numbers["_num"].null_count()
        # the other shape is parsed only when present: most files are all one or the other
        ms = _epoch_ms(values, numbers["_num"], numbers["_exact"], col, path) if epochs else None
        iso = _iso(values) if epochs < len(values) else None
        if iso is None:
            parsed = ms.to_frame().select(from_epoch_ms(pl.col(col))).to_series()
        elif ms is None:
            parsed = iso
        else:
            parsed = (
                pl.DataFrame({"_ms": ms, "_iso": iso})
                .select(pl.coalesce(from_epoch_ms(pl.col("_ms")), pl.col("_iso")))
                .to_series()
            )
    else:
        raise FundingInputError(
            f"{path}: column {col} has type {dtype}; {_EXPECTED}, or a parquet timestamp or date column"
        )
    checked = parsed.to_frame("_p")
    bad = _first_bad(checked, pl.col("_p").is_null())
    if bad is not None:
        raise FundingInputError(f"{path}: {_line(bad, path)}: cannot parse {col}{_shown(values, bad)} ({_EXPECTED})")
    bad = _first_bad(checked, (pl.col("_p") < EARLIEST) | (pl.col("_p") >= LATEST))
    if bad is not None:
        raise FundingInputError(
            f"{path}: {_line(bad, path)}: {col}{_shown(values, bad)} is in {_year(parsed, bad)}; "
            f"timestamps before {EARLIEST:%Y} or in {LATEST:%Y} or later are refused"
        )
    return parsed.alias(col)


def read_file(path: Path, venue: str) -> pl.DataFrame:
    """One replay file as prints, or :class:`FundingInputError` naming the file and line."""
    return _drop_duplicates(_read(path, venue).with_columns(pl.lit(0, dtype=pl.UInt32).alias(_FILE)), [path])


def _read(path: Path, venue: str) -> pl.DataFrame:
    """One replay file as prints plus ``_row`` (0-based data row), read and checked once."""
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
    ).with_columns(snap_to_minute(pl.col("funding_time")), pl.int_range(raw.height, dtype=pl.UInt32).alias(_ROW))


def _where(files: list[Path], row: dict) -> str:
    path = files[row[_FILE]]
    return f"{path}: {_line(row[_ROW], path)}"


def _drop_duplicates(frame: pl.DataFrame, files: list[Path]) -> pl.DataFrame:
    """Keep one of each print given twice; refuse two rows of one print that disagree.

    ``frame`` carries ``_file`` (index into ``files``) and ``_row``; both are dropped. A
    realised print is one per (symbol, funding_time), a predicted one per (symbol, ts,
    funding_time): ``_window`` is ``funding_time`` resp. ``ts`` so one key serves both.
    """
    key = ["symbol", "kind", "funding_time", _WINDOW]
    window = pl.when(pl.col("kind") == REALISED).then(pl.col("funding_time")).otherwise(pl.col("ts"))
    # Candidates by a hash of the key (a u64 per row, far lighter than hashing the rows
    # themselves); the exact comparison runs on the candidates only.
    candidates = (
        frame.with_row_index(_INDEX).with_columns(window.alias(_WINDOW)).filter(pl.struct(key).hash().is_duplicated())
    )
    if candidates.height == 0:  # the usual case: no copy of the frame
        return frame.drop(_FILE, _ROW)
    first = pl.struct([*key, "rate", "interval_hours"]).is_first_distinct()
    kept = candidates.filter(first)
    clash = kept.filter(pl.len().over(key) > 1)
    if clash.height:
        a = clash.row(0, named=True)
        b = clash.filter(pl.all_horizontal([pl.col(k) == a[k] for k in key])).row(1, named=True)
        what = f"{a['kind']} {a['symbol']} prints for funding_time {a['funding_time']:%Y-%m-%d %H:%M}"
        if a["kind"] != REALISED:
            what += f", ts {a['ts'].isoformat(sep=' ', timespec='milliseconds')}"
        field = "rate" if a["rate"] != b["rate"] else "interval_hours"
        here, there = _where(files, a), _where(files, b)
        if files[a[_FILE]] == files[b[_FILE]]:
            there = there.removeprefix(f"{files[b[_FILE]]}: ")
        raise FundingInputError(
            f"{here} and {there}: two {what} disagree ({field} {a[field]} vs {b[field]}); "
            "remove one (rows that agree are kept once)"
        )
    again = candidates.filter(~first)[_INDEX]
    return frame.filter(~pl.int_range(pl.len(), dtype=pl.UInt32).is_in(again.implode())).drop(_FILE, _ROW)


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
            frames = [
                _read(p, venue).with_columns(pl.lit(i, dtype=pl.UInt32).alias(_FILE)) for i, p in enumerate(files)
            ]
            prints = _drop_duplicates(pl.concat(frames), files) if frames else pl.DataFrame(schema=PRINT_SCHEMA)
            # a realised print is filed under its settlement time, whenever the file stamped it
            prints = normalise(prints)
            cached = (stamp, prints)
            self._cache[venue] = cached
        return cached[1]

    def check(self, venue: str) -> None:
        """Parse the venue's files now, so a bad file stops a backfill before any run."""
        self.prints(venue)

    def fetch(self, venue: str, coins: tuple[str, ...], start: dt.date, end: dt.date) -> pl.DataFrame:
        lo, hi = day_bounds(start, end)
        return self.prints(venue).filter(pl.col("symbol").is_in(coins) & (pl.col("ts") >= lo) & (pl.col("ts") < hi))
