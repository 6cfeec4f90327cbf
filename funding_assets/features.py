"""Curve features of each snapshot (DESIGN section 4). Pure polars, no Dagster.

Per snapshot, with ``b0..b7`` annualised (decimals: 0.1095 = 10.95 % a year):

- ``level = b0``; ``slope = b7 - b0``; ``curvature = b2 + b5 - 2*b3``
- ``decay_k = b_k / b_(k-1)`` (k = 1..7), null where the denominator is 0
- ``shock_age``: the smallest k >= 1 with ``|b_k - b0| > shock_threshold`` (default 0.10,
  i.e. 10 percentage points annualised), null if none
- ``level_z``, ``slope_z``: ``(x - mean) / std`` against the roll snapshots of the same
  series (venue, symbol, contract), with the one convention of
  :class:`~funding_assets.rolling.RollingWindow` shared with the spreads. A row at ``ts`` = t, roll or intraday, reads the roll snapshots
  with ``ts < t`` (the current point excluded, the default) or ``ts <= t``
  (``include_current``): by default the last 30 of them not older than 20 days, null with
  fewer than 20; ``std`` ddof 1; null without a positive ``std`` (a flat window). Intraday
  rows never enter the statistics, and no row reads a snapshot after its own ts.

Rows are keyed by the series (:data:`funding_assets.strip.KEYS`: ``venue, symbol,
contract``; ``contract`` the contract type, ``usdt``/``usdc``/``inverse``). Snapshots without a
``contract`` column are one series per (venue, symbol) with a null ``contract``; the output
always has the column.

A day's rows read the ``rolling.lookback_days()`` days of roll snapshots before it
(:data:`Z_LOOKBACK_DAYS` by default). ``as_of``, when the snapshots carry it, is passed through.
"""

from __future__ import annotations

import polars as pl

from .rolling import RollingWindow, zscore
from .strip import BUCKETS, KEYS, N_BUCKETS, with_contract

DEFAULT_SHOCK_THRESHOLD = 0.10
DEFAULT_ROLLING = RollingWindow()
#: Days of snapshots before a day that its z-scores read (default window).
Z_LOOKBACK_DAYS = DEFAULT_ROLLING.lookback_days()

FEATURE_COLUMNS = [
    "level",
    "slope",
    "curvature",
    *[f"decay{k}" for k in range(1, N_BUCKETS)],
    "shock_age",
    "level_z",
    "slope_z",
]


def _shape(shock_threshold: float) -> list[pl.Expr]:
    b = [pl.col(name) for name in BUCKETS]
    decays = [pl.when(b[k - 1] != 0).then(b[k] / b[k - 1]).alias(f"decay{k}") for k in range(1, N_BUCKETS)]
    shock_age = pl.coalesce(
        [pl.when((b[k] - b[0]).abs() > shock_threshold).then(pl.lit(k)) for k in range(1, N_BUCKETS)]
    ).cast(pl.Int32)
    return [
        b[0].alias("level"),
        (b[7] - b[0]).alias("slope"),
        (b[2] + b[5] - 2 * b[3]).alias("curvature"),
        *decays,
        shock_age.alias("shock_age"),
    ]


def curve_features(
    snapshots: pl.DataFrame,
    *,
    shock_threshold: float = DEFAULT_SHOCK_THRESHOLD,
    rolling: RollingWindow = DEFAULT_ROLLING,
) -> pl.DataFrame:
    """Features for every snapshot row (roll and intraday), keyed like ``curve_snapshots``:
    ``venue, symbol, contract, kind, ts, funding_time``, ``as_of`` if present, then
    :data:`FEATURE_COLUMNS`. Buckets and features are annualised decimals; z-scores are unitless."""
    shaped = with_contract(snapshots).with_columns(_shape(shock_threshold))
    roll = shaped.filter(pl.col("kind") == "roll")
    scored = rolling.stats(roll, ["level", "slope"], time="ts", by=KEYS, at=shaped).with_columns(
        zscore(name, f"{name}_mean", f"{name}_std").alias(f"{name}_z") for name in ("level", "slope")
    )
    keys = [*KEYS, "kind", "ts", "funding_time", *(["as_of"] if "as_of" in snapshots.columns else [])]
    return scored.select(*keys, *FEATURE_COLUMNS).sort([*KEYS, "kind", "ts"])
