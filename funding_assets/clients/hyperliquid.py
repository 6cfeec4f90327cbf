"""Hyperliquid: every REST read is ``POST /info`` with a JSON body; live data on ``/ws``.

Venue facts (VENUES.md section 4, DATA.md section 2):

- ``fundingHistory``: rows ``{coin, fundingRate (string), premium (string), time (ms
  number)}`` stamped ``startTime``..``endTime`` inclusive, ascending, at most 500 per answer;
  page on with ``startTime = last time + 1``. ``time`` is the settlement block time, from
  10 ms to ~24 min after the hour it settles, so it is rounded to the hour. ``fundingRate``
  is per hour since 2023-06-08 01:00 UTC and per 8 h before; no row says which, so the
  interval comes from the gap to the previous settlement. ``premium`` is the window's
  average premium (a decimal fraction), the input of the funding formula: it is the
  venue's premium history, one value per settlement.
- ``metaAndAssetCtxs``: ``[meta, ctxs]`` where ``ctxs[i]`` belongs to ``meta.universe[i]``
  (an index join: ctxs carry no name). ``ctx.funding`` is the running hourly estimate
  that settles at the next top of the hour. The payload has no timestamp. It is also the
  instrument list: every ``universe`` name not ``isDelisted`` is a USDC perpetual
  (``kPEPE`` = 1000 PEPE), hourly, capped at 4 % an hour; ``openInterest`` (coins) x
  ``markPx`` is its open interest in USD and ``dayNtlVlm`` its 24 h volume. Builder-deployed
  (HIP-3) perpetuals are named ``dex:COIN`` and are not listed here.
- ``predictedFundings``: ``[[coin, [[venue, {fundingRate, nextFundingTime,
  fundingIntervalHours} | null], ...]], ...]``, each rate per its venue's own interval.
- WebSocket ``activeAssetCtx``: pushes ``{coin, ctx}`` with no timestamp. The server drops a
  connection that has sent nothing for 60 s: the client sends ``{"method":"ping"}``.
- Budget: 1200 weight a minute per IP; an info read weighs 20, ``fundingHistory`` one more
  per 20 rows returned. A history read is charged for the most rows its window can hold, and
  the difference given back once the answer says how many came.

Live quotes (``current``, ``stream``, ``predicted_fundings``) are stamped with the client's
receive time and assume the hourly regime Hyperliquid has used since 2023-06-08.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import orjson
import polars as pl
from websockets.asyncio.client import connect

from ..instruments import Instrument
from ..prints import PREDICTED
from ..venues import coin_for_symbol, spec
from . import (
    HOUR_MS,
    WS_COMPRESSION,
    HttpClient,
    VenueClient,
    VenueError,
    check_print,
    checked,
    coin_of,
    epoch_ms,
    instruments_of,
    named_perpetual,
    number,
    parse_burst,
    parse_rows,
    premium_frame,
    prints_frame,
    recv_burst,
    settled_rows,
    stream_frame,
    tagged,
)

VENUE = "hyperliquid"
SPEC = spec(VENUE)
INFO_PATH = "/info"
WS_PATH = "/ws"
#: Hyperliquid perpetuals settle in USDC.
SETTLE = "USDC"

PAGE_ROWS = SPEC.history_page
INFO_WEIGHT = 20
ROWS_PER_EXTRA_WEIGHT = 20

#: History fetched before ``start`` so the first settlement's gap (its interval) is known,
#: with room for a run of missing settlements.
LOOKBACK = dt.timedelta(hours=24)
#: Settlement stamps land within this much of their hour (observed: up to ~24 min late).
SNAP_MS = HOUR_MS // 2
#: The server closes a connection that has sent nothing for 60 s; ping well before.
PING_INTERVAL_S = SPEC.ping_interval_s
PING = json.dumps({"method": "ping"})

#: predictedFundings venue names -> our venues.
PREDICTED_VENUES = {"BinPerp": "binance", "BybitPerp": "bybit", "HlPerp": VENUE}


def snap_hour(ms: int) -> int:
    """Epoch ms rounded to the nearest whole hour (Hyperliquid settles on the hour)."""
    return (ms + SNAP_MS) // HOUR_MS * HOUR_MS


def next_hour(ms: int) -> int:
    """The first top of the hour strictly after ``ms``: when the open hourly window settles."""
    return (ms // HOUR_MS + 1) * HOUR_MS


def page_weight(rows: int) -> int:
    """Weight the venue charges for a ``fundingHistory`` answer of ``rows`` rows."""
    return INFO_WEIGHT + rows // ROWS_PER_EXTRA_WEIGHT


def history_weight(start_ms: int, end_ms: int) -> float:
    """Weight of a ``fundingHistory`` read, for the largest page the window can hold (the
    rows are known only once it is answered)."""
    return page_weight(min(PAGE_ROWS, max(0, (end_ms - start_ms) // HOUR_MS + 1)))


# --- pure parsers: payload -> print rows ------------------------------------------------


def parse_funding_history(coin: str, payload: list[dict]) -> list[dict]:
    """``fundingHistory`` rows -> realised print rows, one per settlement hour.

    ``funding_time_ms`` is ``time`` rounded to the hour, ``ts_ms`` the venue's stamp and
    ``rate`` the decimal fraction per ``interval_hours`` (1 h, or 8 h before the switch of
    2023-06-08), inferred from the gap to the previous settlement. A repeated hour keeps
    the latest stamp. A malformed row is a :class:`VenueError`.
    """
    latest: dict[int, tuple[int, float]] = {}
    try:
        for row in sorted(payload, key=lambda r: int(r["time"])):
            stamp, rate = int(row["time"]), number(row["fundingRate"])
            check_print(rate, (stamp,))
            latest[snap_hour(stamp)] = (stamp, rate)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise VenueError(f"{VENUE} fundingHistory {coin}: malformed row ({exc!r})") from None
    # settled_rows snaps to the minute; hand it the hours, then give back the venue's stamps.
    rows = settled_rows(coin, [(hour, rate) for hour, (_, rate) in latest.items()], SPEC.default_interval_hours)
    for row in rows:
        row["ts_ms"] = latest[row["funding_time_ms"]][0]
    return rows


def universe_names(meta: dict) -> list[str | None]:
    """The venue name of each ``meta.universe`` entry, by position; None if delisted.

    Raises ValueError on an entry whose ``name`` is not a string or ``isDelisted`` not a
    boolean: skipping it could lose a coin's prediction."""
    names = []
    for asset in meta["universe"]:
        name, delisted = asset["name"], asset.get("isDelisted", False)
        if not isinstance(name, str) or not isinstance(delisted, bool):
            raise ValueError(f"malformed universe entry {str(asset)[:200]}")
        names.append(None if delisted else name)
    return names


