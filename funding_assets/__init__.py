"""funding_assets: perpetual-futures funding strips as Dagster assets in DuckDB.

The numeric core (no Dagster import) lives in :mod:`funding_assets.strip`,
:mod:`funding_assets.features`, :mod:`funding_assets.pca` and :mod:`funding_assets.spreads`;
researchers import those directly. Dagster wiring lives in :mod:`funding_assets.defs`.
"""

__version__ = "0.1.0"
