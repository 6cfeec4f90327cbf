"""Fixed-rate markets on perpetual funding: Rho and Pendle Boros as data sources.

- :mod:`~funding_assets.rates.schema` -- :data:`CANDLE_SCHEMA` (the ``fixed_rate_candles``
  frame) and :class:`Market` (one future of a provider);
- :mod:`~funding_assets.rates.units` -- how the providers write rates and times (scaled
  integers, ``BigNumber`` hex, percent-or-decimal, seconds) and their conversion to
  annualised decimals and naive UTC;
- :mod:`~funding_assets.rates.rho`, :mod:`~funding_assets.rates.boros` -- the HTTP clients
  (through :mod:`funding_assets.clients.http`: budgets, retries, :class:`VenueError`);
- :mod:`~funding_assets.rates.sources` -- :func:`open_rates_source`, the ``sim`` /
  ``exchanges`` / ``replay:<dir>`` choice of ``FUNDING_ASSETS_SOURCE``, and the replay format.

The simulator serves both providers from the funding model (:mod:`funding_assets.sim.rates`).
"""

from .paging import RatesError
from .schema import BOROS, CANDLE_SCHEMA, INTERVALS, PROVIDERS, RHO, Market
from .sources import RatesSource, open_rates_source

__all__ = [
    "BOROS",
    "CANDLE_SCHEMA",
    "INTERVALS",
    "PROVIDERS",
    "RHO",
    "Market",
    "RatesError",
    "RatesSource",
    "open_rates_source",
]
