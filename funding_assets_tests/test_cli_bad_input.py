"""Bad input to `funding-assets backfill`: a clear error, a non-zero exit, nothing written.

Every case runs the CLI in-process (``funding_assets.cli.main``) against a small synthetic
replay directory in ``tmp_path``. The CLI logs errors to stderr as ``error: ...``; each
message must name the setting, or the file and its line, at fault. "Nothing written" means
no warehouse file appears, or, when a good backfill ran before, every table's rows are
byte-for-byte what they were (a hash of ``SELECT * ... ORDER BY ALL``).

One test runs the installed console script in a subprocess to prove the entry point works.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

from funding_assets import cli
from funding_assets.settings import ENV_VARS

ENV = (*ENV_VARS, "DAGSTER_HOME")
KNOWN_VENUES = "binance, bybit, okx, hyperliquid, deribit"
TABLES = ("raw_prints", "curve_snapshots", "curve_features", "pca_factors", "pca_fits", "spread_signals")
# A small range well inside the synthetic history (the backfill reads 41 days before --start).
START, END = "2024-02-20", "2024-02-22"
FIRST = dt.datetime(2024, 1, 1)
N_PRINTS = 3 * 56  # 8h settlements 2024-01-01 .. 2024-02-25


# --------------------------------------------------------------------------- helpers


def good_rows(n: int = N_PRINTS) -> list[dict]:
    """Binance BTCUSDT 8h settlements with Binance-like ms jitter, epoch-ms timestamps."""
    rows = []
    for i in range(n):
        ms = int((FIRST + dt.timedelta(hours=8 * i) - dt.datetime(1970, 1, 1)).total_seconds() * 1000) + i % 17
        rows.append(
            {
                "symbol": "BTCUSDT",
                "ts": str(ms),
                "funding_time": str(ms),
                "rate": f"{0.0001 + 0.00001 * (i % 5 - 2):.8f}",
            }
        )
    return rows


def write_csv(
    path: Path, rows: list[dict], columns: tuple[str, ...] = ("symbol", "ts", "funding_time", "rate")
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame([{c: r[c] for c in columns} for r in rows], schema={c: pl.String for c in columns}).write_csv(path)
    return path


def line_of(path: Path, needle: str) -> int:
    """1-based line number of the only line of ``path`` containing ``needle``."""
    hits = [i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    assert len(hits) == 1, f"{needle!r} on lines {hits}"
    return hits[0]


def row_in_range(rows: list[dict], day: dt.date) -> int:
    """Index of the first row settling on ``day``."""
    for i in range(len(rows)):
        if (FIRST + dt.timedelta(hours=8 * i)).date() == day:
            return i
    raise AssertionError(day)


def digest(warehouse: Path) -> dict[str, str]:
    """sha256 of every table's rows in a fixed order (read-only)."""
    out = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for t in TABLES:
            out[t] = hashlib.sha256(
                repr(con.execute(f"SELECT * FROM funding.{t} ORDER BY ALL").fetchall()).encode()
            ).hexdigest()
        out["range"] = hashlib.sha256(
            repr(
                con.execute(
                    "SELECT * FROM funding.curve_snapshots WHERE ts >= ? AND ts < ? ORDER BY ALL",
                    [dt.datetime(2024, 2, 20), dt.datetime(2024, 2, 23)],
                ).fetchall()
            ).encode()
        ).hexdigest()
    return out


def counts(warehouse: Path) -> dict[str, int]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {t: con.execute(f"SELECT count(*) FROM funding.{t}").fetchone()[0] for t in TABLES}


