"""The ``replay:<dir>`` source: a user's own funding files.

Layout ``<dir>/<venue>/<files>``: every file directly in the venue folder whose name ends in
``.csv``, ``.csv.gz`` or ``.parquet``, in any case (``.CSV``, ``.Csv.GZ``), is read, in
file-name order. Any other entry (a ``.txt``, a ``.zip``, a sub-folder; hidden names
starting with ``.`` are passed over silently) is not read: it is named in an
:class:`UnreadFilesWarning` and listed in :attr:`ReplaySource.unread`. A venue folder with
nothing to read (empty, only other files, or files holding a header and no row) is refused
naming the folder and what it holds. A symlink (venue folder or file) that resolves outside
``<dir>`` is refused naming the link and its target; one staying inside is followed.

Columns ``symbol, ts, funding_time, rate`` and optionally ``contract``, ``interval_hours`` and
``kind``:

- ``symbol``: the coin (``BTC``, ``1000PEPE``) or the venue's own instrument name
  (``BTCUSDT``, ``BTCUSD_PERP``, ``1000PEPEUSDT``, ``BTC-USDT-SWAP``, ``kPEPE``), in any
  case but Hyperliquid's lower-case ``k`` (1000) prefix.
  Prints carry the canonical coin (``PEPE``) in ``symbol`` and the venue's name in
  ``venue_symbol`` (the name a bare coin has on the venue for its contract).
- ``contract``: ``usdt``, ``usdc`` or ``inverse`` (any case), one the venue lists
  (:attr:`funding_assets.venues.VenueSpec.contracts`). When absent, a venue name says it
  (``BTCUSD_PERP`` is inverse) and a bare coin is the venue's main perpetual of it
  (:meth:`~funding_assets.venues.VenueSpec.default_contract`). A contract other than the
  one a venue name says is refused. One file may hold several coins and contracts: each
  (coin, contract) is its own series (:meth:`ReplaySource.instruments`).
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
file-name then line order) when both rows agree. "The same print" is the same coin, contract
and ``funding_time`` for a realised print (one settlement has one rate) and the same coin,
contract, ``ts`` and ``funding_time`` for a predicted one. Two such rows whose ``rate`` or
``interval_hours`` differ are refused, naming both rows.

Every problem raises :class:`FundingInputError` naming the file and, for bad values, the
line (CSV: the line in a text editor, the header being line 1; parquet: the 1-based row);
nothing of the venue's files is used, so nothing is written.

Memory: a file is read once per process (re-read when it changes), a block of
:data:`CSV_BLOCK_BYTES` or :data:`PARQUET_BATCH_ROWS` at a time; each block is checked,
normalised and spilled to a parquet cache in a temporary folder. A range is then read from
that cache with its bounds pushed down, so a backfill holds the prints of its range plus
a block, not the file. Conflicting duplicates are looked for over the whole venue by a hash
of each row's print key (8 bytes a row), whole months of about :data:`CHECK_SLICE_ROWS` rows
at a time (two rows of one print share their ``ts``, so they always meet in one slice).
"""

from __future__ import annotations

import atexit
import dataclasses
import datetime as dt
import gzip
import io
import shutil
import tempfile
import threading
import warnings
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

import polars as pl

from ..errors import FundingInputError
from ..instruments import Instrument
from ..prints import (
    KINDS,
    PRINT_SCHEMA,
    REALISED,
    STORED_PRINT_SCHEMA,
    TS,
    as_utc_ms,
    from_epoch_ms,
    normalise,
    snap_to_minute,
)
from ..venues import DEFAULT_INTERVAL_HOURS, INVERSE, RATE_CAPS, check_coin, parse_symbol, spec
from . import day_bounds

REQUIRED = ("symbol", "ts", "funding_time", "rate")
PERCENT_LIMIT = 0.05
#: File names read (compared in lower case); anything else in a venue folder is named, not read.
READABLE = (".csv", ".csv.gz", ".parquet")
_READABLE = ", ".join(f"*{s}" for s in READABLE)
#: Bytes of CSV text parsed at a time (cut at a line end), and parquet rows read at a time.
CSV_BLOCK_BYTES = 4 << 20
PARQUET_BATCH_ROWS = 250_000
#: Rows whose print keys are compared at a time when a venue is checked for conflicting duplicates.
CHECK_SLICE_ROWS = 1_000_000

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


class UnreadFilesWarning(UserWarning):
    """Entries of a venue folder that are not replay files and so are not read."""


def readable(path: Path) -> bool:
    """Whether a venue folder entry's name is one the source reads (any case)."""
    return path.name.lower().endswith(READABLE)


