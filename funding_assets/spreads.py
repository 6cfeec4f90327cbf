"""Cross-venue spread signals (DESIGN sections 2 and 4). Pure polars, no Dagster.

For each coin and each venue pair (``venue_a < venue_b`` alphabetically) at each 8h grid
window (``funding_time``) where both venues have a roll snapshot:

- ``spread = b0_a - b0_b``, in annualised decimals (0.05 = 5 percentage points a year);
- ``mean``, ``std``: of the pair's spreads over the :class:`~funding_assets.rolling.RollingWindow`
  (one convention with the feature z-scores). Default: the previous 30 observations of the
  pair (windows where both venues had a snapshot), the current one excluded, none older than
  20 days (``max_age``), null with fewer than 20 (``min_obs``); ``std`` ddof 1;
- ``z = (spread - mean) / std``; bands ``upper/lower = mean +- band_k * std`` (``band_k`` 1.5);
- ``signal`` (Int8): +1 when the spread is above the upper band (venue_a funding rich against
  venue_b), -1 below the lower band, 0 between;
- no z, band or signal without a positive ``std``: a flat window (both venues at the 0.01 %
  baseline, ``std`` 0) or one short of ``min_obs`` leaves ``z``, ``upper``, ``lower`` and
  ``signal`` null, whatever the current spread;
- ``dispersion``: standard deviation (ddof 1) of b0 across all venues at that window, and
  ``n_venues`` that contributed.

``rolling=RollingWindow.notebook(30)`` reproduces the seed notebook's pandas ``rolling(30)``
(the current spread included, 30 observations needed). A day's rows read the
``rolling.lookback_days()`` days of roll snapshots before it (:data:`LOOKBACK_DAYS` by default).
"""

from __future__ import annotations

import polars as pl

from .rolling import RollingWindow, zscore

DEFAULT_ROLLING = RollingWindow()
#: Days of roll snapshots before a day that its rolling statistics read (default window).
LOOKBACK_DAYS = DEFAULT_ROLLING.lookback_days()
PAIR = ["symbol", "venue_a", "venue_b"]

SPREAD_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "venue_a": pl.String(),
    "venue_b": pl.String(),
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


def spread_signals(roll_b0: pl.DataFrame, *, rolling: RollingWindow = DEFAULT_ROLLING) -> pl.DataFrame:
    """Spreads from roll snapshots' bucket 0: columns ``venue, symbol, funding_time, b0``
    (annualised). One row per coin, venue pair and window, columns :data:`SPREAD_SCHEMA`."""
    # venue order fixes the float order of the cross-venue std (same bytes on every run)
    b0 = roll_b0.select("venue", "symbol", "funding_time", "b0").sort("symbol", "funding_time", "venue")
    pairs = (
        b0.join(b0, on=["symbol", "funding_time"], suffix="_b")
        .filter(pl.col("venue") < pl.col("venue_b"))
        .rename({"venue": "venue_a", "b0": "b0_a"})
        .with_columns(spread=pl.col("b0_a") - pl.col("b0_b"))
    )
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