def universe_coins(meta: dict) -> list[str | None]:
    """The canonical coin of each ``meta.universe`` entry, by position (``kPEPE`` -> ``PEPE``);
    None if delisted or not a perpetual name. Raises as :func:`universe_names`."""
    return [None if name is None else coin_for_symbol(VENUE, name) for name in universe_names(meta)]


def _aligned(payload: list) -> tuple[dict, list]:
    """``[meta, ctxs]`` with one ctx per universe entry (ValueError otherwise)."""
    meta, ctxs = payload
    if len(meta["universe"]) != len(ctxs):
        raise ValueError(f"metaAndAssetCtxs: {len(meta['universe'])} universe entries but {len(ctxs)} ctxs")
    return meta, ctxs


def parse_instruments(payload: Any) -> tuple[list[Instrument], int]:
    """``metaAndAssetCtxs`` -> the perpetuals listed and the count of entries that could not be
    read. Delisted entries and HIP-3 ``dex:COIN`` names are left out; open interest is
    ``openInterest`` x ``markPx`` (USD), volume ``dayNtlVlm`` (USD)."""
    try:
        meta, ctxs = _aligned(payload)
        universe = list(meta["universe"])
    except (KeyError, TypeError, ValueError) as exc:
        raise VenueError(f"{VENUE} metaAndAssetCtxs: unexpected payload ({exc!r})") from None

    def one(pair: tuple[dict, dict]) -> Instrument | None:
        asset, ctx = pair
        name = asset["name"]
        if asset.get("isDelisted") is True or (isinstance(name, str) and ":" in name):
            return None
        named = named_perpetual(VENUE, name)
        return Instrument(
            venue=VENUE,
            symbol=named.coin,
            contract=named.contract,
            venue_symbol=name,
            multiplier=named.multiplier,
            settle=SETTLE,
            interval_hours=SPEC.default_interval_hours,
            rate_cap=SPEC.rate_cap,
            rate_floor=-SPEC.rate_cap,
            open_interest_usd=number(ctx["openInterest"]) * number(ctx["markPx"]),
            volume_usd=number(ctx["dayNtlVlm"]),
        )

    return parse_rows(VENUE, zip(universe, ctxs), one, "metaAndAssetCtxs")


