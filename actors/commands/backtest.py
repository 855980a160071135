"""``lts backtest``: many backtests in parallel on Ray, with progress and a report.

    lts backtest PATH_OR_GLOB... --strategy NAME [--set key=value ...]
                 [--grid key=v1,v2,... ...] [--address auto|HOST:PORT] [--out DIR]

One Ray task per (CSV, parameter combination); each CSV is parsed once and shared
through the object store. Exit codes: 0 every run succeeded, 1 some runs failed (the
table says why), 2 a bad option (nothing ran), 130 interrupted with Ctrl-C (what had
finished is still written).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.config.lts_config import LTSConfig

logger = logging.getLogger(__name__)

# A backtest uses only the chosen strategy (loaded and checked by the plan) and the
# simulation cost model: a configured API or live-broker plugin that cannot import (a
# missing optional dependency) must not stop it. Unknown names are still refused.
REQUIRE_LOADABLE_PLUGINS = False

RANK_CHOICES = (
    "total_return", "annualized_return", "sharpe", "sortino", "max_drawdown", "win_rate",
    "profit_factor",
)


def configure(parser: argparse.ArgumentParser) -> None:
    """The command's own options (global config options are added by the dispatcher)."""
    parser.add_argument("paths", nargs="+", metavar="PATH_OR_GLOB",
                        help="CSV files or glob patterns (quote globs to use ** recursion)")
    parser.add_argument("--strategy", metavar="NAME",
                        help="strategy plugin (default: the config's strategy_plugin)")
    parser.add_argument("--set", dest="set_params", action="append", default=[],
                        metavar="KEY=VALUE", help="a strategy or broker parameter for every run")
    parser.add_argument("--grid", dest="grid", action="append", default=[],
                        metavar="KEY=V1,V2,...",
                        help="one run per value; several --grid options multiply")
    parser.add_argument("--address", metavar="auto|HOST:PORT",
                        help="join a running Ray cluster (default: the config's ray_address, "
                             "else start a local one)")
    parser.add_argument("--out", metavar="DIR",
                        help="output folder (default: <backtest_dir>/<UTC time>)")
    parser.add_argument("--rank_by", "--rank-by", dest="rank_by", default="total_return",
                        choices=RANK_CHOICES, help="metric the table is sorted by")
    parser.add_argument("--datetime_column", "--datetime-column", dest="datetime_column",
                        default="DATE_TIME",
                        help="name of the CSV's time column (an unnamed first column is "
                             "found automatically)")
    parser.add_argument("--symbol", help="symbol for every file (default: each file's name)")
    parser.add_argument("--num_cpus", "--num-cpus", dest="num_cpus", type=int,
                        help="CPUs of the local cluster (default: all cores)")
    parser.add_argument("--ship_code", "--ship-code", dest="ship_code", action="store_true",
                        help="upload LTS's code to the cluster (nodes without LTS installed)")
    parser.add_argument("--no_plots", "--no-plots", dest="no_plots", action="store_true",
                        help="skip the equity PNGs (faster on huge batches)")
    parser.add_argument("--no_db", "--no-db", dest="no_db", action="store_true",
                        help="do not record the batch in the database")


def extra_plugins(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The chosen strategy's parameters become config keys (``--fast 10`` works too)."""
    return [("strategy", args.strategy)] if args.strategy else []


def default_out_dir(base: str | Path = "backtest_results", now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S")
    return Path(base) / stamp


@contextmanager
def sigint_cancels(event: threading.Event) -> Iterator[None]:
    """While inside, the first Ctrl-C sets ``event`` (the batch cancels its tasks and
    writes what finished); a second one aborts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def handler(signum: int, frame: Any) -> None:
        if event.is_set():
            raise KeyboardInterrupt
        event.set()
        sys.stderr.write("\ncancelling the remaining backtests (Ctrl-C again to abort)...\n")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run(config: LTSConfig, args: argparse.Namespace) -> int:
    """Plan, check, run on Ray, report. Bad options raise ``ConfigError`` (exit 2)."""
    from actors.backtests.batch import connect_ray, run_batch
    from engine.backtest.planning import build_plan
    from actors.backtests.report import format_table
    from engine.backtest.plan import expand_paths

    strategy = args.strategy or config["strategy_plugin"]
    plan = build_plan(
        strategy=strategy,
        files=expand_paths(args.paths),
        set_items=args.set_params,
        grid_items=args.grid,
        config=config,
        datetime_column=args.datetime_column,
        symbol=args.symbol,
    )
    total = len(plan.runs())
    out_dir = Path(args.out) if args.out else default_out_dir(config["backtest_dir"])
    recorder = None if args.no_db else _recorder(config)

    address = args.address if args.address is not None else config["ray_address"]
    try:
        started_ray = connect_ray(address, namespace=config["ray_namespace"],
                                  num_cpus=args.num_cpus, ship_code=args.ship_code)
    except BaseException:
        if recorder is not None:
            recorder.close()
        raise
    print(f"running {total} backtests ({len(plan.files)} files x "
          f"{total // max(1, len(plan.files))} parameter sets) of {strategy}", file=sys.stderr)
    cancel = threading.Event()
    try:
        with sigint_cancels(cancel):
            result = run_batch(
                plan,
                out_dir,
                rank_by=args.rank_by,
                progress_stream=sys.stderr,
                cancel_event=cancel,
                recorder=recorder,
                render_png=not args.no_plots,
            )
    finally:
        if started_ray:
            import ray

            ray.shutdown()

    print(format_table(result.ranked))
    counts = result.counts
    print(f"\n{counts['ok']} ok, {counts['failed']} failed, {counts['cancelled']} cancelled "
          f"of {counts['total']}")
    print(f"report: {result.paths['report_html']}")
    print(f"summary: {result.paths['summary_csv']}, {result.paths['summary_json']}")
    return result.exit_code


def _recorder(config: LTSConfig) -> Any:
    """The database recorder for this batch (see ``actors.backtests.recording``)."""
    from actors.backtests.recording import StoreRecorder

    return StoreRecorder.from_config(config)
