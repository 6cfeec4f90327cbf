"""OKX v5 perpetual swaps (``BTC-USDT-SWAP``, ``BTC-USDC-SWAP``, inverse ``BTC-USD-SWAP``):
settled history, predictions, stream, instruments. Every call names its swap by ``instId``.

Rates are decimal fractions per native funding interval (8/6/4/2/1 h, dynamic); times are
epoch milliseconds sent as strings, UTC. Endpoints (VENUES.md section 3):

- ``GET /api/v5/public/funding-rate-history?instId=&after=&before=&limit=`` -- settled
  rows, newest first; ``after`` = rows older than a ``fundingTime``, ``before`` = newer;
  page size 100 in older docs, 400 in 2026 (we ask for :attr:`Client.page_limit` and never
  read a short page as the end). Only about three months are retrievable. The stored rate
  is ``realizedRate`` (what was charged), not ``fundingRate``. Rows carry no interval: it
  is inferred from the gaps between settlements.
- ``GET /api/v5/public/market-data-history?module=3&instType=SWAP&instFamilyList=BTC-USDT
  &dateAggrType=monthly&begin=&end=`` -- links (``data[].details[].groupDetails[].url``)
  to monthly archive files for anything older; month buckets are UTC+8.
- ``GET /api/v5/public/funding-rate?instId=ANY`` -- every perpetual (plus FUTURES
  X-Perps, dropped) in one call. Naming trap: ``fundingTime`` is the UPCOMING settlement
  that ``fundingRate`` predicts; ``nextFundingTime`` is the one after. The open window's
  interval is ``fundingTime - prevFundingTime`` (``prevFundingTime`` is a newer field;
  without it ``nextFundingTime - fundingTime``, which is wrong across an interval change).
- ``GET /api/v5/public/instruments?instType=SWAP`` -- every swap in one answer: ``ctType``
  (``linear`` / ``inverse``), ``settleCcy``, ``listTime``, ``expTime`` (set when a swap is
  taken offline), ``state`` (``live``, ``suspend``, ``preopen``, ``test``). ``ctMult`` /
  ``ctVal`` size a contract and do not enter a name. Intervals and caps
  (``maxFundingRate`` / ``minFundingRate``) come from ``funding-rate?instId=ANY``, open
  interest from ``GET /api/v5/public/open-interest?instType=SWAP`` (``oiUsd``).
- WS ``/ws/v5/public`` channel ``funding-rate``: pushes rows shaped like the REST ones
  every 30-90 s; the server drops a connection silent for 30 s, so the client sends the
  text ``ping`` after ``ping_interval_s`` of silence and expects the text ``pong``.
- ``GET /api/v5/public/premium-history?instId=&after=&before=&limit=`` -- premium-index
  rows ``{instId, premium, ts}`` (strings), newest first, at most 100; ``after`` / ``before``
  are exclusive bounds on ``ts`` (older / newer than), so pages go backwards with ``after``
  = the oldest ``ts`` seen. 20 requests / 2 s per IP, a budget of its own. OKX computes
  the premium once a minute and documents ``ts`` as the "data generation time" (its
  example, ``1713925924000``, is 4 s past a minute): a row is the sample of the minute that
  ended at ``ts`` floored to the minute, which is when it is known (UNVERIFIED: the docs
  do not say which minute a row covers). Only the last months are kept (6 in the 2025 docs).

UNVERIFIED archive layout (the public docs do not show it): each archive is a zip of one
CSV with the header ``instrument_name,contract_type,funding_rate,real_funding_rate,
funding_time`` (the column list a public OKX download tool documents for ``swaprate``),
rates as decimal strings and ``funding_time`` the settlement instant in epoch ms, like
``fundingTime`` on REST (third-party copies of these files are labelled one period late,
DATA.md section 1b; OKX's own rows are not). Columns are found by header name, and
``funding_rate`` is used when ``real_funding_rate`` is absent.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile
from collections.abc import AsyncIterator, Sequence
from operator import itemgetter
from typing import Any
from urllib.parse import urljoin

import httpx
import orjson
import polars as pl
from websockets.asyncio.client import connect

from ..instruments import Instrument
from ..prints import PREDICTED
from ..venues import INVERSE, USDC, USDT, spec
from ..venues.okx import PREMIUM
from . import (
    HOUR_MS,
    KNOWN_INTERVALS,
    MINUTE_MS,
    ROW_ERRORS,
    WS_COMPRESSION,
    VenueClient,
    VenueError,
    check_print,
    checked,
    coin_of,
    epoch_ms,
    instruments_of,
    ms_datetime,
    named_perpetual,
    number,
    optional_number,
    parse_burst,
    parse_rows,
    premium_frame,
    prints_frame,
    recv_burst,
    settled_rows,
    snap_ms,
    stream_frame,
    tagged,
)
from .http import page_json

VENUE = "okx"
SPEC = spec(VENUE)
HISTORY_PATH = "/api/v5/public/funding-rate-history"
INSTRUMENTS_PATH = "/api/v5/public/instruments"
OPEN_INTEREST_PATH = "/api/v5/public/open-interest"
CURRENT_PATH = "/api/v5/public/funding-rate"
ARCHIVE_PATH = "/api/v5/public/market-data-history"
PREMIUM_PATH = "/api/v5/public/premium-history"
WS_PATH = "/ws/v5/public"
ALL_PERPETUALS = "ANY"
SWAP = "SWAP"
CHANNEL = "funding-rate"
ARCHIVE_MODULE = "3"  # funding rates
ARCHIVE_COLUMNS = ("instrument_name", "contract_type", "funding_rate", "real_funding_rate", "funding_time")

#: Settlements fetched beyond each end of a range, so the first and last rows' gaps (their
#: intervals) are known even after a run of missing settlements; trimmed afterwards.
CONTEXT = dt.timedelta(days=1)
#: Silence after which the client pings; OKX drops a connection silent for 30 s.
PING_INTERVAL_S = SPEC.ping_interval_s
#: Swap states kept as listed (``preopen`` and ``test`` swaps do not trade).
LISTED_STATES = ("live", "suspend")
SETTLE_CONTRACTS = {"USDT": USDT, "USDC": USDC}
#: Rows per premium-history page (the endpoint's maximum and default).
PREMIUM_LIMIT = 100

Point = tuple[int, float]  # (settlement epoch ms, rate per interval)


# --- pure parsing: payload -> rows ----------------------------------------------------------


def envelope_rows(payload: Any) -> list[dict]:
    """The ``data`` rows of an OKX envelope (REST ``{"code","msg","data"}`` or WS push).

    Raises :class:`VenueError` when ``code`` is not ``"0"`` (e.g. ``51001`` unknown
    instrument, ``50011`` rate limit).
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise VenueError(f"okx: not an OKX envelope: {str(payload)[:200]}")
    code = payload.get("code", "0")
    if code != "0":
        raise VenueError(f"okx: error code {code}: {payload.get('msg', '')}")
    return payload["data"]


