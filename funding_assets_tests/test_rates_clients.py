"""Rho and Boros clients against the simulator on 127.0.0.1: paging, range walking, errors.

The simulator's clock is frozen at :data:`NOW`; every value served comes from the funding
model, so the clients' frames are checked against :mod:`funding_assets.sim.rates` directly.
"""

from __future__ import annotations

import datetime as dt
import math

import httpx
import numpy as np
import polars as pl
import pytest

from funding_assets.clients.http import Budget, HttpClient, VenueUnreachable
from funding_assets.rates import CANDLE_SCHEMA, RatesError, boros, open_rates_source, rho
from funding_assets.rates.schema import Market
from funding_assets.sim import rates as sim_rates
from funding_assets.sim.model import FundingModel
from funding_assets.sim.server import Faults, SimClock, SimServer

NOW = dt.datetime(2025, 6, 15, 12, 34, 56)
SEED = FundingModel().seed
FREE = Budget(1e9, 1.0)


@pytest.fixture(scope="module")
def server():
    with SimServer(clock=SimClock(start=NOW, speed=0.0)) as sim:
        yield sim


def rho_client(server: SimServer, floating: bool = False) -> rho.RhoClient:
    base = server.rest_url("rho")
    return rho.RhoClient(
        http=HttpClient("rho", base, FREE, backoff_s=0.001),
        floating_http=HttpClient("rho", base + "/x/api/v1", FREE, backoff_s=0.001) if floating else None,
    )


def boros_client(server: SimServer, page_size: int = boros.PAGE_LIMIT) -> boros.BorosClient:
    http = HttpClient("boros", server.rest_url("boros"), FREE, backoff_s=0.001)
    return boros.BorosClient(http=http, page_size=page_size)


def live(markets: list[Market], venue: str = "binance", coin: str = "BTC") -> list[Market]:
    """The underlying's futures trading at NOW, nearest maturity first."""
    return [m for m in markets if m.venue == venue and m.symbol == coin and m.maturity > NOW]


def sim_future(market: Market) -> sim_rates.SimFuture:
    return next(f for f in sim_rates.futures(market.provider, SEED, NOW) if f.market_id == market.market_id)


def check_ohlc(frame: pl.DataFrame) -> None:
    assert frame.schema == pl.Schema(CANDLE_SCHEMA)
    assert frame.filter(
        (pl.col("low") > pl.min_horizontal("open", "close")) | (pl.col("high") < pl.max_horizontal("open", "close"))
    ).is_empty()


# --------------------------------------------------------------------------- Rho


def test_rho_lists_three_live_monthly_maturities_per_underlying(server):
    with rho_client(server) as client:
        markets = client.markets()
    assert client.skipped_markets == 0
    for venue in ("binance", "bybit", "okx"):
        for coin in ("BTC", "ETH"):
            upcoming = [
                m for m in markets if m.venue == venue and m.symbol == coin and m.term_start <= NOW < m.maturity
            ]
            assert [m.maturity for m in upcoming] == [
                dt.datetime(2025, 6, 27, 8),
                dt.datetime(2025, 7, 25, 8),
                dt.datetime(2025, 8, 29, 8),
            ]
            assert all(m.contract == "usdt" and (m.maturity - m.term_start).days in (84, 91, 98) for m in upcoming)
    assert {m.venue_symbol for m in markets if m.venue == "okx"} == {"BTC-USDT-SWAP", "ETH-USDT-SWAP"}
    assert all(m.maturity <= NOW or m.term_start <= NOW for m in markets)


def test_rho_walks_more_than_350_candles_in_steps(server):
    with rho_client(server) as client:
        market = live(client.markets())[1]
        start, end = dt.datetime(2025, 5, 1), dt.datetime(2025, 6, 16)
        before = server.requests["rho"]
        frame = client.candles(market, start, end, "1h")
        requests = server.requests["rho"] - before
    # the term started 2025-04-25; candles close by NOW (12:00 is still open)
    hours = (dt.datetime(2025, 6, 15, 12) - start) // dt.timedelta(hours=1)
    assert frame.height == hours > rho.CANDLE_LIMIT
    assert requests == math.ceil((end - start) / dt.timedelta(hours=1) / rho.CANDLE_LIMIT)
    assert frame["ts"].diff().drop_nulls().unique().to_list() == [dt.timedelta(hours=1)]
    assert frame["ts"][0] == start
    check_ohlc(frame)
    expected = sim_rates.implied_candles(SEED, sim_future(market), "1h", 1746057600, 1746057600, NOW)[0]
    first = frame.row(0, named=True)
    assert [first[c] for c in ("open", "high", "low", "close")] == pytest.approx(expected[1:5], abs=1e-16)
    assert frame["underlying_apr"].null_count() == frame.height  # no Rho X base URL given


