"""``funding-assets``: backfill, demo and report from the command line.

Runs go through Dagster (in-process executor, one run per asset group per range). With
``DAGSTER_HOME`` set they are recorded in that instance and show up in ``dagster dev``;
otherwise an ephemeral instance is used, except by ``demo``, which records into the
project's instance (``./.dagster_home``, the one ``funding-assets dev`` serves). Exit
codes: 0 done, 1 a run failed or the environment failed (a host out of reach, a port in use,
a file system error), 2 bad input.

Every failure ends in one ``error: ...`` line on stderr. Dagster's own log of a failed run
and the traceback of an unexpected error are shown with ``FUNDING_ASSETS_DEBUG=1``.
"""

import argparse
import contextlib
import datetime as dt
import math
import os
import sys
import time
from pathlib import Path

from .errors import FundingInputError
from .instruments import parse_coins, parse_contracts
from .settings import (
    ENV_COINS,
    ENV_CONTRACTS,
    ENV_DEBUG,
    ENV_HOME,
    ENV_VENUES,
    debug_enabled,
    ensure_writable_home,
    parse_list,
)
from .venues import VENUES, check_venue

DEMO_DAYS = 90
#: The project's Dagster instance when ``DAGSTER_HOME`` is unset (relative to the working
#: directory): ``funding-assets dev`` serves it and ``funding-assets demo`` records into it.
PROJECT_DAGSTER_HOME = ".dagster_home"
PROJECT_INSTANCE = f"the project's instance ./{PROJECT_DAGSTER_HOME}"
DEBUG_HINT = f"{ENV_DEBUG}=1 shows the traceback"


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2024-01-31, got {text!r}") from None


def _instant(text: str) -> dt.datetime:
    """An ISO date or time; with a UTC offset it is converted, without one it is UTC (naive UTC out)."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO time like 2025-01-01T00:00 (UTC) or 2025-01-01T00:00+02:00, got {text!r}"
        ) from None
    return when.astimezone(dt.UTC).replace(tzinfo=None) if when.tzinfo is not None else when


def _whole(text: str, lo: int, hi: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < lo or (hi is not None and value > hi):
        bounds = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise argparse.ArgumentTypeError(f"expected a whole number {bounds}, got {text!r}")
    return value


def _port(text: str) -> int:
    return _whole(text, 0, 65535)


def _days(text: str) -> int:
    return _whole(text, 1)


def _count(text: str) -> int:
    return _whole(text, 0)


def _number(text: str, ok, expected: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and ok(value)):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def _positive(text: str) -> float:
    return _number(text, lambda v: v > 0, "a positive number")


def _share(text: str) -> float:
    return _number(text, lambda v: 0 <= v <= 1, "a share between 0 and 1")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


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


def _check_dagster_home(unset_gives: str = "a throwaway instance") -> None:
    """Refuse a ``DAGSTER_HOME`` Dagster cannot use, before anything runs or is written.

    ``unset_gives`` names what the command uses without ``DAGSTER_HOME``, for the hint."""
    value = os.environ.get("DAGSTER_HOME")
    if not value:
        return
    home = Path(value)
    if not home.is_absolute():
        raise FundingInputError(
            f"DAGSTER_HOME={value!r}: must be an absolute path to an existing directory, "
            f"e.g. DAGSTER_HOME={Path(value).absolute()} (or unset it for {unset_gives})"
        )
    if not home.is_dir():
        what = "is not a directory" if home.exists() else "does not exist"
        fix = f"create it with `mkdir -p {home}` or " if not home.exists() else ""
        raise FundingInputError(
            f"DAGSTER_HOME={value}: {what}; it must be an absolute path to an existing directory "
            f"({fix}unset DAGSTER_HOME for {unset_gives})"
        )


def _project_dagster_home() -> Path:
    """``DAGSTER_HOME`` when set (checked), else the project's instance directory, created
    with an empty ``dagster.yaml`` (Dagster warns about a home without one)."""
    if os.environ.get("DAGSTER_HOME"):
        _check_dagster_home(PROJECT_INSTANCE)
        return Path(os.environ["DAGSTER_HOME"])
    home = Path(PROJECT_DAGSTER_HOME).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("")
    return home


@contextlib.contextmanager
def _instance(home: Path | None = None):
    """The Dagster instance at ``home``, else the one of ``DAGSTER_HOME``, else an ephemeral one."""
    import dagster as dg

    if home is not None:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield instance
    elif os.environ.get("DAGSTER_HOME"):
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
    # `is not None`: an empty --venues "" is refused, not silently the default
    if getattr(args, "venues", None) is not None:
        overrides["venues"] = parse_list(args.venues, check_venue, "--venues")
    if getattr(args, "coins", None) is not None:
        overrides["coins"] = parse_coins(_words(args.coins, "--coins"), "--coins")
    if getattr(args, "contracts", None) is not None:
        overrides["contracts"] = parse_contracts(_words(args.contracts, "--contracts"), "--contracts")
    return s.with_(**overrides)


def _coins_setting(args: argparse.Namespace) -> str:
    """Where a run's coins came from, for an error naming it."""
    return "--coins" if getattr(args, "coins", None) is not None else ENV_COINS


