"""The landing area (DESIGN section 5): whole files, names in write order, readers never see
half a file, damaged files named in the error; a journal that makes a killed writer lose
nothing; rejection, retention and confinement."""

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import polars as pl
import pytest

from funding_assets.live import landing
from funding_assets.live.landing import (
    JOURNAL_RE,
    LANDING_SCHEMA,
    LEGACY_SCHEMA,
    REJECTED_DIR,
    LandingError,
    LandingPathError,
    LandingWriter,
    confined_landed_path,
    landed_at,
    landed_files,
    prune_landed,
    read_landed,
    reject_landed,
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
            "contract": ["usdt"] * n,
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


def test_two_contracts_of_one_coin_land_as_two_series(tmp_path):
    inverse = prints(2, start=10).with_columns(contract=pl.lit("inverse"), venue_symbol=pl.lit("BTCUSD_PERP"))
    with LandingWriter(tmp_path) as writer:
        writer.write(pl.concat([prints(2), inverse]))
    (path,) = landed_files(tmp_path)
    back = read_landed(path)
    assert back.group_by("contract", "venue_symbol").len().sort("contract").rows() == [
        ("inverse", "BTCUSD_PERP", 2),
        ("usdt", "BTCUSDT", 2),
    ]


def test_a_file_landed_before_prints_carried_contract_reads_with_the_main_perpetual(tmp_path):
    """A landing folder written by an older collector (no ``contract`` column) still lands:
    each venue's main perpetual of the coin, the only one the old collector followed."""
    old = pl.concat([prints(2), prints(1, start=5).with_columns(venue=pl.lit("deribit"))])
    old = old.drop("contract").cast(LEGACY_SCHEMA)
    path = tmp_path / "prints-20250301T080000.000-000000.parquet"
    old.write_parquet(path)
    back = read_landed(path)
    assert back.schema == pl.Schema(LANDING_SCHEMA)
    assert back["contract"].to_list() == ["usdt", "usdt", "inverse"]
    assert back.drop("contract").equals(old)
    # and the journal of an older collector, killed before it landed its buffer
    (tmp_path / ".journal-000000007.wal").write_bytes(landing._journal_record(old))
    writer = LandingWriter(tmp_path, journal=True)
    assert writer.recovered_rows == 3
    assert read_landed(landed_files(tmp_path)[-1]).equals(back)


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


# --- the journal: what a crash of the writer can lose ---------------------------------------------

KILLED_WRITER = """
import datetime as dt, os, signal, sys
import polars as pl
from funding_assets.live.landing import LandingWriter
sys.path.insert(0, {tests!r})
from test_live_landing import prints
writer = LandingWriter({folder!r}, rotate_s=3600, journal=True)
for i in range({frames}):
    writer.write(prints(3, start=3 * i))
os.kill(os.getpid(), signal.SIGKILL)  # no close, no flush: the buffer only lives in the journal
"""


def kill_a_writer_after(folder, frames: int) -> None:
    """A journaled writer in its own process, SIGKILLed after writing ``frames`` frames of 3 rows."""
    script = KILLED_WRITER.format(tests=str(Path(__file__).parent), folder=str(folder), frames=frames)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def journals(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if JOURNAL_RE.fullmatch(n))


def test_a_killed_writers_rows_are_landed_first_as_one_file_by_the_next_journaled_writer(tmp_path):
    kill_a_writer_after(tmp_path, frames=40)
    assert landed_files(tmp_path) == [] and len(journals(tmp_path)) == 1
    writer = LandingWriter(tmp_path, journal=True)
    assert writer.recovered_rows == 120 and journals(tmp_path) == []
    (recovered,) = landed_files(tmp_path)
    assert read_landed(recovered).equals(prints(120))  # every row, in the order written
    writer.write(prints(2, start=500))
    later = writer.flush()
    assert landed_files(tmp_path) == [recovered, later]  # the recovered file comes first
    writer.close()
    assert journals(tmp_path) == []


def test_without_the_journal_a_killed_writer_loses_its_whole_buffer(tmp_path):
    """What the journal fixes: the buffer (up to rotate_s of prints) lived only in memory."""
    script = KILLED_WRITER.replace("journal=True", "journal=False")
    script = script.format(tests=str(Path(__file__).parent), folder=str(tmp_path), frames=40)
    subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert LandingWriter(tmp_path, journal=True).recovered_rows == 0 and landed_files(tmp_path) == []


def test_a_torn_last_journal_record_is_dropped_and_the_whole_ones_landed(tmp_path):
    kill_a_writer_after(tmp_path, frames=5)
    (journal,) = journals(tmp_path)
    whole = (tmp_path / journal).read_bytes()
    (tmp_path / journal).write_bytes(whole + whole[:-7][-200:])  # half a record, cut by the crash
    writer = LandingWriter(tmp_path, journal=True)
    assert writer.recovered_rows == 15
    assert read_landed(landed_files(tmp_path)[0]).equals(prints(15))


class Crash(Exception):
    """Stands for the process dying at this point."""


def test_a_crash_after_the_file_landed_but_before_its_journal_was_deleted_duplicates_nothing(tmp_path, monkeypatch):
    writer = LandingWriter(tmp_path, rotate_s=3600, journal=True)
    writer.write(prints(6))
    real_unlink = Path.unlink

    def unlink(self, *args, **kwargs):
        if JOURNAL_RE.fullmatch(self.name):
            raise Crash(self.name)
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", unlink)
    with pytest.raises(Crash):
        writer.flush()
    monkeypatch.undo()
    (landed,) = landed_files(tmp_path)
    (claimed,) = journals(tmp_path)
    assert claimed.endswith(landed.name)  # the journal names the file it became
    restarted = LandingWriter(tmp_path, journal=True)
    assert restarted.recovered_rows == 0 and landed_files(tmp_path) == [landed] and journals(tmp_path) == []


def test_a_crash_before_the_file_took_its_name_lands_the_rows_once_on_restart(tmp_path, monkeypatch):
    writer = LandingWriter(tmp_path, rotate_s=3600, journal=True)
    writer.write(prints(6))

    def link(src, dst):
        raise Crash(dst)

    monkeypatch.setattr(os, "link", link)
    with pytest.raises(Crash):
        writer.flush()
    monkeypatch.undo()
    assert landed_files(tmp_path) == [] and len(journals(tmp_path)) == 1
    restarted = LandingWriter(tmp_path, journal=True)
    assert restarted.recovered_rows == 6
    assert read_landed(landed_files(tmp_path)[0]).equals(prints(6))


def test_the_journal_is_fsynced_at_most_every_journal_fsync_s(tmp_path, monkeypatch):
    clock = FakeClock()
    writer = LandingWriter(tmp_path, rotate_s=3600, clock=clock, journal=True, journal_fsync_s=1.0)
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    for i in range(10):  # a second of frames, 0.1 s apart: one fsync, when the second is up
        writer.write(prints(1, start=i))
        clock.now += 0.1
    assert len(synced) == 0
    writer.write(prints(1, start=10))
    assert len(synced) == 1
    clock.now += 0.5
    writer.tick()
    assert len(synced) == 1  # nothing written since, and not yet due
    writer.write(prints(1, start=11))
    clock.now += 1.0
    writer.tick()  # an idle writer's tick syncs what is waiting
    assert len(synced) == 2


def test_close_lands_the_buffer_and_removes_the_journal(tmp_path):
    writer = LandingWriter(tmp_path, rotate_s=3600, journal=True)
    writer.write(prints(4))
    assert len(journals(tmp_path)) == 1
    writer.close()
    assert journals(tmp_path) == [] and read_landed(landed_files(tmp_path)[0]).height == 4


def test_a_writer_without_a_journal_leaves_another_writers_journal_alone(tmp_path):
    collector = LandingWriter(tmp_path, rotate_s=3600, journal=True)
    collector.write(prints(4))
    with LandingWriter(tmp_path) as poll:  # the sensor's REST poll lands into the same folder
        poll.write(prints(1, start=100))
    assert len(journals(tmp_path)) == 1 and collector.recovered_rows == 0
    collector.close()
    assert sorted(read_landed(p).height for p in landed_files(tmp_path)) == [1, 4]


# --- rejection, retention and confinement ------------------------------------------------------


def test_a_rejected_file_moves_to_rejected_and_is_no_longer_listed(good_file):
    moved = reject_landed(good_file)
    assert moved == good_file.parent / REJECTED_DIR / good_file.name and moved.exists()
    assert landed_files(good_file.parent) == [] and not good_file.exists()


def test_prune_deletes_only_ingested_files_past_the_retention_and_old_rejected_files(tmp_path):
    wall = FakeClock(dt.datetime(2025, 3, 1, tzinfo=dt.UTC).timestamp())
    paths = []
    with LandingWriter(tmp_path, wall_clock=wall) as writer:
        for day in range(10):  # one file a day, 1 to 10 March
            writer.write(prints(1, start=day))
            paths.append(writer.flush())
            wall.now += 86400
    assert [landed_at(p.name) for p in paths[:2]] == [dt.datetime(2025, 3, 1), dt.datetime(2025, 3, 2)]
    reject_landed(paths[0])
    now = dt.datetime(2025, 3, 11, 0, 0, 1)
    deleted = prune_landed(tmp_path, done_upto=paths[5].name, now=now)
    assert deleted == paths[1:4]  # ingested and older than 7 days: 2, 3 and 4 March
    assert landed_files(tmp_path) == paths[4:]  # 5 March on; 7 March on not yet ingested
    assert prune_landed(tmp_path, done_upto=None, now=now + dt.timedelta(days=60))[0].parent.name == REJECTED_DIR
    assert landed_files(tmp_path) == paths[4:]  # never ingested: kept whatever its age


def test_only_landed_files_directly_inside_the_folder_are_accepted(tmp_path):
    folder = tmp_path / "landing"
    name = "prints-20250301T080000.000-000000.parquet"
    assert confined_landed_path(str(folder / name), folder) == folder.resolve() / name
    for bad in (
        tmp_path / name,
        folder / "sub" / name,
        folder / ".." / "landing" / name,
        folder / "notes.txt",
        folder / f".{name}.tmp",
    ):
        with pytest.raises(LandingPathError, match=re.escape(repr(str(bad)))):
            confined_landed_path(str(bad), folder)
