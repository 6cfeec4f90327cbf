"""Dagster resources: the warehouse, its IO manager and the pipeline's settings."""

import functools

import dagster as dg

from .io_manager import WarehouseIOManager
from .settings import Settings
from .sources import Source, open_source
from .warehouse import Warehouse


@functools.lru_cache(maxsize=8)
def _source(spec: str) -> Source:
    # One source per process: a replay directory is parsed once, not once per run.
    return open_source(spec)


class FundingConfig(dg.ConfigurableResource):
    """What to compute and from where. Defaults come from the FUNDING_ASSETS_* environment."""

    source: str = "sim"
    coins: list[str] = ["BTC", "ETH"]
    annualisation: str = "apr"
    intraday_every_minutes: int = 10
    max_fill: int = 2
    pca_window_days: int = 30
    pca_refit_days: int = 7
    pca_components: int = 2
    shock_threshold: float = 0.10

    def open_source(self) -> Source:
        return _source(self.source)


def build_resources(settings: Settings | None = None) -> dict[str, object]:
    s = settings or Settings.from_env()
    warehouse = Warehouse(database=str(s.warehouse_path))
    return {
        "warehouse": warehouse,
        "io_manager": WarehouseIOManager(warehouse=warehouse),
        "funding": FundingConfig(
            source=s.source,
            coins=list(s.coins),
            annualisation=s.annualisation,
            intraday_every_minutes=s.intraday_every_minutes,
            pca_window_days=s.pca_window_days,
            pca_refit_days=s.pca_refit_days,
        ),
    }
