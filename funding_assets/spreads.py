"""Cross-series spread signals (DESIGN sections 2 and 4). Pure polars, no Dagster.

A *series* of a coin is one (venue, contract) that quotes it: ``contract`` is the contract
type of the coin's perpetual on the venue (``usdt``, ``usdc``, ``inverse``), so Binance
BTCUSDT and BTCUSD_PERP are two series of BTC. For each coin and each pair of distinct series
``a < b`` (ordered by ``(venue, contract)``, a null contract ordering as ``""``) at each 8h
grid window (``funding_time``) where both series have a roll snapshot:

- ``spread = b0_a - b0_b``, in annualised decimals (0.05 = 5 percentage points a year);
- ``mean``, ``std``: of the pair's spreads over the :class:`~funding_assets.rolling.RollingWindow`
  (one convention with the feature z-scores). Default: the previous 30 observations of the
  pair (windows where both series had a snapshot), the current one excluded, none older than
  20 days (``max_age``), null with fewer than 20 (``min_obs``); ``std`` ddof 1;
- ``z = (spread - mean) / std``; bands ``upper/lower = mean +- band_k * std`` (``band_k`` 1.5);
- ``signal`` (Int8): +1 when the spread is above the upper band (series a funding rich
  against series b), -1 below the lower band, 0 between;
- no z, band or signal without a positive ``std``: a flat window (both series at the 0.01 %
  baseline, ``std`` 0) or one short of ``min_obs`` leaves ``z``, ``upper``, ``lower`` and
  ``signal`` null, whatever the current spread;
- ``dispersion``: standard deviation (ddof 1) of b0 across all series of the coin at that
  window (annualised decimals), and ``n_venues`` the number of *series* that contributed (the
  name is kept from when a venue had one series per coin).

A pair is keyed by :data:`PAIR` (``symbol, venue_a, contract_a, venue_b, contract_b``): the
same venue may appear on both sides (binance/inverse vs binance/usdt). Pairs never cross
coins: the cost is the sum over coins of (series of the coin)^2 per window. An input without
a ``contract`` column is one series per venue with a null ``contract`` (output ``contract_a``
and ``contract_b`` null).

``rolling=RollingWindow.notebook(30)`` reproduces the seed notebook's pandas ``rolling(30)``
(the current spread included, 30 observations needed). A day's rows read the
``rolling.lookback_days()`` days of roll snapshots before it (:data:`LOOKBACK_DAYS` by default).

The engine, :func:`pair_spreads`, is generic in the group (here the coin), the series
columns, the time and the value: the fixed-rate spreads
(:func:`funding_assets.fixedfloat.fixed_spreads`) run it on implied fixed rates.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from .rolling import RollingWindow, zscore
from .strip import with_contract

DEFAULT_ROLLING = RollingWindow()
#: Days of roll snapshots before a day that its rolling statistics read (default window).
LOOKBACK_DAYS = DEFAULT_ROLLING.lookback_days()
#: A series of a coin on the spread side: (venue, contract).
SERIES = ["venue", "contract"]
PAIR = ["symbol", "venue_a", "contract_a", "venue_b", "contract_b"]

SPREAD_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "venue_a": pl.String(),
    "contract_a": pl.String(),
    "venue_b": pl.String(),
    "contract_b": pl.String(),
    "funding_time": pl.Datetime("ms"),
    "b0_a": pl.Float64(),
    "b0_b": pl.Float64(),
    "spread": pl.Float64(),
    "mean": pl.Float64(),
    "std": pl.Float64(),
    "z": pl.Float64(),
    "upper": pl.Float64(),
    "lower": pl.Float64(),
    "signal": pl.Int8(),
    "dispersion": pl.Float64(),
    "n_venues": pl.Int32(),
}


def _bands(band_k: float) -> list[pl.Expr]:
    """z, bands and signal of ``spread`` against ``mean``/``std``: all null unless std > 0."""
    ok = pl.col("std") > 0
    upper = pl.col("mean") + band_k * pl.col("std")
    lower = pl.col("mean") - band_k * pl.col("std")
    signal = pl.when(pl.col("spread") > upper).then(1).when(pl.col("spread") < lower).then(-1).otherwise(0)
    return [
        zscore("spread", "mean", "std").alias("z"),
        pl.when(ok).then(upper).alias("upper"),
        pl.when(ok).then(lower).alias("lower"),
        pl.when(ok).then(signal).cast(pl.Int8).alias("signal"),
    ]


def _first_series(a: list[str], b: list[str]) -> pl.Expr:
    """The series in columns ``a`` strictly before the one in ``b``, lexicographically, a null
    ordering as ``""`` (a polars comparison with null would give null)."""
    col_a, col_b = pl.col(a[0]).fill_null(""), pl.col(b[0]).fill_null("")
    if len(a) == 1:
        return col_a < col_b
    return (col_a < col_b) | ((col_a == col_b) & _first_series(a[1:], b[1:]))


def pair_spreads(
    frame: pl.DataFrame,
    *,
    value: str,
    time: str,
    group: list[str],
    series: list[str],
    rolling: RollingWindow,
    carry: Sequence[str] = (),
) -> pl.DataFrame:
    """The spread engine: every pair of distinct series of a group at a time, with rolling
    statistics, bands, signal and the group's dispersion, by the rules of the module doc.

    ``frame`` has one row per (``group``, ``series``, ``carry``, ``time``) with a ``value``.
    ``series`` (String columns) names a series and orders a pair (``a < b``
    lexicographically, a null as ``""``); ``carry`` columns are carried on each side and keep
    apart two rows of one series (the pair key then holds them too). Output: ``*group``,
    ``{c}_a`` then ``{c}_b`` for ``c`` in ``series + carry`` (the pair key), ``time``,
    ``{value}_a``, ``{value}_b``, ``spread``, ``mean``, ``std``, ``z``, ``upper``,
    ``lower``, ``signal``, ``dispersion`` (std, ddof 1, of ``value`` across the group's rows
    at the time) and ``n_series`` (those rows), sorted by the pair key and ``time``.
    """
    sides = [*series, *carry]
    # series order fixes the float order of the cross-series std (same bytes on every run)
    rows = frame.select(*group, *sides, time, value).sort(*group, time, *sides)
    # the self-join is on (group, time): no pair crosses groups
    pairs = (
        rows.join(rows, on=[*group, time], suffix="_b")
        .filter(_first_series(series, [f"{c}_b" for c in series]))
        .rename({c: f"{c}_a" for c in [*sides, value]})
        .with_columns(spread=pl.col(f"{value}_a") - pl.col(f"{value}_b"))
    )
    key = [*group, *(f"{c}_a" for c in sides), *(f"{c}_b" for c in sides)]
    stats = rolling.stats(pairs, ["spread"], time=time, by=key).rename({"spread_mean": "mean", "spread_std": "std"})
    dispersion = rows.group_by(*group, time, maintain_order=True).agg(
        dispersion=pl.col(value).std(ddof=1), n_series=pl.len()
    )
    statistics = ["spread", "mean", "std", "z", "upper", "lower", "signal", "dispersion", "n_series"]
    return (
        stats.with_columns(_bands(rolling.band_k))
        .join(dispersion, on=[*group, time], how="left")
        .select(*key, time, f"{value}_a", f"{value}_b", *statistics)
        .sort([*key, time])
    )


def spread_signals(roll_b0: pl.DataFrame, *, rolling: RollingWindow = DEFAULT_ROLLING) -> pl.DataFrame:
    """Spreads from roll snapshots' bucket 0: columns ``venue, symbol, contract, funding_time,
    b0`` (annualised decimals; ``contract`` optional, others such as ``as_of`` ignored). One
    row per coin, pair of series and window, columns :data:`SPREAD_SCHEMA`."""
    b0 = with_contract(roll_b0)
    out = pair_spreads(b0, value="b0", time="funding_time", group=["symbol"], series=SERIES, rolling=rolling)
    return out.rename({"n_series": "n_venues"}).select(list(SPREAD_SCHEMA)).cast(SPREAD_SCHEMA)
