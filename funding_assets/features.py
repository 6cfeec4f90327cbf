"""Curve features of each snapshot (DESIGN section 4). Pure polars, no Dagster.

Per snapshot, with ``b0..b7`` annualised:

- ``level = b0``; ``slope = b7 - b0``; ``curvature = b2 + b5 - 2*b3``
- ``decay_k = b_k / b_(k-1)`` (k = 1..7), null where the denominator is 0
- ``shock_age``: the smallest k >= 1 with ``|b_k - b0| > shock_threshold`` (default 0.10,
  i.e. 10 percentage points annualised), null if none
- ``level_z``, ``slope_z``: z-scores against the roll snapshots of the trailing
  ``z_window`` (default 10 days = 30 roll windows) up to and including the row's ``ts``;
  null until ``z_min_obs`` roll snapshots are in the window. The window is measured in time,
  so a data gap shortens it rather than reaching further back.
"""

from __future__ import annotations

import polars as pl

from .strip import BUCKETS, KEYS, N_BUCKETS

DEFAULT_SHOCK_THRESHOLD = 0.10
DEFAULT_Z_WINDOW = "10d"
DEFAULT_Z_MIN_OBS = 20
#: Days of snapshots before a day that its z-scores read (the window plus the day itself).
Z_LOOKBACK_DAYS = 10

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


def _roll_stats(roll: pl.DataFrame, window: str, min_obs: int) -> pl.DataFrame:
    """Trailing mean/std of level and slope at each roll snapshot (window ends at its ts)."""
    stats = []
    for name in ("level", "slope"):
        stats += [
            pl.col(name).rolling_mean_by("ts", window, min_samples=min_obs).over(KEYS).alias(f"{name}_mean"),
            pl.col(name).rolling_std_by("ts", window, min_samples=min_obs).over(KEYS).alias(f"{name}_std"),
        ]
    return roll.sort([*KEYS, "ts"]).select(*KEYS, "ts", *stats).sort("ts")


def curve_features(
    snapshots: pl.DataFrame,
    *,
    shock_threshold: float = DEFAULT_SHOCK_THRESHOLD,
    z_window: str = DEFAULT_Z_WINDOW,
    z_min_obs: int = DEFAULT_Z_MIN_OBS,
) -> pl.DataFrame:
    """Features for every snapshot row (roll and intraday), keyed like ``curve_snapshots``."""
    shaped = snapshots.with_columns(_shape(shock_threshold))
    stats = _roll_stats(shaped.filter(pl.col("kind") == "roll"), z_window, z_min_obs)
    joined = shaped.sort("ts").join_asof(
        stats.rename({"ts": "stats_ts"}),
        left_on="ts",
        right_on="stats_ts",
        by=KEYS,
        strategy="backward",
        # statistics from a roll older than the window would reach past a data gap
        tolerance=z_window,
        check_sortedness=False,
    )
    z = [
        pl.when(pl.col(f"{n}_std") > 0).then((pl.col(n) - pl.col(f"{n}_mean")) / pl.col(f"{n}_std")).alias(f"{n}_z")
        for n in ("level", "slope")
    ]
    return (
        joined.with_columns(z).select(*KEYS, "kind", "ts", "funding_time", *FEATURE_COLUMNS).sort([*KEYS, "kind", "ts"])
    )
