"""Building synthetic curve_snapshots rows for the feature and PCA tests."""

from datetime import datetime, timedelta

import polars as pl

from funding_assets.strip import BUCKETS, SNAPSHOT_SCHEMA

EPOCH = datetime(2020, 1, 1)
H8 = timedelta(hours=8)


def snap(
    ts: datetime,
    buckets,
    *,
    kind: str = "roll",
    venue: str = "binance",
    symbol: str = "BTC",
    contract: str | None = "usdt",
) -> dict:
    """One snapshot row; an intraday row's funding_time is the end of its open 8h window."""
    assert len(buckets) == 8
    funding_time = ts if kind == "roll" else EPOCH + ((ts - EPOCH) // H8 + 1) * H8
    return {
        "venue": venue,
        "symbol": symbol,
        "contract": contract,
        "kind": kind,
        "ts": ts,
        "funding_time": funding_time,
        "interval_hours": 8.0,
        "annualisation": "apr",
        **dict(zip(BUCKETS, map(float, buckets))),
        "n_filled": 0,
        "as_of": ts,
        "coverage": 1.0 if kind == "roll" else 0.5,
        "min_coverage": 1.0,
    }


def frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SNAPSHOT_SCHEMA)
