"""Each venue's funding formula, and predicted funding rebuilt from premium-index history.

A venue computes a window's funding rate from the premium index sampled during the window
(a premium of 0.0004 means the perpetual traded 0.04 % above its index):

- Binance, Bybit, OKX: ``F = P_avg + clamp(I - P_avg, -0.05 %, +0.05 %)``, with ``P_avg``
  the linearly weighted average of the window's samples (weights 1..n, the latest weighs
  most) and ``I`` the interest, 0.01 % per 8 h pro-rated to the native interval; then
  clamped to the venue's cap and rounded to the venue's precision.
- Hyperliquid: the same formula on an 8 h basis with the hour's plain average premium,
  paid hourly at one eighth: ``F_1h = (P + clamp(I_8h - P, +-0.05 %)) / 8``.
- Deribit: no interest, a dead band of +-0.025 % on the 8 h rate,
  ``F_8h = max(0.025 %, P) + min(-0.025 %, P)``, accrued continuously (hourly prints carry
  one eighth) and applied here to the window's mean premium.

``P + clamp(I - P, -c, c)`` is computed as ``clamp(I, P - c, P + c)`` (the same number): the
interest comes out exactly when the clamp is inactive.

**Rounding** (:func:`round_rates`): half-even at the venue's decimals, as exact decimal
arithmetic on decimal inputs would round. A float within :data:`DECIMAL_SLACK` of a decimal
tie *is* that tie: float noise never decides it. On Hyperliquid's published history (2024-25,
premium and rate both at 10 decimals) this reproduces every hour to within one unit of the
last decimal and 97.4 % (BTC) / 96.7 % (ETH) exactly: every other hour is an exact tie of
the formula on the published premium (``(P -+ c)/8`` ends in 5 at the 11th decimal), which
the venue resolved from its unrounded premium, up or down about equally often; no rounding
rule resolves it from the published premium.

**Reconstruction** (:func:`reconstruct`): the predicted rate a venue quoted at each instant
``t`` of a native window ``(funding_time - interval_hours, funding_time]``, the formula over
the window's samples with ``ts`` in ``(start, t]`` (weights restart at every window). It
reads no sample after ``t``. :func:`validate` compares each settled window's full-window
value with the settled rate; :func:`summary` condenses that per venue.

Premium samples (:data:`PREMIUM_SCHEMA`): ``ts`` is the instant the sample is known (the
end of its minute for 1-minute samples, the hour's end for Hyperliquid's hourly averages),
naive UTC ms; ``premium`` a decimal fraction. Rates are decimal fractions per native
interval. Nothing here knows about Dagster or the environment.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Mapping

import numpy as np
import polars as pl

from .errors import FundingInputError
from .prints import MS, PREDICTED, PRINT_SCHEMA, REALISED, TS, as_utc_ms, main_contracts, normalise
from .venues import RATE_CAPS, venue_symbol

INTEREST_8H = 0.0001  # 0.01 % per 8 h (0.03 % a day)
CLAMP = 0.0005  # +-0.05 % around the interest
DERIBIT_DEAD_BAND = 0.00025  # +-0.025 %

#: Two floats that stand for decimals and lie closer than this are the same decimal: the
#: formula's float error on premiums below 1 is orders of magnitude smaller, and rates are
#: published with at most 10 decimals.
DECIMAL_SLACK = 1e-15

#: ``source`` of the predicted prints :func:`reconstruct` makes.
RECONSTRUCTED = "reconstructed"

#: Premium-index samples, one row per venue, coin, contract and instant (a frame without
#: ``contract`` is the venue's main perpetual of each coin).
PREMIUM_SCHEMA: dict[str, pl.DataType] = {
    "venue": pl.String(),
    "symbol": pl.String(),
    "contract": pl.String(),
    "ts": TS,
    "premium": pl.Float64(),
}

HOUR_MS = 3_600_000
MINUTE_MS = 60_000
#: Samples processed at once (whole windows), which bounds memory however long the history.
BLOCK_SAMPLES = 500_000


@dataclasses.dataclass(frozen=True)
class Formula:
    """How one venue turns a window's premium samples into its settled rate."""

    venue: str
    averaging: str  # "linear" (weights 1..n) or "mean"
    interest_8h: float  # interest component per 8 h (0 for none)
    clamp: float  # half-width of the clamp around the interest (or the dead band for Deribit)
    basis_hours: float | None  # the formula's own basis (8 for Hyperliquid/Deribit); None: the native interval
    decimals: int  # the venue's rounding of the published rate
    cap: float  # |rate| cap per native interval

    def running_averages(self, premiums: np.ndarray, window: np.ndarray | None = None) -> np.ndarray:
        """At each sample, the average of its window's samples so far.

        ``premiums`` oldest first within each window; ``window`` (None: one window) keys the
        windows, each a contiguous run of samples, and the weights restart in each. Sums
        run sample by sample from the window's first, so the value after a sample never
        depends on what follows it, nor on other windows.
        """
        p = np.asarray(premiums, dtype=np.float64)
        linear = self.averaging == "linear"
        if window is None:
            # one window: numpy's running sum adds in the same order as polars' (same floats)
            k = np.arange(1, p.size + 1, dtype=np.float64)
            sums = np.cumsum(p * k if linear else p)
            return sums / (k * (k + 1.0) / 2.0 if linear else k)
        win = np.asarray(window)
        first = np.flatnonzero(np.r_[True, win[1:] != win[:-1]]) if p.size else np.zeros(0, dtype=np.int64)
        k = (np.arange(p.size) - np.repeat(first, np.diff(np.r_[first, p.size])) + 1).astype(np.float64)
        frame = pl.DataFrame({"win": win, "x": p * k if linear else p})
        sums = frame.select(pl.col("x").cum_sum().over("win"))["x"].to_numpy()
        return sums / (k * (k + 1.0) / 2.0 if linear else k)

    def average(self, premiums: np.ndarray) -> float:
        """The window's average premium from its samples, oldest first."""
        p = np.asarray(premiums, dtype=np.float64)
        if p.size == 0:
            raise ValueError(f"{self.venue}: no premium samples")
        return float(self.running_averages(p)[-1])

    def rates_from_averages(self, p_avg: np.ndarray, interval_hours: np.ndarray | float) -> np.ndarray:
        """The rate per native interval for each average premium (vectorised, rounded)."""
        p = np.asarray(p_avg, dtype=np.float64)
        hours = np.broadcast_to(np.asarray(interval_hours, dtype=np.float64), p.shape)
        if self.venue == "deribit":
            f_basis = np.maximum(self.clamp, p) + np.minimum(-self.clamp, p)
        else:
            interest = self.interest_8h * ((self.basis_hours or hours) / 8.0)
            f_basis = np.minimum(np.maximum(interest, p - self.clamp), p + self.clamp)
        rate = f_basis * (hours / self.basis_hours) if self.basis_hours else f_basis
        return round_rates(np.clip(rate, -self.cap, self.cap), self.decimals)

    def rate_from_average(self, p_avg: float, interval_hours: float) -> float:
        """The rate per native interval for an average premium ``p_avg``."""
        return float(self.rates_from_averages(np.array([p_avg]), interval_hours)[0])

    def rate(self, premiums: np.ndarray, interval_hours: float) -> float:
        """The rate the venue settles for a window whose samples are ``premiums`` (oldest first)."""
        return self.rate_from_average(self.average(premiums), interval_hours)


