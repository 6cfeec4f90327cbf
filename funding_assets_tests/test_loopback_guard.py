"""The suite's promise: no test reaches beyond this machine."""

import socket

import httpx
import pytest


def test_a_real_venue_is_unreachable_from_the_tests():
    with pytest.raises(httpx.ConnectError, match="loopback"):
        httpx.get("https://fapi.binance.com/fapi/v1/premiumIndex", timeout=2)


def test_private_and_public_addresses_are_refused_but_loopback_is_not():
    for address in ("10.0.0.1", "192.168.1.1", "8.8.8.8"):
        with socket.socket() as s, pytest.raises(ConnectionRefusedError, match="loopback"):
            s.connect((address, 80))
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.socket() as s:
            s.connect(server.getsockname())
