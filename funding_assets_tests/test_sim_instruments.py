"""The simulator serves each venue's instrument list in the venue's own shape and page sizes,
and every instrument of the universe on its funding endpoints (loopback only)."""

import datetime as dt
import json

import httpx
import pytest

from funding_assets.sim import universe
from funding_assets.sim.model import FundingModel
from funding_assets.sim.server import SimClock, SimServer

NOW = dt.datetime(2025, 6, 15, 2, 17, 31, 250_000)
MODEL = FundingModel()


def ms(when: dt.datetime) -> int:
    return int(when.replace(tzinfo=dt.UTC).timestamp() * 1000)


@pytest.fixture(scope="module")
def server():
    with SimServer(clock=SimClock(start=NOW, speed=0.0)) as sim:
        yield sim


def get(server: SimServer, venue: str, path: str, **params) -> httpx.Response:
    return httpx.get(server.rest_url(venue) + path, params=params, timeout=60)


def hl(server: SimServer, body: dict) -> httpx.Response:
    return httpx.post(server.rest_url("hyperliquid") + "/info", json=body, timeout=60)


def trading(venue: str) -> list[universe.Instrument]:
    return [i for i in universe.listing(venue) if universe.listed_at(i, NOW)]


def delisted(venue: str) -> list[universe.Instrument]:
    return [i for i in universe.listing(venue) if i.delisted_at is not None and i.delisted_at <= NOW]


# --- Binance -----------------------------------------------------------------------------------


def test_binance_exchange_info_lists_every_perpetual_of_both_families(server):
    usd_m = get(server, "binance", "/fapi/v1/exchangeInfo").json()
    coin_m = get(server, "binance", "/dapi/v1/exchangeInfo").json()
    assert {"timezone", "serverTime", "rateLimits", "exchangeFilters", "symbols"} <= set(usd_m) and coin_m["rateLimits"]
    perpetuals = [s for s in usd_m["symbols"] if s["contractType"] == "PERPETUAL"]
    inverse = [s for s in coin_m["symbols"] if s["contractType"] == "PERPETUAL"]
    names = {s["symbol"] for s in perpetuals} | {s["symbol"] for s in inverse}
    assert names == {i.venue_symbol for i in universe.listing("binance") if i.listed_at <= NOW}
    assert len(perpetuals) >= 100 and {"BTCUSDC", "1000PEPEUSDT", "BTCUSDT"} <= names and "BTCUSD_PERP" in names
    pepe = next(s for s in perpetuals if s["symbol"] == "1000PEPEUSDT")
    assert pepe["baseAsset"] == "1000PEPE" and pepe["quoteAsset"] == pepe["marginAsset"] == "USDT"
    btc = next(s for s in perpetuals if s["symbol"] == "BTCUSDT")
    assert (
        btc["status"] == "TRADING"
        and btc["deliveryDate"] == 4133404800000
        and btc["onboardDate"] == ms(dt.datetime(2020, 1, 1))
    )
    gone = {i.venue_symbol: i for i in delisted("binance")}
    settled = [s for s in perpetuals + inverse if s["symbol"] in gone]
    assert settled and all(s.get("status", s.get("contractStatus")) in ("SETTLING", "CLOSE") for s in settled)
    assert all(s["deliveryDate"] == ms(gone[s["symbol"]].delisted_at) for s in settled)
    btc_m = next(s for s in inverse if s["symbol"] == "BTCUSD_PERP")
    assert btc_m["contractStatus"] == "TRADING" and btc_m["contractSize"] == 100 and btc_m["marginAsset"] == "BTC"
    assert btc_m["pair"] == "BTCUSD" and btc_m["quoteAsset"] == "USD"
    quarters = [s for s in usd_m["symbols"] + coin_m["symbols"] if s["contractType"] != "PERPETUAL"]
    assert {s["symbol"][:-7] for s in quarters} == {"BTCUSDT", "ETHUSDT", "BTCUSD", "ETHUSD"}


