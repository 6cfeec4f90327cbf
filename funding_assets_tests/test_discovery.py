"""Instrument discovery and fetching any instrument.

- **Discovery**: each client's ``instruments()`` parses its venue's real instrument payloads
  (recorded fixtures from ``../shared/fixtures`` where they exist, otherwise rows in the
  shape of the venues' documented examples) into :class:`Instrument` rows: canonical coin,
  contract type, the venue's own name, multiplier, settlement currency, listing and
  delisting times, native interval, cap and floor per interval, open interest and volume in
  USD. Rows that are not perpetuals are left out; a row that cannot be read is skipped and
  counted, never a crash.
- **Any instrument**: every client call takes a coin (the venue's main perpetual, as before)
  or an ``Instrument``; prints carry ``contract`` and ``venue_symbol``; inverse contracts are
  routed to the venue's inverse endpoints (Binance COIN-M, Bybit ``category=inverse``).
- ``source_label`` names the ``source`` of every print.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
from contextlib import aclosing
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from funding_assets.clients import (
    _instrument,
    binance,
    bybit,
    client_for,
    deribit,
    hyperliquid,
    instruments_of,
    okx,
    prints_frame,
)
from funding_assets.errors import FundingInputError
from funding_assets.instruments import Instrument, frame
from funding_assets.venues import VENUES, spec

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "fixtures"
needs_shared = pytest.mark.skipif(not FIXTURES.is_dir(), reason="../shared/fixtures is absent")
UNIX = dt.datetime(1970, 1, 1)


def load(relative: str) -> Any:
    return json.loads((FIXTURES / relative).read_text())


def at_ms(ms: int) -> dt.datetime:
    return UNIX + dt.timedelta(milliseconds=ms)


def by_name(instruments: list[Instrument]) -> dict[str, Instrument]:
    return {i.venue_symbol: i for i in instruments}


class StubHttp:
    """Answers GET/POST from a table ``{(path, frozen params): payload}`` and records the calls."""

    base_url = "http://stub"

    def __init__(self, answers: dict[tuple[str, tuple], Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, tuple]] = []

    def _answer(self, path: str, params: dict | None) -> Any:
        key = (path, tuple(sorted((params or {}).items())))
        self.calls.append(key)
        return copy.deepcopy(self.answers[key])

    def get(self, path: str, params: dict | None = None, **_: Any) -> Any:
        return self._answer(path, params)

    def post(self, path: str, body: Any, **_: Any) -> Any:
        return self._answer(path, body)

    def close(self) -> None:
        pass


def key(path: str, **params: Any) -> tuple[str, tuple]:
    return (path, tuple(sorted(params.items())))


# --- Binance --------------------------------------------------------------------------------

#: exchangeInfo rows in the documented shape (developers.binance.com USD-M "Exchange
#: Information", example BLZUSDT): a perpetual's deliveryDate is 4133404800000 (2100) until it
#: is delisted; SETTLING/CLOSE rows are delisted at deliveryDate.
NEVER_MS = 4133404800000


def usd_m_row(symbol: str, base: str, quote: str, status: str = "TRADING", **extra: Any) -> dict:
    row = {
        "symbol": symbol,
        "pair": symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": NEVER_MS,
        "onboardDate": 1598252400000,
        "status": status,
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": base,
        "quoteAsset": quote,
        "marginAsset": quote,
        "pricePrecision": 5,
        "quantityPrecision": 0,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": ["STORAGE"],
        "settlePlan": 0,
        "triggerProtect": "0.15",
        "filters": [],
        "OrderType": ["LIMIT", "MARKET"],
        "timeInForce": ["GTC"],
        "liquidationFee": "0.010000",
        "marketTakeBound": "0.30",
    }
    return {**row, **extra}


def usd_m_info() -> dict:
    return {
        "timezone": "UTC",
        "serverTime": 1565613908500,
        "rateLimits": [],
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": 0}],
        "symbols": [
            usd_m_row("BTCUSDT", "BTC", "USDT", onboardDate=1569398400000),
            usd_m_row("1000PEPEUSDT", "1000PEPE", "USDT"),
            usd_m_row("BTCUSDC", "BTC", "USDC"),
            usd_m_row("GTCUSDT", "GTC", "USDT"),
            usd_m_row("LPTUSDT", "LPT", "USDT"),
            usd_m_row("BLZUSDT", "BLZ", "USDT", status="SETTLING", deliveryDate=1727683200000),
            usd_m_row("BTCUSDT_250328", "BTC", "USDT", contractType="CURRENT_QUARTER", deliveryDate=1743148800000),
            usd_m_row("NEWUSDT", "NEW", "USDT", status="PENDING_TRADING"),
            {"symbol": "BROKENUSDT", "contractType": "PERPETUAL"},  # no status, no quote
        ],
    }


#: COIN-M exchangeInfo rows (developers.binance.com COIN-M "Exchange Information": the
#: status is ``contractStatus``; ``contractSize`` is USD a contract).
def coin_m_info() -> dict:
    def row(symbol: str, contract_type: str, delivery: int, size: int, base: str) -> dict:
        return {
            "symbol": symbol,
            "pair": f"{base}USD",
            "contractType": contract_type,
            "deliveryDate": delivery,
            "onboardDate": 1597042800000,
            "contractStatus": "TRADING",
            "contractSize": size,
            "quoteAsset": "USD",
            "baseAsset": base,
            "marginAsset": base,
            "pricePrecision": 1,
            "quantityPrecision": 0,
            "underlyingType": "COIN",
            "filters": [],
        }

    return {
        "timezone": "UTC",
        "symbols": [
            row("BTCUSD_PERP", "PERPETUAL", NEVER_MS, 100, "BTC"),
            row("ETHUSD_PERP", "PERPETUAL", NEVER_MS, 10, "ETH"),
            row("BTCUSD_200925", "CURRENT_QUARTER", 1601020800000, 100, "BTC"),
        ],
    }


def usd_m_tickers() -> list[dict]:
    # /fapi/v1/ticker/24hr without a symbol: every symbol; quoteVolume in the quote asset
    return [
        {"symbol": "BTCUSDT", "volume": "100.0", "quoteVolume": "9500000.50"},
        {"symbol": "1000PEPEUSDT", "volume": "1.0", "quoteVolume": "1234.5"},
        {"symbol": "GTCUSDT", "volume": "1.0", "quoteVolume": ""},  # unreadable: unranked
    ]


def coin_m_tickers() -> list[dict]:
    # /dapi/v1/ticker/24hr: volume in contracts, baseVolume in coin
    return [{"symbol": "BTCUSD_PERP", "pair": "BTCUSD", "volume": "494109", "baseVolume": "5192.94797687"}]


@needs_shared
def test_binance_exchange_info_with_funding_info_caps_and_intervals():
    caps, bad = binance.parse_funding_caps(load("binance/binance_fundingInfo_excerpt_2026-09-15_livenote.json"))
    assert bad == 0
    assert caps == {"GTCUSDT": (0.02, -0.02, 8.0), "LPTUSDT": (0.02, -0.02, 4.0), "BTCUSDT": (0.003, -0.003, 8.0)}
    volumes = binance.parse_ticker_volumes(usd_m_tickers(), "quoteVolume")
    found, skipped = binance.parse_exchange_info(usd_m_info(), coin_margined=False, caps=caps, volumes=volumes)
    got = by_name(found)
    assert sorted(got) == ["1000PEPEUSDT", "BLZUSDT", "BTCUSDC", "BTCUSDT", "GTCUSDT", "LPTUSDT"]
    assert skipped == 1  # BROKENUSDT; the dated future and the pending listing are not perpetuals trading
    btc = got["BTCUSDT"]
    assert (btc.symbol, btc.contract, btc.settle, btc.multiplier) == ("BTC", "usdt", "USDT", 1.0)
    assert (btc.interval_hours, btc.rate_cap, btc.rate_floor) == (8.0, 0.003, -0.003)
    assert btc.listed_at == dt.datetime(2019, 9, 25, 8) and btc.delisted_at is None
    assert btc.volume_usd == 9500000.5 and btc.open_interest_usd is None  # OI takes a call per symbol
    assert got["LPTUSDT"].interval_hours == 4.0
    pepe = got["1000PEPEUSDT"]
    assert (pepe.symbol, pepe.multiplier, pepe.volume_usd) == ("PEPE", 1000.0, 1234.5)
    # not in fundingInfo: 8 h and the venue's default cap
    assert (pepe.interval_hours, pepe.rate_cap, pepe.rate_floor) == (8.0, spec("binance").rate_cap, -0.00375)
    assert got["BTCUSDC"].contract == "usdc" and got["BTCUSDC"].settle == "USDC"
    assert got["BLZUSDT"].delisted_at == at_ms(1727683200000)
    assert got["GTCUSDT"].volume_usd is None


def test_binance_coin_m_exchange_info_is_inverse_with_usd_volume():
    volumes = binance.parse_ticker_volumes(coin_m_tickers(), "volume")
    found, skipped = binance.parse_exchange_info(coin_m_info(), coin_margined=True, caps={}, volumes=volumes)
    got = by_name(found)
    assert sorted(got) == ["BTCUSD_PERP", "ETHUSD_PERP"] and skipped == 0
    btc = got["BTCUSD_PERP"]
    assert (btc.symbol, btc.contract, btc.settle) == ("BTC", "inverse", "BTC")
    assert btc.volume_usd == 494109 * 100  # contracts x USD a contract
    assert got["ETHUSD_PERP"].volume_usd is None


def test_binance_funding_info_rows_that_cannot_be_read_are_counted():
    payload = [
        {
            "symbol": "AUSDT",
            "adjustedFundingRateCap": "0.02",
            "adjustedFundingRateFloor": "-0.02",
            "fundingIntervalHours": 4,
        },
        {
            "symbol": "BUSDT",
            "adjustedFundingRateCap": None,
            "adjustedFundingRateFloor": "-0.02",
            "fundingIntervalHours": 4,
        },
        {
            "symbol": "CUSDT",
            "adjustedFundingRateCap": "0.02",
            "adjustedFundingRateFloor": "-0.02",
            "fundingIntervalHours": 3,
        },
    ]
    caps, bad = binance.parse_funding_caps(payload)
    assert caps == {"AUSDT": (0.02, -0.02, 4.0)} and bad == 2


def test_binance_instruments_reads_both_families_in_six_requests():
    answers = {
        key(binance.FUNDING_INFO): [],
        key(binance.TICKER_24H): usd_m_tickers(),
        key(binance.EXCHANGE_INFO): usd_m_info(),
        key(binance.COIN_M_FUNDING_INFO): [],
        key(binance.COIN_M_TICKER_24H): coin_m_tickers(),
        key(binance.COIN_M_EXCHANGE_INFO): coin_m_info(),
    }
    http = StubHttp(answers)
    client = binance.Client("http://stub", "ws://stub", http=http)
    found = client.instruments()
    assert {(i.contract, i.venue_symbol) for i in found} >= {("usdt", "BTCUSDT"), ("inverse", "BTCUSD_PERP")}
    assert len(http.calls) == 6 and client.skipped_instruments == 1
    table = frame(found)  # the instruments table takes them as they are
    assert table.height == len(found) == 8


def test_binance_inverse_is_routed_to_coin_m_hosts():
    client = binance.Client()
    assert (client.coin_m_rest, client.coin_m_ws) == ("https://dapi.binance.com", "wss://dstream.binance.com")
    local = binance.Client("http://127.0.0.1:9", "ws://127.0.0.1:9")
    assert local.coin_m_rest == "http://127.0.0.1:9" and local.coin_m_http is local.http
    inverse = _instrument("binance", Instrument("binance", "BTC", "inverse", "BTCUSD_PERP"))
    url = binance.stream_url("wss://dstream.binance.com", [inverse], binance.COIN_M_STREAM_PATH)
    assert url == "wss://dstream.binance.com/stream?streams=btcusd_perp@markPrice@1s"


# --- Bybit ----------------------------------------------------------------------------------


def bybit_envelope(category: str, rows: list[dict], cursor: str = "") -> dict:
    return {
        "retCode": 0,
        "retMsg": "OK",
        "result": {"category": category, "list": rows, "nextPageCursor": cursor},
        "retExtInfo": {},
        "time": 1735809771618,
    }


def bybit_row(template: dict, **fields: Any) -> dict:
    return {**copy.deepcopy(template), **fields}


@needs_shared
def test_bybit_instruments_info_pages_are_parsed_and_followed():
    (btc,) = load("bybit/docs_examples/bybit_docs_instruments_info_linear.json")["result"]["list"]
    page1 = bybit_envelope(
        "linear",
        [
            btc,
            bybit_row(btc, symbol="1000PEPEUSDT", baseCoin="1000PEPE", fundingInterval=240, launchTime="1683100800000"),
            bybit_row(btc, symbol="BTCUSDT-26DEC25", contractType="LinearFutures", fundingInterval=0),
        ],
        cursor="next%3D2",
    )
    page2 = bybit_envelope(
        "linear",
        [
            bybit_row(btc, symbol="ETHPERP", baseCoin="ETH", quoteCoin="USDC", settleCoin="USDC"),
            bybit_row(btc, symbol="ODDUSDT", fundingInterval=7),  # 7 minutes: no venue interval
        ],
    )
    inverse = bybit_envelope(
        "inverse",
        [
            bybit_row(
                btc,
                symbol="BTCUSD",
                contractType="InversePerpetual",
                quoteCoin="USD",
                settleCoin="BTC",
                upperFundingRate="0.005",
                lowerFundingRate="-0.005",
            )
        ],
    )
    linear_tickers = bybit_envelope(
        "linear", [{"symbol": "BTCUSDT", "openInterestValue": "5000000000.5", "turnover24h": "12000000000"}]
    )
    inverse_tickers = load("bybit/docs_examples/bybit_docs_tickers_inverse.json")
    http = StubHttp(
        {
            key(bybit.TICKERS_PATH, category="linear"): linear_tickers,
            key(bybit.INSTRUMENTS_PATH, category="linear", limit=1000): page1,
            key(bybit.INSTRUMENTS_PATH, category="linear", limit=1000, cursor="next%3D2"): page2,
            key(bybit.TICKERS_PATH, category="inverse"): inverse_tickers,
            key(bybit.INSTRUMENTS_PATH, category="inverse", limit=1000): inverse,
        }
    )
    client = bybit.Client("http://stub", "ws://stub", http=http)
    got = by_name(client.instruments())
    assert sorted(got) == ["1000PEPEUSDT", "BTCUSD", "BTCUSDT", "ETHPERP"]
    assert client.skipped_instruments == 1 and len(http.calls) == 5
    b = got["BTCUSDT"]
    assert (b.symbol, b.contract, b.settle, b.interval_hours, b.rate_cap, b.rate_floor) == (
        "BTC",
        "usdt",
        "USDT",
        8.0,
        0.00375,
        -0.00375,
    )
    assert b.listed_at == dt.datetime(2020, 3, 30) and (b.open_interest_usd, b.volume_usd) == (5000000000.5, 1.2e10)
    assert (got["1000PEPEUSDT"].symbol, got["1000PEPEUSDT"].multiplier, got["1000PEPEUSDT"].interval_hours) == (
        "PEPE",
        1000.0,
        4.0,
    )
    assert got["ETHPERP"].contract == "usdc"
    inv = got["BTCUSD"]
    assert (inv.contract, inv.settle, inv.rate_cap) == ("inverse", "BTC", 0.005)
    # inverse openInterestValue / turnover24h are in coin: the USD-sized contracts are used
    assert (inv.open_interest_usd, inv.volume_usd) == (240113967.0, 13713832.0)


def test_bybit_a_repeated_cursor_is_an_error_not_a_loop():
    page = bybit_envelope("linear", [], cursor="same")
    http = StubHttp(
        {
            key(bybit.TICKERS_PATH, category="linear"): bybit_envelope("linear", []),
            key(bybit.INSTRUMENTS_PATH, category="linear", limit=1000): page,
            key(bybit.INSTRUMENTS_PATH, category="linear", limit=1000, cursor="same"): page,
        }
    )
    with pytest.raises(bybit.VenueError, match="repeated"):
        bybit.Client("http://stub", "ws://stub", http=http).instruments()


def test_bybit_inverse_uses_the_inverse_category_and_stream_path():
    inv = _instrument("bybit", Instrument("bybit", "BTC", "inverse", "BTCUSD"))
    assert bybit.category_of(inv) == "inverse" and bybit.WS_PATHS["inverse"] == "/v5/public/inverse"
    assert bybit.category_of(_instrument("bybit", "BTC")) == "linear"
    payload = load("bybit/docs_examples/bybit_docs_tickers_inverse.json") if FIXTURES.is_dir() else None
    if payload is not None:
        [row] = bybit.parse_tickers(payload, {"BTCUSD": inv}, 8.0)
        assert (row["coin"], row["contract"], row["venue_symbol"], row["rate"]) == ("BTC", "inverse", "BTCUSD", 0.0001)


# --- OKX ------------------------------------------------------------------------------------


def okx_instrument(inst_id: str, ct_type: str, settle: str, state: str = "live", **extra: Any) -> dict:
    """A SWAP row in the documented shape of GET /api/v5/public/instruments."""
    base, quote, _ = inst_id.split("-")
    row = {
        "alias": "",
        "baseCcy": "",
        "category": "1",
        "ctMult": "1",
        "ctType": ct_type,
        "ctVal": "0.01" if ct_type == "linear" else "100",
        "ctValCcy": base if ct_type == "linear" else "USD",
        "expTime": "",
        "instFamily": f"{base}-{quote}",
        "instId": inst_id,
        "instType": "SWAP",
        "lever": "100",
        "listTime": "1611916828000",
        "lotSz": "0.01",
        "maxLmtSz": "100000000",
        "minSz": "0.01",
        "optType": "",
        "quoteCcy": "",
        "settleCcy": settle,
        "state": state,
        "ruleType": "normal",
        "stk": "",
        "tickSz": "0.1",
        "uly": f"{base}-{quote}",
    }
    return {**row, **extra}


@needs_shared
def test_okx_instruments_with_funding_rate_any_and_open_interest():
    funding_rows = load("okx/okx_funding-rate_instId-ANY_rows_2026-09-19_livenote.json")
    funding, bad_funding = okx.parse_funding_info({"code": "0", "msg": "", "data": funding_rows})
    assert bad_funding == 0 and funding == {
        "BTC-USDT-SWAP": (8.0, 0.00375, -0.00375),
        "OKB-USDT-SWAP": (4.0, 0.01, -0.01),
        "ONE-USDT-SWAP": (1.0, 0.01, -0.01),
    }  # the FUTURES X-Perp is not a swap
    open_interest = okx.parse_open_interest(
        {
            "code": "0",
            "msg": "",
            "data": [
                {
                    "instType": "SWAP",
                    "instId": "BTC-USDT-SWAP",
                    "oi": "5000",
                    "oiCcy": "555.55",
                    "oiUsd": "50000",
                    "ts": "1597026383085",
                }
            ],
        }
    )
    payload = {
        "code": "0",
        "msg": "",
        "data": [
            okx_instrument("BTC-USDT-SWAP", "linear", "USDT"),
            okx_instrument("BTC-USDC-SWAP", "linear", "USDC"),
            okx_instrument("BTC-USD-SWAP", "inverse", "BTC"),
            okx_instrument("OKB-USDT-SWAP", "linear", "USDT", expTime="1790000000000"),
            okx_instrument("ONE-USDT-SWAP", "linear", "USDT", state="preopen"),
            okx_instrument("BTC-USD_UM-SWAP", "linear", "USD"),  # USD-margined: no contract type of ours
        ],
    }
    found, bad = okx.parse_instruments(payload, funding, open_interest)
    got = by_name(found)
    assert sorted(got) == ["BTC-USD-SWAP", "BTC-USDC-SWAP", "BTC-USDT-SWAP", "OKB-USDT-SWAP"] and bad == 1
    btc = got["BTC-USDT-SWAP"]
    assert (btc.symbol, btc.contract, btc.settle, btc.interval_hours, btc.rate_cap, btc.rate_floor) == (
        "BTC",
        "usdt",
        "USDT",
        8.0,
        0.00375,
        -0.00375,
    )
    assert btc.listed_at == at_ms(1611916828000) and btc.open_interest_usd == 50000.0
    assert (got["BTC-USD-SWAP"].contract, got["BTC-USD-SWAP"].settle) == ("inverse", "BTC")
    assert got["BTC-USDC-SWAP"].interval_hours == 8.0 and got["BTC-USDC-SWAP"].rate_cap is None  # not in funding
    assert got["OKB-USDT-SWAP"].interval_hours == 4.0 and got["OKB-USDT-SWAP"].delisted_at == at_ms(1790000000000)


def test_okx_instruments_calls_three_endpoints():
    envelope = {"code": "0", "msg": "", "data": []}
    http = StubHttp(
        {
            key(okx.CURRENT_PATH, instId="ANY"): envelope,
            key(okx.OPEN_INTEREST_PATH, instType="SWAP"): envelope,
            key(okx.INSTRUMENTS_PATH, instType="SWAP"): {
                **envelope,
                "data": [okx_instrument("ETH-USDT-SWAP", "linear", "USDT"), {"instType": "SWAP"}],
            },
        }
    )
    client = okx.Client("http://stub", "ws://stub", http=http)
    [eth] = client.instruments()
    assert eth.venue_symbol == "ETH-USDT-SWAP" and client.skipped_instruments == 1 and len(http.calls) == 3


# --- Hyperliquid ----------------------------------------------------------------------------


@needs_shared
def test_hyperliquid_meta_and_asset_ctxs_lists_perpetuals_with_oi_and_volume():
    meta, ctxs = load("hyperliquid/hl_metaAndAssetCtxs_Yassi80_subset.json")
    meta["universe"] += [
        {"szDecimals": 0, "name": "kPEPE", "maxLeverage": 10},
        {"szDecimals": 1, "name": "MATIC", "maxLeverage": 20, "isDelisted": True},
        {"szDecimals": 2, "name": "xyz:XYZ100", "maxLeverage": 20},
        {"szDecimals": 2, "name": None, "maxLeverage": 20},
    ]
    ctxs += [
        {**ctxs[0], "openInterest": "1000000", "markPx": "0.01", "dayNtlVlm": "5000"},
        {**ctxs[0]},
        {**ctxs[0]},
        {**ctxs[0]},
    ]
    found, skipped = hyperliquid.parse_instruments([meta, ctxs])
    got = by_name(found)
    assert sorted(got) == ["BTC", "ETH", "HYPE", "SOL", "kPEPE"] and skipped == 1
    btc = got["BTC"]
    assert (btc.symbol, btc.contract, btc.settle, btc.interval_hours, btc.rate_cap, btc.rate_floor) == (
        "BTC",
        "usdc",
        "USDC",
        1.0,
        0.04,
        -0.04,
    )
    assert btc.open_interest_usd == pytest.approx(38359.47984 * 84981.0)
    assert btc.volume_usd == pytest.approx(1026494754.6038066)
    pepe = got["kPEPE"]
    assert (pepe.symbol, pepe.multiplier, pepe.open_interest_usd, pepe.volume_usd) == ("PEPE", 1000.0, 10000.0, 5000.0)


@needs_shared
def test_hyperliquid_misaligned_ctxs_are_a_venue_error():
    meta, ctxs = load("hyperliquid/hl_metaAndAssetCtxs_Yassi80_subset.json")
    with pytest.raises(hyperliquid.VenueError, match="universe"):
        hyperliquid.parse_instruments([meta, ctxs[:2]])


# --- Deribit --------------------------------------------------------------------------------


def deribit_row(name: str, period: str, kind: str, settle: str, base: str, **extra: Any) -> dict:
    """A future in the documented shape of public/get_instruments (api-evangelist/deribit schema)."""
    row = {
        "tick_size": 0.5,
        "taker_commission": 0.0005,
        "settlement_period": period,
        "settlement_currency": settle,
        "quote_currency": "USD" if kind == "reversed" else "USDC",
        "price_index": f"{base.lower()}_usd",
        "min_trade_amount": 10.0,
        "max_liquidation_commission": 0.0075,
        "max_leverage": 50,
        "maker_commission": 0.0,
        "kind": "future",
        "is_active": True,
        "instrument_name": name,
        "instrument_id": 124972,
        "instrument_type": kind,
        "future_type": kind,
        "expiration_timestamp": 32503708800000,
        "creation_timestamp": 1534242287000,
        "counter_currency": "USD",
        "contract_size": 10.0,
        "block_trade_tick_size": 0.01,
        "block_trade_min_trade_amount": 200000,
        "block_trade_commission": 0.00025,
        "base_currency": base,
    }
    return {**row, **extra}


def test_deribit_get_instruments_keeps_inverse_and_usdc_perpetuals():
    payload = {
        "jsonrpc": "2.0",
        "result": [
            deribit_row("BTC-PERPETUAL", "perpetual", "reversed", "BTC", "BTC"),
            deribit_row("SOL_USDC-PERPETUAL", "perpetual", "linear", "USDC", "SOL", creation_timestamp=1647000000000),
            deribit_row("BTC-27JUN25", "month", "reversed", "BTC", "BTC", expiration_timestamp=1751011200000),
            deribit_row("BTC_USDT-PERPETUAL", "perpetual", "linear", "USDT", "BTC"),  # not a contract of ours
        ],
        "usIn": 1,
        "usOut": 2,
        "usDiff": 1,
        "testnet": False,
    }
    found, skipped = deribit.parse_instruments(payload)
    got = by_name(found)
    assert sorted(got) == ["BTC-PERPETUAL", "SOL_USDC-PERPETUAL"] and skipped == 1
    btc = got["BTC-PERPETUAL"]
    assert (btc.symbol, btc.contract, btc.settle, btc.interval_hours, btc.rate_cap, btc.rate_floor) == (
        "BTC",
        "inverse",
        "BTC",
        1.0,
        0.005,
        -0.005,
    )
    assert btc.listed_at == at_ms(1534242287000) and btc.delisted_at is None
    sol = got["SOL_USDC-PERPETUAL"]
    assert (sol.symbol, sol.contract, sol.settle, sol.listed_at) == ("SOL", "usdc", "USDC", at_ms(1647000000000))
    http = StubHttp({key(deribit.INSTRUMENTS_PATH, currency="any", kind="future"): payload})
    client = deribit.Client("http://stub", "ws://stub", http=http)
    assert [i.venue_symbol for i in client.instruments()] == ["BTC-PERPETUAL", "SOL_USDC-PERPETUAL"]
    assert client.skipped_instruments == 1


def test_deribit_an_error_answer_is_a_venue_error():
    with pytest.raises(deribit.VenueError, match="10028"):
        deribit.parse_instruments({"jsonrpc": "2.0", "error": {"code": 10028, "message": "too_many_requests"}})


# --- fetching any instrument ----------------------------------------------------------------


@pytest.mark.parametrize("venue", VENUES)
def test_a_coin_means_the_venues_main_perpetual(venue):
    inst = _instrument(venue, "btc")
    s = spec(venue)
    assert (inst.venue, inst.symbol, inst.contract) == (venue, "BTC", s.default_contract("BTC"))
    assert inst.venue_symbol == s.name_of("BTC", inst.contract, 1.0)
    assert _instrument(venue, inst) is inst


def test_a_multiplied_coin_keeps_its_multiplier_in_the_name():
    assert _instrument("binance", "1000PEPE").venue_symbol == "1000PEPEUSDT"
    assert _instrument("hyperliquid", "kPEPE").venue_symbol == "kPEPE"
    assert _instrument("hyperliquid", "kPEPE").symbol == "PEPE"


def test_an_instrument_of_another_venue_or_a_bad_coin_is_refused():
    with pytest.raises(FundingInputError, match="okx instrument"):
        _instrument("binance", Instrument("okx", "BTC", "usdt", "BTC-USDT-SWAP"))
    with pytest.raises(FundingInputError):
        _instrument("binance", "not a coin!")


def test_instruments_of_keeps_order_and_each_name_once():
    inverse = Instrument("binance", "BTC", "inverse", "BTCUSD_PERP")
    assert list(instruments_of("binance", ["ETH", inverse, "BTC", "ETH"])) == ["ETHUSDT", "BTCUSD_PERP", "BTCUSDT"]


def test_prints_carry_contract_and_venue_symbol():
    row = {"coin": "BTC", "ts_ms": 1_700_000_000_000, "funding_time_ms": 1_700_006_400_000, "rate": 1e-4}
    row |= {"interval_hours": 8.0, "kind": "realised"}
    inverse = Instrument("binance", "BTC", "inverse", "BTCUSD_PERP")
    got = prints_frame([row], "binance", "sim", inverse)
    assert got.select("symbol", "contract", "venue_symbol", "source").rows() == [
        ("BTC", "inverse", "BTCUSD_PERP", "sim")
    ]
    main = prints_frame([row], "deribit", "x")  # no instrument: the venue's main perpetual
    assert main.select("contract", "venue_symbol").rows() == [("inverse", "BTC-PERPETUAL")]


@pytest.mark.parametrize("venue", VENUES)
def test_source_label_names_every_print(venue):
    labelled = client_for(venue, "http://127.0.0.1:9", "ws://127.0.0.1:9", source_label="sim")
    plain = client_for(venue, "http://127.0.0.1:9", "ws://127.0.0.1:9")
    try:
        assert (labelled.source, labelled.stream_source) == ("sim", "sim")
        assert (plain.source, plain.stream_source) == (f"{venue} REST", f"{venue} WS")
    finally:
        labelled.close()
        plain.close()


@pytest.mark.parametrize("venue", VENUES)
def test_clients_take_their_venue_facts_from_the_spec(venue):
    s = spec(venue)
    client = client_for(venue)
    try:
        assert (client.rest_base, client.ws_base, client.default_interval) == (
            s.rest_url,
            s.ws_url,
            s.default_interval_hours,
        )
    finally:
        client.close()


# --- against the loopback simulator ---------------------------------------------------------
#
# The simulator serves every perpetual of its universe (funding_assets.sim.universe) with the
# venues' instrument endpoints; the clients cannot tell it from the venue.

#: The simulator's frozen now; the history asked lies inside every venue's REST window.
SIM_NOW = dt.datetime(2025, 6, 15, 12, 7, 30)
START, END = dt.datetime(2025, 6, 1), dt.datetime(2025, 6, 8)
COMPARED = ["symbol", "contract", "venue_symbol", "funding_time", "rate", "interval_hours", "kind"]
#: An inverse and a USDC perpetual of each venue (Hyperliquid: a multiplier name).
OTHER_CONTRACTS = {
    "binance": [("BTC", "inverse"), ("BTC", "usdc")],
    "bybit": [("BTC", "inverse"), ("BTC", "usdc")],
    "okx": [("BTC", "inverse"), ("BTC", "usdc")],
    "hyperliquid": [("PEPE", "usdc")],
    "deribit": [("SOL", "usdc"), ("ETH", "inverse")],
}
CASES = [(v, coin, contract) for v, pairs in OTHER_CONTRACTS.items() for coin, contract in pairs]


@pytest.fixture(scope="module")
def sim():
    from funding_assets.sim.server import SimClock, SimServer

    with SimServer(clock=SimClock(start=SIM_NOW, speed=0.0), push_interval_s=0.02) as server:
        yield server


def sim_client(server, venue: str):
    from funding_assets.clients import Budget, HttpClient

    http = HttpClient(venue, server.rest_url(venue), Budget(1e9, 1.0), backoff_s=0.01, timeout_s=5)
    extra = {"clock": server.clock} if venue == "hyperliquid" else {}  # its payloads carry no time
    return client_for(venue, server.rest_url(venue), server.ws_url(venue), http=http, source_label="sim", **extra)


def sim_instrument(server, venue: str, coin: str, contract: str) -> Instrument:
    """The client's view of an instrument: its name and contract, nothing the venue must tell."""
    truth = server.feed.model.instrument(venue, coin, contract)
    return Instrument(venue, truth.symbol, truth.contract, truth.venue_symbol, truth.multiplier)


