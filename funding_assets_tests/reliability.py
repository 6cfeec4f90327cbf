"""The reliability recorder: each fault or bad-input case leaves one row in RELIABILITY.md.

A pytest plugin. Load it from a test module and ask for the ``reliability`` fixture::

    pytest_plugins = ["reliability"]  # this file; tests import their helpers by module name

    def test_a_dropped_stream_loses_nothing(reliability):
        ...  # break something, let the system recover, compare with the truth
        reliability.record(
            "socket drops",  # fault class: one table per class in RELIABILITY.md
            "binance, dropped every 40 frames",  # the case: one row
            expected=len(truth),  # prints (or rows) the truth holds
            stored=len(got),  # what the system ended with, duplicates included
            duplicates=n_duplicates,  # rows stored more than once (same key)
            recovery_s=1.2,  # seconds from the fault to healthy again (None: not applicable)
            user_sees="status: reconnecting (ConnectionClosed)",  # the message or state shown
        )
        assert got == truth and n_duplicates == 0  # the test asserts; the recorder never does

Rules:

- ``record`` asserts nothing: the test makes its own assertions, and a row's pass/fail is
  the outcome of the test that recorded it (``xfailed`` for a known bug). A test that fails
  before recording leaves no row; ``bench/reliability.py`` then lists it as a failure from
  the JUnit report, so nothing fails silently.
- ``lost`` = expected - (stored - duplicates) when positive; ``extra`` (stored rows the
  truth does not hold) when negative. Record counts, not booleans, so the totals add up.
- Rows are appended as JSON lines to ``$FUNDING_ASSETS_RELIABILITY_OUT`` when it is set;
  otherwise recording costs nothing.
- Every test that uses the fixture carries the ``reliability`` marker (added at
  collection), so ``pytest -m reliability`` runs the whole suite and nothing else.
- Size: ``FUNDING_ASSETS_RELIABILITY_SIZE=full`` asks for the big runs (more kills, more
  fuzz examples, longer storms). Pick sizes in the test with ``reliability.sized(ci, full)``
  and ``reliability.full`` (build ``hypothesis.settings`` there too, as
  ``test_faults_clients.fuzz`` does): a test module that imports this one before pytest
  loads it as a plugin gets an assert-rewrite warning. The default CI size keeps the whole
  suite under about 90 s on 2 cores.

``.venv/bin/python bench/reliability.py [--full]`` runs the suite and writes RELIABILITY.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, TypeVar

import pytest

OUT_ENV = "FUNDING_ASSETS_RELIABILITY_OUT"
SIZE_ENV = "FUNDING_ASSETS_RELIABILITY_SIZE"
#: True when the big sizes are asked for (``FUNDING_ASSETS_RELIABILITY_SIZE=full``).
FULL = os.environ.get(SIZE_ENV, "").strip().lower() == "full"
MARKER = "reliability"
#: Cases of a minute or so (SIGKILLs, request storms): run by bench/reliability.py (which sets
#: the size), not by the plain suite, which stays well under its time budget.
HEAVY = "reliability_heavy"
SIZED = bool(os.environ.get(SIZE_ENV, "").strip())

T = TypeVar("T")


def sized(ci: T, full: T) -> T:
    """``full`` when the full size is asked for, else ``ci``."""
    return full if FULL else ci


@dataclasses.dataclass(frozen=True)
class Row:
    """One case: what was expected, what the system ended with, what the user saw."""

    fault_class: str
    case: str
    expected: int
    stored: int
    duplicates: int
    recovery_s: float | None
    user_sees: str
    test: str  # the pytest node id that recorded it
    outcome: str = "unknown"  # passed | failed | xfailed | skipped (the test's outcome)

    @property
    def lost(self) -> int:
        return max(0, self.expected - (self.stored - self.duplicates))

    @property
    def extra(self) -> int:
        return max(0, (self.stored - self.duplicates) - self.expected)

    def to_json(self) -> str:
        return json.dumps({**dataclasses.asdict(self), "lost": self.lost, "extra": self.extra}, sort_keys=True)


class Recorder:
    """The ``reliability`` fixture's value: ``record`` rows; ``full`` / ``sized`` for sizes."""

    full = FULL

    def __init__(self, test: str) -> None:
        self.test = test
        self.rows: list[Row] = []

    @staticmethod
    def sized(ci: T, full: T) -> T:
        return sized(ci, full)

    def record(
        self,
        fault_class: str,
        case: str,
        *,
        expected: int,
        stored: int,
        duplicates: int,
        recovery_s: float | None = None,
        user_sees: str = "",
    ) -> Row:
        """Keep one row (written with the test's outcome once it has run). Asserts nothing."""
        row = Row(
            fault_class,
            case,
            int(expected),
            int(stored),
            int(duplicates),
            None if recovery_s is None else float(recovery_s),
            " ".join(str(user_sees).split()),  # one line in the table
            self.test,
        )
        self.rows.append(row)
        return row

    def flush(self, outcome: str) -> None:
        path = os.environ.get(OUT_ENV)
        if not path or not self.rows:
            return
        with open(path, "a", encoding="utf-8") as out:
            for row in self.rows:
                out.write(dataclasses.replace(row, outcome=outcome).to_json() + "\n")


_OUTCOME = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}: a fault or bad-input case recorded for RELIABILITY.md (bench/reliability.py)"
    )
    config.addinivalue_line("markers", f"{HEAVY}: a slow {MARKER} case, run by bench/reliability.py only")


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "reliability" in getattr(item, "fixturenames", ()):
            item.add_marker(MARKER)
        if item.get_closest_marker(HEAVY) and not SIZED:
            item.add_marker(pytest.mark.skip(reason=f"slow: run by bench/reliability.py ({SIZE_ENV}=ci|full)"))


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: sees the report after xfail handling
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    if report.when == "call":
        if hasattr(report, "wasxfail"):
            outcome = "xpassed" if report.passed else "xfailed"
        else:
            outcome = report.outcome  # a strict xfail that passed is "failed" here
        item.stash[_OUTCOME] = outcome
    return report


@pytest.fixture
def reliability(request: pytest.FixtureRequest):
    """Record rows for RELIABILITY.md: ``reliability.record(fault_class, case, expected=...,
    stored=..., duplicates=..., recovery_s=None, user_sees="")`` (see the module docstring)."""
    recorder = Recorder(request.node.nodeid)
    yield recorder
    recorder.flush(request.node.stash.get(_OUTCOME, "failed"))