def test_binance_ranking_and_coin_m_funding(server):
    tickers = get(server, "binance", "/fapi/v1/ticker/24hr").json()
    assert {t["symbol"] for t in tickers} == {i.venue_symbol for i in trading("binance") if i.contract != "inverse"}
    btc = next(t for t in tickers if t["symbol"] == "BTCUSDT")
    assert float(btc["quoteVolume"]) == pytest.approx(universe.find("binance", "BTC").volume_usd, rel=1e-6)
    assert get(server, "binance", "/fapi/v1/ticker/24hr", symbol="ETHUSDT").json()["symbol"] == "ETHUSDT"
    coin_m = get(server, "binance", "/dapi/v1/ticker/24hr").json()
    assert all({"pair", "volume", "baseVolume"} <= set(t) for t in coin_m)
    oi = get(server, "binance", "/fapi/v1/openInterest", symbol="BTCUSDT").json()
    assert set(oi) == {"openInterest", "symbol", "time"} and float(oi["openInterest"]) > 0
    assert get(server, "binance", "/dapi/v1/openInterest").json()["code"] == -1102
    history = get(server, "binance", "/dapi/v1/fundingRate", symbol="BTCUSD_PERP", limit=5).json()
    truth = MODEL.settlements("binance", "BTC", NOW - dt.timedelta(days=5), NOW, contract="inverse")
    assert [r["fundingTime"] for r in history] == [ms(t) for t in truth["ts"][-5:]]
    assert get(server, "binance", "/dapi/v1/fundingRate").json()["code"] == -1102
    premium = get(server, "binance", "/dapi/v1/premiumIndex", pair="BTCUSD").json()
    assert [r["symbol"] for r in premium][0] == "BTCUSD_PERP" and premium[0]["pair"] == "BTCUSD"
    assert get(server, "binance", "/fapi/v1/fundingRate", symbol="BTCUSD_PERP").json()["code"] == -1121


def test_binance_history_is_empty_outside_the_listing(server):
    gone = next(i for i in delisted("binance") if i.contract == "usdt")
    after = get(
        server, "binance", "/fapi/v1/fundingRate", symbol=gone.venue_symbol, startTime=ms(gone.delisted_at) + 60_000
    )
    assert after.json() == []
    before = get(server, "binance", "/fapi/v1/fundingRate", symbol=gone.venue_symbol, endTime=ms(gone.listed_at))
    assert before.json() == []
    during = get(server, "binance", "/fapi/v1/fundingRate", symbol=gone.venue_symbol, endTime=ms(gone.delisted_at))
    assert during.json() and all(r["symbol"] == gone.venue_symbol for r in during.json())


# --- Bybit -------------------------------------------------------------------------------------


def instruments_pages(server: SimServer, **params) -> list[list[dict]]:
    pages, cursor = [], ""
    while True:
        answer = get(server, "bybit", "/v5/market/instruments-info", **params, **({"cursor": cursor} if cursor else {}))
        result = answer.json()["result"]
        pages.append(result["list"])
        cursor = result["nextPageCursor"]
        if not cursor:
            return pages


def test_bybit_instruments_info_pages_by_cursor(server):
    default = instruments_pages(server, category="linear")
    assert len(default) == 1 and len(default[0]) <= 500  # default limit 500
    small = instruments_pages(server, category="linear", limit=40)
    assert len(small) > 3 and all(len(p) == 40 for p in small[:-1])
    rows = [r for page in small for r in page]
    assert rows == default[0] and len({r["symbol"] for r in rows}) == len(rows)
    perpetuals = [r for r in rows if r["contractType"] == "LinearPerpetual"]
    assert len(perpetuals) >= 100 and all(r["status"] == "Trading" and r["deliveryTime"] == "0" for r in perpetuals)
    assert {r["symbol"] for r in perpetuals} == {i.venue_symbol for i in trading("bybit") if i.contract != "inverse"}
    pepe = next(r for r in perpetuals if r["symbol"] == "1000PEPEUSDT")
    assert pepe["baseCoin"] == "1000PEPE" and pepe["settleCoin"] == "USDT" and isinstance(pepe["fundingInterval"], int)
    assert any(r["symbol"] == "BTCUSDC" and r["settleCoin"] == "USDC" for r in perpetuals)
    assert [r["contractType"] for r in rows if r["contractType"] != "LinearPerpetual"] == ["LinearFutures"]
    inverse = instruments_pages(server, category="inverse")[0]
    assert {r["contractType"] for r in inverse} == {"InversePerpetual"} and "BTCUSD" in {r["symbol"] for r in inverse}
    assert get(server, "bybit", "/v5/market/instruments-info", category="linear", limit=1001).json()["retCode"] == 10001
    assert (
        get(server, "bybit", "/v5/market/instruments-info", category="linear", cursor="junk").json()["retCode"] == 10001
    )


def test_bybit_delisted_only_with_the_closed_status_filter(server):
    closed = [r for page in instruments_pages(server, category="linear", status="Closed") for r in page]
    gone = {i.venue_symbol: i for i in delisted("bybit") if i.contract != "inverse"}
    assert closed and {r["symbol"] for r in closed} == set(gone)
    assert all(r["status"] == "Closed" and r["deliveryTime"] == str(ms(gone[r["symbol"]].delisted_at)) for r in closed)


