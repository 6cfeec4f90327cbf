"""The pipeline under faults: nothing lost, nothing duplicated, nothing written that should not be.

- **Error storms during a backfill**: the real venue clients against the loopback simulator
  (real budgets enforced) refusing every request with bursts of 429/418/403/5xx and
  ``Retry-After``; the warehouse ends identical to a clean run's, table by table. A storm
  beyond the clients' retries fails the backfill with one clear line and changes nothing.
- **Duplicate and out-of-order prints** (the simulator's model: settlements and quotes) fed to
  the strip engine and to the live strip: the same rows as the clean, sorted input.
- **An interval change mid-day** (8h -> 1h at 09:00) **and a window the venue never
  published**: the strips against an oracle computed here from the settlements (values,
  ``n_filled``, ``coverage``), no row for the missing window, live = batch.
- **SIGKILL** of a ``funding-assets backfill`` and of materialisations at random instants,
  then a rerun: every table equals a clean run's row for row, and no lock is left behind.

Every case records a row for RELIABILITY.md (``reliability.py``). Loopback only (the default
``sim`` source); the kill instants are random, the assertions hold wherever they land.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

from funding_assets import cli, resources, strip
from funding_assets.live.livestrip import PRINT_COLUMNS, LiveStrip, rows_frame
from funding_assets.prints import PRINT_SCHEMA
from funding_assets.settings import ENV_VARS
from funding_assets.sim import FundingModel
from funding_assets.sim.server import SimServer
from funding_assets.sources import venues as venue_sources
from funding_assets.warehouse import open_database

pytest_plugins = ["reliability"]

MODEL = FundingModel()
DAY = "2025-03-10"  # a backfill of one day (and its lookbacks: 41 days of prints)
VENUES, COINS = "binance,bybit", "BTC"
BACKFILL = ["backfill", "--start", DAY, "--end", DAY, "--venues", VENUES, "--coins", COINS]
STATUSES = (429, 418, 403, 500, 502, 503)
H = dt.timedelta(hours=1)


# --- the warehouse, table by table ----------------------------------------------------------


def tables(warehouse: Path) -> dict[str, list[str]]:
    """Every table of schema ``funding`` (bookkeeping included), each row as its repr, in order."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        names = [
            n
            for (n,) in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'funding' ORDER BY 1"
            ).fetchall()
        ]
        return {
            n: [repr(r) for r in con.execute(f'SELECT * FROM funding."{n}" ORDER BY ALL').fetchall()] for n in names
        }


def compare(clean: dict[str, list[str]], got: dict[str, list[str]]) -> dict[str, int]:
    """Rows expected, stored, lost, duplicated and extra over all tables (multiset compare)."""
    out = collections.Counter()
    for name in sorted(set(clean) | set(got)):
        want, have = collections.Counter(clean.get(name, [])), collections.Counter(got.get(name, []))
        out["expected"] += sum(want.values())
        out["stored"] += sum(have.values())
        out["lost"] += sum((want - have).values())
        out["duplicates"] += sum(n - 1 for n in have.values() if n > 1)
        out["extra"] += sum((have - want).values())
    return dict(out)


def differing(clean: dict[str, list[str]], got: dict[str, list[str]]) -> dict[str, tuple[int, int]]:
    """Tables whose rows differ: name -> (clean rows, rows) (for failure messages)."""
    return {
        n: (len(clean.get(n, [])), len(got.get(n, []))) for n in set(clean) | set(got) if clean.get(n) != got.get(n)
    }


def cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (*ENV_VARS, "DAGSTER_HOME")}
    return {**env, "FUNDING_ASSETS_HOME": str(home)}


class Proc:
    """A child process whose stderr lines are collected, with the instant each arrived."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.started = time.monotonic()
        self.popen = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.popen.stderr:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def wait_line(self, pattern: str, timeout_s: float = 60) -> float:
        """The instant the first line matching ``pattern`` arrived (raises if it never does)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for at, line in list(self.lines):
                if re.search(pattern, line):
                    return at
            if self.popen.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.01)
        raise AssertionError(f"no line matching {pattern!r}; got {self.text()}")

    def kill(self) -> int:
        self.popen.send_signal(signal.SIGKILL)
        return self.finish()

    def finish(self, timeout_s: float = 120) -> int:
        code = self.popen.wait(timeout_s)
        self._reader.join(5)
        return code

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