def _is_csv(path: Path) -> bool:
    return path.name.lower().endswith((".csv", ".csv.gz"))


def _line(index: int, path: Path) -> str:
    # CSV: a header line, then data lines from 2; parquet: rows from 1.
    return f"line {index + 2}" if _is_csv(path) else f"row {index + 1}"


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


# --------------------------------------------------------------------------- one file, block by block


def _csv_blocks(path: Path) -> Iterator[pl.DataFrame]:
    """A CSV file (plain or gzip) as text frames of about :data:`CSV_BLOCK_BYTES` each.

    Each block is cut at a line end outside quotes and parsed under the file's header line,
    so a block is the same frame the whole file would give for those lines.
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as f:
        header = f.readline()
        if not header.strip():  # an empty file: no header, no rows
            return
        carry, parsed = b"", False
        while True:
            block = f.read(CSV_BLOCK_BYTES)
            text = carry + block
            cut = _line_end(text) if block else len(text)
            if cut or not parsed:
                yield pl.read_csv(io.BytesIO(header + text[:cut]), infer_schema=False)
                parsed = True
            carry = text[cut:]
            if not block:
                return


def _line_end(text: bytes) -> int:
    """Length of the longest prefix of ``text`` that ends a line outside quotes (0 if none)."""
    cut = text.rfind(b"\n") + 1
    while cut and text.count(b'"', 0, cut) % 2:  # inside a quoted field: an earlier line end
        cut = text.rfind(b"\n", 0, cut - 1) + 1
    return cut


def _parquet_batches(path: Path) -> Iterator[pl.DataFrame]:
    """A parquet file :data:`PARQUET_BATCH_ROWS` rows at a time (at least one, maybe empty, frame)."""
    scan = pl.scan_parquet(path)
    rows = scan.select(pl.len()).collect().item()
    for start in range(0, max(rows, 1), PARQUET_BATCH_ROWS):
        yield scan.slice(start, PARQUET_BATCH_ROWS).collect()


def _raw_batches(path: Path) -> Iterator[pl.DataFrame]:
    """The file's rows as written (CSV: all text), a bounded number at a time."""
    blocks = _csv_blocks(path) if _is_csv(path) else _parquet_batches(path)
    while True:
        try:
            raw = next(blocks)
        except StopIteration:
            return
        except (pl.exceptions.PolarsError, OSError, EOFError) as exc:
            raise FundingInputError(f"{path}: cannot read ({exc})") from None
        yield raw


_SEP = "\x00"  # joins a row's symbol and contract cell into one lookup key


def _resolve(venue: str, symbol: str, contract: str) -> tuple[str, str, str]:
    """(coin, contract, venue name) of a file's ``symbol`` and ``contract`` cell (empty: none
    given); ``ValueError`` saying what is wrong. A venue instrument name says its contract; a
    bare coin is the venue's main perpetual of it unless ``contract`` says otherwise."""
    facts = spec(venue)
    named = parse_symbol(venue, symbol)
    if named is None:
        raise ValueError(f"unknown {venue} symbol {symbol!r}")
    text = symbol.strip()
    listed = facts.parse(text) or facts.parse(text.upper())
    if contract and listed is not None and listed.contract != contract:
        raise ValueError(f"symbol {symbol!r} is {venue}'s {listed.contract} perpetual but contract is {contract!r}")
    contract = contract or named.contract
    return named.coin, contract, facts.name_of(named.coin, contract, named.multiplier)


