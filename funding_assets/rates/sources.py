"""Where fixed-rate candles come from: the same setting as the prints (``FUNDING_ASSETS_SOURCE``).

- ``sim``: the Rho and Boros clients against the loopback simulator of this process (the
  one :func:`funding_assets.sources.venues.in_process_simulator` starts), offline; Rho's
  ``underlying_apr`` comes from the simulator's Rho X floating-rate candles.
- ``exchanges``: the clients against the real services (:data:`~funding_assets.rates.rho.RHO_URL`,
  :data:`~funding_assets.rates.boros.BOROS_URL`).
- ``replay:<dir>``: the user's own files, ``<dir>/rho/*`` and ``<dir>/boros/*`` (format below).

A source answers :meth:`RatesSource.markets` (the provider's futures) and
:meth:`RatesSource.candles` (one future's candles over a range, in
:data:`~funding_assets.rates.schema.CANDLE_SCHEMA`, sorted by ``ts``).

**Replay files.** Every file directly in ``<dir>/<provider>/`` whose name ends in ``.csv``,
``.csv.gz`` or ``.parquet`` (any case) is read, in name order; other entries are ignored
(hidden ones silently). An absent provider folder means the provider has no markets; a
folder with no readable file is refused. One row per candle:

==============  ========  =================================================================
column          required  meaning
==============  ========  =================================================================
market_id       yes       the provider's future / market id (text)
venue           yes       underlying venue: binance, bybit, okx, hyperliquid, deribit
symbol          yes       underlying: the coin (``BTC``) or the venue's name (``BTCUSDT``)
contract        no        ``usdt``, ``usdc`` or ``inverse`` (default: what the name says,
                          else the venue's main perpetual of the coin)
term_start      no        start of the future's term (empty: not known)
maturity        yes       the future's maturity
interval        no        candle interval: 1m 5m 15m 30m 1h 4h 1d 1w (default ``1h``)
ts              yes       candle open time
open/high/low   no        implied fixed rate (default: ``close``)
close           yes       implied fixed rate
underlying_apr  no        the provider's floating APR of the underlying (empty: none)
==============  ========  =================================================================

- Rates are **annualised decimals**: ``0.036451`` is 3.6451 % APR. A rate beyond +-2
  (200 % APR) is refused as plainly percent.
- Times are UTC: epoch **milliseconds** (integers), ISO-8601 date-times (``2025-05-01T08:00:00Z``,
  ``2025-05-01 08:00``; an offset is converted to UTC) or dates (midnight UTC); in parquet
  also timestamp (naive = UTC) and date columns. Before 2015 or from 2100 on is refused.
- A row is refused when ``low`` exceeds ``open``, ``close`` or ``high``, or ``high`` is
  below them; when ``ts`` is not before ``maturity``; when the candle ends before
  ``term_start``. All rows of a ``market_id`` must agree on venue, symbol, contract,
  ``term_start`` and ``maturity``. A candle (``market_id``, ``interval``, ``ts``) given twice
  is kept once if the rows agree and refused otherwise.

Every problem is a :class:`~funding_assets.errors.FundingInputError` naming the file and
line (CSV: the line in an editor, the header being line 1; parquet: the 1-based row). A
provider's files are checked whole before any candle is returned: nothing is half-read.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import polars as pl

from ..clients.http import Budget, HttpClient, VenueUnreachable
from ..errors import FundingInputError
from ..prints import TS, as_utc_ms, from_epoch_ms
from ..sources.replay import _iso
from ..venues import SPECS, check_contract, check_venue, venue_symbol
from .boros import BorosClient
from .rho import RhoClient
from .schema import (
    BOROS,
    CANDLE_SCHEMA,
    INTERVALS,
    PROVIDERS,
    RHO,
    Market,
    check_interval,
    check_provider,
    empty_candles,
    resolve_underlying,
)

REPLAY = "replay"
READABLE = (".csv", ".csv.gz", ".parquet")
#: |rate| beyond this (annualised decimal, 200 % APR) is taken for percent.
PERCENT_LIMIT = 2.0
REQUIRED = ("market_id", "venue", "symbol", "maturity", "ts", "close")
OPTIONAL = ("contract", "term_start", "interval", "open", "high", "low", "underlying_apr")
EARLIEST, LATEST = dt.datetime(2015, 1, 1), dt.datetime(2100, 1, 1)
_LINE = "_line"
#: The simulator in this process serves unthrottled (the real budgets are the clients').
UNLIMITED = Budget(1e9, 1.0)
RHOX_SIM_PREFIX = "/x/api/v1"


class RatesSource(Protocol):
    name: str

    def markets(self, provider: str) -> list[Market]:
        """Every future the source has for ``provider`` (``rho`` or ``boros``)."""
        ...

    def candles(
        self,
        provider: str,
        market: Market | str,
        start: dt.date | dt.datetime,
        end: dt.date | dt.datetime,
        interval: str = "1h",
    ) -> pl.DataFrame:
        """One future's ``interval`` candles (a :class:`Market` or its ``market_id``) opening in
        the range (:func:`range_bounds`: whole UTC days ``start..end`` for dates, ``[start,
        end)`` for datetimes), in :data:`CANDLE_SCHEMA`, sorted by ``ts``."""
        ...


def open_rates_source(setting: str) -> RatesSource:
    """The fixed-rate source a ``FUNDING_ASSETS_SOURCE`` value names."""
    text = str(setting).strip()
    if text == "sim":
        return simulator_rates_source()
    if text == "exchanges":
        return ClientRatesSource("exchanges", {RHO: RhoClient, BOROS: BorosClient})
    if text.startswith("replay:"):
        return ReplayRatesSource(Path(text.removeprefix("replay:")).expanduser())
    raise FundingInputError(f"FUNDING_ASSETS_SOURCE={setting!r}: expected 'sim', 'exchanges' or 'replay:<dir>'")


def range_bounds(start: dt.date | dt.datetime, end: dt.date | dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """A candle range as ``[lo, hi)`` naive UTC: dates are whole UTC days, ``end`` included
    (as :meth:`funding_assets.sources.Source.fetch`); datetimes are ``[start, end)``."""
    if isinstance(start, dt.datetime) != isinstance(end, dt.datetime):
        raise FundingInputError(f"candle range {start!r} .. {end!r}: give two dates or two datetimes")
    if isinstance(start, dt.datetime):
        lo, hi = (t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo else t for t in (start, end))
    else:
        lo, hi = dt.datetime.combine(start, dt.time()), dt.datetime.combine(end, dt.time()) + dt.timedelta(days=1)
    if hi < lo:
        raise FundingInputError(f"candle range ends ({end}) before it starts ({start})")
    return lo, hi


def _find(markets: list[Market], provider: str, market: Market | str) -> Market:
    if isinstance(market, Market):
        return market
    found = next((m for m in markets if m.market_id == str(market)), None)
    if found is None:
        raise FundingInputError(f"market: {provider} has no market {market!r}")
    return found


# --------------------------------------------------------------------------- the clients


class ClientRatesSource:
    """Each provider through its client (one per provider, made on first use and reused)."""

    def __init__(self, name: str, factories: dict[str, Callable[[], RhoClient | BorosClient]]) -> None:
        self.name = name
        self.factories = factories
        self._clients: dict[str, RhoClient | BorosClient] = {}
        #: The last listing of each provider, to find a market named by its id.
        self._listed: dict[str, list[Market]] = {}
        self._lock = threading.Lock()

    def client(self, provider: str) -> RhoClient | BorosClient:
        provider = check_provider(provider)
        with self._lock:
            if provider not in self._clients:
                self._clients[provider] = self.factories[provider]()
            return self._clients[provider]

    def _reaching(self, call: Callable):
        try:
            return call()
        except VenueUnreachable as exc:
            if self.name != "exchanges":
                raise
            raise VenueUnreachable(
                exc.venue,
                exc.host,
                f"{exc}; check the network, or work offline on the simulator with FUNDING_ASSETS_SOURCE=sim",
            ) from None

    def markets(self, provider: str) -> list[Market]:
        client = self.client(provider)
        found = self._reaching(client.markets)
        self._listed[check_provider(provider)] = found
        return found

    def market(self, provider: str, market_id: str) -> Market:
        """The market ``market_id`` of the last listing (listed again if it is not there)."""
        listed = self._listed.get(check_provider(provider), [])
        if not any(m.market_id == str(market_id) for m in listed):
            listed = self.markets(provider)
        return _find(listed, provider, market_id)

    def candles(
        self,
        provider: str,
        market: Market | str,
        start: dt.date | dt.datetime,
        end: dt.date | dt.datetime,
        interval: str = "1h",
    ) -> pl.DataFrame:
        lo, hi = range_bounds(start, end)
        client = self.client(provider)
        chosen = market if isinstance(market, Market) else self.market(provider, market)
        return self._reaching(lambda: client.candles(chosen, lo, hi, interval))


def simulator_rates_source() -> ClientRatesSource:
    """The providers of this process's loopback simulator (started on first use)."""
    from ..sources.venues import in_process_simulator

    server = in_process_simulator()
    rho_url, boros_url = server.rest_url(RHO), server.rest_url(BOROS)
    return ClientRatesSource(
        "sim",
        {
            RHO: lambda: RhoClient(
                http=HttpClient(RHO, rho_url, UNLIMITED),
                floating_http=HttpClient(RHO, rho_url + RHOX_SIM_PREFIX, UNLIMITED),
                source_label="sim",
            ),
            BOROS: lambda: BorosClient(http=HttpClient(BOROS, boros_url, UNLIMITED), source_label="sim"),
        },
    )


