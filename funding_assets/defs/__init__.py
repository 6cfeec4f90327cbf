"""Dagster definitions of funding_assets: assets, checks, jobs, sensors and schedules."""