class _FileCheck:
    """Checks one file's rows block by block and turns them into prints.

    Line numbers run on across blocks, and an epoch column keeps the unit of its first
    epoch value in every block.
    """

    def __init__(self, path: Path, venue: str) -> None:
        self.path, self.venue = path, venue
        self.offset = 0  # data rows in the blocks before this one
        self.units: dict[str, tuple[int, str, str]] = {}  # column -> (unit, line, cell) of its first epoch

    def at(self, index: int) -> str:
        """``<file>: line N`` for row ``index`` of the current block."""
        return f"{self.path}: {_line(self.offset + index, self.path)}"

    def prints(self, raw: pl.DataFrame) -> pl.DataFrame:
        """One block as prints plus ``_row`` (0-based data row in the file)."""
        missing = [c for c in REQUIRED if c not in raw.columns]
        if missing:
            raise FundingInputError(f"{self.path}: missing column(s) {', '.join(missing)}; need {', '.join(REQUIRED)}")
        frame = self._prints(raw) if raw.height else pl.DataFrame(schema=PRINT_SCHEMA)
        frame = frame.with_columns(pl.int_range(raw.height, dtype=pl.UInt32).add(self.offset).alias(_ROW))
        self.offset += raw.height
        return frame

    def _prints(self, raw: pl.DataFrame) -> pl.DataFrame:
        venue = self.venue
        if raw["symbol"].null_count():
            raise FundingInputError(f"{self.at(_first_bad(raw, pl.col('symbol').is_null()))}: empty symbol")
        ts = self._timestamps(raw, "ts")
        funding_time = self._timestamps(raw, "funding_time")
        rate = raw["rate"].cast(pl.Float64, strict=False)
        checked = raw.with_columns(rate.alias("_r"))
        bad = _first_bad(checked, pl.col("_r").is_null() | pl.col("_r").is_nan())
        if bad is not None:
            raise FundingInputError(f"{self.at(bad)}: rate {raw['rate'][bad]!r} is not a number")
        bad = _first_bad(checked, pl.col("_r").abs() > PERCENT_LIMIT)
        if bad is not None:
            raise FundingInputError(
                f"{self.at(bad)}: rate {rate[bad]} is beyond +-{PERCENT_LIMIT} per interval; "
                "rates must be decimal fractions (0.0001 = 0.01 %), this looks like percent"
            )
        cap = RATE_CAPS[venue]
        bad = _first_bad(checked, pl.col("_r").abs() > cap)
        if bad is not None:
            raise FundingInputError(
                f"{self.at(bad)}: rate {rate[bad]} is beyond the {venue} cap of +-{cap} per interval"
            )
        interval = (
            raw["interval_hours"].cast(pl.Float64, strict=False)
            if "interval_hours" in raw.columns
            else pl.repeat(DEFAULT_INTERVAL_HOURS[venue], raw.height, dtype=pl.Float64, eager=True)
        )
        bad = _first_bad(raw.with_columns(interval.alias("_h")), ~(pl.col("_h") > 0) | pl.col("_h").is_null())
        if bad is not None:
            raise FundingInputError(f"{self.at(bad)}: interval_hours must be a positive number of hours")
        kind = (
            raw["kind"].cast(pl.String).str.to_lowercase()
            if "kind" in raw.columns
            else pl.repeat(REALISED, raw.height, dtype=pl.String, eager=True)
        )
        bad = _first_bad(raw.with_columns(kind.alias("_k")), ~pl.col("_k").is_in(KINDS) | pl.col("_k").is_null())
        if bad is not None:
            raise FundingInputError(f"{self.at(bad)}: kind must be one of {', '.join(KINDS)}")
        coins, contracts, names = self._names(raw)
        return (
            pl.DataFrame(
                {
                    "symbol": coins,
                    "contract": contracts,
                    "venue_symbol": names,
                    "ts": ts,
                    "funding_time": funding_time,
                    "rate": rate,
                    "interval_hours": interval,
                    "kind": kind,
                }
            )
            .with_columns(venue=pl.lit(venue), source=pl.lit(f"replay:{self.path.name}"))
            .select(pl.col(c).cast(t) for c, t in PRINT_SCHEMA.items())
            .with_columns(snap_to_minute(pl.col("funding_time")))
        )

    def _names(self, raw: pl.DataFrame) -> tuple[pl.Series, pl.Series, pl.Series]:
        """Each row's canonical coin, contract and venue name, from ``symbol`` and the optional
        ``contract`` column (module docstring), each distinct pair resolved once."""
        venue, contracts = self.venue, spec(self.venue).contracts
        if "contract" in raw.columns:
            written = raw["contract"].cast(pl.String)
            given = written.str.strip_chars().str.to_lowercase()
            bad = _first_bad(given.to_frame("_c"), ~pl.col("_c").is_in(contracts) | pl.col("_c").is_null())
            if bad is not None:
                raise FundingInputError(
                    f"{self.at(bad)}: contract {written[bad]!r} is not one of {venue}'s contract types "
                    f"({', '.join(contracts)})"
                )
        else:
            given = pl.repeat("", raw.height, dtype=pl.String, eager=True)
        keys = pl.DataFrame({"_s": raw["symbol"].cast(pl.String), "_c": given})
        keys = keys.select(pl.concat_str("_s", "_c", separator=_SEP).alias("_k"))
        resolved: dict[str, tuple[str, str, str]] = {}
        for key in keys["_k"].unique(maintain_order=True).to_list():
            try:
                resolved[key] = _resolve(venue, *key.rsplit(_SEP, 1))
            except ValueError as exc:
                raise FundingInputError(f"{self.at(_first_bad(keys, pl.col('_k') == key))}: {exc}") from None
        return tuple(
            keys["_k"].replace_strict({k: names[i] for k, names in resolved.items()}, return_dtype=pl.String)
            for i in range(3)
        )

    def _epoch_ms(self, values: pl.Series, num: pl.Series, exact: pl.Series, col: str) -> pl.Series:
        """Epoch numbers (``num`` as Float64, ``exact`` as Int64 where integral, both null where a
        row is not a number) -> epoch ms, in the unit the column's first epoch value has."""
        frame = pl.DataFrame({"_num": num, "_exact": exact}).with_columns(_unit=_epoch_unit())
        bad = _first_bad(frame, pl.col("_num").is_not_null() & pl.col("_unit").is_null())
        if bad is not None:
            text = values.cast(pl.String)[bad]
            hint = " (a compact date? write it as 2024-01-01)" if len(text) == 8 and text.isdigit() else ""
            raise FundingInputError(
                f"{self.at(bad)}: {col}{_shown(values, bad)} is not a plausible epoch timestamp: "
                f"in seconds, milliseconds, microseconds or nanoseconds it falls before {EARLIEST:%Y} "
                f"or in {LATEST:%Y} or later{hint}"
            )
        if col not in self.units:
            first = _first_bad(frame, pl.col("_unit").is_not_null())
            if first is None:
                return pl.repeat(None, len(values), dtype=pl.Int64, eager=True).alias(col)
            where = _line(self.offset + first, self.path)
            self.units[col] = (int(frame["_unit"][first]), where, _shown(values, first).strip())
        unit, where, shown = self.units[col]
        bad = _first_bad(frame, pl.col("_unit") != unit)
        if bad is not None:
            raise FundingInputError(
                f"{self.at(bad)}: {col}{_shown(values, bad)} is epoch {EPOCH_UNITS[frame['_unit'][bad]]} "
                f"but {where} ({shown}) is epoch {EPOCH_UNITS[unit]}; a column must use one unit"
            )
        # exact integers: integer arithmetic (ns do not fit a float); decimals: rounded to the ms.
        mul, div = (1000, 1) if unit == 0 else (1, 1000 ** (unit - 1))
        return frame.select(
            pl.when(pl.col("_exact").is_not_null())
            .then(pl.col("_exact") * mul // div)
            .otherwise((pl.col("_num") * mul / div).round(0).cast(pl.Int64))
            .alias(col)
        ).to_series()

    def _timestamps(self, frame: pl.DataFrame, col: str) -> pl.Series:
        """A timestamp column as naive UTC ``Datetime("ms")``, or :class:`FundingInputError`."""
        dtype = frame.schema[col]
        values = frame[col]
        if isinstance(dtype, (pl.String, pl.Categorical, pl.Enum)):
            values = values.cast(pl.String).str.strip_chars()
        blank = pl.col(col).is_null() | (pl.col(col) == "") if values.dtype == pl.String else pl.col(col).is_null()
        bad = _first_bad(values.to_frame(), blank)
        if bad is not None:
            raise FundingInputError(f"{self.at(bad)}: {col} is empty")
        no_exact = pl.repeat(None, len(values), dtype=pl.Int64, eager=True)
        if isinstance(dtype, pl.Datetime):
            parsed = values.to_frame().select(as_utc_ms(pl.col(col), dtype, col)).to_series()
        elif isinstance(dtype, pl.Date):
            parsed = values.cast(TS)
        elif dtype.is_integer():
            ms = self._epoch_ms(values, values.cast(pl.Float64), values.cast(pl.Int64, strict=False), col)
            parsed = ms.to_frame().select(from_epoch_ms(pl.col(col))).to_series()
        elif dtype.is_float():
            num = values.to_frame().select(pl.when(pl.col(col).is_finite()).then(pl.col(col))).to_series()
            ms = self._epoch_ms(values, num, no_exact, col)
            parsed = ms.to_frame().select(from_epoch_ms(pl.col(col))).to_series()
        elif values.dtype == pl.String:
            text = pl.col(col)
            numbers = values.to_frame().select(
                _num=pl.when(text.str.contains(_NUMBER)).then(text.cast(pl.Float64, strict=False)),
                _exact=pl.when(text.str.contains(_DIGITS)).then(text.cast(pl.Int64, strict=False)),
            )
            epochs = len(values) - numbers["_num"].null_count()
            # the other shape is parsed only when present: most files are all one or the other
            ms = self._epoch_ms(values, numbers["_num"], numbers["_exact"], col) if epochs else None
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
                f"{self.path}: column {col} has type {dtype}; {_EXPECTED}, or a parquet timestamp or date column"
            )
        checked = parsed.to_frame("_p")
        bad = _first_bad(checked, pl.col("_p").is_null())
        if bad is not None:
            raise FundingInputError(f"{self.at(bad)}: cannot parse {col}{_shown(values, bad)} ({_EXPECTED})")
        bad = _first_bad(checked, (pl.col("_p") < EARLIEST) | (pl.col("_p") >= LATEST))
        if bad is not None:
            raise FundingInputError(
                f"{self.at(bad)}: {col}{_shown(values, bad)} is in {_year(parsed, bad)}; "
                f"timestamps before {EARLIEST:%Y} or in {LATEST:%Y} or later are refused"
            )
        return parsed.alias(col)


