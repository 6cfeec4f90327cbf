"""End-to-end `funding-assets backfill` on real third-party settled funding (../shared/realdata).

Each fixture turns one real file into a replay directory (``<dir>/<venue>/*.csv|*.parquet``),
runs the CLI in-process over a short range and opens the warehouse read-only. The tests then
check strips against arithmetic done by hand on rates read straight from the source file:

- 8h venues: ``b_k = rate(W - k*8h) * 1095``;
- Hyperliquid (hourly): ``b0 = sum(the 8 hourly rates of the grid window) * 8/8 * 1095``, and
  an intraday row's ``b0 = sum(hours settled so far) * 8 / (number of them) * 1095``.

Timezone traps (DATA.md section 1): supervik's ``Date`` is local time UTC+3 for Binance and
Bybit, so 3 hours are subtracted; Binance and Hyperliquid times keep their ms jitter.
A backfill also materialises prints 41 days before ``--start`` (lookbacks), so every range
below starts at least that far inside the data (or accepts that early rows are absent).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from pathlib import Path

import duckdb
import polars as pl
import pytest

from funding_assets import cli
from funding_assets.settings import ENV_VARS

SHARED = Path(__file__).resolve().parents[2] / "shared"
REAL = SHARED / "realdata"
if not REAL.is_dir():
    pytest.skip(f"{REAL} (real third-party funding data) is not present", allow_module_level=True)

SUPERVIK_BINANCE_BTC = REAL / "supervik_2020_2023" / "BTC-USDT_binance_2020-01-01_2024-01-01_funding_history.csv"
SUPERVIK_BYBIT_ETH = REAL / "supervik_2020_2023" / "ETH-USDT_bybit_2021-01-01_2024-01-01_funding_history.csv"
YUCHENG_HL_BTC = REAL / "yuchengzhang966_2022_2025" / "hl_BTC_funding_rates.json"
ZUSHEN_DERIVED = REAL / "zushen168_2025_2026" / "DERIVED_btc_eth_funding.csv"

APR = 1095
TOL = 1e-12
H = dt.timedelta(hours=1)
H8 = dt.timedelta(hours=8)
SUPERVIK_UTC_OFFSET = dt.timedelta(hours=3)  # supervik's Date is local UTC+3 for binance/bybit
BUCKETS = [f"b{k}" for k in range(8)]
TABLES = ("raw_prints", "curve_snapshots", "curve_features", "pca_factors", "pca_fits", "spread_signals")
ENV = (*ENV_VARS, "DAGSTER_HOME")


# --------------------------------------------------------------------------- helpers


def _need(*paths: Path) -> None:
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        pytest.skip(f"real data file(s) missing: {', '.join(missing)}")


def utc_from_ms(ms: int) -> dt.datetime:
    """Epoch ms -> naive UTC datetime, exact to the millisecond (no float round trip)."""
    return dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=ms)


def epoch_ms(t: dt.datetime) -> int:
    return (t - dt.datetime(1970, 1, 1)) // dt.timedelta(milliseconds=1)


def iso_z(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def to_minute(t: dt.datetime) -> dt.datetime:
    """Nearest whole minute (settlement jitter is milliseconds)."""
    return (t + dt.timedelta(seconds=30)).replace(second=0, microsecond=0)


class Settled:
    """One real series as read from its source file: settlement minute -> (ts, rate text)."""

    def __init__(self, rows: list[tuple[dt.datetime, str]]) -> None:
        self.ts: dict[dt.datetime, dt.datetime] = {}
        self.text: dict[dt.datetime, str] = {}
        for ts, text in rows:
            minute = to_minute(ts)
            assert minute not in self.ts, f"two settlements at {minute} in the source"
            self.ts[minute] = ts
            self.text[minute] = text

    def rate(self, minute: dt.datetime) -> float:
        return float(self.text[minute])

    def hours_in_window(self, end: dt.datetime) -> list[dt.datetime]:
        """The hourly settlements of the 8h grid window ending at ``end``: end-7h .. end."""
        return [end - k * H for k in range(7, -1, -1)]

    def between(self, lo: dt.datetime, hi: dt.datetime) -> list[dt.datetime]:
        """Settlement minutes whose (jittered) ts falls in [lo, hi)."""
        return sorted(m for m, ts in self.ts.items() if lo <= ts < hi)


def read_supervik(path: Path) -> Settled:
    """supervik CSV -> UTC settlements (Date is local UTC+3: subtract 3 h; keep ms jitter)."""
    frame = pl.read_csv(path, infer_schema=False)
    rows = []
    for date, rate in frame.select("Date", "Funding Rate").iter_rows():
        fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in date else "%Y-%m-%d %H:%M:%S"
        rows.append((dt.datetime.strptime(date, fmt) - SUPERVIK_UTC_OFFSET, rate))
    return Settled(rows)


def read_yucheng(path: Path) -> Settled:
    """yuchengzhang JSON array of {coin, funding_rate (string), time (ms, jittered)}."""
    return Settled([(utc_from_ms(r["time"]), r["funding_rate"]) for r in json.loads(path.read_text())])


def read_zushen(venue: str, venue_symbol: str) -> Settled:
    frame = pl.read_csv(ZUSHEN_DERIVED, infer_schema=False).filter(
        (pl.col("venue") == venue) & (pl.col("venue_symbol") == venue_symbol)
    )
    return Settled(
        [(utc_from_ms(int(ms)), rate) for ms, rate in frame.select("settlement_ts_ms", "rate_raw").iter_rows()]
    )


def write_replay_csv(
    path: Path, symbol: str, series: Settled, ts_format: str, interval_hours: float | None = None
) -> None:
    """A replay CSV: ts = the jittered settlement time, funding_time = the same raw value
    (the pipeline snaps it to the minute), rate = the source text unchanged."""
    fmt = {"ms": lambda t: str(epoch_ms(t)), "iso": iso_z}[ts_format]
    data = {
        "symbol": [symbol] * len(series.ts),
        "ts": [fmt(t) for t in series.ts.values()],
        "funding_time": [fmt(t) for t in series.ts.values()],
        "rate": list(series.text.values()),
    }
    if interval_hours is not None:
        data["interval_hours"] = [str(interval_hours)] * len(series.ts)
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(data).write_csv(path)


def write_replay_parquet(path: Path, symbol: str, series: Settled) -> None:
    """A replay parquet file with epoch-ms integer timestamps and float rates."""
    stamps = [epoch_ms(t) for t in series.ts.values()]
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(
        {
            "symbol": [symbol] * len(stamps),
            "ts": pl.Series(stamps, dtype=pl.Int64),
            "funding_time": pl.Series(stamps, dtype=pl.Int64),
            "rate": [float(t) for t in series.text.values()],
        }
    ).write_parquet(path)


def backfill(home: Path, replay: Path, start: str, end: str, venues: str, coins: str) -> int:
    """``funding-assets backfill`` in-process with a clean FUNDING_ASSETS_* environment."""
    with pytest.MonkeyPatch.context() as mp:
        for var in ENV:
            mp.delenv(var, raising=False)
        mp.setenv("FUNDING_ASSETS_HOME", str(home))
        mp.setenv("FUNDING_ASSETS_SOURCE", f"replay:{replay}")
        return cli.main(["backfill", "--start", start, "--end", end, "--venues", venues, "--coins", coins])


class Warehouse:
    """Read-only queries against a backfilled warehouse."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self, sql: str, params: list | None = None) -> list[dict]:
        with duckdb.connect(str(self.path), read_only=True) as con:
            cur = con.execute(sql, params or [])
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]

    def snapshot(self, venue: str, symbol: str, kind: str, ts: dt.datetime) -> dict:
        got = self.rows(
            "SELECT * FROM funding.curve_snapshots WHERE venue = ? AND symbol = ? AND kind = ? AND ts = ?",
            [venue, symbol, kind, ts],
        )
        assert len(got) == 1, f"expected one {kind} snapshot {venue} {symbol} at {ts}, got {len(got)}"
        return got[0]

    def counts(self) -> dict[str, int]:
        return {t: self.rows(f"SELECT count(*) AS n FROM funding.{t}")[0]["n"] for t in TABLES}

    def digest(self) -> dict[str, str]:
        """sha256 of each table's rows in a fixed order."""
        out = {}
        with duckdb.connect(str(self.path), read_only=True) as con:
            for t in TABLES:
                rows = con.execute(f"SELECT * FROM funding.{t} ORDER BY ALL").fetchall()
                out[t] = hashlib.sha256(repr(rows).encode()).hexdigest()
        return out


