"""The warehouse never loses rows nobody asked to replace, and says why it cannot open.

- A run replaces only the (partition, coin) rows it computes: a coin-narrowed run leaves
  other coins alone (a property over random stores and narrowed writes, and end to end).
- A source that returns fewer realised prints than a partition holds is refused, naming
  the partitions, unless ``FUNDING_ASSETS_ALLOW_FEWER_PRINTS=1``; a past day with far
  fewer prints than the schedule is a WARN check.
- Another process holding the file: one line saying so and for how long the writer waits,
  then success when released, or one clear line after the bound.
- A file that is not a DuckDB database fails at once naming it.
- ``snapshot()`` gives notebooks a consistent copy to query.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
import time

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli_bad_input import Cli, digest, good_rows, write_csv

from funding_assets import instruments
from funding_assets.instruments import Instrument
from funding_assets.warehouse import (
    TABLES,
    Warehouse,
    WarehouseError,
    WarehouseLockedError,
    partition_filter,
    snapshot,
)

# --------------------------------------------------------------------------- narrowed writes

DAYS = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(3)]
VENUES = ["okx", "bybit"]
COINS = ["BTC", "ETH", "SOL"]
CONTRACTS = ["usdt", "inverse"]
KEYS = [f"{d}|{v}" for d in DAYS for v in VENUES]
CELLS = [(d, v, c, k) for d in DAYS for v in VENUES for c in COINS for k in CONTRACTS]


def prints(cells: list[tuple], rate: float) -> pl.DataFrame:
    """One realised print per (day, venue, coin[, contract]) cell at 08:00 (contract usdt by default)."""
    rows = [
        {
            "venue": cell[1],
            "symbol": cell[2],
            "contract": cell[3] if len(cell) > 3 else "usdt",
            "venue_symbol": cell[2],
            "ts": dt.datetime.combine(cell[0], dt.time(8)),
            "funding_time": dt.datetime.combine(cell[0], dt.time(8)),
            "rate": rate,
            "interval_hours": 8,
            "kind": "realised",
            "source": "test",
            "published_at": None,
        }
        for cell in cells
    ]
    return pl.DataFrame(rows, schema=TABLES["raw_prints"])


def series_of(coins, contracts=("usdt",), venues=VENUES) -> pl.DataFrame:
    return pl.DataFrame(
        [(v, c, k) for v in venues for c in coins for k in contracts],
        schema={"venue": pl.String, "symbol": pl.String, "contract": pl.String},
        orient="row",
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    stored=st.sets(st.sampled_from(CELLS)),
    keys=st.sets(st.sampled_from(KEYS), min_size=1),
    series=st.sets(st.sampled_from([(v, c, k) for v in VENUES for c in COINS for k in CONTRACTS]), min_size=1),
    fresh=st.sets(st.sampled_from(CELLS)),
)
def test_a_narrowed_write_replaces_exactly_its_partitions_and_series(tmp_path_factory, stored, keys, series, fresh):
    """A run narrowed to some coins or contracts leaves every other series' rows as they were."""
    warehouse = Warehouse(database=str(tmp_path_factory.mktemp("wh") / "warehouse.duckdb"))
    before = prints(sorted(stored), 0.0001)
    warehouse.replace("raw_prints", before)
    inside = {(d, v, c, k) for d, v, c, k in fresh if f"{d}|{v}" in keys and (v, c, k) in series}
    written = prints(sorted(inside), 0.0002)
    scope = pl.DataFrame(sorted(series), schema=["venue", "symbol", "contract"], orient="row")
    where, params, relations = partition_filter({"date": "ts", "venue": "venue"}, sorted(keys), scope)
    warehouse.replace("raw_prints", written, where, params, relations=relations)

    after = warehouse.read("raw_prints")
    cell = pl.struct(pl.col("ts").dt.date(), "venue", "symbol", "contract")
    untouched = {(d, v, c, k) for d, v, c, k in stored if f"{d}|{v}" not in keys or (v, c, k) not in series}
    order = ["venue", "symbol", "contract", "ts"]
    expected = pl.concat([prints(sorted(untouched), 0.0001), written]).sort(order)
    assert after.sort(order).select(cell, "rate").rows() == expected.select(cell, "rate").rows()


