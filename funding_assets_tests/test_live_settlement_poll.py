"""The collector's settlement poll (DESIGN section 5, collector docstring step 4): on a
healthy connection the live store learns each window's realised rate shortly after the
venue settles it, not only after a reconnect.

Units as everywhere: rates per native interval, b0..b7 annualised (apr = r8 * 1095),
naive UTC datetimes.
"""

import asyncio
import datetime as dt
import logging
import time

import duckdb
import polars as pl
import pytest
from test_live_collector import COINS, main_series, sim_collector

from funding_assets import strip
from funding_assets.clients import prints_frame
from funding_assets.live.collector import Collector
from funding_assets.live.landing import landed_files, read_landed
from funding_assets.sim import FundingModel

H = dt.timedelta(hours=1)
MS = dt.timedelta(milliseconds=1)
UNIX = dt.datetime(1970, 1, 1)
#: Added to every simulated prediction (per 8 h, pro-rated to the interval): the last
#: prediction of a window is never its settled rate.
PREDICTION_BIAS_8H = 0.00002


class BiasedPredictions(FundingModel):
    """The simulator's model, its live predictions :data:`PREDICTION_BIAS_8H` off the settlements."""

    def predicted_many(self, instruments, at):  # what predicted() and the streams' pushes read
        quotes = super().predicted_many(instruments, at)
        return [(rate + PREDICTION_BIAS_8H * hours / 8, funding_time, hours) for rate, funding_time, hours in quotes]


class HeldClock:
    """Simulated time, the same for the simulator and the collector: held at ``start`` until
    :meth:`release` (once the collector is live), then ``speed`` times the wall clock,
    stopping at ``end`` (no window settles or closes after it). Whatever the machine's speed,
    the run starts live before the first settlement and ends in a known state."""

    def __init__(self, start: dt.datetime, speed: float, end: dt.datetime | None = None) -> None:
        self.start, self.speed, self.end = start, speed, end
        self._released_at: float | None = None

    def release(self) -> None:
        self._released_at = time.monotonic()

    def __call__(self) -> dt.datetime:
        if self._released_at is None:
            return self.start
        now = self.start + dt.timedelta(seconds=(time.monotonic() - self._released_at) * self.speed)
        return now if self.end is None else min(now, self.end)


async def until(condition, task: asyncio.Task, timeout_s: float, what: str) -> None:
    """Wait until ``condition()`` holds (generous ``timeout_s``); a failed collector task
    raises its own error."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if task.done():
            await task
            raise AssertionError(f"the collector stopped before {what}")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def all_live(collector: Collector) -> bool:
    return bool(collector.runtimes) and all(rt.state == "live" for rt in collector.runtimes.values())


def stored_rolls(home) -> pl.DataFrame:
    """The live store's roll rows (the store keeps the last row per venue, symbol, window)."""
    with duckdb.connect(str(home / "live" / "live.duckdb"), read_only=True) as con:
        stored = con.sql("SELECT * FROM live_strip WHERE kind = 'roll'").pl()
    return stored.select(list(strip.SNAPSHOT_SCHEMA)).sort(["venue", "symbol", "ts"])


# --- against the five simulated venues ------------------------------------------------------

#: Binance BTC moves from 8 h to 1 h funding at 08:00 in the model (seed 7): Binance must be
#: polled hourly for it while its ETH and the other 8 h venues settle at 08:00 and 16:00.
START = dt.datetime(2025, 1, 13, 7, 40)
END = dt.datetime(2025, 1, 13, 16, 10)