def assert_close(got: float, want: float, what: str) -> None:
    assert got is not None, f"{what}: null"
    assert math.isclose(got, want, rel_tol=0.0, abs_tol=TOL), f"{what}: got {got!r}, hand arithmetic {want!r}"


def assert_8h_strip(snap: dict, series: Settled, w: dt.datetime) -> None:
    """b_k == rate(W - k*8h) * 1095 for an 8h venue, each rate read from the source file."""
    assert snap["ts"] == w and snap["funding_time"] == w
    assert snap["n_filled"] == 0
    assert snap["interval_hours"] == 8.0
    assert snap["annualisation"] == "apr"
    for k in range(8):
        assert_close(snap[f"b{k}"], series.rate(w - k * H8) * APR, f"{snap['venue']} {snap['symbol']} {w} b{k}")


def hourly_r8_apr(series: Settled, end: dt.datetime) -> float:
    """Grid window ending ``end`` of an hourly venue: sum of its 8 hourly rates * 8/8 * 1095."""
    hours = series.hours_in_window(end)
    assert all(h in series.text for h in hours), f"source lacks an hour of the window ending {end}"
    return sum(series.rate(h) for h in hours) * 8 / 8 * APR


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cex(tmp_path_factory) -> tuple[Warehouse, Settled, Settled]:
    """supervik Binance BTCUSDT (epoch-ms CSV) and Bybit ETHUSDT (ISO CSV), 2023-03-10..14."""
    _need(SUPERVIK_BINANCE_BTC, SUPERVIK_BYBIT_ETH)
    root = tmp_path_factory.mktemp("supervik")
    binance, bybit = read_supervik(SUPERVIK_BINANCE_BTC), read_supervik(SUPERVIK_BYBIT_ETH)
    write_replay_csv(root / "replay" / "binance" / "BTCUSDT.csv", "BTCUSDT", binance, "ms")
    write_replay_csv(root / "replay" / "bybit" / "ETHUSDT.csv", "ETHUSDT", bybit, "iso")
    rc = backfill(root / "home", root / "replay", "2023-03-10", "2023-03-14", "binance,bybit", "BTC,ETH")
    assert rc == 0
    return Warehouse(root / "home" / "warehouse.duckdb"), binance, bybit


