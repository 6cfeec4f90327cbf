"""The collector's state under ``$FUNDING_ASSETS_HOME/live`` (DESIGN section 5).

The strip store: its own file, insert-or-replace on the key, batched commits fast enough for
the live latency target (p99 < 250 ms), rows pruned after the retention so the file stays
bounded. The status file: what ``funding-assets status`` shows.
"""

import datetime as dt
import time

import duckdb
import polars as pl
import pytest

from funding_assets.live.status import VenueStatus, read_status, status_path, status_table, write_status
from funding_assets.live.store import (
    LIVE_RETENTION,
    LIVE_STRIP_SCHEMA,
    PUT_SCHEMA,
    LiveStore,
    live_store_path,
)
from funding_assets.resources import FundingConfig

T0 = NOW = dt.datetime(2025, 3, 1, 8, 0)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def strip_rows(
    n: int,
    *,
    kind="intraday",
    venue="binance",
    symbols=("BTC",),
    contract="usdt",
    start_ms=0,
    b0=0.1,
    received_at=None,
) -> pl.DataFrame:
    """``n`` strip rows cycling over ``symbols``; row i at ``T0 + start_ms + i`` ms."""
    ts = [T0 + dt.timedelta(milliseconds=start_ms + i) for i in range(n)]
    return pl.DataFrame(
        {
            "venue": [venue] * n,
            "symbol": [symbols[i % len(symbols)] for i in range(n)],
            "contract": [contract] * n,
            "kind": [kind] * n,
            "ts": ts,
            "funding_time": [T0 + dt.timedelta(hours=8)] * n,
            "interval_hours": [8.0] * n,
            "annualisation": ["apr"] * n,
            **{f"b{k}": [b0 + k / 100] * n for k in range(8)},
            "n_filled": [0] * n,
            "as_of": ts,
            "coverage": [0.5] * n,
            "min_coverage": [1.0] * n,
            "received_at": [received_at or utcnow()] * n,
        },
        schema=PUT_SCHEMA,
    )


@pytest.fixture
def store(home):
    s = LiveStore(live_store_path(home))
    yield s
    s.close()


def test_the_store_is_its_own_file_never_the_warehouse(home, store):
    settings = FundingConfig.from_env()
    assert store.path == home / "live" / "live.duckdb" != settings.warehouse_path
    store.put(strip_rows(3))
    store.flush()
    assert store.path.exists() and not settings.warehouse_path.exists()
    with pytest.raises(ValueError, match="warehouse"):
        LiveStore(settings.warehouse_path)


def test_put_then_flush_makes_rows_readable_latest_and_rolls(store):
    store.put(strip_rows(4, symbols=("BTC", "ETH")))  # BTC at +0, +2 ms; ETH at +1, +3 ms
    store.put(strip_rows(2, venue="okx", symbols=("BTC",), start_ms=10))
    rolls = strip_rows(3, kind="roll").with_columns(ts=pl.Series([T0 + dt.timedelta(hours=h) for h in (16, 0, 8)]))
    store.put(rolls)
    store.flush()

    latest = store.latest()
    assert latest.schema == pl.Schema(LIVE_STRIP_SCHEMA)
    got = latest.select("venue", "symbol", ms=(pl.col("ts") - T0).dt.total_milliseconds()).rows()
    assert got == [("binance", "BTC", 2), ("binance", "ETH", 3), ("okx", "BTC", 11)]
    assert store.latest("okx")["venue"].to_list() == ["okx"]
    assert store.latest("deribit").height == 0

    roll = store.rolls("binance", "BTC")
    assert roll["ts"].to_list() == [T0 + dt.timedelta(hours=h) for h in (0, 8, 16)]
    assert roll["kind"].unique().to_list() == ["roll"]
    assert store.rolls("binance", "SOL").schema == pl.Schema(LIVE_STRIP_SCHEMA)


def test_a_later_row_with_the_same_key_replaces_the_earlier_one(store):
    store.put(strip_rows(5, b0=0.1))
    store.flush()
    store.put(strip_rows(2, b0=0.2))  # same keys as the first two rows, in a later batch
    store.put(strip_rows(1, b0=0.3))  # and again within one batch
    store.flush()
    rows = store._query("SELECT * FROM live_strip ORDER BY ts", [])
    assert rows.height == 5
    assert rows["b0"].to_list() == pytest.approx([0.3, 0.2, 0.1, 0.1, 0.1])


