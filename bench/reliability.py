"""The fault and bad-input suite, run and written up as RELIABILITY.md at the repository root.

Run:  .venv/bin/python bench/reliability.py [--full] [--out RELIABILITY.md] [-- <extra pytest args>]

Runs ``pytest -m reliability`` in a subprocess (the CI size by default; ``--full`` sets
``FUNDING_ASSETS_RELIABILITY_SIZE=full``: more kills, fuzz examples, longer storms), with
``FUNDING_ASSETS_RELIABILITY_OUT`` pointing at a JSON-lines file the tests' ``reliability``
fixture appends its rows to (see ``funding_assets_tests/reliability.py`` for how a test
records a row). Then renders the machine (cores, RAM), the command, a table per fault class
(expected prints, stored, lost, duplicates, recovery time, what the user sees, pass/fail)
and the totals. A test that failed before recording a row is listed from the JUnit report,
so a failure is never missing from the page. Exit code: pytest's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "funding_assets_tests"
OUT_ENV = "FUNDING_ASSETS_RELIABILITY_OUT"
SIZE_ENV = "FUNDING_ASSETS_RELIABILITY_SIZE"
MARK = {"passed": "pass", "failed": "**FAIL**", "xfailed": "known bug (xfail)", "xpassed": "xpass", "skipped": "skip"}


def machine() -> str:
    """Cores, RAM, CPU model, OS and Python of this machine, one line."""
    ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} cores ({model}), {ram_gb:.1f} GB RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def junit_results(path: Path) -> dict[str, tuple[str, float]]:
    """``{node id: (outcome, seconds)}`` from pytest's JUnit XML."""
    if not path.is_file():
        return {}
    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        parts = case.get("classname", "").split(".")  # path parts of the module, then classes
        split = next((i for i in range(len(parts), 0, -1) if (ROOT / Path(*parts[:i])).with_suffix(".py").is_file()), 0)
        node = "::".join([f"{'/'.join(parts[:split])}.py", *parts[split:], case.get("name", "")])
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
            elif child.tag == "skipped":
                outcome = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
        out[node] = (outcome, float(case.get("time") or 0.0))
    return out


def cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render(
    rows: list[dict], tests: dict[str, tuple[str, float]], *, command: str, size: str, code: int, seconds: float
) -> str:
    recorded = {r["test"] for r in rows}
    unrecorded = {node: res for node, res in tests.items() if node not in recorded and res[0] == "failed"}
    failed = [r for r in rows if r["outcome"] == "failed"]
    known = [r for r in rows if r["outcome"] == "xfailed"]
    keys = ("expected", "stored", "lost", "duplicates", "extra")
    total = {k: sum(r[k] for r in rows if r["outcome"] != "xfailed") for k in keys}
    bugs = {k: sum(r[k] for r in known) for k in keys}
    verdict = "all cases pass" if code == 0 and not failed and not unrecorded else "FAILURES (see below)"
    lines = [
        "# Reliability: nothing lost, nothing duplicated",
        "",
        f"Generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by `bench/reliability.py`; the rows are written by the "
        "tests themselves (`funding_assets_tests/reliability.py`), each case asserting what its row says.",
        "",
        f"- **Machine**: {machine()}",
        f"- **Command**: `{command}` ({size} size, pytest exit code {code}, {seconds:.0f} s wall)",
        f"- **Verdict**: {verdict}: {len(rows)} cases, {len(rows) - len(failed) - len(known)} pass, "
        f"{len(failed) + len(unrecorded)} fail, {len(known)} known bugs (strict xfail)",
        f"- **Totals** (every case but the known bugs): {total['expected']:,} expected, {total['stored']:,} stored, "
        f"**{total['lost']:,} lost**, **{total['duplicates']:,} duplicates**, {total['extra']:,} extra",
        f"- **Known bugs** (strict xfail, each a test that passes once fixed): {len(known)} cases, "
        f"{bugs['lost']:,} lost, {bugs['extra']:,} wrong prints",
        "",
        "Columns: *expected* = prints (or rows) the truth holds (the simulator's model, or a clean run); "
        "*stored* = what the system ended with, duplicates included; *lost* = expected - (stored - duplicates) "
        "when positive; *recovery* = seconds from the fault to healthy again; *user sees* = the message or state shown.",
        "",
    ]
    classes: dict[str, list[dict]] = {}
    for r in rows:
        classes.setdefault(r["fault_class"], []).append(r)
    for fault_class, group in classes.items():
        lines += [
            f"## {fault_class}",
            "",
            "| case | expected | stored | lost | duplicates | recovery | user sees | result |",
            "|---|---:|---:|---:|---:|---:|---|---|",
        ]
        for r in group:
            recovery = "-" if r["recovery_s"] is None else f"{r['recovery_s']:.2f} s"
            lost = f"{r['lost']:,}" + (f" (+{r['extra']:,} extra)" if r["extra"] else "")
            lines.append(
                f"| {cell(r['case'])} | {r['expected']:,} | {r['stored']:,} | {lost} | {r['duplicates']:,} | "
                f"{recovery} | {cell(r['user_sees']) or '-'} | {MARK.get(r['outcome'], r['outcome'])} |"
            )
        lines.append("")
    if unrecorded:
        lines += ["## Tests that failed before recording a row", "", "| test | time |", "|---|---:|"]
        lines += [f"| `{node}` | {secs:.1f} s |" for node, (_, secs) in sorted(unrecorded.items())]
        lines.append("")
    if tests:
        lines += ["## Time per test", "", "| test | result | time |", "|---|---|---:|"]
        lines += [
            f"| `{node}` | {MARK.get(outcome, outcome)} | {secs:.1f} s |"
            for node, (outcome, secs) in sorted(tests.items())
        ]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the big sizes (more kills, fuzz examples, storms)")
    parser.add_argument("--out", type=Path, default=ROOT / "RELIABILITY.md", help="where to write (default: repo root)")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()
    size = "full" if args.full else "ci"
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        rows_path, junit = Path(tmp) / "rows.jsonl", Path(tmp) / "junit.xml"
        env = {
            **os.environ,
            OUT_ENV: str(rows_path),
            SIZE_ENV: size,
            # the plugin is a top-level module of the tests folder, like the other test helpers
            "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
        }
        # one process (-n 0): the plugin writes its rows file from the process that runs the cases
        cmd = [sys.executable, "-m", "pytest", "-n", "0", "-m", "reliability", "-p", "reliability", "-q"]
        cmd += [f"--junitxml={junit}"]
        cmd += args.pytest_args
        shown = f"{SIZE_ENV}={size} " + shlex.join(["pytest", *cmd[3:]]).replace(str(junit), "<junit.xml>")
        print(f"running: {shown}", flush=True)
        t0 = time.monotonic()
        code = subprocess.call(cmd, cwd=ROOT, env=env)
        seconds = time.monotonic() - t0
        rows = [json.loads(line) for line in rows_path.read_text().splitlines()] if rows_path.is_file() else []
        tests = junit_results(junit)
    command = ".venv/bin/python bench/reliability.py" + (" --full" if args.full else "")
    args.out.write_text(render(rows, tests, command=command, size=size, code=code, seconds=seconds))
    print(f"{len(rows)} rows -> {args.out} (pytest exit code {code}, {seconds:.0f} s)")
    return code


if __name__ == "__main__":
    sys.exit(main())
