"""The synthetic funding model: what the offline pipeline and the simulator rely on."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from funding_assets.errors import FundingInputError
from funding_assets.prints import PRINT_SCHEMA
from funding_assets.sim import FundingModel, universe
from funding_assets.venues import RATE_CAPS, VENUES, venue_symbol

COINS = ("BTC", "ETH", "SOL")

START = datetime(2020, 1, 1)
END = datetime(2027, 1, 1)
CEX = ("binance", "bybit", "okx")
HL_HOURLY_FROM = datetime(2023, 6, 8)
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def model() -> FundingModel:
    return FundingModel(seed=7)


@pytest.fixture(scope="module")
def history(model) -> dict[tuple[str, str], pl.DataFrame]:
    """2020-2026 settlements of every series, generated once for the module."""
    return {(v, c): model.settlements(v, c, START, END) for v in VENUES for c in COINS}


def eight_hour_equivalent(frame: pl.DataFrame) -> pl.Series:
    return frame["rate"] * 8.0 / frame["interval_hours"]


def time_weighted_8h(frame: pl.DataFrame) -> float:
    """Funding paid per 8 h on average: short-interval windows count for their length only."""
    return frame["rate"].sum() * 8.0 / frame["interval_hours"].sum()


def missing_windows(frame: pl.DataFrame) -> np.ndarray:
    """Windows missing before each print, counted where the interval did not change."""
    hours = frame["funding_time"].dt.epoch("ms").to_numpy() // HOUR_MS
    interval = frame["interval_hours"].to_numpy()
    same_interval = interval[1:] == interval[:-1]
    return (np.diff(hours)[same_interval] / interval[1:][same_interval] - 1).astype(int)


# --- determinism ------------------------------------------------------------------------


def test_a_day_is_the_same_whatever_range_is_asked(model, history):
    day_start, day_end = datetime(2024, 3, 1), datetime(2024, 3, 2)
    for venue in VENUES:
        day = model.settlements(venue, "BTC", day_start, day_end)
        from_span = history[(venue, "BTC")].filter(pl.col("funding_time").is_between(day_start, day_end, closed="left"))
        assert day.height > 0
        assert day.equals(from_span), venue


def test_adjacent_ranges_concatenate_to_the_whole(model):
    cut = datetime(2023, 6, 8, 5, 30)
    whole = model.settlements("hyperliquid", "ETH", datetime(2023, 6, 1), datetime(2023, 6, 15))
    parts = pl.concat(
        [
            model.settlements("hyperliquid", "ETH", datetime(2023, 6, 1), cut),
            model.settlements("hyperliquid", "ETH", cut, datetime(2023, 6, 15)),
        ]
    )
    assert parts.equals(whole)


def test_same_seed_same_prints_other_seed_other_prints(history):
    again = FundingModel(seed=7).settlements("okx", "SOL", START, END)
    assert again.equals(history[("okx", "SOL")])
    other = FundingModel(seed=8).settlements("okx", "SOL", START, END)
    assert not other["rate"].equals(again["rate"])


def test_prints_are_the_same_in_another_process(history):
    """Seeds come from a stable hash, not Python's per-process salted hash()."""
    script = (
        "from datetime import datetime; from funding_assets.sim import FundingModel; "
        "f = FundingModel(7).settlements("
        "'bybit', 'SOL', datetime(2020, 1, 1), datetime(2027, 1, 1)); "
        "print(f['rate'].hash().sum(), f['funding_time'].hash().sum())"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    here = history[("bybit", "SOL")]
    assert [int(x) for x in out] == [here["rate"].hash().sum(), here["funding_time"].hash().sum()]


def test_premium_path_is_deterministic_and_hourly(model):
    path = model.premium("binance", "BTC", datetime(2024, 1, 1), datetime(2024, 1, 3))
    assert path.schema == pl.Schema({"ts": pl.Datetime("ms"), "premium": pl.Float64()})
    assert path.height == 48
    assert path["ts"].diff().drop_nulls().unique().to_list() == [timedelta(hours=1)]
    again = FundingModel(7).premium("binance", "BTC", datetime(2023, 12, 31), datetime(2024, 2, 1))
    assert path.equals(again.filter(pl.col("ts").is_between(datetime(2024, 1, 1), datetime(2024, 1, 3), "left")))


# --- schema -----------------------------------------------------------------------------


def test_settlements_follow_the_print_schema(history):
    for (venue, coin), frame in history.items():
        assert frame.schema == pl.Schema(PRINT_SCHEMA), (venue, coin)
        assert frame["funding_time"].is_sorted()
        assert frame["funding_time"].n_unique() == frame.height
        assert frame["venue"].unique().to_list() == [venue]
        assert frame["symbol"].unique().to_list() == [coin]
        assert frame["venue_symbol"].unique().to_list() == [venue_symbol(venue, coin)]
        assert frame["kind"].unique().to_list() == ["realised"]
        assert frame["source"].unique().to_list() == ["sim"]
        assert frame.null_count().sum_horizontal().item() == 0


def test_empty_range_keeps_the_schema(model):
    when = datetime(2024, 5, 1)
    empty = model.settlements("bybit", "ETH", when, when)
    assert empty.height == 0
    assert empty.schema == pl.Schema(PRINT_SCHEMA)


def test_history_starts_with_the_first_window_after_the_epoch(model):
    frame = model.settlements("binance", "BTC", datetime(2019, 6, 1), datetime(2020, 1, 2))
    assert frame["funding_time"][0] == datetime(2020, 1, 1, 8)


def test_timezone_aware_bounds_are_read_as_utc(model):
    aware = model.settlements(
        "okx",
        "BTC",
        datetime(2024, 3, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        datetime(2024, 3, 2, tzinfo=timezone.utc),
    )
    naive = model.settlements("okx", "BTC", datetime(2024, 3, 1), datetime(2024, 3, 2))
    assert aware.equals(naive)


# --- rates ------------------------------------------------------------------------------


def test_rates_stay_within_the_instrument_caps_and_alt_squeezes_reach_them(model, history):
    for (venue, coin), frame in history.items():
        assert frame["rate"].abs().max() <= model.instrument(venue, coin).rate_cap, (venue, coin)
        in_units_of_1e8 = frame["rate"] * 1e8
        assert (in_units_of_1e8 - in_units_of_1e8.round()).abs().max() < 1e-6, (venue, coin)
    capped = []
    for venue in CEX:
        for inst in universe.listing(venue)[:60]:
            rates = model.settlements(venue, inst.symbol, START, END, contract=inst.contract)["rate"]
            assert rates.abs().max() <= inst.rate_cap if rates.len() else True
            if (rates.abs() == inst.rate_cap).any():
                capped.append(inst.venue_symbol)
    assert capped, "no squeeze reached an instrument's cap in 2020-2026"


@pytest.mark.parametrize("venue", [*CEX, "hyperliquid"])
def test_rates_sit_at_the_interest_baseline_much_of_the_time(history, venue):
    """Calibrated against real funding (test_sim_calibration.py): about 45 % of BTC's CEX
    windows settle at 0.01 %, funding paid averages a little above it, no year below zero
    by much nor above ~0.05 % per 8 h."""
    for coin in COINS:
        frame = history[(venue, coin)]
        per_8h = eight_hour_equivalent(frame)
        assert per_8h.median() == pytest.approx(0.0001, abs=1e-12), coin
        assert 0.3 < (per_8h - 0.0001).abs().lt(1e-12).mean() < 0.9, coin
        assert 0.00005 < time_weighted_8h(frame) < 0.0003, coin
        for year, rows in frame.group_by(pl.col("funding_time").dt.year()):
            assert -0.00005 < time_weighted_8h(rows) < 0.0008, (coin, year)


def test_deribit_pays_premium_outside_its_dead_band(history):
    frame = history[("deribit", "BTC")]
    assert frame["rate"].median() == 0.0
    assert 0.0 < time_weighted_8h(frame) < 0.0004
    assert (frame["rate"] < 0).any()


def week_around_an_interval_change(frame: pl.DataFrame) -> tuple[datetime, datetime]:
    """A week around the first interval change after 2021 (any week if there is none)."""
    changes = frame.filter(pl.col("interval_hours").diff() != 0, pl.col("funding_time") > datetime(2021, 1, 1))
    centre = changes["funding_time"][0] if changes.height else datetime(2024, 2, 1)
    return centre - timedelta(days=3), centre + timedelta(days=4)


@pytest.mark.parametrize("venue", VENUES)
def test_rates_follow_the_venue_formula_from_the_premium(model, history, venue):
    """Recompute a week of settlements, across an interval change, from the premium path."""
    start, end = week_around_an_interval_change(history[(venue, "ETH")])
    prints = model.settlements(venue, "ETH", start, end)
    if venue != "deribit":
        assert prints["interval_hours"].n_unique() > 1
    path = model.premium(venue, "ETH", start - timedelta(hours=8), end)
    premium = dict(zip(path["ts"].to_list(), path["premium"].to_list()))
    for row in prints.iter_rows(named=True):
        hours = int(row["interval_hours"])
        window = [premium[row["funding_time"] - timedelta(hours=h + 1)] for h in range(hours)]
        p_avg = float(np.mean(window))
        share = hours / 8.0
        if venue == "deribit":
            f = (max(p_avg, 0.00025) + min(p_avg, -0.00025)) * share
        elif venue == "hyperliquid":
            f = (p_avg + np.clip(0.0001 - p_avg, -0.0005, 0.0005)) * share
        else:
            f = p_avg + np.clip(0.0001 * share - p_avg, -0.0005, 0.0005)
        expected = round(float(np.clip(f, -RATE_CAPS[venue], RATE_CAPS[venue])), 8)
        assert row["rate"] == pytest.approx(expected, abs=1.5e-8), row["funding_time"]


# --- intervals --------------------------------------------------------------------------


def test_funding_time_is_on_its_interval_boundary(history):
    for (venue, coin), frame in history.items():
        ms = frame["funding_time"].dt.epoch("ms").to_numpy()
        interval_ms = (frame["interval_hours"].to_numpy() * HOUR_MS).astype(np.int64)
        assert (ms % interval_ms == 0).all(), (venue, coin)


def test_cex_settle_every_8h_outside_short_interval_episodes(history):
    for venue in CEX:
        for coin in COINS:
            frame = history[(venue, coin)]
            assert set(frame["interval_hours"].unique()) <= {8.0, 4.0, 1.0}
            eight = frame.filter(pl.col("interval_hours") == 8.0)
            assert set(eight["funding_time"].dt.hour().unique()) == {0, 8, 16}
            assert eight.height * 8 > 0.95 * (END - START).total_seconds() / 3600
            # Every 8 h block settles at one interval, so the 00/08/16 grid stays intact.
            blocks = frame.group_by((pl.col("funding_time") - pl.duration(milliseconds=1)).dt.truncate("8h")).agg(
                pl.col("interval_hours").n_unique().alias("n")
            )
            assert blocks["n"].max() == 1, (venue, coin)


def test_short_interval_episodes_exist_and_are_rare(history):
    for venue in CEX:
        for coin in COINS:
            frame = history[(venue, coin)]
            assert frame.filter(pl.col("interval_hours") == 4.0).height > 0, (venue, coin)
            assert frame.filter(pl.col("interval_hours") == 1.0).height > 0, (venue, coin)
            # Episodes (2-3 a year of 1-5 days) cover at most ~4 % of the time.
            episode_hours = frame.filter(pl.col("interval_hours") < 8)["interval_hours"].sum()
            assert episode_hours < 0.05 * (END - START).total_seconds() / 3600


def test_episodes_per_year(model):
    for venue in CEX:
        intervals = np.array(
            [
                model.interval_hours_at(venue, "BTC", datetime(2025, 1, 1) + timedelta(hours=h))
                for h in range(0, 365 * 24, 8)
            ]
        )
        short = intervals < 8
        starts = np.flatnonzero(short[1:] & ~short[:-1]).size + int(short[0])
        assert 2 <= starts <= 3, venue
        assert 3 * 2 <= short.sum() <= 15 * 3, venue


def test_hyperliquid_moves_from_8h_to_hourly_on_2023_06_08(history, model):
    for coin in COINS:
        frame = history[("hyperliquid", coin)]
        before = frame.filter(pl.col("funding_time") <= HL_HOURLY_FROM)
        after = frame.filter(pl.col("funding_time") > HL_HOURLY_FROM)
        assert before["interval_hours"].unique().to_list() == [8.0]
        assert after["interval_hours"].unique().to_list() == [1.0]
        assert set(before["funding_time"].dt.hour().unique()) == {0, 8, 16}
    assert model.interval_hours_at("hyperliquid", "BTC", datetime(2023, 6, 7, 23, 59)) == 8.0
    assert model.interval_hours_at("hyperliquid", "BTC", HL_HOURLY_FROM) == 1.0


def test_deribit_settles_hourly(history):
    for coin in COINS:
        assert history[("deribit", coin)]["interval_hours"].unique().to_list() == [1.0]


def test_interval_hours_at_matches_the_settled_windows(history, model):
    for venue in VENUES:
        frame = history[(venue, "SOL")].gather_every(97)
        for row in frame.iter_rows(named=True):
            inside = row["funding_time"] - timedelta(minutes=1)
            assert model.interval_hours_at(venue, "SOL", inside) == row["interval_hours"]


# --- gaps and jitter --------------------------------------------------------------------


def test_missing_windows_come_in_runs_of_one_to_three_and_are_rare(history):
    seen: set[int] = set()
    for (venue, coin), frame in history.items():
        gaps = missing_windows(frame)
        assert gaps.min() >= 0
        assert gaps.max() <= 3, (venue, coin)
        seen |= set(gaps[gaps > 0].tolist())
        assert gaps.sum() / (frame.height + gaps.sum()) < 0.005, (venue, coin)
        assert gaps.sum() > 0, (venue, coin)
    assert seen == {1, 2, 3}


def test_ts_jitter_stays_within_venue_bounds(history):
    bounds = {"binance": (1, 20), "hyperliquid": (10, 1400), "bybit": (0, 0), "okx": (0, 0), "deribit": (0, 0)}
    for (venue, coin), frame in history.items():
        delay = (frame["ts"] - frame["funding_time"]).dt.total_milliseconds()
        low, high = bounds[venue]
        assert delay.min() >= low and delay.max() <= high, (venue, coin)
        if high:
            assert delay.n_unique() > 1, (venue, coin)


# --- input validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.settlements("kraken", "BTC", START, END),
        lambda m: m.premium("kraken", "BTC", START, END),
        lambda m: m.interval_hours_at("kraken", "BTC", START),
    ],
)
def test_unknown_venue_is_named(model, call):
    with pytest.raises(FundingInputError, match="kraken"):
        call(model)


