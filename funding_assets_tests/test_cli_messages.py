"""Bad arguments, settings and environments end in one ``error: ...`` line, never a traceback.

Exit codes: 2 for bad input (an argument, a setting, a data directory that cannot be
written), 1 for the environment or a run failing (a host out of reach, a port in use, an
unreadable status file). Argument errors found by argparse end in its usage message and 2.
Each case also proves that nothing was written. Everything stays on loopback.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from funding_assets import cli
from funding_assets.clients import Budget, HttpClient, VenueError, client_for
from funding_assets.clients.http import VenueUnreachable
from funding_assets.live.status import read_status, status_path
from funding_assets.settings import ENV_VARS
from funding_assets.sim.server import Faults, PortInUseError, SimServer

RANGE = ["--start", "2024-02-20", "--end", "2024-02-20"]


# --------------------------------------------------------------------------- helpers


def run(capsys, *argv: str) -> tuple[int, str]:
    """``funding-assets argv`` in-process: (exit code, stderr); argparse's exit counts too."""
    capsys.readouterr()
    try:
        rc = cli.main(list(argv))
    except SystemExit as exc:
        rc = exc.code
    return rc, capsys.readouterr().err


def one_error(err: str, *fragments: str) -> str:
    """The only ``error:`` line of ``err``, holding every fragment; no traceback anywhere."""
    assert "Traceback" not in err and "Stack Trace" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def usage_error(err: str, *fragments: str) -> None:
    """argparse's refusal: a usage line, then ``funding-assets <cmd>: error: argument ...``."""
    assert "Traceback" not in err and err.startswith("usage: "), err
    last = err.strip().splitlines()[-1]
    assert ": error: argument " in last, err
    for fragment in fragments:
        assert fragment in last, f"{fragment!r} not in {last!r}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def script() -> str:
    path = Path(sys.executable).parent / "funding-assets"
    return str(path if path.exists() else shutil.which("funding-assets"))


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (*ENV_VARS, "DAGSTER_HOME")}
    return {**env, **extra}


# --------------------------------------------------------------------------- 1. read-only data directory