def _file_prints(path: Path, venue: str) -> Iterator[pl.DataFrame]:
    """A file's prints plus ``_row``, block by block, each checked; at least one frame
    unless the file is empty."""
    check = _FileCheck(path, venue)
    for raw in _raw_batches(path):
        yield check.prints(raw)


def read_file(path: Path, venue: str) -> pl.DataFrame:
    """One replay file as prints, or :class:`FundingInputError` naming the file and line.

    Reads the whole file into memory: for notebooks and small files; the source itself
    reads through a per-file cache (:class:`ReplaySource`).
    """
    frames = list(_file_prints(path, venue)) or [pl.DataFrame(schema={**PRINT_SCHEMA, _ROW: pl.UInt32})]
    return _drop_duplicates(pl.concat(frames).with_columns(pl.lit(0, dtype=pl.UInt32).alias(_FILE)), [path])


def _where(files: list[Path], row: dict) -> str:
    path = files[row[_FILE]]
    return f"{path}: {_line(row[_ROW], path)}"


#: Which print a row is: a realised print is one per (symbol, contract, funding_time), a
#: predicted one per (symbol, contract, ts, funding_time); ``_window`` is ``funding_time``
#: resp. ``ts`` so one key serves both.
_KEY = ["symbol", "contract", "kind", "funding_time", _WINDOW]
_WINDOW_EXPR = pl.when(pl.col("kind") == REALISED).then(pl.col("funding_time")).otherwise(pl.col("ts"))


