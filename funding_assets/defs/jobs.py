"""Jobs: instrument discovery, the per-venue chain, the PCA refit and the daily spreads."""

import dagster as dg

from .assets import curve_features, curve_snapshots, instruments, pca_factors, raw_prints, roll_b0, spread_signals
from .fixed import FIXED_ASSETS

instruments_job = dg.define_asset_job(
    "instruments_job",
    selection=dg.AssetSelection.assets(instruments),
    description="Discover every perpetual each configured venue lists (listings, delistings, caps, intervals).",
)

roll_job = dg.define_asset_job(
    "roll_job",
    selection=dg.AssetSelection.assets(raw_prints, curve_snapshots, curve_features, pca_factors),
    description="Prints -> strip -> features -> PCA fits and scores for (date, venue) partitions.",
)
pca_refit_job = dg.define_asset_job(
    "pca_refit_job",
    selection=dg.AssetSelection.assets(pca_factors),
    description="Refit the walk-forward PCA and rescore the day.",
)
spreads_job = dg.define_asset_job(
    "spreads_job",
    selection=dg.AssetSelection.assets(roll_b0, spread_signals),
    description="Bucket 0 of every venue, then the cross-venue spread signals, for a UTC day.",
)

fixed_job = dg.define_asset_job(
    "fixed_job",
    selection=dg.AssetSelection.assets(*FIXED_ASSETS),
    description="Fixed-rate candles (Rho, Boros), the day's settlements, fixed against floating and fixed-rate spreads.",
)

JOBS = [instruments_job, roll_job, pca_refit_job, spreads_job, fixed_job]
