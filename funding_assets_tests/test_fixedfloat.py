"""Fixed against floating (DESIGN section 11), one rule per test (funding_assets.fixedfloat).

- a candle row is the state just before the candle's close ``as_of = ts + interval``;
- realised APR over settlements = sum(rate) * 8760 / sum(interval_hours) (VENUES 7.2), to
  date over (term_start, as_of), remaining over [as_of, maturity], the term (term_start, maturity];
- strip = the latest roll snapshot with as_of in [candle as_of - 24 h, candle as_of);
- carry = implied - realised to date; fixed earned = implied - realised remaining;
- outcome rows only for matured futures whose settlements cover the term;
- the rows a day stores, and what they read (lookback), depend on nothing else;
- the result does not depend on the input row order (hypothesis).
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import polars as pl
import pytest
from fixedfloat_frames import (
    H8,
    NO_PRINTS,
    NO_ROLLS,
    H,
    candle,
    candles,
    hourly,
    prints,
    roll,
    rolls,
    settlement,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from funding_assets.errors import FundingInputError
from funding_assets.fixedfloat import (
    FIXED_VS_FLOATING_SCHEMA,
    STRIP_MAX_AGE,
    fixed_vs_floating,
    interval_ms,
    lookback_days,
    rows_for_day,
)

T0 = datetime(2024, 3, 1)
DAY = timedelta(days=1)
LATER = datetime(2030, 1, 1)
TERM = {"term_start": T0, "maturity": T0 + DAY}


def run(candle_rows, print_rows=(), roll_rows=(), known_until=LATER) -> pl.DataFrame:
    p = prints(list(print_rows)) if print_rows else NO_PRINTS
    r = rolls(list(roll_rows)) if roll_rows else NO_ROLLS
    return fixed_vs_floating(candles(list(candle_rows)), p, r, known_until=known_until)


def row_at(out: pl.DataFrame, ts: datetime, kind: str = "candle", market_id: str = "m1") -> dict:
    rows = out.filter(pl.col("ts") == ts, pl.col("kind") == kind, pl.col("market_id") == market_id)
    assert rows.height == 1, rows
    return rows.row(0, named=True)


#: 8h settlement at 08:00, then hourly ones 09:00..24:00 (Binance moving BTC to 1h): the day's term.
MIXED = [settlement(T0 + 8 * H, 0.0003, 8.0)] + [settlement(T0 + (8 + k) * H, 0.00001 * k, 1.0) for k in range(1, 17)]
#: Three 8h settlements covering the day.
EIGHT_HOURLY = [settlement(T0 + 8 * H, 0.0001), settlement(T0 + 16 * H, 0.0002), settlement(T0 + 24 * H, 0.0004)]


# --- schema and units --------------------------------------------------------------------


def test_the_output_has_the_documented_schema():
    out = run(hourly(T0, [0.1] * 24, **TERM), MIXED)
    assert out.schema == pl.Schema(FIXED_VS_FLOATING_SCHEMA)
    assert run([]).schema == pl.Schema(FIXED_VS_FLOATING_SCHEMA)


def test_implied_apr_is_the_candle_close_as_an_annualised_decimal():
    out = run(hourly(T0, [0.036451, 0.04], **TERM))
    assert out.filter(pl.col("kind") == "candle")["implied_apr"].to_list() == [0.036451, 0.04]


@pytest.mark.parametrize(("interval", "ms"), [("5m", 300_000), ("1h", 3_600_000), ("4h", 14_400_000), ("1d", 86_400_000), ("1w", 604_800_000)])  # fmt: skip
def test_candle_intervals_in_milliseconds(interval, ms):
    assert interval_ms(interval) == ms


def test_a_candle_row_is_as_of_its_close_and_days_to_maturity_count_from_there():
    out = run(
        [candle(T0 + 6 * H, 0.1, interval="4h", **TERM), candle(T0 + 5 * H, 0.1, market_id="m2", interval="5m", **TERM)]
    )
    four = row_at(out, T0 + 6 * H)
    assert four["as_of"] == T0 + 10 * H
    assert four["days_to_maturity"] == pytest.approx(14 / 24, rel=1e-15)
    assert row_at(out, T0 + 5 * H, market_id="m2")["as_of"] == T0 + 5 * H + timedelta(minutes=5)


# --- realised APR to date ----------------------------------------------------------------


def test_realised_apr_to_date_is_sum_of_rates_times_8760_over_hours_with_8h_and_1h_settlements_mixed():
    out = run(hourly(T0, [0.1] * 24, **TERM), MIXED)
    # candle 12:00-13:00: the 8h settlement at 08:00 and the hourly ones at 09..12
    row = row_at(out, T0 + 12 * H)
    rates = 0.0003 + 0.00001 + 0.00002 + 0.00003 + 0.00004  # 0.0004
    assert row["realised_hours"] == 12.0
    assert row["realised_apr_to_date"] == pytest.approx(rates * 8760 / 12, rel=1e-12)  # 0.292
    assert row["realised_apr_to_date"] == pytest.approx(0.292, rel=1e-12)
    # a plain average of per-settlement APRs would weigh the 8h settlement like an hourly one
    naive = (0.0003 * 1095 + sum(0.00001 * k * 8760 for k in range(1, 5))) / 5
    assert abs(row["realised_apr_to_date"] - naive) > 0.01


def test_carry_is_implied_minus_realised_to_date():
    row = row_at(run(hourly(T0, [0.1] * 24, **TERM), MIXED), T0 + 12 * H)
    assert row["carry_apr"] == pytest.approx(0.1 - 0.292, rel=1e-12)


def test_a_settlement_at_the_candle_close_is_not_yet_known():
    out = run(hourly(T0, [0.1] * 24, **TERM), EIGHT_HOURLY)
    before = row_at(out, T0 + 7 * H)  # closes at 08:00, when the first settlement is paid
    assert before["as_of"] == T0 + 8 * H
    assert before["realised_apr_to_date"] is None and before["carry_apr"] is None
    assert before["realised_hours"] == 0.0
    after = row_at(out, T0 + 8 * H)
    assert after["realised_apr_to_date"] == pytest.approx(0.0001 * 1095, rel=1e-12)
    assert after["realised_hours"] == 8.0


def test_settlements_after_a_candle_never_change_its_row():
    """No look-ahead: a candle row reads only settlements before its close."""
    bars = hourly(T0, [0.1] * 24, **TERM)
    cut = T0 + 13 * H
    known = [s for s in MIXED if s["funding_time"] < cut]
    later = [settlement(s["funding_time"], 0.05, s["interval_hours"]) for s in MIXED if s["funding_time"] >= cut]
    full = run(bars, known + later).filter(pl.col("kind") == "candle", pl.col("as_of") <= cut)
    assert full.height == 13
    assert_frame_equal(full, run(bars, known).filter(pl.col("kind") == "candle", pl.col("as_of") <= cut))


def test_predicted_prints_and_other_underlyings_do_not_count():
    bars = hourly(T0, [0.1] * 24, **TERM)
    noise = [
        settlement(T0 + 12 * H, 0.5, kind="predicted", ts=T0 + 11 * H),
        settlement(T0 + 8 * H, 0.9, venue="bybit"),
        settlement(T0 + 8 * H, 0.9, contract="inverse"),
        settlement(T0 + 8 * H, 0.9, symbol="ETH"),
    ]
    assert_frame_equal(run(bars, MIXED + noise), run(bars, MIXED))


def test_settlements_outside_the_term_do_not_count():
    bars = hourly(T0, [0.1] * 24, **TERM)
    outside = [settlement(T0, 0.9), settlement(T0 - 8 * H, 0.9), settlement(T0 + 32 * H, 0.9)]
    assert_frame_equal(run(bars, EIGHT_HOURLY + outside), run(bars, EIGHT_HOURLY))
    # a candle after maturity accrues the whole term, nothing after it
    late = run([candle(T0 + 30 * H, 0.1, **TERM)], EIGHT_HOURLY + outside)
    assert late["realised_apr_to_date"][0] == pytest.approx(0.0007 * 8760 / 24, rel=1e-12)


def test_a_later_published_correction_replaces_the_settlement():
    first = settlement(T0 + 8 * H, 0.0002, ts=T0 + 8 * H)
    correction = {**settlement(T0 + 8 * H, 0.0001), "ts": T0 + 8 * H + timedelta(seconds=5)}
    for order in ([first, correction], [correction, first]):
        row = row_at(run([candle(T0 + 9 * H, 0.1, **TERM)], order), T0 + 9 * H)
        assert row["realised_apr_to_date"] == pytest.approx(0.0001 * 1095, rel=1e-12)


# --- the strip ---------------------------------------------------------------------------

STRIP_00 = roll(T0, [0.05] * 8)
STRIP_08 = roll(T0 + 8 * H, [0.1 * (k + 1) for k in range(8)])  # b0 0.1 .. b7 0.8, mean 0.45


def test_the_strip_is_the_latest_roll_snapshot_before_the_candle_close():
    out = run(hourly(T0, [0.1] * 24, **TERM), roll_rows=[STRIP_00, STRIP_08])
    at_close = row_at(out, T0 + 7 * H)  # closes at 08:00, as the 08:00 roll becomes known
    assert (at_close["strip_funding_time"], at_close["strip_mean_apr"]) == (T0, 0.05)
    after = row_at(out, T0 + 8 * H)
    assert after["strip_funding_time"] == T0 + 8 * H
    assert after["strip_b0_apr"] == pytest.approx(0.1, rel=1e-15)
    assert after["strip_mean_apr"] == pytest.approx(0.45, rel=1e-12)


def test_a_roll_older_than_a_day_is_no_strip():
    bars = [candle(T0 + 31 * H, 0.1, **TERM), candle(T0 + 32 * H, 0.1, **TERM)]
    out = run(bars, roll_rows=[STRIP_08])
    assert STRIP_MAX_AGE == timedelta(hours=24)
    assert row_at(out, T0 + 31 * H)["strip_mean_apr"] == pytest.approx(0.45)  # 24 h old at 08:00 + 1 d
    assert row_at(out, T0 + 32 * H)["strip_mean_apr"] is None


def test_an_apy_strip_is_shown_as_its_apr():
    r8 = 0.0001
    apy = (1 + r8) ** 1095 - 1
    out = run([candle(T0 + 9 * H, 0.1, **TERM)], roll_rows=[roll(T0 + 8 * H, [apy] * 8, annualisation="apy")])
    assert out["strip_b0_apr"][0] == pytest.approx(r8 * 1095, rel=1e-9)
    assert out["strip_mean_apr"][0] == pytest.approx(r8 * 1095, rel=1e-9)


def test_a_roll_without_contract_is_the_venues_main_perpetual():
    out = run([candle(T0 + 9 * H, 0.1, **TERM)], roll_rows=[roll(T0 + 8 * H, [0.2] * 8, contract=None)])
    assert out["strip_mean_apr"][0] == pytest.approx(0.2)


# --- outcomes ----------------------------------------------------------------------------


def test_fixed_earned_is_implied_minus_the_realised_rate_from_the_candle_to_maturity():
    out = run(hourly(T0, [0.15] * 24, **TERM), EIGHT_HOURLY)
    outcomes = out.filter(pl.col("kind") == "outcome")
    assert outcomes.height == 24
    row = row_at(out, T0 + 8 * H, "outcome")  # entered at 09:00: pays the 16:00 and 24:00 settlements
    assert row["realised_remaining_apr"] == pytest.approx((0.0002 + 0.0004) * 8760 / 16, rel=1e-12)  # 0.3285
    assert row["remaining_hours"] == 16.0
    assert row["fixed_earned_apr"] == pytest.approx(0.15 - 0.3285, rel=1e-12)
    assert row["realised_term_apr"] == pytest.approx(0.0007 * 8760 / 24, rel=1e-12)  # 0.2555
    assert row["term_hours"] == 24.0
    last = row_at(out, T0 + 23 * H, "outcome")  # closes at maturity: the last settlement only
    assert last["realised_remaining_apr"] == pytest.approx(0.0004 * 1095, rel=1e-12)
    first = row_at(out, T0, "outcome")
    assert first["realised_remaining_apr"] == pytest.approx(first["realised_term_apr"], rel=1e-15)


def test_an_outcome_row_repeats_its_candle_row_and_a_candle_row_has_no_outcome():
    out = run(hourly(T0, [0.15] * 24, **TERM), MIXED, [STRIP_08])
    candle_rows = out.filter(pl.col("kind") == "candle")
    outcome_rows = out.filter(pl.col("kind") == "outcome")
    shared = [c for c in FIXED_VS_FLOATING_SCHEMA if c not in ("kind", *OUTCOME_ONLY)]
    assert_frame_equal(candle_rows.select(shared), outcome_rows.select(shared))
    for column in OUTCOME_ONLY:
        assert candle_rows[column].null_count() == 24, column
        assert outcome_rows[column].null_count() == 0, column


OUTCOME_ONLY = ("realised_term_apr", "term_hours", "realised_remaining_apr", "remaining_hours", "fixed_earned_apr")


def test_interval_changes_inside_the_term_still_cover_it():
    out = run(hourly(T0, [0.15] * 24, **TERM), MIXED)
    row = row_at(out, T0 + 10 * H, "outcome")  # entered 11:00: hourly settlements 11..24
    assert row["realised_remaining_apr"] == pytest.approx(sum(0.00001 * k for k in range(3, 17)) * 8760 / 14, rel=1e-12)
    assert row["realised_term_apr"] == pytest.approx((0.0003 + 0.00001 * 136) * 8760 / 24, rel=1e-12)


@pytest.mark.parametrize(
    "missing",
    [
        pytest.param(T0 + 16 * H, id="a settlement inside the term"),
        pytest.param(T0 + 8 * H, id="the first settlement"),
        pytest.param(T0 + 24 * H, id="the settlement at maturity"),
    ],
)
def test_a_future_whose_prints_miss_a_settlement_has_no_outcome_rows(missing):
    out = run(hourly(T0, [0.15] * 24, **TERM), [s for s in EIGHT_HOURLY if s["funding_time"] != missing])
    assert out.filter(pl.col("kind") == "outcome").is_empty()
    assert out.filter(pl.col("kind") == "candle").height == 24


def test_a_maturity_between_settlements_is_not_covered():
    term = {"term_start": T0, "maturity": T0 + 20 * H}
    assert run(hourly(T0, [0.15] * 20, **term), EIGHT_HOURLY).filter(pl.col("kind") == "outcome").is_empty()


def test_no_outcome_before_known_until_reaches_maturity():
    bars = hourly(T0, [0.15] * 24, **TERM)
    assert run(bars, EIGHT_HOURLY, known_until=T0 + DAY - H).filter(pl.col("kind") == "outcome").is_empty()
    assert run(bars, EIGHT_HOURLY, known_until=T0 + DAY).filter(pl.col("kind") == "outcome").height == 24


def test_outcome_rows_are_the_candles_of_the_term_closing_by_maturity():
    bars = hourly(T0 - 2 * H, [0.15] * 28, **TERM)  # 22:00 the day before .. 01:00 after maturity
    out = run(bars, EIGHT_HOURLY)
    outcome_ts = out.filter(pl.col("kind") == "outcome")["ts"]
    assert (outcome_ts.min(), outcome_ts.max(), outcome_ts.len()) == (T0, T0 + 23 * H, 24)
    assert out.filter(pl.col("kind") == "candle").height == 28


def test_without_a_term_start_nothing_accrues_and_outcomes_need_their_own_window_covered():
    term = {"term_start": None, "maturity": T0 + DAY}
    no_first = [s for s in EIGHT_HOURLY if s["funding_time"] != T0 + 8 * H]
    out = run(hourly(T0, [0.15] * 24, **term), no_first)
    candle_rows = out.filter(pl.col("kind") == "candle")
    for column in ("realised_apr_to_date", "realised_hours", "carry_apr"):
        assert candle_rows[column].null_count() == 24, column
    outcomes = out.filter(pl.col("kind") == "outcome")
    # the 08:00 settlement is missing: from the candle closing at 08:00 on, the 16:00 one's
    # span (08:00, 16:00] reaches back to the entry; before, a hole
    assert outcomes["ts"].to_list() == [T0 + k * H for k in range(7, 24)]
    assert outcomes["realised_term_apr"].null_count() == outcomes.height
    row = row_at(out, T0 + 7 * H, "outcome")
    assert row["fixed_earned_apr"] == pytest.approx(0.15 - 0.0006 * 8760 / 16, rel=1e-12)
    # with the term start stated, the same prints do not cover the term: no outcome at all
    assert run(hourly(T0, [0.15] * 24, **TERM), no_first).filter(pl.col("kind") == "outcome").is_empty()


# --- bad input ---------------------------------------------------------------------------


def test_missing_candle_columns_are_named():
    with pytest.raises(FundingInputError, match="missing column.*maturity"):
        fixed_vs_floating(candles([]).drop("maturity"), NO_PRINTS, NO_ROLLS, known_until=LATER)


def test_a_market_with_two_terms_is_refused():
    rows = [candle(T0, 0.1, **TERM), candle(T0 + H, 0.1, term_start=T0, maturity=T0 + 2 * DAY)]
    with pytest.raises(FundingInputError, match="m1 has more than one underlying or term"):
        run(rows)


def test_two_candles_with_one_key_are_refused():
    with pytest.raises(FundingInputError, match="two 1h candles"):
        run([candle(T0, 0.1, **TERM), candle(T0, 0.2, **TERM)])


@pytest.mark.parametrize("interval", ["1M", "h", "0h", "1y", ""])
def test_an_unknown_interval_is_refused(interval):
    with pytest.raises(FundingInputError, match="interval"):
        run([candle(T0, 0.1, interval=interval, **TERM)])


def test_a_maturity_before_the_term_start_is_refused():
    with pytest.raises(FundingInputError, match="not after its term start"):
        run([candle(T0, 0.1, term_start=T0, maturity=T0)])


# --- partitions --------------------------------------------------------------------------


def test_a_day_stores_its_candles_and_the_outcomes_of_futures_maturing_on_it():
    bars = hourly(T0, [0.15] * 24, **TERM) + hourly(
        T0 + DAY, [0.2] * 3, market_id="m2", term_start=T0, maturity=T0 + 2 * DAY
    )
    out = run(bars, EIGHT_HOURLY)
    first, second = rows_for_day(out, T0.date()), rows_for_day(out, date(2024, 3, 2))
    assert first.height == 24 and (first["kind"] == "candle").all()
    # m1 matures at 2024-03-02 00:00: its outcomes belong to that day, with m2's candles
    assert second.group_by("kind", "market_id").len().sort("kind").rows() == [
        ("candle", "m2", 3),
        ("outcome", "m1", 24),
    ]


def test_lookback_days_covers_the_longest_term_and_the_strip_of_its_first_candle():
    # the term, then a roll known up to a day before the first candle, closed up to a day late
    assert lookback_days(90) == 92
    assert lookback_days(2.5) == 5
    assert lookback_days(0.5) == 3
    with pytest.raises(FundingInputError):
        lookback_days(0)


# --- properties --------------------------------------------------------------------------

PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
UNDERLYINGS = [("binance", "usdt"), ("bybit", "usdt")]
MAX_TERM_DAYS = 3


@st.composite
def scenarios(draw) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Futures of at most MAX_TERM_DAYS on two underlyings over 8 days, 4h/8h settlements
    with some missing, corrections, predicted prints and rolls; candles of 1h/4h with holes."""
    bars = []
    for m in range(draw(st.integers(1, 3))):
        start = T0 + draw(st.integers(0, 4)) * DAY + draw(st.sampled_from([0, 8])) * H
        length = draw(st.integers(1, MAX_TERM_DAYS)) * DAY
        venue, contract = draw(st.sampled_from(UNDERLYINGS))
        stated = draw(st.booleans())
        interval = draw(st.sampled_from(["1h", "4h"]))
        step = timedelta(hours=int(interval[:-1]))
        n = int(length / step)
        kept = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        market = {"market_id": f"m{m}", "venue": venue, "contract": contract, "interval": interval}
        term = {"term_start": start if stated else None, "maturity": start + length}
        bars += [candle(start + i * step, 0.05 + 0.01 * i, **market, **term) for i in range(n) if kept[i]]
    settled, snaps = [], []
    for venue, contract in UNDERLYINGS:
        hours = draw(st.sampled_from([4.0, 8.0]))
        times = [T0 + k * timedelta(hours=hours) for k in range(1, int(8 * 24 / hours) + 1)]
        missing = draw(st.sets(st.sampled_from(times), max_size=2))
        rates = draw(st.lists(st.floats(-0.001, 0.001), min_size=len(times), max_size=len(times)))
        for t, r in zip(times, rates, strict=True):
            if t not in missing:
                settled.append(settlement(t, r, hours, venue=venue, contract=contract))
        fix = draw(st.sampled_from(times))
        settled.append({**settlement(fix, 0.0005, hours, venue=venue, contract=contract), "ts": fix + H})
        settled.append(settlement(fix, 0.01, hours, venue=venue, contract=contract, kind="predicted", ts=fix - H))
        # a run of missing rolls (up to 40 h) leaves candles without a strip
        gap_from = draw(st.integers(1, 24))
        gap = range(gap_from, gap_from + draw(st.integers(0, 5)))
        for k in range(1, 25):
            if k not in gap:
                snaps.append(
                    roll(T0 + k * H8, [0.01 * k + 0.001 * b for b in range(8)], venue=venue, contract=contract)
                )
    return candles(bars), prints(settled), rolls(snaps)


