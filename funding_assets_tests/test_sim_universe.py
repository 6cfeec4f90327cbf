"""The simulator's universe: every perpetual each venue lists, named as the venue names it."""

from __future__ import annotations

from datetime import datetime

import pytest

from funding_assets.instruments import Instrument
from funding_assets.sim import universe
from funding_assets.venues import INVERSE, USDC, USDT, VENUES, parse_symbol

CEX = ("binance", "bybit", "okx")


@pytest.mark.parametrize("venue", VENUES)
def test_each_venue_lists_at_least_100_perpetuals(venue):
    listed = universe.listing(venue)
    assert len(listed) >= 100
    assert all(isinstance(i, Instrument) and i.venue == venue for i in listed)
    assert [i.key for i in listed] == sorted(i.key for i in listed)
    assert len({i.venue_symbol for i in listed}) == len(listed)


@pytest.mark.parametrize("venue", VENUES)
def test_names_round_trip_through_the_venue_parser(venue):
    for inst in universe.listing(venue):
        named = parse_symbol(venue, inst.venue_symbol)
        assert (named.coin, named.contract, named.multiplier) == (inst.symbol, inst.contract, inst.multiplier)
        assert universe.lookup(venue, inst.venue_symbol) == inst
        assert universe.find(venue, inst.symbol, inst.contract) == inst


@pytest.mark.parametrize("venue", VENUES)
def test_listings_and_delistings_fall_inside_2020_to_now(venue):
    listed = universe.listing(venue)
    years = {i.listed_at.year for i in listed}
    assert {2020, 2023, 2024, 2025} <= years
    delisted = [i for i in listed if i.delisted_at is not None]
    assert delisted
    assert all(datetime(2020, 1, 1) <= i.listed_at < i.delisted_at < datetime(2026, 1, 1) for i in delisted)
    assert all(i.open_interest_usd == 0 for i in delisted)
    assert all(i.open_interest_usd > 0 and i.volume_usd > 0 for i in listed if i.delisted_at is None)


def test_dead_coins_are_delisted_everywhere():
    for venue in CEX:
        luna = universe.find(venue, "LUNA", USDT)
        assert luna is not None and luna.delisted_at.date() >= datetime(2022, 5, 13).date()
        assert not universe.listed_at(luna, datetime(2023, 1, 1))
        assert universe.listed_at(luna, datetime(2021, 6, 1))


@pytest.mark.parametrize("venue", VENUES)
def test_btc_eth_sol_trade_on_every_venue_from_2020(venue):
    for coin in ("BTC", "ETH", "SOL"):
        inst = universe.find(venue, coin)
        assert inst.listed_at == datetime(2020, 1, 1) and inst.delisted_at is None, coin
        assert universe.listed_at(inst, datetime(2039, 12, 31))
    assert universe.find("deribit", "SOL").venue_symbol == "SOL_USDC-PERPETUAL"
    assert universe.find("deribit", "BTC").venue_symbol == "BTC-PERPETUAL"


def test_multiplier_names():
    names = {v: {i.venue_symbol for i in universe.listing(v)} for v in VENUES}
    for coin in ("PEPE", "SHIB", "BONK"):
        assert f"1000{coin}USDT" in names["binance"] and f"1000{coin}USDT" in names["bybit"]
        assert f"k{coin}" in names["hyperliquid"]
        assert universe.lookup("hyperliquid", f"k{coin}").multiplier == 1000
    assert "PEPE-USDT-SWAP" in names["okx"]


def test_inverse_and_usdc_contracts():
    def of(venue, contract):
        return {i.symbol for i in universe.listing(venue) if i.contract == contract}

    assert 10 <= len(of("binance", INVERSE)) <= 20 and {"BTC", "ETH"} <= of("binance", INVERSE)
    assert universe.lookup("binance", "BTCUSD_PERP").contract == INVERSE
    assert universe.lookup("binance", "BTCUSDC").listed_at >= datetime(2024, 1, 1)
    assert 3 <= len(of("bybit", INVERSE)) <= 12 and universe.lookup("bybit", "BTCUSD").contract == INVERSE
    assert universe.lookup("bybit", "BTCUSDC").contract == USDC
    assert 8 <= len(of("okx", INVERSE)) <= 16 and universe.lookup("okx", "BTC-USD-SWAP") is not None
    assert 2 <= len(of("okx", USDC)) <= 6 and universe.lookup("okx", "BTC-USDC-SWAP") is not None
    assert {i.contract for i in universe.listing("hyperliquid")} == {USDC}
    assert of("deribit", INVERSE) == {"BTC", "ETH"}
    assert len(of("deribit", USDC)) >= 10


def test_main_contract_follows_the_venue_preference():
    assert universe.find("binance", "BTC").contract == USDT
    assert universe.find("deribit", "BTC").contract == INVERSE
    assert universe.find("deribit", "ETH", USDC).venue_symbol == "ETH_USDC-PERPETUAL"
    assert universe.find("binance", "NOPE") is None
    assert universe.lookup("binance", "NOPEUSDT") is None


def test_intervals_and_caps():
    listed = [i for v in VENUES for i in universe.listing(v)]
    assert {1.0, 2.0, 4.0, 8.0} <= {i.interval_hours for i in listed}
    changed = [i for i in listed if len(universe.interval_changes(i)) > 1 and i.venue in CEX]
    assert changed
    for inst in listed:
        steps = universe.interval_changes(inst)
        assert steps[0][0] == inst.listed_at and steps[-1][1] == inst.interval_hours
        assert all(s.hour % 8 == 0 and s.minute == 0 for s, _ in steps[1:])
        assert inst.rate_floor == -inst.rate_cap
    assert universe.find("binance", "BTC").rate_cap == 0.00375
    assert universe.find("hyperliquid", "BTC").rate_cap == 0.04
    assert universe.find("deribit", "BTC").rate_cap == 0.005
    assert max(i.rate_cap for i in universe.listing("binance")) >= 0.01


def test_the_universe_is_deterministic_per_seed():
    assert universe.listing("bybit") == universe.listing("bybit", seed=universe.DEFAULT_SEED)
    universe._entries.cache_clear()
    assert universe.listing("bybit") == universe.listing("bybit", seed=universe.DEFAULT_SEED)
    assert universe.listing("bybit", seed=8) != universe.listing("bybit")