@pytest.fixture(scope="module")
def hyperliquid(tmp_path_factory) -> tuple[Warehouse, Settled]:
    """yuchengzhang Hyperliquid BTC hourly (parquet, epoch-ms ints), 2024-06-05..09.

    The file is continuous from 2024-05-30 00:00 (after one of its pagination holes) to
    2024-06-19; the 41 days of lookback before the range reach into holes, so early rows
    are absent, which these tests accept."""
    _need(YUCHENG_HL_BTC)
    root = tmp_path_factory.mktemp("hl")
    hl = read_yucheng(YUCHENG_HL_BTC)
    write_replay_parquet(root / "replay" / "hyperliquid" / "BTC.parquet", "BTC", hl)
    rc = backfill(root / "home", root / "replay", "2024-06-05", "2024-06-09", "hyperliquid", "BTC")
    assert rc == 0
    return Warehouse(root / "home" / "warehouse.duckdb"), hl


@pytest.fixture(scope="module")
def overlap(tmp_path_factory) -> tuple[Warehouse, Settled, Settled, tuple]:
    """ZuShen DERIVED: Binance BTCUSDT (8h) and Hyperliquid BTC (1h), 2025-10-09..11."""
    _need(ZUSHEN_DERIVED)
    root = tmp_path_factory.mktemp("zushen")
    binance, hl = read_zushen("binance", "BTCUSDT"), read_zushen("hyperliquid", "BTC")
    write_replay_csv(root / "replay" / "binance" / "BTCUSDT.csv", "BTCUSDT", binance, "iso", interval_hours=8.0)
    write_replay_csv(root / "replay" / "hyperliquid" / "BTC.csv", "BTC", hl, "iso", interval_hours=1.0)
    args = (root / "home", root / "replay", "2025-10-09", "2025-10-11", "binance,hyperliquid", "BTC")
    assert backfill(*args) == 0
    return Warehouse(root / "home" / "warehouse.duckdb"), binance, hl, args


