"""The request-budget floor of a backfill, and a backfill's fetch against it (DESIGN section 9).

Run:  .venv/bin/python bench/request_budget.py [--start 2020-01-01] [--end 2020-02-15] [--write]

**Floor.** For the backfill of a date range (five venues x BTC and ETH, each venue's main
contract, intraday history rebuilt for BTC and ETH: the defaults), it counts the requests
each venue's client makes -- instrument discovery, settled-funding pages, premium-index
pages for the rebuild -- from the clients' own page sizes and paging rules and from the
venue's history (each instrument's listing, up to now), and the units they draw from each
budget the venue publishes (``VenueSpec.budgets``: requests, or weight where the venue
counts weight). A bucket of ``B`` units refilled at ``r`` units a second, full at the start,
serves ``U`` units in no less than ``max(0, U - B) / r`` seconds; a venue's floor is its
slowest bucket and, venues being fetched side by side, the backfill's floor is the slowest
venue's. The floor of the full history (``2020-01-01..today``) is reported analytically.

**Proof.** The fetch phase of a backfill of ``--start..--end`` (the days its prints step
covers, lookbacks included, as ``funding_assets.backfill.plan`` makes it) runs against the
simulator over loopback with those budgets enforced (``SimServer(limits=True)``): instrument
discovery of every venue side by side, as the ``instruments`` asset does it, then
``funding_assets.sources.fetch_all`` as ``raw_prints`` calls it, through the real clients
pacing to the same budgets. Its wall time, from its first request to its last answer, is
compared with the floor of the same range, counted from what each bucket held when it began
(discovery drew a few units); the units the simulator granted and the requests it refused
are reported with it.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import textwrap
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from _report import machine, write_section

from funding_assets import backfill
from funding_assets import instruments as universe
from funding_assets.clients import MINUTE_MS, binance, bybit, deribit, epoch_ms, hyperliquid, okx
from funding_assets.instruments import Instrument
from funding_assets.resources import FundingConfig
from funding_assets.sim.server import SimServer
from funding_assets.sim.venues.okx import REST_HISTORY, month_start
from funding_assets.sources import fetch_all
from funding_assets.sources.venues import FIRST_WINDOW, MS, SETTLEMENT_SLACK, ClientSource
from funding_assets.venues import SPECS, VENUES
from funding_assets.venues.binance import HISTORY, WEIGHT
from funding_assets.venues.okx import PREMIUM, PUBLIC
from funding_assets.venues.spec import Budget

SECTION = "## Request budgets"
COMMAND = ".venv/bin/python bench/request_budget.py"
#: The proof's backfill: the first days of the history, where no lookback reaches further
#: back, so its prints step is these 46 days; their floor, about two minutes, is set by OKX's
#: premium history (100 rows a request, 10 requests a second).
PROOF_START, PROOF_END = dt.date(2020, 1, 1), dt.date(2020, 2, 15)
FULL_START = dt.date(2020, 1, 1)
TOLERANCE = 0.10
HOUR_MS = 3_600_000
UNIX = dt.datetime(1970, 1, 1)
Budgets = Mapping[str, Mapping[str, Budget]]


# --- what a backfill asks of each venue ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Range:
    """The days a prints run covers, ``[lo, hi)`` naive UTC, and the venues' now."""

    lo: dt.datetime
    hi: dt.datetime
    now: dt.datetime

    @classmethod
    def of_days(cls, start: dt.date, end: dt.date, now: dt.datetime) -> Range:
        return cls(
            dt.datetime.combine(start, dt.time()), dt.datetime.combine(end, dt.time()) + dt.timedelta(days=1), now
        )

    @property
    def now_ms(self) -> int:
        return epoch_ms(self.now)


@dataclasses.dataclass
class Need:
    """The requests a venue's client makes for a backfill and the units each bucket pays."""

    venue: str
    requests: int = 0
    #: Requests outside every budget (OKX's archive downloads from its CDN).
    free: int = 0
    units: dict[str, float] = dataclasses.field(default_factory=dict)

    def ask(self, bucket: str, units: float, requests: int = 1) -> None:
        self.requests += requests
        self.units[bucket] = self.units.get(bucket, 0.0) + units


