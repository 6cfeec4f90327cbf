"""Bybit v5: linear (USDT ``BTCUSDT``, USDC ``BTCUSDC``; legacy USDC ``BTCPERP``) and inverse
(``BTCUSD``) perpetuals.

Instruments from ``/v5/market/instruments-info?category=linear|inverse`` (cursor pages of
up to 1000, ``fundingInterval`` in minutes, ``upperFundingRate``/``lowerFundingRate``,
``launchTime``); realised history ``/v5/market/funding/history`` is newest first, at most
200 rows a page. Intervals of 1/2/4/8 h change without notice.
"""

from __future__ import annotations

from .spec import INVERSE, USDC, USDT, Budget, Named, VenueSpec, multiplier_prefix, named

_QUOTES = ((USDT, "USDT"), (USDC, "USDC"), (USDC, "PERP"), (INVERSE, "USD"))


def name_of(coin: str, contract: str, multiplier: float = 1.0) -> str:
    quote = {USDT: "USDT", USDC: "USDC", INVERSE: "USD"}[contract]
    return f"{multiplier_prefix(multiplier)}{coin}{quote}"


def parse(name: str) -> Named | None:
    if "-" in name:  # dated futures (BTCUSDT-26DEC25) and options are not perpetuals
        return None
    for contract, quote in _QUOTES:
        if name.endswith(quote) and len(name) > len(quote):
            return named(name.removesuffix(quote), contract)
    return None


SPEC = VenueSpec(
    name="bybit",
    title="Bybit linear / inverse",
    rest_url="https://api.bybit.com",
    ws_url="wss://stream.bybit.com",
    contracts=(USDT, USDC, INVERSE),
    name_of=name_of,
    parse=parse,
    default_interval_hours=8.0,
    rate_cap=0.00375,
    watchdog_s=60.0,
    ping_interval_s=20.0,
    history_page=200,
    history_order="desc",
    instrument_paths=("/v5/market/instruments-info",),
    budgets={"ip": Budget(600, 5.0, "600 requests / 5 s / IP, HTTP 403 beyond it (VENUES.md 2.5)")},
    premium_decimals=6,
    client_class="funding_assets.clients.bybit:Client",
    sim_class="funding_assets.sim.venues.bybit:Sim",
)
