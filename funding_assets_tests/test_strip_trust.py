"""Strip rules that used to lose or invent data, and the engine's invariants as properties.

DESIGN section 3: a realised print's ts is its settlement time; a realised print supersedes
every prediction whose native window overlaps it; each grid window records its coverage;
every roll row the engine emits is stored in the partition of the day it became known;
ignored prints are counted. Then: order independence, idempotence, partition = range and
live = batch, with hypothesis.
"""

import datetime as dt
import random

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funding_assets import strip
from funding_assets.defs.checks import missing_window_share
from funding_assets.live.livestrip import LiveStrip
from funding_assets.prints import PRINT_SCHEMA, normalise

H = dt.timedelta(hours=1)
D = dt.timedelta(days=1)
T0 = dt.datetime(2024, 1, 1)


#: Position of a column in a snapshot row tuple of LiveStrip.
COL = {c: i for i, c in enumerate(strip.SNAPSHOT_SCHEMA)}


def prints(rows, venue="binance", symbol="BTC", contract="usdt") -> pl.DataFrame:
    """(ts, funding_time, rate, interval_hours, kind) tuples -> a print frame."""
    return pl.DataFrame(
        [
            {
                "venue": venue,
                "symbol": symbol,
                "contract": contract,
                "venue_symbol": f"{symbol}USDT",
                "ts": ts,
                "funding_time": ft,
                "rate": rate,
                "interval_hours": float(hours),
                "kind": kind,
                "source": "test",
            }
            for ts, ft, rate, hours, kind in rows
        ],
        schema=PRINT_SCHEMA,
    )


def settled(start, n, rate=0.0001, hours=8, fetched=None):
    """n realised prints every ``hours`` from ``start``, stamped ``fetched(ft)`` (default +18 ms)."""
    stamp = fetched or (lambda ft: ft + dt.timedelta(milliseconds=18))
    return [(stamp(start + i * hours * H), start + i * hours * H, rate, hours, "realised") for i in range(n)]


# --- rule 1 / published_at ------------------------------------------------------------------


def test_a_realised_print_fetched_the_next_morning_is_kept_at_its_settlement_time():
    """Formerly: prints quoted a day away from their window were dropped (a file stamped with
    the next morning's fetch lost 40 of 60 prints and interpolation invented buckets)."""
    next_morning = lambda ft: dt.datetime.combine(ft.date() + D, dt.time(9, 0))  # noqa: E731
    rows = settled(T0 + 8 * H, 60, fetched=next_morning)
    frame = prints(rows)
    stored = normalise(frame)
    assert (stored["ts"] == stored["funding_time"]).all()
    assert stored["published_at"].to_list() == [r[0] for r in rows]
    roll = strip.roll_snapshots(frame)
    assert roll.height == 60 - 7  # every window from the 8th on, none dropped
    assert (roll["n_filled"] == 0).all()
    assert strip.ignored_prints(frame).height == 0


def test_prints_a_rule_ignores_are_listed_with_their_reason():
    rows = settled(T0 + 8 * H, 12) + [
        (T0 - 2 * D, T0 + 4 * D, 0.0002, 8, "predicted"),  # quoted days before its window
        (T0 + 2 * D + 9 * H, T0 + 2 * D + 8 * H, 0.0003, 8, "predicted"),  # after its settlement
        (T0 + 2 * D + 8 * H, T0 + 2 * D + 8 * H, 0.0004, 8, "predicted"),  # at settlement: kept
    ]
    ignored = strip.ignored_prints(prints(rows))
    assert sorted(ignored["reason"].to_list()) == ["predicted_after_settlement", "quoted_before_previous_day"]


# --- rule 2: realised supersedes overlapping predictions ------------------------------------


def test_a_stale_prediction_of_the_old_interval_never_stays_in_the_window():
    """A 4h venue moves to 8h: its last 4h prediction (12:00) never settles; the 8h
    settlement at 16:00 covers it. Formerly both were summed: b0 = (0.0003 + 0.0001) * 8 / 12
    * 1095 = 0.292 against the settled 0.1095."""
    history = settled(T0 + 8 * H, 8)  # 8h windows up to 2024-01-03 16:00
    day = T0 + 3 * D
    change = [
        (day + 9 * H, day + 12 * H, 0.0003, 4, "predicted"),  # the old 4h cadence's quote
        (day + 16 * H + dt.timedelta(milliseconds=20), day + 16 * H, 0.0001, 8, "realised"),
        (day + 17 * H, day + 24 * H, 0.0001, 8, "predicted"),
    ]
    frame = prints([*history, *settled(day, 2), *change])
    row = strip.roll_snapshots(frame).filter(pl.col("ts") == day + 16 * H).row(0, named=True)
    assert row["b0"] == pytest.approx(0.1095, abs=1e-12)
    assert row["coverage"] == 1.0
    sample = strip.intraday_snapshots(frame, every="1h").filter(pl.col("ts") == day + 17 * H)
    assert sample["b1"][0] == pytest.approx(0.1095, abs=1e-12)
    before = strip.intraday_snapshots(frame, every="1h").filter(pl.col("ts") == day + 15 * H)
    assert before["b0"][0] == pytest.approx(0.0003 * 8 / 4 * 1095, abs=1e-12)  # not yet superseded
    live = LiveStrip()
    rows = live.update_frame(frame.sort("ts"))
    last = [r for r in rows if r[COL["kind"]] == "roll" and r[COL["ts"]] == day + 16 * H][-1]
    assert last[COL["b0"]] == pytest.approx(0.1095, abs=1e-12)


# --- rule 3: coverage -----------------------------------------------------------------------


