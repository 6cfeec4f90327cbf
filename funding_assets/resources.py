"""Dagster resources: the one configuration object, the warehouse and its IO manager.

:class:`FundingConfig` is the pipeline's only configuration. ``FundingConfig.from_env()``
parses the ``FUNDING_ASSETS_*`` variables once (a bad value is refused naming the
variable); the same object is bound as the ``funding`` resource, shapes the declared
partition lookbacks when the code location loads, plans command-line backfills and drives
the sensors and schedules. Nothing else reads the environment.
"""

import functools
import os
from pathlib import Path

import dagster as dg

from . import fixedfloat, pca, strip
from .errors import FundingInputError
from .instruments import MAIN, Selection, parse_coins, parse_contracts
from .io_manager import WarehouseIOManager
from .rates import schema as rates_schema
from .rates.sources import RatesSource, open_rates_source
from .rolling import RollingWindow
from .settings import (
    ENV_ALLOW_FEWER_PRINTS,
    ENV_ANNUALISATION,
    ENV_BAND_K,
    ENV_COINS,
    ENV_CONTRACTS,
    ENV_FIXED_BANDS,
    ENV_FIXED_MAX_TERM_DAYS,
    ENV_HOME,
    ENV_INTRADAY_EVERY,
    ENV_LOCK_TIMEOUT,
    ENV_PCA_REFIT_DAYS,
    ENV_PCA_WINDOW_DAYS,
    ENV_RATES,
    ENV_RATES_INTERVAL,
    ENV_RECONSTRUCT,
    ENV_SOURCE,
    ENV_VENUES,
    ENV_Z_INCLUDE_CURRENT,
    ENV_Z_MIN_OBS,
    ENV_Z_WINDOW,
    WAREHOUSE_FILE,
    parse_annualisation,
    parse_days,
    parse_every_minutes,
    parse_flag,
    parse_list,
    parse_positive_float,
    parse_source,
    refuse_blank,
)
from .sources import Source, open_source
from .venues import DEFAULT_COINS, VENUES, check_venue
from .warehouse import Warehouse


@functools.lru_cache(maxsize=8)
def _source(spec: str) -> Source:
    # One source per process: a replay directory is parsed once, not once per run.
    return open_source(spec)


@functools.lru_cache(maxsize=8)
def _rates_source(spec: str) -> RatesSource:
    return open_rates_source(spec)


#: ``FUNDING_ASSETS_FIXED_BANDS`` values: the pipeline's rolling convention over 72 hourly
#: candles, or the seed notebook's pandas ``rolling(72)`` (current candle included) with
#: bands at 1.5 std.
FIXED_BANDS = {"trailing": fixedfloat.FIXED_ROLLING, "notebook": fixedfloat.NOTEBOOK_FIXED_ROLLING}