def backfill_proc(home: Path) -> Proc:
    return Proc([sys.executable, "-m", "funding_assets.cli", *BACKFILL], cli_env(home))


def lock_is_free(warehouse: Path) -> bool:
    """The file opens for writing at once (a killed writer's lock went with it)."""
    if not warehouse.exists():
        return True
    open_database(str(warehouse), read_only=False, timeout_s=0).close()  # raises WarehouseLockedError
    return True


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    """A clean ``funding-assets backfill`` in a child process: (its tables, seconds of runs)."""
    home = tmp_path_factory.mktemp("clean") / "data"
    proc = backfill_proc(home)
    first = proc.wait_line(r"^backfill ")
    assert proc.finish() == 0, proc.text()
    run_s = time.monotonic() - first
    return home / "warehouse.duckdb", tables(home / "warehouse.duckdb"), run_s


# --- error storms during a backfill ----------------------------------------------------------


class Storm:
    """The simulator's venues refuse every request ``burst`` times in a row before answering it
    (``None``: forever), with the statuses of ``STATUSES`` in turn, each with ``Retry-After``."""

    def __init__(self, server: SimServer, burst: int | None, retry_after_s: float = 0.01) -> None:
        self.server, self.original = server, server.handle
        self.burst, self.retry_after_s = burst, retry_after_s
        self.left: dict[str, int | None] = collections.defaultdict(lambda: None)
        self.requests = collections.Counter()  # per venue, requests answered
        self.refused = collections.Counter()  # per status
        self.lock = threading.Lock()
        server.handle = self

    def __call__(self, method: str, raw_path: str, body: bytes):
        venue = raw_path.lstrip("/").split("/", 1)[0]
        sim = self.server.sims.get(venue)
        with self.lock:
            if self.left[venue] is None:  # a new request: its burst starts
                self.left[venue] = 10**9 if self.burst is None else self.burst
            refuse = sim is not None and self.left[venue] > 0
            if refuse:
                self.left[venue] -= 1
                status = STATUSES[sum(self.refused.values()) % len(STATUSES)]
                self.refused[status] += 1
            else:
                self.left[venue] = None
                self.requests[venue] += 1
        if not refuse:
            return self.original(method, raw_path, body)
        response = sim.error(status, "storm")
        response.headers["Retry-After"] = f"{self.retry_after_s:g}"
        return response


@pytest.fixture
def stormy_source(monkeypatch):
    """Point the ``sim`` source of in-process runs at a fresh simulator (real budgets on)."""
    server = SimServer(limits=True).start()
    server._http.RequestHandlerClass.disable_nagle_algorithm = True  # ~40 ms less per answer (see rest_sim)
    monkeypatch.setattr(venue_sources, "in_process_simulator", lambda: server)
    resources._source.cache_clear()  # the source is built once per process: build it again
    yield server
    resources._source.cache_clear()
    server.stop()


def run_cli(argv: list[str], home: Path, monkeypatch, capsys) -> tuple[int, str]:
    for var in (*ENV_VARS, "DAGSTER_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FUNDING_ASSETS_HOME", str(home))
    capsys.readouterr()
    code = cli.main(argv)
    return code, capsys.readouterr().err


@pytest.mark.reliability_heavy
def test_a_backfill_through_a_storm_of_429_418_403_5xx_equals_a_clean_run(
    clean_run, stormy_source, tmp_path, monkeypatch, capsys, reliability
):
    burst = reliability.sized(5, 7)  # the clients give up after 8 attempts
    storm = Storm(stormy_source, burst)
    home = tmp_path / "data"
    t0 = time.monotonic()
    code, err = run_cli(BACKFILL, home, monkeypatch, capsys)
    seconds = time.monotonic() - t0
    assert code == 0, err
    _, clean, clean_s = clean_run
    got = tables(home / "warehouse.duckdb")
    counts = compare(clean, got)
    refused = sum(storm.refused.values())
    reliability.record(
        "429/418/403/5xx storms during a backfill",
        f"{VENUES} x {COINS}, {DAY} with lookbacks: each of {sum(storm.requests.values())} requests refused "
        f"{burst} times in a row first ({refused} refusals: "
        + ", ".join(f"{s} x{n}" for s, n in sorted(storm.refused.items()))
        + ")",
        expected=counts["expected"],
        stored=counts["stored"],
        duplicates=counts["duplicates"],
        user_sees=f"the usual progress and summary, exit 0, runs in {seconds:.1f} s (clean: {clean_s:.1f} s); "
        "the retries are silent",
    )
    assert set(storm.refused) == set(STATUSES) and refused == burst * sum(storm.requests.values())
    assert got == clean, (counts, differing(clean, got))


