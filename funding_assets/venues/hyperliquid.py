"""Hyperliquid perpetuals (USDC-margined): ``BTC``, ``kPEPE`` (multiplier 1000).

Instruments from ``POST /info {"type":"meta"}`` (``universe[].name``, ``isDelisted``,
``szDecimals``) and ``metaAndAssetCtxs`` (open interest); funding hourly since 2023-06-08
(8 h before), capped at 4 % an hour; ``fundingHistory`` is ascending, 500 rows a page.
The server closes a connection it has sent nothing on for 60 s.
"""

from __future__ import annotations

import datetime as dt

from .spec import USDC, Budget, Named, VenueSpec, multiplier_prefix, named


def name_of(coin: str, contract: str, multiplier: float = 1.0) -> str:
    return f"{multiplier_prefix(multiplier, 'kilo')}{coin}"


def parse(name: str) -> Named | None:
    if ":" in name or not name:  # builder-deployed (HIP-3) dexes: "xyz:XYZ100"
        return None
    return named(name, USDC)


SPEC = VenueSpec(
    name="hyperliquid",
    title="Hyperliquid",
    rest_url="https://api.hyperliquid.xyz",
    ws_url="wss://api.hyperliquid.xyz",
    contracts=(USDC,),
    name_of=name_of,
    parse=parse,
    default_interval_hours=1.0,
    rate_cap=0.04,
    watchdog_s=60.0,
    ping_interval_s=50.0,
    history_page=500,
    history_order="asc",
    instrument_paths=("/info meta", "/info metaAndAssetCtxs"),
    budgets={
        "weight": Budget(
            1200,
            60.0,
            "1200 weight / min / IP; an info read weighs 20, fundingHistory 1 more per 20 rows (VENUES.md 4.5)",
        )
    },
    premium_decimals=None,
    client_class="funding_assets.clients.hyperliquid:Client",
    sim_class="funding_assets.sim.venues.hyperliquid:Sim",
    hourly_from=dt.datetime(2023, 6, 8),
    settlement_jitter_ms=(10, 1400),
)