def _words(value: str, option: str) -> list[str]:
    words = [w for w in value.split(",") if w.strip()]
    if not words:
        raise FundingInputError(
            f"{option}={value!r}: empty list; give at least one name, or leave it out for the default"
        )
    return words


def _run_backfill(
    start: dt.date,
    end: dt.date,
    settings,
    console: Console,
    dagster_home: Path | None = None,
    coins_setting: str = ENV_COINS,
) -> int:
    from .backfill import backfill

    console.log(
        f"backfill {start}..{end}  venues {','.join(settings.venues)}  coins {','.join(settings.coins)}"
        f"  contracts {','.join(settings.contracts)}"
        f"  source {settings.source}  warehouse {settings.warehouse_path}"
    )
    t0 = time.monotonic()
    with _instance(dagster_home) as instance:
        outcomes = backfill(start, end, settings, instance, console.show, console.log, coins_setting=coins_setting)
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
        error = failed[0].error or "run failed"
        console.log(f"error: {_one_line(error)}")
        # a user error comes bare; anything else as "<asset>: <class>: ..." (backfill._failure)
        if not debug_enabled() and any(error.startswith(f"{asset}: ") for asset in failed[0].step.assets):
            console.log(f"({DEBUG_HINT} and Dagster's log of the failed run)")
        return 1
    return 0


def cmd_backfill(args: argparse.Namespace, console: Console) -> int:
    settings = _settings(args)
    _check_dagster_home()
    return _run_backfill(args.start, args.end, settings, console, coins_setting=_coins_setting(args))


def cmd_demo(args: argparse.Namespace, console: Console) -> int:
    from .partitions import START_DATE
    from .report import build_report, fixed_summary, format_summary, summary

    settings = _settings(args, source="sim", venues=VENUES)
    _check_dagster_home(PROJECT_INSTANCE)
    end = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    first = dt.date.fromisoformat(START_DATE)
    if args.days > (end - first).days + 1:
        raise FundingInputError(
            f"--days {args.days}: reaches back before the first partition {first}; "
            f"at most {(end - first).days + 1} days"
        )
    start = end - dt.timedelta(days=args.days - 1)
    dagster_home = _project_dagster_home()
    console.log(f"recording runs in the Dagster instance at {dagster_home}")
    code = _run_backfill(start, end, settings, console, dagster_home, coins_setting=_coins_setting(args))
    if code:
        return code
    print(format_summary(summary(settings.warehouse_path)))
    fixed = fixed_summary(settings.warehouse_path)
    if fixed:
        print(f"\nfixed-rate futures (latest candle; annualised %, UTC):\n{fixed}")
    out = build_report(settings.warehouse_path, settings.home / "report.html")
    print(f"\nreport: {out.resolve()}")
    print(f"dagster runs: recorded in {dagster_home}; {_ui_hint(dagster_home)} shows the partitions materialised")
    return 0


