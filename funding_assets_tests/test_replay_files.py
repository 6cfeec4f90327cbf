"""Which files a replay directory's venue folder is read from, and how.

- Files ending in ``.csv``, ``.csv.gz`` or ``.parquet``, in any case, are read; every other
  entry (hidden names aside) is named in an ``UnreadFilesWarning`` and in ``source.unread``.
- A venue folder with nothing to read (empty, other files only, files without rows) is
  refused naming the folder and what it holds; rows outside the asked range are not an
  error (the range is empty), and ``span`` tells the data's first and last settlement.
- A symlink resolving outside the replay directory is refused naming link and target.
- A file is read once per process however many sources and fetches ask for it, a block at
  a time: splitting the prints over files, formats, blocks and file orders changes nothing,
  and the reader's rules (units per column, conflicting duplicates, line numbers) hold
  across blocks.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funding_assets import cli
from funding_assets.errors import FundingInputError
from funding_assets.settings import ENV_VARS
from funding_assets.sources import replay
from funding_assets.sources.replay import ReplaySource, UnreadFilesWarning

EPOCH = dt.datetime(1970, 1, 1)
T0 = dt.datetime(2024, 1, 1, 8)
H8 = dt.timedelta(hours=8)
HEADER = "symbol,ts,funding_time,rate"


def ms(t: dt.datetime) -> int:
    return (t - EPOCH) // dt.timedelta(milliseconds=1)


def lines(n: int, first: dt.datetime = T0, symbol: str = "BTCUSDT") -> list[str]:
    """``n`` Binance 8h settlements from ``first``, epoch ms with a little jitter."""
    return [f"{symbol},{ms(first + i * H8) + i % 7},{ms(first + i * H8)},{0.0001 + i * 1e-6:.8f}" for i in range(n)]


def write(path: Path, rows: list[str], header: str = HEADER, newline: str = "\n") -> Path:
    """``rows`` (CSV text lines) as the file ``path`` says: CSV, gzip CSV or parquet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = newline.join([header, *rows]) + newline
    name = path.name.lower()
    if name.endswith(".parquet"):
        pl.read_csv(text.encode(), infer_schema=False).write_parquet(path)
    elif name.endswith(".gz"):
        with gzip.open(path, "wt", newline="") as f:
            f.write(text)
    else:
        path.write_text(text, newline="")
    return path


def rates(frame: pl.DataFrame) -> list[float]:
    return frame["rate"].to_list()


def nothing_to_read(source: ReplaySource, folder: Path, *fragments: str) -> str:
    with pytest.raises(FundingInputError) as exc:
        source.check("binance")
    msg = str(exc.value)
    for fragment in (str(folder), "nothing to read", *fragments):
        assert fragment in msg, f"{fragment!r} not in {msg!r}"
    return msg


# --------------------------------------------------------------------------- which files are read


@pytest.mark.parametrize(
    "name", ["a.csv", "A.CSV", "a.Csv", "a.csv.gz", "a.CSV.GZ", "a.Csv.Gz", "a.parquet", "a.PARQUET"]
)
def test_csv_gzip_csv_and_parquet_files_are_read_whatever_the_case_of_their_name(tmp_path, name):
    write(tmp_path / "binance" / name, lines(3))
    prints = ReplaySource(tmp_path).prints("binance")
    assert rates(prints) == [0.0001, 0.000101, 0.000102]
    assert prints["source"].unique().to_list() == [f"replay:{name}"]


def test_line_numbers_of_a_gzip_csv_are_its_text_lines(tmp_path):
    rows = lines(4)
    rows[2] = rows[2].replace("0.00010200", "0.7")
    path = write(tmp_path / "binance" / "BTC.csv.gz", rows)
    with pytest.raises(FundingInputError, match=rf"{path}: line 4: rate 0.7 .* percent"):
        ReplaySource(tmp_path).check("binance")