EDGE_DAYS = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(5)]
#: Prints at the first and last millisecond of a day and one mid-day.
EDGE_TIMES = [dt.time(0), dt.time(8), dt.time(23, 59, 59, 999000)]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    days=st.sets(st.sampled_from(EDGE_DAYS), min_size=1),
    venues=st.sets(st.sampled_from(VENUES), min_size=1),
    extra=st.sets(st.sampled_from([f"{d}|{v}" for d in EDGE_DAYS for v in VENUES])),
    daily=st.booleans(),
)
def test_a_partition_read_is_exactly_its_keys_rows_whatever_their_shape(tmp_path_factory, days, venues, extra, daily):
    """Keys that are every day of a range for each venue (a range run) and scattered keys
    select the same rows as the per-key rule: the UTC day of ts and the venue are a key."""
    warehouse = Warehouse(database=str(tmp_path_factory.mktemp("wh") / "warehouse.duckdb"))
    stored = pl.concat(
        prints([(d, v, "BTC")], 0.0001).with_columns(ts=pl.lit(dt.datetime.combine(d, t)))
        for d in EDGE_DAYS
        for v in VENUES
        for t in EDGE_TIMES
    )
    warehouse.replace("raw_prints", stored)
    first, last = min(days), max(days)
    span = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    if daily:
        keys = sorted({str(d) for d in span} | {k.split("|")[0] for k in extra})
        expr = {"date": "ts"}
        wanted = stored.filter(pl.col("ts").dt.date().cast(pl.String).is_in(keys))
    else:
        keys = sorted({f"{d}|{v}" for d in span for v in venues} | extra)
        expr = {"date": "ts", "venue": "venue"}
        key = pl.concat_str(pl.col("ts").dt.date().cast(pl.String), pl.lit("|"), pl.col("venue"))
        wanted = stored.filter(key.is_in(keys))
    where, params, relations = partition_filter(expr, keys)
    got = warehouse.read("raw_prints", where, params, relations=relations)
    order = ["venue", "ts"]
    assert got.sort(order).select(order).rows() == wanted.sort(order).select(order).rows()


def test_materialised_means_every_series_of_the_run(tmp_path):
    warehouse = Warehouse(database=str(tmp_path / "warehouse.duckdb"))
    where, params, relations = partition_filter(
        {"date": "ts", "venue": "venue"}, ["2024-01-01|okx"], series_of(["BTC"], venues=["okx"])
    )
    warehouse.replace(
        "raw_prints",
        prints([], 0.0),
        where,
        params,
        relations=relations,
        partitions={("2024-01-01|okx", "BTC", "usdt"): 0},
    )
    assert warehouse.materialised("raw_prints", {"2024-01-01|okx": [("BTC", "usdt")]}) == {"2024-01-01|okx"}
    assert warehouse.materialised("raw_prints", {"2024-01-01|okx": [("BTC", "usdt"), ("ETH", "usdt")]}) == set()
    assert warehouse.materialised("raw_prints", {"2024-01-01|okx": [("BTC", "inverse")]}) == set()


