"""Binance: USD-M futures (``/fapi``, USDT and USDC linear perpetuals) and COIN-M (``/dapi``,
inverse ``BTCUSD_PERP``).

Names: ``BTCUSDT``, ``1000PEPEUSDT`` (multiplier 1000), ``BTCUSDC``, ``BTCUSD_PERP``.
Funding every 8 h unless ``/fapi/v1/fundingInfo`` lists an adjusted interval (1/2/4 h) or an
adjusted cap/floor for the symbol; realised history ``/fapi/v1/fundingRate`` is ascending,
at most 1000 rows a page; instruments from ``/fapi/v1/exchangeInfo`` (``contractType``
``PERPETUAL``, ``onboardDate``, ``deliveryDate`` for a delisted one) and
``/dapi/v1/exchangeInfo``.
"""

from __future__ import annotations

from .spec import INVERSE, USDC, USDT, Budget, Named, VenueSpec, multiplier_prefix, named

#: Request budget buckets: ``fundingRate`` and ``fundingInfo`` share one of their own, the rest
#: of the API draws ``REQUEST_WEIGHT``.
HISTORY, WEIGHT = "history", "weight"

_QUOTES = ((USDT, "USDT"), (USDC, "USDC"))


def name_of(coin: str, contract: str, multiplier: float = 1.0) -> str:
    if contract == INVERSE:
        return f"{coin}USD_PERP"
    quote = dict(_QUOTES)[contract]
    return f"{multiplier_prefix(multiplier)}{coin}{quote}"


def parse(name: str) -> Named | None:
    if name.endswith("USD_PERP"):
        return named(name.removesuffix("USD_PERP"), INVERSE)
    for contract, quote in _QUOTES:
        if name.endswith(quote) and len(name) > len(quote):
            return named(name.removesuffix(quote), contract)
    return None


SPEC = VenueSpec(
    name="binance",
    title="Binance USD-M / COIN-M",
    rest_url="https://fapi.binance.com",
    ws_url="wss://fstream.binance.com",
    contracts=(USDT, USDC, INVERSE),
    name_of=name_of,
    parse=parse,
    default_interval_hours=8.0,
    # BTC/ETH settled at +-0.375 % (ETHUSDT 2021, public history); alts are wider, per symbol
    rate_cap=0.00375,
    watchdog_s=60.0,
    ping_interval_s=180.0,
    history_page=1000,
    history_order="asc",
    instrument_paths=("/fapi/v1/exchangeInfo", "/dapi/v1/exchangeInfo", "/fapi/v1/fundingInfo"),
    budgets={
        HISTORY: Budget(500, 300.0, "fundingRate + fundingInfo: 500 requests / 5 min / IP (VENUES.md 1.2, 1.4)"),
        WEIGHT: Budget(2400, 60.0, "REQUEST_WEIGHT: 2400 / min / IP (VENUES.md 1.5, 1.6)"),
    },
    premium_decimals=8,
    client_class="funding_assets.clients.binance:Client",
    sim_class="funding_assets.sim.venues.binance:Sim",
    settlement_jitter_ms=(1, 20),
)