def test_stored_at_and_latency_samples_are_recorded_per_row(store):
    received = utcnow()
    store.put(strip_rows(50, received_at=received))
    store.flush()
    after = utcnow()
    latencies = store.latencies_ms()
    assert len(latencies) == 50
    assert all(0 <= ms < 5_000 for ms in latencies)
    stored = store.latest()["stored_at"][0]
    assert received <= stored <= after + dt.timedelta(milliseconds=1)


def test_rows_survive_a_restart_of_the_store(home):
    with LiveStore(live_store_path(home)) as first:
        first.put(strip_rows(3, kind="roll"))
    with LiveStore(live_store_path(home)) as second:
        assert second.rolls("binance", "BTC").height == 3


def test_as_of_and_coverage_are_stored_with_each_row(store):
    rows = strip_rows(2, kind="roll").with_columns(
        as_of=pl.Series([T0 + dt.timedelta(hours=9), T0]), coverage=pl.Series([0.875, 1.0]), min_coverage=pl.lit(0.0)
    )
    store.put(rows)
    store.flush()
    got = store.rolls("binance", "BTC").select("ts", "as_of", "coverage", "min_coverage").rows()
    assert got == [
        (T0, T0 + dt.timedelta(hours=9), 0.875, 0.0),
        (T0 + dt.timedelta(milliseconds=1), T0, 1.0, 0.0),
    ]


def test_two_contracts_of_one_coin_are_two_series(store):
    store.put(strip_rows(2, kind="roll"))
    store.put(strip_rows(3, kind="roll", contract="inverse", b0=0.2))  # same venue, coin and ts
    store.put(strip_rows(1, start_ms=7, contract="inverse"))
    store.flush()
    assert store.rolls("binance", "BTC").height == 2  # the main perpetual: usdt
    inverse = store.rolls("binance", "BTC", "inverse")
    assert inverse.height == 3 and inverse["b0"].to_list() == [0.2] * 3
    assert store.latest().select("contract", "ts").rows() == [("inverse", T0 + dt.timedelta(milliseconds=7))]


def test_a_store_written_before_as_of_and_coverage_opens_and_gains_them(home):
    """The oldest store: no as_of, coverage, min_coverage, contract; key (venue, symbol,
    kind, ts). It gains the columns and the new key, its rows the venue's main perpetual."""
    path = live_store_path(home)
    path.parent.mkdir(parents=True)
    old_columns = [c for c in LIVE_STRIP_SCHEMA if c not in ("as_of", "coverage", "min_coverage", "contract")]
    # stored now: a row older than the retention would be pruned when the store opens
    old = strip_rows(1, kind="roll").with_columns(stored_at=pl.lit(utcnow(), pl.Datetime("ms"))).select(old_columns)
    with duckdb.connect(str(path)) as con:
        con.register("old", old.to_arrow())
        con.execute("CREATE TABLE live_strip AS SELECT * FROM old")
        con.execute("ALTER TABLE live_strip ADD PRIMARY KEY (venue, symbol, kind, ts)")
    with LiveStore(path) as reopened:
        before = reopened.rolls("binance", "BTC")
        assert before.height == 1 and before["as_of"].to_list() == [None] and before["coverage"].to_list() == [None]
        reopened.put(strip_rows(1, kind="roll", start_ms=5))
        reopened.put(strip_rows(1, kind="roll", contract="usdc"))  # the old row's ts, another contract
        reopened.flush()
        after = reopened.rolls("binance", "BTC")
        assert reopened.rolls("binance", "BTC", "usdc").height == 1
    assert after.schema == pl.Schema(LIVE_STRIP_SCHEMA)
    assert after["contract"].to_list() == ["usdt", "usdt"]
    assert after["coverage"].to_list() == [None, 0.5]
    assert after["as_of"].to_list() == [None, T0 + dt.timedelta(milliseconds=5)]


