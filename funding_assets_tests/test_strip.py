"""The strip engine, one test per rule of DESIGN section 3."""

import datetime as dt
import random

import polars as pl
import pytest

from funding_assets import strip
from funding_assets.errors import FundingInputError
from funding_assets.live.livestrip import PRINT_COLUMNS, LiveStrip, rows_frame
from funding_assets.prints import normalise
from funding_assets.sim import FundingModel

H = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)
MS = dt.timedelta(milliseconds=1)
T0 = dt.datetime(2024, 1, 1, 8)
WORKED_RATES = [0.0001, 0.00012, 0.00008, 0.0001, 0.00015, 0.0002, 0.00011, 0.00009, 0.0001]


def prints(rows: list[tuple], venue: str = "binance", symbol: str = "BTC", contract: str = "usdt") -> pl.DataFrame:
    """rows: (ts, funding_time, rate, interval_hours, kind)."""
    return pl.DataFrame(
        [
            {
                "venue": venue,
                "symbol": symbol,
                "contract": contract,
                "ts": r[0],
                "funding_time": r[1],
                "rate": r[2],
                "interval_hours": float(r[3]),
                "kind": r[4],
            }
            for r in rows
        ]
    ).with_columns(pl.col("ts", "funding_time").cast(pl.Datetime("ms")))


def settled(start: dt.datetime, rates: list[float], hours: float = 8, jitter=dt.timedelta(0), **kw) -> pl.DataFrame:
    times = [start + i * dt.timedelta(hours=hours) for i in range(len(rates))]
    return prints([(t + jitter, t + jitter, r, hours, "realised") for t, r in zip(times, rates)], **kw)