def parse_history(payload: Any) -> list[tuple[str, int, float]]:
    """funding-rate-history envelope -> ``(instId, fundingTime ms, realizedRate)``, as sent
    (newest first). ``realizedRate`` is the charged rate per interval; ``fundingRate``
    differs from it in late decimals and is not kept. A malformed row is a :class:`VenueError`."""
    rows = envelope_rows(payload)
    try:
        return [_history_row(row) for row in rows]
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise VenueError(f"okx {HISTORY_PATH}: malformed row ({exc!r})") from None


def _history_row(row: dict) -> tuple[str, int, float]:
    inst, ts_ms, rate = row["instId"], int(row["fundingTime"]), number(row["realizedRate"])
    if not isinstance(inst, str):
        raise ValueError(f"instId {inst!r} in row {str(row)[:200]}")
    check_print(rate, (ts_ms,))
    return inst, ts_ms, rate


def parse_premium_history(payload: Any) -> tuple[list[str], list[int], list[float]]:
    """premium-history envelope -> ``(instId, ts ms, premium)`` columns as sent (newest first);
    the premium is a decimal fraction of the index price."""
    rows = envelope_rows(payload)
    try:
        return (
            list(map(itemgetter("instId"), rows)),
            list(map(int, map(itemgetter("ts"), rows))),
            list(map(float, map(itemgetter("premium"), rows))),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise VenueError(f"okx: malformed premium-history row ({exc!r})") from None


def open_interval_hours(row: dict) -> float:
    """Length (h) of the window a funding-rate row predicts, which ends at ``fundingTime``."""
    funding = int(row["fundingTime"])
    previous = row.get("prevFundingTime")
    gap = funding - int(previous) if previous else int(row["nextFundingTime"]) - funding
    return gap / HOUR_MS


def parse_funding_rates(payload: Any) -> list[dict]:
    """funding-rate rows (REST envelope, WS push, or a bare list of rows) -> predicted rows.

    Only ``instType == "SWAP"`` rows are kept (``instId=ANY`` also lists FUTURES X-Perps).
    Each row: ``inst_id``, ``coin`` (its canonical coin; None if no swap name), ``ts_ms``
    (quote time), ``funding_time_ms`` (the upcoming settlement, OKX ``fundingTime``),
    ``rate`` (``fundingRate``, per interval), ``interval_hours``, ``kind='predicted'``.
    Raises KeyError/TypeError/ValueError on a malformed row (a non-string ``instId`` or
    ``instType``, values no venue could mean: :func:`check_print`).
    """
    rows = payload if isinstance(payload, list) else envelope_rows(payload)
    return [_funding_row(row) for row in rows if _inst_type(row) == SWAP]


def _inst_type(row: dict) -> str:
    inst_type = row["instType"]
    if not isinstance(inst_type, str):
        raise ValueError(f"instType {inst_type!r} in row {str(row)[:200]}")
    return inst_type


def _funding_row(row: dict) -> dict:
    inst = row["instId"]
    if not isinstance(inst, str):
        raise ValueError(f"instId {inst!r} in row {str(row)[:200]}")
    return checked(
        {
            "inst_id": inst,
            "coin": coin_of(VENUE, inst),
            "ts_ms": int(row["ts"]),
            "funding_time_ms": int(row["fundingTime"]),
            "rate": number(row["fundingRate"]),
            "interval_hours": open_interval_hours(row),
            "kind": PREDICTED,
        }
    )


def parse_funding_info(payload: Any) -> tuple[dict[str, tuple[float, float | None, float | None]], int]:
    """``funding-rate?instId=ANY`` -> ``{instId: (open window hours, cap, floor)}`` of its swaps
    and the count of rows that could not be read (skipped). Caps are ``maxFundingRate`` /
    ``minFundingRate``, decimal fractions per interval."""
    out: dict[str, tuple[float, float | None, float | None]] = {}
    skipped = 0
    for row in envelope_rows(payload):
        try:
            if _inst_type(row) != SWAP:
                continue
            hours = open_interval_hours(row)
            if hours not in KNOWN_INTERVALS:
                raise ValueError(f"interval {hours} h")
            out[row["instId"]] = (
                hours,
                optional_number(row.get("maxFundingRate")),
                optional_number(row.get("minFundingRate")),
            )
        except ROW_ERRORS:
            skipped += 1
    return out, skipped


def parse_open_interest(payload: Any) -> dict[str, float]:
    """``open-interest?instType=SWAP`` -> ``{instId: oiUsd}``; unreadable rows are left out."""
    out = {}
    for row in envelope_rows(payload):
        try:
            out[row["instId"]] = number(row["oiUsd"])
        except ROW_ERRORS:
            continue
    return out


def parse_instruments(
    payload: Any,
    funding: dict[str, tuple[float, float | None, float | None]],
    open_interest: dict[str, float],
) -> tuple[list[Instrument], int]:
    """``instruments?instType=SWAP`` -> the swaps listed (``live`` or ``suspend``) and the count
    of rows that could not be read. ``ctType`` ``linear`` swaps are USDT / USDC by
    ``settleCcy``, ``inverse`` ones coin-settled; a swap with ``expTime`` is being delisted
    then. A swap missing from ``funding`` gets the venue's default interval and no cap."""

    def one(row: dict) -> Instrument | None:
        if row["instType"] != SWAP or row["state"] not in LISTED_STATES:
            return None
        inst_id = row["instId"]
        named = named_perpetual(VENUE, inst_id)
        settle = row["settleCcy"]
        contract = INVERSE if row["ctType"] == "inverse" else SETTLE_CONTRACTS.get(settle)
        if contract != named.contract:
            raise ValueError(f"{inst_id}: ctType {row['ctType']!r} settling in {settle!r} is not {named.contract}")
        hours, cap, floor = funding.get(inst_id, (SPEC.default_interval_hours, None, None))
        return Instrument(
            venue=VENUE,
            symbol=named.coin,
            contract=contract,
            venue_symbol=inst_id,
            multiplier=named.multiplier,
            settle=settle,
            listed_at=ms_datetime(row.get("listTime")),
            delisted_at=ms_datetime(row.get("expTime")),
            interval_hours=hours,
            rate_cap=cap,
            rate_floor=floor,
            open_interest_usd=open_interest.get(inst_id),
        )

    return parse_rows(VENUE, envelope_rows(payload), one, INSTRUMENTS_PATH)


def wanted_rows(rows: list[dict], wanted: dict[str, Instrument]) -> list[dict]:
    """The predicted rows of the wanted swaps (by ``instId``), tagged with their instrument."""
    return [tagged(r, wanted[r["inst_id"]]) for r in rows if r["inst_id"] in wanted]


def parse_archive_links(payload: Any) -> list[str]:
    """market-data-history envelope -> the download URLs it lists (absolute or root-relative)."""
    return [
        group["url"]
        for entry in envelope_rows(payload)
        for detail in entry["details"]
        for group in detail["groupDetails"]
    ]


def _archive_body(response: httpx.Response) -> list[tuple[str, int, float]]:
    """A downloaded archive's rows; a truncated zip is a malformed body (retried)."""
    try:
        return parse_archive(response.content)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"truncated archive: {exc}") from None