# --------------------------------------------------------------------------- 8h venues


def test_binance_btc_strip_matches_source_rates_on_two_windows(cex):
    wh, binance, _ = cex
    # 2023-03-11 00:00 UTC: Binance printed it at 00:00:00.011 (supervik local 03:00:00.011)
    jittered = dt.datetime(2023, 3, 11, 0, 0)
    assert binance.ts[jittered] == dt.datetime(2023, 3, 11, 0, 0, 0, 11_000)
    # 2023-03-10 08:00 UTC (local 11:00:00.000), the SVB week: a window settled without jitter
    exact = dt.datetime(2023, 3, 10, 8, 0)
    assert binance.ts[exact] == exact
    for w in (jittered, exact):
        assert_8h_strip(wh.snapshot("binance", "BTC", "roll", w), binance, w)

    # spelled out once: b0..b7 of 2023-03-11 00:00 are these eight settled rates * 1095
    snap = wh.snapshot("binance", "BTC", "roll", jittered)
    rates = [0.00002364, -0.00001647, 0.00000526, -0.00008895, 0.0001, 0.0001, 0.0001, 0.0001]
    assert [binance.text[jittered - k * H8] for k in range(8)] == [f"{r:.8f}" for r in rates]
    for k, r in enumerate(rates):
        assert_close(snap[f"b{k}"], r * 1095, f"b{k}")


def test_binance_btc_every_roll_in_range_is_the_source_rates(cex):
    wh, binance, _ = cex
    rolls = wh.rows(
        "SELECT * FROM funding.curve_snapshots WHERE venue = 'binance' AND symbol = 'BTC' AND kind = 'roll' "
        "AND ts >= '2023-03-10' AND ts < '2023-03-15' ORDER BY ts"
    )
    assert [r["ts"] for r in rolls] == [dt.datetime(2023, 3, 10) + k * H8 for k in range(15)]
    for snap in rolls:
        assert_8h_strip(snap, binance, snap["ts"])
    # 8h realised history has no intraday rows: the open window has no print until it settles
    assert not wh.rows("SELECT 1 FROM funding.curve_snapshots WHERE venue = 'binance' AND kind = 'intraday'")


def test_bybit_eth_strip_matches_source_rates(cex):
    wh, _, bybit = cex
    w = dt.datetime(2023, 3, 12, 8, 0)  # supervik local 2023-03-12 11:00:00
    assert bybit.ts[w] == w
    assert_8h_strip(wh.snapshot("bybit", "ETH", "roll", w), bybit, w)
    rolls = wh.rows(
        "SELECT * FROM funding.curve_snapshots WHERE venue = 'bybit' AND symbol = 'ETH' AND kind = 'roll' "
        "AND ts >= '2023-03-10' AND ts < '2023-03-15'"
    )
    assert len(rolls) == 15
    for snap in rolls:
        assert_8h_strip(snap, bybit, snap["ts"])