def with_usdt(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with a ``contract`` column (``usdt`` unless it has one)."""
    return frame if "contract" in frame.columns else frame.with_columns(contract=pl.lit("usdt"))


def buckets(row: dict) -> list[float]:
    return [row[f"b{k}"] for k in range(8)]


def last_roll(frame: pl.DataFrame) -> dict:
    return strip.roll_snapshots(frame).sort("ts").row(-1, named=True)


def live_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """The prints fed one by one to a LiveStrip in row order: the last row it emitted per
    (venue, symbol, contract, kind, ts), as the live store keeps them."""
    live = LiveStrip()
    full = frame.with_columns(venue_symbol=pl.lit("X"), source=pl.lit("test"))
    rows = [r for q in full.select(PRINT_COLUMNS).iter_rows() for r in live.update([q])]
    keys = [*strip.KEYS, "kind", "ts"]
    return rows_frame(rows).unique(keys, keep="last", maintain_order=True).sort(keys)


def test_worked_example_of_the_design():
    roll = strip.roll_snapshots(settled(T0, WORKED_RATES, jitter=18 * MS))
    assert roll["ts"].to_list() == [dt.datetime(2024, 1, 3, 16), dt.datetime(2024, 1, 4)]
    last = roll.row(-1, named=True)
    assert last["funding_time"] == dt.datetime(2024, 1, 4)
    assert buckets(last) == pytest.approx([0.1095, 0.09855, 0.12045, 0.219, 0.16425, 0.1095, 0.0876, 0.1314], abs=1e-12)
    assert last["n_filled"] == 0 and last["kind"] == "roll" and last["annualisation"] == "apr"


def test_grid_puts_8h_4h_1h_and_mixed_intervals_on_one_grid():
    end = dt.datetime(2024, 1, 4)
    history = settled(end - 7 * 8 * H, [0.0001] * 8)  # 8h windows ending 2024-01-04 00:00
    four_h = pl.concat([history.head(7), settled(end - 4 * H, [0.00005, 0.00005], hours=4)])
    one_h = pl.concat([history.head(7), settled(end - 7 * H, [0.0000125] * 8, hours=1)])
    mixed = pl.concat(
        [history.head(7), settled(end - 4 * H, [0.00005], hours=4), settled(end - 3 * H, [0.0000125] * 4, hours=1)]
    )
    for frame in (history, four_h, one_h, mixed):
        row = last_roll(frame)
        assert row["ts"] == end
        assert row["b0"] == pytest.approx(0.1095, abs=1e-12)


def test_grid_window_value_weights_rates_by_their_hours():
    end = dt.datetime(2024, 1, 4)
    frame = pl.concat(
        [
            settled(end - 7 * 8 * H, [0.0001] * 7),
            settled(end - 4 * H, [0.0002], hours=4),
            settled(end - 3 * H, [0.00001] * 4, hours=1),
        ]
    )
    # r8 = (0.0002 + 4 * 0.00001) * 8 / (4 + 4)
    assert last_roll(frame)["b0"] == pytest.approx((0.0002 + 4 * 0.00001) * 8 / 8 * 1095, abs=1e-12)


def test_settlement_timestamps_are_snapped_to_the_minute():
    exact = settled(T0, WORKED_RATES)
    late = settled(T0, WORKED_RATES, jitter=1400 * MS)
    early = settled(T0, WORKED_RATES, jitter=-10 * MS)  # 07:59:59.990 belongs to the 08:00 window
    expected = strip.roll_snapshots(exact)
    for frame in (late, early):
        got = strip.roll_snapshots(frame)
        assert got["ts"].to_list() == expected["ts"].to_list()
        for a, b in zip(got.iter_rows(named=True), expected.iter_rows(named=True)):
            assert buckets(a) == pytest.approx(buckets(b), abs=1e-12)


def test_ties_go_to_the_print_that_arrived_last():
    open_end = T0 + 8 * 8 * H
    base = settled(T0, WORKED_RATES[:8])
    quote_ts = open_end - 2 * H
    first, second = (
        prints([(quote_ts, open_end, 0.0003, 8, "predicted")]),
        prints([(quote_ts, open_end, 0.0001, 8, "predicted")]),
    )
    got = strip.intraday_snapshots(pl.concat([base, first, second]), every=0).filter(pl.col("ts") == quote_ts)
    assert got["b0"].to_list() == pytest.approx([0.0001 * 1095])
    got = strip.intraday_snapshots(pl.concat([base, second, first]), every=0).filter(pl.col("ts") == quote_ts)
    assert got["b0"].to_list() == pytest.approx([0.0003 * 1095])


def test_out_of_order_prints_give_the_same_strip():
    w = T0 + 9 * 8 * H  # the window after the last settlement
    frame = pl.concat(
        [
            settled(T0, WORKED_RATES),
            prints([(w - 7 * H + 5 * H * k / 10, w, 0.0001 + k * 1e-6, 8, "predicted") for k in range(10)]),
        ]
    )
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=3)
    for fn in (strip.roll_snapshots, lambda f: strip.intraday_snapshots(f, every="30m")):
        a, b = fn(frame), fn(shuffled)
        assert a.equals(b)
    # the latest quote by ts wins, whatever the row order
    intraday = strip.intraday_snapshots(shuffled, every=0)
    assert intraday.sort("ts")["b0"][-1] == pytest.approx((0.0001 + 9e-6) * 1095)


def test_duplicate_prints_count_once():
    end = dt.datetime(2024, 1, 4)
    hourly = settled(end - 8 * 8 * H + H, [0.0000125] * 64, hours=1, venue="hyperliquid")
    doubled = pl.concat([hourly, hourly.tail(5)])
    assert last_roll(doubled)["b0"] == pytest.approx(0.1095, abs=1e-12)
    assert strip.roll_snapshots(doubled).equals(strip.roll_snapshots(hourly))


@pytest.mark.parametrize(
    ("missing", "filled"),
    [
        ([5], {3: 0.14235}),  # the design's example: neighbours b2 0.12045 and b4 0.16425
        ([5, 6], {2: 0.09855 + (0.16425 - 0.09855) / 3, 3: 0.09855 + (0.16425 - 0.09855) * 2 / 3}),
    ],
)
def test_gaps_of_one_and_two_windows_are_interpolated(missing, filled):
    rates = [r for i, r in enumerate(WORKED_RATES) if i not in missing]
    times = [T0 + i * 8 * H for i in range(len(WORKED_RATES)) if i not in missing]
    frame = prints([(t, t, r, 8, "realised") for t, r in zip(times, rates)])
    frame = pl.concat([settled(T0 - 3 * 8 * H, [0.0001] * 3), frame])  # older history
    row = strip.roll_snapshots(frame).filter(pl.col("ts") == dt.datetime(2024, 1, 4)).row(0, named=True)
    assert row["n_filled"] == len(missing)
    for k, value in filled.items():
        assert row[f"b{k}"] == pytest.approx(value, abs=1e-12)


def test_a_gap_of_three_windows_emits_no_snapshot():
    rates = [0.0001] * 12
    frame = settled(T0, rates).with_row_index().filter(~pl.col("index").is_in([6, 7, 8])).drop("index")
    roll = strip.roll_snapshots(frame)
    closes_over_gap = [T0 + i * 8 * H for i in range(9, 12)]
    assert not set(closes_over_gap) & set(roll["ts"].to_list())


def test_max_fill_0_emits_only_complete_strips():
    """Formerly the engine failed outright with ``max_fill=0`` (an empty coalesce)."""
    rates = [0.0001 + i * 1e-6 for i in range(12)]
    frame = settled(T0, rates).with_row_index().filter(pl.col("index") != 9).drop("index")
    roll = strip.roll_snapshots(frame, max_fill=0)
    # windows 7 and 8 close with eight known windows; 10 and 11 have window 9 among their eight
    assert roll["ts"].to_list() == [T0 + 7 * 8 * H, T0 + 8 * 8 * H]
    assert roll["n_filled"].to_list() == [0, 0]
    filled = strip.roll_snapshots(frame, max_fill=1)
    assert filled["ts"].to_list() == [T0 + i * 8 * H for i in (7, 8, 10, 11)]
    quote = prints([(T0 + 12 * 8 * H - 5 * H, T0 + 12 * 8 * H, 0.0002, 8, "predicted")])  # open window
    assert strip.intraday_snapshots(pl.concat([frame, quote]), every="1h", max_fill=0).is_empty()  # reads window 9
    intraday = strip.intraday_snapshots(pl.concat([settled(T0, rates), quote]), every="1h", max_fill=0)
    assert intraday.select("ts", "n_filled").rows() == [(T0 + 91 * H, 0)]
    assert intraday["b0"][0] == pytest.approx(0.0002 * 1095)


def test_fill_uses_an_older_window_beyond_bucket_7_and_needs_one():
    rates = [0.0002] + [0.0001] * 8
    frame = settled(T0, rates).with_row_index().filter(pl.col("index") != 1).drop("index")
    row = strip.roll_snapshots(frame).filter(pl.col("ts") == T0 + 8 * 8 * H).row(0, named=True)
    assert row["n_filled"] == 1  # b7 missing, b8 known
    assert row["b7"] == pytest.approx((0.0001 + (0.0002 - 0.0001) / 2) * 1095)
    # without the older window there is nothing to interpolate towards: no snapshot
    assert (
        strip.roll_snapshots(frame.filter(pl.col("rate") != 0.0002)).filter(pl.col("ts") == T0 + 8 * 8 * H).is_empty()
    )


def test_bucket_0_is_never_filled():
    frame = settled(T0, [0.0001] * 8)
    quote = prints([(T0 + 8 * 8 * H + H, T0 + 9 * 8 * H, 0.0001, 8, "predicted")])  # next window quoted
    roll = strip.roll_snapshots(pl.concat([frame, quote]))
    assert roll["ts"].to_list() == [T0 + 7 * 8 * H]


def test_realised_print_is_final_and_predictions_are_replaced():
    hist = settled(T0, WORKED_RATES[:8])
    w = T0 + 8 * 8 * H
    live = prints(
        [
            (w - 3 * H, w, 0.0003, 8, "predicted"),
            (w + 18 * MS, w, 0.0002, 8, "realised"),
            (w + 5 * H, w, 0.0009, 8, "predicted"),  # a stale prediction after settlement
        ]
    )
    row = last_roll(pl.concat([hist, live]))
    assert row["ts"] == w and row["b0"] == pytest.approx(0.0002 * 1095)


def test_realised_prints_stamped_when_fetched_are_filed_at_settlement():
    """A replay file whose realised ts is the next morning's fetch time: every print is kept
    at its settlement time, and nothing is interpolated."""
    times = [T0 + i * 8 * H for i in range(60)]
    fetched = [(t + dt.timedelta(days=1)).replace(hour=9, minute=30) for t in times]
    frame = prints([(f, t, 0.0001 + i * 1e-7, 8, "realised") for i, (t, f) in enumerate(zip(times, fetched))])
    stored = normalise(frame)
    assert stored.height == 60
    assert stored["ts"].to_list() == times
    assert stored["published_at"].to_list() == fetched
    assert strip.ignored_prints(frame).is_empty()
    roll = strip.roll_snapshots(frame)
    assert roll["ts"].to_list() == times[7:]
    assert roll["n_filled"].sum() == 0
    assert roll["b0"].to_list() == pytest.approx([(0.0001 + i * 1e-7) * 1095 for i in range(7, 60)], abs=1e-12)
    assert normalise(stored).equals(stored)  # normalising twice changes nothing


def test_a_correction_published_later_wins_whatever_the_row_order():
    w = T0 + 8 * 8 * H
    first = prints([(w + 18 * MS, w, 0.0001, 8, "realised")])
    corrected = prints([(w + 20 * H, w, 0.0005, 8, "realised")])
    frame = pl.concat([settled(T0, WORKED_RATES[:8]), first, corrected])
    for rows in (frame, frame.reverse()):
        assert last_roll(rows)["b0"] == pytest.approx(0.0005 * 1095)
    assert live_rows(frame.reverse()).filter(pl.col("kind") == "roll")["b0"][-1] == pytest.approx(0.0005 * 1095)


def eight_to_one_hour_window() -> tuple[pl.DataFrame, dt.datetime]:
    """8h history, then a window W in which the venue quotes an 8h prediction for W and
    switches to hourly funding, settling 0.0000125 every hour (r8 = 0.0001)."""
    w = T0 + 8 * 8 * H
    stale = prints(
        [(w - 8 * H + 10 * MINUTE, w, 0.0003, 8, "predicted"), (w - 8 * H + 40 * MINUTE, w, 0.0003, 8, "predicted")]
    )
    hourly = settled(w - 7 * H, [0.0000125] * 8, hours=1)
    after = prints([(w + 20 * MINUTE, w + H, 0.0000125, 1, "predicted")])
    return pl.concat([settled(T0, WORKED_RATES[:8]), stale, hourly, after]), w


def test_a_realised_print_supersedes_the_prediction_of_an_interval_that_ended():
    frame, w = eight_to_one_hour_window()
    row = strip.roll_snapshots(frame).filter(pl.col("ts") == w).row(0, named=True)
    assert row["b0"] == pytest.approx(0.1095, abs=1e-12) and row["coverage"] == 1.0
    # as of each sample, once the first hour has settled: the settled hours only
    intraday = strip.intraday_snapshots(frame, every="10m").filter(pl.col("funding_time") == w)
    before = intraday.filter(pl.col("ts") < w - 7 * H)
    assert before["b0"].to_list() == pytest.approx([0.0003 * 1095] * before.height)  # the 8h quote
    settling = intraday.filter(pl.col("ts") >= w - 7 * H)
    assert settling.height == 42
    assert settling["b0"].to_list() == pytest.approx([0.1095] * 42, abs=1e-12)
    hours_settled = ((settling["ts"] - (w - 8 * H)).dt.total_hours()).to_list()
    assert settling["coverage"].to_list() == pytest.approx([h / 8 for h in hours_settled])
    assert set(settling["interval_hours"].to_list()) == {1.0}
    # live: the same rows
    live = live_rows(frame)
    assert live.filter((pl.col("kind") == "roll") & (pl.col("ts") == w))["b0"].to_list() == pytest.approx([0.1095])
    live_intraday = live.filter(
        (pl.col("kind") == "intraday") & (pl.col("funding_time") == w) & (pl.col("ts") >= w - 7 * H)
    )
    assert live_intraday["b0"].to_list() == pytest.approx([0.1095] * 7, abs=1e-12)
    assert live_intraday["coverage"].to_list() == pytest.approx([k / 8 for k in range(1, 8)])


def test_a_realised_print_supersedes_predictions_of_a_shorter_interval():
    """1h -> 8h: hourly predictions of the window are stale once the 8h settlement lands."""
    w = T0 + 8 * 8 * H
    stale = prints(
        [
            (w - 8 * H + 5 * MINUTE, w - 7 * H, 0.00005, 1, "predicted"),
            (w - 7 * H + 5 * MINUTE, w - 6 * H, 0.00005, 1, "predicted"),
        ]
    )
    frame = pl.concat([settled(T0, WORKED_RATES[:8]), stale, settled(w, [0.0001])])
    row = last_roll(frame)
    assert row["ts"] == w and row["b0"] == pytest.approx(0.1095, abs=1e-12) and row["coverage"] == 1.0
    assert live_rows(frame).filter(pl.col("kind") == "roll")["b0"][-1] == pytest.approx(0.1095, abs=1e-12)


def test_coverage_is_the_share_of_hours_known_in_each_window():
    end = dt.datetime(2024, 1, 4)
    history = settled(end - 7 * 8 * H, [0.0001] * 7)
    one_hour = pl.concat([history, settled(end, [0.0000125], hours=1, venue="binance")])
    row = last_roll(one_hour)
    assert row["ts"] == end and row["coverage"] == 0.125 and row["min_coverage"] == 1.0
    assert row["b0"] == pytest.approx(0.1095, abs=1e-12)  # r8 of the hour known
    # two 8h settlements in one grid window (a venue that moved its schedule): 16 h of 8
    moved = pl.concat([history, settled(end - 4 * H, [0.0001]), settled(end, [0.0001])])
    assert last_roll(moved)["coverage"] == 2.0
    # a filled bucket counts 0 in min_coverage
    gap = settled(T0, WORKED_RATES).with_row_index().filter(pl.col("index") != 5).drop("index")
    gap = pl.concat([settled(T0 - 3 * 8 * H, [0.0001] * 3), gap])
    filled = strip.roll_snapshots(gap).filter(pl.col("ts") == dt.datetime(2024, 1, 4)).row(0, named=True)
    assert filled["n_filled"] == 1 and filled["min_coverage"] == 0.0 and filled["coverage"] == 1.0
    # intraday: the open window so far
    hourly = settled(end + H, [0.0000125] * 3, hours=1)
    intraday = strip.intraday_snapshots(pl.concat([settled(end - 7 * 8 * H, [0.0001] * 8), hourly]), every=0)
    assert intraday.sort("ts")["coverage"].to_list()[-3:] == [0.125, 0.25, 0.375]


def test_predicted_window_closes_on_a_later_windows_print():
    hist = settled(T0, WORKED_RATES[:8])
    w = T0 + 8 * 8 * H
    predicted = prints([(w - 10 * 60 * 1000 * MS, w, 0.00011, 8, "predicted")])
    assert last_roll(pl.concat([hist, predicted]))["ts"] == w - 8 * H  # W still open
    next_window = prints([(w + 1 * H, w + 8 * H, 0.0001, 8, "predicted")])
    row = last_roll(pl.concat([hist, predicted, next_window]))
    assert row["ts"] == w and row["b0"] == pytest.approx(0.00011 * 1095)


def test_ignored_prints_are_listed_with_their_reason_and_left_out():
    w = T0 + 8 * 8 * H
    hist = settled(T0, WORKED_RATES[:8])
    kept = prints(
        [
            (w - 20 * H, w, 0.0002, 8, "predicted"),  # quoted the day before W's day: kept
            (w + 30 * 1000 * MS, w, 0.0002, 8, "predicted"),  # 30 s after settlement: clock jitter
            (w + 8 * H + 10 * H, w + 8 * H, 0.0001, 8, "realised"),  # fetched 10 h late: at settlement
        ]
    )
    ignored = prints(
        [
            (w - 60 * H, w, 0.0009, 8, "predicted"),  # two days before W's day
            (w + 2 * MINUTE, w, 0.0009, 8, "predicted"),  # a prediction after settlement
        ]
    )
    frame = pl.concat([hist, kept, ignored])
    listed = strip.ignored_prints(frame)
    assert listed["reason"].to_list() == ["quoted_before_previous_day", "predicted_after_settlement"]
    assert listed["ts"].to_list() == ignored["ts"].to_list() and set(listed["rate"].to_list()) == {0.0009}
    without = pl.concat([hist, kept])
    for fn in (strip.roll_snapshots, lambda f: strip.intraday_snapshots(f, every=0)):
        assert fn(frame).equals(fn(without))
    assert last_roll(frame)["b0"] == pytest.approx(0.0001 * 1095)
    live = LiveStrip()
    live.update(frame.with_columns(venue_symbol=pl.lit("X"), source=pl.lit("t")).select(PRINT_COLUMNS).rows())
    assert live.series[("binance", "BTC", "usdt")].ignored == listed.height


def test_hourly_window_closes_when_its_last_hour_settles():
    end = dt.datetime(2024, 1, 4)
    hourly = settled(end - 71 * H, [0.0000125] * 71, hours=1, venue="hyperliquid")  # up to 23:00
    assert last_roll(hourly)["ts"] == end - 8 * H
    last_hour = settled(end, [0.0000125], hours=1, venue="hyperliquid", jitter=700 * MS)
    assert last_roll(pl.concat([hourly, last_hour]))["ts"] == end


def outage_across_midnight() -> tuple[pl.DataFrame, dt.datetime]:
    """An hourly venue whose 16:00 hour never settles, silent until after midnight."""
    w = dt.datetime(2024, 1, 4, 16)
    hourly = settled(w - 71 * H, [0.0000125] * 71, hours=1, venue="hyperliquid")  # up to 15:00
    after = prints(
        [
            (w + 8 * H + 30 * MINUTE, w + 9 * H, 0.00002, 1, "predicted"),
            (w + 9 * H, w + 9 * H, 0.00002, 1, "realised"),
        ],
        venue="hyperliquid",
    )
    return pl.concat([hourly, after]), w


def test_a_window_closed_after_midnight_is_known_and_stored_on_the_day_it_closed():
    frame, w = outage_across_midnight()
    closed_at = w + 8 * H + 30 * MINUTE  # 00:30 the next day
    roll = strip.roll_snapshots(frame).filter(pl.col("ts") == w)
    assert roll.select("ts", "as_of", "coverage").rows() == [(w, closed_at, 0.875)]
    stored = strip.partition_snapshots(frame).filter(pl.col("kind") == "roll")
    assert stored.filter(pl.col("ts") == w)["as_of"].to_list() == [closed_at]
    # the next day alone (with its lookback) files the same row as the whole range
    day = closed_at.date()
    lo = dt.datetime.combine(day, dt.time()) - dt.timedelta(days=strip.LOOKBACK_DAYS)
    alone = strip.partition_snapshots(frame.filter(pl.col("ts") >= lo))
    assert alone.filter(pl.col("as_of").dt.date() == day).equals(
        strip.partition_snapshots(frame).filter(pl.col("as_of").dt.date() == day)
    )
    # rows closed within their window's day are known at the window's end
    on_time = strip.roll_snapshots(frame).filter(pl.col("ts") < w)
    assert (on_time["as_of"] == on_time["ts"]).all()
    # live: the same row
    live = live_rows(frame).filter((pl.col("kind") == "roll") & (pl.col("ts") == w))
    assert live.select("ts", "as_of").rows() == [(w, closed_at)]


def test_a_window_closed_more_than_a_day_late_emits_no_roll_row():
    frame, w = outage_across_midnight()
    later = frame.with_columns(
        pl.when(pl.col("ts") > w).then(pl.col(c) + dt.timedelta(days=1)).otherwise(pl.col(c)).alias(c)
        for c in ("ts", "funding_time")
    )
    assert strip.roll_snapshots(later).filter(pl.col("ts") == w).is_empty()
    assert live_rows(later).filter((pl.col("kind") == "roll") & (pl.col("ts") == w)).is_empty()


def test_live_refiles_a_row_when_a_gap_fill_shows_it_closed_earlier():
    """After the outage the stream's first quote closes W; the REST gap fill then delivers
    the settlements of the next window (ts 17:00..00:00): W closed within its day after all."""
    frame, w = outage_across_midnight()
    fill = settled(w + H, [0.00001] * 8, hours=1, venue="hyperliquid")
    arrival = pl.concat([frame, fill])  # the fill arrives last
    batch = strip.roll_snapshots(arrival).filter(pl.col("ts") == w)
    assert batch["as_of"].to_list() == [w]
    live = live_rows(arrival).filter(pl.col("kind") == "roll")
    assert live.filter(pl.col("ts") == w)["as_of"].to_list() == [w]
    assert live.equals(strip.roll_snapshots(arrival))

    history = settled(T0, WORKED_RATES[:8], jitter=18 * MS)  # 7 closed windows behind the open one
    w = T0 + 8 * 8 * H
    first_live = prints([(w - 7 * H, w, 0.0001, 8, "predicted")])
    live = strip.intraday_snapshots(pl.concat([history, first_live]), every=0)
    row = live.filter(pl.col("ts") == w - 7 * H).row(0, named=True)
    assert row["funding_time"] == w and row["kind"] == "intraday"
    assert buckets(row) == pytest.approx([0.1095, 0.09855, 0.12045, 0.219, 0.16425, 0.1095, 0.0876, 0.1314], abs=1e-12)


def test_live_and_history_give_the_same_roll_rows():
    history = settled(T0, WORKED_RATES, jitter=18 * MS)
    w = T0 + 8 * 8 * H
    # live: predictions during the last window, the closing quote equal to what settled
    live = pl.concat(
        [
            history.filter(pl.col("funding_time") < w),
            prints([(w - (60 - m) * 60_000 * MS, w, 0.0001 + m * 1e-7, 8, "predicted") for m in range(0, 60, 10)]),
            prints(
                [(w - 1000 * MS, w, 0.0001, 8, "predicted"), (w + 60 * 1000 * MS, w + 8 * H, 0.0001, 8, "predicted")]
            ),
        ]
    )
    a = strip.roll_snapshots(history).filter(pl.col("ts") == w)
    b = strip.roll_snapshots(live).filter(pl.col("ts") == w)
    assert a.drop("interval_hours").equals(b.drop("interval_hours"))


def test_apr_is_simple_and_apy_compounds():
    frame = settled(T0, WORKED_RATES)
    apr = strip.roll_snapshots(frame, annualisation="apr").row(-1, named=True)
    apy = strip.roll_snapshots(frame, annualisation="apy").row(-1, named=True)
    rates_newest_first = WORKED_RATES[::-1][:8]
    assert buckets(apr) == pytest.approx([r * 1095 for r in rates_newest_first], abs=1e-12)
    assert buckets(apy) == pytest.approx([(1 + r) ** 1095 - 1 for r in rates_newest_first], rel=1e-12)
    assert apy["annualisation"] == "apy"
    assert apy["b0"] > apr["b0"]  # compounding a positive rate earns more


def test_intraday_samples_see_only_prints_already_quoted():
    history = settled(T0, WORKED_RATES[:8])
    w = T0 + 8 * 8 * H
    quotes = prints(
        [
            (w - 6 * H + 5 * 60_000 * MS, w, 0.0002, 8, "predicted"),
            (w - 3 * H + 5 * 60_000 * MS, w, 0.0004, 8, "predicted"),
            (w - 1 * H, w, 0.0004, 8, "predicted"),
        ]
    )
    samples = strip.intraday_snapshots(pl.concat([history, quotes]), every="1h")
    by_ts = dict(zip(samples["ts"].to_list(), samples["b0"].to_list()))
    assert by_ts[w - 5 * H] == pytest.approx(0.0002 * 1095)
    assert by_ts[w - 3 * H] == pytest.approx(0.0002 * 1095)  # 0.0004 arrives five minutes later
    assert by_ts[w - 2 * H] == pytest.approx(0.0004 * 1095)
    assert w - 6 * H not in by_ts  # nothing quoted for the open window yet
    assert set(samples["funding_time"].to_list()) == {w}


def test_intraday_every_zero_samples_each_print():
    history = settled(T0, WORKED_RATES[:8])
    w = T0 + 8 * 8 * H
    stamps = [w - 5 * H + k * 7 * MS for k in range(5)]
    quotes = prints([(t, w, 0.0001 + i * 1e-6, 8, "predicted") for i, t in enumerate(stamps)])
    samples = strip.intraday_snapshots(pl.concat([history, quotes]), every=0)
    assert samples.filter(pl.col("funding_time") == w)["ts"].to_list() == stamps


def test_hourly_intraday_bucket_0_averages_the_hours_settled_so_far():
    end = dt.datetime(2024, 1, 4)
    hours = [0.00001, 0.00002, 0.00003]
    frame = pl.concat(
        [
            settled(end - 64 * H + H, [0.0000125] * 56, hours=1, venue="hyperliquid"),
            settled(end - 7 * H, hours, hours=1, venue="hyperliquid", jitter=500 * MS),
        ]
    )
    row = strip.intraday_snapshots(frame, every=0).sort("ts").row(-1, named=True)  # at the third hour
    assert row["funding_time"] == end and row["interval_hours"] == 1
    assert row["b0"] == pytest.approx(sum(hours) * 8 / 3 * 1095, abs=1e-12)


def test_partition_rows_are_the_same_alone_or_inside_a_range():
    model = FundingModel(seed=11)
    start, stop = dt.datetime(2024, 2, 1), dt.datetime(2024, 2, 12)
    rng = random.Random(5)
    live = prints(
        [
            (
                t,
                t.replace(minute=0, second=0) + dt.timedelta(hours=8 - t.hour % 8),
                rng.uniform(-1e-4, 3e-4),
                8,
                "predicted",
            )
            for t in (start + dt.timedelta(minutes=rng.randrange(0, 11 * 24 * 60)) for _ in range(3000))
        ]
    )
    settlements = [with_usdt(model.settlements(v, "BTC", start, stop)) for v in ("binance", "hyperliquid")]
    frame = normalise(pl.concat([s.select(live.columns) for s in settlements] + [live]))
    everything = strip.partition_snapshots(frame, every="10m")
    for day in (dt.date(2024, 2, 6), dt.date(2024, 2, 9)):
        lo = dt.datetime.combine(day, dt.time())
        alone = strip.partition_snapshots(
            frame.filter(
                (pl.col("ts") >= lo - dt.timedelta(days=strip.LOOKBACK_DAYS))
                & (pl.col("ts") < lo + dt.timedelta(days=1))
            ),
            every="10m",
        ).filter(pl.col("as_of").dt.date() == day)
        in_range = everything.filter(pl.col("as_of").dt.date() == day)
        assert alone.height > 100 and alone.filter(pl.col("kind") == "roll").height >= 6
        assert alone.equals(in_range)


def test_bad_input_names_the_problem():
    good = settled(T0, WORKED_RATES)
    with pytest.raises(FundingInputError, match="missing column.*rate"):
        strip.roll_snapshots(good.drop("rate"))
    with pytest.raises(FundingInputError, match="kind"):
        strip.roll_snapshots(good.with_columns(kind=pl.lit("settled")))
    with pytest.raises(FundingInputError, match="annualisation"):
        strip.roll_snapshots(good, annualisation="ear")
    with pytest.raises(FundingInputError, match="every"):
        strip.intraday_snapshots(good, every="ten minutes")


def test_timezone_aware_and_epoch_ms_inputs_are_read_as_utc():
    base = settled(T0, WORKED_RATES)
    paris = base.with_columns(
        pl.col("ts", "funding_time").dt.replace_time_zone("UTC").dt.convert_time_zone("Europe/Paris")
    )
    epoch = base.with_columns(pl.col("ts", "funding_time").dt.epoch("ms"))
    expected = strip.roll_snapshots(base)
    assert strip.roll_snapshots(paris).equals(expected)
    assert strip.roll_snapshots(epoch).equals(expected)