def test_one_hourly_print_of_eight_covers_an_eighth_of_its_window():
    history = settled(T0 + H, 7 * 8, rate=0.0000125, hours=1)  # 7 full hourly windows
    w = T0 + 8 * 8 * H
    lone = [(w - H, w - H, 0.0000125, 1, "realised"), (w, w, 0.0000125, 1, "realised")]
    roll = strip.roll_snapshots(prints([*history, *lone], venue="hyperliquid"))
    row = roll.filter(pl.col("ts") == w).row(0, named=True)
    assert row["coverage"] == pytest.approx(2 / 8)
    assert row["min_coverage"] == pytest.approx(1.0)
    # the missing-window check counts the partly covered window by its coverage
    share = missing_window_share(roll, w.date(), w.date()).filter(pl.col("day") == w.date())
    assert share["missing_share"][0] == pytest.approx(0.75)


# --- rule 4: a roll row closed after midnight is stored ---------------------------------------


def test_a_roll_row_closed_after_midnight_belongs_to_the_day_it_closed():
    """An hourly venue's last hour of the 16:00 window never settles, then an outage: the
    window closes with the next print after midnight. The live strip emitted that row;
    formerly no partition stored it."""
    history = settled(T0 + H, 2 * 24 + 15, rate=0.0000125, hours=1)  # through 2024-01-03 15:00
    w = T0 + 2 * D + 16 * H
    after = [(w + 9 * H + H, w + 9 * H + H, 0.0000125, 1, "realised")]  # 2024-01-04 02:00
    frame = prints([*history, *after], venue="hyperliquid")
    rows = strip.partition_snapshots(frame).filter(pl.col("kind") == "roll")
    row = rows.filter(pl.col("ts") == w).row(0, named=True)
    assert row["as_of"] == w + 10 * H and row["as_of"].date() == w.date() + D
    assert row["coverage"] == pytest.approx(7 / 8)
    rows = LiveStrip().update_frame(frame.sort("ts"))
    live = [r for r in rows if r[COL["kind"]] == "roll" and r[COL["ts"]] == w]
    assert live and live[-1][COL["as_of"]] == row["as_of"]


# --- invariants -------------------------------------------------------------------------------


def random_prints(seed: int, days: int = 9) -> pl.DataFrame:
    """Realised settlements (some missing, an interval change, ms jitter) with predictions
    quoted during each native window, for two series."""
    rng = random.Random(seed)
    rows = []
    for venue, hours in (("binance", 8), ("hyperliquid", 1)):
        t = T0 + hours * H
        change = T0 + rng.randrange(2, days - 2) * D
        while t < T0 + days * D:
            h = 4 if venue == "binance" and t > change else hours
            rate = round(rng.gauss(0.0001, 0.0001) * h / 8, 8)
            for _ in range(rng.randrange(0, 3)):
                quoted = t - dt.timedelta(minutes=rng.randrange(1, h * 60))
                rows.append((venue, quoted, t, rate + rng.gauss(0, 1e-5), h, "predicted"))
            if rng.random() > 0.05:
                rows.append((venue, t + dt.timedelta(milliseconds=rng.randrange(0, 1500)), t, rate, h, "realised"))
            t += h * H
    frame = pl.DataFrame(
        rows,
        schema={
            "venue": pl.String,
            "ts": pl.Datetime("ms"),
            "funding_time": pl.Datetime("ms"),
            "rate": pl.Float64,
            "interval_hours": pl.Float64,
            "kind": pl.String,
        },
        orient="row",
    )
    return frame.with_columns(symbol=pl.lit("BTC"), contract=pl.lit("usdt"))


SLOW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SLOW
@given(seed=st.integers(0, 10_000), shuffle=st.integers(0, 10_000))
def test_snapshots_do_not_depend_on_the_order_prints_arrive_in(seed, shuffle):
    frame = random_prints(seed).unique(subset=["venue", "ts", "funding_time"], keep="first")
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=shuffle)
    a, b = strip.partition_snapshots(frame), strip.partition_snapshots(shuffled)
    assert a.equals(b)


@SLOW
@given(seed=st.integers(0, 10_000))
def test_prints_seen_twice_change_nothing(seed):
    frame = random_prints(seed)
    assert strip.partition_snapshots(pl.concat([frame, frame])).equals(strip.partition_snapshots(frame))


@SLOW
@given(seed=st.integers(0, 10_000), day=st.integers(5, 8))
def test_a_day_alone_equals_the_same_day_inside_the_whole_range(seed, day):
    frame = random_prints(seed)
    d = (T0 + day * D).date()
    known_on = pl.col("as_of").dt.date() == d
    whole = strip.partition_snapshots(frame).filter(known_on)
    lo = dt.datetime.combine(d - dt.timedelta(days=strip.LOOKBACK_DAYS), dt.time())
    hi = dt.datetime.combine(d + dt.timedelta(days=1), dt.time())
    # the prints a partition reads: by their stored ts (settlement time for realised ones)
    stored = normalise(frame)
    alone = strip.partition_snapshots(stored.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))).filter(known_on)
    assert whole.height > 0
    assert alone.equals(whole)


@SLOW
@given(seed=st.integers(0, 10_000))
def test_live_roll_rows_equal_the_batch_engine(seed):
    frame = random_prints(seed, days=6)
    batch = strip.roll_snapshots(frame)
    live = LiveStrip()
    rows = live.update_frame(frame.sort("ts").with_columns(venue_symbol=pl.lit("x"), source=pl.lit("t")))
    last = {}
    for r in rows:
        if r[COL["kind"]] == "roll":
            last[(*(r[COL[k]] for k in strip.KEYS), r[COL["ts"]])] = r
    order = [*strip.KEYS, "ts"]
    live_roll = pl.DataFrame(list(last.values()), schema=strip.SNAPSHOT_SCHEMA, orient="row").sort(order)
    assert live_roll.equals(batch.sort(order))
