"""Bad input against a warehouse that holds data: one clear line, and not a row lost or added.

Each case starts from the same good backfill (replay files for Binance BTC), then runs the
command line with one bad argument, setting or replay folder, and compares every table with
what it held before. ``expected`` = stored prints before, ``stored`` = after; the message is
the ``error:`` line the user sees. The lock cases hold the warehouse from another process
(a notebook) and record how long the writer waited.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import duckdb
import pytest
from test_cli_bad_input import Cli, digest, good_rows, write_csv

pytest_plugins = ["reliability"]


def stored_prints(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT count(*) FROM funding.raw_prints").fetchone()[0]


def duplicate_prints(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(
            "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM funding.raw_prints "
            "GROUP BY venue, symbol, ts, funding_time)"
        ).fetchone()[0]


@pytest.fixture(scope="module")
def good_home(tmp_path_factory) -> Path:
    """A data directory after a good backfill, copied into each case."""
    root = tmp_path_factory.mktemp("good")
    mp = pytest.MonkeyPatch()
    try:
        run = Cli(root, mp, _NoCapture())
        write_csv(run.replay / "binance" / "btc.csv", good_rows())
        rc, err = run()
        assert rc == 0, err
    finally:
        mp.undo()
    return root


class _NoCapture:
    def readouterr(self):
        class _R:
            err = ""

        return _R()


@pytest.fixture
def case(good_home, tmp_path, monkeypatch, capsys) -> Cli:
    for name in ("home", "replay"):
        shutil.copytree(good_home / name, tmp_path / name, symlinks=True)
    run = Cli.__new__(Cli)
    run.tmp, run.mp, run.capsys = tmp_path, monkeypatch, capsys
    run.home, run.replay = tmp_path / "home", (tmp_path / "replay").resolve()
    from test_cli_bad_input import ENV

    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FUNDING_ASSETS_HOME", str(run.home))
    monkeypatch.setenv("FUNDING_ASSETS_SOURCE", f"replay:{run.replay}")
    return run


def _bad_replay(kind: str):
    def spoil(run: Cli) -> None:
        folder = run.replay / "binance"
        rows = good_rows()
        if kind == "empty folder":
            (folder / "btc.csv").unlink()
        elif kind == "header-only file":
            (folder / "btc.csv").write_text("symbol,ts,funding_time,rate\n")
        elif kind == "only .gz of another format":
            (folder / "btc.csv").rename(folder / "btc.csv.bz2")
        elif kind == "data only outside the range":
            write_csv(folder / "btc.csv", rows[:40])
        elif kind == "timestamps in the year 2100":
            write_csv(folder / "btc.csv", [{**r, "ts": str(int(r["ts"]) + 2_500_000_000_000)} for r in rows])
        elif kind == "rates in percent":
            write_csv(folder / "btc.csv", [{**r, "rate": str(float(r["rate"]) * 100)} for r in rows])
        elif kind == "a symlink out of the directory":
            outside = run.tmp / "outside.csv"
            write_csv(outside, rows)
            (folder / "btc.csv").unlink()
            (folder / "btc.csv").symlink_to(outside)
        elif kind == "conflicting duplicate":
            write_csv(folder / "btc.csv", [*rows, {**rows[150], "rate": "0.00050000"}])
        else:
            raise AssertionError(kind)

    return spoil


REPLAY_CASES = [
    "empty folder",
    "header-only file",
    "only .gz of another format",
    "data only outside the range",
    "timestamps in the year 2100",
    "rates in percent",
    "a symlink out of the directory",
    "conflicting duplicate",
]

ARG_CASES = {
    "--venues ''": (["--venues", ""], "--venues"),
    "--coins ''": (["--coins", ""], "--coins"),
    "--coins of an unknown coin": (["--coins", "DOGEX"], "--coins"),
    "--start after --end": (["--start", "2024-02-22", "--end", "2024-02-20"], "before"),
}

SETTING_CASES = {
    "FUNDING_ASSETS_VENUES=''": ("FUNDING_ASSETS_VENUES", "", "FUNDING_ASSETS_VENUES"),
    "FUNDING_ASSETS_INTRADAY_EVERY=7x": ("FUNDING_ASSETS_INTRADAY_EVERY", "7x", "FUNDING_ASSETS_INTRADAY_EVERY"),
    "FUNDING_ASSETS_PCA_WINDOW_DAYS=-3": ("FUNDING_ASSETS_PCA_WINDOW_DAYS", "-3", "FUNDING_ASSETS_PCA_WINDOW_DAYS"),
    "DAGSTER_HOME relative": ("DAGSTER_HOME", "relative/dir", "DAGSTER_HOME"),
    "FUNDING_ASSETS_LOCK_TIMEOUT=soon": ("FUNDING_ASSETS_LOCK_TIMEOUT", "soon", "FUNDING_ASSETS_LOCK_TIMEOUT"),
}


def _check(run: Cli, rc: int, err: str, reliability, fault_class: str, name: str, before: int, digest_before) -> str:
    after = stored_prints(run.warehouse)
    line = run.error_line(err) if rc else ""
    reliability.record(
        fault_class,
        name,
        expected=before,
        stored=after,
        duplicates=duplicate_prints(run.warehouse),
        user_sees=line or "(exit 0)",
    )
    assert rc != 0, f"{name}: exit 0"
    assert "Traceback" not in err
    assert digest(run.warehouse) == digest_before, f"{name}: the warehouse changed"
    return line


@pytest.mark.parametrize("kind", REPLAY_CASES)
def test_a_bad_replay_folder_changes_nothing(case, kind, reliability):
    before, snapshot = stored_prints(case.warehouse), digest(case.warehouse)
    _bad_replay(kind)(case)
    if kind == "only .gz of another format":  # the file it does not read is named in a warning
        with pytest.warns(UserWarning, match=r"not read .*btc\.csv\.bz2"):
            rc, err = case()
    else:
        rc, err = case()
    _check(case, rc, err, reliability, "bad replay files", kind, before, snapshot)


@pytest.mark.parametrize("name", list(ARG_CASES))
def test_a_bad_argument_changes_nothing(case, name, reliability):
    argv, named = ARG_CASES[name]
    before, snapshot = stored_prints(case.warehouse), digest(case.warehouse)
    from funding_assets import cli

    case.capsys.readouterr()
    full = ["backfill", "--start", "2024-02-20", "--end", "2024-02-22", "--venues", "binance", "--coins", "BTC"]
    for flag, value in zip(argv[::2], argv[1::2], strict=True):
        full[full.index(flag) + 1] = value
    rc = cli.main(full)
    err = case.capsys.readouterr().err
    line = _check(case, rc, err, reliability, "bad arguments", name, before, snapshot)
    assert rc == 2 and named in line


@pytest.mark.parametrize("name", list(SETTING_CASES))
def test_a_bad_setting_changes_nothing(case, name, reliability, monkeypatch):
    variable, value, named = SETTING_CASES[name]
    before, snapshot = stored_prints(case.warehouse), digest(case.warehouse)
    monkeypatch.setenv(variable, value)
    rc, err = case()
    line = _check(case, rc, err, reliability, "bad settings", name, before, snapshot)
    assert rc == 2 and named in line


HOLD = textwrap.dedent(
    """
    import sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    print("holding", flush=True)
    sys.stdin.readline()
    """
)


@pytest.mark.parametrize("hold_s", [None, 3.0])
def test_a_reader_holding_the_warehouse(case, hold_s, reliability, monkeypatch):
    """None: held past the writer's bound (fails with one line, nothing changes);
    3 s: released while the writer waits (the backfill completes, same rows as before)."""
    before, snapshot = stored_prints(case.warehouse), digest(case.warehouse)
    monkeypatch.setenv("FUNDING_ASSETS_LOCK_TIMEOUT", "2" if hold_s is None else "120")
    reader = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(case.warehouse)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert reader.stdout.readline().strip() == "holding"
    release = threading.Timer(hold_s or 0, lambda: (reader.stdin.write("\n"), reader.stdin.flush()))
    if hold_s is not None:
        release.start()
    started = time.monotonic()
    try:
        rc, err = case()
    finally:
        if reader.poll() is None:
            reader.stdin.write("\n")
            reader.stdin.flush()
        reader.wait(timeout=30)
        release.cancel()
    waited = time.monotonic() - started
    waits = [ln for ln in err.splitlines() if "warehouse locked by another process" in ln]
    name = "held past the 2 s bound" if hold_s is None else f"held {hold_s:g} s, released while the writer waits"
    reliability.record(
        "a reader holding the warehouse",
        name,
        expected=before,
        stored=stored_prints(case.warehouse),
        duplicates=duplicate_prints(case.warehouse),
        recovery_s=waited if hold_s is not None else None,
        user_sees=(waits[0] if waits else "") + (" / " + case.error_line(err) if rc else " / backfill completes"),
    )
    assert "Traceback" not in err
    assert len(waits) >= 1 and f"pid {reader.pid}" in waits[0]
    assert digest(case.warehouse) == snapshot
    if hold_s is None:
        assert rc == 1 and "still locked" in case.error_line(err)
    else:
        assert rc == 0, err
