"""``strip.stream_snapshots``: the rows of ``partition_snapshots``, out of core.

Blocks of days per series, read from memory, a query or parquet: a directory partitioned by
series (hive style) is read file after file, every print once, the lookback days held in
memory between blocks; anything else is read one filtered query per block. Output arrays are
recycled between batches only once nothing refers to them.
"""

import datetime as dt
import random
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from funding_assets import strip
from funding_assets.errors import FundingInputError
from funding_assets.prints import normalise
from funding_assets.sim import FundingModel

START, DAYS = dt.datetime(2024, 2, 1), 9
ORDER = [*strip.KEYS, "kind", "ts"]
SERIES = (("binance", "usdt"), ("hyperliquid", "usdc"))


@pytest.fixture(scope="module")
def stored() -> pl.DataFrame:
    """Nine days of two series as stored: settlements and a quote every few minutes."""
    model, rng = FundingModel(seed=3), random.Random(7)
    frames = []
    for venue, contract in SERIES:
        settled = model.settlements(venue, "BTC", START, START + dt.timedelta(days=DAYS))
        hours = int(settled["interval_hours"][0])
        quotes = []
        for minute in range(0, DAYS * 24 * 60, 7):
            ts = START + dt.timedelta(minutes=minute, milliseconds=rng.randrange(1, 60_000))
            window = hours * 3600
            ends = START + dt.timedelta(seconds=((ts - START).total_seconds() // window + 1) * window)
            quotes.append((ts, ends, rng.uniform(-1e-4, 3e-4) * hours / 8, float(hours), "predicted"))
        quoted = pl.DataFrame(
            quotes,
            schema={
                "ts": pl.Datetime("ms"),
                "funding_time": pl.Datetime("ms"),
                "rate": pl.Float64,
                "interval_hours": pl.Float64,
                "kind": pl.String,
            },
            orient="row",
        ).with_columns(venue=pl.lit(venue), symbol=pl.lit("BTC"), contract=pl.lit(contract))
        frames.append(pl.concat([settled.with_columns(contract=pl.lit(contract)).select(quoted.columns), quoted]))
    return normalise(pl.concat(frames)).sort("venue", "ts")


def by_series_directory(stored: pl.DataFrame, root: Path, days_per_file: int = 2) -> list[Path]:
    """``root/venue=../symbol=../contract=../part-NNN.parquet``, one file per ``days_per_file``."""
    paths = []
    day = (pl.col("ts") - START).dt.total_days() // days_per_file
    for (venue, symbol, contract), prints in stored.group_by(strip.KEYS, maintain_order=True):
        folder = root / f"venue={venue}" / f"symbol={symbol}" / f"contract={contract}"
        folder.mkdir(parents=True)
        for (n,), part in prints.with_columns(part=day).group_by("part", maintain_order=True):
            paths.append(folder / f"part-{n:03d}.parquet")
            part.drop(*strip.KEYS, "part").write_parquet(paths[-1])
    return paths


def streamed(source, **options) -> pl.DataFrame:
    return pl.concat(list(strip.stream_snapshots(source, **options))).sort(ORDER)


@pytest.mark.parametrize("every", [0, "10m"])
def test_a_series_directory_is_read_once_file_by_file_and_gives_the_partition_rows(
    stored, tmp_path, every, monkeypatch
):
    paths = by_series_directory(stored, tmp_path)
    reads = []
    read_file = strip._read_file
    monkeypatch.setattr(strip, "_read_file", lambda key, path: reads.append(path) or read_file(key, path))
    expected = strip.partition_snapshots(stored, every=every)
    assert_frame_equal(streamed(tmp_path, every=every, block_days=3), expected, check_exact=True)
    assert sorted(reads) == sorted(paths)  # every print read once
    assert expected.filter(pl.col("kind") == "roll").height > 20


def test_files_of_a_series_out_of_time_order_are_an_error(stored, tmp_path):
    paths = [p for p in by_series_directory(stored, tmp_path) if "binance" in str(p)]
    first, last = paths[0], paths[-1]
    swap = first.with_name("swap.parquet")
    first.rename(swap), last.rename(first), swap.rename(last)
    with pytest.raises(FundingInputError, match="time order"):
        list(strip.stream_snapshots(tmp_path, every="10m", block_days=1))


def test_every_source_gives_the_same_rows(stored, tmp_path):
    expected = strip.partition_snapshots(stored, every="30m")
    stored.write_parquet(tmp_path / "prints.parquet")
    per_series = [p for _, p in stored.group_by(strip.KEYS)]
    for source in (stored, stored.lazy(), tmp_path / "prints.parquet", str(tmp_path / "prints.parquet"), per_series):
        assert_frame_equal(streamed(source, every="30m", block_days=2), expected, check_exact=True)
    # timestamps as epoch milliseconds or in another time zone: normalised on the way in
    epoch = stored.with_columns(pl.col("ts", "funding_time", "published_at").dt.epoch("ms"))
    paris = stored.with_columns(
        pl.col("ts", "funding_time", "published_at").dt.replace_time_zone("UTC").dt.convert_time_zone("Europe/Paris")
    )
    for frame in (epoch, paris):
        frame.write_parquet(tmp_path / "other.parquet")
        assert_frame_equal(streamed(tmp_path / "other.parquet", every="30m", block_days=2), expected, check_exact=True)


def test_realised_prints_stored_at_publication_are_an_error(stored, tmp_path):
    """Blocks are read by stored ts: a realised print filed at its publication time could
    land in the wrong block, so it is refused rather than guessed."""
    raw = stored.with_columns(
        ts=pl.when(pl.col("kind") == "realised").then(pl.col("ts") + dt.timedelta(hours=5)).otherwise("ts")
    )
    raw.write_parquet(tmp_path / "raw.parquet")
    with pytest.raises(FundingInputError, match="settlement time"):
        list(strip.stream_snapshots(tmp_path / "raw.parquet"))


def test_a_batch_kept_is_never_overwritten_by_the_next_ones(stored, tmp_path):
    """Output arrays are recycled between batches once nothing refers to them: batches kept
    and batches dropped as they come hold the same numbers."""
    by_series_directory(stored, tmp_path, days_per_file=1)

    def totals(batch: pl.DataFrame) -> tuple:
        return batch.select(pl.len(), pl.col("ts").max(), *(pl.col(b).sum() for b in strip.BUCKETS)).row(0)

    options = dict(every=0, kinds=("intraday",), block_days=1)
    kept = list(strip.stream_snapshots(tmp_path, **options))
    assert len(kept) > 10
    assert [totals(b) for b in kept] == [totals(b) for b in strip.stream_snapshots(tmp_path, **options)]
    numbers = kept[0]["b0"].to_numpy()  # a view of the first batch, kept past the stream
    first = numbers.copy()
    for _ in strip.stream_snapshots(tmp_path, **options):
        pass
    assert (numbers == first).all()


def test_kinds_select_the_rows_computed(stored):
    both = strip.partition_snapshots(stored, every="1h")
    for kind in ("roll", "intraday"):
        assert_frame_equal(
            streamed(stored, every="1h", kinds=(kind,), block_days=4),
            both.filter(pl.col("kind") == kind),
            check_exact=True,
        )
    with pytest.raises(FundingInputError, match="kinds"):
        list(strip.stream_snapshots(stored, kinds=("rolls",)))
    with pytest.raises(FundingInputError, match="block_days"):
        list(strip.stream_snapshots(stored, block_days=0))