def test_a_storm_beyond_the_retries_fails_the_backfill_and_changes_nothing(
    clean_run, stormy_source, tmp_path, monkeypatch, capsys, reliability
):
    warehouse, clean, _ = clean_run
    home = tmp_path / "data"
    home.mkdir()
    shutil.copy(warehouse, home / "warehouse.duckdb")  # a complete warehouse the storm must not touch
    storm = Storm(stormy_source, None)
    code, err = run_cli(BACKFILL, home, monkeypatch, capsys)
    error = next((line for line in err.splitlines() if line.startswith("error: ")), "")
    got = tables(home / "warehouse.duckdb")
    counts = compare(clean, got)
    reliability.record(
        "429/418/403/5xx storms during a backfill",
        "every request refused (beyond the 8 attempts), over a complete warehouse",
        expected=counts["expected"],
        stored=counts["stored"],
        duplicates=counts["duplicates"],
        user_sees=f"exit {code}: {error[:220]}",
    )
    assert code == 1 and sum(storm.refused.values()) >= 8
    assert re.search(
        r"(raw_prints|instruments): .*(binance|bybit).*gave up after 8 attempts; last: HTTP \d{3}", error
    ), error
    assert got == clean, (counts, differing(clean, got))


# --- duplicate and out-of-order prints ----------------------------------------------------------


def model_prints(venue: str, coin: str, start: dt.datetime, days: int, quote_every_min: int = 47) -> pl.DataFrame:
    """The model's settlements in ``[start, start + days]`` and the venue's quotes every
    ``quote_every_min`` minutes before the end (print model, sorted by ts)."""
    end = start + dt.timedelta(days=days)
    settled = MODEL.settlements(venue, coin, start, end + dt.timedelta(milliseconds=1))  # [start, end]
    quotes = []
    at = start + dt.timedelta(minutes=3, milliseconds=17)
    while at < end:
        rate, funding_time, hours = MODEL.predicted(venue, coin, at)
        contract = settled["contract"][0] if settled.height else None
        quotes.append((venue, coin, contract, "X", at, funding_time, rate, hours, "predicted", "model"))
        at += dt.timedelta(minutes=quote_every_min, milliseconds=1)
    predicted = pl.DataFrame(quotes, schema=PRINT_SCHEMA, orient="row")
    return pl.concat([settled, predicted]).sort("ts", "funding_time")


def disordered(prints: pl.DataFrame, rng: random.Random, *, late_h: float, dup_share: float) -> pl.DataFrame:
    """The same prints arriving up to ``late_h`` hours out of order, ``dup_share`` of them twice."""
    rows = prints.rows()
    ts = prints.columns.index("ts")
    keyed = [(row[ts] + dt.timedelta(hours=rng.uniform(0, late_h)), row) for row in rows]
    keyed += [(row[ts] + dt.timedelta(hours=rng.uniform(0, late_h)), row) for row in rows if rng.random() < dup_share]
    keyed.sort(key=lambda k: k[0])
    return pl.DataFrame([row for _, row in keyed], schema=prints.schema, orient="row")


def live_rolls(prints: pl.DataFrame, rng: random.Random) -> pl.DataFrame:
    """The roll rows a live strip fed ``prints`` in row order ends with (the last per window),
    in messages of 1 to 8 prints (a stream push, a REST gap fill)."""
    live, rows, todo = LiveStrip(), [], prints.select(PRINT_COLUMNS).rows()
    while todo:
        n = rng.randint(1, 8)
        rows += live.update(todo[:n])
        todo = todo[n:]
    frame = rows_frame(rows).filter(pl.col("kind") == "roll")
    return frame.unique(["venue", "symbol", "ts"], keep="last", maintain_order=True).sort("venue", "symbol", "ts")