def test_other_files_are_named_in_a_warning_and_in_unread_hidden_ones_are_not(tmp_path):
    folder = tmp_path / "binance"
    write(folder / "BTC.csv", lines(3))
    for name in ("notes.txt", "export.json", "old.zip", "BTC.json.gz", ".DS_Store", ".hidden.csv"):
        (folder / name).write_text("x")
    (folder / "2023").mkdir()
    source = ReplaySource(tmp_path)
    with pytest.warns(UnreadFilesWarning) as caught:
        prints = source.fetch("binance", ("BTC",), T0.date(), T0.date() + dt.timedelta(days=2))
    assert rates(prints) == [0.0001, 0.000101, 0.000102]
    msg = str(caught[0].message)
    assert str(folder) in msg and "*.csv, *.csv.gz, *.parquet" in msg
    for name in ("notes.txt", "export.json", "old.zip", "BTC.json.gz", "2023/"):
        assert name in msg
    assert ".DS_Store" not in msg and ".hidden.csv" not in msg
    expected = sorted(f"{folder / n}" for n in ("2023", "BTC.json.gz", "export.json", "notes.txt", "old.zip"))
    assert source.unread == [p + "/" if p.endswith("2023") else p for p in expected]


def test_unread_files_are_warned_about_once_per_source_until_they_change(tmp_path, recwarn):
    folder = tmp_path / "binance"
    write(folder / "BTC.csv", lines(3))
    (folder / "notes.txt").write_text("x")
    source = ReplaySource(tmp_path)
    for _ in range(3):
        source.check("binance")
    (folder / "more.txt").write_text("x")
    source.check("binance")
    assert [w.category for w in recwarn.list] == [UnreadFilesWarning] * 2
    assert "more.txt" in str(recwarn.list[1].message)


# --------------------------------------------------------------------------- nothing to read


def test_an_empty_venue_folder_is_refused_naming_it(tmp_path):
    (tmp_path / "binance").mkdir()
    nothing_to_read(ReplaySource(tmp_path), tmp_path / "binance", "empty")


def test_a_venue_folder_of_other_files_only_is_refused_naming_them(tmp_path):
    folder = tmp_path / "binance"
    folder.mkdir()
    (folder / "BTCUSDT.txt").write_text("symbol,ts,funding_time,rate\n")
    (folder / "BTCUSDT.zip").write_bytes(b"PK")
    with pytest.warns(UnreadFilesWarning):
        nothing_to_read(ReplaySource(tmp_path), folder, "BTCUSDT.txt", "BTCUSDT.zip", "*.csv")


@pytest.mark.parametrize("name", ["BTC.csv", "BTC.csv.gz", "BTC.parquet"])
def test_header_only_files_are_refused_naming_the_folder_and_the_files(tmp_path, name):
    folder = tmp_path / "binance"
    write(folder / name, [])
    (folder / "empty.csv").write_bytes(b"")
    nothing_to_read(ReplaySource(tmp_path), folder, name, "empty.csv", "no rows")


def test_a_header_only_file_beside_a_file_with_rows_is_fine(tmp_path):
    write(tmp_path / "binance" / "a.csv", [])
    write(tmp_path / "binance" / "b.csv", lines(2))
    assert rates(ReplaySource(tmp_path).prints("binance")) == [0.0001, 0.000101]


def test_a_header_only_file_still_needs_the_columns(tmp_path):
    path = write(tmp_path / "binance" / "a.csv", [], header="symbol,ts,rate")
    with pytest.raises(FundingInputError, match=rf"{path}: missing column\(s\) funding_time"):
        ReplaySource(tmp_path).check("binance")


def test_a_range_outside_the_data_is_empty_not_an_error_and_span_tells_why(tmp_path):
    write(tmp_path / "binance" / "BTC.csv", lines(6))
    write(tmp_path / "binance" / "ETH.parquet", lines(3, T0 + 24 * H8, "ETHUSDT"))
    source = ReplaySource(tmp_path)
    later = source.fetch("binance", ("BTC", "ETH"), dt.date(2024, 6, 1), dt.date(2024, 6, 30))
    assert later.is_empty() and later.columns == source.prints("binance").columns
    assert source.span("binance") == (T0, T0 + 26 * H8)
    assert source.span("binance", ("BTC",)) == (T0, T0 + 5 * H8)
    assert source.span("binance", ("ETH", "SOL")) == (T0 + 24 * H8, T0 + 26 * H8)
    assert source.span("binance", ("SOL",)) is None


# --------------------------------------------------------------------------- contracts


