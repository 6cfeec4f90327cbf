"""Cross-series spread signals (DESIGN sections 2 and 4). Pure polars, no Dagster.

A *series* of a coin is one (venue, contract) that quotes it: ``contract`` is the contract
type of the coin's perpetual on the venue (``usdt``, ``usdc``, ``inverse``), so Binance
BTCUSDT and BTCUSD_PERP are two series of BTC. For each coin and each pair of distinct series
``a < b`` (ordered by ``(venue, contract)``, a null contract ordering as ``""``) at each 8h
grid window (``funding_time``) where both series have a roll snapshot:

- ``spread = b0_a - b0_b``, in annualised decimals (0.05 = 5 percentage points a year);
- ``mean``, ``std``: of the pair's spreads over the :class:`~funding_assets.rolling.RollingWindow`
  (one convention with the feature z-scores). Default: the previous 30 observations of the
  pair (windows where both series had a snapshot), the current one excluded, none older than
  20 days (``max_age``), null with fewer than 20 (``min_obs``); ``std`` ddof 1;
- ``z = (spread - mean) / std``; bands ``upper/lower = mean +- band_k * std`` (``band_k`` 1.5);
- ``signal`` (Int8): +1 when the spread is above the upper band (series a funding rich
  against series b), -1 below the lower band, 0 between;
- no z, band or signal without a positive ``std``: a flat window (both series at the 0.01 %
  baseline, ``std`` 0) or one short of ``min_obs`` leaves ``z``, ``upper``, ``lower`` and
  ``signal`` null, whatever the current spread;
- ``dispersion``: standard deviation (ddof 1) of b0 across all series of the coin at that
  window (annualised decimals), and ``n_venues`` the number of *series* that contributed (the
  name is kept from when a venue had one series per coin).

A pair is keyed by :data:`PAIR` (``symbol, venue_a, contract_a, venue_b, contract_b``): the
same venue may appear on both sides (binance/inverse vs binance/usdt). Pairs never cross
coins: the cost is the sum over coins of (series of the coin)^2 per window. An input without
a ``contract`` column is one series per venue with a null ``contract`` (output ``contract_a``
and ``contract_b`` null).

``rolling=RollingWindow.notebook(30)`` reproduces the seed notebook's pandas ``rolling(30)``
(the current spread included, 30 observations needed). A day's rows read the
``rolling.lookback_days()`` days of roll snapshots before it (:data:`LOOKBACK_DAYS` by default).
"""

from __future__ import annotations

import polars as pl

from .rolling import RollingWindow, zscore
from .strip import with_contract

DEFAULT_ROLLING = RollingWindow()
#: Days of roll snapshots before a day that its rolling statistics read (default window).
LOOKBACK_DAYS = DEFAULT_ROLLING.lookback_days()
#: A series of a coin on the spread side: (venue, contract).
SERIES = ["venue", "contract"]
PAIR = ["symbol", "venue_a", "contract_a", "venue_b", "contract_b"]

SPREAD_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "venue_a": pl.String(),
    "contract_a": pl.String(),
    "venue_b": pl.String(),
    "contract_b": pl.String(),
    "funding_time": pl.Datetime("ms"),
    "b0_a": pl.Float64(),
    "b0_b": pl.Float64(),
    "spread": pl.Float64(),
    "mean": pl.Float64(),
    "std": pl.Float64(),
    "z": pl.Float64(),
    "upper": pl.Float64(),
    "lower": pl.Float64(),
    "signal": pl.Int8(),
    "dispersion": pl.Float64(),
    "n_venues": pl.Int32(),
}


def _bands(band_k: float) -> list[pl.Expr]:
    """z, bands and signal of ``spread`` against ``mean``/``std``: all null unless std > 0."""
    ok = pl.col("std") > 0
    upper = pl.col("mean") + band_k * pl.col("std")
    lower = pl.col("mean") - band_k * pl.col("std")
    signal = pl.when(pl.col("spread") > upper).then(1).when(pl.col("spread") < lower).then(-1).otherwise(0)
    return [
        zscore("spread", "mean", "std").alias("z"),
        pl.when(ok).then(upper).alias("upper"),
        pl.when(ok).then(lower).alias("lower"),
        pl.when(ok).then(signal).cast(pl.Int8).alias("signal"),
    ]


def _first_series(a: list[str], b: list[str]) -> pl.Expr:
    """``(venue, contract)`` of columns ``a`` strictly before that of ``b``, lexicographically,
    a null contract ordering as ``""`` (a polars comparison with null would give null)."""
    venue_a, contract_a = pl.col(a[0]), pl.col(a[1]).fill_null("")
    venue_b, contract_b = pl.col(b[0]), pl.col(b[1]).fill_null("")
    return (venue_a < venue_b) | ((venue_a == venue_b) & (contract_a < contract_b))


def _pairs(b0: pl.DataFrame) -> pl.DataFrame:
    """Every ordered pair of distinct series of a coin at a window, with ``spread = b0_a -
    b0_b``. The self-join is on (symbol, funding_time): no pair crosses coins."""
    return (
        b0.join(b0, on=["symbol", "funding_time"], suffix="_b")
        .filter(_first_series(SERIES, [f"{c}_b" for c in SERIES]))
        .rename({"venue": "venue_a", "contract": "contract_a", "b0": "b0_a"})
        .with_columns(spread=pl.col("b0_a") - pl.col("b0_b"))
    )


def spread_signals(roll_b0: pl.DataFrame, *, rolling: RollingWindow = DEFAULT_ROLLING) -> pl.DataFrame:
    """Spreads from roll snapshots' bucket 0: columns ``venue, symbol, contract, funding_time,
    b0`` (annualised decimals; ``contract`` optional, others such as ``as_of`` ignored). One
    row per coin, pair of series and window, columns :data:`SPREAD_SCHEMA`."""
    # series order fixes the float order of the cross-series std (same bytes on every run)
    b0 = (
        with_contract(roll_b0)
        .select("venue", "symbol", "contract", "funding_time", "b0")
        .sort("symbol", "funding_time", "venue", "contract")
    )
    pairs = _pairs(b0)
    stats = rolling.stats(pairs, ["spread"], time="funding_time", by=PAIR).rename(
        {"spread_mean": "mean", "spread_std": "std"}
    )
    dispersion = b0.group_by("symbol", "funding_time", maintain_order=True).agg(
        dispersion=pl.col("b0").std(ddof=1), n_venues=pl.len()
    )
    return (
        stats.with_columns(_bands(rolling.band_k))
        .join(dispersion, on=["symbol", "funding_time"], how="left")
        .select(list(SPREAD_SCHEMA))
        .cast(SPREAD_SCHEMA)
        .sort([*PAIR, "funding_time"])
    )