class FundingConfig(dg.ConfigurableResource):
    """What to compute and from where; defaults work with no setting at all.

    Units: ``pca_*_days`` in days, ``intraday_every_minutes`` in minutes (0 = every print),
    ``shock_threshold`` and ``band_k`` as annualised decimal / multiple of the std.
    ``z_window`` is a number of roll observations (``"30"``) or a duration (``"10d"``).
    """

    data_dir: str = "data"
    source: str = "sim"
    venues: list[str] = list(VENUES)
    coins: list[str] = list(DEFAULT_COINS)
    contracts: list[str] = [MAIN]
    annualisation: str = "apr"
    intraday_every_minutes: int = 10
    max_fill: int = strip.DEFAULT_MAX_FILL
    pca_window_days: int = pca.DEFAULT_WINDOW_DAYS
    pca_refit_days: int = pca.DEFAULT_REFIT_DAYS
    pca_components: int = pca.DEFAULT_COMPONENTS
    shock_threshold: float = 0.10
    z_window: str = "30"
    z_include_current: bool = False
    z_min_obs: int = 20
    band_k: float = 1.5
    lock_timeout_s: float = 120.0
    allow_fewer_prints: bool = False
    reconstruct: bool = True
    #: Coins whose intraday history is rebuilt from premium indices (``all``: every selected one).
    reconstruct_coins: list[str] = list(DEFAULT_COINS)
    #: Fixed-rate providers read (``rho``, ``boros``; empty: none) and their candle interval.
    rates: list[str] = list(rates_schema.PROVIDERS)
    rates_interval: str = "1h"
    #: The longest term (days, term start to maturity) of a fixed-rate future followed: the
    #: history of realised prints ``fixed_vs_floating`` reads back.
    fixed_max_term_days: int = 130
    #: Rolling statistics of the fixed-rate spreads: ``trailing`` or ``notebook`` (:data:`FIXED_BANDS`).
    fixed_bands: str = "trailing"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "FundingConfig":
        """The configuration from ``FUNDING_ASSETS_*`` (``os.environ`` by default)."""
        env = os.environ if environ is None else environ
        refuse_blank(env, ENV_VENUES, ENV_COINS, ENV_CONTRACTS)  # set but empty is a mistake, not the default
        config = cls(
            data_dir=env.get(ENV_HOME) or "data",
            source=parse_source(env.get(ENV_SOURCE) or "sim"),
            venues=list(parse_list(env.get(ENV_VENUES) or ",".join(VENUES), check_venue, ENV_VENUES)),
            coins=list(parse_coins((env.get(ENV_COINS) or ",".join(DEFAULT_COINS)).split(","), ENV_COINS)),
            contracts=list(parse_contracts((env.get(ENV_CONTRACTS) or MAIN).split(","), ENV_CONTRACTS)),
            annualisation=parse_annualisation(env.get(ENV_ANNUALISATION) or "apr"),
            intraday_every_minutes=parse_every_minutes(env.get(ENV_INTRADAY_EVERY) or "10m"),
            pca_window_days=parse_days(env.get(ENV_PCA_WINDOW_DAYS) or "30", ENV_PCA_WINDOW_DAYS),
            pca_refit_days=parse_days(env.get(ENV_PCA_REFIT_DAYS) or "7", ENV_PCA_REFIT_DAYS),
            z_window=(env.get(ENV_Z_WINDOW) or "30").strip(),
            z_include_current=parse_flag(env.get(ENV_Z_INCLUDE_CURRENT) or "0", ENV_Z_INCLUDE_CURRENT),
            z_min_obs=parse_days(env.get(ENV_Z_MIN_OBS) or "20", ENV_Z_MIN_OBS, lo=2, hi=10_000),
            band_k=parse_positive_float(env.get(ENV_BAND_K) or "1.5", ENV_BAND_K),
            lock_timeout_s=parse_positive_float(env.get(ENV_LOCK_TIMEOUT) or "120", ENV_LOCK_TIMEOUT),
            allow_fewer_prints=parse_flag(env.get(ENV_ALLOW_FEWER_PRINTS) or "0", ENV_ALLOW_FEWER_PRINTS),
            **parse_reconstruct(env.get(ENV_RECONSTRUCT) or "1"),
            rates=parse_rates(env.get(ENV_RATES) or ",".join(rates_schema.PROVIDERS)),
            rates_interval=rates_schema.check_interval(
                (env.get(ENV_RATES_INTERVAL) or "1h").strip(), who=ENV_RATES_INTERVAL
            ),
            fixed_max_term_days=parse_days(
                env.get(ENV_FIXED_MAX_TERM_DAYS) or "130", ENV_FIXED_MAX_TERM_DAYS, lo=7, hi=730
            ),
            fixed_bands=parse_fixed_bands(env.get(ENV_FIXED_BANDS) or "trailing"),
        )
        config.rolling()  # refuse an inconsistent window now, naming the settings
        return config

    def with_(self, **overrides) -> "FundingConfig":
        """A copy with some fields replaced (values already parsed)."""
        # a new object, not a pydantic copy: Dagster builds the resource from its constructor values
        values = {name: getattr(self, name) for name in type(self).model_fields}
        values.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in overrides.items()})
        return type(self)(**values)

    @property
    def reconstruct_selection(self) -> Selection:
        """The instruments whose intraday history is rebuilt (among the selected ones)."""
        return Selection(tuple(self.reconstruct_coins), tuple(self.contracts))

    @property
    def selection(self) -> Selection:
        """Which instruments runs cover: the coins and contract types settings."""
        return Selection(tuple(self.coins), tuple(self.contracts))

    @property
    def home(self) -> Path:
        return Path(self.data_dir)

    @property
    def warehouse_path(self) -> Path:
        return self.home / WAREHOUSE_FILE

    def rolling(self) -> RollingWindow:
        """The one rolling-statistics convention of feature z-scores and spreads."""
        try:
            return RollingWindow.from_settings(
                self.z_window, include_current=self.z_include_current, min_obs=self.z_min_obs, band_k=self.band_k
            )
        except FundingInputError as exc:
            raise FundingInputError(
                f"{ENV_Z_WINDOW}={self.z_window!r}, {ENV_Z_MIN_OBS}={self.z_min_obs}, "
                f"{ENV_Z_INCLUDE_CURRENT}={int(self.z_include_current)}: {exc}"
            ) from None

    @property
    def pca_lookback_days(self) -> int:
        """Days of strips before a day that its PCA scores read (one window plus one cadence)."""
        return pca.lookback_days(self.pca_window_days, self.pca_refit_days)

    @property
    def rolling_lookback_days(self) -> int:
        return self.rolling().lookback_days()

    def require_within(self, what: str, needed: int, declared: int, settings: str) -> None:
        """Refuse a run that would read more history than the loaded definitions declare."""
        if needed > declared:
            raise FundingInputError(
                f"{what} needs {needed} days of history with {settings}, but the definitions "
                f"were loaded declaring {declared}: set the variables before starting Dagster "
                "(or reload the code location) so the declared lookback covers them"
            )

    def open_source(self) -> Source:
        return _source(self.source)

    def open_rates_source(self) -> RatesSource:
        """Where the fixed-rate candles come from: the same ``FUNDING_ASSETS_SOURCE`` as the prints."""
        return _rates_source(self.source)

    def fixed_rolling(self) -> RollingWindow:
        """The fixed-rate spreads' rolling statistics (``FUNDING_ASSETS_FIXED_BANDS``)."""
        return FIXED_BANDS[self.fixed_bands]

    @property
    def fixed_lookback_days(self) -> int:
        """Days of candles and prints before a day that its ``fixed_vs_floating`` rows read."""
        return fixedfloat.lookback_days(self.fixed_max_term_days)

    @property
    def fixed_spreads_lookback_days(self) -> int:
        """Days of candles before a day that its fixed-rate spreads' rolling statistics read."""
        return self.fixed_rolling().lookback_days()