def shuffled(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    order = list(range(frame.height))
    random.Random(seed).shuffle(order)
    return frame[order]


@PROPERTY
@given(scenarios(), st.integers(0, 2**32 - 1))
def test_the_result_does_not_depend_on_the_input_row_order(scenario, seed):
    bars, settled, snaps = scenario
    expected = fixed_vs_floating(bars, settled, snaps, known_until=LATER)
    got = fixed_vs_floating(
        shuffled(bars, seed), shuffled(settled, seed + 1), shuffled(snaps, seed + 2), known_until=LATER
    )
    assert_frame_equal(got, expected, check_exact=True)
    assert expected.select("provider", "market_id", "interval", "ts", "kind").is_duplicated().sum() == 0
    assert expected.equals(expected.sort("provider", "market_id", "interval", "ts", "kind"))


def window(frame: pl.DataFrame, lo: datetime, hi: datetime, column: str = "ts") -> pl.DataFrame:
    """The rows of the daily partitions [lo, hi): candles and rolls by ``ts``, realised
    prints by settlement time (as ``raw_prints`` stores them)."""
    return frame.filter(pl.col(column) >= lo, pl.col(column) < hi)


def test_the_lookback_reaches_the_strip_of_an_outcomes_first_candle():
    """The outcome rows of a 3-day future, stored on its maturity day, repeat its first
    candle, whose strip is a roll of the day before the term (the term's first roll missing)."""
    start, maturity = T0 + DAY, T0 + 4 * DAY
    bars = candles(hourly(start, [0.1] * 72, term_start=start, maturity=maturity))
    settled = prints([settlement(start + k * H8, 0.0001) for k in range(1, 10)])
    snaps = rolls([roll(start - H8, [0.3] * 8)] + [roll(start + k * H8, [0.2] * 8) for k in range(1, 10)])
    everything = rows_for_day(fixed_vs_floating(bars, settled, snaps, known_until=LATER), maturity.date())
    first = everything.filter(pl.col("kind") == "outcome", pl.col("ts") == start).row(0, named=True)
    assert first["strip_mean_apr"] == pytest.approx(0.3)
    lo, hi = maturity - lookback_days(3) * DAY, maturity + DAY
    alone = fixed_vs_floating(
        window(bars, lo, hi), window(settled, lo, hi, "funding_time"), window(snaps, lo, hi), known_until=hi
    )
    assert_frame_equal(rows_for_day(alone, maturity.date()), everything, check_exact=True)


@PROPERTY
@given(scenarios())
def test_a_days_rows_need_only_the_declared_lookback(scenario):
    """Each day's rows computed from the day and its lookback_days alone equal those computed
    from everything (a partition is the same alone or inside a backfill)."""
    bars, settled, snaps = scenario
    everything = fixed_vs_floating(bars, settled, snaps, known_until=LATER)
    days = lookback_days(MAX_TERM_DAYS)
    for offset in range(9):
        day = T0 + offset * DAY
        lo, hi = day - days * DAY, day + DAY
        settled_then = window(settled, lo, hi, "funding_time")
        alone = fixed_vs_floating(window(bars, lo, hi), settled_then, window(snaps, lo, hi), known_until=hi)
        assert_frame_equal(rows_for_day(alone, day.date()), rows_for_day(everything, day.date()), check_exact=True)