def test_raw_prints_keep_file_rates_minute_snapped_funding_time_and_ts_jitter(cex):
    wh, binance, bybit = cex
    for venue, symbol, venue_symbol, series in (
        ("binance", "BTC", "BTCUSDT", binance),
        ("bybit", "ETH", "ETHUSDT", bybit),
    ):
        got = wh.rows(
            "SELECT * FROM funding.raw_prints WHERE venue = ? AND symbol = ? AND ts >= '2023-03-10' "
            "AND ts < '2023-03-15' ORDER BY ts",
            [venue, symbol],
        )
        minutes = series.between(dt.datetime(2023, 3, 10), dt.datetime(2023, 3, 15))
        assert len(got) == len(minutes) == 15
        for row, minute in zip(got, minutes):
            assert row["ts"] == minute, "a realised print is filed under its settlement time"
            assert row["published_at"] == series.ts[minute], "published_at keeps the venue's ms jitter"
            assert row["funding_time"] == minute, "funding_time must be snapped to the minute"
            assert row["funding_time"].second == 0 and row["funding_time"].microsecond == 0
            # decimal fraction exactly as in the file: no percent scaling, no rounding
            assert row["rate"] == float(series.text[minute])
            assert abs(row["rate"]) < 0.003
            assert row["venue_symbol"] == venue_symbol
            assert row["interval_hours"] == 8.0
            assert row["kind"] == "realised"
    published = wh.rows("SELECT published_at FROM funding.raw_prints WHERE venue = 'binance'")
    jittered = [r for r in published if r["published_at"].microsecond]
    assert jittered, "supervik Binance times carry ms jitter; none survived"
    assert dt.datetime(2023, 3, 11, 0, 0, 0, 11_000) in {r["published_at"] for r in jittered}
    # every funding_time stored is a whole minute on the 00/08/16 grid (after the -3 h fix)
    off = wh.rows(
        "SELECT funding_time FROM funding.raw_prints WHERE extract(hour FROM funding_time) NOT IN (0, 8, 16) "
        "OR extract(microsecond FROM funding_time) <> 0"
    )
    assert off == []


# --------------------------------------------------------------------------- hyperliquid (hourly)


def test_hyperliquid_btc_roll_is_sum_of_hourly_rates(hyperliquid):
    wh, hl = hyperliquid
    w = dt.datetime(2024, 6, 7, 8, 0)  # hours 01:00..08:00, three of them off the 0.0000125 baseline
    hours = hl.hours_in_window(w)
    assert len({hl.text[h] for h in hours}) > 1
    snap = wh.snapshot("hyperliquid", "BTC", "roll", w)
    b0 = (0.0000125 * 5 + 0.000034681 + 0.0000514998 + 0.0000385441) * 1095
    assert [hl.text[h] for h in hours] == ["0.0000125"] * 5 + ["0.000034681", "0.0000514998", "0.0000385441"]
    assert_close(snap["b0"], b0, "b0")
    assert_close(snap["b0"], hourly_r8_apr(hl, w), "b0")
    for k in range(8):
        assert_close(snap[f"b{k}"], hourly_r8_apr(hl, w - k * H8), f"b{k}")
    assert snap["n_filled"] == 0 and snap["interval_hours"] == 1.0

    # every roll of the range: 3 a day, each bucket the hand sum of its window's hours
    rolls = wh.rows(
        "SELECT * FROM funding.curve_snapshots WHERE venue = 'hyperliquid' AND kind = 'roll' "
        "AND ts >= '2024-06-05' AND ts < '2024-06-10' ORDER BY ts"
    )
    assert [r["ts"] for r in rolls] == [dt.datetime(2024, 6, 5) + k * H8 for k in range(15)]
    for r in rolls:
        for k in range(8):
            assert_close(r[f"b{k}"], hourly_r8_apr(hl, r["ts"] - k * H8), f"{r['ts']} b{k}")