def test_usdt_and_inverse_files_of_one_coin_are_two_series_with_their_contracts(tmp_path):
    write(tmp_path / "binance" / "BTCUSDT.csv", lines(4))
    write(tmp_path / "binance" / "BTCUSD_PERP.parquet", lines(3, symbol="BTCUSD_PERP"))
    source = ReplaySource(tmp_path)
    prints = source.prints("binance")
    series = prints.group_by("symbol", "contract", "venue_symbol").len().sort("contract").rows()
    assert series == [("BTC", "inverse", "BTCUSD_PERP", 3), ("BTC", "usdt", "BTCUSDT", 4)]
    found = {(i.symbol, i.contract): i for i in source.instruments("binance")}
    assert sorted(found) == [("BTC", "inverse"), ("BTC", "usdt")]
    inverse = found["BTC", "inverse"]
    assert (inverse.venue_symbol, inverse.multiplier, inverse.settle) == ("BTCUSD_PERP", 1.0, "BTC")
    assert (inverse.listed_at, inverse.delisted_at, inverse.interval_hours) == (T0, None, 8.0)
    assert inverse.rate_cap == 0.00375 and found["BTC", "usdt"].settle == "USDT"
    # a coin is the venue's main perpetual (usdt); an instrument picks its own contract
    days = T0.date(), T0.date() + dt.timedelta(days=2)
    assert source.fetch("binance", ("BTC",), *days)["contract"].unique().to_list() == ["usdt"]
    assert rates(source.fetch("binance", [inverse], *days)) == [0.0001, 0.000101, 0.000102]
    assert source.span("binance", [inverse]) == (T0, T0 + 2 * H8)
    assert source.span("binance", ("BTC",)) == (T0, T0 + 3 * H8)


def test_a_contract_column_picks_the_contract_of_a_bare_coin_and_names_it_the_venue_way(tmp_path):
    write(tmp_path / "binance" / "btc.csv", [f"{r},Inverse" for r in lines(2, symbol="BTC")], f"{HEADER},contract")
    write(tmp_path / "binance" / "pepe.csv", lines(2, symbol="1000PEPE"))
    source = ReplaySource(tmp_path)
    got = source.prints("binance").select("symbol", "contract", "venue_symbol").unique().sort("symbol").rows()
    assert got == [("BTC", "inverse", "BTCUSD_PERP"), ("PEPE", "usdt", "1000PEPEUSDT")]
    pepe = next(i for i in source.instruments("binance") if i.symbol == "PEPE")
    assert (pepe.venue_symbol, pepe.multiplier) == ("1000PEPEUSDT", 1000.0)


@pytest.mark.parametrize(("name", "value", "where"), [("a.csv", "swap", "line 4"), ("a.parquet", "inverse", "row 3")])
def test_a_bad_contract_value_is_refused_naming_file_row_and_value(tmp_path, name, value, where):
    rows = [f"{r},USDC" for r in lines(4, symbol="BTC")]  # any case
    rows[2] = rows[2].replace(",USDC", f",{value}")
    path = write(tmp_path / "hyperliquid" / name, rows, f"{HEADER},contract")
    with pytest.raises(FundingInputError) as exc:
        ReplaySource(tmp_path).check("hyperliquid")
    msg = str(exc.value)
    assert f"{path}: {where}: contract {value!r}" in msg and "hyperliquid" in msg and "usdc" in msg


def test_a_contract_that_contradicts_the_venue_name_is_refused(tmp_path):
    rows = [f"{r},usdt" for r in lines(3)]
    rows[1] = rows[1].replace(",usdt", ",inverse")
    path = write(tmp_path / "binance" / "BTCUSDT.csv", rows, f"{HEADER},contract")
    with pytest.raises(FundingInputError, match=rf"{path}: line 3: symbol 'BTCUSDT' is binance's usdt perpetual"):
        ReplaySource(tmp_path).check("binance")


# --------------------------------------------------------------------------- symlinks


def test_a_symlinked_file_outside_the_directory_is_refused_naming_link_and_target(tmp_path):
    outside = write(tmp_path / "elsewhere" / "BTC.csv", lines(3))
    root = tmp_path / "replay"
    (root / "binance").mkdir(parents=True)
    link = root / "binance" / "BTC.csv"
    link.symlink_to(outside)
    with pytest.raises(FundingInputError) as exc:
        ReplaySource(root).check("binance")
    assert str(link) in str(exc.value) and str(outside.resolve()) in str(exc.value)
    assert "outside the replay directory" in str(exc.value)