def test_a_healthy_connection_learns_every_realised_rate(simulator, home):
    """Five venues x BTC,ETH from 07:40 to 16:10 at 10000x, no fault, no disconnect, every
    prediction off its settlement: afterwards every live roll row is the batch engine's row
    over the settled history alone."""
    model = BiasedPredictions()
    last_settled = {}
    for venue in ("binance", "bybit", "okx", "hyperliquid", "deribit"):
        for coin in COINS:  # also pays the model's path generation before the clock runs
            settled = model.settlements(venue, coin, START - dt.timedelta(days=5), END)
            gaps = settled["funding_time"].diff().dt.total_hours().drop_nulls()
            assert (gaps == settled["interval_hours"].slice(1)).all(), (venue, coin, "no settlement missing")
            last_settled[venue, coin] = settled["funding_time"].max()
    assert model.interval_hours_at("binance", "BTC", START) == 8 and model.interval_hours_at("binance", "BTC", END) == 1
    clock = HeldClock(START, speed=10_000, end=END)
    server = simulator(model=model, clock=clock, push_interval_s=0.05)
    venues = list(server.sims)
    collector = sim_collector(server, home, clock, watchdog_s=120.0, clock_check_s=0.005)

    def learned() -> bool:
        return clock() >= END and all(
            collector.runtimes[v].last_realised.get(main_series(v, c)) == last_settled[v, c]
            for v in venues
            for c in COINS
        )

    async def run():
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        await until(lambda: all_live(collector), task, 30, "every venue to be live")
        clock.release()
        await until(learned, task, 60, "every settlement up to the end to be learned")
        stop.set()
        await task

    asyncio.run(asyncio.wait_for(run(), 90))

    landed = pl.concat([read_landed(f) for f in landed_files(home / "landing")])
    history = []
    for venue in venues:
        polled_total = 0
        rt = collector.runtimes[venue]
        assert (rt.connections, rt.reconnects, rt.gaps_filled, rt.watchdog_expiries) == (1, 0, 0, 0), venue
        for coin in COINS:
            start = next(f[2] for f in rt.fills if f[0] == "prewarm" and f[1] == main_series(venue, coin))
            settled = model.settlements(venue, coin, start, last_settled[venue, coin] + MS)
            history.append(settled)
            # the realised prints of the run were learned by the poll and landed
            during_run = settled.filter(pl.col("funding_time") > START)
            polled = landed.filter(
                (pl.col("venue") == venue)
                & (pl.col("symbol") == coin)
                & (pl.col("kind") == "realised")
                & (pl.col("funding_time") > START)
            )
            cols = ["funding_time", "rate", "interval_hours"]
            assert polled.select(cols).sort("funding_time").equals(during_run.select(cols)), (venue, coin)
            polled_total += polled.height
            assert during_run.height >= (2 if model.interval_hours_at(venue, coin, END) == 8 else 9)
            # the stream's last prediction of each window settled in the run was not its rate
            predicted = landed.filter(
                (pl.col("venue") == venue) & (pl.col("symbol") == coin) & (pl.col("kind") == "predicted")
            )
            last_quotes = predicted.sort("ts").group_by("funding_time").agg(pl.col("rate").last().alias("quoted"))
            compared = during_run.join(last_quotes, on="funding_time")
            assert compared.height == during_run.height and (compared["quoted"] != compared["rate"]).all()
        assert rt.settled_polled == polled_total, venue
    # Binance polled BTC on its own hourly settlements, ETH at 08:00 and 16:00 only
    binance = collector.runtimes["binance"]
    btc = [p[1] for p in binance.polls if p[0] == ("BTC", "usdt")]
    assert btc == sorted(set(btc)) and btc[-1] == dt.datetime(2025, 1, 13, 16)
    assert all(t.minute == 0 for t in btc) and any(t.hour % 8 for t in btc)
    assert [p[1].hour for p in binance.polls if p[0] == ("ETH", "usdt")] == [8, 16]

    rolls = stored_rolls(home)
    batch = strip.roll_snapshots(pl.concat(history)).sort(["venue", "symbol", "ts"])
    assert rolls.equals(batch)
    closed_in_run = rolls.filter(pl.col("ts") > START).group_by("venue", "symbol").agg(pl.col("ts").sort())
    assert closed_in_run.height == len(venues) * len(COINS)
    assert all(
        ts == [dt.datetime(2025, 1, 13, 8), dt.datetime(2025, 1, 13, 16)] for ts in closed_in_run["ts"].to_list()
    )


# --- a settlement the venue is late to publish ----------------------------------------------

WINDOW = dt.datetime(2025, 3, 10, 8)
#: The collector's keys of the scripted bybit coins (their main perpetual).
BTC, ETH = ("BTC", "usdt"), ("ETH", "usdt")