def test_rho_candles_do_not_depend_on_how_the_range_is_cut(server):
    with rho_client(server) as client:
        market = live(client.markets())[0]
        whole = client.candles(market, dt.datetime(2025, 6, 1), dt.datetime(2025, 6, 3), "5m")
        halves = pl.concat(
            [
                client.candles(market, dt.datetime(2025, 6, 1), dt.datetime(2025, 6, 2, 7, 33), "5m"),
                client.candles(market, dt.datetime(2025, 6, 2, 7, 33), dt.datetime(2025, 6, 3), "5m"),
            ]
        )
    assert whole.height == 2 * 288
    assert whole.equals(halves)


def test_rho_quote_is_the_last_closed_minute(server):
    with rho_client(server) as client:
        market = live(client.markets())[2]
        minute = client.candles(market, NOW - dt.timedelta(minutes=5), NOW, "1m")
    assert minute["ts"][-1] == dt.datetime(2025, 6, 15, 12, 33)
    assert market.implied_apr == pytest.approx(minute["close"][-1], abs=1e-16)


def test_rho_error_body_is_a_clear_error(server):
    with rho_client(server) as client:
        market = live(client.markets())[0]
        unknown = Market(**{**market.__dict__, "market_id": "0xnot-a-future"})
        with pytest.raises(RatesError, match=r"rho candles of future 0xnot-a-future .*2025-05-01 00:00 .*not found"):
            client.candles(unknown, dt.datetime(2025, 5, 1), dt.datetime(2025, 5, 2))


def test_rho_more_than_350_candles_in_one_request_is_an_error_body(server, monkeypatch):
    answer = httpx.get(
        server.rest_url("rho") + rho.CANDLES_PATH,
        params={"futureId": "0x1", "from": 1748736000, "to": 1748736000 + 350 * 3600, "interval": "1h"},
    )
    assert answer.status_code == 200 and "351 > 350" in answer.json()["error"]
    monkeypatch.setattr(rho, "CANDLE_LIMIT", 400)  # a client that asks too much at once
    with rho_client(server) as client:
        market = live(client.markets())[0]
        with pytest.raises(RatesError, match=r"Too many candles requested: 400 > 350"):
            client.candles(market, dt.datetime(2025, 4, 1), dt.datetime(2025, 6, 1))


def test_rho_x_floating_candles_fill_underlying_apr(server):
    with rho_client(server, floating=True) as client:
        market = live(client.markets(), "okx", "ETH")[0]
        frame = client.candles(market, dt.datetime(2025, 6, 10), dt.datetime(2025, 6, 12), "1h")
        floating = client.floating_candles(market.underlying_id, dt.datetime(2025, 6, 10), dt.datetime(2025, 6, 12))
    assert frame.height == 48 and frame["underlying_apr"].null_count() == 0
    assert frame["underlying_apr"].to_list() == floating["close"].to_list()
    # each is the APR of a settlement the model published
    prints = FundingModel(SEED).settlements(
        "okx", "ETH", dt.datetime(2025, 6, 8), dt.datetime(2025, 6, 12), contract="usdt"
    )
    published = set(np.round(prints["rate"].to_numpy() * 8760 / prints["interval_hours"].to_numpy(), 10).tolist())
    assert set(frame["underlying_apr"].to_list()) <= published


def test_rho_x_errors_are_clear(server):
    with rho_client(server, floating=True) as client:
        with pytest.raises(RatesError, match=r"rho X floating-rate candles of market 0xnope .*404.*not found"):
            client.floating_candles("0xnope", dt.datetime(2025, 6, 1), dt.datetime(2025, 6, 2))
        with pytest.raises(Exception, match="1w"):
            client.floating_candles("0xnope", dt.datetime(2025, 6, 1), dt.datetime(2025, 6, 2), "1w")


# --------------------------------------------------------------------------- Boros


def test_boros_pages_through_the_markets(server):
    with boros_client(server) as whole, boros_client(server, page_size=7) as paged:
        everything = whole.markets()
        before = server.requests["boros"]
        pages = paged.markets()
        requests = server.requests["boros"] - before
    total = len(sim_rates.futures("boros", SEED, NOW))
    assert len(everything) == total > 7
    assert pages == everything
    assert requests == total // 7 + 1  # the last page is short (or empty)
    assert {(m.venue, m.venue_symbol) for m in everything} == {
        ("binance", "BTCUSDT"), ("binance", "ETHUSDT"), ("bybit", "BTCUSDT"), ("bybit", "ETHUSDT")
    }  # fmt: skip
    assert all(m.term_start is None for m in everything)