def test_hyperliquid_btc_intraday_b0_is_the_open_window_so_far(hyperliquid):
    wh, hl = hyperliquid
    t = dt.datetime(2024, 6, 7, 12, 30)  # open grid window ends 16:00; 09..12 have settled
    open_end = dt.datetime(2024, 6, 7, 16, 0)
    settled = [h for h in hl.hours_in_window(open_end) if hl.ts[h] <= t]
    assert settled == [dt.datetime(2024, 6, 7, h) for h in (9, 10, 11, 12)]
    assert [hl.text[h] for h in settled] == ["0.0000125", "0.0000125", "0.0000516539", "0.0000476051"]

    snap = wh.snapshot("hyperliquid", "BTC", "intraday", t)
    assert snap["funding_time"] == open_end
    b0 = (0.0000125 + 0.0000125 + 0.0000516539 + 0.0000476051) * 8 / 4 * 1095
    assert_close(snap["b0"], b0, "intraday b0")
    assert_close(snap["b0"], sum(hl.rate(h) for h in settled) * 8 / len(settled) * APR, "intraday b0")
    # buckets 1..7 are the closed windows before the open one
    for k in range(1, 8):
        assert_close(snap[f"b{k}"], hourly_r8_apr(hl, open_end - k * H8), f"intraday b{k}")
    assert snap["n_filled"] == 0

    # the default cadence is 10 minutes, on the clock grid
    day = wh.rows(
        "SELECT ts FROM funding.curve_snapshots WHERE venue = 'hyperliquid' AND kind = 'intraday' "
        "AND ts >= '2024-06-07 09:00' AND ts < '2024-06-07 16:00' ORDER BY ts"
    )
    stamps = [r["ts"] for r in day]
    assert stamps[0] == dt.datetime(2024, 6, 7, 9, 0)  # the 09:00 settlement is filed at 09:00
    assert all(b - a == dt.timedelta(minutes=10) for a, b in zip(stamps, stamps[1:]))
    assert all(s.minute % 10 == 0 and s.second == 0 for s in stamps)

    # as-of semantics: a settlement counts from its settlement time (12:00 sees 09..12,
    # although the file stamped the 12:00 print 12:00:00.038), 11:50 sees only 09..11
    noon = wh.snapshot("hyperliquid", "BTC", "intraday", dt.datetime(2024, 6, 7, 12, 0))
    assert hl.ts[dt.datetime(2024, 6, 7, 12)] > dt.datetime(2024, 6, 7, 12)
    assert_close(noon["b0"], b0, "12:00 b0")
    before = wh.snapshot("hyperliquid", "BTC", "intraday", dt.datetime(2024, 6, 7, 11, 50))
    assert_close(before["b0"], (0.0000125 + 0.0000125 + 0.0000516539) * 8 / 3 * 1095, "11:50 b0")


def test_hyperliquid_raw_prints_keep_jitter_and_hourly_interval(hyperliquid):
    wh, hl = hyperliquid
    got = wh.rows("SELECT * FROM funding.raw_prints WHERE ts >= '2024-06-07' AND ts < '2024-06-08' ORDER BY ts")
    minutes = hl.between(dt.datetime(2024, 6, 7), dt.datetime(2024, 6, 8))
    assert len(got) == len(minutes) == 24
    for row, minute in zip(got, minutes):
        assert row["ts"] == minute
        assert row["published_at"] == hl.ts[minute]
        assert row["funding_time"] == minute
        assert row["rate"] == float(hl.text[minute])
        assert row["interval_hours"] == 1.0  # the venue default when the file has no interval_hours
        assert row["venue_symbol"] == "BTC"


# --------------------------------------------------------------------------- cross-venue


