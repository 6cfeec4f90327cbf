"""Shared fixtures: a throwaway data directory per test."""

from pathlib import Path

import pytest

from funding_assets.settings import ENV_VARS


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """FUNDING_ASSETS_HOME in a temp dir, simulator source, default venues and coins."""
    data = tmp_path / "data"
    for var in (*ENV_VARS, "DAGSTER_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FUNDING_ASSETS_HOME", str(data))
    return data