def test_boros_refuses_pages_over_100(server):
    answer = httpx.get(server.rest_url("boros") + boros.MARKETS_PATH, params={"limit": 101})
    assert answer.status_code == 400
    client = boros_client(server)
    client.page_size = 101  # past the constructor's check, to see the server's answer surface
    with pytest.raises(RatesError, match=r"boros markets \(skip=0, limit=101\).*HTTP 400"):
        client.markets()


def test_boros_chart_candles(server):
    with boros_client(server) as client:
        market = live(client.markets(), "bybit", "ETH")[0]
        frame = client.candles(market, dt.datetime(2025, 6, 14), dt.datetime(2025, 6, 16), "5m")
        daily = client.candles(market, dt.datetime(2025, 3, 1), dt.datetime(2025, 6, 16), "1d")
    assert frame.height == (dt.datetime(2025, 6, 15, 12, 30) - dt.datetime(2025, 6, 14)) // dt.timedelta(minutes=5)
    check_ohlc(frame)
    assert frame["underlying_apr"].null_count() == 0
    future = sim_future(market)
    assert daily["ts"][0] == future.term_start.replace(hour=0)  # the day the term starts, from 08:00
    assert daily["ts"][-1] == dt.datetime(2025, 6, 14)  # the 15th has not closed
    check_ohlc(daily)
    # a day's range holds its 5-minute candles
    day = frame.filter(pl.col("ts").dt.date() == dt.date(2025, 6, 14))
    row = daily.filter(pl.col("ts") == dt.datetime(2025, 6, 14)).row(0, named=True)
    assert row["high"] == day["high"].max() and row["low"] == day["low"].min()
    assert row["open"] == day["open"][0] and row["close"] == day["close"][-1]


def test_boros_matured_market_ends_at_maturity(server):
    with boros_client(server) as client:
        matured = [m for m in client.markets() if m.maturity == dt.datetime(2025, 5, 30, 8)][0]
        frame = client.candles(matured, dt.datetime(2025, 5, 29), dt.datetime(2025, 6, 2), "1h")
    assert frame["ts"][-1] == dt.datetime(2025, 5, 30, 7)


def test_boros_unknown_interval_is_refused_before_asking(server):
    with boros_client(server) as client:
        market = client.markets()[0]
        with pytest.raises(Exception, match="15m"):
            client.candles(market, dt.datetime(2025, 6, 1), dt.datetime(2025, 6, 2), "15m")


# --------------------------------------------------------------------------- faults and the sources


def test_clients_ride_out_faults_and_get_the_same_candles(server):
    faulty = SimServer(
        clock=SimClock(start=NOW, speed=0.0), faults=Faults(seed=3, error_rate=0.25, malformed_rate=0.1, drop_rate=0.05)
    ).start()
    try:
        with rho_client(server) as clean, rho_client(faulty) as shaky:
            market = live(clean.markets())[1]
            assert live(shaky.markets())[1] == market
            want = clean.candles(market, dt.datetime(2025, 5, 1), dt.datetime(2025, 6, 1), "1h")
            got = shaky.candles(market, dt.datetime(2025, 5, 1), dt.datetime(2025, 6, 1), "1h")
            assert shaky.http.retries > 0
        with boros_client(server) as clean_b, boros_client(faulty, page_size=10) as shaky_b:
            assert shaky_b.markets() == clean_b.markets()
    finally:
        faulty.stop()
    assert got.equals(want)


def test_sim_source_serves_both_providers():
    source = open_rates_source("sim")
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2)
    for provider in ("rho", "boros"):
        markets = source.markets(provider)
        trading = [m for m in markets if m.maturity > dt.datetime.combine(day, dt.time(23))]
        market = next(m for m in trading if m.term_start is None or m.term_start < dt.datetime.combine(day, dt.time()))
        frame = source.candles(provider, market.market_id, day, day)
        assert frame.height == 24 and frame["source"].unique().to_list() == ["sim"]
        assert frame["underlying_apr"].null_count() == 0
        assert frame["ts"].dt.date().unique().to_list() == [day]


def test_unknown_source_setting_is_refused():
    with pytest.raises(Exception, match="FUNDING_ASSETS_SOURCE"):
        open_rates_source("nowhere")


def test_real_services_unreachable_say_how_to_work_offline():
    source = open_rates_source("exchanges")
    with pytest.raises(
        VenueUnreachable, match=r"boros: cannot reach api.boros.finance:443 .*FUNDING_ASSETS_SOURCE=sim"
    ):
        source.markets("boros")