class LateVenue:
    """An 8 h venue whose stream quotes 0.0003 for the open window every 5 ms (never drops)
    and whose settled history holds 0.0001 per window, except that BTC's window ending
    :data:`WINDOW` appears only from the ``publish_on``-th request that covers it (None:
    never). Records each ``settled`` call with the clock's time."""

    venue = "bybit"

    def __init__(self, clock, publish_on: int | None) -> None:
        self.clock = clock
        self.publish_on = publish_on
        self.asked = 0  # requests that covered BTC's WINDOW
        self.calls: list[tuple[str, dt.datetime, dt.datetime, dt.datetime]] = []

    def settled(self, coin, start, end):
        self.calls.append((coin, start, end, self.clock()))
        times = [WINDOW - k * 8 * H for k in range(-3, 20)]
        rows = []
        for t in times:
            if not start <= t <= end:
                continue
            if coin == "BTC" and t == WINDOW:
                self.asked += 1
                if self.publish_on is None or self.asked < self.publish_on:
                    continue
            ms = (t - UNIX) // MS
            rows.append(
                {
                    "coin": coin,
                    "ts_ms": ms,
                    "funding_time_ms": ms,
                    "rate": 0.0001,
                    "interval_hours": 8,
                    "kind": "realised",
                }
            )
        return prints_frame(rows, self.venue, "bybit REST")

    async def stream(self, coins, **kwargs):
        while True:
            await asyncio.sleep(0.005)
            now = self.clock()
            ft = now.replace(hour=now.hour // 8 * 8, minute=0, second=0, microsecond=0) + 8 * H
            ms, ft_ms = (now - UNIX) // MS, (ft - UNIX) // MS
            yield prints_frame(
                [
                    {
                        "coin": c,
                        "ts_ms": ms,
                        "funding_time_ms": ft_ms,
                        "rate": 0.0003,
                        "interval_hours": 8,
                        "kind": "predicted",
                    }
                    for c in coins
                ],
                self.venue,
                "bybit WS",
            )

    def close(self):
        pass


@pytest.mark.parametrize("publish_on", [3, None], ids=["published-on-the-third-poll", "never-published"])
def test_a_settlement_not_yet_published_is_asked_again_then_warned_about(tmp_path, caplog, publish_on):
    clock = HeldClock(WINDOW - dt.timedelta(seconds=30), speed=200)
    venue = LateVenue(clock, publish_on)
    collector = Collector(
        tmp_path,
        ["bybit"],
        COINS,
        clock=clock,
        client_factory=lambda v: venue,
        watchdog_s=10.0,
        settle_delay_s=30.0,
        settle_retry_s=30.0,
        settle_retries=3,
        clock_check_s=0.005,
    )
    rt = None
    caplog.set_level(logging.WARNING, logger="funding_assets.live")

    def warned() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.levelno == logging.WARNING and "not published" in r.getMessage()]

    def done() -> bool:
        if rt is None or rt.last_realised.get(ETH) != WINDOW:
            return False
        return bool(warned()) if publish_on is None else rt.last_realised.get(BTC) == WINDOW

    async def run():
        nonlocal rt
        stop = asyncio.Event()
        task = asyncio.create_task(collector.run(stop))
        await until(lambda: all_live(collector), task, 30, "the stream to be live")
        rt = collector.runtimes["bybit"]
        clock.release()
        await until(done, task, 30, "the settlement to be learned or warned about")
        stop.set()
        await task  # no exception

    asyncio.run(asyncio.wait_for(run(), 60))

    assert (rt.reconnects, rt.gaps_filled) == (0, 0)
    polls = [call for call in venue.calls if call[1] >= WINDOW - 8 * H]  # not the pre-warm
    btc = [call[3] for call in polls if call[0] == "BTC"]
    eth = [call[3] for call in polls if call[0] == "ETH"]
    assert len(eth) == 1 and eth[0] >= WINDOW + dt.timedelta(seconds=30)  # published: one poll
    assert len(btc) == (3 if publish_on else 4) and btc[0] >= WINDOW + dt.timedelta(seconds=30)
    assert all(later - earlier >= dt.timedelta(seconds=30) for earlier, later in zip(btc, btc[1:]))
    # the first poll asks for both coins, every retry for BTC alone
    learned_btc = 1 if publish_on else 0
    retries = [(BTC, WINDOW, 0)] * (len(btc) - 2) + [(BTC, WINDOW, learned_btc)]
    assert [(p[0], p[1], p[4]) for p in rt.polls] == [(BTC, WINDOW, 0), (ETH, WINDOW, 1), *retries]
    rolls = stored_rolls(tmp_path).filter(pl.col("ts") == WINDOW)
    b0 = dict(zip(rolls["symbol"], rolls["b0"]))
    assert b0["ETH"] == pytest.approx(0.0001 * 1095)
    if publish_on:
        assert not warned()
        assert b0["BTC"] == pytest.approx(0.0001 * 1095)  # the closing quote was 0.0003: revised
        landed = pl.concat([read_landed(f) for f in landed_files(tmp_path / "landing")])
        realised = landed.filter(
            (pl.col("symbol") == "BTC") & (pl.col("funding_time") == WINDOW) & (pl.col("kind") == "realised")
        )
        assert realised["source"].to_list() == ["bybit REST"]
    else:
        (record,) = warned()
        message = record.getMessage()
        assert "bybit BTC" in message and "2025-03-10 08:00:00" in message and "4 polls" in message
        assert b0["BTC"] == pytest.approx(0.0003 * 1095)  # still the closing quote
        assert rt.last_realised[BTC] == WINDOW - 8 * H and WINDOW not in rt.announced[BTC]
