"""The instrument universe: venue names read back to canonical coins, and which instruments a
run's coin and contract settings select."""

import datetime as dt

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from funding_assets import instruments as inst
from funding_assets.errors import FundingInputError
from funding_assets.instruments import Instrument, Selection
from funding_assets.resources import FundingConfig
from funding_assets.venues import SPECS, VENUES, check_coin, parse_symbol, split_multiplier, venue_symbol

T0 = dt.datetime(2024, 1, 1)


@pytest.mark.parametrize(
    ("venue", "name", "coin", "contract", "multiplier"),
    [
        ("binance", "BTCUSDT", "BTC", "usdt", 1),
        ("binance", "1000PEPEUSDT", "PEPE", "usdt", 1000),
        ("binance", "1MBABYDOGEUSDT", "BABYDOGE", "usdt", 1e6),
        ("binance", "1INCHUSDT", "1INCH", "usdt", 1),
        ("binance", "BTCUSDC", "BTC", "usdc", 1),
        ("binance", "BTCUSD_PERP", "BTC", "inverse", 1),
        ("bybit", "BTCUSD", "BTC", "inverse", 1),
        ("bybit", "ETHPERP", "ETH", "usdc", 1),
        ("bybit", "BTCUSDC", "BTC", "usdc", 1),
        ("okx", "BTC-USD-SWAP", "BTC", "inverse", 1),
        ("okx", "PEPE-USDT-SWAP", "PEPE", "usdt", 1),
        ("hyperliquid", "kPEPE", "PEPE", "usdc", 1000),
        ("deribit", "BTC-PERPETUAL", "BTC", "inverse", 1),
        ("deribit", "SOL_USDC-PERPETUAL", "SOL", "usdc", 1),
    ],
)
def test_a_venue_name_reads_back_to_its_coin_contract_and_multiplier(venue, name, coin, contract, multiplier):
    named = parse_symbol(venue, name)
    assert (named.coin, named.contract, named.multiplier) == (coin, contract, multiplier)


@pytest.mark.parametrize(
    ("venue", "name"),
    [
        ("bybit", "BTCUSDT-26DEC25"),
        ("okx", "BTC-USD-251226"),
        ("hyperliquid", "xyz:XYZ100"),
        ("deribit", "BTC-27DEC24"),
    ],
)
def test_dated_futures_and_builder_markets_are_not_perpetuals(venue, name):
    assert parse_symbol(venue, name) is None


@given(
    venue=st.sampled_from(VENUES),
    coin=st.from_regex(r"[A-Z][A-Z0-9]{1,7}", fullmatch=True),
    multiplier=st.sampled_from([1.0, 1000.0]),
    data=st.data(),
)
def test_every_name_a_venue_writes_reads_back(venue, coin, multiplier, data):
    spec = SPECS[venue]
    contract = data.draw(st.sampled_from(spec.contracts))
    if contract == "inverse" and spec.inverse_coins is not None:
        coin = data.draw(st.sampled_from(spec.inverse_coins))
    if venue in ("okx", "deribit") or contract == "inverse":
        multiplier = 1.0  # these venues never put a multiplier in the name
    name = venue_symbol(venue, coin, contract, multiplier)
    named = parse_symbol(venue, name)
    assert named is not None, name
    expected_coin, expected_mult = split_multiplier(coin if multiplier == 1 else f"{int(multiplier)}{coin}")
    assert (named.coin, named.contract, named.multiplier) == (expected_coin, contract, expected_mult)


def test_users_may_write_a_coin_as_any_venue_names_it():
    assert [check_coin(c) for c in ("btc", "kPEPE", "1000pepe", "1inch")] == ["BTC", "PEPE", "PEPE", "1INCH"]
    with pytest.raises(FundingInputError, match="not a coin name"):
        check_coin("BTC/USDT")


def listing() -> pl.DataFrame:
    rows = [
        Instrument("binance", "BTC", "usdt", "BTCUSDT", open_interest_usd=9e9),
        Instrument("binance", "BTC", "usdc", "BTCUSDC", open_interest_usd=1e8),
        Instrument("binance", "BTC", "inverse", "BTCUSD_PERP", open_interest_usd=5e8),
        Instrument("binance", "ETH", "usdt", "ETHUSDT", open_interest_usd=5e9),
        Instrument("binance", "PEPE", "usdt", "1000PEPEUSDT", multiplier=1000, open_interest_usd=3e8),
        Instrument("binance", "LUNA", "usdt", "LUNAUSDT", delisted_at=dt.datetime(2022, 5, 13)),
        Instrument("binance", "NEW", "usdc", "NEWUSDC", listed_at=dt.datetime(2025, 1, 1)),
        Instrument("deribit", "BTC", "inverse", "BTC-PERPETUAL"),
        Instrument("deribit", "BTC", "usdc", "BTC_USDC-PERPETUAL"),
        Instrument("deribit", "SOL", "usdc", "SOL_USDC-PERPETUAL"),
    ]
    return inst.frame(rows)


