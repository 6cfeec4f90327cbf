"""The live path: the incremental strip against the batch engine, and the collector against
the five simulated venues with dropped, stalled and garbled streams.

Units as everywhere: rates per native interval, b0..b7 annualised (apr = r8 * 1095),
naive UTC datetimes.
"""

import asyncio
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import duckdb
import polars as pl
import pytest

from funding_assets import strip
from funding_assets.clients import Budget, HttpClient, prints_frame
from funding_assets.instruments import Instrument
from funding_assets.live.collector import Collector
from funding_assets.live.landing import NAME_RE, landed_files, read_landed
from funding_assets.live.livestrip import RETAIN_MS, LiveStrip, rows_frame
from funding_assets.live.status import read_status, status_path
from funding_assets.prints import PRINT_SCHEMA
from funding_assets.sim import FundingModel
from funding_assets.sim.server import Faults, SimClock
from funding_assets.venues import spec

H = dt.timedelta(hours=1)
MS = dt.timedelta(milliseconds=1)
T0 = dt.datetime(2024, 1, 1, 8)
WORKED_RATES = [0.0001, 0.00012, 0.00008, 0.0001, 0.00015, 0.0002, 0.00011, 0.00009, 0.0001]
BUCKETS = [f"b{k}" for k in range(8)]
COINS = ["BTC", "ETH"]
UNLIMITED = Budget(1e9, 1.0)
#: Position of a column in a snapshot row tuple of LiveStrip, and in a print tuple.
COL = {c: i for i, c in enumerate(strip.SNAPSHOT_SCHEMA)}
KIND = list(PRINT_SCHEMA).index("kind")


def p(ts, funding_time, rate, hours=8.0, kind="realised", venue="binance", symbol="BTC", contract="usdt"):
    """One print tuple in PRINT_SCHEMA order."""
    return (venue, symbol, contract, "X", ts, funding_time, rate, float(hours), kind, "test")


def main_series(venue: str, coin: str) -> tuple[str, str]:
    """The collector's key of a coin it follows: the venue's main perpetual of it."""
    return coin, spec(venue).default_contract(coin)


def frame_of(prints) -> pl.DataFrame:
    return pl.DataFrame(prints, schema=PRINT_SCHEMA, orient="row")


def history(start, rates, hours=8.0, **kw):
    step = dt.timedelta(hours=hours)
    return [p(start + i * step + 18 * MS, start + i * step, r, hours, **kw) for i, r in enumerate(rates)]


def last_rows(rows, kind):
    """The last emitted row per (venue, symbol, contract, ts) of a kind, as a frame (what the
    store keeps)."""
    keys = [*strip.KEYS, "ts"]
    frame = rows_frame(rows).filter(pl.col("kind") == kind)
    return frame.unique(keys, keep="last", maintain_order=True).sort(keys)


# --- LiveStrip ------------------------------------------------------------------------------


def test_intraday_bucket0_is_the_open_window_so_far_for_an_8h_venue():
    live = LiveStrip()
    assert live.update(history(T0, WORKED_RATES[:8]), intraday=False)  # the roll rows of the history
    open_end = T0 + 8 * 8 * H  # the window after the last settlement
    quote = p(open_end - 3 * H, open_end, 0.0003, kind="predicted")
    (row,) = live.update([quote])
    assert row[:6] == ("binance", "BTC", "usdt", "intraday", open_end - 3 * H, open_end)
    got = dict(zip(strip.SNAPSHOT_SCHEMA, row))
    expected = [0.0003] + WORKED_RATES[:8][::-1][:7]
    assert [got[b] for b in BUCKETS] == pytest.approx([r * 1095 for r in expected], abs=1e-12)
    batch = strip.intraday_snapshots(frame_of(history(T0, WORKED_RATES[:8]) + [quote]), every=0).row(-1, named=True)
    assert [got[b] for b in BUCKETS] == pytest.approx([batch[b] for b in BUCKETS], abs=1e-15)
    assert got["n_filled"] == batch["n_filled"] == 0 and got["interval_hours"] == 8.0