class Cli:
    """Runs ``funding-assets`` in-process with a clean environment and captures stderr."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
        self.tmp = tmp_path
        self.mp = monkeypatch
        self.capsys = capsys
        self.home = tmp_path / "home"
        self.replay = tmp_path / "replay"
        self.replay.mkdir()
        self.replay = self.replay.resolve()  # the source setting is resolved; messages name that path
        for var in ENV:
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("FUNDING_ASSETS_HOME", str(self.home))
        monkeypatch.setenv("FUNDING_ASSETS_SOURCE", f"replay:{self.replay}")

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"

    def __call__(
        self, *args: str, start: str = START, end: str = END, venues: str = "binance", coins: str = "BTC"
    ) -> tuple[int, str]:
        self.capsys.readouterr()
        argv = ["backfill", "--start", start, "--end", end]
        if venues:
            argv += ["--venues", venues]
        if coins:
            argv += ["--coins", coins]
        rc = cli.main([*argv, *args])
        return rc, self.capsys.readouterr().err

    def error_line(self, err: str) -> str:
        lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
        assert lines, f"no 'error: ...' line on stderr:\n{err}"
        return lines[-1]


@pytest.fixture
def run(tmp_path, monkeypatch, capsys) -> Cli:
    return Cli(tmp_path, monkeypatch, capsys)


def assert_nothing_written(run: Cli) -> None:
    assert not run.warehouse.exists(), "a failed backfill must not create or touch the warehouse"


# --------------------------------------------------------------------------- settings


def test_unknown_venue_names_the_setting_and_lists_known_venues(run):
    write_csv(run.replay / "binance" / "BTCUSDT.csv", good_rows())
    rc, err = run(venues="kraken")
    assert rc == 2
    msg = run.error_line(err)
    assert "--venues" in msg and "'kraken'" in msg and KNOWN_VENUES in msg
    assert_nothing_written(run)


def test_unknown_venue_in_the_environment_names_the_variable(run, monkeypatch):
    write_csv(run.replay / "binance" / "BTCUSDT.csv", good_rows())
    monkeypatch.setenv("FUNDING_ASSETS_VENUES", "binance,kraken")
    rc, err = run(venues="")
    assert rc == 2
    msg = run.error_line(err)
    assert "FUNDING_ASSETS_VENUES" in msg and "'kraken'" in msg and KNOWN_VENUES in msg
    assert_nothing_written(run)


def test_a_coin_no_venue_lists_names_the_setting_and_what_is_listed(run):
    write_csv(run.replay / "binance" / "BTCUSDT.csv", good_rows())
    rc, err = run(coins="BTC,DOGEX")
    assert rc == 2
    msg = run.error_line(err)
    assert "--coins" in msg and "'DOGEX'" in msg and "listed by no configured venue (binance)" in msg
    assert "they list 1 coins, e.g. BTC" in msg
    assert_nothing_written(run)


def test_end_before_start_is_refused(run):
    write_csv(run.replay / "binance" / "BTCUSDT.csv", good_rows())
    rc, err = run(start="2024-02-22", end="2024-02-20")
    assert rc == 2
    msg = run.error_line(err)
    assert "--end 2024-02-20" in msg and "--start 2024-02-22" in msg and "before" in msg
    assert_nothing_written(run)


def test_end_after_today_is_refused(run):
    write_csv(run.replay / "binance" / "BTCUSDT.csv", good_rows())
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2)).isoformat()
    rc, err = run(start="2024-02-20", end=tomorrow)
    assert rc == 2
    assert f"--end {tomorrow}" in run.error_line(err)
    assert_nothing_written(run)


@pytest.mark.parametrize("flag", ["--start", "--end"])
def test_malformed_date_is_a_usage_error_naming_the_flag(run, flag):
    args = {"start": START, "end": END, flag.removeprefix("--"): "2024-13-45"}
    with pytest.raises(SystemExit) as exc:
        run(**args)
    assert exc.value.code == 2
    err = run.capsys.readouterr().err
    assert flag in err and "2024-13-45" in err and "expected a date like" in err
    assert_nothing_written(run)


@pytest.mark.parametrize("where", ["under_a_file", "is_a_file"])
def test_data_directory_that_cannot_be_written_names_funding_assets_home(run, monkeypatch, where):
    # Tests run as root, so chmod would not stop a write: put the data directory under (or
    # on) a regular file instead, which no user can turn into a directory.
    write_csv(run.replay / "binance" / "BTCUSDT.csv", good_rows())
    blocker = run.tmp / "not-a-dir"
    blocker.write_text("a regular file\n")
    home = blocker / "data" if where == "under_a_file" else blocker
    monkeypatch.setenv("FUNDING_ASSETS_HOME", str(home))
    rc, err = run()
    assert rc == 2
    msg = run.error_line(err)
    assert f"FUNDING_ASSETS_HOME={home}" in msg and "not writable" in msg
    assert blocker.read_text() == "a regular file\n"
    assert not (run.tmp / "home").exists()


def test_replay_directory_that_does_not_exist_names_the_setting(run, monkeypatch):
    monkeypatch.setenv("FUNDING_ASSETS_SOURCE", "replay:/does/not/exist")
    rc, err = run()
    assert rc == 2
    msg = run.error_line(err)
    assert "FUNDING_ASSETS_SOURCE" in msg and "/does/not/exist" in msg and "does not exist" in msg
    assert_nothing_written(run)


def test_replay_directory_without_the_venue_folder_says_so(run):
    write_csv(run.replay / "binance" / "BTCUSDT.csv", good_rows())
    rc, err = run(venues="binance,bybit")
    assert rc == 2
    msg = run.error_line(err)
    assert str(run.replay) in msg and "bybit/" in msg and "--venues" in msg
    assert_nothing_written(run)


# --------------------------------------------------------------------------- replay files


def _missing_column(replay: Path) -> tuple[Path, list[str]]:
    path = write_csv(replay / "binance" / "BTCUSDT.csv", good_rows(), columns=("symbol", "ts", "funding_time"))
    return path, ["missing column", "rate"]


def _bad_ts(replay: Path) -> tuple[Path, list[str]]:
    rows = good_rows()
    rows[5]["ts"] = "half past nine"
    path = write_csv(replay / "binance" / "BTCUSDT.csv", rows)
    return path, [f"line {line_of(path, 'half past nine')}", "ts", "'half past nine'", "cannot parse"]


def _bad_funding_time(replay: Path) -> tuple[Path, list[str]]:
    rows = good_rows()
    rows[40]["funding_time"] = "2024-02-30T08:00:00Z"  # no such day
    path = write_csv(replay / "binance" / "BTCUSDT.csv", rows)
    return path, [f"line {line_of(path, '2024-02-30T08')}", "funding_time", "cannot parse"]


def _percent_rate(replay: Path) -> tuple[Path, list[str]]:
    rows = good_rows()
    rows[7]["rate"] = "1.5"  # 1.5 % written as a number: plainly percent
    path = write_csv(replay / "binance" / "BTCUSDT.csv", rows)
    return path, [f"line {line_of(path, ',1.5')}", "1.5", "percent"]


def _percent_rate_parquet(replay: Path) -> tuple[Path, list[str]]:
    rows = good_rows()
    path = replay / "binance" / "BTCUSDT.parquet"
    path.parent.mkdir(parents=True)
    rates = [float(r["rate"]) for r in rows]
    rates[9] = -1.5
    pl.DataFrame(
        {
            "symbol": [r["symbol"] for r in rows],
            "ts": [int(r["ts"]) for r in rows],
            "funding_time": [int(r["funding_time"]) for r in rows],
            "rate": rates,
        }
    ).write_parquet(path)
    return path, ["row 10", "-1.5", "percent"]


def _non_numeric_rate(replay: Path) -> tuple[Path, list[str]]:
    rows = good_rows()
    rows[11]["rate"] = "0.01%"
    path = write_csv(replay / "binance" / "BTCUSDT.csv", rows)
    return path, [f"line {line_of(path, '0.01%')}", "'0.01%'", "not a number"]


def _unknown_symbol(replay: Path) -> tuple[Path, list[str]]:
    rows = good_rows()
    rows[3]["symbol"] = "BTC-USDT-SWAP"  # an OKX name in the Binance folder: no Binance perpetual
    path = write_csv(replay / "binance" / "BTCUSDT.csv", rows)
    return path, [f"line {line_of(path, 'BTC-USDT-SWAP')}", "'BTC-USDT-SWAP'"]


BAD_FILES = {
    "missing_column": _missing_column,
    "unparsable_ts": _bad_ts,
    "unparsable_funding_time": _bad_funding_time,
    "percent_rate": _percent_rate,
    "percent_rate_parquet": _percent_rate_parquet,
    "non_numeric_rate": _non_numeric_rate,
    "unknown_symbol": _unknown_symbol,
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_replay_file_names_file_and_line_and_writes_nothing(run, case):
    path, fragments = BAD_FILES[case](run.replay)
    rc, err = run()
    assert rc == 2
    msg = run.error_line(err)
    assert str(path) in msg, msg
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"
    assert_nothing_written(run)


def test_bad_file_of_one_venue_stops_every_venue_before_any_write(run):
    """bybit's file is bad; binance's is fine: nothing is written for binance either."""
    write_csv(run.replay / "binance" / "BTCUSDT.csv", good_rows())
    rows = good_rows()
    rows[2]["rate"] = "2.5"
    bad = write_csv(run.replay / "bybit" / "BTCUSDT.csv", rows)
    rc, err = run(venues="binance,bybit")
    assert rc == 2
    msg = run.error_line(err)
    assert str(bad) in msg and "line 4" in msg and "percent" in msg
    assert_nothing_written(run)


def test_good_partitions_stay_byte_identical_when_a_later_replay_is_bad(run):
    path = write_csv(run.replay / "binance" / "BTCUSDT.csv", good_rows())
    rc, err = run()
    assert rc == 0, err
    before, rows_before = digest(run.warehouse), counts(run.warehouse)
    assert rows_before["raw_prints"] > 0 and rows_before["curve_snapshots"] > 0
    snapshot_stat = run.warehouse.stat().st_size

    i = row_in_range(good_rows(), dt.date(2024, 2, 21))  # a print inside the backfilled range
    corruptions = {
        "unparsable ts": ("ts", "2024-02-21 25:61:00", "2024-02-21 25:61:00", "cannot parse"),
        "percent rate": ("rate", "0.75", ",0.75", "percent"),
        "not a number": ("rate", "n/a", ",n/a", "not a number"),
    }
    for name, (column, value, needle, words) in corruptions.items():
        rows = good_rows()
        rows[i][column] = value
        write_csv(path, rows)
        rc, err = run()
        assert rc != 0, name
        msg = run.error_line(err)
        assert str(path) in msg and f"line {line_of(path, needle)}" in msg and words in msg, msg
        assert digest(run.warehouse) == before, f"{name}: the good partitions changed"
        assert counts(run.warehouse) == rows_before

    # a file the pipeline cannot read at all is refused the same way
    path.write_bytes(b"\x00\x01 not csv \xff\n")
    rc, err = run()
    assert rc != 0
    assert str(path) in run.error_line(err)
    assert digest(run.warehouse) == before
    assert run.warehouse.stat().st_size == snapshot_stat


def test_rate_beyond_the_venue_cap_leaves_the_good_partition_intact(run):
    path = write_csv(run.replay / "binance" / "BTCUSDT.csv", good_rows())
    assert run()[0] == 0
    before = digest(run.warehouse)
    rows = good_rows()
    rows[row_in_range(rows, dt.date(2024, 2, 21))]["rate"] = "0.01"  # 1 %/8h: beyond Binance's 0.375 % cap
    write_csv(path, rows)
    rc, err = run()
    assert rc != 0
    assert digest(run.warehouse) == before, "raw_prints of 2024-02-21 were overwritten by a refused file"
    msg = run.error_line(err)
    assert str(path) in msg and f"line {line_of(path, ',0.01')}" in msg


# --------------------------------------------------------------------------- replay timestamps and duplicates


def restamp(rows: list[dict], fmt) -> list[dict]:
    """``rows`` with ``ts`` and ``funding_time`` rewritten as ``fmt(epoch_ms, row_index)``."""
    return [
        {**r, "ts": fmt(int(r["ts"]), i), "funding_time": fmt(int(r["funding_time"]), i)} for i, r in enumerate(rows)
    ]


def utc(ms: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=ms)


def refused_once(run: Cli, path: Path, before: dict[str, str], *fragments: str) -> str:
    """The backfill exits 2 with one error line naming ``path`` and ``fragments``; the warehouse is as it was."""
    rc, err = run()
    assert rc == 2, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    for fragment in (str(path), *fragments):
        assert fragment in errors[0], f"{fragment!r} not in {errors[0]!r}"
    assert digest(run.warehouse) == before, "a refused replay file changed the warehouse"
    return errors[0]


UNITS = {
    # unit: (the file's value, the epoch ms it stands for)
    "seconds": (lambda ms, i: str(ms // 1000), lambda ms, i: str(ms // 1000 * 1000)),
    "microseconds": (lambda ms, i: str(ms * 1000), lambda ms, i: str(ms)),
    "nanoseconds": (lambda ms, i: str(ms * 1_000_000), lambda ms, i: str(ms)),
}


@pytest.mark.parametrize("unit", list(UNITS))
def test_epoch_seconds_micro_and_nanoseconds_backfill_like_milliseconds(run, unit):
    """Read as milliseconds they were the 1970s or the year 50000, and the range's partitions were emptied."""
    in_unit, as_ms = UNITS[unit]
    path = write_csv(run.replay / "binance" / "BTCUSDT.csv", restamp(good_rows(), as_ms))
    assert run()[0] == 0
    before = digest(run.warehouse)
    assert counts(run.warehouse)["raw_prints"] > 0
    write_csv(path, restamp(good_rows(), in_unit))
    rc, err = run()
    assert rc == 0, err
    assert digest(run.warehouse) == before


