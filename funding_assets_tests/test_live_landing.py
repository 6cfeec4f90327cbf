"""The landing area (DESIGN section 5): whole files, names in write order, readers never see
half a file, damaged files named in the error."""

import datetime as dt
import os
import threading

import polars as pl
import pytest

from funding_assets.live.landing import (
    LANDING_SCHEMA,
    LandingError,
    LandingWriter,
    landed_files,
    read_landed,
)

T0 = dt.datetime(2025, 3, 1, 8, 0)


class FakeClock:
    """A settable clock in seconds (monotonic or wall)."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def prints(n: int, start: int = 0) -> pl.DataFrame:
    """``n`` predicted prints, the i-th quoted ``start + i`` ms after T0."""
    ts = [T0 + dt.timedelta(milliseconds=start + i) for i in range(n)]
    return pl.DataFrame(
        {
            "venue": ["binance"] * n,
            "symbol": ["BTC"] * n,
            "venue_symbol": ["BTCUSDT"] * n,
            "ts": ts,
            "funding_time": [T0 + dt.timedelta(hours=8)] * n,
            "rate": [0.0001 * (start + i) for i in range(n)],
            "interval_hours": [8.0] * n,
            "kind": ["predicted"] * n,
            "source": ["ws"] * n,
            "received_at": [t + dt.timedelta(milliseconds=3) for t in ts],
        }
    )


def test_rows_wait_in_memory_until_the_first_row_is_rotate_s_old(tmp_path):
    clock = FakeClock()
    writer = LandingWriter(tmp_path, rotate_s=10.0, max_rows=1000, clock=clock)
    assert writer.write(prints(3)) is None
    clock.now += 6
    assert writer.write(prints(2, start=3)) is None
    assert writer.tick() is None and landed_files(tmp_path) == []
    clock.now += 4  # the first row is now 10 s old; the later rows ride along
    path = writer.tick()
    assert path is not None and landed_files(tmp_path) == [path]
    assert read_landed(path).height == 5
    assert (writer.files_written, writer.rows_written) == (1, 5)
    assert writer.tick() is None  # an empty buffer never lands a file


def test_age_is_also_checked_on_write(tmp_path):
    clock = FakeClock()
    writer = LandingWriter(tmp_path, rotate_s=1.0, clock=clock)
    writer.write(prints(1))
    clock.now += 1.5
    path = writer.write(prints(1, start=1))
    assert path is not None and read_landed(path).height == 2


def test_a_file_lands_when_the_buffer_reaches_max_rows(tmp_path):
    writer = LandingWriter(tmp_path, rotate_s=3600, max_rows=10, clock=FakeClock())
    landed = [writer.write(prints(4, start=4 * i)) for i in range(7)]
    # buffered 4, 8, 12 -> file; 4, 8, 12 -> file; 4 rows stay buffered
    assert [p is not None for p in landed] == [False, False, True, False, False, True, False]
    assert [read_landed(p).height for p in landed_files(tmp_path)] == [12, 12]
    writer.close()
    assert [read_landed(p).height for p in landed_files(tmp_path)] == [12, 12, 4]
    assert writer.rows_written == 28
    with pytest.raises(RuntimeError, match="closed"):
        writer.write(prints(1))


def test_round_trip_keeps_every_row_value_and_dtype(tmp_path):
    frame = prints(50).with_columns(
        # nulls survive, and a timezone-aware / microsecond input comes back as naive UTC ms
        venue_symbol=pl.when(pl.col("rate") > 0.001).then(pl.col("venue_symbol")),
        received_at=pl.col("received_at").dt.replace_time_zone("UTC").dt.convert_time_zone("Asia/Tokyo"),
    )
    with LandingWriter(tmp_path) as writer:
        writer.write(frame)
    (path,) = landed_files(tmp_path)
    back = read_landed(path)
    assert back.schema == pl.Schema(LANDING_SCHEMA)
    assert back.equals(prints(50).with_columns(venue_symbol=frame["venue_symbol"]), null_equal=True)


def test_names_sort_in_write_order_even_after_a_restart_with_the_clock_set_back(tmp_path):
    wall = FakeClock(1_740_816_000.0)  # 2025-03-01 08:00 UTC
    first = LandingWriter(tmp_path, wall_clock=wall)
    written = []
    for i in range(3):
        first.write(prints(1, start=i))
        written.append(first.flush())
    first.close()
    assert written[0].name == "prints-20250301T080000.000-000000.parquet"
    wall.now -= 3600  # the restarted writer's wall clock is an hour behind
    second = LandingWriter(tmp_path, wall_clock=wall)
    for i in range(3, 6):
        second.write(prints(1, start=i))
        written.append(second.flush())
    assert landed_files(tmp_path) == written  # sorted by name == write order
    assert len({p.name for p in written}) == 6  # no name reused
    assert [read_landed(p)["ts"][0] for p in written] == [T0 + dt.timedelta(milliseconds=i) for i in range(6)]
    assert written[3].name.endswith("-000003.parquet")  # the sequence continues


def test_landed_files_after_a_name_lists_only_later_files_and_never_temp_files(tmp_path):
    writer = LandingWriter(tmp_path)
    paths = []
    for i in range(4):
        writer.write(prints(1, start=i))
        paths.append(writer.flush())
    (tmp_path / ".prints-abc.parquet.tmp").write_bytes(b"half a file")
    (tmp_path / "notes.txt").write_text("not a landed file")
    assert landed_files(tmp_path) == paths
    assert landed_files(tmp_path, after=paths[1].name) == paths[2:]
    assert landed_files(tmp_path, after=paths[-1].name) == []
    assert landed_files(tmp_path / "missing") == []


def test_a_reader_polling_with_a_cursor_sees_only_whole_files_and_misses_none(tmp_path):
    writer = LandingWriter(tmp_path, rotate_s=3600, max_rows=7)
    stop = threading.Event()
    seen: list[str] = []
    problems: list[str] = []

    def produce(worker: int) -> None:
        for i in range(150):
            writer.write(prints(3, start=worker * 10_000 + 3 * i))

    def consume() -> None:
        cursor = None
        while True:
            done = stop.is_set()  # read before listing, so the final pass sees every file
            listing = os.listdir(tmp_path)
            for path in landed_files(tmp_path, after=cursor):
                try:
                    read_landed(path)
                except Exception as exc:  # a half-written file would land here
                    problems.append(f"{path.name}: {exc}")
                seen.append(path.name)
                cursor = path.name
            if any(n.startswith("prints-") and not n.endswith(".parquet") for n in listing):
                problems.append(f"odd name in {listing}")
            if done:
                return

    reader = threading.Thread(target=consume)
    producers = [threading.Thread(target=produce, args=(w,)) for w in range(3)]
    reader.start()
    for t in producers:
        t.start()
    for t in producers:
        t.join()
    writer.close()
    stop.set()
    reader.join()
    assert problems == []
    # the cursor skipped nothing: every landed file was seen, once, in name order
    assert seen == [p.name for p in landed_files(tmp_path)]
    rows = pl.concat([read_landed(tmp_path / n) for n in seen])
    assert rows.height == writer.rows_written == 3 * 150 * 3
    assert rows["ts"].n_unique() == rows.height


@pytest.fixture
def good_file(tmp_path):
    with LandingWriter(tmp_path) as writer:
        writer.write(prints(500))
    return landed_files(tmp_path)[0]


def test_a_corrupt_file_raises_a_landing_error_naming_it(good_file):
    good_file.write_bytes(b"PAR1 this is not parquet at all PAR1")
    with pytest.raises(LandingError, match=good_file.name) as info:
        read_landed(good_file)
    assert info.value.path == good_file and isinstance(info.value, ValueError)


def test_a_truncated_file_raises_a_landing_error_naming_it(good_file):
    data = good_file.read_bytes()
    good_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(LandingError, match=good_file.name):
        read_landed(good_file)


def test_a_file_with_other_columns_raises_a_landing_error_naming_it(good_file):
    read_landed(good_file).drop("received_at").write_parquet(good_file)
    with pytest.raises(LandingError, match=f"{good_file.name}.*unexpected columns"):
        read_landed(good_file)
    pl.read_parquet(good_file).with_columns(received_at=pl.lit("noon")).write_parquet(good_file)
    with pytest.raises(LandingError, match="received_at"):
        read_landed(good_file)


def test_a_frame_missing_a_print_column_is_refused_before_buffering(tmp_path):
    writer = LandingWriter(tmp_path)
    with pytest.raises(ValueError, match="received_at"):
        writer.write(prints(2).drop("received_at"))
    assert writer.flush() is None