def test_a_symlinked_venue_folder_outside_the_directory_is_refused(tmp_path):
    write(tmp_path / "elsewhere" / "BTC.csv", lines(3))
    root = tmp_path / "replay"
    root.mkdir()
    (root / "binance").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(FundingInputError) as exc:
        ReplaySource(root).fetch("binance", ("BTC",), T0.date(), T0.date())
    assert str(root / "binance") in str(exc.value) and str((tmp_path / "elsewhere").resolve()) in str(exc.value)


def test_symlinks_staying_inside_the_directory_are_followed(tmp_path):
    root = tmp_path / "replay"
    shared = write(root / "archive" / "BTC.csv", lines(3))
    (root / "binance").mkdir()
    (root / "binance" / "BTC.csv").symlink_to(os.path.relpath(shared, root / "binance"))
    (root / "bybit").symlink_to("archive", target_is_directory=True)
    source = ReplaySource(root)
    assert rates(source.prints("binance")) == rates(source.prints("bybit")) == [0.0001, 0.000101, 0.000102]


# --------------------------------------------------------------------------- read once, in blocks


def test_a_file_is_parsed_once_per_process_for_every_source_and_fetch(tmp_path):
    path = write(tmp_path / "binance" / "BTC.csv", lines(30))
    before = replay.files_parsed
    ReplaySource(tmp_path).check("binance")  # the backfill's preflight
    runs = ReplaySource(tmp_path)  # the runs' source
    days = [T0.date() + dt.timedelta(days=d) for d in range(11)]
    got = [runs.fetch("binance", ("BTC",), d, d) for d in days]
    assert sum(f.height for f in got) == 30
    assert replay.files_parsed == before + 1
    write(path, lines(31))  # a changed file is read again
    assert runs.prints("binance").height == 31
    assert replay.files_parsed == before + 2


@pytest.fixture
def tiny_blocks(monkeypatch):
    """Blocks of a few rows and one month per duplicate-check slice, so that small files
    cross every boundary the big ones do."""
    monkeypatch.setattr(replay, "CSV_BLOCK_BYTES", 100)
    monkeypatch.setattr(replay, "PARQUET_BATCH_ROWS", 2)
    monkeypatch.setattr(replay, "CHECK_SLICE_ROWS", 1)