def test_intraday_bucket0_of_an_hourly_venue_sums_its_settled_hours_and_the_open_one():
    end = dt.datetime(2024, 1, 4)
    kw = {"venue": "hyperliquid"}
    settled = history(end - 8 * 8 * H + H, [0.0000125] * 64, hours=1, **kw)  # 8 full grid windows
    live = LiveStrip()
    live.update(settled, intraday=False)
    settled_now = history(end + H, [0.00002, 0.00004, 0.00003], hours=1, **kw)  # 01:00..03:00
    live.update(settled_now, intraday=False)
    quote = p(end + 3 * H + 20 * dt.timedelta(minutes=1), end + 4 * H, 0.00005, 1, "predicted", **kw)
    (row,) = live.update([quote])
    got = dict(zip(strip.SNAPSHOT_SCHEMA, row))
    assert got["funding_time"] == end + 8 * H and got["interval_hours"] == 1.0
    assert got["b0"] == pytest.approx((0.00002 + 0.00004 + 0.00003 + 0.00005) * 8 / 4 * 1095, abs=1e-12)
    assert [got[b] for b in BUCKETS[1:]] == pytest.approx([0.1095] * 7, abs=1e-12)
    batch = strip.intraday_snapshots(frame_of(settled + settled_now + [quote]), every=0).row(-1, named=True)
    assert [got[b] for b in BUCKETS] == pytest.approx([batch[b] for b in BUCKETS], abs=1e-15)


def random_prints(venue: str, hours: float, days: int, seed: int) -> list[tuple]:
    """Tick-ish predicted quotes plus realised settlements (20 % missing: gaps to fill)."""
    rng = random.Random(seed)
    step = dt.timedelta(hours=hours)
    t, ft, end = T0, T0 + step, T0 + dt.timedelta(days=days)
    out = []
    while t < end:
        t += dt.timedelta(minutes=rng.randint(5, 70), milliseconds=rng.randint(0, 999))
        while t >= ft:
            if rng.random() < 0.8:
                out.append(
                    p(
                        ft + rng.randint(0, 1400) * MS,
                        ft,
                        round(rng.gauss(1e-4, 8e-5) * hours / 8, 8),
                        hours,
                        venue=venue,
                    )
                )
            ft += step
        if rng.random() < 0.9:
            out.append(p(t, ft, round(rng.gauss(1e-4, 8e-5) * hours / 8, 8), hours, "predicted", venue=venue))
    return out


@pytest.mark.parametrize(("venue", "hours"), [("binance", 8), ("okx", 4), ("hyperliquid", 1)])
def test_roll_and_intraday_rows_equal_the_batch_engine(venue, hours):
    for seed in range(1):
        prints = random_prints(venue, hours, days=8, seed=seed)
        live = LiveStrip()
        rows = [r for q in prints for r in live.update([q])]
        batch_roll = strip.roll_snapshots(frame_of(prints))
        assert batch_roll.height > 15
        assert last_rows(rows, "roll").equals(batch_roll)
        live_intraday = last_rows(rows, "intraday")
        batch_intraday = strip.intraday_snapshots(frame_of(prints), every=0)
        joined = live_intraday.join(batch_intraday, on=[*strip.KEYS, "ts"], how="full", suffix="_batch")
        assert joined.height == live_intraday.height == batch_intraday.height
        for col in [*BUCKETS, "interval_hours"]:
            assert (joined[col] - joined[f"{col}_batch"]).abs().max() < 1e-12
        assert (joined["n_filled"] == joined["n_filled_batch"]).all()