def parse_reconstruct(value: str) -> dict[str, object]:
    """``FUNDING_ASSETS_RECONSTRUCT``: ``1`` (BTC and ETH), ``0`` (none), ``all`` (every
    selected coin), a coin list or ``top:N``. Rebuilding needs every minute of a venue's
    premium index: cheap for a few coins, hours of requests for a whole universe."""
    text = value.strip().lower()
    if text in ("0", "false", "no", "off", "1", "true", "yes", "on"):
        on = parse_flag(text, ENV_RECONSTRUCT)
        return {"reconstruct": on, "reconstruct_coins": list(DEFAULT_COINS)}
    return {"reconstruct": True, "reconstruct_coins": list(parse_coins(value.split(","), ENV_RECONSTRUCT))}


def parse_rates(value: str) -> list[str]:
    """``FUNDING_ASSETS_RATES``: fixed-rate providers (``rho,boros``) or ``none``."""
    if value.strip().lower() == "none":
        return []
    return list(parse_list(value, rates_schema.check_provider, ENV_RATES))


def parse_fixed_bands(value: str) -> str:
    name = value.strip().lower()
    if name not in FIXED_BANDS:
        raise FundingInputError(f"{ENV_FIXED_BANDS}={value!r}: expected one of {', '.join(FIXED_BANDS)}")
    return name


def build_resources(config: FundingConfig | None = None) -> dict[str, object]:
    c = config or FundingConfig.from_env()
    warehouse = Warehouse(database=str(c.warehouse_path), lock_timeout_s=c.lock_timeout_s)
    return {
        "warehouse": warehouse,
        "io_manager": WarehouseIOManager(
            warehouse=warehouse, venues=list(c.venues), coins=list(c.coins), contracts=list(c.contracts)
        ),
        "funding": c,
    }