def test_a_column_mixing_units_across_blocks_is_refused_naming_both_lines(tmp_path, tiny_blocks):
    rows = lines(40)
    first_ms = rows[0].split(",")[1]
    symbol, ts, funding_time, rate = rows[30].split(",")
    rows[30] = ",".join([symbol, str(int(ts) // 1000), funding_time, rate])
    path = write(tmp_path / "binance" / "BTC.csv", rows)
    with pytest.raises(FundingInputError) as exc:
        ReplaySource(tmp_path).check("binance")
    msg = str(exc.value)
    assert f"{path}: line 32: ts '{int(ts) // 1000}' is epoch seconds" in msg
    assert f"but line 2 ({first_ms!r}) is epoch milliseconds" in msg


@pytest.mark.parametrize("name", ["BTC.csv", "BTC.csv.gz", "BTC.parquet"])
def test_a_bad_value_in_a_later_block_names_its_line(tmp_path, tiny_blocks, name):
    rows = lines(40)
    rows[33] = rows[33].replace("BTCUSDT", "BTC-USDT-SWAP")  # an OKX name: no binance symbol
    path = write(tmp_path / "binance" / name, rows)
    where = "line 35" if ".csv" in name else "row 34"
    with pytest.raises(FundingInputError, match=rf"{path}: {where}: unknown binance symbol 'BTC-USDT-SWAP'"):
        ReplaySource(tmp_path).check("binance")


def test_conflicting_duplicates_are_refused_even_outside_the_range_fetched(tmp_path, tiny_blocks):
    rows = lines(200)  # 2024-01 .. 2024-03: several duplicate-check slices
    first = write(tmp_path / "binance" / "a.csv", rows)
    clash = rows[150].rsplit(",", 1)[0] + ",-0.0002"
    second = write(tmp_path / "binance" / "b.parquet", [rows[3], clash])
    with pytest.raises(FundingInputError) as exc:
        ReplaySource(tmp_path).fetch("binance", ("BTC",), T0.date(), T0.date())
    msg = str(exc.value)
    assert f"{first}: line 152" in msg and f"{second}: row 2" in msg and "-0.0002" in msg


def test_a_quoted_field_is_never_cut_between_blocks():
    text = b'a,"x\ny",1\nb,2\nc,"p\nq'
    assert replay._line_end(text) == len(b'a,"x\ny",1\nb,2\n')
    assert replay._line_end(b'"only\nquoted') == 0


def test_a_backfill_stops_before_any_run_on_a_venue_with_nothing_to_read(tmp_path, monkeypatch, capsys):
    for var in (*ENV_VARS, "DAGSTER_HOME"):
        monkeypatch.delenv(var, raising=False)
    folder = tmp_path / "replay" / "binance"
    write(folder / "BTCUSDT.csv", [])
    monkeypatch.setenv("FUNDING_ASSETS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FUNDING_ASSETS_SOURCE", f"replay:{(tmp_path / 'replay').resolve()}")
    argv = ["backfill", "--start", "2024-02-20", "--end", "2024-02-21", "--venues", "binance", "--coins", "BTC"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"{folder.resolve()}: nothing to read" in err and "BTCUSDT.csv" in err
    assert not (tmp_path / "home" / "warehouse.duckdb").exists()


# --------------------------------------------------------------------------- properties

SUFFIXES = [".csv", ".CSV", ".csv.gz", ".Csv.Gz", ".parquet", ".PARQUET"]


def comparable(prints: pl.DataFrame) -> pl.DataFrame:
    """The prints without their file name, in one order."""
    return prints.drop("source").sort("symbol", "kind", "funding_time", "ts")


@st.composite
def split_prints(draw):
    """Rows of BTC and ETH settlements and predictions, some repeated, cut into files."""
    n = draw(st.integers(1, 40))
    rows = []
    for _ in range(n):
        symbol = draw(st.sampled_from(["BTCUSDT", "ETH", "btcusdt"]))
        window = T0 + draw(st.integers(0, 30)) * H8
        if draw(st.booleans()):
            ts, kind = window, "realised"
        else:
            ts, kind = window - dt.timedelta(minutes=draw(st.integers(1, 479))), "predicted"
        rate = (hash((symbol.upper()[:3], kind, window, ts)) % 200 - 100) * 1e-6  # one rate per print
        rows.append(f"{symbol},{ms(ts)},{ms(window)},{rate:.8f},{kind}")
    rows += draw(st.lists(st.sampled_from(rows), max_size=5))  # exact copies, kept once
    cuts = sorted(draw(st.lists(st.integers(0, len(rows)), max_size=4)))
    pieces = [rows[a:b] for a, b in zip([0, *cuts], [*cuts, len(rows)]) if rows[a:b]]
    suffixes = draw(st.lists(st.sampled_from(SUFFIXES), min_size=len(pieces), max_size=len(pieces)))
    names = draw(st.permutations([f"part{i}" for i in range(len(pieces))]))
    return rows, [(name + suffix, piece) for name, suffix, piece in zip(names, suffixes, pieces)]


@given(
    data=split_prints(),
    block=st.sampled_from([40, 100, 1 << 20]),
    batch=st.sampled_from([1, 3, 1000]),
    newline=st.sampled_from(["\n", "\r\n"]),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_prints_split_over_files_formats_blocks_and_orders_are_the_prints_of_one_file(
    tmp_path_factory, monkeypatch, data, block, batch, newline
):
    rows, files = data
    header = f"{HEADER},kind"
    one = tmp_path_factory.mktemp("one")
    write(one / "binance" / "all.csv", rows, header)
    expected = comparable(ReplaySource(one).prints("binance"))

    split = tmp_path_factory.mktemp("split")
    for name, piece in files:
        write(split / "binance" / name, piece, header, newline)
    with monkeypatch.context() as mp:
        mp.setattr(replay, "CSV_BLOCK_BYTES", block)
        mp.setattr(replay, "PARQUET_BATCH_ROWS", batch)
        source = ReplaySource(split)
        got = comparable(source.prints("binance"))
        first, last = expected["funding_time"].min(), expected["funding_time"].max()
        assert source.span("binance") == (first, last)
        days = source.fetch("binance", ("BTC", "ETH"), dt.date(2023, 12, 31), dt.date(2024, 1, 5))
    assert got.equals(expected)
    assert comparable(days).equals(expected.filter(pl.col("ts") < dt.datetime(2024, 1, 6)))
