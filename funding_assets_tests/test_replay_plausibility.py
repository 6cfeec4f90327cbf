"""Replay files are read as what they are, or refused naming the file and line.

- Epoch numbers in ``ts`` / ``funding_time`` may be seconds, milliseconds, microseconds or
  nanoseconds: the unit is read per column from the magnitude (2015..2100 in each unit);
  a value plausible in no unit, or a column mixing units, is refused.
- A timestamp before 2015 or in 2100 or later is refused, whatever its form.
- ISO dates are midnight UTC; ISO date-times are UTC unless they carry an offset, which is
  converted; the shapes may be mixed within a column.
- One print given twice is kept once; two rows of one print that disagree are refused,
  naming both rows (realised: same symbol and funding_time; predicted: same symbol, ts and
  funding_time).

These are the reader's rules on small files; ``test_cli_bad_input.py`` runs them through
``funding-assets backfill`` and checks that a refused file leaves the warehouse as it was.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from funding_assets.errors import FundingInputError
from funding_assets.sources.replay import ReplaySource, read_file

EPOCH = dt.datetime(1970, 1, 1)
T0 = dt.datetime(2024, 1, 1, 8)  # a Binance settlement
T0_MS = int((T0 - EPOCH).total_seconds()) * 1000
PER_SECOND = {"seconds": 1, "milliseconds": 1_000, "microseconds": 1_000_000, "nanoseconds": 1_000_000_000}
HEADER = "symbol,ts,funding_time,rate"


def csv(path: Path, *lines: str, header: str = HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def epoch(t: dt.datetime, unit: str) -> int:
    return (t - EPOCH) // dt.timedelta(microseconds=1) * PER_SECOND[unit] // 1_000_000


def refused(path: Path, *fragments: str, venue: str = "binance") -> str:
    with pytest.raises(FundingInputError) as exc:
        read_file(path, venue)
    msg = str(exc.value)
    assert "\n" not in msg
    assert str(path) in msg, msg
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"
    return msg


def times(frame: pl.DataFrame) -> list[tuple[dt.datetime, dt.datetime]]:
    return list(frame.select("ts", "funding_time").iter_rows())


# --------------------------------------------------------------------------- epoch units


@pytest.mark.parametrize("unit", list(PER_SECOND))
def test_epoch_numbers_in_any_unit_are_read_as_that_unit(tmp_path, unit):
    t = T0 + dt.timedelta(milliseconds=18)  # Binance-like settlement jitter
    ts = epoch(t, unit)
    later = ts + 8 * 3600 * PER_SECOND[unit]
    path = csv(
        tmp_path / "BTCUSDT.csv", f"BTCUSDT,{ts},{ts},0.0001", f"BTCUSDT,{later + PER_SECOND[unit]},{later},0.0001"
    )
    frame = read_file(path, "binance")
    quoted = t if unit != "seconds" else T0  # seconds carry no milliseconds
    assert times(frame)[0] == (quoted, T0)  # funding_time is snapped to the minute
    assert frame["ts"][1] - frame["ts"][0] == dt.timedelta(hours=8, seconds=1)


@pytest.mark.parametrize("unit", list(PER_SECOND))
def test_epoch_integers_in_parquet_are_read_in_their_unit(tmp_path, unit):
    path = tmp_path / "BTC.parquet"
    stamps = pl.Series([epoch(T0, unit), epoch(T0 + dt.timedelta(hours=8), unit)], dtype=pl.Int64)
    pl.DataFrame({"symbol": ["BTC", "BTC"], "ts": stamps, "funding_time": stamps, "rate": [1e-4, 2e-4]}).write_parquet(
        path
    )
    assert times(read_file(path, "binance")) == [(T0, T0), (T0 + dt.timedelta(hours=8),) * 2]


def test_decimal_epoch_seconds_and_float_milliseconds_are_read(tmp_path):
    # time.time() output, and pandas' float columns written to CSV ("1704096000000.0")
    path = csv(tmp_path / "BTCUSDT.csv", f"BTCUSDT,{T0_MS / 1000 + 0.25},{T0_MS}.0,0.0001")
    assert times(read_file(path, "binance")) == [(T0 + dt.timedelta(milliseconds=250), T0)]


@given(
    t=st.datetimes(min_value=dt.datetime(2015, 1, 1), max_value=dt.datetime(2099, 12, 31, 23, 59)),
    unit=st.sampled_from(list(PER_SECOND)),
)
@settings(max_examples=60, deadline=None)
def test_any_plausible_instant_round_trips_in_any_unit(tmp_path_factory, t, unit):
    path = csv(tmp_path_factory.mktemp("u") / "BTC.csv", f"BTC,{epoch(t, unit)},{epoch(T0, unit)},0.0001")
    ms = t.replace(microsecond=t.microsecond // 1000 * 1000)
    assert read_file(path, "binance")["ts"][0] == (ms if unit != "seconds" else ms.replace(microsecond=0))


def test_a_column_mixing_seconds_and_milliseconds_is_refused_naming_both_lines(tmp_path):
    path = csv(
        tmp_path / "BTCUSDT.csv",
        f"BTCUSDT,{T0_MS},{T0_MS},0.0001",
        f"BTCUSDT,{T0_MS + 8 * 3600_000},{T0_MS + 8 * 3600_000},0.0001",
        f"BTCUSDT,{T0_MS // 1000 + 16 * 3600},{T0_MS + 16 * 3600_000},0.0001",
    )
    refused(path, "line 4", "ts", f"'{T0_MS // 1000 + 16 * 3600}'", "seconds", "line 2", "milliseconds")


def test_units_are_detected_per_column(tmp_path):
    path = csv(tmp_path / "BTCUSDT.csv", f"BTCUSDT,{epoch(T0, 'seconds')},{epoch(T0, 'nanoseconds')},0.0001")
    assert times(read_file(path, "binance")) == [(T0, T0)]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("4102444800000", "2100-01-01 in ms"),
        (str(5 * 10**12), "year 2128 in ms (or 50000 read as seconds)"),
        ("1000000000", "2001 in seconds"),
        ("1", "1970"),
        ("20240221", "a compact date"),
        ("99999999999999999999999", "beyond int64"),
    ],
)
def test_an_epoch_number_plausible_in_no_unit_is_refused(tmp_path, value, why):
    path = csv(tmp_path / "BTCUSDT.csv", f"BTCUSDT,{T0_MS},{T0_MS},0.0001", f"BTCUSDT,{T0_MS},{value},0.0001")
    msg = refused(path, "line 3", "funding_time", f"'{value}'", "2015", "2100")
    assert ("2024-01-01" in msg) == (why == "a compact date")


def test_an_implausible_epoch_integer_in_parquet_names_the_row(tmp_path):
    path = tmp_path / "BTC.parquet"
    stamps = [T0_MS, T0_MS * 1000 * 1000 * 10]  # ns of the year 2540
    pl.DataFrame({"symbol": ["BTC"] * 2, "ts": stamps, "funding_time": [T0_MS] * 2, "rate": [1e-4] * 2}).write_parquet(
        path
    )
    refused(path, "row 2", "ts")


# --------------------------------------------------------------------------- out of range


@pytest.mark.parametrize(
    ("value", "year"),
    [
        ("2100-01-01T00:00:00Z", "2100"),
        ("2100-01-01", "2100"),
        ("2014-12-31T23:59:59.999", "2014"),
        ("2015-01-01T00:30:00+01:00", "2014"),  # 2014-12-31 23:30 UTC
        ("2999-01-01 08:00:00", "2999"),
    ],
)
def test_iso_timestamps_before_2015_or_from_2100_are_refused(tmp_path, value, year):
    path = csv(tmp_path / "BTCUSDT.csv", "BTCUSDT,2024-01-01T08:00:00Z,2024-01-01T08:00:00Z,0.0001")
    path.write_text(path.read_text() + f"BTCUSDT,2024-01-01T16:00:00Z,{value},0.0001\n")
    refused(path, "line 3", "funding_time", value, f"the year {year}", "refused")


@pytest.mark.parametrize("year", [2014, 2100, 50000])
def test_parquet_timestamps_out_of_range_are_refused(tmp_path, year):
    path = tmp_path / "BTC.parquet"
    far = pl.Series([T0_MS, T0_MS + (year - 2024) * 365_250 * 86_400]).cast(pl.Datetime("ms"))
    pl.DataFrame({"symbol": ["BTC"] * 2, "ts": far, "funding_time": [T0_MS] * 2, "rate": [1e-4] * 2}).write_parquet(
        path
    )
    refused(path, "row 2", "ts", "refused")


def test_an_empty_timestamp_is_refused_with_its_line(tmp_path):
    path = csv(tmp_path / "BTCUSDT.csv", f"BTCUSDT,{T0_MS},{T0_MS},0.0001", f"BTCUSDT,,{T0_MS},0.0001")
    refused(path, "line 3", "ts is empty")


# --------------------------------------------------------------------------- ISO shapes


def test_date_only_is_midnight_utc_and_mixes_with_date_times(tmp_path):
    path = csv(
        tmp_path / "BTCUSDT.csv",
        "BTCUSDT,2024-01-01,2024-01-01,0.0001",
        "BTCUSDT,2024-01-01T08:00:00Z,2024-01-01 08:00,0.0002",
        "BTCUSDT,2024-01-01T16:00:00.018,2024-01-01T16:00:00.018Z,0.0003",
        "BTCUSDT,2024-01-02T00:00:00.004Z,2024-01-02,0.0004",
    )
    day = dt.datetime(2024, 1, 1)
    h = dt.timedelta(hours=1)
    assert times(read_file(path, "binance")) == [
        (day, day),
        (day + 8 * h, day + 8 * h),
        (day + 16 * h + dt.timedelta(milliseconds=18), day + 16 * h),
        (day + 24 * h + dt.timedelta(milliseconds=4), day + 24 * h),
    ]


@pytest.mark.parametrize(
    ("value", "utc"),
    [
        ("2024-01-01T10:00:00+02:00", "2024-01-01T08:00:00"),
        ("2024-01-01T10:00:00.250+0200", "2024-01-01T08:00:00.250"),
        ("2024-01-01 03:00:00-05:00", "2024-01-01T08:00:00"),
        ("2024-01-01T13:30:00+05:30", "2024-01-01T08:00:00"),
        ("2024-01-01T08:00:00Z", "2024-01-01T08:00:00"),
        ("2024-01-01T08:00:00+00:00", "2024-01-01T08:00:00"),
        ("2024-01-01T08:00:00", "2024-01-01T08:00:00"),  # naive is UTC
        ("2024-01-02T01:00:00+17:00", "2024-01-01T08:00:00"),
        ("2024-01-01T10:00+02", "2024-01-01T08:00:00"),
    ],
)
def test_iso_offsets_are_converted_to_utc_in_a_column_of_mixed_shapes(tmp_path, value, utc):
    # the first row is naive: the offset row must not be parsed with the first row's shape
    path = csv(
        tmp_path / "BTCUSDT.csv",
        "BTCUSDT,2024-01-01T00:00:00,2024-01-01,0.0001",
        f"BTCUSDT,{value},{value},0.0002",
    )
    expected = dt.datetime.fromisoformat(utc)
    assert times(read_file(path, "binance"))[1] == (expected, expected.replace(microsecond=0))


@pytest.mark.parametrize("value", ["2024-01-01 08:00 CET", "01/01/2024 08:00", "2024-02-30", "2024-01-01T25:00:00Z"])
def test_an_unreadable_iso_timestamp_is_refused_with_its_line(tmp_path, value):
    path = csv(tmp_path / "BTCUSDT.csv", "BTCUSDT,2024-01-01,2024-01-01,0.0001", f"BTCUSDT,{value},2024-01-01,0.0001")
    refused(path, "line 3", "cannot parse ts", repr(value))


# --------------------------------------------------------------------------- duplicates


def test_exact_duplicates_are_kept_once_in_a_file_and_across_files(tmp_path):
    lines = [
        f"BTCUSDT,{T0_MS + 18},{T0_MS + 18},0.0001",
        f"BTCUSDT,{T0_MS + 8 * 3600_000},{T0_MS + 8 * 3600_000},0.0002",
    ]
    csv(tmp_path / "binance" / "a.csv", *lines, lines[0])
    # the same settlement quoted a few ms later, by its coin name: the same realised print
    csv(tmp_path / "binance" / "b.csv", f"BTC,{T0_MS + 25},{T0_MS},0.0001")
    prints = ReplaySource(tmp_path).prints("binance")
    assert prints.height == 2
    assert prints["rate"].to_list() == [0.0001, 0.0002]
    assert prints["published_at"][0] == T0 + dt.timedelta(milliseconds=18)  # the first row is the one kept
    assert prints["ts"][0] == T0  # filed under its settlement time


def test_two_realised_rates_for_one_settlement_in_a_file_are_refused_naming_both_lines(tmp_path):
    path = csv(
        tmp_path / "BTCUSDT.csv",
        f"BTCUSDT,{T0_MS},{T0_MS},0.0001",
        f"BTCUSDT,{T0_MS + 8 * 3600_000},{T0_MS + 8 * 3600_000},0.0002",
        f"BTCUSDT,{T0_MS + 1_200},{T0_MS + 1_200},0.0003",  # same window after snapping to the minute
    )
    refused(path, "line 2 and line 4", "realised BTC", "2024-01-01 08:00", "0.0001", "0.0003")


def test_two_realised_rates_for_one_settlement_across_files_are_refused_naming_both(tmp_path):
    first = csv(tmp_path / "binance" / "2024-01.csv", f"BTCUSDT,{T0_MS},{T0_MS},0.0001")
    second = csv(
        tmp_path / "binance" / "2024-02.csv",
        f"BTCUSDT,{T0_MS + 8 * 3600_000},{T0_MS + 8 * 3600_000},0.0002",
        f"BTCUSDT,{T0_MS},{T0_MS},-0.0001",
    )
    with pytest.raises(FundingInputError) as exc:
        ReplaySource(tmp_path).prints("binance")
    msg = str(exc.value)
    assert f"{first}: line 2" in msg and f"{second}: line 3" in msg, msg
    assert "0.0001" in msg and "-0.0001" in msg


def test_two_interval_lengths_for_one_settlement_are_refused(tmp_path):
    path = csv(
        tmp_path / "BTC.csv",
        f"BTC,{T0_MS},{T0_MS},0.0001,8",
        f"BTC,{T0_MS},{T0_MS},0.0001,4",
        header=f"{HEADER},interval_hours",
    )
    refused(path, "line 2 and line 3", "interval_hours 8.0 vs 4.0")


def test_predictions_conflict_only_at_the_same_ts(tmp_path):
    header = f"{HEADER},kind"
    window = T0_MS + 8 * 3600_000
    lines = [
        f"BTC,{T0_MS},{window},0.0001,predicted",
        f"BTC,{T0_MS + 1000},{window},0.0002,predicted",  # a later estimate of the same window
        f"BTC,{window},{window},0.0003,realised",  # the settlement itself
        f"BTC,{T0_MS},{window},0.0001,predicted",  # an exact duplicate
    ]
    path = csv(tmp_path / "BTC.csv", *lines, header=header)
    assert read_file(path, "binance")["rate"].to_list() == [0.0001, 0.0002, 0.0003]
    csv(path, *lines, f"BTC,{T0_MS + 1000},{window},0.0005,predicted", header=header)
    refused(path, "line 3 and line 6", "predicted BTC", "ts 2024-01-01 08:00:01.000", "0.0002 vs 0.0005")
