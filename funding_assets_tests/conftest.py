"""Shared fixtures: a throwaway data directory per test, loopback simulators, and a guard
that fails any test trying to reach an address outside 127.0.0.0/8."""

import ipaddress
import socket
from pathlib import Path

import pytest

from funding_assets.settings import ENV_VARS


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """FUNDING_ASSETS_HOME in a temp dir, simulator source, default venues and coins, no
    fixed-rate markets: with them every backfill also reads the prints and strips of the
    longest fixed-rate term (130 days) before its first day. The tests of fixed against
    floating (``test_fixed_pipeline.py``, ``test_rates_*.py``) set their own."""
    data = tmp_path / "data"
    for var in (*ENV_VARS, "DAGSTER_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FUNDING_ASSETS_HOME", str(data))
    monkeypatch.setenv("FUNDING_ASSETS_RATES", "none")
    return data


@pytest.fixture
def simulator():
    """Start loopback venue simulators: ``simulator(clock=..., faults=...)``; stopped after the test."""
    from funding_assets.sim.server import SimServer

    servers = []

    def start(**kwargs) -> SimServer:
        server = SimServer(**kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _loopback_only(host) -> None:
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name == "localhost":
        return
    try:
        if ipaddress.ip_address(name).is_loopback:
            return
    except ValueError:
        pass
    raise ConnectionRefusedError(f"tests may only reach loopback addresses, not {name!r}")


@pytest.fixture(autouse=True, scope="session")
def no_network_beyond_loopback():
    """Every connection and name lookup of the suite stays on this machine."""
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        if host is not None:
            _loopback_only(host)
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _loopback_only(address[0])
        return real_connect(self, address)

    socket.getaddrinfo, socket.socket.connect = getaddrinfo, connect
    yield
    socket.getaddrinfo, socket.socket.connect = real_getaddrinfo, real_connect


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups (--dist loadgroup)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests sharing a module- or class-scoped fixture (a backfilled warehouse, a simulator)
    run in one worker, which builds it once; every other test goes wherever a worker is free."""
    for item in items:
        defs = getattr(item, "_fixtureinfo", None)
        scopes = {d.scope for fixture in (defs.name2fixturedefs.values() if defs else ()) for d in fixture}
        if scopes & {"module", "class", "package"}:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
