"""``funding-assets``: backfill, demo and report from the command line.

Runs go through Dagster (in-process executor, one run per asset group per range). With
``DAGSTER_HOME`` set they are recorded in that instance and show up in ``dagster dev``;
otherwise an ephemeral instance is used. Exit codes: 0 done, 1 a run failed, 2 bad input.
"""

import argparse
import contextlib
import dataclasses
import datetime as dt
import os
import sys
import time

from .errors import FundingInputError
from .settings import ENV_COINS, ENV_VENUES, Settings, parse_list
from .venues import VENUES, check_coin, check_venue

DEMO_DAYS = 90


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2024-01-31, got {text!r}") from None


class Console:
    """Progress on one rewritten line when attached to a terminal, plain lines otherwise."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr  # the stderr of now, not of import time
        self.tty = self.stream.isatty()

    def show(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r" + text[:150].ljust(150))
            self.stream.flush()

    def log(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 150 + "\r")
        self.stream.write(text + "\n")
        self.stream.flush()


@contextlib.contextmanager
def _instance():
    import dagster as dg

    if os.environ.get("DAGSTER_HOME"):
        with dg.DagsterInstance.get() as instance:
            yield instance
    else:
        with dg.DagsterInstance.ephemeral() as instance:
            yield instance


def _settings(args: argparse.Namespace, **overrides) -> Settings:
    s = Settings.from_env()
    if getattr(args, "venues", None):
        overrides["venues"] = parse_list(args.venues, check_venue, "--venues")
    if getattr(args, "coins", None):
        overrides["coins"] = parse_list(args.coins, check_coin, "--coins")
    return dataclasses.replace(s, **overrides)


def _run_backfill(start: dt.date, end: dt.date, settings: Settings, console: Console) -> int:
    from .backfill import backfill

    console.log(
        f"backfill {start}..{end}  venues {','.join(settings.venues)}  coins {','.join(settings.coins)}"
        f"  source {settings.source}  warehouse {settings.warehouse_path}"
    )
    t0 = time.monotonic()
    with _instance() as instance:
        outcomes = backfill(start, end, settings, instance, console.show, console.log)
    failed = [o for o in outcomes if not o.success]
    totals: dict[str, int] = {}
    for o in outcomes:
        for table, n in o.rows.items():
            totals[table] = totals.get(table, 0) + n
    console.log("")
    console.log(f"{'table':<18}{'rows written':>14}")
    for table, n in totals.items():
        console.log(f"{table:<18}{n:>14,}")
    checks = sum(o.checks_passed for o in outcomes)
    failed_checks = sorted({c for o in outcomes for c in o.checks_failed})
    warned = sorted({c for o in outcomes for c in o.checks_warned})
    console.log(
        f"asset checks passed: {checks}"
        + (f"; failed: {', '.join(failed_checks)}" if failed_checks else "")
        + (f"; warnings: {', '.join(warned)}" if warned else "")
    )
    console.log(f"{len(outcomes)} runs in {time.monotonic() - t0:.1f}s")
    if failed:
        console.log(f"error: {failed[0].error}")
        return 1
    return 0


def cmd_backfill(args: argparse.Namespace, console: Console) -> int:
    return _run_backfill(args.start, args.end, _settings(args), console)


def cmd_demo(args: argparse.Namespace, console: Console) -> int:
    from .report import build_report, format_summary, summary

    settings = _settings(args, source="sim", venues=VENUES)
    end = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    start = end - dt.timedelta(days=args.days - 1)
    code = _run_backfill(start, end, settings, console)
    if code:
        return code
    print(format_summary(summary(settings.warehouse_path)))
    out = build_report(settings.warehouse_path, settings.home / "report.html")
    print(f"\nreport: {out.resolve()}")
    return 0


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from .report import build_report, format_summary, summary

    settings = Settings.from_env()
    print(format_summary(summary(settings.warehouse_path)))
    out = build_report(settings.warehouse_path, settings.home / "report.html")
    print(f"\nreport: {out.resolve()}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="funding-assets",
        description="Funding strips, features, PCA factors and spreads as Dagster assets in DuckDB. "
        "Settings: FUNDING_ASSETS_HOME (data dir, default ./data), FUNDING_ASSETS_SOURCE "
        f"(sim | replay:<dir>), {ENV_VENUES}, {ENV_COINS}.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("backfill", help="materialise every asset for a range of UTC days")
    b.add_argument("--start", type=_date, required=True, help="first UTC day, e.g. 2024-01-01")
    b.add_argument("--end", type=_date, required=True, help="last UTC day (inclusive)")
    b.add_argument("--venues", help=f"comma list, default {ENV_VENUES} or all of {','.join(VENUES)}")
    b.add_argument("--coins", help=f"comma list, default {ENV_COINS} or BTC,ETH")
    b.set_defaults(run=cmd_backfill)
    d = sub.add_parser("demo", help=f"simulate the last {DEMO_DAYS} days for all venues, then summarise and report")
    d.add_argument("--days", type=int, default=DEMO_DAYS, help=f"days of history (default {DEMO_DAYS})")
    d.add_argument("--coins", help="comma list, default BTC,ETH")
    d.set_defaults(run=cmd_demo)
    r = sub.add_parser("report", help="rebuild the HTML report from the warehouse")
    r.set_defaults(run=cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console = Console()
    try:
        return args.run(args, console)
    except FundingInputError as exc:
        console.log(f"error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