def round_rates(rates: np.ndarray, decimals: int) -> np.ndarray:
    """``rates`` rounded half-even at ``decimals`` places, as the venue publishes them.

    Exact in decimal: each result is the float nearest the rounded decimal, and a rate
    within :data:`DECIMAL_SLACK` of a tie rounds as the tie (to the even last digit).
    """
    x = np.asarray(rates, dtype=np.float64)
    scale = 10.0**decimals
    below = np.floor(x * scale)
    tie = (below + 0.5) / scale
    is_tie = np.abs(x - tie) <= DECIMAL_SLACK
    units = np.where(is_tie, below + np.mod(below, 2.0), np.where(x > tie, below + 1.0, below))
    return units / scale


def round_rate(rate: float, decimals: int) -> float:
    """``rate`` rounded half-even at ``decimals`` places, as the venue publishes it (exact in decimal)."""
    return float(round_rates(np.array([rate]), decimals)[0])


FORMULAS: dict[str, Formula] = {
    "binance": Formula("binance", "linear", INTEREST_8H, CLAMP, None, 8, RATE_CAPS["binance"]),
    "bybit": Formula("bybit", "linear", INTEREST_8H, CLAMP, None, 8, RATE_CAPS["bybit"]),
    "okx": Formula("okx", "linear", INTEREST_8H, CLAMP, None, 8, RATE_CAPS["okx"]),
    "hyperliquid": Formula("hyperliquid", "mean", INTEREST_8H, CLAMP, 8.0, 10, RATE_CAPS["hyperliquid"]),
    "deribit": Formula("deribit", "mean", 0.0, DERIBIT_DEAD_BAND, 8.0, 10, RATE_CAPS["deribit"]),
}