def parse_archive(content: bytes) -> list[tuple[str, int, float]]:
    """An archive zip (one CSV) -> ``(instrument_name, funding_time ms, real_funding_rate)``.

    Raises ``zipfile.BadZipFile`` for a truncated download (worth retrying) and
    :class:`VenueError` when the CSV lacks the columns of the assumed layout.
    """
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        text = archive.read(archive.namelist()[0]).decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    header = set(reader.fieldnames or ())
    rate_column = "real_funding_rate" if "real_funding_rate" in header else "funding_rate"
    if not {"instrument_name", "funding_time", rate_column} <= header:
        raise VenueError(f"okx: archive CSV header {sorted(header)} lacks the columns of {ARCHIVE_COLUMNS}")
    return [(row["instrument_name"], int(row["funding_time"]), float(row[rate_column])) for row in reader]


# --- the client -----------------------------------------------------------------------------


class Client(VenueClient):
    """OKX v5 public market data for USDT, USDC and inverse swaps."""

    venue = VENUE
    rest_url = SPEC.rest_url
    ws_url = SPEC.ws_url
    #: Rows asked per history page (400 since 2025; a venue serving 100 still pages right:
    #: a short page is never read as the end).
    page_limit = SPEC.history_page

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.skipped_frames = 0
        self.pongs = 0

    # instruments --------------------------------------------------------------------------

    def instruments(self) -> list[Instrument]:
        """Every swap listed: ``instruments?instType=SWAP``, ``funding-rate?instId=ANY``
        (intervals, caps) and ``open-interest?instType=SWAP`` (ranking): three requests."""
        funding, bad_funding = parse_funding_info(self.http.get(CURRENT_PATH, {"instId": ALL_PERPETUALS}))
        open_interest = parse_open_interest(self.http.get(OPEN_INTEREST_PATH, {"instType": SWAP}))
        found, bad = parse_instruments(self.http.get(INSTRUMENTS_PATH, {"instType": SWAP}), funding, open_interest)
        self.skipped_instruments = bad + bad_funding
        return found

    # settled ------------------------------------------------------------------------------

    def settled(self, coin: str | Instrument, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        """Realised prints with ``funding_time`` in ``[start, end]`` (naive UTC): the REST
        window (about three months) stitched to monthly archives for anything older,
        deduplicated (REST wins), intervals inferred from gaps, rates per interval."""
        instrument = self._instrument(coin)
        inst = instrument.venue_symbol
        lo, hi = epoch_ms(start - CONTEXT), epoch_ms(end + CONTEXT)
        recent = self._rest_history(inst, lo, hi)
        reached = min(recent, default=hi + 1)
        points = self._archive_history(inst, lo, reached) if reached > lo else {}
        points.update(recent)
        in_range = [p for t, p in points.items() if lo <= t <= hi]
        rows = settled_rows(instrument.symbol, in_range, self._interval(instrument))
        first, last = epoch_ms(start), epoch_ms(end)
        rows = [r for r in rows if first <= r["funding_time_ms"] <= last]
        return prints_frame(rows, self.venue, self.source, instrument)

    def _rest_history(self, inst: str, lo: int, hi: int) -> dict[int, Point]:
        """Settlements in ``[lo, hi]`` ms the REST window still holds, keyed by snapped time:
        pages backwards (``after`` = oldest seen) until past ``lo`` or an empty page. A row of
        another instrument is a :class:`VenueError` (dropping it could lose a settlement)."""
        found: dict[int, Point] = {}
        after = hi + 1
        while True:
            query = {"instId": inst, "after": after, "limit": self.page_limit}
            rows = parse_history(self.http.get(HISTORY_PATH, query))
            strays = [name for name, _, _ in rows if name != inst]
            if strays:
                raise VenueError(f"okx {HISTORY_PATH}: rows of {strays[0]!r} in the history of {inst}")
            page = [(t, rate) for _, t, rate in rows]
            if not page:
                return found
            found.update((snap_ms(t), (t, rate)) for t, rate in page)
            oldest = min(t for t, _ in page)
            if oldest <= lo or oldest >= after:  # done, or a venue that ignores `after`
                return found
            after = oldest

    def _archive_history(self, inst: str, lo: int, hi: int) -> dict[int, Point]:
        """Settlements in the monthly archives covering ``[lo, hi)`` ms, keyed by snapped time."""
        query = {
            "module": ARCHIVE_MODULE,
            "instType": SWAP,
            "instFamilyList": inst.removesuffix(f"-{SWAP}"),
            "dateAggrType": "monthly",
            "begin": lo,
            "end": hi,
        }
        found: dict[int, Point] = {}
        for url in parse_archive_links(self.http.get(ARCHIVE_PATH, query)):
            for name, t, rate in self._download(urljoin(self.rest_base + "/", url)):
                if name == inst:
                    found[snap_ms(t)] = (t, rate)
        return found

    def _download(self, url: str) -> list[tuple[str, int, float]]:
        """GET and parse one archive file (a CDN download outside the API budget)."""
        return self.http.get(url, cost=0, decode=_archive_body)

    # premium ------------------------------------------------------------------------------

    def premium_history(self, coin: str | Instrument, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        """Per-minute premium samples known in ``(start, end]`` (naive UTC), in :data:`PREMIUM_SCHEMA`.

        ``ts`` = the row's ``ts`` (its generation time, seconds after its minute ended)
        floored to the minute; ``premium`` a decimal fraction. Pages of 100 go backwards
        (``after`` = oldest ``ts`` seen) until past ``start`` or out of rows: OKX keeps only
        the last months, and older samples are simply absent.
        """
        instrument = self._instrument(coin)
        inst = instrument.venue_symbol
        start_ms, end_ms = epoch_ms(start), epoch_ms(end)
        after = end_ms // MINUTE_MS * MINUTE_MS + MINUTE_MS  # rows before it are known by `end`
        times: list[int] = []
        premiums: list[float] = []
        while True:
            query = {"instId": inst, "after": after, "limit": PREMIUM_LIMIT}
            page = self.http.get(PREMIUM_PATH, query, bucket=PREMIUM, decode=page_json)
            names, stamps, values = parse_premium_history(page)
            if any(name != inst for name in names):
                mine = [i for i, name in enumerate(names) if name == inst]
                stamps, values = [stamps[i] for i in mine], [values[i] for i in mine]
            times += stamps
            premiums += values
            oldest = min(stamps, default=None)
            if oldest is None or oldest // MINUTE_MS * MINUTE_MS <= start_ms:
                known = pl.Series(times, dtype=pl.Int64) // MINUTE_MS * MINUTE_MS  # floored to the minute
                return premium_frame(self.venue, instrument, known, premiums, start_ms, end_ms)
            if oldest >= after:
                raise VenueError(f"okx: premium-history for {inst} ignored `after` ({oldest} >= {after})")
            after = oldest

    # current ------------------------------------------------------------------------------

    def current(self, coins: Sequence[str | Instrument]) -> pl.DataFrame:
        """The open window's predicted rate per instrument, all from one ``instId=ANY`` request;
        ``funding_time`` = OKX ``fundingTime`` (the upcoming settlement), ``ts`` = OKX ``ts``."""
        wanted = instruments_of(VENUE, coins)
        payload = self.http.get(CURRENT_PATH, {"instId": ALL_PERPETUALS})
        try:
            rows = wanted_rows(parse_funding_rates(payload), wanted)
        except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as exc:
            raise VenueError(f"okx {CURRENT_PATH}: malformed row ({exc!r})") from None
        missing = set(wanted) - {r["venue_symbol"] for r in rows}
        if missing:
            raise VenueError(f"okx {CURRENT_PATH}: no funding for {', '.join(sorted(missing))}")
        return prints_frame(rows, self.venue, self.source)

    # stream -------------------------------------------------------------------------------

    async def stream(
        self, coins: Sequence[str | Instrument], *, ping_interval_s: float = PING_INTERVAL_S
    ) -> AsyncIterator[pl.DataFrame]:
        """Predicted prints from the ``funding-rate`` channel, one frame per push, or per burst
        of pushes received together (in arrival order).

        Sends the text ``ping`` after ``ping_interval_s`` without a message and raises
        ``ConnectionError`` if the next interval brings nothing either (not even ``pong``);
        a closed connection raises the websockets exception. Reconnecting is the caller's job.
        """
        wanted = instruments_of(VENUE, coins)
        args = [{"channel": CHANNEL, "instId": name} for name in sorted(wanted)]
        async with connect(
            self.ws_base + WS_PATH, ping_interval=None, open_timeout=10, compression=WS_COMPRESSION
        ) as ws:
            await ws.send(json.dumps({"op": "subscribe", "args": args}))
            pinged = False
            while True:
                try:
                    messages = await recv_burst(ws, ping_interval_s)
                except TimeoutError:
                    if pinged:
                        raise ConnectionError(f"okx: no pong within {ping_interval_s} s of a ping") from None
                    await ws.send("ping")
                    pinged = True
                    continue
                pinged = False
                rows, error = parse_burst(messages, lambda message: self._stream_rows(message, wanted))
                if rows:  # the pushes before an error event were received: handed over first
                    yield stream_frame(rows, self.venue, self.stream_source)
                if error is not None:
                    raise error

    def _stream_frame(self, message: str | bytes, wanted: dict[str, Instrument]) -> pl.DataFrame | None:
        """The prints of one WS message as a frame, or None (see :meth:`_stream_rows`)."""
        rows = self._stream_rows(message, wanted)
        return stream_frame(rows, self.venue, self.stream_source) if rows else None

    def _stream_rows(self, message: str | bytes, wanted: dict[str, Instrument]) -> list[dict]:
        """The print rows of one WS message (counted in ``stream_messages`` when it has some);
        none for pong, acks and (counted) junk."""
        if message == "pong":
            self.pongs += 1
            return []
        try:
            payload = orjson.loads(message)
        except orjson.JSONDecodeError:
            return self._skip()
        event = payload.get("event") if isinstance(payload, dict) else None
        if event == "error":
            raise VenueError(f"okx WS error {payload.get('code')}: {payload.get('msg')}")
        if event:
            return []  # subscribe / unsubscribe acknowledgement
        try:
            rows = wanted_rows(parse_funding_rates(payload), wanted)
        except (VenueError, KeyError, TypeError, ValueError, OverflowError, AttributeError):
            return self._skip()
        self.stream_messages += bool(rows)
        return rows

    def _skip(self) -> list[dict]:
        self.skipped_frames += 1
        return []
