"""Deribit perpetuals: inverse ``BTC-PERPETUAL`` (USD-sized, coin-settled) and linear USDC
``SOL_USDC-PERPETUAL``.

Instruments from ``public/get_instruments?kind=future`` (``settlement_period`` ``perpetual``,
``creation_timestamp``, ``expiration_timestamp``, ``settlement_currency``); funding accrues
continuously and ``public/get_funding_rate_history`` gives hourly rows (ascending, about a
month per request); perpetual funding is capped at 0.5 % (8 h basis).
"""

from __future__ import annotations

from .spec import INVERSE, USDC, Budget, Named, VenueSpec, named


def name_of(coin: str, contract: str, multiplier: float = 1.0) -> str:
    return f"{coin}-PERPETUAL" if contract == INVERSE else f"{coin}_USDC-PERPETUAL"


def parse(name: str) -> Named | None:
    if not name.endswith("-PERPETUAL"):
        return None
    base = name.removesuffix("-PERPETUAL")
    if base.endswith("_USDC"):
        return named(base.removesuffix("_USDC"), USDC)
    if "_" in base:  # other linear settlements (USDT) are not served
        return None
    return named(base, INVERSE)


SPEC = VenueSpec(
    name="deribit",
    title="Deribit",
    rest_url="https://www.deribit.com",
    ws_url="wss://www.deribit.com",
    contracts=(INVERSE, USDC),
    name_of=name_of,
    parse=parse,
    default_interval_hours=1.0,
    rate_cap=0.005,
    watchdog_s=60.0,
    ping_interval_s=30.0,
    history_page=744,
    history_order="asc",
    instrument_paths=("/api/v2/public/get_instruments",),
    # credits: 500 a public request from a pool of 50 000 refilled at 10 000 a second
    budgets={"requests": Budget(100, 5.0, "50 000 credits, 10 000/s, 500 a request / IP (VENUES.md 5.4)")},
    premium_decimals=None,
    client_class="funding_assets.clients.deribit:Client",
    sim_class="funding_assets.sim.venues.deribit:Sim",
    inverse_coins=("BTC", "ETH"),
)