def formula(venue: str) -> Formula:
    return FORMULAS[venue]


# --------------------------------------------------------------------------- reconstruction


def reconstruct(
    premium: pl.DataFrame,
    settled: pl.DataFrame,
    every_minutes: int = 10,
    current_interval: float | None = None,
    caps: Mapping[tuple[str, str, str], float] | None = None,
) -> pl.DataFrame:
    """Predicted prints rebuilt from premium samples, in :data:`~funding_assets.prints.PRINT_SCHEMA`.

    Series are (venue, coin, contract). ``caps``: an instrument's own |rate| cap per native
    interval where it differs from the venue's (alts settle up to +-2 %), by series key.

    Native windows come from the realised prints of ``settled`` (``funding_time`` and
    ``interval_hours``), plus, per venue and coin, the window still open after the last
    settlement when samples exist beyond it (its length ``current_interval`` when given,
    else the last settled interval; samples past its end are not read). In each window a
    print at every ``every_minutes`` instant of the UTC clock grid inside ``(start, end)``
    and at ``end``; ``every_minutes=0``: at every sample's ``ts`` and at ``end``. A print at
    ``t`` is the venue's formula over the window's samples with ``ts <= t``; before the
    window's first sample there is none, and a window without samples has no prints. The
    open window is printed to its end as though no sample were to come: drop prints past
    the data's end if they must not exist. ``kind='predicted'``, ``source='reconstructed'``.
    """
    _check_options(every_minutes, current_interval)
    parts = []
    for form, windows, running in _series(premium, settled, True, current_interval, caps):
        grid = _grid(windows, running, every_minutes)
        at = grid.join_asof(
            running, left_on="t", right_on="ts", by="win", strategy="backward", check_sortedness=False
        ).filter(pl.col("avg").is_not_null())
        at = at.join(windows, on="win", how="left")
        rate = form.rates_from_averages(at["avg"].to_numpy(), at["interval_hours"].to_numpy())
        parts.append(
            at.select(
                "venue",
                "symbol",
                "contract",
                "venue_symbol",
                pl.col("t").alias("ts"),
                pl.col("end").alias("funding_time"),
                pl.Series("rate", rate, pl.Float64),
                "interval_hours",
                kind=pl.lit(PREDICTED),
                source=pl.lit(RECONSTRUCTED),
            )
        )
    if not parts:
        return pl.DataFrame(schema=PRINT_SCHEMA)
    return pl.concat(parts).cast(PRINT_SCHEMA).sort(["venue", "symbol", "contract", "ts", "funding_time"])