def _ui_hint(dagster_home: Path) -> str:
    """The command that opens the Dagster UI on ``dagster_home``."""
    if os.environ.get("DAGSTER_HOME"):
        return f"`DAGSTER_HOME={dagster_home} funding-assets dev`"
    return "`funding-assets dev` from this directory"


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from .report import build_report, format_summary, summary

    settings = _config()
    table = format_summary(summary(settings.warehouse_path))  # refuses a missing warehouse first
    ensure_writable_home(settings.home, ENV_HOME)
    print(table)
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
    except FundingInputError:
        raise
    except (FileNotFoundError, ValueError) as exc:  # no status yet, or an unreadable one
        console.log(f"error: {_one_line(exc)}")
        return 1
    return 0


def cmd_sim(args: argparse.Namespace, console: Console) -> int:
    import signal
    import threading

    from .sim.server import Faults, PortInUseError, SimClock, SimServer

    if args.port and args.port == args.ws_port:
        raise FundingInputError(f"--port and --ws-port are both {args.port}; REST and WebSocket need a port each")
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
    start = args.start
    try:
        server = SimServer(
            clock=SimClock(start, args.speed),
            faults=faults,
            limits=args.limits,
            push_interval_s=args.push_interval,
            port=args.port,
            ws_port=args.ws_port,
        ).start()
    except PortInUseError as exc:
        flag = "--port" if exc.kind == "REST" else "--ws-port"
        console.log(f"error: {exc}; stop what holds it or choose another with {flag}")
        return 1
    console.log(
        f"venue simulator on loopback (time {'now' if start is None else start} x{args.speed:g}, "
        f"real budgets {'on' if args.limits else 'off'}); Ctrl-C stops it"
    )
    for venue in server.sims:
        console.log(f"  {venue:<12} REST {server.rest_url(venue):<34} WS {server.ws_url(venue)}")
    for provider in server.rate_sims:
        console.log(f"  {provider:<12} REST {server.rest_url(provider)}  (fixed-rate futures)")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
    console.log("simulator stopped")
    return 0


def cmd_dev(args: argparse.Namespace, console: Console) -> int:
    """``dagster dev`` on this project, stoppable by SIGTERM and Ctrl-C however it was started."""
    import signal

    from dagster._cli.dev import dev_command

    os.environ["DAGSTER_HOME"] = str(_project_dagster_home())
    # Started in the background (`nohup ... &`), a process inherits SIGINT ignored, and dagster
    # dev maps SIGTERM to SIGINT's handler: both would be ignored. Restore Ctrl-C first.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    console.log(f"dagster dev on http://{args.host}:{args.port}  (DAGSTER_HOME {os.environ['DAGSTER_HOME']})")
    argv = ["-m", "funding_assets.definitions", "--host", args.host, "--port", str(args.port)]
    try:
        dev_command.main(args=argv, standalone_mode=False)
    except KeyboardInterrupt:
        pass
    return 0


