"""``funding-assets dev`` stops on SIGTERM even when started in the background.

A process started with ``nohup ... &`` from a script inherits SIGINT ignored, and ``dagster
dev`` maps SIGTERM to SIGINT's handler, so plain ``dagster dev`` then ignores both and only
SIGKILL stops it (leaving its webserver and daemon behind). ``funding-assets dev`` restores
Ctrl-C first.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def wait_until_serving(port: int, proc: subprocess.Popen, limit_s: float = 180) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("dagster dev did not come up")


def test_dev_started_with_sigint_ignored_stops_on_sigterm(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDING_ASSETS_")}
    env.update(FUNDING_ASSETS_HOME=str(tmp_path / "data"), DAGSTER_HOME=str(tmp_path / "dh"))
    (tmp_path / "dh").mkdir()
    script = "import signal, sys; from funding_assets.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", script, "dev", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # what `nohup ... &` in a script does to the child
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        wait_until_serving(port, proc)
        helpers = children_of(proc.pid)
        assert helpers, "dagster dev runs its webserver and daemon as child processes"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0
        deadline = time.monotonic() + 30
        while any(alive(p) for p in helpers) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = [(p, open(f"/proc/{p}/cmdline").read()[:120]) for p in helpers if alive(p)]
        assert not left, f"processes left running after SIGTERM: {left}"
    finally:
        if proc.poll() is None:
            for child in children_of(proc.pid):
                os.kill(child, signal.SIGKILL)
            proc.kill()