def _key_hash() -> pl.Expr:
    """A u64 hash of a row's print key: far lighter to compare than the rows themselves."""
    return pl.struct(*_KEY[:-1], _WINDOW_EXPR.alias(_WINDOW)).hash()


def _repeated(hashes: pl.Series) -> pl.Series:
    """The values that occur more than once (by sorting: a hash table of every row would
    cost ~10x the column)."""
    ordered = hashes.sort()
    return ordered.filter(ordered == ordered.shift(1)).unique()


def _drop_duplicates(frame: pl.DataFrame, files: list[Path]) -> pl.DataFrame:
    """Keep one of each print given twice; refuse two rows of one print that disagree.

    ``frame`` carries ``_file`` (index into ``files``) and ``_row``, in that order; both are
    dropped. The exact comparison runs on the rows whose key hash repeats only.
    """
    hashes = frame.select(_key_hash()).to_series()
    twice = _repeated(hashes)
    if twice.is_empty():  # the usual case: no copy of the frame
        return frame.drop(_FILE, _ROW)
    candidates = (
        frame.with_row_index(_INDEX).filter(hashes.is_in(twice.implode())).with_columns(_WINDOW_EXPR.alias(_WINDOW))
    )
    first = pl.struct([*_KEY, "rate", "interval_hours"]).is_first_distinct()
    kept = candidates.filter(first)
    clash = kept.filter(pl.len().over(_KEY) > 1)
    if clash.height:
        a = clash.row(0, named=True)
        b = clash.filter(pl.all_horizontal([pl.col(k) == a[k] for k in _KEY])).row(1, named=True)
        what = f"{a['kind']} {a['symbol']} {a['contract']} prints for funding_time {a['funding_time']:%Y-%m-%d %H:%M}"
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


# --------------------------------------------------------------------------- the per-process file cache


@dataclasses.dataclass(frozen=True)
class _Parsed:
    """One file as checked prints, normalised, spilled to parquet in file order."""

    stamp: tuple  # (resolved path, mtime ns, size, inode): a change means a re-read
    parts: tuple[Path, ...]  # one parquet file per block that has rows
    rows: int
    months: dict[dt.datetime, int]  # rows per calendar month of the normalised ts
    series: dict[tuple[str, str], _Series]  # (coin, contract) -> what the file holds of it


@dataclasses.dataclass
class _Series:
    """What the files hold of one (coin, contract): first and last ``funding_time``, and rows
    per venue name and per ``interval_hours`` (an instrument's name and usual interval)."""

    first: dt.datetime
    last: dt.datetime
    names: Counter[str] = dataclasses.field(default_factory=Counter)
    intervals: Counter[float] = dataclasses.field(default_factory=Counter)

    def add(self, other: _Series) -> None:
        self.first, self.last = min(self.first, other.first), max(self.last, other.last)
        self.names.update(other.names)
        self.intervals.update(other.intervals)