@pytest.mark.parametrize("venue", VENUES)
def test_instruments_from_the_simulator_are_its_universe(sim, venue):
    client = sim_client(sim, venue)
    try:
        got = {i.venue_symbol: i for i in client.instruments()}
    finally:
        client.close()
    listed = {i.venue_symbol: i for i in sim.feed.listing(venue)}
    trading = {name for name, i in listed.items() if sim.feed.trading(i)}
    assert client.skipped_instruments == 0
    assert trading <= set(got) <= set(listed)  # delisted ones only where the venue still lists them
    for name in trading:
        mine, truth = got[name], listed[name]
        assert (mine.symbol, mine.contract, mine.multiplier) == (truth.symbol, truth.contract, truth.multiplier), name
        assert mine.listed_at in (None, truth.listed_at), name
        assert mine.interval_hours == sim.feed.interval_hours(truth), name


@pytest.mark.parametrize(("venue", "coin", "contract"), CASES)
def test_settled_of_an_instrument_is_the_models(sim, venue, coin, contract):
    inst = sim_instrument(sim, venue, coin, contract)
    client = sim_client(sim, venue)
    try:
        got = client.settled(inst, START, END)
    finally:
        client.close()
    want = sim.feed.settlements(venue, coin, START, END + dt.timedelta(milliseconds=1), contract=contract)
    assert got.height > 0 and set(got["source"]) == {"sim"}
    assert got.select(COMPARED).equals(want.select(COMPARED))