def test_bookkeeping_of_an_earlier_version_is_not_taken_for_any_coin(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA funding")
        con.execute("CREATE TABLE funding._partitions (asset VARCHAR, partition_key VARCHAR, rows BIGINT)")
        con.execute("INSERT INTO funding._partitions VALUES ('raw_prints', '2024-01-01|okx', 3)")
    warehouse = Warehouse(database=str(path))
    wanted = {"2024-01-01|okx": [("BTC", "usdt")]}
    assert warehouse.materialised("raw_prints", wanted) == set()
    where, params, relations = partition_filter(
        {"date": "ts", "venue": "venue"}, ["2024-01-01|okx"], series_of(["BTC"], venues=["okx"])
    )
    warehouse.replace(
        "raw_prints",
        prints([], 0.0),
        where,
        params,
        relations=relations,
        partitions={("2024-01-01|okx", "BTC", "usdt"): 0},
    )
    assert warehouse.materialised("raw_prints", wanted) == {"2024-01-01|okx"}


def coin_rows(path, coin: str) -> dict[str, list]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {
            t: con.execute(f"SELECT * FROM funding.{t} WHERE symbol = ? ORDER BY ALL", [coin]).fetchall()
            for t in ("raw_prints", "curve_snapshots", "curve_features", "pca_factors", "roll_b0", "spread_signals")
        }


def test_a_coin_narrowed_backfill_leaves_the_other_coins_rows(home, monkeypatch, capsys):
    """Formerly ``--coins BTC`` replaced whole date x venue partitions: every ETH row of the
    touched days was deleted, and everything downstream with it."""
    from funding_assets import cli

    monkeypatch.setenv("FUNDING_ASSETS_VENUES", "okx,bybit")
    assert cli.main(["backfill", "--start", "2024-03-01", "--end", "2024-03-02", "--coins", "BTC,ETH"]) == 0
    path = home / "warehouse.duckdb"
    eth, btc = coin_rows(path, "ETH"), coin_rows(path, "BTC")
    assert all(eth[t] for t in ("raw_prints", "curve_snapshots", "spread_signals"))
    assert cli.main(["backfill", "--start", "2024-03-01", "--end", "2024-03-02", "--coins", "BTC"]) == 0
    assert coin_rows(path, "ETH") == eth
    assert coin_rows(path, "BTC") == btc


# --------------------------------------------------------------------------- fewer prints


@pytest.fixture
def replayed(tmp_path, monkeypatch, capsys) -> Cli:
    run = Cli(tmp_path, monkeypatch, capsys)
    write_csv(run.replay / "binance" / "btc.csv", good_rows())
    rc, err = run()
    assert rc == 0, err
    return run


@pytest.mark.parametrize(
    "shrink",
    ["other_coin_only", "outside_range", "one_day_missing"],
)
def test_a_source_returning_fewer_prints_is_refused_and_keeps_the_rows(replayed, shrink):
    run = replayed
    before = digest(run.warehouse)
    rows = good_rows()
    if shrink == "other_coin_only":
        kept = [{**r, "symbol": "ETHUSDT"} for r in rows]
    elif shrink == "outside_range":
        kept = rows[:40]  # ends 2024-01-14, long before the range
    else:
        kept = [r for i, r in enumerate(rows) if (dt.datetime(2024, 1, 1) + dt.timedelta(hours=8 * i)).day != 21]
    write_csv(run.replay / "binance" / "btc.csv", kept)
    rc, err = run()
    assert rc != 0
    line = run.error_line(err)
    if shrink == "other_coin_only":  # the files no longer hold the coin at all: said so, before any fetch
        assert "'BTC' listed by no configured venue (binance) in source replay:" in line
    else:
        assert "fewer realised prints" in line and "|binance BTC" in line
        assert "FUNDING_ASSETS_ALLOW_FEWER_PRINTS" in line
    assert "Traceback" not in err
    assert digest(run.warehouse) == before


def test_allow_fewer_prints_replaces_them(replayed, monkeypatch):
    run = replayed
    rows = [r for i, r in enumerate(good_rows()) if (dt.datetime(2024, 1, 1) + dt.timedelta(hours=8 * i)).day != 21]
    write_csv(run.replay / "binance" / "btc.csv", rows)
    monkeypatch.setenv("FUNDING_ASSETS_ALLOW_FEWER_PRINTS", "1")
    rc, err = run()
    assert rc == 0, err
    with duckdb.connect(str(run.warehouse), read_only=True) as con:
        days = {d for (d,) in con.execute("SELECT DISTINCT CAST(ts AS DATE) FROM funding.raw_prints").fetchall()}
    assert dt.date(2024, 2, 21) not in days and dt.date(2024, 2, 20) in days
    assert "raw_prints_schedule" in err  # the short day is flagged


def test_a_past_day_with_far_fewer_prints_than_the_schedule_is_flagged():
    from funding_assets.defs.checks import schedule_shortfall

    keys = pl.DataFrame({"day": DAYS, "venue": ["okx"] * 3}, schema={"day": pl.Date, "venue": pl.String})
    got = prints([(DAYS[0], "okx", "BTC"), (DAYS[1], "okx", "BTC")], 0.0001)
    full = pl.concat([got, got.with_columns(pl.col("ts", "funding_time").dt.offset_by("8h"))])
    full = pl.concat([full, got.with_columns(pl.col("ts", "funding_time").dt.offset_by("-8h"))])
    listed = instruments.frame(
        [
            Instrument("okx", "BTC", "usdt", "BTC-USDT-SWAP"),
            Instrument("okx", "ETH", "usdt", "ETH-USDT-SWAP"),
            # listed at noon on day 1: day 1 is partial and not judged, day 2 is today
            Instrument("okx", "NEW", "usdt", "NEW-USDT-SWAP", listed_at=dt.datetime.combine(DAYS[1], dt.time(12))),
            # delisted at noon on day 1: only day 0 is a whole day it traded
            Instrument("okx", "OLD", "usdt", "OLD-USDT-SWAP", delisted_at=dt.datetime.combine(DAYS[1], dt.time(12))),
        ]
    )
    short = schedule_shortfall(full, keys, listed, today=DAYS[2])
    # day 0 and 1 of BTC are complete; ETH has nothing; day 2 is today and not judged
    assert short.select("day", "symbol").rows() == [(DAYS[0], "ETH"), (DAYS[1], "ETH"), (DAYS[0], "OLD")]


# --------------------------------------------------------------------------- locks and corrupt files

HOLD = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    print("holding", flush=True)
    sys.stdin.readline()
    con.close()
    """
)


@pytest.fixture
def holder(tmp_path):
    """Start a process holding the warehouse read-only (a notebook); ``release()`` closes it."""
    path = tmp_path / "warehouse.duckdb"
    Warehouse(database=str(path)).replace("pca_fits", pl.DataFrame(schema=TABLES["pca_fits"]))
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "holding"

    class Holder:
        pid = proc.pid
        database = str(path)

        @staticmethod
        def release():
            if proc.poll() is None:
                proc.stdin.write("\n")
                proc.stdin.flush()
                proc.wait(timeout=30)

    yield Holder
    Holder.release()


def test_a_writer_waits_for_a_reader_saying_so_once_then_writes(holder, capsys):
    import threading

    warehouse = Warehouse(database=holder.database, lock_timeout_s=120)
    timer = threading.Timer(1.5, holder.release)
    timer.start()
    with warehouse.connect() as con:
        con.execute("SELECT 1")
    timer.join()
    err = capsys.readouterr().err
    waits = [ln for ln in err.splitlines() if "warehouse locked by another process" in ln]
    assert len(waits) == 1, err
    assert f"pid {holder.pid}" in waits[0] and "waiting up to 120 s" in waits[0]


def test_a_writer_gives_up_after_the_bound_with_one_line_naming_the_holder(holder):
    warehouse = Warehouse(database=holder.database, lock_timeout_s=0.5)
    with pytest.raises(WarehouseLockedError) as caught:
        with warehouse.connect():
            pass
    message = str(caught.value)
    assert "\n" not in message
    assert f"pid {holder.pid}" in message and "FUNDING_ASSETS_LOCK_TIMEOUT" in message and "snapshot()" in message


def test_a_backfill_blocked_past_the_bound_fails_with_one_line(holder, home, monkeypatch, capsys):
    from funding_assets import cli

    monkeypatch.setenv("FUNDING_ASSETS_HOME", str(holder.database).rsplit("/", 1)[0])
    monkeypatch.setenv("FUNDING_ASSETS_LOCK_TIMEOUT", "1")
    monkeypatch.setenv("FUNDING_ASSETS_VENUES", "okx")
    rc = cli.main(["backfill", "--start", "2024-03-01", "--end", "2024-03-01", "--coins", "BTC"])
    err = capsys.readouterr().err
    assert rc == 1
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert errors and "locked by another process" in errors[-1] and f"pid {holder.pid}" in errors[-1], err
    assert "Traceback" not in err


def test_a_file_that_is_not_a_database_fails_at_once_naming_it(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    path.write_bytes(b"not a database" * 1000)
    started = time.monotonic()
    with pytest.raises(WarehouseError, match=str(path)) as caught:
        with Warehouse(database=str(path)).connect():
            pass
    assert time.monotonic() - started < 10  # formerly retried for ~108 s
    assert "rebuild" in str(caught.value)


# --------------------------------------------------------------------------- snapshot


def test_snapshot_gives_a_queryable_consistent_copy(tmp_path, monkeypatch):
    path = tmp_path / "warehouse.duckdb"
    warehouse = Warehouse(database=str(path))
    warehouse.replace("raw_prints", prints([(DAYS[0], "okx", "BTC")], 0.0001))
    monkeypatch.setenv("FUNDING_ASSETS_HOME", str(tmp_path))
    copy = snapshot()
    assert copy.name == "warehouse_snapshot.duckdb"
    with duckdb.connect(str(copy), read_only=True) as con:
        assert con.execute("SELECT rate FROM funding.raw_prints").fetchall() == [(0.0001,)]
    # the original stays writable while the notebook holds its copy open
    with duckdb.connect(str(copy), read_only=True):
        warehouse.replace("raw_prints", prints([(DAYS[1], "okx", "BTC")], 0.0002), "FALSE")
    assert warehouse.read("raw_prints").height == 2


def test_snapshot_refuses_a_name_that_clashes_with_the_schema(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    Warehouse(database=str(path)).replace("raw_prints", prints([], 0.0))
    with pytest.raises(ValueError, match="ambiguous"):
        snapshot(path, tmp_path / "funding.duckdb")


def test_a_backfill_into_a_corrupt_warehouse_is_one_line_at_once(home, monkeypatch, capsys):
    from funding_assets import cli

    home.mkdir(parents=True)
    (home / "warehouse.duckdb").write_bytes(b"\x00garbage" * 4096)
    monkeypatch.setenv("FUNDING_ASSETS_VENUES", "okx")
    started = time.monotonic()
    rc = cli.main(["backfill", "--start", "2024-03-01", "--end", "2024-03-01", "--coins", "BTC"])
    err = capsys.readouterr().err
    assert rc == 1 and time.monotonic() - started < 60
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "is not a DuckDB database" in errors[0] and "warehouse.duckdb" in errors[0], err
    assert "Traceback" not in err
    assert (home / "warehouse.duckdb").read_bytes() == b"\x00garbage" * 4096


def test_the_snapshot_command_prints_the_copy(home, capsys):
    from funding_assets import cli

    Warehouse(database=str(home / "warehouse.duckdb")).replace("raw_prints", prints([(DAYS[0], "okx", "BTC")], 0.0001))
    assert cli.main(["snapshot"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.endswith("warehouse_snapshot.duckdb")
    with duckdb.connect(out, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM funding.raw_prints").fetchone() == (1,)