def cmd_snapshot(args: argparse.Namespace, console: Console) -> int:
    from .warehouse import snapshot

    config = _config()
    out = snapshot(config.warehouse_path, args.out, timeout_s=config.lock_timeout_s)
    print(out.resolve())
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
    b.add_argument("--coins", help=f"comma list, 'all' or 'top:N'; default {ENV_COINS} or BTC,ETH")
    b.add_argument(
        "--contracts",
        help=f"usdt,usdc,inverse, 'all' or 'main'; default {ENV_CONTRACTS} or main (each venue's main perpetual)",
    )
    b.set_defaults(run=cmd_backfill)
    d = sub.add_parser("demo", help=f"simulate the last {DEMO_DAYS} days for all venues, then summarise and report")
    d.add_argument("--days", type=_days, default=DEMO_DAYS, help=f"days of history (default {DEMO_DAYS})")
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
    dv = sub.add_parser("dev", help="the Dagster UI and daemon for this project (stops on Ctrl-C or SIGTERM)")
    dv.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    dv.add_argument("--port", type=_port, default=3000, help="UI port (default 3000)")
    dv.set_defaults(run=cmd_dev)
    sn = sub.add_parser("snapshot", help="a consistent copy of the warehouse for notebooks; prints its path")
    sn.add_argument("--out", help="where to write it (default: warehouse_snapshot.duckdb next to the warehouse)")
    sn.set_defaults(run=cmd_snapshot)
    s = sub.add_parser("sim", help="serve the five venues' APIs on loopback from the funding model")
    s.add_argument("--port", type=_port, default=8400, help="REST port (default 8400; 0: any free port)")
    s.add_argument("--ws-port", type=_port, default=8401, help="WebSocket port (default 8401; 0: any free port)")
    s.add_argument(
        "--start", type=_instant, help="simulated start instant, ISO; UTC unless it has an offset (default: now)"
    )
    s.add_argument("--speed", type=_positive, default=1.0, help="simulated seconds per real second")
    s.add_argument("--push-interval", type=_positive, default=1.0, help="seconds between stream pushes")
    s.add_argument("--limits", action="store_true", help="enforce the venues' real request budgets")
    s.add_argument("--seed", type=int, default=0, help="seed of the fault injection")
    for name in ("error-rate", "drop-rate", "stall-rate", "malformed-rate", "ws-garbage-rate"):
        s.add_argument(
            f"--{name}", type=_share, default=0.0, help=f"share of requests/frames ({name.replace('-', ' ')})"
        )
    s.add_argument("--ws-drop-after", type=_count, help="drop each stream after this many frames")
    s.add_argument("--ws-stall-after", type=_count, help="silence each stream after this many frames")
    s.set_defaults(run=cmd_sim)
    return p


def main(argv: list[str] | None = None) -> int:
    """The command line; ``argv`` None: this process's arguments, and the process ends here."""
    code = run(argv)
    if argv is None:
        _end_process(code)
    return code


def _end_process(code: int) -> None:
    """Exit with ``code`` once the exit handlers have run (temporary files removed, logs
    flushed), skipping the interpreter's teardown: its garbage collection passes over every
    object Dagster and the libraries made take 1-2 s and change nothing on disk (each
    warehouse connection is closed, each write committed, when its command returns)."""
    import atexit

    atexit._run_exitfuncs()  # logging's flush, the replay source's spill folder, ...
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run(argv: list[str] | None = None) -> int:
    """Run one command; its exit code."""
    from .clients.http import VenueError
    from .warehouse import WarehouseError

    args = parser().parse_args(argv)
    console = Console()
    try:
        return args.run(args, console)
    except FundingInputError as exc:
        console.log(f"error: {_one_line(exc)}")
        return 2
    except (VenueError, WarehouseError) as exc:  # a venue refusing or unreachable, a locked file
        console.log(f"error: {_one_line(exc)}")
        return 1
    except KeyboardInterrupt:
        console.log("interrupted: a partition being written keeps its previous rows; run the command again")
        return 130
    except Exception as exc:
        if debug_enabled():
            raise
        if isinstance(exc, OSError):  # the environment: a file system, a socket
            where = f"{exc.filename}: " if exc.filename else ""
            console.log(f"error: {where}{_one_line(exc.strerror or exc)} ({DEBUG_HINT})")
        else:
            console.log(f"error: unexpected {type(exc).__name__}: {_one_line(exc)} ({DEBUG_HINT})")
        return 1


if __name__ == "__main__":
    sys.exit(main())