def test_bybit_tickers_rank_and_inverse_category_serves_funding(server):
    linear = get(server, "bybit", "/v5/market/tickers", category="linear").json()["result"]["list"]
    btc = next(t for t in linear if t["symbol"] == "BTCUSDT")
    assert float(btc["openInterestValue"]) == pytest.approx(universe.find("bybit", "BTC").open_interest_usd, rel=1e-6)
    assert {"turnover24h", "fundingIntervalHour", "fundingCap", "fundingRate", "nextFundingTime"} <= set(btc)
    inverse = get(server, "bybit", "/v5/market/tickers", category="inverse", symbol="BTCUSD").json()["result"]["list"]
    rate, funding_time, hours = MODEL.predicted("bybit", "BTC", NOW, contract="inverse")
    assert inverse[0]["nextFundingTime"] == str(ms(funding_time)) and inverse[0]["fundingIntervalHour"] == str(
        int(hours)
    )
    history = get(server, "bybit", "/v5/market/funding/history", category="inverse", symbol="BTCUSD", limit=3).json()
    assert [r["symbol"] for r in history["result"]["list"]] == ["BTCUSD"] * 3
    wrong = get(server, "bybit", "/v5/market/funding/history", category="linear", symbol="BTCUSD")
    assert wrong.json()["retCode"] == 10001


# --- OKX ---------------------------------------------------------------------------------------


def test_okx_instruments_list_live_swaps_of_every_contract_type(server):
    answer = get(server, "okx", "/api/v5/public/instruments", instType="SWAP").json()
    assert answer["code"] == "0"
    rows = answer["data"]
    assert len(rows) >= 100 and {r["instId"] for r in rows} == {i.venue_symbol for i in trading("okx")}
    assert all(r["state"] == "live" and r["expTime"] == "" and r["instType"] == "SWAP" for r in rows)
    by_id = {r["instId"]: r for r in rows}
    assert by_id["BTC-USD-SWAP"]["ctType"] == "inverse" and by_id["BTC-USD-SWAP"]["settleCcy"] == "BTC"
    assert by_id["BTC-USDC-SWAP"]["settleCcy"] == "USDC" and by_id["PEPE-USDT-SWAP"]["ctType"] == "linear"
    assert by_id["BTC-USDT-SWAP"]["uly"] == by_id["BTC-USDT-SWAP"]["instFamily"] == "BTC-USDT"
    assert not {i.venue_symbol for i in delisted("okx")} & set(by_id)  # OKX lists live swaps only
    one = get(server, "okx", "/api/v5/public/instruments", instType="SWAP", instFamily="ETH-USDT").json()["data"]
    assert [r["instId"] for r in one] == ["ETH-USDT-SWAP"]
    assert get(server, "okx", "/api/v5/public/instruments").json()["code"] == "50014"
    oi = get(server, "okx", "/api/v5/public/open-interest", instType="SWAP").json()["data"]
    assert {r["instId"] for r in oi} == set(by_id) and all({"oi", "oiCcy", "oiUsd", "ts"} <= set(r) for r in oi)


def test_okx_funding_of_an_inverse_swap(server):
    current = get(server, "okx", "/api/v5/public/funding-rate", instId="ETH-USD-SWAP").json()["data"][0]
    rate, funding_time, _ = MODEL.predicted("okx", "ETH", NOW, contract="inverse")
    assert current["fundingTime"] == str(ms(funding_time)) and current["instId"] == "ETH-USD-SWAP"
    every = get(server, "okx", "/api/v5/public/funding-rate", instId="ANY").json()["data"]
    assert len(every) == len(trading("okx"))
    history = get(server, "okx", "/api/v5/public/funding-rate-history", instId="BTC-USDC-SWAP", limit=2).json()
    assert [r["instId"] for r in history["data"]] == ["BTC-USDC-SWAP"] * 2


# --- Hyperliquid -------------------------------------------------------------------------------