@pytest.mark.parametrize(("venue", "coin", "contract"), CASES)
def test_premium_history_of_an_instrument_is_labelled_with_its_contract(sim, venue, coin, contract):
    inst = sim_instrument(sim, venue, coin, contract)
    client = sim_client(sim, venue)
    try:
        got = client.premium_history(inst, END - dt.timedelta(hours=3), END)
    finally:
        client.close()
    publishes = venue in ("binance", "okx", "hyperliquid") or (venue == "bybit" and contract != "inverse")
    assert (got.height > 0) == publishes  # Bybit inverse and Deribit publish no premium history
    assert set(got["symbol"]) <= {coin} and set(got["contract"]) <= {contract}
    assert got["ts"].is_sorted()
    assert got.height == 0 or got["premium"].abs().max() < 0.5  # decimal fractions, never percent


@pytest.mark.parametrize(("venue", "coin", "contract"), CASES)
def test_current_of_an_instrument_is_the_open_window(sim, venue, coin, contract):
    inst = sim_instrument(sim, venue, coin, contract)
    client = sim_client(sim, venue)
    try:
        got = client.current(["BTC" if venue != "hyperliquid" else "ETH", inst])
    finally:
        client.close()
    row = got.filter(pl.col("venue_symbol") == inst.venue_symbol).row(0, named=True)
    rate, funding_time, hours = sim.feed.predicted(venue, coin, contract=contract)
    assert (row["symbol"], row["contract"], row["kind"]) == (coin, contract, "predicted")
    assert (row["rate"], row["funding_time"], row["interval_hours"]) == (
        pytest.approx(rate, abs=1e-8),
        funding_time,
        hours,
    )
    assert got.height == 2


@pytest.mark.parametrize("venue", ["binance", "bybit", "okx", "deribit"])
def test_stream_of_the_main_and_an_inverse_perpetual(sim, venue):
    inverse = sim_instrument(sim, venue, "ETH" if venue == "deribit" else "BTC", "inverse")
    main = "SOL" if venue == "deribit" else "ETH"  # SOL_USDC-PERPETUAL on Deribit
    client = sim_client(sim, venue)

    async def collect() -> set[tuple[str, str]]:
        seen: set[tuple[str, str]] = set()
        async with asyncio.timeout(10), aclosing(client.stream([main, inverse])) as frames:
            async for frame in frames:
                seen |= set(frame.select("contract", "venue_symbol").iter_rows())
                assert set(frame["source"]) == {"sim"}
                if len(seen) == 2:
                    return seen
        return seen

    try:
        seen = asyncio.run(collect())
    finally:
        client.close()
    assert inverse.venue_symbol in {name for _, name in seen} and ("inverse", inverse.venue_symbol) in seen
    assert len(seen) == 2