# --------------------------------------------------------------------------- replay files


def _readable(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.name.lower().endswith(READABLE)


def _is_csv(path: Path) -> bool:
    return path.name.lower().endswith((".csv", ".csv.gz"))


def _first(frame: pl.DataFrame, bad: pl.Expr) -> int | None:
    """Index of the first row where ``bad`` is true (null counts as not bad)."""
    hits = frame.with_row_index("_i").filter(bad)["_i"]
    return int(hits[0]) if hits.len() else None


class _File:
    """One replay file being checked: raw rows -> candles plus ``_line``."""

    def __init__(self, path: Path, provider: str) -> None:
        self.path, self.provider = path, provider

    def line(self, index: int) -> str:
        return (
            f"{self.path}: {'line' if _is_csv(self.path) else 'row'} {index + 2 if _is_csv(self.path) else index + 1}"
        )

    def fail(self, frame: pl.DataFrame, bad: pl.Expr, message: Callable[[int], str]) -> None:
        index = _first(frame, bad)
        if index is not None:
            raise FundingInputError(f"{self.line(index)}: {message(index)}")

    def read(self) -> pl.DataFrame:
        try:
            if _is_csv(self.path):
                raw = pl.read_csv(self.path, infer_schema=False)
            else:
                raw = pl.read_parquet(self.path)
        except (pl.exceptions.PolarsError, OSError, EOFError) as exc:
            raise FundingInputError(f"{self.path}: cannot read ({exc})") from None
        missing = [c for c in REQUIRED if c not in raw.columns]
        if missing:
            raise FundingInputError(
                f"{self.path}: missing column(s) {', '.join(missing)}; need {', '.join(REQUIRED)} "
                f"(optional: {', '.join(OPTIONAL)})"
            )
        return self.candles(raw) if raw.height else empty_candles().with_columns(pl.lit(0, pl.UInt32).alias(_LINE))

    def text(self, raw: pl.DataFrame, col: str, default: str | None = None) -> pl.Series:
        if col not in raw.columns:
            return pl.Series(col, [default] * raw.height, dtype=pl.String)
        values = raw[col].cast(pl.String).str.strip_chars()
        return values.replace("", None)

    def times(self, raw: pl.DataFrame, col: str, required: bool) -> pl.Series:
        """A time column as naive UTC ``Datetime("ms")`` (null where empty and not required)."""
        if col not in raw.columns:
            return pl.Series(col, [None] * raw.height, dtype=TS)
        dtype, values = raw.schema[col], raw[col]
        if isinstance(dtype, pl.Datetime):
            parsed = values.to_frame().select(as_utc_ms(pl.col(col), dtype, col)).to_series()
            given = values.is_not_null()
        elif isinstance(dtype, pl.Date):
            parsed, given = values.cast(TS), values.is_not_null()
        elif dtype.is_integer() or dtype == pl.String:
            text = values.cast(pl.String).str.strip_chars().replace("", None)
            given = text.is_not_null()
            digits = text.str.contains(r"^\d+$").fill_null(False)
            self.fail(
                pl.DataFrame({"d": digits, "t": text}),
                pl.col("d")
                & ~pl.col("t").cast(pl.Int64, strict=False).is_between(EARLIEST_MS, LATEST_MS - 1).fill_null(False),
                lambda i: f"{col} {text[i]!r} is not epoch milliseconds of 2015..2099 (seconds given?)",
            )
            epoch = pl.Series(col, text.filter(digits).cast(pl.Int64), dtype=pl.Int64)
            from_ms = epoch.to_frame().select(from_epoch_ms(pl.col(col))).to_series()
            parsed = _iso(text.set(digits, None) if digits.any() else text)
            parsed = parsed.scatter(digits.arg_true(), from_ms) if digits.any() else parsed
        else:
            raise FundingInputError(f"{self.path}: column {col} has type {dtype}; expected epoch ms or ISO-8601 UTC")
        check = pl.DataFrame({"p": parsed, "g": given})
        if required:
            self.fail(check, ~pl.col("g"), lambda i: f"{col} is empty")
        self.fail(
            check,
            pl.col("g") & pl.col("p").is_null(),
            lambda i: f"cannot read {col} {values.cast(pl.String)[i]!r} (epoch ms or ISO-8601 UTC)",
        )
        self.fail(
            check,
            pl.col("g") & ((pl.col("p") < EARLIEST) | (pl.col("p") >= LATEST)),
            lambda i: f"{col} {parsed[i]} is before 2015 or from 2100 on",
        )
        return parsed.alias(col)

    def rates(self, raw: pl.DataFrame, col: str, fallback: pl.Series | None) -> pl.Series:
        """A rate column as Float64 (annualised decimal); empty cells take ``fallback``."""
        if col not in raw.columns:
            return fallback if fallback is not None else pl.Series(col, [None] * raw.height, dtype=pl.Float64)
        written = raw[col].cast(pl.String).str.strip_chars().replace("", None)
        number = written.cast(pl.Float64, strict=False)
        check = pl.DataFrame({"w": written, "n": number})
        if col == "close":
            self.fail(check, pl.col("w").is_null(), lambda i: "close is empty")
        self.fail(
            check,
            pl.col("w").is_not_null() & (pl.col("n").is_null() | ~pl.col("n").is_finite().fill_null(False)),
            lambda i: f"{col} {written[i]!r} is not a number",
        )
        self.fail(
            check,
            pl.col("n").abs() > PERCENT_LIMIT,
            lambda i: (
                f"{col} {number[i]} is beyond +-{PERCENT_LIMIT:g}; rates are annualised decimals "
                "(0.036451 = 3.6451 % APR), this looks like percent"
            ),
        )
        return (number if fallback is None else number.fill_null(fallback)).alias(col)

    def candles(self, raw: pl.DataFrame) -> pl.DataFrame:
        n = raw.height
        market_id = self.text(raw, "market_id")
        self.fail(market_id.to_frame(), pl.col("market_id").is_null(), lambda i: "market_id is empty")
        interval = self.text(raw, "interval").fill_null("1h")
        self.fail(
            interval.to_frame(),
            ~pl.col("interval").is_in(list(INTERVALS)),
            lambda i: f"interval {interval[i]!r} is not one of {', '.join(INTERVALS)}",
        )
        venue, symbol, contract, name = self.underlyings(raw)
        ts = self.times(raw, "ts", True)
        maturity = self.times(raw, "maturity", True)
        term_start = self.times(raw, "term_start", False)
        close = self.rates(raw, "close", None)
        o, h, lo = (self.rates(raw, c, close) for c in ("open", "high", "low"))
        underlying = self.rates(raw, "underlying_apr", None)
        frame = pl.DataFrame(
            {
                "provider": [self.provider] * n,
                "market_id": market_id,
                "venue": venue,
                "symbol": symbol,
                "contract": contract,
                "venue_symbol": name,
                "term_start": term_start,
                "maturity": maturity,
                "interval": interval,
                "ts": ts,
                "open": o,
                "high": h,
                "low": lo,
                "close": close,
                "underlying_apr": underlying,
                "source": [REPLAY] * n,
            },
            schema=CANDLE_SCHEMA,
        )
        top, bottom = pl.max_horizontal("open", "close", "low"), pl.min_horizontal("open", "close", "high")
        self.fail(frame, pl.col("high") < top, lambda i: f"high {h[i]} is below open, close or low")
        self.fail(frame, pl.col("low") > bottom, lambda i: f"low {lo[i]} is above open, close or high")
        self.fail(
            frame, pl.col("ts") >= pl.col("maturity"), lambda i: f"ts {ts[i]} is not before maturity {maturity[i]}"
        )
        seconds = pl.col("interval").replace_strict(INTERVALS, return_dtype=pl.Int64)
        self.fail(
            frame,
            (pl.col("ts") + pl.duration(seconds=seconds) <= pl.col("term_start")).fill_null(False),
            lambda i: f"the {interval[i]} candle at {ts[i]} ends before term_start {term_start[i]}",
        )
        self.fail(
            frame,
            (pl.col("term_start") >= pl.col("maturity")).fill_null(False),
            lambda i: f"term_start {term_start[i]} is not before maturity {maturity[i]}",
        )
        return frame.with_columns(pl.int_range(n, dtype=pl.UInt32).alias(_LINE))

    def underlyings(self, raw: pl.DataFrame) -> tuple[pl.Series, ...]:
        """Each row's (venue, coin, contract, venue name), each distinct cell triple resolved once."""
        cells = pl.DataFrame(
            {"v": self.text(raw, "venue"), "s": self.text(raw, "symbol"), "c": self.text(raw, "contract")}
        )
        self.fail(cells, pl.col("v").is_null(), lambda i: "venue is empty")
        self.fail(cells, pl.col("s").is_null(), lambda i: "symbol is empty")
        resolved: dict[tuple, tuple[str, str, str, str]] = {}
        for key in cells.unique(maintain_order=True).iter_rows():
            try:
                resolved[key] = _underlying(*key)
            except (ValueError, FundingInputError) as exc:
                index = _first(
                    cells, (pl.col("v") == key[0]) & (pl.col("s") == key[1]) & pl.col("c").eq_missing(key[2])
                )
                raise FundingInputError(f"{self.line(index)}: {exc}") from None
        rows = [resolved[key] for key in cells.iter_rows()]
        return tuple(pl.Series([r[k] for r in rows], dtype=pl.String) for k in range(4))


EARLIEST_MS = int((EARLIEST - dt.datetime(1970, 1, 1)).total_seconds()) * 1000
LATEST_MS = int((LATEST - dt.datetime(1970, 1, 1)).total_seconds()) * 1000


def _underlying(venue_cell: str, symbol: str, contract: str | None) -> tuple[str, str, str, str]:
    """A file's venue, symbol and contract cells -> (venue, coin, contract, venue name)."""
    venue, coin, named_contract, name = resolve_underlying(check_venue(venue_cell), symbol)
    if contract is None:
        return venue, coin, named_contract, name
    given = check_contract(contract)
    if given not in SPECS[venue].contracts:
        raise ValueError(f"{venue} lists no {given} perpetuals")
    said = SPECS[venue].parse(symbol) or SPECS[venue].parse(symbol.upper())
    if said is not None and said.contract != given and venue != "hyperliquid":
        raise ValueError(f"symbol {symbol!r} is {venue}'s {said.contract} perpetual but contract is {given!r}")
    return venue, coin, given, venue_symbol(venue, coin, given, said.multiplier if said else 1.0)


class ReplayRatesSource:
    """``<dir>/<provider>/`` files (module docstring); each provider read once per process and
    re-read when its files change."""

    name = REPLAY

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise FundingInputError(f"replay directory {folder} does not exist")
        self.folder = folder
        self._cache: dict[str, tuple[tuple, pl.DataFrame]] = {}
        self._lock = threading.Lock()

    def files(self, provider: str) -> list[Path]:
        where = self.folder / check_provider(provider)
        if not where.exists():
            return []
        if not where.is_dir():
            raise FundingInputError(f"{where} is not a folder")
        files = sorted(p for p in where.iterdir() if _readable(p))
        if not files:
            raise FundingInputError(f"{where}: no {', '.join('*' + s for s in READABLE)} file to read")
        return files

    def frame(self, provider: str) -> pl.DataFrame:
        """Every candle of the provider's files, checked (the module docstring's rules)."""
        files = self.files(provider)
        stamp = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
        with self._lock:
            cached = self._cache.get(provider)
            if cached is not None and cached[0] == stamp:
                return cached[1]
        frame = _checked(files, provider)
        with self._lock:
            self._cache[provider] = (stamp, frame)
        return frame

    def check(self, provider: str) -> None:
        """Raise :class:`FundingInputError` now if the provider's files are bad."""
        self.frame(provider)

    def markets(self, provider: str) -> list[Market]:
        facts = (
            self.frame(provider)
            .group_by("market_id", maintain_order=True)
            .agg(pl.col(c).first() for c in ("venue", "symbol", "contract", "venue_symbol", "term_start", "maturity"))
        )
        markets = [Market(provider=check_provider(provider), **row) for row in facts.iter_rows(named=True)]
        return sorted(markets, key=lambda m: (m.venue, m.symbol, m.maturity, m.market_id))

    def candles(
        self,
        provider: str,
        market: Market | str,
        start: dt.date | dt.datetime,
        end: dt.date | dt.datetime,
        interval: str = "1h",
    ) -> pl.DataFrame:
        lo, hi = range_bounds(start, end)
        check_interval(interval)
        market_id = market.market_id if isinstance(market, Market) else str(market)
        frame = self.frame(provider)
        if not isinstance(market, Market):
            _find(self.markets(provider), provider, market_id)
        return frame.filter(
            (pl.col("market_id") == market_id)
            & (pl.col("interval") == interval)
            & (pl.col("ts") >= lo)
            & (pl.col("ts") < hi)
        ).sort("ts")


def _checked(files: list[Path], provider: str) -> pl.DataFrame:
    """All files of a provider as one checked candle frame (without helper columns)."""
    frames = [
        _File(path, provider).read().with_columns(pl.lit(k, pl.UInt32).alias("_file")) for k, path in enumerate(files)
    ]
    if not frames:
        return empty_candles()
    allrows = pl.concat(frames)

    def where(row: dict) -> str:
        return _File(files[row["_file"]], provider).line(row[_LINE])

    facts = ["venue", "symbol", "contract", "term_start", "maturity"]
    firsts = allrows.group_by("market_id").agg(pl.col(c).first().alias(f"_{c}") for c in [*facts, "_file", _LINE])
    joined = allrows.join(firsts, on="market_id")
    differs = pl.any_horizontal(~pl.col(c).eq_missing(pl.col(f"_{c}")) for c in facts)
    bad = joined.filter(differs).sort("_file", _LINE).head(1)
    if bad.height:
        row = bad.row(0, named=True)
        first = {"_file": row["__file"], _LINE: row[f"_{_LINE}"]}
        column = next(c for c in facts if row[c] != row[f"_{c}"])
        raise FundingInputError(
            f"{where(row)}: market {row['market_id']} has {column} {row[column]}, but {where(first)} gives "
            f"{row[f'_{column}']}; one market_id is one future"
        )
    key = ["market_id", "interval", "ts"]
    values = ["open", "high", "low", "close", "underlying_apr"]
    repeated = allrows.filter(pl.struct(key).is_duplicated()).sort("_file", _LINE)
    if repeated.height:
        conflicts = repeated.group_by(key, maintain_order=True).agg(
            pl.struct("_file", _LINE).alias("_at"), *(pl.col(v).n_unique().alias(f"_n{v}") for v in values)
        )
        bad = conflicts.filter(pl.any_horizontal(pl.col(f"_n{v}") > 1 for v in values)).head(1)
        if bad.height:
            at = bad["_at"][0]
            raise FundingInputError(
                f"{where(at[1])}: the {bad['interval'][0]} candle of market {bad['market_id'][0]} at {bad['ts'][0]} "
                f"is also given by {where(at[0])} with other values"
            )
    return (
        allrows.sort("_file", _LINE)
        .unique(key, keep="first", maintain_order=True)
        .drop("_file", _LINE)
        .sort("market_id", "interval", "ts")
    )


__all__ = ["PROVIDERS", "ClientRatesSource", "RatesSource", "ReplayRatesSource", "open_rates_source", "range_bounds"]