def test_hyperliquid_meta_lists_the_universe_with_delisted_flags_and_aligned_ctxs(server):
    meta, ctxs = hl(server, {"type": "metaAndAssetCtxs"}).json()
    universe_rows = meta["universe"]
    assert len(universe_rows) == len(ctxs) >= 100 and hl(server, {"type": "meta"}).json() == meta
    names = [u["name"] for u in universe_rows]
    assert "kPEPE" in names and "PEPE" not in names and names[:3] == ["BTC", "ETH", "SOL"]
    gone = {i.venue_symbol for i in delisted("hyperliquid")}
    assert gone and {u["name"] for u in universe_rows if u.get("isDelisted")} == gone
    assert all(u.get("isDelisted", True) is True for u in universe_rows)  # present only when true
    for row, ctx in zip(universe_rows, ctxs):
        assert {"szDecimals", "name", "maxLeverage"} <= set(row)
        assert {"funding", "openInterest", "markPx", "dayNtlVlm", "premium", "oraclePx"} <= set(ctx)
        assert (ctx["premium"] is None) == bool(row.get("isDelisted"))
    pepe = ctxs[names.index("kPEPE")]
    rate, _, _ = MODEL.predicted("hyperliquid", "PEPE", NOW)
    assert float(pepe["funding"]) == rate
    history = hl(server, {"type": "fundingHistory", "coin": "kPEPE", "startTime": ms(NOW) - 3 * 3_600_000}).json()
    assert [r["coin"] for r in history] == ["kPEPE"] * 3


# --- Deribit -----------------------------------------------------------------------------------


def deribit(server: SimServer, method: str, **params) -> httpx.Response:
    return get(server, "deribit", f"/api/v2/public/{method}", **params)


def test_deribit_get_instruments_lists_perpetuals_and_expired_ones_on_request(server):
    answer = deribit(server, "get_instruments", currency="any", kind="future").json()
    assert answer["jsonrpc"] == "2.0" and isinstance(answer["result"], list)
    perpetuals = [r for r in answer["result"] if r["settlement_period"] == "perpetual"]
    assert len(perpetuals) >= 100 and {r["instrument_name"] for r in perpetuals} == {
        i.venue_symbol for i in trading("deribit")
    }
    by_name = {r["instrument_name"]: r for r in perpetuals}
    btc, sol = by_name["BTC-PERPETUAL"], by_name["SOL_USDC-PERPETUAL"]
    assert btc["instrument_type"] == "reversed" and btc["settlement_currency"] == "BTC" and btc["is_active"]
    assert btc["expiration_timestamp"] == 32503708800000 and btc["kind"] == "future"
    assert sol["instrument_type"] == "linear" and sol["settlement_currency"] == sol["counter_currency"] == "USDC"
    dated = [r["instrument_name"] for r in answer["result"] if r["settlement_period"] != "perpetual"]
    assert sorted(n.split("-")[0] for n in dated) == ["BTC", "ETH"]
    expired = deribit(server, "get_instruments", currency="any", kind="future", expired="true").json()["result"]
    gone = {i.venue_symbol for i in delisted("deribit")}
    assert gone and {r["instrument_name"] for r in expired} == gone and not any(r["is_active"] for r in expired)
    btc_only = deribit(server, "get_instruments", currency="BTC", kind="future").json()["result"]
    assert {r["base_currency"] for r in btc_only} == {"BTC"} and "BTC_USDC-PERPETUAL" not in {
        r["instrument_name"] for r in btc_only
    }
    assert deribit(server, "get_instruments", currency="any", kind="option").json()["result"] == []
    assert deribit(server, "get_instruments").json()["error"]["code"] == -32602
    summary = deribit(server, "get_book_summary_by_currency", currency="USDC", kind="future").json()["result"]
    assert summary and all({"open_interest", "volume_usd", "instrument_name"} <= set(r) for r in summary)


def test_deribit_serves_linear_perpetual_history_and_tickers(server):
    end = ms(NOW - dt.timedelta(hours=3))
    rows = deribit(
        server,
        "get_funding_rate_history",
        instrument_name="SOL_USDC-PERPETUAL",
        start_timestamp=end - 10 * 3_600_000,
        end_timestamp=end,
    ).json()["result"]
    truth = MODEL.settlements("deribit", "SOL", NOW - dt.timedelta(hours=13), NOW - dt.timedelta(hours=3))
    assert [r["interest_1h"] for r in rows] == truth["rate"].to_list()[-len(rows) :] and len(rows) == 10
    ticker = deribit(server, "ticker", instrument_name="SOL_USDC-PERPETUAL").json()["result"]
    assert ticker["instrument_name"] == "SOL_USDC-PERPETUAL" and isinstance(ticker["funding_8h"], float)
    unknown = deribit(
        server, "get_funding_rate_history", instrument_name="NOSUCH-PERPETUAL", start_timestamp=1, end_timestamp=2
    )
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == 13020


def test_every_listing_answer_is_json_without_nan(server):
    for venue, path, params in (
        ("binance", "/fapi/v1/exchangeInfo", {}),
        ("bybit", "/v5/market/tickers", {"category": "linear"}),
        ("okx", "/api/v5/public/open-interest", {"instType": "SWAP"}),
    ):
        text = get(server, venue, path, **params).text
        assert "NaN" not in text and "Infinity" not in text and json.loads(text)