@pytest.mark.parametrize(
    ("venue", "start"),
    [("binance", dt.datetime(2024, 8, 15)), ("hyperliquid", dt.datetime(2025, 2, 1))],
    ids=["binance-8h-to-1h", "hyperliquid-hourly"],
)
def test_duplicate_and_out_of_order_prints_give_the_clean_strips(venue, start, reliability):
    clean = model_prints(venue, "BTC", start, days=6)
    batch_roll = strip.roll_snapshots(clean)
    batch_intraday = strip.intraday_snapshots(clean, every="30m")
    assert batch_roll.height > 10 and batch_intraday.height > 100
    seeds = reliability.sized(2, 25)
    stored = duplicates = 0
    for seed in range(seeds):
        rng = random.Random(seed)
        # batch: any order at all, a third of the prints twice
        shuffled = disordered(clean, rng, late_h=24 * 6, dup_share=0.3)
        roll, intraday = strip.roll_snapshots(shuffled), strip.intraday_snapshots(shuffled, every="30m")
        assert roll.equals(batch_roll) and intraday.equals(batch_intraday), seed
        # live: up to 6 hours late (a reconnect's gap fill), a fifth twice
        late = disordered(clean, rng, late_h=6, dup_share=0.2)
        rolls = live_rolls(late, rng)
        assert rolls.equals(batch_roll), seed
        stored += roll.height + rolls.height
        duplicates += roll.select("venue", "symbol", "ts").is_duplicated().sum()
    reliability.record(
        "duplicate and out-of-order prints (strip engine, live strip)",
        f"{venue} BTC, 6 days of model settlements and quotes, {seeds} seeds: batch fully shuffled with 30 % "
        "twice, live up to 6 h late with 20 % twice",
        expected=2 * seeds * batch_roll.height,
        stored=stored,
        duplicates=duplicates,
        user_sees="the same curve_snapshots rows, byte for byte (intraday samples too, batch)",
    )


# --- an interval change mid-day and a window never published -----------------------------------

SWITCH = dt.datetime(2024, 8, 19, 8)  # binance BTC settles hourly from 09:00 (the model's episode)
NEVER = dt.datetime(2024, 8, 20, 16)  # the grid window (08:00, 16:00] the venue never publishes
PARTIAL = dt.datetime(2024, 8, 21, 8)  # only 5 of its 8 hourly settlements are published
GRID = dt.timedelta(hours=8)