def test_two_contracts_of_one_coin_are_two_strips_each_the_batch_engines():
    """Binance BTCUSDT and BTCUSD_PERP: one coin, two series that never mix."""
    usdt = random_prints("binance", 8, days=6, seed=3)
    inverse = [p(*q[4:8], q[8], symbol="BTC", contract="inverse") for q in random_prints("binance", 8, days=6, seed=4)]
    both = sorted(usdt + inverse, key=lambda q: q[4])
    live = LiveStrip()
    rows = [r for q in both for r in live.update([q])]
    assert sorted(live.series) == [("binance", "BTC", "inverse"), ("binance", "BTC", "usdt")]
    roll = last_rows(rows, "roll")
    assert roll.equals(strip.roll_snapshots(frame_of(both)))
    for contract, prints in (("usdt", usdt), ("inverse", inverse)):
        alone = strip.roll_snapshots(frame_of(prints))
        assert roll.filter(pl.col("contract") == contract).equals(alone), contract


def test_late_realised_prints_supersede_predictions_and_revise_the_roll_rows():
    """Settlements delivered late (a REST gap fill after a disconnect) replace the closing
    predictions and re-emit every roll row they change: the last row per window is the batch
    engine's row over all prints."""
    prints = random_prints("bybit", 8, days=7, seed=11)
    rng = random.Random(1)
    live, rows, held = LiveStrip(), [], []
    for q in prints:
        if q[KIND] == "realised" and rng.random() < 0.5:
            held.append(q)  # arrives up to a day late
        else:
            rows += live.update([q])
        if held and rng.random() < 0.04:
            rows += live.update(held, intraday=False)
            held = []
    rows += live.update(held, intraday=False)
    assert last_rows(rows, "roll").equals(strip.roll_snapshots(frame_of(prints)))


def test_realised_is_final_whatever_comes_after():
    live = LiveStrip()
    live.update(history(T0, WORKED_RATES[:7]), intraday=False)
    w = T0 + 7 * 8 * H
    live.update([p(w - H, w, 0.0005, kind="predicted")])
    rows = live.update([p(w + 18 * MS, w, 0.0001)])  # the settlement closes the window
    (roll,) = [r for r in rows if r[COL["kind"]] == "roll"]
    assert roll[COL["ts"]] == w and roll[COL["b0"]] == pytest.approx(0.1095)
    # a later (stale) prediction for the settled window changes nothing, emits no roll row
    stale = live.update([p(w + 5 * H, w, 0.0009, kind="predicted")])
    assert [r for r in stale if r[COL["kind"]] == "roll"] == []
    row = live.current("binance", "BTC", w + 6 * H)
    assert row is None  # the open window has no print yet: no intraday snapshot
    (intraday,) = live.update([p(w + 6 * H, w + 8 * H, 0.0002, kind="predicted")])
    assert intraday[COL["b1"]] == pytest.approx(0.1095)  # b1 = the realised 0.0001, not 0.0009


def test_a_missing_window_is_interpolated_like_the_design_example():
    rates = [r for i, r in enumerate(WORKED_RATES) if i != 5]
    times = [T0 + i * 8 * H for i in range(9) if i != 5]
    prints = history(T0 - 3 * 8 * H, [0.0001] * 3) + [p(t, t, r) for t, r in zip(times, rates)]
    rows = LiveStrip().update(prints, intraday=False)
    (row,) = [r for r in rows if r[COL["ts"]] == dt.datetime(2024, 1, 4)]
    got = dict(zip(strip.SNAPSHOT_SCHEMA, row))
    assert got["n_filled"] == 1 and got["b3"] == pytest.approx(0.14235, abs=1e-12)


def test_memory_stays_bounded_to_the_retained_windows():
    live = LiveStrip()
    forty_days = history(T0, [0.0001] * 24 * 40, hours=1, venue="deribit", contract="inverse")
    live.update(forty_days, intraday=False)
    series = live.series[("deribit", "BTC", "inverse")]
    # the batch lookback (strip.LOOKBACK_DAYS) plus the 72 h a roll row reads back: 8 days
    retained_hours = RETAIN_MS // 3_600_000
    assert retained_hours == 8 * 24
    assert len(series.native) <= retained_hours + 8 and len(series.emitted) <= retained_hours // 8 + 1


