"""Cross-venue spread signals (DESIGN sections 2 and 4). Pure polars, no Dagster.

For each coin and each venue pair (``venue_a < venue_b`` alphabetically) at each 8h grid
window where both venues have a roll snapshot:

- ``spread = b0_a - b0_b`` (annualised decimals, so 0.05 = 5 percentage points)
- ``mean``, ``std``: of the spreads of the previous ``window`` (default 10 days = 30 roll
  windows; the current observation is excluded so it cannot dampen its own z-score), null
  until ``min_obs`` observations are in the window
- ``z = (spread - mean) / std``; bands ``upper/lower = mean +- band_k * std`` (band_k 1.5)
- ``signal``: +1 when the spread is above the upper band (venue_a funding rich against
  venue_b), -1 below the lower band, else 0 (also 0 while the window is too short)
- ``dispersion``: standard deviation (ddof 1) of b0 across all venues at that window, and
  ``n_venues`` that contributed.
"""

from __future__ import annotations

import polars as pl

DEFAULT_WINDOW = "10d"
DEFAULT_MIN_OBS = 20
DEFAULT_BAND_K = 1.5
#: Days of roll snapshots before a day that its rolling statistics read.
LOOKBACK_DAYS = 10

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


def spread_signals(
    roll_b0: pl.DataFrame,
    *,
    window: str = DEFAULT_WINDOW,
    min_obs: int = DEFAULT_MIN_OBS,
    band_k: float = DEFAULT_BAND_K,
) -> pl.DataFrame:
    """Spreads from roll snapshots' bucket 0: columns ``venue, symbol, funding_time, b0``."""
    # venue order fixes the float order of the cross-venue std (same bytes on every run)
    b0 = roll_b0.select("venue", "symbol", "funding_time", "b0").sort("symbol", "funding_time", "venue")
    pairs = (
        b0.join(b0, on=["symbol", "funding_time"], suffix="_b")
        .filter(pl.col("venue") < pl.col("venue_b"))
        .rename({"venue": "venue_a", "b0": "b0_a"})
        .with_columns(spread=pl.col("b0_a") - pl.col("b0_b"))
        .sort(["symbol", "venue_a", "venue_b", "funding_time"])
    )
    pair = ["symbol", "venue_a", "venue_b"]
    roll = dict(window_size=window, min_samples=min_obs, closed="left")
    stats = pairs.with_columns(
        mean=pl.col("spread").rolling_mean_by("funding_time", **roll).over(pair),
        std=pl.col("spread").rolling_std_by("funding_time", **roll).over(pair),
    ).with_columns(
        z=pl.when(pl.col("std") > 0).then((pl.col("spread") - pl.col("mean")) / pl.col("std")),
        upper=pl.col("mean") + band_k * pl.col("std"),
        lower=pl.col("mean") - band_k * pl.col("std"),
    )
    signal = (
        pl.when(pl.col("spread") > pl.col("upper"))
        .then(1)
        .when(pl.col("spread") < pl.col("lower"))
        .then(-1)
        .otherwise(0)
    )
    dispersion = b0.group_by("symbol", "funding_time", maintain_order=True).agg(
        dispersion=pl.col("b0").std(ddof=1), n_venues=pl.len()
    )
    return (
        stats.with_columns(signal=signal)
        .join(dispersion, on=["symbol", "funding_time"], how="left")
        .select(list(SPREAD_SCHEMA))
        .cast(SPREAD_SCHEMA)
        .sort([*pair, "funding_time"])
    )