def validate(
    premium: pl.DataFrame,
    settled: pl.DataFrame,
    tolerance: float | None = None,
    caps: Mapping[tuple[str, str, str], float] | None = None,
) -> pl.DataFrame:
    """Each settled window's full-window reconstruction against its settled rate.

    One row per settled native window: ``venue, symbol, venue_symbol, funding_time,
    interval_hours, n_samples, settled, reconstructed`` (null without samples), ``diff =
    reconstructed - settled``, ``tolerance`` (default: one unit of the venue's last
    published decimal), ``within`` (``|diff| <= tolerance``) and ``exact`` (the same
    decimal); both false without a reconstruction.
    """
    if tolerance is not None and not tolerance >= 0:
        raise FundingInputError(f"tolerance must be a non-negative rate, got {tolerance!r}")
    parts = []
    for form, windows, running in _series(premium, settled, False, None, caps):
        full = running.group_by("win").agg(n_samples=pl.len(), avg=pl.col("avg").last())
        rows = windows.filter(pl.col("settled").is_not_null()).join(full, on="win", how="left").sort("win")
        has_avg = rows["avg"].is_not_null().to_numpy()
        rate = np.full(rows.height, np.nan)
        rate[has_avg] = form.rates_from_averages(
            rows["avg"].to_numpy()[has_avg], rows["interval_hours"].to_numpy()[has_avg]
        )
        parts.append(
            rows.select(
                "venue",
                "symbol",
                "contract",
                "venue_symbol",
                pl.col("end").alias("funding_time"),
                "interval_hours",
                pl.col("n_samples").fill_null(0).cast(pl.Int64),
                "settled",
                pl.Series("reconstructed", rate, pl.Float64).fill_nan(None),
                tolerance=pl.lit(10.0**-form.decimals if tolerance is None else tolerance, pl.Float64),
            )
        )
    if not parts:
        return pl.DataFrame(schema=VALIDATION_SCHEMA)
    diff = pl.col("reconstructed") - pl.col("settled")
    return (
        pl.concat(parts)
        .with_columns(diff=diff)
        .with_columns(
            within=(pl.col("diff").abs() <= pl.col("tolerance") + DECIMAL_SLACK).fill_null(False),
            exact=(pl.col("diff").abs() <= DECIMAL_SLACK).fill_null(False),
        )
        .select(list(VALIDATION_SCHEMA))
        .sort(["venue", "symbol", "contract", "funding_time"])
    )


VALIDATION_SCHEMA: dict[str, pl.DataType] = {
    "venue": pl.String(),
    "symbol": pl.String(),
    "contract": pl.String(),
    "venue_symbol": pl.String(),
    "funding_time": TS,
    "interval_hours": pl.Float64(),
    "n_samples": pl.Int64(),
    "settled": pl.Float64(),
    "reconstructed": pl.Float64(),
    "diff": pl.Float64(),
    "tolerance": pl.Float64(),
    "within": pl.Boolean(),
    "exact": pl.Boolean(),
}


def summary(validation: pl.DataFrame, worst: int = 5) -> pl.DataFrame:
    """Per venue, how well reconstruction reproduces settlement (from :func:`validate`).

    Columns: ``venue``, ``windows`` (settled), ``compared`` (with a reconstruction),
    ``within_share`` and ``exact_share`` (of ``compared``; null when none), ``max_abs_diff``
    and ``worst``: the ``worst`` largest misses, each ``{symbol, funding_time,
    interval_hours, n_samples, settled, reconstructed, diff}``, largest first.
    """
    compared = pl.col("reconstructed").is_not_null()
    miss = pl.struct(
        "symbol", "contract", "funding_time", "interval_hours", "n_samples", "settled", "reconstructed", "diff"
    )
    return (
        validation.sort(
            pl.col("diff").abs(), "symbol", "funding_time", descending=[True, False, False], nulls_last=True
        )
        .group_by("venue", maintain_order=True)
        .agg(
            windows=pl.len(),
            compared=compared.sum(),
            within=(pl.col("within") & compared).sum(),
            exact=(pl.col("exact") & compared).sum(),
            max_abs_diff=pl.col("diff").abs().max(),
            worst=miss.filter(compared & ~pl.col("exact")).head(worst),
        )
        .select(
            "venue",
            "windows",
            "compared",
            within_share=pl.when(pl.col("compared") > 0).then(pl.col("within") / pl.col("compared")),
            exact_share=pl.when(pl.col("compared") > 0).then(pl.col("exact") / pl.col("compared")),
            max_abs_diff=pl.col("max_abs_diff"),
            worst=pl.col("worst"),
        )
        .sort("venue")
    )