def _without_dac_override() -> None:
    """In the child: drop root's power to write where the mode bits say no (CAP_DAC_OVERRIDE)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop, cap_dac_override = 24, 1
    if libc.prctl(pr_capbset_drop, cap_dac_override, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_report_into_a_read_only_data_directory_names_it_and_funding_assets_home(tmp_path):
    from funding_assets.warehouse import create_statements

    home = tmp_path / "data"
    home.mkdir()
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        for statement in create_statements():
            con.execute(statement)
    before = {p.name: p.read_bytes() for p in home.iterdir()}
    home.chmod(0o555)
    try:
        proc = subprocess.run(
            [script(), "report"],
            env=clean_env(FUNDING_ASSETS_HOME=str(home)),
            capture_output=True,
            text=True,
            timeout=120,
            # root writes through mode bits: run the CLI as a root that cannot
            preexec_fn=_without_dac_override if os.geteuid() == 0 else None,
        )
    finally:
        home.chmod(0o755)
    assert proc.returncode == 2, proc.stderr
    one_error(proc.stderr, f"FUNDING_ASSETS_HOME={home}", "not writable")
    assert {p.name: p.read_bytes() for p in home.iterdir()} == before


def test_report_that_cannot_be_written_names_the_file(home, capsys):
    from funding_assets.warehouse import create_statements

    home.mkdir()
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        for statement in create_statements():
            con.execute(statement)
    (home / "report.html").mkdir()  # in the way of the rename
    rc, err = run(capsys, "report")
    assert rc == 2
    one_error(err, str(home / "report.html"), "cannot write the report")
    assert sorted(p.name for p in home.iterdir()) == ["report.html", "warehouse.duckdb"]


# --------------------------------------------------------------------------- 2. corrupt status file

CORRUPT_STATUS = {
    "garbage bytes": b"\x00\xff\xfe not json \x80",
    "truncated json": b'{"written_at": "2025-01-01T00:00:00.000", "venues": [{"venue": "bin',
    "a list": b"[1, 2, 3]",
    "venues not a list": b'{"written_at": "2025-01-01T00:00:00", "venues": {"binance": {}}}',
    "venue not an object": b'{"written_at": "2025-01-01T00:00:00", "venues": [1]}',
    "written_at a number": b'{"written_at": 5, "venues": []}',
    "count not a number": b'{"written_at": "2025-01-01T00:00:00", "venues": '
    b'[{"venue": "okx", "state": "live", "messages": "many"}]}',
    "unknown field": b'{"written_at": "2025-01-01T00:00:00", "venues": [{"venue": "okx", "state": "live", "x": 1}]}',
    "unknown state": b'{"written_at": "2025-01-01T00:00:00", "venues": [{"venue": "okx", "state": "asleep"}]}',
    "bad time": b'{"written_at": "2025-01-01T00:00:00", "venues": [{"venue": "okx", "state": "live", '
    b'"last_message_at": "yesterday"}]}',
}


@pytest.mark.parametrize("case", list(CORRUPT_STATUS))
def test_corrupt_status_file_is_unreadable_naming_it(home, capsys, case):
    path = status_path(home)
    path.parent.mkdir(parents=True)
    path.write_bytes(CORRUPT_STATUS[case])
    with pytest.raises(ValueError, match="unreadable"):  # what the live_prints sensor relies on
        read_status(path)
    rc, err = run(capsys, "status")
    assert rc == 1
    one_error(err, str(path), "unreadable")
    assert path.read_bytes() == CORRUPT_STATUS[case]


def test_status_path_that_is_a_directory_is_unreadable(home, capsys):
    path = status_path(home)
    path.mkdir(parents=True)
    with pytest.raises(ValueError, match="unreadable"):
        read_status(path)
    rc, err = run(capsys, "status")
    assert rc == 1
    one_error(err, str(path), "unreadable")


# --------------------------------------------------------------------------- 3. DAGSTER_HOME


@pytest.mark.parametrize("command", [["backfill", *RANGE, "--venues", "binance", "--coins", "BTC"], ["demo"]])
def test_relative_dagster_home_must_be_absolute(home, capsys, monkeypatch, command):
    monkeypatch.setenv("DAGSTER_HOME", "dagster-home")
    rc, err = run(capsys, *command)
    assert rc == 2
    one_error(err, "DAGSTER_HOME='dagster-home'", "absolute path to an existing directory")
    assert not home.exists() and not Path("dagster-home").exists()


@pytest.mark.parametrize("command", [["backfill", *RANGE, "--venues", "binance", "--coins", "BTC"], ["demo"]])
def test_missing_dagster_home_says_so_and_how_to_create_it(home, tmp_path, capsys, monkeypatch, command):
    missing = tmp_path / "no" / "dagster"
    monkeypatch.setenv("DAGSTER_HOME", str(missing))
    rc, err = run(capsys, *command)
    assert rc == 2
    one_error(err, f"DAGSTER_HOME={missing}", "does not exist", f"mkdir -p {missing}")
    assert not home.exists() and not missing.parent.exists()


def test_dagster_home_that_is_a_file_is_not_a_directory(home, tmp_path, capsys, monkeypatch):
    file = tmp_path / "dagster.txt"
    file.write_text("x")
    monkeypatch.setenv("DAGSTER_HOME", str(file))
    rc, err = run(capsys, "demo", "--days", "1")
    assert rc == 2
    one_error(err, f"DAGSTER_HOME={file}", "not a directory")
    assert not home.exists()


# --------------------------------------------------------------------------- 4. sim arguments


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--port", "99999"], "--port"),
        (["--port", "-1"], "--port"),
        (["--ws-port", "65536"], "--ws-port"),
        (["--ws-port", "http"], "--ws-port"),
        (["--start", "notadate"], "--start"),
        (["--start", "2025-02-30"], "--start"),
        (["--speed", "0"], "--speed"),
        (["--speed", "-2"], "--speed"),
        (["--speed", "nan"], "--speed"),
        (["--push-interval", "0"], "--push-interval"),
        (["--error-rate", "1.5"], "--error-rate"),
        (["--ws-drop-after", "-1"], "--ws-drop-after"),
    ],
)
def test_bad_sim_argument_is_a_usage_error(capsys, args, fragment):
    rc, err = run(capsys, "sim", *args)
    assert rc == 2
    usage_error(err, fragment, repr(args[1]))


@pytest.mark.parametrize(
    "text, utc",
    [
        ("2025-01-01T00:00+02:00", dt.datetime(2024, 12, 31, 22, 0)),
        ("2025-01-01T00:00:00Z", dt.datetime(2025, 1, 1)),
        ("2025-01-01T00:00", dt.datetime(2025, 1, 1)),
        ("2025-01-01", dt.datetime(2025, 1, 1)),
    ],
)
def test_sim_start_with_an_offset_is_converted_to_naive_utc(text, utc):
    assert cli.parser().parse_args(["sim", "--start", text]).start == utc


def test_sim_started_at_an_offset_serves_utc(tmp_path):
    proc = subprocess.Popen(
        [script(), "sim", "--start", "2025-01-01T00:00+02:00", "--port", "0", "--ws-port", "0"],
        env=clean_env(FUNDING_ASSETS_HOME=str(tmp_path / "data")),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [proc.stderr.readline() for _ in range(2)]
        assert "time 2024-12-31 22:00:00 x1" in lines[0], lines
        rest = lines[1].split("REST ")[1].split()[0]  # the binance line
        client = client_for("binance", rest)
        prints = client.settled("BTC", dt.datetime(2024, 12, 31), dt.datetime(2025, 1, 1, 2))
        client.close()
        # the clock is 22:00 UTC, not 00:00: the midnight settlement has not happened yet
        assert dt.datetime(2024, 12, 31, 14) <= prints["funding_time"].max() < dt.datetime(2025, 1, 1)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err, err


def test_sim_rest_and_ws_on_the_same_port_is_refused(capsys):
    rc, err = run(capsys, "sim", "--port", "8455", "--ws-port", "8455")
    assert rc == 2
    one_error(err, "--port and --ws-port are both 8455")


# --------------------------------------------------------------------------- 5. port in use


@pytest.mark.parametrize("kind, flag", [("REST", "--port"), ("WebSocket", "--ws-port")])
def test_sim_port_in_use_is_one_line_at_once(capsys, kind, flag):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = "--ws-port" if flag == "--port" else "--port"
        t0 = time.monotonic()
        rc, err = run(capsys, "sim", flag, str(port), other, "0")
        elapsed = time.monotonic() - t0
    assert rc == 1
    one_error(err, f"{kind} port {port}", "in use", flag)
    assert elapsed < 5, f"took {elapsed:.1f}s"


def test_sim_server_refuses_a_taken_websocket_port_in_the_constructor():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        t0 = time.monotonic()
        with pytest.raises(PortInUseError) as exc:
            SimServer(ws_port=port)
        assert time.monotonic() - t0 < 5
    assert exc.value.kind == "WebSocket" and exc.value.port == port


# --------------------------------------------------------------------------- 6. empty lists


@pytest.mark.parametrize("flag", ["--venues", "--coins"])
@pytest.mark.parametrize("value", ["", " , "])
def test_empty_list_flag_is_refused_naming_it(home, capsys, flag, value):
    rc, err = run(capsys, "backfill", *RANGE, flag, value)
    assert rc == 2
    one_error(err, flag, "empty list")
    assert not home.exists()


@pytest.mark.parametrize("variable", ["FUNDING_ASSETS_VENUES", "FUNDING_ASSETS_COINS"])
@pytest.mark.parametrize("value", ["", " , "])
def test_empty_list_variable_is_refused_naming_it(home, capsys, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    rc, err = run(capsys, "backfill", *RANGE)
    assert rc == 2
    one_error(err, variable, "empty list")
    assert not home.exists()


def test_empty_coins_for_demo_is_refused(home, capsys):
    rc, err = run(capsys, "demo", "--days", "1", "--coins", "")
    assert rc == 2
    one_error(err, "--coins", "empty list")
    assert not home.exists()


# --------------------------------------------------------------------------- 7. venue out of reach


def test_unreachable_host_fails_after_a_few_connect_attempts_naming_venue_and_host():
    port = free_port()
    sleeps: list[float] = []
    http = HttpClient("binance", f"http://127.0.0.1:{port}", Budget(1e9, 1), sleep=sleeps.append)
    with pytest.raises(VenueUnreachable) as exc:
        http.get("/fapi/v1/fundingRate")
    http.close()
    assert http.requests == http.connect_attempts == 3 < http.max_attempts
    assert exc.value.venue == "binance" and exc.value.host == f"127.0.0.1:{port}"
    assert f"binance: cannot reach 127.0.0.1:{port}" in str(exc.value)
    assert sum(sleeps) < 1.0


def test_server_errors_keep_their_full_retry_budget(simulator):
    server = simulator(faults=Faults(error_rate=1.0, error_statuses=(503,), retry_after_s=0.0))
    http = HttpClient("binance", server.rest_url("binance"), Budget(1e9, 1), max_attempts=5, backoff_s=0.001)
    with pytest.raises(VenueError) as exc:
        http.get("/fapi/v1/fundingRate", {"symbol": "BTCUSDT"})
    http.close()
    assert not isinstance(exc.value, VenueUnreachable)
    assert http.requests == 5 and "gave up after 5 attempts" in str(exc.value)


@pytest.fixture
def unreachable_binance(monkeypatch):
    """The ``exchanges`` source with Binance's API at a closed loopback port."""
    from funding_assets.clients import binance
    from funding_assets.resources import _source

    port = free_port()
    monkeypatch.setattr(binance.Client, "rest_url", f"http://127.0.0.1:{port}")
    _source.cache_clear()  # a source cached by another test would keep its clients
    yield port
    _source.cache_clear()