def keys(frame: pl.DataFrame) -> set[tuple[str, str, str]]:
    return set(frame.select("venue", "symbol", "contract").iter_rows())


def test_the_default_is_each_venues_main_perpetual_of_each_coin():
    chosen = inst.select(listing(), Selection(("BTC", "SOL", "NEW")))
    assert keys(chosen) == {
        ("binance", "BTC", "usdt"),
        ("binance", "NEW", "usdc"),  # listed only as USDC there: that is its main perpetual
        ("deribit", "BTC", "inverse"),
        ("deribit", "SOL", "usdc"),
    }


def test_contract_types_and_all_select_more_than_the_main_one():
    assert keys(inst.select(listing(), Selection(("BTC",), ("inverse",)))) == {
        ("binance", "BTC", "inverse"),
        ("deribit", "BTC", "inverse"),
    }
    assert len(inst.select(listing(), Selection(("all",), ("all",)))) == listing().height


def test_top_n_ranks_each_venues_coins_by_its_own_open_interest():
    chosen = inst.select(listing(), Selection(("top:2",), ("all",)), venues=["binance"])
    assert keys(chosen) == {
        ("binance", "BTC", "usdt"),
        ("binance", "BTC", "usdc"),
        ("binance", "BTC", "inverse"),
        ("binance", "ETH", "usdt"),
    }


def test_a_range_selects_the_instruments_trading_in_it():
    chosen = inst.select(listing(), Selection(("all",)), ["binance"], dt.datetime(2024, 1, 1), dt.datetime(2024, 2, 1))
    assert {s for _, s, _ in keys(chosen)} == {"BTC", "ETH", "PEPE"}  # LUNA delisted, NEW not yet listed


def test_coins_a_venue_does_not_list_are_named_and_coins_nobody_lists_refused():
    selection = Selection(("BTC", "ETH"))
    assert inst.unlisted(listing(), selection, ["binance", "deribit"]) == {"deribit": ["ETH"]}
    inst.require_listed(listing(), selection, ["binance", "deribit"])
    with pytest.raises(FundingInputError, match="'DOGE' listed by no configured venue"):
        inst.require_listed(listing(), Selection(("BTC", "DOGE")), ["binance", "deribit"])


def test_before_any_discovery_named_coins_are_each_venues_main_perpetual():
    series = inst.series(inst.empty(), Selection(("BTC", "SOL")), ["binance", "deribit"])
    assert keys(series) == {
        ("binance", "BTC", "usdt"),
        ("binance", "SOL", "usdt"),
        ("deribit", "BTC", "inverse"),
        ("deribit", "SOL", "usdc"),
    }
    with pytest.raises(FundingInputError, match="materialise the 'instruments' asset first"):
        inst.series(inst.empty(), Selection(("all",)), ["binance"])


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FUNDING_ASSETS_COINS": "top:0"}, "positive whole number"),
        ({"FUNDING_ASSETS_COINS": "all,BTC"}, "cannot be combined"),
        ({"FUNDING_ASSETS_CONTRACTS": "perp"}, "unknown contract type 'perp'"),
        ({"FUNDING_ASSETS_CONTRACTS": "main,usdt"}, "cannot be combined"),
        ({"FUNDING_ASSETS_CONTRACTS": " "}, "FUNDING_ASSETS_CONTRACTS"),
    ],
)
def test_bad_coin_and_contract_settings_are_refused_naming_the_variable(env, message):
    with pytest.raises(FundingInputError, match=message):
        FundingConfig.from_env(env)


def test_coin_and_contract_settings_parse():
    config = FundingConfig.from_env({"FUNDING_ASSETS_COINS": "TOP:20", "FUNDING_ASSETS_CONTRACTS": "Inverse,usdt"})
    assert config.selection == Selection(("top:20",), ("inverse", "usdt"))
    assert FundingConfig.from_env({}).selection == Selection(("BTC", "ETH"), ("main",))