def floor_s(need: Need, budgets: Mapping[str, Budget], levels: Mapping[str, float] | None = None) -> float:
    """Least seconds to draw ``need``'s units from buckets holding ``levels`` (default: full)
    at the start: the slowest bucket's."""

    def alone(bucket: str, drawn: float) -> float:
        b = budgets[bucket]
        held = b.requests if levels is None else levels[bucket]
        return max(0.0, drawn - held) / b.per_second

    return max((alone(b, u) for b, u in need.units.items()), default=0.0)


def multiples(step: int, a: int, b: int) -> int:
    """How many multiples of ``step`` lie in ``[a, b]``."""
    return max(0, b // step - -(-a // step) + 1) if b >= a else 0


def bounds_ms(inst: Instrument, a: int, b: int, now_ms: int) -> tuple[int, int]:
    """``[a, b]`` cut to the instrument's life (listing, delisting) and to now."""
    if inst.listed_at is not None:
        a = max(a, epoch_ms(inst.listed_at))
    if inst.delisted_at is not None:
        b = min(b, epoch_ms(inst.delisted_at) - 1)
    return a, min(b, now_ms)


def settlements(inst: Instrument, a: int, b: int, now_ms: int) -> int:
    """Settlements in ``[a, b]`` ms on the venue's schedule (Hyperliquid: 8 h, then hourly).

    The venues' own interval changes (1-4 h spells) add a few rows that no schedule
    foretells: funding pages are a small share of every budget."""
    spec = SPECS[inst.venue]
    a, b = bounds_ms(inst, a, b, now_ms)
    if spec.hourly_from is None:
        return multiples(int(spec.default_interval_hours * HOUR_MS), a, b)
    switch = epoch_ms(spec.hourly_from)
    return multiples(8 * HOUR_MS, a, min(b, switch - 1)) + multiples(HOUR_MS, max(a, switch), b)


def minutes(inst: Instrument, a: int, b: int, now_ms: int) -> int:
    """Minutes starting in ``[a, b]`` ms that have ended by now while the instrument lists."""
    a, b = bounds_ms(inst, a, b, now_ms // MINUTE_MS * MINUTE_MS - MINUTE_MS)
    return multiples(MINUTE_MS, a, b)


def settled_window(r: Range) -> tuple[dt.datetime, dt.datetime]:
    """What the source asks a client's ``settled`` for (``ClientSource.fetch``)."""
    return r.lo - SETTLEMENT_SLACK, r.hi


def premium_window(r: Range) -> tuple[dt.datetime, dt.datetime]:
    """What the source asks a client's ``premium_history`` for (``ClientSource.premium``)."""
    return r.lo - FIRST_WINDOW, r.hi - MS


def need_binance(r: Range, settled: Sequence[Instrument], rebuilt: Sequence[Instrument], listed: Sequence[Instrument]):
    found, need = Need("binance"), Need("binance")
    for _ in ("USD-M", "COIN-M"):  # fundingInfo, 24 h tickers, exchangeInfo of each family
        found.ask(HISTORY, 1)
        found.ask(WEIGHT, binance.TICKER_24H_WEIGHT_ALL + binance.EXCHANGE_INFO_WEIGHT, 2)
    start, end = settled_window(r)
    for inst in settled:  # fundingRate pages forward until a short one
        rows = settlements(inst, epoch_ms(start) - binance.LOOKBACK_MS, epoch_ms(end) + binance.LOOKAHEAD_MS, r.now_ms)
        pages = rows // binance.PAGE_LIMIT + 1
        need.ask(HISTORY, pages, pages)
    start, end = premium_window(r)
    for inst in rebuilt:  # premiumIndexKlines pages forward until a short one
        candles = minutes(inst, epoch_ms(start) - MINUTE_MS + 1, epoch_ms(end) - MINUTE_MS, r.now_ms)
        pages = candles // binance.KLINE_LIMIT + 1
        need.ask(WEIGHT, pages * binance.kline_weight(binance.KLINE_LIMIT), pages)
    return found, need


def need_bybit(r: Range, settled: Sequence[Instrument], rebuilt: Sequence[Instrument], listed: Sequence[Instrument]):
    found, need = Need("bybit"), Need("bybit")
    bucket = next(iter(SPECS["bybit"].budgets))
    for category in (bybit.LINEAR, bybit.INVERSE_CATEGORY):  # tickers, then instruments-info pages
        count = sum(bybit.category_of(inst) == category for inst in listed)
        requests = 1 + max(1, -(-count // bybit.INSTRUMENTS_LIMIT))
        found.ask(bucket, requests, requests)
    start, end = settled_window(r)
    for inst in settled:  # funding history pages backwards until a short one
        rows = settlements(inst, epoch_ms(start) - bybit.CONTEXT_MS, epoch_ms(end) + bybit.CONTEXT_MS, r.now_ms)
        pages = rows // bybit.PAGE_LIMIT + 1
        need.ask(bucket, pages, pages)
    start, end = premium_window(r)
    for inst in rebuilt:  # premium-index candles backwards until a short page (linear only)
        if bybit.category_of(inst) == bybit.LINEAR:
            candles = minutes(inst, epoch_ms(start) - MINUTE_MS + 1, epoch_ms(end) - MINUTE_MS, r.now_ms)
            pages = candles // bybit.KLINE_LIMIT + 1
            need.ask(bucket, pages, pages)
    return found, need


def need_okx(r: Range, settled: Sequence[Instrument], rebuilt: Sequence[Instrument], listed: Sequence[Instrument]):
    found, need = Need("okx"), Need("okx")
    found.ask(PUBLIC, 3, 3)  # funding-rate?instId=ANY, open-interest, instruments
    start, end = settled_window(r)
    lo, hi = epoch_ms(start - okx.CONTEXT), epoch_ms(end + okx.CONTEXT)
    window = epoch_ms(r.now - REST_HISTORY)  # the REST history's reach (about three months)
    for inst in settled:
        # REST pages go back from `hi`, never taking a short page for the end, to a row at or
        # before `lo`, or to an empty page past the REST window; the archive covers the rest
        first, _ = bounds_ms(inst, window, hi, r.now_ms)
        limit = okx.Client.page_limit
        if first <= lo and settlements(inst, window, lo, r.now_ms):
            pages, reached = -(-(settlements(inst, lo + 1, hi, r.now_ms) + 1) // limit), lo
        else:
            rows = settlements(inst, window, hi, r.now_ms)
            pages = -(-rows // limit) + 1
            reached = min(hi + 1, -(-first // (8 * HOUR_MS)) * 8 * HOUR_MS) if rows else hi + 1
        need.ask(PUBLIC, pages, pages)
        if reached > lo:  # the archive's links, then its monthly files (a CDN: no budget)
            need.ask(PUBLIC, 1)
            need.free += archive_months(at(lo), at(reached), r.now)
    start, end = premium_window(r)
    start_ms, end_ms = epoch_ms(start), epoch_ms(end)
    for inst in rebuilt:
        # a row is the minute ending at its floored `ts`; pages of 100 go back from `end` to a
        # row at or before `start`, or to an empty page where the history begins later
        first = epoch_ms(inst.listed_at) + MINUTE_MS if inst.listed_at is not None else start_ms
        last = min(end_ms // MINUTE_MS * MINUTE_MS, r.now_ms // MINUTE_MS * MINUTE_MS)
        rows = multiples(MINUTE_MS, max(start_ms + 1, first), last)
        pages = -(-(rows + 1) // okx.PREMIUM_LIMIT) if first <= start_ms else -(-rows // okx.PREMIUM_LIMIT) + 1
        need.ask(PREMIUM, pages, pages)
    return found, need


def at(ms: int) -> dt.datetime:
    return UNIX + dt.timedelta(milliseconds=ms)


def archive_months(begin: dt.datetime, end: dt.datetime, now: dt.datetime) -> int:
    """OKX monthly archive files (UTC+8 months) overlapping ``[begin, end]`` that have ended."""
    local = begin + dt.timedelta(hours=8)
    year, month, count = local.year, local.month, 0
    while month_start(year, month) <= end and month_start(year, month + 1) <= now:
        count += 1
        year, month = year + month // 12, month % 12 + 1
    return count


def need_hyperliquid(
    r: Range, settled: Sequence[Instrument], rebuilt: Sequence[Instrument], listed: Sequence[Instrument]
):
    found, need = Need("hyperliquid"), Need("hyperliquid")
    bucket = next(iter(SPECS["hyperliquid"].budgets))
    found.ask(bucket, hyperliquid.INFO_WEIGHT)  # metaAndAssetCtxs

    def pages(inst: Instrument, a: int, b: int) -> None:  # fundingHistory forward until a short page
        rows = settlements(inst, a, b, r.now_ms)
        full, rest = divmod(rows, hyperliquid.PAGE_ROWS)
        weight = full * hyperliquid.page_weight(hyperliquid.PAGE_ROWS) + hyperliquid.page_weight(rest)
        need.ask(bucket, weight, full + 1)

    start, end = settled_window(r)
    for inst in settled:
        pages(
            inst, epoch_ms(start - hyperliquid.LOOKBACK) - hyperliquid.SNAP_MS, epoch_ms(end) + hyperliquid.SNAP_MS - 1
        )
    start, end = premium_window(r)
    for inst in rebuilt:  # the same pages again, read for their premium column
        pages(inst, epoch_ms(start) + 1, epoch_ms(end) + hyperliquid.SNAP_MS - 1)
    return found, need


def need_deribit(r: Range, settled: Sequence[Instrument], rebuilt: Sequence[Instrument], listed: Sequence[Instrument]):
    found, need = Need("deribit"), Need("deribit")
    bucket = next(iter(SPECS["deribit"].budgets))
    found.ask(bucket, 1)  # get_instruments
    start, end = settled_window(r)
    for _ in settled:  # 30-day windows
        windows = len(deribit.history_windows(epoch_ms(start), epoch_ms(end)))
        need.ask(bucket, windows, windows)
    return found, need  # Deribit publishes no premium history: nothing to rebuild from


#: Per venue: (instrument discovery, fetch) of a prints run, as its client makes them.
NEEDS: dict[str, Callable[..., tuple[Need, Need]]] = {
    "binance": need_binance,
    "bybit": need_bybit,
    "okx": need_okx,
    "hyperliquid": need_hyperliquid,
    "deribit": need_deribit,
}


# --- the instruments a default backfill covers ----------------------------------------------


def chosen(found: Mapping[str, list[Instrument]]) -> tuple[dict[str, list[Instrument]], dict[str, list[Instrument]]]:
    """Per venue, the instruments ``raw_prints`` fetches and those whose history it rebuilds
    with no setting (``FundingConfig`` defaults: coins, contracts, rebuilt coins)."""
    config = FundingConfig()
    selection, rebuild = config.selection, config.reconstruct_selection
    venues = list(found)
    table = universe.frame(i for listed in found.values() for i in listed)
    per_venue = {v: [] for v in venues}
    for one in universe.from_frame(universe.select(table, selection, venues)):
        per_venue[one.venue].append(one)
    wanted = set(rebuild.coins)
    rebuilt = {v: [i for i in listed if i.symbol in wanted] for v, listed in per_venue.items()}
    return per_venue, rebuilt


def needs(r: Range, found: Mapping[str, list[Instrument]]) -> dict[str, tuple[Need, Need]]:
    """Per venue, what discovering its instruments and fetching the prints run ``r`` ask of it."""
    per_venue, rebuilt = chosen(found)
    out = {}
    for venue, listed in found.items():
        fetched = [i for i in per_venue[venue] if i.trades_between(r.lo, r.hi)]
        rebuilt_here = [i for i in rebuilt[venue] if i.trades_between(r.lo - FIRST_WINDOW, r.hi)]
        out[venue] = NEEDS[venue](r, fetched, rebuilt_here, listed)
    return out


def prints_days(start: dt.date, end: dt.date, today: dt.date) -> tuple[dt.date, dt.date]:
    """The days the prints step of a backfill of ``start..end`` covers (lookbacks included)."""
    step = next(s for s in backfill.plan(start, end, FundingConfig(), today) if "raw_prints" in s.assets)
    return step.start, step.end


# --- the proof: a backfill's fetch against the simulator with the budgets enforced -----------


class TimedSource:
    """A source that notes when each venue last answered."""

    def __init__(self, source: ClientSource) -> None:
        self.source = source
        self.name = source.name
        self.done: dict[str, float] = {}
        self._lock = threading.Lock()

    def _noted(self, venue: str, value):
        with self._lock:
            self.done[venue] = time.monotonic()
        return value

    def instruments(self, venue: str) -> list[Instrument]:
        return self._noted(venue, self.source.instruments(venue))

    def fetch(self, venue: str, *args):
        return self._noted(venue, self.source.fetch(venue, *args))

    def premium(self, venue: str, *args):
        return self._noted(venue, self.source.premium(venue, *args))

    def check(self, venue: str) -> None:
        self.source.check(venue)


@dataclasses.dataclass
class Proof:
    """A prints run's fetch against the simulator with ``budgets`` enforced, and its floor."""

    days: tuple[dt.date, dt.date]
    budgets: dict[str, Mapping[str, Budget]]
    #: Per venue: (instrument discovery, fetch) as counted.
    need: dict[str, tuple[Need, Need]]
    found: dict[str, list[Instrument]]
    #: Units each bucket held when the fetch began (discovery drew a few).
    levels: dict[str, dict[str, float]]
    discovery_s: float
    wall_s: float  # the fetch, from its first request to the last answer
    venue_s: dict[str, float]
    granted: dict[str, dict[str, float]]
    refused: dict[str, int]
    requests: dict[str, int]
    prints: int
    samples: int

    def floor(self, venue: str | None = None) -> float:
        """The fetch's floor from the buckets' levels at its start, of a venue or of the backfill."""
        if venue is None:
            return max(self.floor(v) for v in self.need)
        return floor_s(self.need[venue][1], self.budgets[venue], self.levels[venue])

    @property
    def ratio(self) -> float:
        return self.wall_s / self.floor()


def prove(
    days: tuple[dt.date, dt.date],
    budgets: Budgets | None = None,
    venues: Sequence[str] = VENUES,
) -> Proof:
    """Discover the venues' instruments, then fetch the prints and premium samples of the
    prints run of ``days`` from the simulator with ``budgets`` (default: the venues'
    published ones) enforced, through clients pacing to them; time the fetch. Its floor
    starts from what the buckets hold when it begins (discovery drew a few units)."""
    budgets = {v: dict((budgets or {}).get(v) or SPECS[v].budgets) for v in venues}
    with SimServer(limits=True, budgets=budgets) as server:
        urls = {v: (server.rest_url(v), server.ws_url(v)) for v in venues}
        source = TimedSource(ClientSource("sim", urls, budget=budgets, label="sim"))
        r = Range.of_days(*days, server.clock())
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(venues)) as pool:  # as the instruments asset
            found = dict(zip(venues, pool.map(source.instruments, venues)))
        discovery = time.monotonic() - t0
        per_venue, rebuilt = chosen(found)
        settled = [(v, per_venue[v], *days) for v in venues if per_venue[v]]
        rebuild = [(v, rebuilt[v], *days) for v in venues if rebuilt[v]]
        before = {v: server.requests[v] for v in venues}
        levels = {v: {name: bucket.level() for name, bucket in server.buckets[v].items()} for v in venues}
        t0 = time.monotonic()
        frames, samples = fetch_all(source, settled, rebuild)
        wall = time.monotonic() - t0
        return Proof(
            days=days,
            budgets=budgets,
            need=needs(r, found),
            found=found,
            levels=levels,
            discovery_s=discovery,
            wall_s=wall,
            venue_s={v: source.done[v] - t0 for v in venues},
            granted={v: {b: bucket.granted for b, bucket in server.buckets[v].items()} for v in venues},
            refused={v: sum(bucket.refused for bucket in server.buckets[v].values()) for v in venues},
            requests={v: server.requests[v] - before[v] for v in venues},
            prints=sum(f.height for f in frames),
            samples=sum(f.height for f in samples),
        )


# --- report -----------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes_, secs = divmod(round(seconds), 60)
    if minutes_ < 60:
        return f"{minutes_} min {secs:02d} s"
    hours, minutes_ = divmod(minutes_, 60)
    return f"{hours} h {minutes_:02d} min"


def units(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def floor_table(need: Mapping[str, tuple[Need, Need]], budgets: Budgets) -> list[str]:
    """One row per venue and bucket: the fetch's requests, the units it draws, the budget
    (with its source) and the time that bucket alone needs."""
    lines = [
        "| venue | requests | bucket | units | budget (published) | floor |",
        "|---|---:|---|---:|---|---:|",
    ]
    for venue, (_, n) in need.items():
        for i, (bucket, drawn) in enumerate(n.units.items()):
            b = budgets[venue][bucket]
            alone = max(0.0, drawn - b.requests) / b.per_second
            requests = (f"{n.requests:,}" + (f" (+{n.free:,} archive files)" if n.free else "")) if i == 0 else ""
            lines.append(
                f"| {venue if i == 0 else ''} | {requests} | {bucket} | {units(drawn)} "
                f"| {units(b.requests)} / {b.period_s:g} s: {b.source} | {duration(alone)} |"
            )
    return lines


def paragraph(text: str) -> list[str]:
    return textwrap.wrap(" ".join(text.split()), 100, break_on_hyphens=False)


def report(
    proof: Proof,
    full: dict[str, tuple[Need, Need]],
    full_days: tuple[dt.date, dt.date],
    backfill_days: tuple[dt.date, dt.date],
    command: str,
) -> str:
    """The BENCHMARKS.md section: the full history's floor, then the proof."""
    floors = sorted(((floor_s(full[v][1], proof.budgets[v]), v) for v in full), reverse=True)
    (full_floor, slowest), (second, runner_up) = floors[0], floors[1]
    found = ", ".join(f"{v} {n.requests}" for v, (n, _) in proof.need.items())
    lines = [
        SECTION,
        "",
        *paragraph(
            "A backfill's requests against the venues' published budgets (`VenueSpec.budgets`): five"
            " venues x BTC and ETH, each venue's main contract, intraday history rebuilt for BTC and ETH"
            " (the defaults). Each venue's requests are counted from its client's page sizes and paging"
            " rules and from the venue's history (listing to now); a bucket of B units refilled at r a"
            " second, full at the start, serves U units in no less than max(0, U - B) / r. Venues are"
            " fetched side by side (`funding_assets.sources.fetch_all`), so a backfill's floor is its"
            f" slowest venue's. Instrument discovery comes first ({found} requests): within every burst,"
            " it has no floor."
        ),
        "",
        *paragraph(
            f"**Full history** (prints {full_days[0]}..{full_days[1]}): floor **{duration(full_floor)}**,"
            f" set by {slowest}; next {runner_up}, {duration(second)}. The simulator serves every venue's"
            " history from 2020; OKX itself keeps about six months of premium history and Hyperliquid"
            " starts in 2023, so against the real venues those two ask for less."
        ),
        "",
        *floor_table(full, proof.budgets),
        "",
        *paragraph(
            f"**Proof**: the fetch of a backfill of {backfill_days[0]}..{backfill_days[1]}, whose prints"
            f" step covers {proof.days[0]}..{proof.days[1]} (lookbacks included), from the simulator over"
            " loopback with the same budgets enforced (`SimServer(limits=True)`), through the real"
            " clients pacing to them: discovery, then every venue's settled history and premium samples"
            " side by side, timed from the fetch's first request to its last answer. Its floor starts"
            " from what each bucket held then (discovery drew a few units)."
        ),
        "",
        "| venue | requests counted / served | units granted / counted | floor | measured | refused |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for venue, (discovery, fetch) in proof.need.items():
        granted = ", ".join(
            f"{b} {units(g)} / {units(fetch.units.get(b, 0.0) + discovery.units.get(b, 0.0))}"
            for b, g in proof.granted[venue].items()
        )
        lines.append(
            f"| {venue} | {fetch.requests + fetch.free:,} / {proof.requests[venue]:,} | {granted} "
            f"| {duration(proof.floor(venue))} | {duration(proof.venue_s[venue])} | {proof.refused[venue]} |"
        )
    lines += [
        f"| **backfill** | | | **{duration(proof.floor())}** | **{duration(proof.wall_s)}** | |",
        "",
        *paragraph(
            f"Measured / floor = **{proof.ratio:.3f}** (target: within {TOLERANCE:.0%}). Fetched"
            f" {proof.prints:,} settled prints and {proof.samples:,} premium samples; discovery took"
            f" {duration(proof.discovery_s)}. Units granted include discovery's. A venue below its"
            " budget (floor 0, or short of the slowest) finishes as fast as the simulator answers."
        ),
        "",
        f"Machine: {machine()}. Reproduce: `{command}`.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--start", type=dt.date.fromisoformat, default=PROOF_START, help="proof backfill's first day")
    ap.add_argument("--end", type=dt.date.fromisoformat, default=PROOF_END, help="proof backfill's last day")
    ap.add_argument("--write", action="store_true", help="put the section in BENCHMARKS.md")
    args = ap.parse_args(argv)
    today = dt.datetime.now(dt.UTC).date()
    proof = prove(prints_days(args.start, args.end, today))
    full_days = prints_days(FULL_START, today, today)
    full = needs(Range.of_days(*full_days, dt.datetime.now(dt.UTC).replace(tzinfo=None)), proof.found)
    command = f"{COMMAND} --start {args.start} --end {args.end} --write"
    section = report(proof, full, full_days, (args.start, args.end), command)
    print(section)
    if args.write:
        write_section(section)
    return section


if __name__ == "__main__":
    main()
