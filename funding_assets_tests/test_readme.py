"""Every snippet of the README runs as written.

Python blocks are executed in a scratch directory holding what they expect (a small
warehouse under ``data/``, a ``my_prints.parquet``, the venue simulator on loopback; its
ports are substituted when 8400/8401 are taken). Every ``funding-assets`` command line of
the bash blocks parses with the real argument parser, optional ``[...]`` parts included.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import socket
from pathlib import Path

import duckdb
import polars as pl
import pytest

from funding_assets import cli

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A directory with data/warehouse.duckdb (binance BTC, two days) and my_prints.parquet."""
    root = tmp_path_factory.mktemp("readme")
    saved = dict(os.environ)
    os.environ.update(
        {
            "FUNDING_ASSETS_HOME": str(root / "data"),
            "FUNDING_ASSETS_SOURCE": "sim",
            "FUNDING_ASSETS_VENUES": "binance",
            "FUNDING_ASSETS_COINS": "BTC",
        }
    )
    os.environ.pop("DAGSTER_HOME", None)
    try:
        assert cli.main(["backfill", "--start", "2024-03-01", "--end", "2024-03-02"]) == 0
    finally:
        os.environ.clear()
        os.environ.update(saved)
    with duckdb.connect(str(root / "data" / "warehouse.duckdb"), read_only=True) as con:
        prints = con.sql(
            "SELECT venue, symbol, ts, funding_time, rate, interval_hours, kind FROM funding.raw_prints"
        ).pl()
    # and the predictions a collector would have seen during each window
    predicted = [
        prints.with_columns(kind=pl.lit("predicted"), ts=pl.col("funding_time") - pl.duration(hours=h))
        for h in (6, 3, 1)
    ]
    pl.concat([prints, *predicted]).write_parquet(root / "my_prints.parquet")
    return root


PY_BLOCKS = blocks("python")


def test_the_readme_has_python_snippets():
    assert len(PY_BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(PY_BLOCKS)))
def test_each_python_snippet_runs(index, scratch, simulator, monkeypatch):
    code = PY_BLOCKS[index]
    monkeypatch.chdir(scratch)
    monkeypatch.setenv("FUNDING_ASSETS_HOME", str(scratch / "data"))
    if "127.0.0.1:8400" in code:
        port, ws_port = free_port(), free_port()
        simulator(port=port, ws_port=ws_port)
        code = code.replace("127.0.0.1:8400", f"127.0.0.1:{port}").replace("127.0.0.1:8401", f"127.0.0.1:{ws_port}")
    tree = ast.parse(code)
    last = tree.body[-1]
    if isinstance(last, ast.Expr):  # what a notebook cell would display
        tree.body[-1] = ast.Assign(targets=[ast.Name("_shown", ctx=ast.Store())], value=last.value)
        ast.fix_missing_locations(tree)
        shown = "_shown"
    else:
        shown = last.targets[0].id
    namespace: dict = {}
    exec(compile(tree, f"README.md python block {index + 1}", "exec"), namespace)
    result = namespace[shown]
    assert type(result).__name__ == "DataFrame" and result.height > 0, f"block {index + 1} shows {result!r}"


def command_lines() -> list[str]:
    lines = []
    for block in blocks("bash"):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split("#", 1)[0].strip()
            match = re.search(r"(?:\.venv/bin/)?funding-assets (.*)$", line)
            if match and "pip install" not in line:
                lines.append(match.group(1))
    return lines


COMMANDS = command_lines()


def test_the_readme_shows_the_commands():
    assert {c.split()[0] for c in COMMANDS} >= {"backfill", "demo", "report", "collect", "status", "sim"}


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_line_parses(command):
    argv = shlex.split(command.replace("[", " ").replace("]", " ").replace("...", "binance"))
    args = cli.parser().parse_args(argv)
    assert callable(args.run)
