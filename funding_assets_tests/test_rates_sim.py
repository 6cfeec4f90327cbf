"""The simulator's fixed-rate futures: their calendar, and implied rates consistent with the
funding model they are written on (a forecast from the past plus a premium, never a print
from the future)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from funding_assets.rates.units import unix_s
from funding_assets.sim import rates as R
from funding_assets.sim.model import FundingModel

SEED = FundingModel().seed
MODEL = FundingModel(SEED)
HOUR_MS = 3_600_000


def realised_after(future: R.SimFuture, at_ms: np.ndarray) -> np.ndarray:
    """The floating APR the future's underlying actually paid from each instant to maturity
    (settlements weighted by the hours they cover)."""
    prints = MODEL.settlements(future.venue, future.coin, future.term_start, future.maturity, contract="usdt")
    ends = prints["funding_time"].dt.epoch("ms").to_numpy()
    hours = prints["interval_hours"].to_numpy()
    paid = prints["rate"].to_numpy() * 8760 / hours * hours
    return np.array([paid[ends > t].sum() / hours[ends > t].sum() for t in at_ms])


@given(
    st.datetimes(min_value=dt.datetime(2024, 4, 27), max_value=dt.datetime(2039, 9, 1)),
    st.sampled_from(sorted(R.UNDERLYINGS)),
)
@settings(max_examples=40, deadline=None)
def test_three_monthly_maturities_trade_at_any_instant(when, provider):
    trading = [f for f in R.futures(provider, SEED, when) if f.term_start <= when < f.maturity]
    per_underlying = {u: [f for f in trading if (f.venue, f.coin) == u] for u in R.UNDERLYINGS[provider]}
    for listed in per_underlying.values():
        assert len(listed) == 3
        for future in listed:
            for day in (future.term_start, future.maturity):
                assert day.weekday() == 4 and day.hour == 8 and (day + dt.timedelta(days=7)).month != day.month
            assert (future.maturity - future.term_start).days in (84, 91, 98)  # 12, 13 or 14 weeks
    assert len({f.market_id for f in trading}) == len(trading)


def test_maturities_of_the_known_months():
    maturities = {f.maturity for f in R.futures("rho", SEED, dt.datetime(2025, 6, 1))}
    assert {dt.datetime(2025, 7, 25, 8), dt.datetime(2025, 8, 29, 8)} <= maturities
    first = R.futures("boros", SEED, dt.datetime(2030, 1, 1))[:4]
    assert [f.market_id for f in first] == ["1", "2", "3", "4"]
    assert first[0].term_start == dt.datetime(2024, 1, 26, 8)


@pytest.mark.parametrize("provider", sorted(R.UNDERLYINGS))
def test_implied_minus_realised_over_the_term_is_the_premium(provider):
    """Over every Binance BTC future matured 2024-04 .. 2026-06, sampled every 6 h: the implied
    APR less the floating APR then paid to maturity averages the premium (forecast errors
    cancel but for the model's 2024-2026 fall in funding) and stays bounded."""
    futures = [
        f
        for f in R.futures(provider, SEED, dt.datetime(2026, 6, 30))
        if (f.venue, f.coin) == ("binance", "BTC") and f.maturity <= dt.datetime(2026, 6, 30)
    ]
    assert len(futures) == 27  # maturities 2024-04 .. 2026-06
    diffs, premiums = [], []
    for future in futures:
        at = np.arange(unix_s(future.term_start) * 1000, unix_s(future.maturity) * 1000 - 7 * 24 * HOUR_MS, 6 * HOUR_MS)
        implied, _ = R.implied_at(SEED, future, at)
        diffs.append(implied - realised_after(future, at))
        premiums.append(R.premium_at(SEED, future, at))
    diff, premium = np.concatenate(diffs), np.concatenate(premiums)
    assert abs(premium.mean() - R.PREMIUM[provider].mean) < 0.003
    assert abs(diff.mean() - premium.mean()) < 0.012
    assert np.abs(diff).max() < 0.2
    assert 0.01 < diff.std() < 0.05


def test_the_implied_rate_uses_only_prints_known_at_the_instant():
    at = dt.datetime(2025, 2, 3, 17, 41)
    future = next(
        f
        for f in R.futures("rho", SEED, at)
        if (f.venue, f.coin) == ("bybit", "ETH") and f.term_start <= at < f.maturity
    )
    at_ms = np.array([unix_s(at) * 1000])
    # by hand, from the prints published by `at` (from the EWMAs' start)
    prints = MODEL.settlements("bybit", "ETH", dt.datetime(R.EWMA_FROM, 1, 1), at, contract="usdt")
    known, apr, hours = R.settlement_aprs(prints.filter(prints["ts"] <= at))
    level = R.ewma_path(apr, hours, R.EWMA_HALF_LIFE_H, R.LONG_RUN_APR)[-1]
    long_run = R.ewma_path(apr, hours, R.LONG_RUN_HALF_LIFE_H, R.LONG_RUN_APR)[-1]
    remaining_h = (future.maturity - at) / dt.timedelta(hours=1)
    expected = R.term_forecast(np.array([level]), np.array([long_run]), np.array([remaining_h]))
    expected += R.premium_at(SEED, future, at_ms)
    implied, floating = R.implied_at(SEED, future, at_ms)
    assert implied[0] == pytest.approx(expected[0], abs=1e-14)
    assert floating[0] == apr[-1]


def test_the_forecast_reverts_to_the_long_run_level():
    level, long_run = np.array([0.30, 0.30]), np.array([0.10, 0.10])
    now, far = R.term_forecast(level, long_run, np.array([0.0, 1e6]))
    assert now == pytest.approx(0.30) and far == pytest.approx(0.10, abs=1e-3)
    half_life = R.term_forecast(level[:1], long_run[:1], np.array([R.REVERSION_HALF_LIFE_H]))[0]
    assert 0.10 < half_life < 0.30


def test_candles_close_before_they_are_served_and_end_at_maturity():
    future = R.futures("boros", SEED, dt.datetime(2025, 6, 1))[-1]
    now = future.term_start + dt.timedelta(days=3, minutes=17)
    first, last = unix_s(future.term_start) - 86400, unix_s(now) + 86400
    hourly = R.implied_candles(SEED, future, "1h", first, last, now)
    assert hourly[0][0] == unix_s(future.term_start)
    assert hourly[-1][0] == unix_s(now.replace(minute=0)) - 3600
    after = future.maturity + dt.timedelta(days=10)
    weekly = R.implied_candles(SEED, future, "1w", unix_s(future.maturity) - 86400 * 14, unix_s(after), after)
    assert weekly[-1][0] < unix_s(future.maturity) < weekly[-1][0] + 7 * 86400
    # the same minute has the same value whatever was asked and whenever
    again = R.implied_candles(SEED, future, "1h", unix_s(now) - 7200, unix_s(now), after)
    assert again[0] == next(c for c in hourly if c[0] == again[0][0])
