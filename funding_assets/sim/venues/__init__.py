"""Each venue's protocol in the simulator: REST paths and payloads, stream protocol."""

from . import binance, bybit, deribit, hyperliquid, okx

VENUE_SIMS = {m.Sim.venue: m.Sim for m in (binance, bybit, okx, hyperliquid, deribit)}