# --------------------------------------------------------------------------- internals


def _check_options(every_minutes: int, current_interval: float | None) -> None:
    if isinstance(every_minutes, bool) or not isinstance(every_minutes, int) or every_minutes < 0:
        raise FundingInputError(f"every_minutes must be a whole number of minutes >= 0, got {every_minutes!r}")
    if current_interval is not None and not current_interval > 0:
        raise FundingInputError(f"current_interval must be a positive number of hours, got {current_interval!r}")


def _samples(
    premium: pl.DataFrame, wanted: set[tuple[str, str, str]]
) -> Iterator[tuple[tuple[str, str, str], pl.DataFrame]]:
    """The ``wanted`` venue/coin/contract series of premium samples (key order): ``ts, premium``, ts order.

    Nulls and NaNs are no samples; a repeated sample counts once; two different premiums
    at one instant are an error. A series is materialised only when its turn comes.
    """
    missing = [c for c in PREMIUM_SCHEMA if c not in premium.columns and c != "contract"]
    if missing:
        raise FundingInputError(f"premium: missing column(s) {', '.join(missing)}")
    if "contract" not in premium.columns:
        premium = premium.with_columns(contract=main_contracts(premium))
    elif premium["contract"].null_count():
        premium = premium.with_columns(pl.col("contract").fill_null(main_contracts(premium)))
    samples = (
        premium.lazy()
        .select(
            pl.col("venue").cast(pl.String),
            pl.col("symbol").cast(pl.String),
            pl.col("contract").cast(pl.String),
            as_utc_ms(pl.col("ts"), premium.schema["ts"], "ts").alias("ts"),
            pl.col("premium").cast(pl.Float64).fill_nan(None),
        )
        .drop_nulls()
    )
    keys = sorted(samples.select("venue", "symbol", "contract").unique().collect().iter_rows())
    unknown = sorted({key[0] for key in keys} - set(FORMULAS))
    if unknown:
        raise FundingInputError(f"premium: unknown venue(s) {', '.join(unknown)}; known: {', '.join(FORMULAS)}")
    for venue, symbol, contract in (key for key in keys if key in wanted):
        series = samples.filter(venue=venue, symbol=symbol, contract=contract).select("ts", "premium").collect()
        yield (venue, symbol, contract), _one_per_instant(series, venue, f"{symbol} {contract}")


def _one_per_instant(series: pl.DataFrame, venue: str, symbol: str) -> pl.DataFrame:
    ordered = series if series["ts"].is_sorted() else series.sort("ts", maintain_order=True)
    repeat = pl.col("ts") == pl.col("ts").shift()
    clash = ordered.filter(repeat & (pl.col("premium") != pl.col("premium").shift()))
    if clash.height:
        raise FundingInputError(f"premium: two different samples for {venue} {symbol} at {clash['ts'][0]}")
    return ordered.filter(repeat.not_().fill_null(True))


def _settled_windows(settled: pl.DataFrame) -> pl.DataFrame:
    """One row per settled native window: the last published realised print of each ``funding_time``."""
    frame = settled if "venue_symbol" in settled.columns else settled.with_columns(venue_symbol=pl.lit(None, pl.String))
    prints = normalise(frame).filter(pl.col("kind") == REALISED)
    return (
        prints.sort(["venue", "symbol", "contract", "funding_time", "published_at"], maintain_order=True)
        .unique(["venue", "symbol", "contract", "funding_time"], keep="last", maintain_order=True)
        .select(
            "venue",
            "symbol",
            "contract",
            pl.col("venue_symbol").cast(pl.String),
            pl.col("funding_time").alias("end"),
            "interval_hours",
            pl.col("rate").alias("settled"),
        )
    )