def test_implausible_or_mixed_unit_epochs_stop_the_backfill_and_keep_the_warehouse(run):
    path = write_csv(run.replay / "binance" / "BTCUSDT.csv", good_rows())
    assert run()[0] == 0
    before = digest(run.warehouse)
    i = row_in_range(good_rows(), dt.date(2024, 2, 21))
    ms = int(good_rows()[i]["ts"])
    corruptions = {
        "seconds among milliseconds": ("ts", str(ms // 1000), ["ts", "seconds", "milliseconds", "line 2"]),
        "microseconds among milliseconds": ("funding_time", str(ms * 1000), ["funding_time", "microseconds"]),
        "the year 2100": ("ts", "4102444800000", ["ts", "2015", "2100"]),
        "the year 2128": ("funding_time", str(5 * 10**12), ["funding_time", "2100"]),
        "ISO before 2015": ("ts", "2014-12-31T23:00:00Z", ["ts", "the year 2014"]),
        "ISO in 2100": ("funding_time", "2100-02-21T08:00:00+02:00", ["funding_time", "the year 2100"]),
    }
    for column, value, fragments in corruptions.values():
        rows = good_rows()
        rows[i][column] = value
        write_csv(path, rows)
        refused_once(run, path, before, f"line {line_of(path, value)}", repr(value), *fragments)


def test_date_only_and_utc_offset_timestamps_backfill_as_utc(run):
    """Dates are midnight UTC, offsets are converted, naive is UTC, the shapes mix in a column."""

    def date_only(ms: int, i: int) -> bool:
        return utc(ms).hour == 0 and i % 2 == 1

    def iso(ms: int, i: int) -> str:
        t = utc(ms)
        if date_only(ms, i):
            return t.date().isoformat()  # the 00:00 settlement, without its ms jitter
        offset = dt.timedelta(hours=(2, -5, 0, 0)[i % 4])
        shown = (t + offset).isoformat(sep=" " if i % 3 else "T", timespec="milliseconds")
        return shown + ("+02:00", "-05:00", "Z", "")[i % 4]

    # the same prints in epoch ms, without the jitter a date-only ts cannot carry
    baseline = restamp(good_rows(), lambda ms, i: str(ms // 86_400_000 * 86_400_000 if date_only(ms, i) else ms))
    path = write_csv(run.replay / "binance" / "BTCUSDT.csv", baseline)
    assert run()[0] == 0
    before = digest(run.warehouse)
    rows = restamp(good_rows(), iso)
    write_csv(path, rows)
    rc, err = run()
    assert rc == 0, err
    assert digest(run.warehouse) == before

    i = row_in_range(rows, dt.date(2024, 2, 21)) + 1
    rows[i]["ts"] = "2024-02-21 09:00 CET"  # a zone name, not an offset: refused, not guessed
    write_csv(path, rows)
    refused_once(run, path, before, f"line {line_of(path, 'CET')}", "cannot parse ts", "'2024-02-21 09:00 CET'")


def test_conflicting_duplicate_prints_stop_the_backfill_naming_both_rows(run):
    rows = good_rows()
    path = write_csv(run.replay / "binance" / "BTCUSDT.csv", rows)
    assert run()[0] == 0
    before = digest(run.warehouse)
    i = row_in_range(rows, dt.date(2024, 2, 21))

    # the same prints in a second file (an overlapping export): kept once, nothing changes
    copy = write_csv(run.replay / "binance" / "BTCUSDT_2.csv", rows[i - 3 : i + 3])
    rc, err = run()
    assert rc == 0, err
    assert digest(run.warehouse) == before

    # the copy disagrees on one settlement's rate
    changed = [dict(r) for r in rows[i - 3 : i + 3]]
    changed[4]["rate"] = "0.00031"
    write_csv(copy, changed)
    refused_once(run, copy, before, f"{path}: line {i + 1 + 2}", f"{copy}: line {4 + 2}", "0.00031", "realised BTC")

    # the same settlement twice in one file, quoted a second apart
    copy.unlink()
    clash = {**rows[i], "ts": str(int(rows[i]["ts"]) + 1000), "rate": "-0.00005"}
    write_csv(path, [*rows, clash])
    refused_once(run, path, before, f"line {i + 2} and line {len(rows) + 2}", "-5e-05")


def test_errors_reach_the_current_stderr(tmp_path, monkeypatch, capsys):
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FUNDING_ASSETS_HOME", str(tmp_path / "home"))
    rc = cli.main(["backfill", "--start", START, "--end", END, "--venues", "kraken"])
    assert rc == 2
    assert "error: --venues: unknown venue 'kraken'" in capsys.readouterr().err


# --------------------------------------------------------------------------- console script


def test_console_script_reports_bad_input_with_exit_code_2(tmp_path):
    script = Path(sys.executable).parent / "funding-assets"
    if not script.exists():
        script = Path(shutil.which("funding-assets") or script)
    assert script.exists(), "the funding-assets console script is not installed"
    env = {k: v for k, v in os.environ.items() if k not in ENV}
    env["FUNDING_ASSETS_HOME"] = str(tmp_path / "home")
    proc = subprocess.run(
        [str(script), "backfill", "--start", START, "--end", END, "--venues", "kraken"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"error: --venues: unknown venue 'kraken'; known venues are {KNOWN_VENUES}" in proc.stderr
    assert not (tmp_path / "home" / "warehouse.duckdb").exists()