def test_unknown_coin_is_named(model):
    with pytest.raises(FundingInputError, match="NOPE"):
        model.settlements("binance", "NOPE", START, END)
    with pytest.raises(FundingInputError, match="inverse perpetual of DOGE"):
        model.settlements("hyperliquid", "DOGE", START, END, contract="inverse")


def test_nothing_settles_outside_the_listing(model):
    for inst in [i for i in universe.listing("bybit") if i.delisted_at is not None][:5]:
        prints = model.settlements("bybit", inst.symbol, START, END, contract=inst.contract)
        assert prints.height > 0
        assert prints["funding_time"].min() > inst.listed_at
        assert prints["funding_time"].max() <= inst.delisted_at
        assert (prints["venue_symbol"] == inst.venue_symbol).all()


def test_contracts_of_a_coin_follow_its_common_factor(model):
    """USDC and inverse contracts track the coin's main contract, each with its own noise."""
    start, end = datetime(2021, 1, 1), datetime(2022, 1, 1)
    usdt = model.premium("binance", "BTC", start, end)["premium"].to_numpy()
    for contract in ("inverse",):
        other = model.premium("binance", "BTC", start, end, contract=contract)["premium"].to_numpy()
        assert 0.7 < np.corrcoef(usdt, other)[0, 1] < 0.999
    okx = model.premium("okx", "BTC", start, end)["premium"].to_numpy()
    assert 0.7 < np.corrcoef(usdt, okx)[0, 1] < 0.999


def test_end_before_start_is_rejected(model):
    with pytest.raises(FundingInputError, match="before start"):
        model.settlements("binance", "BTC", END, START)
    with pytest.raises(FundingInputError, match="before start"):
        model.premium("binance", "BTC", END, START)


def test_ranges_past_the_horizon_are_rejected(model):
    with pytest.raises(FundingInputError, match="horizon"):
        model.settlements("binance", "BTC", START, datetime(2041, 1, 1))
    with pytest.raises(FundingInputError, match="outside"):
        model.interval_hours_at("binance", "BTC", datetime(2019, 12, 31))


def test_venue_and_coin_names_are_normalised(model):
    assert model.settlements(" Binance", "btc", START, datetime(2020, 1, 2)).equals(
        model.settlements("binance", "BTC", START, datetime(2020, 1, 2))
    )
