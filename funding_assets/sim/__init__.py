"""Synthetic funding: a deterministic model of venue funding prints (no Dagster import)."""

from .model import FundingModel

__all__ = ["FundingModel"]
