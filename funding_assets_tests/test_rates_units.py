"""Rho and Boros units: the seed notebook's three numbers, the providers' doc examples, names.

Stored rates are annualised decimals (0.036451 = 3.6451 % APR); times naive UTC.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from funding_assets.rates import boros, rho
from funding_assets.rates.schema import INTERVALS, candle_open_s, resolve_underlying
from funding_assets.rates.units import (
    apr_to_rho_candle,
    apr_to_wad,
    big_int,
    big_number,
    decimal_apr,
    iso_utc,
    percent_apr,
    rfc3339,
    rho_candle_apr,
    rho_seconds,
    unix_s,
    unix_seconds,
    wad_apr,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
BOROS_RHO = SHARED / "realdata" / "boros_rho"
needs_shared = pytest.mark.skipif(not BOROS_RHO.is_dir(), reason="../shared/realdata/boros_rho is absent")


def load(name: str):
    return json.loads((BOROS_RHO / name).read_text())


# --------------------------------------------------------------------------- the notebook's numbers


def test_rho_candle_integer_is_the_annualised_decimal_times_1e16():
    apr = rho_candle_apr(364511439564712)
    assert round(apr, 6) == 0.036451
    assert round(apr * 100, 4) == 3.6451  # percent, as a reader would quote it
    assert apr == 0.0364511439564712  # every digit kept


def test_rho_current_future_rate_is_a_1e18_scaled_decimal_apr():
    apr = wad_apr({"type": "BigNumber", "hex": "0x81801f4f2e9dd9"})
    assert round(apr * 100, 4) == 3.6451
    assert apr == 36451143956471257 / 10**18
    # the candle and the vAMM quote of the same moment agree to the candle's precision
    assert abs(apr - rho_candle_apr(364511439564712)) < 1e-16


def test_rho_term_start_is_a_bignumber_of_unix_seconds():
    seconds = rho_seconds({"type": "BigNumber", "hex": "0x6812ab70"})
    assert unix_seconds(seconds) == dt.datetime(2025, 4, 30, 23, 0)


def test_scaled_integers_divide_without_losing_digits():
    # a 17-digit wad: the float of the integer first would already be off in the last digit
    value = 10**17 + 1
    assert wad_apr(value) == 0.100000000000000001  # nearest float to the exact quotient
    assert rho_candle_apr(-364511439564712) == -0.0364511439564712


@pytest.mark.parametrize(
    "written",
    [36451143956471257, "36451143956471257", "0x81801f4f2e9dd9", "0X81801F4F2E9DD9".replace("0X", "0x"),
     {"type": "BigNumber", "hex": "0x81801f4f2e9dd9"}, {"_hex": "0x81801f4f2e9dd9", "_isBigNumber": True}],
)  # fmt: skip
def test_a_bignumber_reads_in_every_json_form(written):
    assert big_int(written) == 36451143956471257


@pytest.mark.parametrize("bad", [True, 1.5, "3.6451", "0xZZ", None, [], {"hex": 5}])
def test_anything_else_is_not_an_integer(bad):
    with pytest.raises(ValueError):
        big_int(bad)


@given(st.integers(min_value=-(10**15) + 1, max_value=10**15 - 1))
def test_rho_candle_integers_of_15_digits_round_trip(value):
    # 15 significant digits always survive a float; the sim writes what clients read back
    assert apr_to_rho_candle(rho_candle_apr(value)) == value
    assert apr_to_wad(wad_apr(value)) == value
    assert big_int(big_number(value)) == value


@given(st.floats(min_value=-2.0, max_value=2.0, allow_nan=False))
def test_an_apr_written_as_a_rho_integer_reads_back_within_the_scale(apr):
    assert abs(rho_candle_apr(apr_to_rho_candle(apr)) - apr) <= 0.5e-16 + 1e-16 * abs(apr)
    assert abs(wad_apr(apr_to_wad(apr)) - apr) <= 0.5e-18 + 1e-16 * abs(apr)


def test_iso_times_are_utc_and_ms():
    assert iso_utc("2025-05-01T00:00:00.000Z") == dt.datetime(2025, 5, 1)
    assert iso_utc("2025-05-01T02:00:00.123456+02:00") == dt.datetime(2025, 5, 1, 0, 0, 0, 123000)
    assert rfc3339(dt.datetime(2025, 5, 1, 8)) == "2025-05-01T08:00:00Z"
    for bad in ("2025-05-01", "1746054000", 1746054000, "1970-01-01T00:00:00Z"):
        with pytest.raises(ValueError):
            iso_utc(bad)


def test_unix_seconds_refuse_milliseconds():
    assert unix_seconds(1747872000) == dt.datetime(2025, 5, 22)
    with pytest.raises(ValueError, match="milliseconds"):
        unix_seconds(1747872000000)


def test_decimal_and_percent_aprs():
    assert decimal_apr("0.07508415") == 0.07508415
    assert percent_apr("3.6451") == 0.036451
    for bad in ("nan", "inf", "", "3,6", True, None):
        with pytest.raises(ValueError):
            decimal_apr(bad)


@given(st.integers(min_value=1_420_070_400, max_value=4_102_444_799), st.sampled_from(sorted(INTERVALS)))
def test_a_candle_opens_on_its_grid_at_or_before_the_instant(seconds, interval):
    opened = candle_open_s(seconds, interval)
    assert opened <= seconds < opened + INTERVALS[interval]
    when = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=opened)
    if interval == "1w":
        assert when.weekday() == 0  # Monday
    if interval in ("1d", "1w"):
        assert when.time() == dt.time()
    assert unix_s(when) == opened


# --------------------------------------------------------------------------- underlyings


@pytest.mark.parametrize(
    "platform, name, coin, expected",
    [
        ("Binance", "BTCUSDT", None, ("binance", "BTC", "usdt", "BTCUSDT")),
        ("Bybit", "ETHUSDT", None, ("bybit", "ETH", "usdt", "ETHUSDT")),
        ("OKX", "BTCUSDT", None, ("okx", "BTC", "usdt", "BTC-USDT-SWAP")),
        ("okx", "ETH-USDT-SWAP", None, ("okx", "ETH", "usdt", "ETH-USDT-SWAP")),
        ("Binance", "BTC", None, ("binance", "BTC", "usdt", "BTCUSDT")),
        ("Binance", "1000PEPEUSDT", None, ("binance", "PEPE", "usdt", "1000PEPEUSDT")),
        ("Hyperliquid", "BTC", None, ("hyperliquid", "BTC", "usdc", "BTC")),
        ("Deribit", "BTC-PERPETUAL", None, ("deribit", "BTC", "inverse", "BTC-PERPETUAL")),
        ("Binance", "BINANCE-BTCUSDT-27JUN2025", "BTC", ("binance", "BTC", "usdt", "BTCUSDT")),
    ],
)
def test_the_underlying_maps_to_venue_coin_contract(platform, name, coin, expected):
    assert resolve_underlying(platform, name, coin) == expected


def test_an_unknown_underlying_venue_is_refused():
    with pytest.raises(ValueError, match="Lido"):
        resolve_underlying("Lido", "stETH")


# --------------------------------------------------------------------------- doc examples


@needs_shared
def test_boros_doc_example_market():
    market = boros.parse_market(load("boros_secrettune_market_BTCUSDT_docexample_2025-03.json"))
    assert (market.provider, market.market_id) == ("boros", "1")
    assert (market.venue, market.symbol, market.contract, market.venue_symbol) == ("binance", "BTC", "usdt", "BTCUSDT")
    assert market.maturity == dt.datetime(2025, 5, 22)  # 1747872000 s, top-level in this example
    assert market.term_start is None
    assert market.implied_apr == 0.07004243605986377  # markApr, already a decimal (7.0042 %)


@needs_shared
def test_boros_doc_example_market_in_a_listing_page():
    row = load("boros_secrettune_market_BTCUSDT_docexample_2025-03.json")
    listed = {**row, "imData": {"symbol": "x", "maturity": row["maturity"], "tickStep": 2}}
    del listed["maturity"]
    listed["metadata"] = {**row["metadata"], "assetSymbol": "BTC"}
    assert boros.parse_market(listed) == boros.parse_market(row)


@needs_shared
def test_boros_doc_example_chart():
    rows, skipped = boros.parse_chart(load("boros_secrettune_chart_5m_docexample_2025-04.json"))
    assert skipped == 0
    assert [r[0] for r in rows] == [dt.datetime(2025, 4, 8, 15, 40), dt.datetime(2025, 4, 8, 15, 45)]
    ts, o, h, low, c, u = rows[0]
    assert o == h == low == c == 0.08875971577541211  # implied APR 8.876 %
    assert u == 0.07508415  # the underlying (floating) APR, 7.508 %


def test_boros_chart_alternative_names():
    rows, skipped = boros.parse_chart(
        {"chart": [{"t": 1744126800, "mr": 0.05, "ofr": 0.04}, {"ts": 1744127100, "c": None}]}
    )
    assert rows == [(dt.datetime(2025, 4, 8, 15, 40), 0.05, 0.05, 0.05, 0.05, 0.04)] and skipped == 1


@needs_shared
def test_rho_x_swagger_serves_floating_candles_as_the_client_asks():
    spec = load("rho_x_openapi_original_swagger2.json")
    assert spec["basePath"] == "/api/v1" and rho.RHOX_URL.endswith(spec["basePath"])
    operation = spec["paths"][rho.FLOATING_PATH.replace("{market_id}", "{marketId}")]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert tuple(params["interval"]["enum"]) == rho.RHOX_INTERVALS
    assert {"startTime", "endTime", "limit", "marketId"} <= set(params)
    assert "1000" in params["limit"]["description"] and "RFC3339" in params["startTime"]["description"]
    candle = spec["definitions"]["dto.FloatingRateCandle"]["properties"]
    assert {"openTime", "openPrice", "highPrice", "lowPrice", "closePrice"} <= set(candle)
    assert all(field["type"] == "string" for field in candle.values())


def test_rho_x_floating_candles_parse_strings():
    payload = {
        "candles": [
            {"marketId": "m", "interval": "1h", "openTime": "2025-05-01T00:00:00Z", "closeTime": "2025-05-01T01:00:00Z",
             "openPrice": "0.05", "highPrice": "0.06", "lowPrice": "0.04", "closePrice": "0.055", "seqId": "1"}
        ]
    }  # fmt: skip
    assert rho.parse_floating_candles(payload) == [(dt.datetime(2025, 5, 1), 0.05, 0.06, 0.04, 0.055)]
    assert rho.parse_floating_candles(payload, percent_apr)[0][1] == 0.0005


def test_rho_descriptors_parse_into_futures():
    payload = [
        {
            "descriptor": {"id": "0xm", "sourceName": "Binance", "instrumentName": "BTCUSDT"},
            "futures": [
                {"id": "0xf", "marketId": "0xm", "termStart": {"type": "BigNumber", "hex": "0x6812ab70"},
                 "termLength": {"type": "BigNumber", "hex": hex(91 * 86400)},
                 "vAMMParams": {"currentFutureRate": {"type": "BigNumber", "hex": "0x81801f4f2e9dd9"}}},
                {"id": "0xg", "termStart": "bad"},
            ],
        },
        {"descriptor": {"id": "0xn", "sourceName": "Lido", "instrumentName": "stETH"}, "futures": []},
    ]  # fmt: skip
    markets, skipped = rho.parse_markets(payload)
    assert skipped == 2  # the unreadable future and the descriptor on an unknown venue
    (market,) = markets
    assert market.market_id == "0xf" and market.underlying_id == "0xm"
    assert market.term_start == dt.datetime(2025, 4, 30, 23) and market.maturity == dt.datetime(2025, 7, 30, 23)
    assert round(market.implied_apr * 100, 4) == 3.6451
    assert rho.parse_candles(
        [{"timestamp": "2025-05-01T00:00:00.000Z", "open": 364511439564712, "high": "364511439564712",
          "low": 364511439564712, "close": 364511439564712}]
    ) == [(dt.datetime(2025, 5, 1), 0.0364511439564712, 0.0364511439564712, 0.0364511439564712, 0.0364511439564712)]  # fmt: skip
