"""``funding-assets``: backfill, demo and report from the command line.

Runs go through Dagster (in-process executor, one run per asset group per range). With
``DAGSTER_HOME`` set they are recorded in that instance and show up in ``dagster dev``;
otherwise an ephemeral instance is used. Exit codes: 0 done, 1 a run failed, 2 bad input.
"""

import argparse
import contextlib
import datetime as dt
import os
import sys
import time

from .errors import FundingInputError
from .settings import ENV_COINS, ENV_VENUES, ensure_writable_home, parse_list
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


def _config():
    from .resources import FundingConfig

    return FundingConfig.from_env()


def _settings(args: argparse.Namespace, **overrides):
    s = _config()
    if getattr(args, "venues", None):
        overrides["venues"] = parse_list(args.venues, check_venue, "--venues")
    if getattr(args, "coins", None):
        overrides["coins"] = parse_list(args.coins, check_coin, "--coins")
    return s.with_(**overrides)


def _run_backfill(start: dt.date, end: dt.date, settings, console: Console) -> int:
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

    settings = _config()
    print(format_summary(summary(settings.warehouse_path)))
    out = build_report(settings.warehouse_path, settings.home / "report.html")
    print(f"\nreport: {out.resolve()}")
    return 0


def cmd_collect(args: argparse.Namespace, console: Console) -> int:
    from .live.collector import main_collect

    settings = _settings(args)
    ensure_writable_home(settings.home)
    return main_collect(settings)


def cmd_status(args: argparse.Namespace, console: Console) -> int:
    from .live.status import status_table

    try:
        print(status_table(_config().home))
    except FileNotFoundError as exc:
        console.log(f"error: {exc}")
        return 1
    return 0


def cmd_sim(args: argparse.Namespace, console: Console) -> int:
    import signal
    import threading

    from .sim.server import Faults, SimClock, SimServer

    faults = Faults(
        seed=args.seed,
        error_rate=args.error_rate,
        drop_rate=args.drop_rate,
        stall_rate=args.stall_rate,
        malformed_rate=args.malformed_rate,
        ws_garbage_rate=args.ws_garbage_rate,
        ws_drop_after=args.ws_drop_after,
        ws_stall_after=args.ws_stall_after,
    )
    start = dt.datetime.fromisoformat(args.start) if args.start else None
    server = SimServer(
        clock=SimClock(start, args.speed),
        faults=faults,
        limits=args.limits,
        push_interval_s=args.push_interval,
        port=args.port,
        ws_port=args.ws_port,
    ).start()
    console.log(
        f"venue simulator on loopback (time {'now' if start is None else start} x{args.speed:g}, "
        f"real budgets {'on' if args.limits else 'off'}); Ctrl-C stops it"
    )
    for venue in server.sims:
        console.log(f"  {venue:<12} REST {server.rest_url(venue):<34} WS {server.ws_url(venue)}")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
    console.log("simulator stopped")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="funding-assets",
        description="Funding strips, features, PCA factors and spreads as Dagster assets in DuckDB. "
        "Settings: FUNDING_ASSETS_HOME (data dir, default ./data), FUNDING_ASSETS_SOURCE "
        f"(sim | exchanges | replay:<dir>), {ENV_VENUES}, {ENV_COINS}.",
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
    c = sub.add_parser("collect", help="hold the venue streams and land live prints (runs until Ctrl-C)")
    c.add_argument("--venues", help=f"comma list, default {ENV_VENUES} or all")
    c.add_argument("--coins", help=f"comma list, default {ENV_COINS} or BTC,ETH")
    c.set_defaults(run=cmd_collect)
    st = sub.add_parser("status", help="the live collector's state per venue")
    st.set_defaults(run=cmd_status)
    s = sub.add_parser("sim", help="serve the five venues' APIs on loopback from the funding model")
    s.add_argument("--port", type=int, default=8400, help="REST port (default 8400)")
    s.add_argument("--ws-port", type=int, default=8401, help="WebSocket port (default 8401)")
    s.add_argument("--start", help="simulated start instant, ISO UTC (default: now)")
    s.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    s.add_argument("--push-interval", type=float, default=1.0, help="seconds between stream pushes")
    s.add_argument("--limits", action="store_true", help="enforce the venues' real request budgets")
    s.add_argument("--seed", type=int, default=0, help="seed of the fault injection")
    for name in ("error-rate", "drop-rate", "stall-rate", "malformed-rate", "ws-garbage-rate"):
        s.add_argument(
            f"--{name}", type=float, default=0.0, help=f"share of requests/frames ({name.replace('-', ' ')})"
        )
    s.add_argument("--ws-drop-after", type=int, help="drop each stream after this many frames")
    s.add_argument("--ws-stall-after", type=int, help="silence each stream after this many frames")
    s.set_defaults(run=cmd_sim)
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