def grid_end(t: dt.datetime) -> dt.datetime:
    """The 8h grid window a settlement belongs to (ceil to 00/08/16 UTC)."""
    floor = t.replace(hour=t.hour // 8 * 8, minute=0, second=0, microsecond=0)
    return floor if floor == t else floor + GRID


def oracle(settled: pl.DataFrame) -> dict[dt.datetime, dict]:
    """Roll rows computed here from the settlements: b_k (apr), n_filled, coverage, min_coverage
    of every window with a full strip (DESIGN section 3, max_fill 2)."""
    rate, hours = collections.defaultdict(float), collections.defaultdict(float)
    for row in settled.iter_rows(named=True):
        rate[grid_end(row["funding_time"])] += row["rate"]
        hours[grid_end(row["funding_time"])] += row["interval_hours"]
    apr = {g: rate[g] * 8 / hours[g] * 1095 for g in hours}
    out = {}
    for w in sorted(apr):
        a = [apr.get(w - k * GRID) for k in range(10)]
        buckets, filled = [], 0
        for k in range(8):
            if a[k] is None:
                newer = max(j for j in range(k) if a[j] is not None)
                older = next((j for j in range(k + 1, 10) if a[j] is not None), None)
                if older is None or older - newer - 1 > 2:
                    break
                buckets.append(a[newer] + (a[older] - a[newer]) * (k - newer) / (older - newer))
                filled += 1
            else:
                buckets.append(a[k])
        else:
            cover = [hours[w - k * GRID] / 8 if a[k] is not None else 0.0 for k in range(8)]
            out[w] = {"b": buckets, "n_filled": filled, "coverage": cover[0], "min_coverage": min(cover[1:])}
    return out


def test_an_interval_change_and_an_unpublished_window_give_true_strips_live_and_batch(reliability):
    start = SWITCH - dt.timedelta(days=4)
    prints = model_prints("binance", "BTC", start, days=7, quote_every_min=29)
    partial_hours = [PARTIAL - H * k for k in (0, 2, 5)]  # three of the window's hours never published
    gone = (pl.col("funding_time") > NEVER - GRID) & (pl.col("funding_time") <= NEVER)
    gone = gone | pl.col("funding_time").is_in(partial_hours)
    prints = prints.filter(~gone)
    # a quote of the schedule the venue left (8h, settling 16:00), made after the switch
    stale = pl.DataFrame(
        [
            (
                "binance",
                "BTC",
                "usdt",
                "X",
                SWITCH + 10 * dt.timedelta(minutes=1),
                SWITCH + GRID,
                0.0009,
                8.0,
                "predicted",
                "x",
            )
        ],
        schema=PRINT_SCHEMA,
        orient="row",
    )
    prints = pl.concat([prints, stale]).sort("ts", "funding_time")
    settled = prints.filter(pl.col("kind") == "realised")
    assert set(settled.filter(pl.col("funding_time") > SWITCH)["interval_hours"].head(8)) == {1.0}  # the episode

    want = oracle(settled)
    batch = strip.roll_snapshots(prints)
    rows = {r["ts"]: r for r in batch.iter_rows(named=True)}
    assert sorted(rows) == sorted(want)  # no row for the unpublished window, none invented
    assert NEVER not in rows and all(r["as_of"] == r["ts"] for r in rows.values())
    for w, expected in want.items():
        got = rows[w]
        assert [got[b] for b in strip.BUCKETS] == pytest.approx(expected["b"], abs=1e-12), w
        assert (got["n_filled"], got["coverage"], got["min_coverage"]) == (
            expected["n_filled"],
            pytest.approx(expected["coverage"]),
            pytest.approx(expected["min_coverage"]),
        ), w
    over_never = [w for w in want if NEVER < w <= NEVER + 7 * GRID]
    assert over_never and all(rows[w]["n_filled"] == 1 for w in over_never)
    assert rows[PARTIAL]["coverage"] == pytest.approx(5 / 8)
    assert rows[SWITCH + GRID]["coverage"] == 1.0  # the stale 8h quote counts for nothing
    # live = batch: the rolls row for row, the intraday samples to 1e-12
    live = LiveStrip()
    emitted = [r for q in prints.select(PRINT_COLUMNS).iter_rows() for r in live.update([q])]
    frame = rows_frame(emitted).unique(["venue", "symbol", "kind", "ts"], keep="last", maintain_order=True)
    assert frame.filter(pl.col("kind") == "roll").sort("ts").equals(batch)
    intraday = frame.filter(pl.col("kind") == "intraday")
    joined = intraday.join(strip.intraday_snapshots(prints, every=0), on=["venue", "symbol", "ts"], suffix="_batch")
    assert joined.height == intraday.height > 200
    for column in [*strip.BUCKETS, "coverage", "min_coverage"]:
        assert (joined[column] - joined[f"{column}_batch"]).abs().max() < 1e-12, column
    assert (joined["n_filled"] == joined["n_filled_batch"]).all()
    reliability.record(
        "interval change mid-day and a window never published",
        "binance BTC 8h -> 1h at 09:00 (model episode), window to 2024-08-20 16:00 never published, "
        "3 of 8 hours missing in the next, a stale 8h quote after the switch",
        expected=len(want),
        stored=batch.height,
        duplicates=batch.select("ts").is_duplicated().sum(),
        user_sees=f"curve_snapshots: no row for the missing window, n_filled=1 on the {len(over_never)} rows over "
        "it, coverage 0.625 on the partial one, live = batch",
    )


# --- SIGKILL ------------------------------------------------------------------------------------


@pytest.mark.reliability_heavy
def test_a_backfill_killed_at_random_instants_then_rerun_equals_a_clean_run(clean_run, tmp_path, reliability):
    _, clean, run_s = clean_run
    home = tmp_path / "data"
    warehouse = home / "warehouse.duckdb"
    rng = random.Random(reliability.sized(20250310, None))
    kills = []
    for _ in range(reliability.sized(2, 8)):
        proc = backfill_proc(home)
        first = proc.wait_line(r"^backfill ")
        delay = rng.uniform(0, 0.9 * run_s)  # mostly mid-run (the clean run's pace)
        time.sleep(max(0.0, first + delay - time.monotonic()))
        code = proc.kill()
        runs_done = sum(bool(re.match(r"\[\d+/\d+\] ok", line)) for _, line in proc.lines)
        kills.append(f"{delay:.1f}s/{runs_done} runs/{'killed' if code == -signal.SIGKILL else f'exit {code}'}")
        assert lock_is_free(warehouse)
    proc = backfill_proc(home)
    assert proc.finish() == 0, proc.text()
    rerun, rerun_s = proc.text(), time.monotonic() - proc.started
    assert "locked" not in rerun
    got = tables(warehouse)
    counts = compare(clean, got)
    reliability.record(
        "SIGKILL and rerun",
        f"funding-assets backfill {VENUES} x {COINS} killed {len(kills)} times at random instants "
        f"({', '.join(kills)}), then rerun",
        expected=counts["expected"],
        stored=counts["stored"],
        duplicates=counts["duplicates"],
        recovery_s=rerun_s,
        user_sees="rerun: no lock message, exit 0: " + rerun.strip().splitlines()[-1],
    )
    assert got == clean, (counts, differing(clean, got))


MATERIALISE = textwrap.dedent("""
    import datetime as dt, sys
    import dagster as dg
    from funding_assets.backfill import plan, run_step
    from funding_assets.resources import FundingConfig
    from funding_assets.sources.venues import in_process_simulator

    # the simulator answers without Nagle's ~40 ms per answer (as the tests' own simulators do)
    in_process_simulator()._http.RequestHandlerClass.disable_nagle_algorithm = True
    settings = FundingConfig.from_env()
    day = dt.date.fromisoformat(sys.argv[1])
    steps = plan(day, day, settings, dt.date.today())
    with dg.DagsterInstance.ephemeral() as instance:
        print("ready", file=sys.stderr, flush=True)
        for n in range(int(sys.argv[2])):
            for step in steps:
                outcome = run_step(step, settings, instance, lambda text: None)
                print(("done " if outcome.success else "FAILED ") + step.label, outcome.error, file=sys.stderr, flush=True)
                if not outcome.success:
                    sys.exit(1)
""")


@pytest.mark.reliability_heavy
def test_materialisations_killed_mid_write_leave_the_clean_rows(clean_run, tmp_path, reliability):
    """Materialisations of every asset of the backfill, over a complete warehouse, again and again:
    a SIGKILL at a random instant (often mid-transaction) leaves exactly the clean rows."""
    warehouse, clean, _ = clean_run
    home = tmp_path / "data"
    home.mkdir()
    shutil.copy(warehouse, home / "warehouse.duckdb")
    env = {**cli_env(home), "FUNDING_ASSETS_VENUES": VENUES, "FUNDING_ASSETS_COINS": COINS}
    rng = random.Random(reliability.sized(7, None))
    kills = []
    for _ in range(reliability.sized(2, 8)):
        proc = Proc([sys.executable, "-c", MATERIALISE, DAY, "1000"], env)
        ready = proc.wait_line(r"^ready")
        proc.wait_line(r"^done ")  # one whole run first: kills then land anywhere in the cycle
        time.sleep(max(0.0, rng.uniform(0, 2.0)))
        code = proc.kill()
        done = sum(line.startswith("done ") for _, line in proc.lines)
        kills.append(f"{time.monotonic() - ready:.1f}s/{done} runs")
        assert code == -signal.SIGKILL, proc.text()  # it was still materialising
        assert lock_is_free(home / "warehouse.duckdb")
        now = tables(home / "warehouse.duckdb")  # atomic partition writes: the old rows or the new, never a mix
        counts = compare(clean, now)
        assert counts["lost"] == counts["duplicates"] == counts["extra"] == 0, (counts, differing(clean, now))
    proc = Proc([sys.executable, "-c", MATERIALISE, DAY, "1"], env)  # the rerun
    assert proc.finish() == 0, proc.text()
    got = tables(home / "warehouse.duckdb")
    counts = compare(clean, got)
    reliability.record(
        "SIGKILL and rerun",
        f"materialisations of all {VENUES} assets over a complete warehouse killed {len(kills)} times "
        f"({', '.join(kills)}), then rerun",
        expected=counts["expected"],
        stored=counts["stored"],
        duplicates=counts["duplicates"],
        user_sees="nothing to repair: after each kill every table already held the clean rows; no lock left",
    )
    assert got == clean, (counts, differing(clean, got))
