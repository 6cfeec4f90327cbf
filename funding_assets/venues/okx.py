"""OKX v5 swaps: ``BTC-USDT-SWAP``, ``BTC-USDC-SWAP`` and inverse ``BTC-USD-SWAP``.

Instruments from ``/api/v5/public/instruments?instType=SWAP`` (``listTime``, ``expTime``
unused for perpetuals, ``ctMult``, ``settleCcy``); the interval is ``nextFundingTime −
fundingTime`` of ``/api/v5/public/funding-rate``; realised history is newest first, at
most 400 rows a page (100 before 2025). A silent public stream is normal for up to ~2 min.
"""

from __future__ import annotations

from .spec import INVERSE, USDC, USDT, Budget, Named, VenueSpec, named

#: Request budget buckets: ``premium-history`` has a limit of its own; the funding and
#: instrument reads share the other (OKX counts those per instId too: one bucket for all of
#: them is the stricter reading).
PUBLIC, PREMIUM = "public", "premium"

_QUOTES = {USDT: "USDT", USDC: "USDC", INVERSE: "USD"}


def name_of(coin: str, contract: str, multiplier: float = 1.0) -> str:
    return f"{coin}-{_QUOTES[contract]}-SWAP"


def parse(name: str) -> Named | None:
    parts = name.split("-")
    if len(parts) != 3 or parts[2] != "SWAP":
        return None
    contract = next((c for c, q in _QUOTES.items() if q == parts[1]), None)
    if contract is None:
        return None
    return named(parts[0], contract)


SPEC = VenueSpec(
    name="okx",
    title="OKX swaps",
    rest_url="https://www.okx.com",
    ws_url="wss://ws.okx.com:8443",
    contracts=(USDT, USDC, INVERSE),
    name_of=name_of,
    parse=parse,
    default_interval_hours=8.0,
    rate_cap=0.00375,
    watchdog_s=150.0,
    ping_interval_s=20.0,
    history_page=400,
    history_order="desc",
    instrument_paths=("/api/v5/public/instruments",),
    budgets={
        PUBLIC: Budget(
            10, 2.0, "funding-rate, funding-rate-history: 10 requests / 2 s / IP + instId (VENUES.md 3.2, 3.3)"
        ),
        PREMIUM: Budget(20, 2.0, "premium-history: 20 requests / 2 s / IP (OKX docs v5, Get premium history)"),
    },
    premium_decimals=10,
    client_class="funding_assets.clients.okx:Client",
    sim_class="funding_assets.sim.venues.okx:Sim",
)