def test_rows_built_by_the_writer_are_stored_as_the_same_rows_put_as_a_frame(home, tmp_path):
    """A function that builds the rows (called by the writer thread, off the caller's event
    loop) stores what putting its frame stores; an empty build stores nothing."""
    received = utcnow()
    batches = [strip_rows(4, symbols=("BTC", "ETH"), received_at=received), strip_rows(2, b0=0.3, received_at=received)]
    tables = []
    for folder, lazily in ((home, False), (tmp_path / "other", True)):
        with LiveStore(live_store_path(folder)) as store:
            for batch in batches:
                store.put((lambda batch=batch: batch) if lazily else batch)
            store.put(lambda: strip_rows(0)) if lazily else None
            store.flush()
            tables.append(store._query("SELECT * FROM live_strip ORDER BY venue, symbol, ts", []).drop("stored_at"))
    assert tables[0].height == 5 and tables[0].equals(tables[1])  # BTC at +0 ms put twice


def test_a_build_that_fails_is_reported_as_a_failed_commit(home):
    store = LiveStore(live_store_path(home))
    store.put(lambda: strip_rows(1).drop("received_at"))
    with pytest.raises(RuntimeError, match="writer failed"):
        store.flush()
    with pytest.raises(RuntimeError):
        store.close()


def test_rows_lacking_a_column_are_refused_at_put(store):
    with pytest.raises(ValueError, match="received_at"):
        store.put(strip_rows(1).drop("received_at"))


def test_a_failed_commit_is_reported_to_later_callers(home):
    store = LiveStore(live_store_path(home))
    store.put(strip_rows(1).with_columns(venue=pl.lit(None, pl.String)))  # NULL in the key
    with pytest.raises(RuntimeError, match="writer failed"):
        store.flush()
    with pytest.raises(RuntimeError, match="writer failed"):
        store.put(strip_rows(1))
    with pytest.raises(RuntimeError):
        store.close()


def test_throughput_100k_rows_at_over_20k_rows_per_second_with_low_latency(store):
    """100k rows in puts of 50, paced at 40k rows/s (twice the DESIGN target of 20k/s)."""
    total, per_put, rate = 100_000, 50, 40_000
    template = strip_rows(total, symbols=("BTC", "ETH", "SOL", "XRP"))
    chunks = [template.slice(i, per_put) for i in range(0, total, per_put)]
    start = time.perf_counter()
    for i, chunk in enumerate(chunks):
        store.put(chunk.with_columns(received_at=pl.lit(utcnow(), pl.Datetime("ms"))))
        ahead = start + (i + 1) * per_put / rate - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
    store.flush()
    elapsed = time.perf_counter() - start
    latencies = sorted(store.latencies_ms())
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    print(
        f"\nlive store: {total} rows in {elapsed:.2f} s = {total / elapsed:,.0f} rows/s, "
        f"{store.batches} commits, latency p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {latencies[-1]:.0f} ms"
    )
    assert len(latencies) == total
    assert total / elapsed > 20_000
    assert p99 < 1000  # the target is 250 ms; the bound is generous for a busy CI machine


# -- retention ------------------------------------------------------------------------------


class SettableClock:
    def __init__(self, now: dt.datetime):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def test_rows_older_than_the_retention_are_pruned_when_the_store_opens(home):
    clock = SettableClock(T0)
    with LiveStore(live_store_path(home), clock=clock) as first:
        first.put(strip_rows(5, kind="roll"))
    clock.now = T0 + LIVE_RETENTION  # exactly the retention: kept
    with LiveStore(live_store_path(home), clock=clock) as second:
        assert second.rows_pruned == 0 and second.rolls("binance", "BTC").height == 5
        second.put(strip_rows(2, kind="roll", start_ms=10))
    clock.now = T0 + LIVE_RETENTION + dt.timedelta(milliseconds=1)
    with LiveStore(live_store_path(home), clock=clock) as third:
        assert third.rows_pruned == 5
        assert third.rolls("binance", "BTC")["stored_at"].to_list() == [T0 + LIVE_RETENTION] * 2


