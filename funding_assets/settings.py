"""Settings from the environment. Defaults work with no setting at all.

=============================  =========================================  ==============
variable                       meaning                                    default
=============================  =========================================  ==============
FUNDING_ASSETS_HOME            data directory (warehouse, report)         ``./data``
FUNDING_ASSETS_SOURCE          ``sim``, ``exchanges`` or ``replay:<dir>`` ``sim``
FUNDING_ASSETS_VENUES          comma list of venues to work on            all five
FUNDING_ASSETS_COINS           comma list of coins                        ``BTC,ETH``
FUNDING_ASSETS_ANNUALISATION   ``apr`` (r8*1095) or ``apy`` (compound)    ``apr``
FUNDING_ASSETS_INTRADAY_EVERY  intraday sampling, e.g. ``10m``, ``0``     ``10m``
FUNDING_ASSETS_PCA_WINDOW_DAYS trailing window of each PCA fit (days)     ``30``
FUNDING_ASSETS_PCA_REFIT_DAYS  days between PCA refits                    ``7``
=============================  =========================================  ==============

The PCA window and cadence shape the declared partition lookback of ``pca_factors``, so they
are read when the definitions load.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import FundingInputError
from .venues import DEFAULT_COINS, VENUES, check_coin, check_venue

ENV_HOME = "FUNDING_ASSETS_HOME"
ENV_SOURCE = "FUNDING_ASSETS_SOURCE"
ENV_VENUES = "FUNDING_ASSETS_VENUES"
ENV_COINS = "FUNDING_ASSETS_COINS"
ENV_ANNUALISATION = "FUNDING_ASSETS_ANNUALISATION"
ENV_INTRADAY_EVERY = "FUNDING_ASSETS_INTRADAY_EVERY"
ENV_PCA_WINDOW_DAYS = "FUNDING_ASSETS_PCA_WINDOW_DAYS"
ENV_PCA_REFIT_DAYS = "FUNDING_ASSETS_PCA_REFIT_DAYS"

#: Every setting variable, e.g. for tests that need a clean environment.
ENV_VARS = (
    ENV_HOME,
    ENV_SOURCE,
    ENV_VENUES,
    ENV_COINS,
    ENV_ANNUALISATION,
    ENV_INTRADAY_EVERY,
    ENV_PCA_WINDOW_DAYS,
    ENV_PCA_REFIT_DAYS,
)

ANNUALISATIONS = ("apr", "apy")
WAREHOUSE_FILE = "warehouse.duckdb"


def parse_list(value: str, check, setting: str) -> tuple[str, ...]:
    items = [check(v, setting) for v in value.split(",") if v.strip()]
    if not items:
        raise FundingInputError(f"{setting}: empty list")
    return tuple(dict.fromkeys(items))


def parse_every_minutes(value: str, setting: str = ENV_INTRADAY_EVERY) -> int:
    """``"10m"``/``"1h"``/``"0"`` -> minutes (0 = a sample at every print)."""
    m = re.fullmatch(r"\s*(\d+)\s*([mh]?)\s*", str(value))
    if not m:
        raise FundingInputError(f"{setting}: expected minutes like '10m', '1h' or '0', got {value!r}")
    n = int(m.group(1))
    return n * 60 if m.group(2) == "h" else n


def parse_source(value: str, setting: str = ENV_SOURCE) -> str:
    text = value.strip()
    if text in ("sim", "exchanges"):
        return text
    if text.startswith("replay:"):
        folder = Path(text.removeprefix("replay:")).expanduser()
        if not folder.is_dir():
            raise FundingInputError(f"{setting}={value}: replay directory {folder} does not exist")
        return f"replay:{folder.resolve()}"
    raise FundingInputError(f"{setting}={value!r}: expected 'sim', 'exchanges' or 'replay:<dir>'")


def parse_days(value: str, setting: str, lo: int = 1, hi: int = 365) -> int:
    if not str(value).strip().isdigit() or not lo <= int(value) <= hi:
        raise FundingInputError(f"{setting}={value!r}: expected a whole number of days in {lo}..{hi}")
    return int(value)


def parse_annualisation(value: str, setting: str = ENV_ANNUALISATION) -> str:
    if value not in ANNUALISATIONS:
        raise FundingInputError(f"{setting}={value!r}: expected one of {', '.join(ANNUALISATIONS)}")
    return value


@dataclass(frozen=True)
class Settings:
    home: Path
    source: str
    venues: tuple[str, ...]
    coins: tuple[str, ...]
    annualisation: str = "apr"
    intraday_every_minutes: int = 10
    pca_window_days: int = 30
    pca_refit_days: int = 7

    @property
    def warehouse_path(self) -> Path:
        return self.home / WAREHOUSE_FILE

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            home=Path(env.get(ENV_HOME) or "data"),
            source=parse_source(env.get(ENV_SOURCE) or "sim"),
            venues=parse_list(env.get(ENV_VENUES) or ",".join(VENUES), check_venue, ENV_VENUES),
            coins=parse_list(env.get(ENV_COINS) or ",".join(DEFAULT_COINS), check_coin, ENV_COINS),
            annualisation=parse_annualisation(env.get(ENV_ANNUALISATION) or "apr"),
            intraday_every_minutes=parse_every_minutes(env.get(ENV_INTRADAY_EVERY) or "10m"),
            pca_window_days=parse_days(env.get(ENV_PCA_WINDOW_DAYS) or "30", ENV_PCA_WINDOW_DAYS),
            pca_refit_days=parse_days(env.get(ENV_PCA_REFIT_DAYS) or "7", ENV_PCA_REFIT_DAYS),
        )


def ensure_writable_home(home: Path, setting: str = ENV_HOME) -> Path:
    """Create the data directory if needed and prove it is writable, or raise naming it."""
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe = home / ".write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise FundingInputError(f"{setting}={home}: data directory is not writable ({exc.strerror or exc})") from None
    return home