def _series(
    premium: pl.DataFrame,
    settled: pl.DataFrame,
    open_window: bool,
    current_interval: float | None = None,
    caps: Mapping[tuple[str, str, str], float] | None = None,
) -> Iterator[tuple[Formula, pl.DataFrame, pl.DataFrame]]:
    """Per venue, coin and contract with both, block by block: its formula (with the
    instrument's own cap from ``caps``), windows and running averages.

    ``windows``: ``win`` (0.. in end order), venue, symbol, contract, venue_symbol, start, end,
    interval_hours, settled (null for the open window). ``running``: ``win, ts, avg`` for
    every sample of each window (a sample in two overlapping windows counts in both),
    ordered by ``win, ts``. A block holds whole windows and about :data:`BLOCK_SAMPLES`
    samples, so memory stays bounded however long the history.
    """
    settled_windows = _settled_windows(settled).partition_by(["venue", "symbol", "contract"], as_dict=True)
    for key, series in _samples(premium, set(settled_windows)):
        form = FORMULAS[key[0]]
        if caps and caps.get(key):
            form = dataclasses.replace(form, cap=caps[key])
        windows = settled_windows[key].sort("end")
        if open_window:
            windows = _with_open_window(windows, series["ts"].max(), current_interval)
        windows = windows.with_columns(
            venue_symbol=pl.col("venue_symbol").fill_null(_default_venue_symbol(*key)),
            start=pl.col("end") - pl.duration(milliseconds=(pl.col("interval_hours") * HOUR_MS).round().cast(pl.Int64)),
        ).with_row_index("win")
        ts_ms = series["ts"].dt.epoch(MS).to_numpy()
        lo = np.searchsorted(ts_ms, windows["start"].dt.epoch(MS).to_numpy(), side="right")
        n = np.searchsorted(ts_ms, windows["end"].dt.epoch(MS).to_numpy(), side="right") - lo
        block = np.r_[0, np.cumsum(n)[:-1]] // BLOCK_SAMPLES
        for first, last in zip(*_runs(block)):
            counts = n[first:last]
            win = np.repeat(np.arange(first, last), counts)
            rows = (
                np.arange(win.size) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(lo[first:last], counts)
            )
            samples = series[rows]
            running = pl.DataFrame(
                {
                    "win": pl.Series(win, dtype=pl.UInt32),
                    "ts": samples["ts"],
                    "avg": form.running_averages(samples["premium"].to_numpy(), win),
                }
            )
            yield form, windows.slice(first, last - first), running


def _runs(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[first, last)`` index bounds of each run of equal values in ``block``."""
    first = np.flatnonzero(np.r_[True, block[1:] != block[:-1]])
    return first, np.r_[first[1:], block.size]


def _with_open_window(windows: pl.DataFrame, last_sample: dt.datetime, current_interval: float | None) -> pl.DataFrame:
    """``windows`` (end order) and, when samples go past the last, the open one after it."""
    last = windows.row(-1, named=True)
    if last_sample <= last["end"]:
        return windows
    hours = current_interval if current_interval is not None else last["interval_hours"]
    open_end = last["end"] + dt.timedelta(milliseconds=round(hours * HOUR_MS))
    open_window = windows.tail(1).select(
        "venue",
        "symbol",
        "contract",
        "venue_symbol",
        end=open_end,
        interval_hours=pl.lit(float(hours)),
        settled=pl.lit(None),
    )
    return pl.concat([windows, open_window.cast(windows.schema)])


def _grid(windows: pl.DataFrame, running: pl.DataFrame, every_minutes: int) -> pl.DataFrame:
    """Print instants ``win, t``: each window's clock grid (or its samples' ts) inside it, and its end."""
    ends = windows.select("win", t=pl.col("end"))
    if every_minutes == 0:
        inner = running.select("win", t=pl.col("ts"))
    else:
        step = every_minutes * MINUTE_MS
        first = (pl.col("start").dt.epoch(MS) // step + 1) * step
        inner = windows.select(
            "win",
            t=pl.datetime_ranges(
                pl.from_epoch(first, time_unit=MS).cast(TS),
                "end",
                interval=f"{every_minutes}m",
                time_unit=MS,
                closed="left",
            ),
        ).explode("t")
    return pl.concat([inner, ends]).drop_nulls().unique().sort(["win", "t"])


def _default_venue_symbol(venue: str, coin: str, contract: str | None) -> str:
    try:
        return venue_symbol(venue, coin, contract)
    except KeyError:
        return coin
