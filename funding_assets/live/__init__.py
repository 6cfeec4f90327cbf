"""The live path: the collector process, its landing area and its own strip store.

The collector never opens the warehouse (DuckDB has one writer per file): it keeps each
venue's strip in memory, stores it in ``$FUNDING_ASSETS_HOME/live/`` and hands prints to the
pipeline as whole files in ``$FUNDING_ASSETS_HOME/landing/``.
"""