_LOCK = threading.Lock()
_FILE_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_PARSED: dict[tuple[str, str], _Parsed] = {}  # (resolved path, venue) -> the file as last read
_CHECKED: set[tuple] = set()  # venues (and their files' stamps) found free of conflicting duplicates
_SPILL: list[Path] = []  # the temporary folder holding the parquet parts, made on first use
#: Files read (parsed) in this process: a measure for benchmarks and tests.
files_parsed = 0


def _spill_folder() -> Path:
    with _LOCK:
        if not _SPILL:
            folder = Path(tempfile.mkdtemp(prefix="funding-assets-replay-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            _SPILL.append(folder)
        return Path(tempfile.mkdtemp(dir=_SPILL[0]))


def _stamp(path: Path) -> tuple:
    try:
        st = path.stat()
    except OSError as exc:
        raise FundingInputError(f"{path}: cannot read ({exc})") from None
    return (str(path.resolve()), st.st_mtime_ns, st.st_size, st.st_ino)


def _parse(path: Path, venue: str, stamp: tuple) -> _Parsed:
    """Read, check and normalise ``path`` once, block by block, into parquet parts."""
    global files_parsed
    folder = _spill_folder()
    parts: list[Path] = []
    months: Counter[dt.datetime] = Counter()
    series: dict[tuple[str, str], _Series] = {}
    rows = 0
    try:
        for block in _file_prints(path, venue):
            if not block.height:
                continue
            # a realised print is filed under its settlement time, whenever the file stamped it
            block = normalise(block)
            part = folder / f"{len(parts):06d}.parquet"
            block.write_parquet(part, statistics=True)
            parts.append(part)
            rows += block.height
            for month, n in block.group_by(pl.col("ts").dt.truncate("1mo")).len().iter_rows():
                months[month] += n
            for key, seen in _block_series(block).items():
                if key in series:
                    series[key].add(seen)
                else:
                    series[key] = seen
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    with _LOCK:
        files_parsed += 1
    return _Parsed(stamp, tuple(parts), rows, dict(months), series)


def _block_series(block: pl.DataFrame) -> dict[tuple[str, str], _Series]:
    """Per (coin, contract) of a block of prints: its :class:`_Series`."""
    key = ["symbol", "contract"]
    out = {
        (coin, contract): _Series(lo, hi)
        for coin, contract, lo, hi in block.group_by(key)
        .agg(pl.col("funding_time").min(), pl.col("funding_time").max().alias("_hi"))
        .iter_rows()
    }
    for coin, contract, name, n in block.group_by(*key, "venue_symbol").len().iter_rows():
        out[coin, contract].names[name] += n
    for coin, contract, hours, n in block.group_by(*key, "interval_hours").len().iter_rows():
        out[coin, contract].intervals[hours] += n
    return out


def _read_once(path: Path, venue: str) -> _Parsed:
    """``path`` as read for ``venue``: from the cache unless the file changed since."""
    stamp = _stamp(path)
    key = (stamp[0], venue)
    with _LOCK:
        lock = _FILE_LOCKS.setdefault(key, threading.Lock())
    with lock:  # two runs asking for one file at once read it once
        old = _PARSED.get(key)
        if old is not None and old.stamp == stamp:
            return old
        new = _PARSED[key] = _parse(path, venue, stamp)
    if old is not None and old.parts:
        shutil.rmtree(old.parts[0].parent, ignore_errors=True)
    return new


def _slices(parsed: list[_Parsed]) -> list[tuple[dt.datetime, dt.datetime]]:
    """``[lo, hi)`` ranges of ``ts``, whole months, of about :data:`CHECK_SLICE_ROWS` rows each."""
    months: Counter[dt.datetime] = Counter()
    for p in parsed:
        months.update(p.months)
    out: list[tuple[dt.datetime, dt.datetime]] = []
    rows = CHECK_SLICE_ROWS
    for month in sorted(months):
        following = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        if rows + months[month] > CHECK_SLICE_ROWS:
            out.append((month, following))
            rows = 0
        out[-1] = (out[-1][0], following)
        rows += months[month]
    return out


def _scan(parsed: list[_Parsed]) -> pl.LazyFrame | None:
    """The cached prints of a venue's files, with ``_file`` (index into the files)."""
    scans = [
        pl.scan_parquet(list(p.parts)).with_columns(pl.lit(i, dtype=pl.UInt32).alias(_FILE))
        for i, p in enumerate(parsed)
        if p.parts
    ]
    return pl.concat(scans) if scans else None


def _refuse_conflicts(files: list[Path], parsed: list[_Parsed], lo: dt.datetime, hi: dt.datetime) -> None:
    """Refuse two rows of one print with ``lo <= ts < hi`` that disagree.

    Reads only a hash of each row's print key (8 bytes a row), then the rows whose hash
    occurs twice. Two rows of one print share their normalised ``ts``, so slices of ``ts``
    miss none.
    """
    in_slice = (pl.col("ts") >= lo) & (pl.col("ts") < hi)
    hashes = _scan(parsed).filter(in_slice).select(_key_hash()).collect(engine="streaming").to_series()
    twice = _repeated(hashes)
    if not twice.is_empty():
        _load(files, parsed, None, lo, hi, candidates=_key_hash().is_in(twice.implode()))


def _load(
    files: list[Path],
    parsed: list[_Parsed],
    series: Collection[tuple[str, str]] | None = None,
    lo: dt.datetime | None = None,
    hi: dt.datetime | None = None,
    candidates: pl.Expr | None = None,
) -> pl.DataFrame:
    """The prints of ``series`` ((coin, contract) pairs; all: None) with ``lo <= ts < hi``
    from the cache, duplicates dropped (first in file-name then line order) and conflicting
    ones refused."""
    scan = _scan(parsed)
    if scan is None:
        return pl.DataFrame(schema=STORED_PRINT_SCHEMA)
    wanted = pl.lit(True) if candidates is None else candidates
    if series is not None:
        pairs = sorted(series)
        wanted &= pl.col("symbol").is_in(sorted({coin for coin, _ in pairs}))  # pushed into the parquet scan
        wanted &= pl.concat_str("symbol", "contract", separator=_SEP).is_in([_SEP.join(p) for p in pairs])
    if lo is not None:
        wanted &= pl.col("ts") >= lo
    if hi is not None:
        wanted &= pl.col("ts") < hi
    frame = scan.filter(wanted).collect(engine="streaming")  # in file, then line order
    return _drop_duplicates(frame, files).select(list(STORED_PRINT_SCHEMA))


class ReplaySource:
    """Reads a replay directory through the per-process file cache (a file changed on disk
    is read again).

    ``unread``: the entries of the venue folders listed so far that are not read (paths as
    text, for run metadata). ``instruments(venue)``: one per (coin, contract) in the venue's
    files. ``span(venue)``: the first and last ``funding_time`` of the venue's files, to
    tell a range outside the data from data that stops.
    """

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise FundingInputError(f"FUNDING_ASSETS_SOURCE=replay:{folder}: not a directory")
        self.folder = folder
        self.root = folder.resolve()
        self.name = f"replay:{folder}"
        self._unread: dict[str, tuple[str, ...]] = {}

    @property
    def unread(self) -> list[str]:
        """Entries of the venue folders listed so far that are not read, as paths."""
        return [path for venue in sorted(self._unread) for path in self._unread[venue]]

    def _confine(self, path: Path) -> None:
        """Refuse a symlink whose target lies outside the replay directory."""
        if not path.is_symlink():
            return
        try:
            target = path.resolve()
        except (OSError, RuntimeError) as exc:
            raise FundingInputError(f"{path}: cannot follow the symlink ({exc})") from None
        if not target.is_relative_to(self.root):
            raise FundingInputError(
                f"{path} is a symlink to {target}, outside the replay directory {self.root}; "
                "copy the file into the directory or link to a place inside it"
            )

    def files(self, venue: str) -> list[Path]:
        """The venue's replay files in file-name order; warns naming the entries not read."""
        folder = self.folder / venue
        self._confine(folder)
        if not folder.is_dir():
            raise FundingInputError(
                f"replay directory {self.folder} has no {venue}/ folder; add one or narrow "
                "FUNDING_ASSETS_VENUES / --venues to the venues you have files for"
            )
        files, unread = [], []
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith("."):
                continue
            self._confine(entry)
            (files if readable(entry) and not entry.is_dir() else unread).append(entry)
        shown = tuple(str(p) + ("/" if p.is_dir() else "") for p in unread)
        if shown and self._unread.get(venue) != shown:
            warnings.warn(
                f"{folder}: not read (only {_READABLE} files are, in any case): "
                + ", ".join(p.removeprefix(f"{folder}/") for p in shown),
                UnreadFilesWarning,
                stacklevel=2,
            )
        self._unread[venue] = shown
        if not files:
            raise self._nothing_to_read(venue, files)
        return files

    def _parsed(self, venue: str) -> tuple[list[Path], list[_Parsed]]:
        """The venue's files, read (once per process) and checked as a whole: refuses a venue
        with no print and two rows of one print that disagree, in any file."""
        files = self.files(venue)
        parsed = [_read_once(p, venue) for p in files]
        if not any(p.rows for p in parsed):
            raise self._nothing_to_read(venue, files)
        checked = (venue, tuple(p.stamp for p in parsed))
        if checked not in _CHECKED:
            for lo, hi in _slices(parsed):
                _refuse_conflicts(files, parsed, lo, hi)
            with _LOCK:
                _CHECKED.add(checked)
        return files, parsed

    def _nothing_to_read(self, venue: str, files: list[Path]) -> FundingInputError:
        folder = self.folder / venue
        unread = ", ".join(p.removeprefix(f"{folder}/") for p in self._unread[venue])
        if files:
            what = f"{', '.join(p.name for p in files)}: a header at most, no rows" + (
                f"; not read: {unread}" if unread else ""
            )
        elif unread:
            what = f"no {_READABLE} file, only {unread}"
        else:
            what = "the folder is empty"
        return FundingInputError(
            f"{folder}: nothing to read ({what}); put the venue's files there or narrow "
            "FUNDING_ASSETS_VENUES / --venues to the venues you have files for"
        )

    def prints(self, venue: str) -> pl.DataFrame:
        """Every print of the venue (normalised: ``ts`` of a realised print is its settlement)."""
        return _load(*self._parsed(venue))

    def check(self, venue: str) -> None:
        """Read the venue's files now, so a bad file stops a backfill before any run."""
        self._parsed(venue)

    def instruments(self, venue: str) -> list[Instrument]:
        """One instrument per (coin, contract) in the venue's files, sorted by key, from the
        file cache (no print is read): the venue name and ``interval_hours`` most of its rows
        have, the venue's default cap, and no open interest or volume.

        A replay cannot know when an instrument was listed or delisted: ``listed_at`` is its
        first ``funding_time`` in the files and ``delisted_at`` is None.
        """
        facts = spec(venue)
        found = []
        for (coin, contract), seen in sorted(self._series(venue).items()):
            name = _most(seen.names)
            named = parse_symbol(venue, name)
            found.append(
                Instrument(
                    venue=venue,
                    symbol=coin,
                    contract=contract,
                    venue_symbol=name,
                    multiplier=named.multiplier if named is not None else 1.0,
                    settle=coin if contract == INVERSE else contract.upper(),
                    listed_at=seen.first,
                    interval_hours=_most(seen.intervals),
                    rate_cap=facts.rate_cap,
                )
            )
        return found

    def span(
        self, venue: str, series: Sequence[Instrument | str] | None = None
    ) -> tuple[dt.datetime, dt.datetime] | None:
        """First and last ``funding_time`` in the venue's files (of ``series``, when given, as
        :meth:`fetch` takes them; None when they have no print), without reading any prints."""
        wanted = None if series is None else self._keys(venue, series)
        spans = [(s.first, s.last) for key, s in self._series(venue).items() if wanted is None or key in wanted]
        return (min(lo for lo, _ in spans), max(hi for _, hi in spans)) if spans else None

    def fetch(self, venue: str, series: Sequence[Instrument | str], start: dt.date, end: dt.date) -> pl.DataFrame:
        """The prints of ``series`` (instruments, or coins: each the venue's main perpetual of
        it) with ``ts`` on the days ``start..end``."""
        lo, hi = day_bounds(start, end)
        return _load(*self._parsed(venue), self._keys(venue, series), lo, hi)

    def _series(self, venue: str) -> dict[tuple[str, str], _Series]:
        """(coin, contract) -> what the venue's files hold of it, merged over the files."""
        _, parsed = self._parsed(venue)
        merged: dict[tuple[str, str], _Series] = {}
        for p in parsed:
            for key, seen in p.series.items():
                if key not in merged:
                    merged[key] = _Series(seen.first, seen.last)
                merged[key].add(seen)
        return merged

    @staticmethod
    def _keys(venue: str, series: Sequence[Instrument | str]) -> set[tuple[str, str]]:
        """(coin, contract) of each instrument, or of the venue's main perpetual of each coin."""
        facts = spec(venue)
        keys = set()
        for one in series:
            if isinstance(one, Instrument):
                if one.venue != venue:
                    raise FundingInputError(f"replay {venue}: {one.venue_symbol!r} is a {one.venue} instrument")
                keys.add((one.symbol, one.contract))
            else:
                coin = check_coin(one)
                keys.add((coin, facts.default_contract(coin)))
        return keys


def _most(counts: Counter) -> object:
    """The value counted most often; of equal counts, the smallest (a deterministic choice)."""
    return min(counts, key=lambda value: (-counts[value], value))
