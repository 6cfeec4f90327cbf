"""Shared fixtures: a throwaway data directory per test and the ../shared data folder."""

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """FUNDING_ASSETS_HOME in a temp dir, simulator source, default venues and coins."""
    data = tmp_path / "data"
    monkeypatch.setenv("FUNDING_ASSETS_HOME", str(data))
    for var in ("FUNDING_ASSETS_SOURCE", "FUNDING_ASSETS_VENUES", "FUNDING_ASSETS_COINS", "DAGSTER_HOME"):
        monkeypatch.delenv(var, raising=False)
    return data


@pytest.fixture
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared (real payloads and data) is not present")
    return SHARED
