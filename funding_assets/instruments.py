"""Instruments: the perpetuals each venue lists, and which of them a run covers.

An instrument is one perpetual of one venue: ``(venue, symbol, contract)`` with ``symbol``
the canonical coin (``PEPE`` for ``1000PEPEUSDT`` and ``kPEPE``), ``contract`` one of
``usdt``, ``usdc``, ``inverse``, and ``venue_symbol`` the venue's own name. Each client
discovers its venue's list from the venue's instrument endpoint; the ``instruments`` table
keeps what was discovered (:data:`INSTRUMENT_SCHEMA`). Units:

- ``multiplier``: coins per quoted unit in the venue's name (1000 for ``1000PEPEUSDT``); a
  funding rate is a fraction of notional, so the multiplier never changes a rate;
- ``interval_hours``: the instrument's current native funding interval;
- ``rate_cap`` / ``rate_floor``: the largest / smallest rate it can settle, decimal fraction
  per native interval (``rate_floor`` negative); null where the venue states none;
- ``listed_at`` / ``delisted_at``: UTC, ``delisted_at`` null while it trades;
- ``open_interest_usd`` / ``volume_usd``: the venue's own figures (24 h volume), null where
  it publishes none; they rank coins for ``top:N``.

Which instruments a run covers (:func:`select`) comes from two settings: coins (a list,
``all``, or ``top:N`` per venue) and contracts (``main`` = each venue's main perpetual of a
coin, ``all``, or a list of contract types).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence

import polars as pl

from .errors import FundingInputError
from .prints import TS
from .venues import CONTRACTS, SPECS, check_coin, check_contract

INSTRUMENT_SCHEMA: dict[str, pl.DataType] = {
    "venue": pl.String(),
    "symbol": pl.String(),
    "contract": pl.String(),
    "venue_symbol": pl.String(),
    "multiplier": pl.Float64(),
    "settle": pl.String(),
    "listed_at": TS,
    "delisted_at": TS,
    "interval_hours": pl.Float64(),
    "rate_cap": pl.Float64(),
    "rate_floor": pl.Float64(),
    "open_interest_usd": pl.Float64(),
    "volume_usd": pl.Float64(),
}
KEY = ("venue", "symbol", "contract")


@dataclasses.dataclass(frozen=True)
class Instrument:
    """One perpetual of one venue (see the module docstring for units)."""

    venue: str
    symbol: str
    contract: str
    venue_symbol: str
    multiplier: float = 1.0
    settle: str | None = None
    listed_at: dt.datetime | None = None
    delisted_at: dt.datetime | None = None
    interval_hours: float | None = None
    rate_cap: float | None = None
    rate_floor: float | None = None
    open_interest_usd: float | None = None
    volume_usd: float | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.venue, self.symbol, self.contract)

    def trades_between(self, start: dt.datetime, end: dt.datetime) -> bool:
        """Listed at some instant of ``[start, end)``."""
        listed = self.listed_at is None or self.listed_at < end
        return listed and (self.delisted_at is None or self.delisted_at > start)


def frame(instruments: Iterable[Instrument]) -> pl.DataFrame:
    """Instruments as a table in :data:`INSTRUMENT_SCHEMA`, sorted by key."""
    rows = [dataclasses.asdict(i) for i in instruments]
    return pl.DataFrame(rows, schema=INSTRUMENT_SCHEMA, orient="row").sort(KEY) if rows else empty()


def empty() -> pl.DataFrame:
    return pl.DataFrame(schema=INSTRUMENT_SCHEMA)


def from_frame(table: pl.DataFrame) -> list[Instrument]:
    names = [f.name for f in dataclasses.fields(Instrument)]
    return [Instrument(**{k: row.get(k) for k in names}) for row in table.iter_rows(named=True)]


# --- selection -----------------------------------------------------------------------------

ALL = "all"
MAIN = "main"
TOP = "top:"


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which instruments a run covers.

    ``coins``: canonical coins, or ``("all",)``, or ``("top:N",)`` (the N coins each venue
    ranks first by its own open interest, else volume). ``contracts``: ``("main",)`` (each
    venue's main perpetual of a coin: the first of its preference order it lists),
    ``("all",)``, or contract types.
    """

    coins: tuple[str, ...]
    contracts: tuple[str, ...] = (MAIN,)

    @property
    def explicit_coins(self) -> tuple[str, ...] | None:
        """The coins named in the setting; None for ``all`` and ``top:N``."""
        return None if self.coins[0] == ALL or self.coins[0].startswith(TOP) else self.coins

    @property
    def top(self) -> int | None:
        return int(self.coins[0].removeprefix(TOP)) if self.coins[0].startswith(TOP) else None

    def describe(self) -> str:
        return f"coins {','.join(self.coins)}, contracts {','.join(self.contracts)}"


def parse_coins(items: Sequence[str], setting: str = "FUNDING_ASSETS_COINS") -> tuple[str, ...]:
    """Coins as a user writes them -> canonical tuple; ``all`` and ``top:N`` stand alone."""
    words = [w.strip() for w in items if w.strip()]
    if not words:
        raise FundingInputError(f"{setting}: empty list; name coins (BTC,ETH), 'all' or 'top:N'")
    special = [w for w in words if w.lower() == ALL or w.lower().startswith(TOP)]
    if special:
        if len(words) > 1:
            raise FundingInputError(f"{setting}: {special[0]!r} cannot be combined with other coins")
        word = special[0].lower()
        if word == ALL:
            return (ALL,)
        n = word.removeprefix(TOP)
        if not n.isdigit() or int(n) < 1:
            raise FundingInputError(f"{setting}: {special[0]!r}: expected top:N with N a positive whole number")
        return (f"{TOP}{int(n)}",)
    return tuple(dict.fromkeys(check_coin(w, setting) for w in words))


