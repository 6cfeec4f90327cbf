"""Setting variables and their parsers. Defaults work with no setting at all.

The values are held by one object, :class:`funding_assets.resources.FundingConfig`, built
from these variables by ``FundingConfig.from_env()``; this module only parses and
validates (no Dagster), so every bad value is refused with the variable's name.

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
FUNDING_ASSETS_Z_WINDOW        rolling window of z-scores and spreads:    ``30``
                               observations (``30``) or a duration
                               (``10d``)
FUNDING_ASSETS_Z_INCLUDE_CURRENT  ``1``: the current observation is part  ``0``
                               of its own window (the seed notebook's
                               pandas ``rolling``)
FUNDING_ASSETS_Z_MIN_OBS       observations before a mean/std exists      ``20``
FUNDING_ASSETS_BAND_K          spread bands at mean +- k * std            ``1.5``
FUNDING_ASSETS_DEBUG           ``1``: the command line shows tracebacks   ``0``
                               and Dagster's log instead of one line
=============================  =========================================  ==============

An empty ``FUNDING_ASSETS_VENUES`` or ``FUNDING_ASSETS_COINS`` is refused on the command line
(unset the variable for the default): an empty list is never silently the full one.

The PCA window and cadence and the rolling window shape the declared partition lookbacks,
so the code location reads them when it loads; a run whose configuration needs more
history than the loaded definitions declare is refused (restart or reload to apply).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import FundingInputError

ENV_HOME = "FUNDING_ASSETS_HOME"
ENV_SOURCE = "FUNDING_ASSETS_SOURCE"
ENV_VENUES = "FUNDING_ASSETS_VENUES"
ENV_COINS = "FUNDING_ASSETS_COINS"
ENV_CONTRACTS = "FUNDING_ASSETS_CONTRACTS"
ENV_ANNUALISATION = "FUNDING_ASSETS_ANNUALISATION"
ENV_INTRADAY_EVERY = "FUNDING_ASSETS_INTRADAY_EVERY"
ENV_PCA_WINDOW_DAYS = "FUNDING_ASSETS_PCA_WINDOW_DAYS"
ENV_PCA_REFIT_DAYS = "FUNDING_ASSETS_PCA_REFIT_DAYS"
ENV_Z_WINDOW = "FUNDING_ASSETS_Z_WINDOW"
ENV_Z_INCLUDE_CURRENT = "FUNDING_ASSETS_Z_INCLUDE_CURRENT"
ENV_Z_MIN_OBS = "FUNDING_ASSETS_Z_MIN_OBS"
ENV_BAND_K = "FUNDING_ASSETS_BAND_K"
ENV_DEBUG = "FUNDING_ASSETS_DEBUG"
ENV_LOCK_TIMEOUT = "FUNDING_ASSETS_LOCK_TIMEOUT"
ENV_ALLOW_FEWER_PRINTS = "FUNDING_ASSETS_ALLOW_FEWER_PRINTS"
ENV_RECONSTRUCT = "FUNDING_ASSETS_RECONSTRUCT"
ENV_RATES = "FUNDING_ASSETS_RATES"
ENV_RATES_INTERVAL = "FUNDING_ASSETS_RATES_INTERVAL"
ENV_FIXED_MAX_TERM_DAYS = "FUNDING_ASSETS_FIXED_MAX_TERM_DAYS"
ENV_FIXED_BANDS = "FUNDING_ASSETS_FIXED_BANDS"

#: Every setting variable, e.g. for tests that need a clean environment.
ENV_VARS = (
    ENV_HOME,
    ENV_SOURCE,
    ENV_VENUES,
    ENV_COINS,
    ENV_CONTRACTS,
    ENV_ANNUALISATION,
    ENV_INTRADAY_EVERY,
    ENV_PCA_WINDOW_DAYS,
    ENV_PCA_REFIT_DAYS,
    ENV_Z_WINDOW,
    ENV_Z_INCLUDE_CURRENT,
    ENV_Z_MIN_OBS,
    ENV_BAND_K,
    ENV_LOCK_TIMEOUT,
    ENV_ALLOW_FEWER_PRINTS,
    ENV_RECONSTRUCT,
    ENV_RATES,
    ENV_RATES_INTERVAL,
    ENV_FIXED_MAX_TERM_DAYS,
    ENV_FIXED_BANDS,
)

ANNUALISATIONS = ("apr", "apy")
WAREHOUSE_FILE = "warehouse.duckdb"


def parse_list(value: str, check, setting: str) -> tuple[str, ...]:
    items = [check(v, setting) for v in value.split(",") if v.strip()]
    if not items:
        raise FundingInputError(
            f"{setting}={value!r}: empty list; give at least one name, or leave it out for the default"
        )
    return tuple(dict.fromkeys(items))


def refuse_blank(environ, *settings: str) -> None:
    """Refuse a list variable that is set but blank, which would otherwise mean its default."""
    for setting in settings:
        value = environ.get(setting)
        if value is not None and not value.strip():
            raise FundingInputError(f"{setting}={value!r}: empty list; unset it for the default or give a comma list")


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


def parse_flag(value: str, setting: str) -> bool:
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise FundingInputError(f"{setting}={value!r}: expected 1 or 0")


def parse_positive_float(value: str, setting: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number > 0 or number == float("inf"):
        raise FundingInputError(f"{setting}={value!r}: expected a positive number")
    return number


def parse_annualisation(value: str, setting: str = ENV_ANNUALISATION) -> str:
    if value not in ANNUALISATIONS:
        raise FundingInputError(f"{setting}={value!r}: expected one of {', '.join(ANNUALISATIONS)}")
    return value


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


def debug_enabled(environ=None) -> bool:
    """``FUNDING_ASSETS_DEBUG``: tracebacks and Dagster's log instead of one line (any value but 0)."""
    env = os.environ if environ is None else environ
    return (env.get(ENV_DEBUG) or "0").strip() not in ("", "0")