def test_backfill_from_an_unreachable_venue_is_one_line_naming_it(home, capsys, monkeypatch, unreachable_binance):
    monkeypatch.setenv("FUNDING_ASSETS_SOURCE", "exchanges")
    rc, err = run(capsys, "backfill", *RANGE, "--venues", "binance", "--coins", "BTC")
    assert rc == 1
    line = one_error(err, "binance", f"127.0.0.1:{unreachable_binance}", "cannot reach", "FUNDING_ASSETS_SOURCE=sim")
    assert "after 3 attempts" in line and "DEBUG" not in err  # a known cause: no debug hint
    assert not (home / "warehouse.duckdb").exists()


# --------------------------------------------------------------------------- 8. other bad input, the safety net


@pytest.mark.parametrize("days", ["0", "-3", "ten"])
def test_demo_days_must_be_a_positive_whole_number(home, capsys, days):
    rc, err = run(capsys, "demo", "--days", days)
    assert rc == 2
    usage_error(err, "--days", repr(days))
    assert not home.exists()


def test_demo_days_before_the_first_partition_is_refused(home, capsys):
    rc, err = run(capsys, "demo", "--days", "100000000")
    assert rc == 2
    one_error(err, "--days 100000000", "first partition 2020-01-01")
    assert not home.exists()