# --- the collector against a scripted client: ordering, back-off, watchdog ------------------


def names(item: str | Instrument) -> dict:
    """A client row's coin, and for an instrument its contract and venue name."""
    if isinstance(item, Instrument):
        return {"coin": item.symbol, "contract": item.contract, "venue_symbol": item.venue_symbol}
    return {"coin": item}


class ScriptedClient:
    """A venue client whose streams fail on cue; records every call in ``events``. Its
    clock moves 3 simulated hours per connection, so every gap has a settlement to fill."""

    venue = "bybit"

    def __init__(self, start, scripts):
        self.start = start
        self.scripts = list(scripts)  # per connection: ("drop", n frames) or ("silent", n frames)
        self.events = []
        self.skipped_frames = 0

    def clock(self):
        return self.start + 3 * H * sum(e[0] == "stream" for e in self.events)

    def settled(self, coin, start, end):
        self.events.append(("settled", coin, start, end))
        last = dt.datetime(end.year, end.month, end.day, end.hour // 8 * 8)
        rows = [
            {
                **names(coin),
                "ts_ms": int((t - dt.datetime(1970, 1, 1)) / MS),
                "funding_time_ms": int((t - dt.datetime(1970, 1, 1)) / MS),
                "rate": 0.0001,
                "interval_hours": 8,
                "kind": "realised",
            }
            for t in (last - k * 8 * H for k in range(12))
            if start <= t <= end
        ]
        return prints_frame(rows, self.venue, "bybit REST")

    async def stream(self, coins, **kwargs):
        kind, n = self.scripts.pop(0) if self.scripts else ("silent", 0)
        self.events.append(("stream", kind))
        for _ in range(n):
            await asyncio.sleep(0.005)
            now = self.clock()
            ft = dt.datetime(now.year, now.month, now.day, now.hour // 8 * 8) + 8 * H
            ms = int((now - dt.datetime(1970, 1, 1)) / MS)
            yield prints_frame(
                [
                    {
                        **names(c),
                        "ts_ms": ms,
                        "funding_time_ms": int((ft - dt.datetime(1970, 1, 1)) / MS),
                        "rate": 0.0001,
                        "interval_hours": 8,
                        "kind": "predicted",
                    }
                    for c in coins
                ],
                self.venue,
                "bybit WS",
            )
        if kind == "drop":
            raise ConnectionError("dropped")
        await asyncio.sleep(3600)  # silent: only the watchdog ends it

    def close(self):
        pass


class RecordingRng:
    def __init__(self):
        self.bounds = []

    def uniform(self, lo, hi):
        self.bounds.append(hi)
        return 0.0


@pytest.mark.parametrize("healthy_s", [1000.0, 0.0], ids=["backoff-grows", "backoff-resets"])
def test_every_reconnect_fills_the_gap_from_rest_before_the_new_stream(tmp_path, healthy_s):
    client = ScriptedClient(
        dt.datetime(2025, 3, 10, 7, 30), [("drop", 3), ("silent", 2), ("drop", 0), ("drop", 4), ("drop", 2)]
    )
    rng = RecordingRng()
    collector = Collector(
        tmp_path,
        ["bybit"],
        COINS,
        clock=client.clock,
        client_factory=lambda v: client,
        watchdog_s=0.2,
        backoff_s=0.01,
        backoff_cap_s=0.04,
        healthy_s=healthy_s,
        rng=rng,
    )

    async def run():
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        while sum(e[0] == "stream" for e in client.events) < 6:
            await asyncio.sleep(0.01)
        stop.set()
        await task

    asyncio.run(asyncio.wait_for(run(), 20))
    rt = collector.runtimes["bybit"]
    streams = [i for i, e in enumerate(client.events) if e[0] == "stream"]
    assert rt.reconnects == len(streams) - 1 >= 5
    # before the first stream: the pre-warm; before every later one: a gap fill per coin
    for before, after in zip(streams, streams[1:]):
        assert sorted(e[1] for e in client.events[before + 1 : after] if e[0] == "settled") == COINS
    # each fill starts at the newest settlement seen so far (the 8h boundary before the last fill's end)
    for coin in COINS:
        fills = [f for f in rt.fills if f[1] == main_series("bybit", coin)]
        assert [f[0] for f in fills] == ["prewarm"] + ["gap"] * rt.reconnects
        for prev, fill in zip(fills, fills[1:]):
            assert fill[2] == prev[3].replace(hour=prev[3].hour // 8 * 8, minute=0, second=0, microsecond=0)
    assert rt.gaps_filled == sum(f[4] for f in rt.fills if f[0] == "gap") > 0, rt.fills
    assert rt.watchdog_expiries >= 1  # the silent connection was declared dead
    cap = [min(0.04, 0.01 * 2**k) for k in range(len(rng.bounds))]
    assert rng.bounds == (cap if healthy_s > 100 else [0.01] * len(rng.bounds))


def test_the_collector_follows_instruments_of_any_contract_keyed_by_coin_and_contract(tmp_path):
    """Given instruments, the collector asks the client with them as given, follows each on its
    own venue only, and keeps BTCUSDT and the inverse BTCUSD apart end to end: REST fills,
    settlement state, landed prints and stored strips."""
    usdt = Instrument("bybit", "BTC", "usdt", "BTCUSDT")
    inverse = Instrument("bybit", "BTC", "inverse", "BTCUSD", settle="BTC")
    elsewhere = Instrument("okx", "BTC", "usdt", "BTC-USDT-SWAP")
    client = ScriptedClient(dt.datetime(2025, 3, 10, 7, 30), [("drop", 3), ("silent", 0)])
    collector = Collector(
        tmp_path,
        ["bybit"],
        [usdt, inverse, elsewhere],
        clock=client.clock,
        client_factory=lambda v: client,
        watchdog_s=0.2,
        backoff_s=0.01,
        backoff_cap_s=0.02,
        settle_delay_s=None,
    )

    async def run():
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        while sum(e[0] == "stream" for e in client.events) < 2:
            await asyncio.sleep(0.01)
        stop.set()
        await task

    asyncio.run(asyncio.wait_for(run(), 20))
    rt = collector.runtimes["bybit"]
    keys = [("BTC", "usdt"), ("BTC", "inverse")]
    assert list(rt.series) == keys and list(rt.series.values()) == [usdt, inverse]
    asked = {e[1] for e in client.events if e[0] == "settled"}
    assert asked == {usdt, inverse}  # as given; the okx instrument is not followed here
    assert [f[1] for f in rt.fills] == keys * (1 + rt.reconnects)
    assert sorted(rt.last_realised) == sorted(keys)
    landed = pl.concat([read_landed(f) for f in landed_files(tmp_path / "landing")])
    by_contract = landed.group_by("contract", "venue_symbol", "kind").len().sort("contract", "kind")
    assert by_contract.select("contract", "venue_symbol", "kind").rows() == [
        ("inverse", "BTCUSD", "predicted"),
        ("inverse", "BTCUSD", "realised"),
        ("usdt", "BTCUSDT", "predicted"),
        ("usdt", "BTCUSDT", "realised"),
    ]
    with duckdb.connect(str(tmp_path / "live" / "live.duckdb"), read_only=True) as con:
        stored = con.sql("SELECT DISTINCT venue, symbol, contract FROM live_strip ORDER BY contract").fetchall()
    assert stored == [("bybit", "BTC", "inverse"), ("bybit", "BTC", "usdt")]


# --- the collector against the five simulated venues ----------------------------------------


def sim_collector(server, home, clock, **kw):
    venues = list(server.sims)
    return Collector(
        home,
        venues,
        COINS,
        urls={v: (server.rest_url(v), server.ws_url(v)) for v in venues},
        clock=clock,
        http_factory=lambda venue, rest: HttpClient(
            venue, rest, UNLIMITED, timeout_s=2.0, backoff_s=0.01, backoff_cap_s=0.1
        ),
        **kw,
    )


def quiesce(server):
    """Silence every stream from now on (nothing more is sent or counted), REST untouched."""
    for sim in server.sims.values():
        sim.faults = Faults(ws_stall_after=0)


def test_collector_across_rolls_with_drops_stalls_and_garbage_loses_nothing(simulator, home):
    """Five venues x BTC,ETH for ~30 simulated hours (rolls at 08:00, 16:00, 00:00 and 08:00)
    at 7200x: first every stream is dropped after 40 frames, then every stream stalls after
    30 frames (the watchdog must notice), 5 % of frames are garbage throughout."""
    start = dt.datetime(2025, 3, 10, 6, 0)
    clock = SimClock(start, speed=7200)
    server = simulator(clock=clock, push_interval_s=0.05, faults=Faults(seed=3, ws_garbage_rate=0.05, ws_drop_after=40))
    venues = list(server.sims)
    collector = sim_collector(
        server, home, clock, watchdog_s=0.5, backoff_s=0.02, backoff_cap_s=0.2, healthy_s=0.5, rotate_s=2.0
    )

    async def run():
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        await asyncio.sleep(7)
        drops = {v: rt.reconnects for v, rt in collector.runtimes.items()}
        for sim in server.sims.values():  # phase 2: stalls instead of drops
            sim.faults = Faults(seed=4, ws_garbage_rate=0.05, ws_stall_after=30)
        await asyncio.sleep(7)
        quiesce(server)
        await asyncio.sleep(0.4)  # what was sent before the silence is consumed
        stop.set()
        await task
        return drops

    drops = asyncio.run(asyncio.wait_for(run(), 45))
    end = clock()
    assert end - start > dt.timedelta(hours=26)

    landed = pl.concat([read_landed(f) for f in landed_files(home / "landing")])
    model = FundingModel()
    for venue in venues:
        rt, sim = collector.runtimes[venue], server.sims[venue]
        assert drops[venue] >= 3 and rt.reconnects - drops[venue] >= 3, (venue, drops[venue], rt.reconnects)
        # (a) every print the simulator sent landed; garbage frames were skipped, not fatal
        stream = landed.filter((pl.col("venue") == venue) & (pl.col("source") == f"{venue} WS"))
        assert stream.height == sim.prints_sent == rt.prints, venue
        assert rt.client.skipped_frames == sim.garbage_frames > 0, venue
        for coin in COINS:
            # (b) the realised settlements, recovered by the pre-warm and the gap fill after
            # every reconnect, are exactly the venue's up to the last fill
            fills = [f for f in rt.fills if f[1] == main_series(venue, coin)]
            gaps = [f[0] for f in fills[1:]]
            assert fills[0][0] == "prewarm" and set(gaps) == {"gap"}
            assert rt.reconnects <= len(gaps) <= rt.reconnects + 1  # the stop may interrupt a reconnect
            last_fill = fills[-1][3]
            want = model.settlements(venue, coin, fills[0][2], last_fill).filter(
                pl.col("ts") <= last_fill - dt.timedelta(minutes=1)
            )
            got = landed.filter(
                (pl.col("venue") == venue) & (pl.col("symbol") == coin) & (pl.col("kind") == "realised")
            )
            got = got.filter(pl.col("funding_time") <= want["funding_time"].max())
            cols = ["funding_time", "rate", "interval_hours"]
            assert got.select(cols).sort("funding_time").equals(want.select(cols)), (venue, coin)
            during_run = want.filter(pl.col("funding_time") > start)
            assert during_run.height >= (3 if venue in ("binance", "bybit", "okx") else 24)

    # (c) the stored roll rows are the batch engine's rows over the same prints
    with duckdb.connect(str(home / "live" / "live.duckdb"), read_only=True) as con:
        stored = con.sql("SELECT * FROM live_strip").pl()
    order = [*strip.KEYS, "ts"]
    rolls = stored.filter(pl.col("kind") == "roll").select(list(strip.SNAPSHOT_SCHEMA)).sort(order)
    batch = strip.roll_snapshots(landed).sort(order)
    assert rolls.equals(batch)
    closed_live = {
        dt.datetime(2025, 3, 10, 8),
        dt.datetime(2025, 3, 10, 16),
        dt.datetime(2025, 3, 11),
        dt.datetime(2025, 3, 11, 8),
    }
    for venue in venues:
        for coin in COINS:
            windows = set(rolls.filter((pl.col("venue") == venue) & (pl.col("symbol") == coin))["ts"].to_list())
            assert closed_live <= windows, (venue, coin)

    # (d) the status file tells the story
    written_at, statuses = read_status(status_path(home))
    assert {s.venue for s in statuses} == set(venues)
    for s in statuses:
        assert s.state == "stopped" and s.reconnects >= 6 and s.skipped_frames > 0 and s.prints > 0
        # whether a settlement comes back by a gap fill or by the settlement poll is a race
        # (30 s after a settlement is 4 ms here): the status reports what the gap fills found
        assert s.gaps_filled == collector.runtimes[s.venue].gaps_filled
        assert s.last_error and s.last_message_at is not None

    # (e) clean shutdown: whole files only, every print landed, the last samples stored
    assert all(NAME_RE.fullmatch(f.name) for f in (home / "landing").iterdir())
    assert not [f for f in (home / "live").iterdir() if f.name.endswith(".tmp")]
    assert landed.height == collector.landing.rows_written == collector.prints_handled
    intraday = stored.filter(pl.col("kind") == "intraday")
    last_sample = intraday.group_by("venue", "symbol").agg(pl.col("ts").max()).sort("venue", "symbol")
    last_quote = (
        landed.filter(pl.col("kind") == "predicted")
        .group_by("venue", "symbol")
        .agg(pl.col("ts").max())
        .sort("venue", "symbol")
    )
    assert last_sample.equals(last_quote)
    assert (stored["stored_at"] >= stored["received_at"]).all()


def test_sigterm_stops_the_collector_cleanly(simulator, home, tmp_path):
    """``collect`` in its own process: SIGTERM closes the streams, lands and stores everything
    and leaves a final status; nothing the simulator sent is lost."""
    server = simulator(push_interval_s=0.05)  # wall-clock time
    venues = ["okx", "hyperliquid"]
    urls = {v: (server.rest_url(v), server.ws_url(v)) for v in venues}
    script = textwrap.dedent(f"""
        from pathlib import Path
        from funding_assets.clients import Budget, HttpClient
        from funding_assets.live.collector import collect
        raise SystemExit(collect(Path({str(home)!r}), {venues!r}, ["BTC", "ETH"], urls={urls!r},
                                 http_factory=lambda v, r: HttpClient(v, r, Budget(1e9, 1.0))))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                _, statuses = read_status(status_path(home))
                if all(s.state == "live" and s.prints >= 10 for s in statuses) and len(statuses) == 2:
                    break
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("the collector never went live")
        quiesce(server)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    _, statuses = read_status(status_path(home))
    assert [s.state for s in statuses] == ["stopped", "stopped"]
    landed = pl.concat([read_landed(f) for f in landed_files(home / "landing")])
    for s in statuses:
        sent = server.sims[s.venue].prints_sent
        assert (
            landed.filter((pl.col("venue") == s.venue) & (pl.col("source") == f"{s.venue} WS")).height
            == sent
            == s.prints
        )
    assert not [f for f in os.listdir(home / "landing") if not NAME_RE.fullmatch(f)]
    with duckdb.connect(str(home / "live" / "live.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM live_strip WHERE kind = 'intraday'").fetchone()[0] > 0