def predicted_row(coin: str, funding: str, received_ms: int) -> dict:
    """A live hourly estimate received at ``received_ms``, settling at the next top of the hour
    (checked: ``ValueError`` if no venue could mean it)."""
    return checked(
        {
            "coin": coin,
            "ts_ms": received_ms,
            "funding_time_ms": next_hour(received_ms),
            "rate": number(funding),
            "interval_hours": SPEC.default_interval_hours,
            "kind": PREDICTED,
        }
    )


def parse_meta_and_asset_ctxs(payload: list, received_ms: int) -> list[dict]:
    """``[meta, ctxs]`` -> predicted rows of the listed perpetuals (ctxs joined by index), each
    with its venue ``name``."""
    meta, ctxs = _aligned(payload)
    return [
        {**predicted_row(coin, ctx["funding"], received_ms), "name": name}
        for name, coin, ctx in zip(universe_names(meta), universe_coins(meta), ctxs)
        if coin is not None
    ]


def parse_predicted_fundings(payload: list, received_ms: int) -> list[dict]:
    """``predictedFundings`` -> predicted rows of our coins, each tagged with its ``venue``.

    Rates stay per each venue's own interval (``fundingIntervalHours``); entries that are
    null or lack the interval (seen on some BinPerp coins) are skipped, since their unit is
    unknown. Venues other than ours are skipped too.
    """
    rows = []
    for name, entries in payload:
        coin = coin_for_symbol(VENUE, name)
        if coin is None:
            continue
        for venue_name, entry in entries:
            venue = PREDICTED_VENUES.get(venue_name)
            if venue is None or not entry or entry.get("fundingIntervalHours") is None:
                continue
            rows.append(
                checked(
                    {
                        "venue": venue,
                        "coin": coin,
                        "ts_ms": received_ms,
                        "funding_time_ms": int(entry["nextFundingTime"]),
                        "rate": number(entry["fundingRate"]),
                        "interval_hours": number(entry["fundingIntervalHours"]),
                        "kind": PREDICTED,
                    }
                )
            )
    return rows


def parse_ws_message(message: dict, received_ms: int) -> dict | None:
    """An ``activeAssetCtx`` push -> a predicted row (of the canonical coin); None for other
    channels or names that are no perpetual of the main dex (HIP-3 ``xyz:AAPL``).

    Raises ``KeyError``/``TypeError``/``ValueError`` on a malformed push.
    """
    if message.get("channel") != "activeAssetCtx":
        return None
    data = message["data"]
    if not isinstance(data["coin"], str):
        raise ValueError(f"activeAssetCtx coin {data['coin']!r}")
    coin = coin_of(VENUE, data["coin"])  # HIP-3 names such as "xyz:AAPL" are not listed
    if coin is None:
        return None
    return predicted_row(coin, data["ctx"]["funding"], received_ms)


def subscription(coin: str) -> dict:
    return {"method": "subscribe", "subscription": {"type": "activeAssetCtx", "coin": coin}}