def test_a_running_store_prunes_every_prune_every_s_and_its_file_stays_bounded(home):
    """Forty simulated days of 5,000 rows a day with a 7-day retention: the store holds 8
    days' worth and its file stops growing once the first week is pruned (freed blocks are
    reused), where without pruning it would grow fivefold."""
    clock = SettableClock(T0)
    sizes = []
    with LiveStore(live_store_path(home), clock=clock, prune_every_s=0.0) as store:
        for day in range(40):
            clock.now = T0 + dt.timedelta(days=day)
            store.put(strip_rows(5_000, symbols=("BTC", "ETH"), start_ms=day * 1_000_000))
            store.flush()
            sizes.append(store.path.stat().st_size)
        held = store._query("SELECT * FROM live_strip", [])
    assert held.height == 8 * 5_000 and held["stored_at"].min() == T0 + dt.timedelta(days=32)
    assert store.rows_pruned == 32 * 5_000
    assert max(sizes[25:]) <= 1.25 * max(sizes[10:25]), sizes


# -- status file ---------------------------------------------------------------------------


def statuses() -> list[VenueStatus]:
    return [
        VenueStatus(
            venue="binance",
            state="live",
            last_message_at=NOW - dt.timedelta(seconds=2),
            last_print_ts=NOW - dt.timedelta(seconds=3, milliseconds=500),
            messages=1200,
            prints=1100,
            reconnects=1,
            gaps_filled=12,
            skipped_frames=2,
        ),
        VenueStatus(
            venue="okx",
            state="reconnecting",
            # a timezone-aware time is kept as naive UTC, like every time in the project
            last_message_at=dt.datetime(2025, 3, 1, 16, 59, 0, tzinfo=dt.timezone(dt.timedelta(hours=9))),
            reconnects=4,
            last_error="ConnectionClosed: 1006\n(abnormal closure)",
        ),
        VenueStatus(venue="deribit", state="connecting"),
    ]


def test_status_round_trips_through_the_file(home):
    path = status_path(home)
    write_status(path, statuses(), NOW)
    written_at, back = read_status(path)
    assert written_at == NOW
    assert back == statuses()
    assert back[1].last_message_at == dt.datetime(2025, 3, 1, 7, 59, 0)
    assert [p.name for p in path.parent.iterdir()] == ["status.json"]  # no temp file left


def test_no_status_file_says_no_collector_has_run(home):
    with pytest.raises(FileNotFoundError, match="funding-assets collect"):
        read_status(status_path(home))


def test_an_unknown_state_is_refused():
    with pytest.raises(ValueError, match="state"):
        VenueStatus(venue="binance", state="sleeping")


def test_table_shows_message_age_print_lag_and_counters(home):
    write_status(status_path(home), statuses(), NOW)
    table = status_table(home, now=NOW + dt.timedelta(seconds=5))
    lines = table.splitlines()
    assert lines[0] == "collector status written 2025-03-01 08:00:00 UTC (5 s ago)"
    assert "WARNING" not in table
    assert lines[1].split() == [
        "venue",
        "state",
        "age",
        "s",
        "lag",
        "s",
        "messages",
        "prints",
        "reconnects",
        "gaps",
        "filled",
        "skipped",
        "last",
        "error",
    ]
    assert lines[2].split() == ["binance", "live", "7.0", "8.5", "1200", "1100", "1", "12", "2", "-"]
    assert lines[3].split() == [
        "okx",
        "reconnecting",
        "65.0",
        "-",
        "0",
        "0",
        "4",
        "0",
        "0",
        "ConnectionClosed:",
        "1006",
        "(abnormal",
        "closure)",
    ]
    assert lines[4].split()[:4] == ["deribit", "connecting", "-", "-"]
    # fixed-width columns: numbers right-aligned under their heading
    assert lines[1].index("age s") + len("age s") == lines[2].index("7.0") + len("7.0") == lines[3].index("65.0") + 4


def test_table_warns_when_the_status_is_older_than_30_s(home):
    write_status(status_path(home), statuses(), NOW)
    table = status_table(home, now=NOW + dt.timedelta(seconds=45))
    assert "WARNING: status is 45 s old" in table
    assert "collector is probably not running" in table