def test_spread_binance_minus_hyperliquid_matches_snapshots_and_hand_arithmetic(overlap):
    wh, binance, hl, _ = overlap
    w = dt.datetime(2025, 10, 10, 16, 0)
    assert binance.text[w] == "1.013e-05"
    hl_hours = [
        "1.25e-05",
        "8.9718e-06",
        "-1.55185e-05",
        "6.802e-07",
        "1.03702e-05",
        "9.7508e-06",
        "1.01879e-05",
        "9.09e-06",
    ]
    assert [hl.text[h] for h in hl.hours_in_window(w)] == hl_hours
    b0_binance = 1.013e-05 * 1095
    b0_hl = sum(float(r) for r in hl_hours) * 8 / 8 * 1095

    snap_b = wh.snapshot("binance", "BTC", "roll", w)
    snap_h = wh.snapshot("hyperliquid", "BTC", "roll", w)
    assert_close(snap_b["b0"], b0_binance, "binance b0")
    assert_close(snap_h["b0"], b0_hl, "hyperliquid b0")
    assert_8h_strip(snap_b, binance, w)
    for k in range(8):
        assert_close(snap_h[f"b{k}"], hourly_r8_apr(hl, w - k * H8), f"hyperliquid b{k}")

    rows = wh.rows(
        "SELECT * FROM funding.spread_signals WHERE symbol = 'BTC' AND venue_a = 'binance' "
        "AND venue_b = 'hyperliquid' AND funding_time = ?",
        [w],
    )
    assert len(rows) == 1
    sig = rows[0]
    assert_close(sig["b0_a"], snap_b["b0"], "b0_a")
    assert_close(sig["b0_b"], snap_h["b0"], "b0_b")
    assert_close(sig["spread"], snap_b["b0"] - snap_h["b0"], "spread vs snapshots")
    assert_close(sig["spread"], b0_binance - b0_hl, "spread vs hand arithmetic")
    assert sig["n_venues"] == 2
    assert_close(sig["dispersion"], abs(b0_binance - b0_hl) / math.sqrt(2), "dispersion of two venues")
    assert sig["signal"] in (-1, 0, 1)


def test_spreads_exist_for_every_shared_window_of_the_range(overlap):
    wh, binance, hl, _ = overlap
    rows = wh.rows("SELECT * FROM funding.spread_signals WHERE symbol = 'BTC' ORDER BY funding_time")
    assert [r["funding_time"] for r in rows] == [dt.datetime(2025, 10, 9) + k * H8 for k in range(9)]
    for r in rows:
        w = r["funding_time"]
        assert (r["venue_a"], r["venue_b"]) == ("binance", "hyperliquid")
        assert_close(r["spread"], binance.rate(w) * APR - hourly_r8_apr(hl, w), f"spread {w}")


# --------------------------------------------------------------------------- idempotence (keep last)


def test_rerunning_the_same_backfill_adds_no_rows(overlap):
    wh, _, _, args = overlap
    before_counts, before = wh.counts(), wh.digest()
    assert before_counts["raw_prints"] > 0 and before_counts["spread_signals"] > 0
    for _ in range(2):
        assert backfill(*args) == 0
        assert wh.counts() == before_counts
        assert wh.digest() == before, "recomputing the same partitions must give the same bytes"
    dups = wh.rows(
        "SELECT venue, symbol, ts, funding_time, count(*) AS n FROM funding.raw_prints GROUP BY ALL HAVING count(*) > 1"
    )
    assert dups == []
    dups = wh.rows(
        "SELECT venue, symbol, kind, ts, count(*) AS n FROM funding.curve_snapshots GROUP BY ALL HAVING count(*) > 1"
    )
    assert dups == []
    dups = wh.rows(
        "SELECT symbol, venue_a, venue_b, funding_time, count(*) AS n FROM funding.spread_signals "
        "GROUP BY ALL HAVING count(*) > 1"
    )
    assert dups == []
