"""Dagster's own cost per partition of a range run: the floor under a full-history backfill.

Run:  .venv/bin/python bench/partition_overhead.py [--start 2020-01-01] [--end YESTERDAY-1] [--write]

A full-history backfill materialises every date x venue partition of five assets
(raw_prints, curve_snapshots, curve_features, pca_factors, pca_fits) and every day of six
daily ones; Dagster records one materialisation event per partition of each asset, however
the runs are cut. This measures that bookkeeping alone: assets that compute nothing and
write nothing (an IO manager that stores nothing), on the pipeline's own partitions
(``funding_assets.partitions``), materialised as one range run each, exactly as
``funding-assets backfill`` launches its runs (``dg.materialize`` in-process, an ephemeral
instance as the command uses without ``DAGSTER_HOME``, one planned event per asset). The
seconds per event times the events of a full-history backfill is what Dagster alone
needs, before a single print is fetched or computed.

``--write`` puts the table in BENCHMARKS.md (section ``Dagster per-partition floor``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
import time
from pathlib import Path

import dagster as dg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, write_section  # noqa: E402

from funding_assets.backfill import planned_events_per_asset  # noqa: E402
from funding_assets.definitions import defs  # noqa: E402
from funding_assets.partitions import START_DATE, daily, date_venue, venues  # noqa: E402

SECTION = "## Dagster per-partition floor"


def _assets_partitioned_by(partitions: dg.PartitionsDefinition) -> tuple[str, ...]:
    """The pipeline's assets on ``partitions`` (``funding_assets.definitions``)."""
    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    return tuple(sorted(k.to_user_string() for k in keys if graph.get(k).partitions_def == partitions))


#: Assets of a full-history backfill by partitioning.
DATE_VENUE_ASSETS = _assets_partitioned_by(date_venue)
DAILY_ASSETS = _assets_partitioned_by(daily)


class _Nothing(dg.IOManager):
    """Stores nothing, loads nothing: only Dagster's bookkeeping remains."""

    def handle_output(self, context, obj) -> None:
        return None

    def load_input(self, context):
        return None


def _asset(name: str, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(name=name, partitions_def=partitions, backfill_policy=dg.BackfillPolicy.single_run())
    def _noop() -> None:
        return None

    return _noop


@dataclasses.dataclass
class Run:
    partitioning: str
    partitions: int
    seconds: float

    @property
    def ms_per_partition(self) -> float:
        return self.seconds / self.partitions * 1000


def measure(start: dt.date, end: dt.date) -> list[Run]:
    """One range run of a no-op asset per partitioning over ``start..end``, all venues."""
    keys = list(venues.get_partition_keys())
    cases = [
        ("date x venue", _asset("noop_date_venue", date_venue), f"{start}|{keys[0]}", f"{end}|{keys[-1]}"),
        ("daily", _asset("noop_daily", daily), start.isoformat(), end.isoformat()),
    ]
    runs = []
    with planned_events_per_asset():  # as funding-assets backfill runs them
        for label, asset, lo, hi in cases:
            with dg.DagsterInstance.ephemeral() as instance:
                t0 = time.perf_counter()
                result = dg.materialize(
                    [asset],
                    instance=instance,
                    resources={"io_manager": _Nothing()},
                    tags={"dagster/asset_partition_range_start": lo, "dagster/asset_partition_range_end": hi},
                )
                seconds = time.perf_counter() - t0
                done = len(result.asset_materializations_for_node(asset.key.path[-1]))
            if not result.success or not done:
                raise SystemExit(f"the {label} run failed")
            runs.append(Run(label, done, seconds))
    return runs


def floor(runs: list[Run]) -> tuple[int, float]:
    """Events of a full backfill of every asset over the measured range, and their seconds."""
    by = {r.partitioning: r for r in runs}
    events = by["date x venue"].partitions * len(DATE_VENUE_ASSETS) + by["daily"].partitions * len(DAILY_ASSETS)
    seconds = by["date x venue"].seconds * len(DATE_VENUE_ASSETS) + by["daily"].seconds * len(DAILY_ASSETS)
    return events, seconds


def table(runs: list[Run], start: dt.date, end: dt.date) -> str:
    events, seconds = floor(runs)
    lines = [
        "| range run of a no-op asset | partitions | seconds | ms per partition |",
        "|---|---:|---:|---:|",
        *(
            f"| {r.partitioning}, {start}..{end} | {r.partitions:,} | {r.seconds:.1f} | {r.ms_per_partition:.2f} |"
            for r in runs
        ),
        f"| **a full backfill's assets** ({len(DATE_VENUE_ASSETS)} date x venue, {len(DAILY_ASSETS)} daily) "
        f"| {events:,} | **{seconds:.0f}** | |",
    ]
    return "\n".join(lines)


def section(runs: list[Run], start: dt.date, end: dt.date, command: str) -> str:
    return "\n".join(
        [
            SECTION,
            "",
            "Dagster's bookkeeping alone, per partition of a range run: assets that compute and store nothing, on",
            "the pipeline's partitions, each materialised as one range run the way `funding-assets backfill` runs",
            "them (in-process, ephemeral instance, one planned event per asset). Dagster records a materialisation",
            "per partition of every asset however the runs are cut; the last row is that floor for the assets of",
            "a full-history backfill, before any print is fetched or computed (target for the whole backfill: 2",
            "minutes).",
            "",
            f"Machine: {machine()}. Reproduce: `{command}`.",
            "",
            table(runs, start, end),
            "",
        ]
    )


def main(argv: list[str] | None = None) -> list[Run]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_end = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2)
    p.add_argument("--start", type=dt.date.fromisoformat, default=dt.date.fromisoformat(START_DATE))
    p.add_argument("--end", type=dt.date.fromisoformat, default=default_end)
    p.add_argument("--write", action="store_true", help="put the table in BENCHMARKS.md")
    args = p.parse_args(argv)
    runs = measure(args.start, args.end)
    print(machine())
    print(table(runs, args.start, args.end))
    if args.write:
        command = ".venv/bin/python bench/partition_overhead.py --write"
        if args.start != dt.date.fromisoformat(START_DATE) or args.end != default_end:
            command = f".venv/bin/python bench/partition_overhead.py --start {args.start} --end {args.end} --write"
        write_section(section(runs, args.start, args.end, command))
    return runs


if __name__ == "__main__":
    main()