# --- the client -------------------------------------------------------------------------


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Client(VenueClient):
    """Hyperliquid over ``POST /info`` and ``/ws``.

    ``clock`` (naive UTC) stamps quotes whose payload has no time of its own; pass the
    simulator's clock when talking to it.
    """

    venue = VENUE
    rest_url = SPEC.rest_url
    ws_url = SPEC.ws_url

    def __init__(
        self,
        rest_url: str | None = None,
        ws_url: str | None = None,
        *,
        http: HttpClient | None = None,
        source_label: str | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        super().__init__(rest_url, ws_url, http=http, source_label=source_label)
        self.clock = clock
        self.skipped_frames = 0
        self.pings_sent = 0
        self.pongs = 0

    def _info(self, body: dict, weight: float) -> Any:
        # Info requests are reads: safe to retry.
        return self.http.post(INFO_PATH, body, cost=weight, idempotent=True)

    def _now_ms(self) -> int:
        if self.clock is utc_now:  # the wall clock, read without making a datetime (every push)
            return time.time_ns() // 1_000_000
        return epoch_ms(self.clock())

    # --- instruments --------------------------------------------------------------------

    def instruments(self) -> list[Instrument]:
        """Every perpetual listed on the main dex, from one ``metaAndAssetCtxs`` read."""
        found, self.skipped_instruments = parse_instruments(self._info({"type": "metaAndAssetCtxs"}, INFO_WEIGHT))
        return found

    # --- settled ------------------------------------------------------------------------

    def history_pages(self, coin: str, start_ms: int, end_ms: int) -> list[dict]:
        """Every ``fundingHistory`` row stamped in ``[start_ms, end_ms]``, following the pages."""
        rows: list[dict] = []
        cursor = start_ms
        while cursor <= end_ms:
            body = {"type": "fundingHistory", "coin": coin, "startTime": cursor, "endTime": end_ms}
            charged = history_weight(cursor, end_ms)
            page = self._info(body, charged)
            if not isinstance(page, list):
                raise VenueError(f"{VENUE} fundingHistory {coin}: expected a list, got {str(page)[:120]!r}")
            # charged for the rows the window could hold; the venue counts the rows it sent
            self.http.refund(charged - page_weight(len(page)))
            rows.extend(page)
            if len(page) < PAGE_ROWS:
                return rows
            last = int(page[-1]["time"])
            if last < cursor:
                raise VenueError(f"{VENUE} fundingHistory {coin}: page went backwards ({last} < {cursor})")
            cursor = last + 1
        return rows

    def settled(self, coin: str | Instrument, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        """Realised prints with ``funding_time`` in ``[start, end]`` (naive UTC), one per hour
        settled (per 8 h before 2023-06-08), rates per ``interval_hours``."""
        inst = self._instrument(coin)
        start_ms, end_ms = epoch_ms(start), epoch_ms(end)
        # Stamps trail their hour: widen by the snap window on both sides.
        payload = self.history_pages(inst.venue_symbol, epoch_ms(start - LOOKBACK) - SNAP_MS, end_ms + SNAP_MS - 1)
        rows = parse_funding_history(inst.symbol, payload)
        rows = [r for r in rows if start_ms <= r["funding_time_ms"] <= end_ms]
        return prints_frame(rows, VENUE, self.source, inst)

    def premium_history(self, coin: str | Instrument, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
        """Each settled window's average premium known in ``(start, end]`` (naive UTC), in
        :data:`PREMIUM_SCHEMA`: ``ts`` is the settlement (the window's end, ``time`` rounded
        to the hour), ``premium`` the row's ``premium`` (decimal fraction). One row an hour
        (every 8 h before 2023-06-08), from the same pages as :meth:`settled`.
        """
        inst = self._instrument(coin)
        start_ms, end_ms = epoch_ms(start), epoch_ms(end)
        # A stamp trails its hour by less than SNAP_MS; hours up to `start` are not wanted.
        payload = self.history_pages(inst.venue_symbol, start_ms + 1, end_ms + SNAP_MS - 1)
        try:
            times = [snap_hour(int(row["time"])) for row in payload]
            premiums = [float(row["premium"]) for row in payload]
        except (KeyError, TypeError, ValueError) as exc:
            raise VenueError(f"{VENUE} fundingHistory {inst.venue_symbol}: malformed row ({exc!r})") from None
        return premium_frame(VENUE, inst, times, premiums, start_ms, end_ms)  # a repeated hour: latest stamp wins

    # --- live ---------------------------------------------------------------------------

    def current(self, coins: Sequence[str | Instrument]) -> pl.DataFrame:
        """The running hourly estimate of each coin or instrument, from one ``metaAndAssetCtxs`` read."""
        wanted = instruments_of(VENUE, coins)
        payload = self._info({"type": "metaAndAssetCtxs"}, INFO_WEIGHT)
        try:
            rows = [
                tagged(r, wanted[r["name"]])
                for r in parse_meta_and_asset_ctxs(payload, self._now_ms())
                if r["name"] in wanted
            ]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise VenueError(f"{VENUE} metaAndAssetCtxs: unexpected payload ({exc})") from exc
        missing = set(wanted) - {r["venue_symbol"] for r in rows}
        if missing:
            raise VenueError(f"{VENUE} metaAndAssetCtxs: no funding for {', '.join(sorted(missing))}")
        return prints_frame(rows, VENUE, self.source)

    def predicted_fundings(self, coins: Sequence[str | Instrument]) -> pl.DataFrame:
        """Hyperliquid's view of the next settlement on Binance, Bybit and itself, per coin
        (each venue's main perpetual of it).

        One frame for all three venues (``venue`` column); rates per each venue's interval.
        """
        wanted = {inst.symbol for inst in instruments_of(VENUE, coins).values()}
        payload = self._info({"type": "predictedFundings"}, INFO_WEIGHT)
        try:
            rows = [r for r in parse_predicted_fundings(payload, self._now_ms()) if r["coin"] in wanted]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise VenueError(f"{VENUE} predictedFundings: unexpected payload ({exc!r})") from None
        source = self.source_label or f"{VENUE} predictedFundings"
        frames = [
            prints_frame([r for r in rows if r["venue"] == v], v, source) for v in sorted({r["venue"] for r in rows})
        ]
        return pl.concat(frames) if frames else prints_frame([], VENUE, source)

    def _stream_frame(self, text: str | bytes, wanted: dict[str, Instrument] | None = None) -> pl.DataFrame | None:
        """The print of a WS message as a frame, or None (see :meth:`_stream_row`)."""
        row = self._stream_row(text, wanted)
        return None if row is None else stream_frame([row], VENUE, self.stream_source)

    def _stream_row(self, text: str | bytes, wanted: dict[str, Instrument] | None = None) -> dict | None:
        """The print row of a WS message, or None (ack, pong, junk, a name not in ``wanted``:
        venue name -> instrument; None: any name, as the venue's main perpetual). Stamped
        with ``clock`` as it is read: the payload has no time of its own."""
        try:
            message = orjson.loads(text)
            channel = message.get("channel")
            if channel == "error":
                raise VenueError(f"{VENUE} stream: {message.get('data')}")
            if channel == "pong":
                self.pongs += 1
            row = parse_ws_message(message, self._now_ms())
            if row is not None and wanted is not None:
                inst = wanted.get(message["data"]["coin"])
                row = None if inst is None else tagged(row, inst)
        except (AttributeError, KeyError, TypeError, ValueError):
            self.skipped_frames += 1
            return None
        return row

    async def stream(
        self, coins: Sequence[str | Instrument], *, ping_interval_s: float = PING_INTERVAL_S
    ) -> AsyncIterator[pl.DataFrame]:
        """Predicted prints from ``activeAssetCtx``, one per push of one of ``coins``: a frame
        per push, or per burst of pushes received together (in arrival order).

        Sends ``{"method":"ping"}`` whenever it has sent nothing for ``ping_interval_s``;
        raises ``ConnectionError`` if a whole ping interval after a ping passes without any
        message, and the websockets exception when the connection closes.
        """
        wanted = instruments_of(VENUE, coins)
        loop = asyncio.get_running_loop()
        async with connect(self.ws_base.rstrip("/") + WS_PATH, compression=WS_COMPRESSION) as ws:
            for name in wanted:
                await ws.send(json.dumps(subscription(name)))
            last_sent, heard = loop.time(), True
            while True:
                wait = last_sent + ping_interval_s - loop.time()
                if wait <= 0:
                    if not heard:
                        raise ConnectionError(f"{VENUE} stream: no message for {ping_interval_s}s after a ping")
                    await ws.send(PING)
                    self.pings_sent += 1
                    last_sent, heard = loop.time(), False
                    continue
                try:
                    texts = await recv_burst(ws, wait)
                except TimeoutError:
                    continue
                heard = True
                # each push stamped as it is read
                rows, error = parse_burst(texts, lambda text: self._stream_row(text, wanted))
                if rows:  # the pushes before an error were received: handed over first
                    yield self._counted(rows)
                if error is not None:
                    raise error

    def _counted(self, rows: list[dict]) -> pl.DataFrame:
        self.stream_messages += len(rows)
        return stream_frame(rows, VENUE, self.stream_source)