@pytest.mark.parametrize(
    "variable, value",
    [
        ("FUNDING_ASSETS_PCA_WINDOW_DAYS", "thirty"),
        ("FUNDING_ASSETS_Z_WINDOW", "10 weeks"),
        ("FUNDING_ASSETS_ANNUALISATION", "apz"),
        ("FUNDING_ASSETS_SOURCE", "ftp"),
        ("FUNDING_ASSETS_BAND_K", "-1"),
    ],
)
def test_backfill_with_a_bad_setting_is_one_line_naming_it(home, capsys, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    rc, err = run(capsys, "backfill", *RANGE)
    assert rc == 2
    one_error(err, variable)
    assert not home.exists()


def test_unexpected_error_is_one_line_with_the_debug_hint(home, capsys, monkeypatch):
    def boom(args, console):
        raise KeyError("surprise")

    monkeypatch.setattr(cli, "cmd_status", boom)
    rc, err = run(capsys, "status")
    assert rc == 1
    one_error(err, "unexpected KeyError", "'surprise'", "FUNDING_ASSETS_DEBUG=1")

    monkeypatch.setenv("FUNDING_ASSETS_DEBUG", "1")
    with pytest.raises(KeyError):
        cli.main(["status"])


def test_unexpected_failure_inside_a_run_is_one_line_without_dagsters_log(home, capsys, monkeypatch):
    from funding_assets.sources.venues import ClientSource

    def broken(self, venue, coins, start, end):
        raise RuntimeError("a bug in the source")

    monkeypatch.setattr(ClientSource, "fetch", broken)
    rc, err = run(capsys, "backfill", *RANGE, "--venues", "binance", "--coins", "BTC")
    assert rc == 1
    one_error(err, "raw_prints: RuntimeError: a bug in the source")
    assert "FUNDING_ASSETS_DEBUG=1" in err and " - dagster - " not in err


def test_os_error_is_one_line_naming_the_file(home, capsys, monkeypatch):
    def denied(args, console):
        raise PermissionError(13, "Permission denied", "/some/file")

    monkeypatch.setattr(cli, "cmd_status", denied)
    rc, err = run(capsys, "status")
    assert rc == 1
    one_error(err, "/some/file: Permission denied")


def test_console_script_never_prints_a_traceback_for_a_bad_start(tmp_path):
    proc = subprocess.run(
        [script(), "sim", "--start", "notadate"],
        env=clean_env(FUNDING_ASSETS_HOME=str(tmp_path / "data")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "argument --start" in proc.stderr