def parse_contracts(items: Sequence[str], setting: str = "FUNDING_ASSETS_CONTRACTS") -> tuple[str, ...]:
    words = [w.strip().lower() for w in items if w.strip()]
    if not words:
        raise FundingInputError(
            f"{setting}: empty list; use 'main' (the default), 'all' or a list of {', '.join(CONTRACTS)}"
        )
    if words in ([MAIN], [ALL]):
        return (words[0],)
    if MAIN in words or ALL in words:
        raise FundingInputError(f"{setting}: 'main' and 'all' cannot be combined with contract types")
    return tuple(dict.fromkeys(check_contract(w, setting) for w in words))


def _ranked(table: pl.DataFrame, n: int) -> pl.DataFrame:
    """Per venue, every instrument of the ``n`` coins ranked first by open interest, then
    volume (largest first, unpublished last), then name."""
    per_coin = table.group_by("venue", "symbol").agg(
        oi=pl.col("open_interest_usd").sum(), vol=pl.col("volume_usd").sum()
    )
    ranked = per_coin.sort(
        ["venue", "oi", "vol", "symbol"], descending=[False, True, True, False], nulls_last=True
    ).with_columns(rank=pl.int_range(pl.len()).over("venue"))
    keep = ranked.filter(pl.col("rank") < n).select("venue", "symbol")
    return table.join(keep, on=["venue", "symbol"], how="semi")


def select(
    table: pl.DataFrame,
    selection: Selection,
    venues: Sequence[str] | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> pl.DataFrame:
    """The instruments of ``table`` a run covers: of ``venues``, trading at some instant of
    ``[start, end)`` (when given), for the selection's coins and contracts. Sorted by key."""
    chosen = table
    if venues is not None:
        chosen = chosen.filter(pl.col("venue").is_in(list(venues)))
    if start is not None and end is not None:
        chosen = chosen.filter(
            (pl.col("listed_at").is_null() | (pl.col("listed_at") < end))
            & (pl.col("delisted_at").is_null() | (pl.col("delisted_at") > start))
        )
    coins = selection.explicit_coins
    if coins is not None:
        chosen = chosen.filter(pl.col("symbol").is_in(list(coins)))
    if selection.contracts == (MAIN,):
        chosen = _main(chosen)
    elif selection.contracts != (ALL,):
        chosen = chosen.filter(pl.col("contract").is_in(list(selection.contracts)))
    if selection.top is not None:
        chosen = _ranked(chosen, selection.top)
    return chosen.sort(KEY)


def _main(table: pl.DataFrame) -> pl.DataFrame:
    """Each venue's main perpetual of each coin: the first contract of its preference order."""
    order = pl.DataFrame(
        [(v, c, i) for v, s in SPECS.items() for i, c in enumerate(s.contracts)],
        schema={"venue": pl.String, "contract": pl.String, "preference": pl.Int32},
        orient="row",
    )
    ranked = table.join(order, on=["venue", "contract"], how="inner")
    first = ranked.group_by("venue", "symbol").agg(pl.col("preference").min())
    return ranked.join(first, on=["venue", "symbol", "preference"], how="semi").drop("preference")


def unlisted(table: pl.DataFrame, selection: Selection, venues: Sequence[str]) -> dict[str, list[str]]:
    """Explicit coins each venue does not list: ``{venue: [coins]}`` (a line each in the log)."""
    coins = selection.explicit_coins or ()
    out = {}
    for venue in venues:
        listed = set(table.filter(pl.col("venue") == venue)["symbol"].to_list())
        missing = [c for c in coins if c not in listed]
        if missing:
            out[venue] = missing
    return out


def require_listed(
    table: pl.DataFrame,
    selection: Selection,
    venues: Sequence[str],
    source: str = "",
    setting: str = "FUNDING_ASSETS_COINS",
) -> None:
    """Refuse explicit coins that no configured venue lists (in ``source``), naming them."""
    coins = selection.explicit_coins or ()
    listed = set(table.filter(pl.col("venue").is_in(list(venues)))["symbol"].to_list())
    nowhere = [c for c in coins if c not in listed]
    if nowhere:
        names = ", ".join(repr(c) for c in nowhere)
        raise FundingInputError(
            f"{setting}: {names} listed by no configured venue ({', '.join(venues)})"
            + (f" in source {source}" if source else "")
            + f"; they list {len(listed)} coins, e.g. {', '.join(sorted(listed)[:8])}"
        )


SERIES_SCHEMA = {"venue": pl.String(), "symbol": pl.String(), "contract": pl.String()}


def series(table: pl.DataFrame, selection: Selection, venues: Sequence[str]) -> pl.DataFrame:
    """The series ``(venue, symbol, contract)`` a run covers, whatever their listing dates.

    From the discovered instruments; before any discovery, a run naming its coins covers
    each venue's main perpetual of them (or the contract types it names), as the first
    versions did. ``all`` and ``top:N`` need the discovered list.
    """
    if table.height:
        return select(table, selection, venues).select(list(SERIES_SCHEMA))
    coins = selection.explicit_coins
    if coins is None:
        raise FundingInputError(
            f"{selection.describe()}: no instruments discovered yet; materialise the 'instruments' "
            "asset first (funding-assets backfill does)"
        )
    rows = []
    for venue in venues:
        s = SPECS[venue]
        for coin in coins:
            if selection.contracts == (MAIN,):
                rows.append((venue, coin, s.default_contract(coin)))
            else:
                wanted = s.contracts if selection.contracts == (ALL,) else selection.contracts
                rows += [(venue, coin, c) for c in wanted if c in s.contracts]
    return pl.DataFrame(rows, schema=SERIES_SCHEMA, orient="row")
