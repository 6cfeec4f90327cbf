"""The ``replay:<dir>`` fixed-rate source: the documented file format, and every bad row
refused naming its file and line before anything is returned."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from funding_assets.errors import FundingInputError
from funding_assets.rates import CANDLE_SCHEMA, open_rates_source
from funding_assets.rates.sources import ReplayRatesSource

HEADER = "market_id,venue,symbol,term_start,maturity,interval,ts,open,high,low,close,underlying_apr"
GOOD = [
    "0xf1,Binance,BTCUSDT,2025-04-30T23:00:00Z,2025-07-30T23:00:00Z,1h,2025-05-01T00:00:00Z,0.0364,0.0370,0.0360,0.036451,0.05",
    "0xf1,binance,BTCUSDT,2025-04-30T23:00:00Z,2025-07-30T23:00:00Z,1h,1746061200000,0.036451,0.0366,0.0362,0.0365,",
    "0xf1,binance,BTCUSDT,2025-04-30 23:00,1753916400000,,2025-05-01 02:00,,,,0.0366,",
    "0xe2,okx,BTCUSDT,,2025-08-29,1d,2025-05-01,,,,0.041,0.049",
]  # fmt: skip


def write(folder: Path, name: str, lines: list[str], header: str = HEADER) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


@pytest.fixture
def replay(tmp_path) -> Path:
    write(tmp_path / "rho", "candles.csv", GOOD)
    return tmp_path


def test_good_file_reads_into_the_candle_frame(replay):
    source = open_rates_source(f"replay:{replay}")
    markets = source.markets("rho")
    assert [(m.market_id, m.venue, m.symbol, m.contract, m.venue_symbol) for m in markets] == [
        ("0xf1", "binance", "BTC", "usdt", "BTCUSDT"),
        ("0xe2", "okx", "BTC", "usdt", "BTC-USDT-SWAP"),
    ]
    first = markets[0]
    assert first.term_start == dt.datetime(2025, 4, 30, 23) and first.maturity == dt.datetime(2025, 7, 30, 23)
    assert markets[1].term_start is None and markets[1].maturity == dt.datetime(2025, 8, 29)
    frame = source.candles("rho", "0xf1", dt.date(2025, 5, 1), dt.date(2025, 5, 1))
    assert frame.schema == pl.Schema(CANDLE_SCHEMA)
    assert frame["ts"].to_list() == [dt.datetime(2025, 5, 1, h) for h in range(3)]
    assert frame["close"].to_list() == [0.036451, 0.0365, 0.0366]
    assert (
        frame.row(2, named=True)["open"] == frame.row(2, named=True)["low"] == 0.0366
    )  # open/high/low default to close
    assert frame["underlying_apr"].to_list() == [0.05, None, None]
    assert frame["source"].unique().to_list() == ["replay"]
    daily = source.candles("rho", markets[1], dt.datetime(2025, 5, 1), dt.datetime(2025, 5, 2), "1d")
    assert daily.height == 1 and daily["interval"][0] == "1d"
    assert source.candles("rho", "0xf1", dt.date(2025, 5, 2), dt.date(2025, 5, 9)).is_empty()
    assert source.markets("boros") == []  # no boros folder: no markets


def test_parquet_with_typed_columns(tmp_path):
    frame = pl.DataFrame(
        {
            "market_id": ["7"],
            "venue": ["bybit"],
            "symbol": ["ETH"],
            "maturity": [dt.datetime(2025, 9, 26, 8)],
            "ts": pl.Series([dt.datetime(2025, 6, 1, 10, tzinfo=dt.timezone(dt.timedelta(hours=2)))]),
            "close": [0.07],
            "underlying_apr": [0.0876],
        }
    )
    (tmp_path / "boros").mkdir()
    frame.write_parquet(tmp_path / "boros" / "chart.parquet")
    source = ReplayRatesSource(tmp_path)
    (market,) = source.markets("boros")
    assert (market.venue_symbol, market.contract) == ("ETHUSDT", "usdt")
    got = source.candles("boros", market, dt.date(2025, 6, 1), dt.date(2025, 6, 1))
    assert got["ts"].to_list() == [dt.datetime(2025, 6, 1, 8)]  # +02:00 converted to UTC


def test_duplicates_that_agree_are_kept_once_across_files(replay):
    write(replay / "rho", "more.csv", GOOD[:1])
    frame = ReplayRatesSource(replay).candles("rho", "0xf1", dt.date(2025, 5, 1), dt.date(2025, 5, 1))
    assert frame.height == 3


BAD_ROWS = [
    ("0xf1,binance,BTCUSDT,,2025-07-30,1h,2025-05-01T00:00:00Z,,,,abc,", r"line 2: close 'abc' is not a number"),
    ("0xf1,binance,BTCUSDT,,2025-07-30,1h,2025-05-01T00:00:00Z,,,,3.6451,", r"line 2: close 3.6451 .*looks like percent"),
    ("0xf1,binance,BTCUSDT,,2025-07-30,1h,2025-05-01T00:00:00Z,,,,,", r"line 2: close is empty"),
    ("0xf1,binance,BTCUSDT,,2025-07-30,1h,2025-05-01T00:00:00Z,0.03,0.02,0.01,0.025,", r"line 2: high 0.02 is below"),
    ("0xf1,binance,BTCUSDT,,2025-07-30,1h,2025-05-01T00:00:00Z,0.03,0.04,0.031,0.035,", r"line 2: low 0.031 is above"),
    ("0xf1,binance,BTCUSDT,,2025-07-30,1h,yesterday,,,,0.03,", r"line 2: cannot read ts 'yesterday'"),
    ("0xf1,binance,BTCUSDT,,2025-07-30,1h,1746057600,,,,0.03,", r"line 2: ts '1746057600' is not epoch milliseconds"),
    ("0xf1,binance,BTCUSDT,,2025-07-30,1h,2025-08-01,,,,0.03,", r"line 2: ts 2025-08-01 00:00:00 is not before maturity"),
    ("0xf1,binance,BTCUSDT,2025-05-02,2025-07-30,1h,2025-05-01,,,,0.03,", r"line 2: the 1h candle at .* ends before term_start"),
    ("0xf1,binance,BTCUSDT,,2025-07-30,2h,2025-05-01,,,,0.03,", r"line 2: interval '2h' is not one of"),
    ("0xf1,kraken,XBTUSD,,2025-07-30,1h,2025-05-01,,,,0.03,", r"line 2: venue: unknown venue 'kraken'"),
    (",binance,BTCUSDT,,2025-07-30,1h,2025-05-01,,,,0.03,", r"line 2: market_id is empty"),
]  # fmt: skip


@pytest.mark.parametrize("row, message", BAD_ROWS)
def test_a_bad_row_is_refused_naming_file_and_line(tmp_path, row, message):
    path = write(tmp_path / "rho", "a.csv", [row])
    with pytest.raises(FundingInputError, match=rf"{path}: {message}"):
        ReplayRatesSource(tmp_path).markets("rho")


def test_nothing_is_half_read(replay):
    """A bad row in a later file fails the provider: no candle of the good file is returned."""
    bad = write(
        replay / "rho",
        "z_late.csv",
        GOOD[:1] + ["0xf1,binance,BTCUSDT,,2025-07-30T23:00:00Z,1h,2025-05-01T05:00:00Z,,,,x,"],
    )
    source = ReplayRatesSource(replay)
    with pytest.raises(FundingInputError, match=rf"{bad}: line 3"):
        source.candles("rho", "0xf1", dt.date(2025, 5, 1), dt.date(2025, 5, 1))
    with pytest.raises(FundingInputError):
        source.markets("rho")
    bad.unlink()  # fixed: the next call reads the files again
    assert source.candles("rho", "0xf1", dt.date(2025, 5, 1), dt.date(2025, 5, 1)).height == 3


def test_conflicting_duplicate_names_both_lines(replay):
    other = write(replay / "rho", "later.csv", [GOOD[0].replace(",0.036451,0.05", ",0.0365,0.05")])
    with pytest.raises(
        FundingInputError,
        match=rf"{other}: line 2: the 1h candle of market 0xf1 .* also given by .*candles.csv: line 2",
    ):
        ReplayRatesSource(replay).markets("rho")


def test_one_market_id_is_one_future(replay):
    other = write(
        replay / "rho",
        "later.csv",
        [GOOD[0].replace("2025-07-30T23:00:00Z,1h,2025-05-01T00", "2025-08-30T23:00:00Z,1h,2025-05-02T00")],
    )
    with pytest.raises(
        FundingInputError,
        match=rf"{other}: line 2: market 0xf1 has maturity 2025-08-30 23:00:00, but .*candles.csv: line 2",
    ):
        ReplayRatesSource(replay).markets("rho")


def test_missing_columns_and_empty_folders(tmp_path):
    write(tmp_path / "rho", "a.csv", ["x,binance"], header="market_id,venue")
    with pytest.raises(FundingInputError, match=r"a.csv: missing column\(s\) symbol, maturity, ts, close"):
        ReplayRatesSource(tmp_path).markets("rho")
    (tmp_path / "boros").mkdir()
    (tmp_path / "boros" / "notes.txt").write_text("hello")
    with pytest.raises(FundingInputError, match=r"boros: no \*.csv"):
        ReplayRatesSource(tmp_path).markets("boros")
    with pytest.raises(FundingInputError, match="does not exist"):
        open_rates_source(f"replay:{tmp_path / 'nope'}")


def test_unknown_market_is_refused(replay):
    with pytest.raises(FundingInputError, match="rho has no market '0xnope'"):
        ReplayRatesSource(replay).candles("rho", "0xnope", dt.date(2025, 5, 1), dt.date(2025, 5, 1))
