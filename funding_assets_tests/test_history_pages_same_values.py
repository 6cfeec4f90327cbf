"""The fast history paths serve and parse exactly what the row-by-row ones did.

The simulator builds its premium-index pages column by column (numpy, JSON text assembled
without a Python object per row) and the clients decode them with orjson into columns; the
rate-market walk asks only for windows inside a future's term. Each is checked here against
the computation it replaced, kept below as the reference: same samples, same payload values,
same parsed rows.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funding_assets.clients import _instrument as client_instrument
from funding_assets.clients import premium_frame
from funding_assets.clients.http import HttpClient, page_json
from funding_assets.premium import FORMULAS, PREMIUM_SCHEMA
from funding_assets.prints import MS, TS
from funding_assets.sim import model as sim_model
from funding_assets.sim import universe
from funding_assets.sim.model import EPOCH_MS, MINUTE_DECIMALS, MINUTE_MS, FundingModel
from funding_assets.sim.server import Request, SimClock, SimServer
from funding_assets.sim.venues import binance as binance_sim
from funding_assets.sim.venues import okx as okx_sim
from funding_assets.sim.venues import wire
from funding_assets.sim.venues.klines import at_ms, now_ms, to_ms

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "fixtures"
needs_shared = pytest.mark.skipif(not FIXTURES.is_dir(), reason="/work/shared fixtures absent")

MODEL = FundingModel()
NOW = dt.datetime(2026, 11, 28, 12, 0)
SPAN_MINUTES = (dt.datetime(2026, 11, 28) - dt.datetime(2020, 1, 1)) // dt.timedelta(minutes=1)
FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
#: Instruments whose pages are compared: majors, and alts listed (and delisted) inside the span.
PAGED = {
    "binance": [("BTC", "usdt"), ("ETH", "inverse"), ("ACT", "usdt"), ("1INCH", "usdt")],
    "bybit": [("BTC", "usdt"), ("ETH", "usdc"), ("ACT", "usdt")],
    "okx": [("BTC", "usdt"), ("AGIX", "usdt"), ("1INCH", "usdt")],
}


@pytest.fixture(scope="module")
def server():
    with SimServer(clock=SimClock(NOW, speed=0.0)) as running:
        yield running


# --- the references: the row-by-row code the fast paths replaced ---------------------------


def old_premium_minutes(venue: str, coin: str, start: dt.datetime, end: dt.datetime, contract: str) -> pl.DataFrame:
    inst = MODEL.instrument(venue, coin, contract)
    start_ms, end_ms = sim_model._range_ms(start, end)
    first = max(0, -(-(start_ms - EPOCH_MS) // MINUTE_MS))
    stop = max(first, -(-(end_ms - EPOCH_MS) // MINUTE_MS))
    if stop == first:
        return pl.DataFrame({"ts": pl.Series([], dtype=TS), "premium": pl.Series([], dtype=pl.Float64)})
    hour_lo, hour_hi = first // 60, (stop - 1) // 60
    block_lo, block_hi = hour_lo // sim_model.BLOCK_HOURS, hour_hi // sim_model.BLOCK_HOURS
    blocks = sim_model._block_intervals(MODEL.seed, inst.key)[block_lo : block_hi + 1]
    ends, lengths = sim_model._schedule(blocks, block_lo)
    lo, hi = np.searchsorted(ends, [hour_lo, hour_hi], side="right")
    samples = np.concatenate([sim_model._window_samples(MODEL.seed, inst.key, int(ends[w])) for w in range(lo, hi + 1)])
    offset = first - int(ends[lo] - lengths[lo]) * 60
    minutes = np.arange(first, stop, dtype=np.int64)
    out = pl.DataFrame(
        {"ts": pl.Series(EPOCH_MS + minutes * MINUTE_MS).cast(TS), "premium": samples[offset : offset + minutes.size]}
    )
    return out.filter(sim_model._listed(inst, pl.col("ts") + pl.duration(minutes=1)))


def old_candles(feed, inst, minutes: int, lo_ms, hi_ms, limit: int, *, newest: bool) -> pl.DataFrame:
    width = minutes * MINUTE_MS
    known_end = min(now_ms(feed) // MINUTE_MS * MINUTE_MS, sim_model.HORIZON_MS)
    first_open = EPOCH_MS // width * width
    if lo_ms is not None:
        first_open = max(first_open, -(-lo_ms // width) * width)
    last_open = (known_end - 1) // width * width
    if hi_ms is not None:
        last_open = min(last_open, hi_ms // width * width)
    if newest:
        first_open = max(first_open, last_open - (limit - 1) * width)
    else:
        last_open = min(last_open, first_open + (limit - 1) * width)
    columns = ("open_ms", "open", "high", "low", "close", "samples")
    if last_open < first_open:
        return pl.DataFrame(schema={c: pl.Int64 if c in ("open_ms", "samples") else pl.Float64 for c in columns})
    samples = old_known_minutes(feed, inst, first_open, last_open + width)
    return (
        samples.group_by((pl.col("ts").dt.epoch(MS) // width * width).alias("open_ms"), maintain_order=True)
        .agg(
            open=pl.col("premium").first(),
            high=pl.col("premium").max(),
            low=pl.col("premium").min(),
            close=pl.col("premium").last(),
            samples=pl.len().cast(pl.Int64),
        )
        .sort("open_ms")
    )


def old_known_minutes(feed, inst, lo_ms: int, hi_ms: int) -> pl.DataFrame:
    hi_ms = min(hi_ms, now_ms(feed) // MINUTE_MS * MINUTE_MS, sim_model.HORIZON_MS)
    lo_ms = max(lo_ms, EPOCH_MS)
    if inst.listed_at is not None:
        lo_ms = max(lo_ms, to_ms(inst.listed_at))
    if inst.delisted_at is not None:
        hi_ms = min(hi_ms, to_ms(inst.delisted_at))
    venue, coin, contract = inst.key
    return old_premium_minutes(venue, coin, at_ms(lo_ms), at_ms(max(lo_ms, hi_ms)), contract)


def old_with_weighted_sum(units: np.ndarray, total: int) -> np.ndarray:
    n = units.size
    weights = np.arange(1, n + 1, dtype=np.int64)
    rest = total - int(weights @ units)
    common = int(np.trunc(rest / int(weights.sum())))
    units = units + common
    rest -= common * int(weights.sum())
    step = 1 if rest > 0 else -1
    for i in range(n, 0, -1):
        if abs(rest) >= i:
            units[i - 1] += step
            rest -= step * i
    return units


# --- the simulator: the same samples, the same payloads -------------------------------------

listed = st.sampled_from(
    [(i.venue, i.symbol, i.contract) for v in sim_model.MINUTE_VENUES for i in universe.listing(v)][::7]
)


@FEW
@given(listed, st.integers(0, SPAN_MINUTES), st.integers(0, 3 * 1440), st.integers(0, 59_999))
def test_premium_minutes_are_the_samples_of_each_window(key, first_minute, minutes, offset_ms):
    venue, coin, contract = key
    start = dt.datetime(2020, 1, 1) + dt.timedelta(minutes=first_minute, milliseconds=offset_ms)
    end = start + dt.timedelta(minutes=minutes)
    got = MODEL.premium_minutes(venue, coin, start, end, contract=contract)
    want = old_premium_minutes(venue, coin, start, end, contract)
    assert got.schema == want.schema
    assert got.equals(want)


def test_premium_minutes_start_and_stop_with_the_listing():
    agix = MODEL.instrument("okx", "AGIX")
    for edge in (agix.listed_at, agix.delisted_at):
        start, end = edge - dt.timedelta(minutes=90), edge + dt.timedelta(minutes=90)
        got = MODEL.premium_minutes("okx", "AGIX", start, end)
        assert 0 < got.height < 180
        assert got.equals(old_premium_minutes("okx", "AGIX", start, end, agix.contract))


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 480), st.integers(0, 2**32 - 1), st.integers(-3, 3))
def test_moving_units_to_a_weighted_sum_is_the_greedy_walk(n, seed, turns):
    units = np.random.default_rng(seed).integers(-(10**6), 10**6, n)
    total = int(np.arange(1, n + 1) @ units) + turns * n * (n + 1) // 2 + seed % (n * (n + 1) // 2 + 1)
    assert np.array_equal(sim_model._with_weighted_sum(units.copy(), total), old_with_weighted_sum(units, total))


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(sorted(FORMULAS)), st.lists(st.floats(-0.01, 0.01, allow_subnormal=False), min_size=1, max_size=500)
)
def test_one_window_average_adds_as_the_windowed_one(venue, premiums):
    f = FORMULAS[venue]
    p = np.array(premiums)
    assert np.array_equal(f.running_averages(p), f.running_averages(p, np.zeros(p.size, dtype=np.int64)))


def page_times(draw_minute: int, span: int) -> tuple[int, int]:
    start = EPOCH_MS + draw_minute * MINUTE_MS
    return start, start + span * MINUTE_MS


@FEW
@given(
    st.sampled_from(PAGED["binance"]),
    st.integers(0, SPAN_MINUTES),
    st.sampled_from(["1m", "3m", "5m", "1h", "8h"]),
    st.integers(1, 1500),
    st.booleans(),
)
def test_binance_premium_klines_serve_the_same_candles(server, series, minute, interval, limit, forward):
    sim = server.sims["binance"]
    inst = MODEL.instrument("binance", *series)
    start, end = page_times(minute, 3000)
    query = {"symbol": inst.venue_symbol, "interval": interval, "limit": str(limit), "endTime": str(end)}
    if forward:
        query["startTime"] = str(start)
    path = ("/dapi/v1" if inst.contract == "inverse" else "/fapi/v1") + "/premiumIndexKlines"
    got = json.loads(sim.rest(Request("GET", path, query, b"")).body)
    width = binance_sim.KLINE_MINUTES[interval]
    frame = old_candles(sim.feed, inst, width, start if forward else None, end, limit, newest=not forward)
    want = [
        [o_ms, *(binance_sim.rate_text(x) for x in (o, h, lo, c)), "0", o_ms + width * MINUTE_MS - 1, "0"]
        + [n * binance_sim.SAMPLES_PER_MINUTE, "0", "0", "0"]
        for o_ms, o, h, lo, c, n in frame.iter_rows()
    ]
    assert got == want


@FEW
@given(
    st.sampled_from(PAGED["bybit"]),
    st.integers(0, SPAN_MINUTES),
    st.sampled_from(["1", "5", "60"]),
    st.integers(1, 1000),
)
def test_bybit_premium_klines_serve_the_same_candles(server, series, minute, interval, limit):
    sim = server.sims["bybit"]
    inst = MODEL.instrument("bybit", *series)
    start, end = page_times(minute, 2000)
    query = {"category": "linear", "symbol": inst.venue_symbol, "interval": interval, "limit": str(limit)}
    got = json.loads(
        sim.rest(
            Request("GET", "/v5/market/premium-index-price-kline", query | {"start": str(start), "end": str(end)}, b"")
        ).body
    )
    frame = old_candles(sim.feed, inst, int(interval), start, end, limit, newest=True)
    want = [[str(o_ms), *(f"{x:.6f}" for x in (o, h, lo, c))] for o_ms, o, h, lo, c, _ in frame.reverse().iter_rows()]
    assert got["retCode"] == 0 and got["result"]["list"] == want


@FEW
@given(
    st.sampled_from(PAGED["okx"]),
    st.integers(0, SPAN_MINUTES),
    st.integers(1, 100),
    st.one_of(st.none(), st.integers(0, 200)),
)
def test_okx_premium_history_serves_the_same_rows(server, series, minute, limit, before_minutes):
    sim = server.sims["okx"]
    inst = MODEL.instrument("okx", *series)
    after, _ = page_times(minute, 0)
    query = {"instId": inst.venue_symbol, "after": str(after), "limit": str(limit)}
    before = None if before_minutes is None else after - before_minutes * MINUTE_MS
    if before is not None:
        query["before"] = str(before)
    got = json.loads(sim.rest(Request("GET", "/api/v5/public/premium-history", query, b"")).body)
    upper = min(after, now_ms(sim.feed) + 1)
    top = (upper - MINUTE_MS) // MINUTE_MS * MINUTE_MS
    samples = old_known_minutes(sim.feed, inst, top - limit * MINUTE_MS, top + MINUTE_MS)
    stamps = okx_sim.premium_stamps(samples["ts"].dt.epoch(MS).to_numpy())
    rows = samples.with_columns(stamp=pl.Series(stamps)).filter(pl.col("stamp") < upper)
    if before is not None:
        rows = rows.filter(pl.col("stamp") > before)
    want = [
        {"instId": inst.venue_symbol, "premium": okx_sim.decimal_string(p), "ts": str(s)}
        for p, s in rows.select("premium", "stamp").reverse().head(limit).iter_rows()
    ]
    assert got["code"] == "0" and got["data"] == want


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(MINUTE_DECIMALS.items())),
    st.lists(st.integers(-(10**10), 10**10), max_size=60),
    st.lists(st.integers(-(2**62), 2**62), max_size=60),
)
def test_column_text_is_json_dumps_of_the_rows(grid, units, numbers):
    venue, places = grid
    one = {"binance": binance_sim.rate_text, "bybit": lambda x: f"{x:.6f}", "okx": okx_sim.decimal_string}[venue]
    shown = {"binance": 8, "bybit": 6, "okx": 16}[venue]
    values = np.array(units, dtype=np.float64) / 10**places
    values[::5] *= 1.0000001  # off the grid: formatted one by one
    values[values == 0] = -0.0
    rows = min(len(units), len(numbers))
    text = wire.array_of_rows(
        [
            wire.integers(np.array(numbers[:rows], dtype=np.int64)),
            wire.literal(",", rows),
            wire.quoted(wire.decimals(values[:rows], places, shown, one)),
        ],
        rows,
    )
    want = [[n, one(float(v))] for n, v in zip(numbers[:rows], values[:rows].tolist())]
    assert text == json.dumps(want, separators=(",", ":")).encode()


# --- the clients: the same values from the same bodies --------------------------------------


def old_premium_frame(venue, coin, points, start_ms, end_ms) -> pl.DataFrame:
    inst = client_instrument(venue, coin)
    latest = {ts_ms: premium for ts_ms, premium in points if start_ms < ts_ms <= end_ms}
    times = sorted(latest)
    columns = {
        "venue": [venue] * len(times),
        "symbol": [inst.symbol] * len(times),
        "contract": [inst.contract] * len(times),
        "venue_symbol": [inst.venue_symbol] * len(times),
        "ts": pl.Series(times, dtype=pl.Int64).cast(TS),
        "premium": pl.Series([latest[t] for t in times], dtype=pl.Float64),
    }
    return pl.DataFrame({k: columns[k] for k in PREMIUM_SCHEMA}, schema=PREMIUM_SCHEMA)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 40), st.floats(-1, 1, allow_nan=False)), max_size=60),
    st.integers(-5, 45),
    st.integers(-5, 45),
)
def test_premium_frame_keeps_the_last_point_of_each_instant(points, lo, hi):
    base = 1_700_000_000_000
    stamped = [(base + t * MINUTE_MS, p) for t, p in points]
    start_ms, end_ms = base + lo * MINUTE_MS, base + hi * MINUTE_MS
    got = premium_frame("okx", "BTC", [t for t, _ in stamped], [p for _, p in stamped], start_ms, end_ms)
    assert got.equals(old_premium_frame("okx", "BTC", stamped, start_ms, end_ms))


@needs_shared
def test_fixtures_decode_to_the_same_values():
    bodies = sorted(FIXTURES.rglob("*.json"))
    assert bodies
    for path in bodies:
        content = path.read_bytes()
        response = httpx.Response(200, content=content)
        assert page_json(response) == json.loads(content), path.name


def test_bodies_orjson_refuses_are_decoded_as_before():
    for content in (b'{"rate": NaN}', b"[1e400]", b'\xef\xbb\xbf{"a": 1}'):
        got, want = page_json(httpx.Response(200, content=content)), httpx.Response(200, content=content).json()
        assert repr(got) == repr(want)
    with pytest.raises(ValueError):
        page_json(httpx.Response(200, content=b'{"cut'))


@needs_shared
def test_hyperliquid_premium_rows_of_a_fixture_are_the_same():
    from funding_assets.clients.hyperliquid import snap_hour

    payload = json.loads((FIXTURES / "hyperliquid" / "hl_fundingHistory_BTC_start1681923833000_raw.json").read_bytes())
    points = [(snap_hour(int(r["time"])), float(r["premium"])) for r in payload]
    start_ms, end_ms = min(t for t, _ in points) - 1, max(t for t, _ in points)
    got = premium_frame("hyperliquid", "BTC", [t for t, _ in points], [p for _, p in points], start_ms, end_ms)
    assert got.height == len({t for t, _ in points})
    assert got.equals(old_premium_frame("hyperliquid", "BTC", points, start_ms, end_ms))


# --- the rate markets: the walk asks only inside the term, for the same candles -------------


@pytest.mark.parametrize("provider", ["rho", "boros"])
def test_a_future_walked_over_years_gives_its_term_candles_with_fewer_requests(server, provider, monkeypatch):
    from funding_assets.rates import boros, rho
    from funding_assets.rates.sources import RHOX_SIM_PREFIX
    from funding_assets.sources.venues import UNLIMITED

    url = server.rest_url(provider)
    if provider == "rho":
        client = rho.RhoClient(
            http=HttpClient(provider, url, UNLIMITED),
            floating_http=HttpClient(provider, url + RHOX_SIM_PREFIX, UNLIMITED),
        )
    else:
        client = boros.BorosClient(http=HttpClient(provider, url, UNLIMITED))
    market = next(
        m for m in client.markets() if m.venue == "bybit" and m.maturity.year == 2025 and m.maturity.month == 6
    )
    start, end = dt.datetime(2024, 1, 1), dt.datetime(2026, 1, 1)

    def walked() -> tuple[pl.DataFrame, int]:
        before = server.requests[provider]
        return client.candles(market, start, end, "1h"), server.requests[provider] - before

    narrow, narrow_requests = walked()
    monkeypatch.setattr(rho if provider == "rho" else boros, "term_range", lambda start, end, *_: (start, end))
    wide, wide_requests = walked()
    assert narrow.height > 1500 and narrow.equals(wide)
    assert narrow_requests < wide_requests


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_a_json_float_apr_is_read_as_through_its_decimal(value):
    from decimal import Decimal

    from funding_assets.rates.units import decimal_apr

    want = float(Decimal(repr(value))) if np.isfinite(value) else None
    if want is None:
        with pytest.raises(ValueError):
            decimal_apr(value)
    else:
        assert repr(decimal_apr(value)) == repr(want)


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(dt.datetime(2016, 1, 1), dt.datetime(2099, 1, 1)),
    st.sampled_from(["Z", "+00:00", "-05:30", "+09:00", ""]),
    st.sampled_from(["seconds", "milliseconds", "microseconds"]),
)
def test_iso_times_read_as_utc_to_the_millisecond(when, zone, timespec):
    from funding_assets.rates.units import iso_utc

    aware = dt.datetime.fromisoformat(when.isoformat(timespec=timespec) + zone)
    utc = aware.astimezone(dt.UTC).replace(tzinfo=None) if aware.tzinfo else aware
    want = utc.replace(microsecond=utc.microsecond // 1000 * 1000)
    if not dt.datetime(2015, 1, 1) <= want < dt.datetime(2100, 1, 1):
        return
    assert iso_utc(when.isoformat(timespec=timespec) + zone) == want
