"""``funding-assets demo`` records its runs in the project's Dagster instance.

So a following ``funding-assets dev`` (or ``dagster dev`` with the same ``DAGSTER_HOME``)
shows the demo's partitions materialised instead of every partition missing: the demo uses
``DAGSTER_HOME`` when set, else ``./.dagster_home``, the default of ``funding-assets dev``.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from funding_assets import cli


def yesterday() -> str:
    return (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()


def raw_prints_partitions(instance: dg.DagsterInstance) -> set[str]:
    return set(instance.get_materialized_partitions(dg.AssetKey("raw_prints")))


def run_demo(capsys) -> str:
    """A one-day, one-coin demo in-process; its stdout."""
    capsys.readouterr()
    assert cli.main(["demo", "--days", "1", "--coins", "BTC"]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


@pytest.fixture
def demo_in(home, tmp_path, monkeypatch):
    """The demo's working directory (a temp dir, so ``./.dagster_home`` lands there)."""
    cwd = tmp_path / "project"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def test_dagster_home_when_set_wins_over_the_project_default(demo_in, tmp_path, monkeypatch):
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    assert cli._project_dagster_home() == dagster_home
    assert not (demo_in / cli.PROJECT_DAGSTER_HOME).exists()


def test_demo_without_dagster_home_uses_the_dev_default(demo_in, monkeypatch, capsys):
    out = run_demo(capsys)
    project = (demo_in / cli.PROJECT_DAGSTER_HOME).resolve()
    assert f"dagster runs: recorded in {project}" in out and "`funding-assets dev`" in out
    assert (project / "dagster.yaml").is_file()  # no "no dagster.yaml found" warning in dev
    monkeypatch.setenv("DAGSTER_HOME", str(project))  # what `funding-assets dev` sets
    with dg.DagsterInstance.get() as instance:
        assert f"{yesterday()}|binance" in raw_prints_partitions(instance)


def test_project_dagster_home_is_the_same_for_dev_and_demo(demo_in):
    home = cli._project_dagster_home()
    assert home == demo_in.resolve() / ".dagster_home" and (home / "dagster.yaml").read_text() == ""
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    assert cli._project_dagster_home() == home
    assert "telemetry" in (home / "dagster.yaml").read_text()  # a user's settings are kept
