"""``lts run``: start (or join) Ray, the engine's actors and the API gateway.

On a fresh machine with no arguments it starts a local Ray cluster, creates the SQLite
database if missing, seeds a demo portfolio in simulation mode over generated data when
the database is empty, starts everything and prints where to look. Ctrl-C / SIGTERM stop
it cleanly: the gateway stops taking requests, heartbeats stop, in-flight steps finish,
acknowledged writes are already committed, then Ray is shut down (when we started it).

A signal to the whole process group (what a terminal, systemd or ``docker stop`` sends)
does not reach the local cluster's processes: they run in sessions of their own
(``init_ray(own_session=True)``), so the clean stop runs on a live cluster. If the cluster
is gone anyway (a joined cluster stopped at the same time), ``lts run`` says so and exits
at once instead of waiting a minute on Ray calls; see ``shutdown`` for the exit codes.
A second Ctrl-C / SIGTERM exits at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

from engine.config import LTSConfig

logger = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``lts run``."""
    parser.add_argument("--address", default=None, metavar="auto|HOST:PORT",
                        help="join an existing Ray cluster (config key ray_address); default: start a local one")
    parser.add_argument("--no-demo", dest="demo", action="store_false",
                        help="do not seed the demo portfolio into an empty database")
    parser.add_argument("--no-api", dest="api", action="store_false", help="run the engine without the API gateway")


def prepare_database(config: LTSConfig | dict[str, Any], seed_demo: bool) -> int | None:
    """Create the schema if tables are missing; seed the demo portfolio on an empty DB."""
    from persistence.schema import create_schema, make_sqlite_folder, missing_tables
    from persistence.store import Store

    url = str(config["database_url"])
    make_sqlite_folder(url)
    store = Store.from_url(url)
    try:
        if missing_tables(store.engine):
            create_schema(store.engine)
            print(f"Created the database schema at {url}")
        if store.count_admins() == 0:
            from actors.commands.db import ensure_first_admin

            ensure_first_admin(store, config)
        if seed_demo:
            from actors.demo_data import seed_demo_portfolio

            portfolio_id = seed_demo_portfolio(store, str(config["data_dir"]))
            if portfolio_id is not None:
                print(f"Seeded demo portfolio {portfolio_id} (simulation over generated data in {config['data_dir']}/demo)")
            return portfolio_id
        return None
    finally:
        store.close()


def run(config: LTSConfig, args: argparse.Namespace) -> int:
    """Run the engine until Ctrl-C / SIGTERM; 0 once it stopped (see ``shutdown``)."""
    from actors.engine_client import EngineClient
    from actors.engine_record import new_record, remove_record, write_record
    from actors.preflight import check_api_port, resolve_driver_paths
    from actors.runtime import EngineRuntime, init_ray
    from engine.user_paths import check_server_layout

    if args.api:
        check_api_port(config)  # a busy port is one line now, not an error after the setup
    # Absolute before any actor sees them: actors run in the directory of `ray start`.
    settings = resolve_driver_paths(config)
    if args.address:
        settings["ray_address"] = args.address
    check_server_layout(settings)  # the database and state_dir never where users name files
    prepare_database(settings, seed_demo=args.demo)
    # A local cluster's processes get sessions of their own: a signal to our process group
    # (terminal, systemd, docker stop, kill -TERM -PGID) reaches only us, and we stop the
    # engine on a cluster that is still there, then shut the cluster down ourselves.
    info = init_ray(settings, own_session=True)
    started_ray = not info.get("joined")
    runtime = EngineRuntime(settings)
    server = None
    engine = None
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():
            # Asked twice: whoever sent it does not want to wait for the clean stop.
            os.write(2, f"{signal.Signals(signum).name} again: exiting without waiting for the clean stop\n".encode())
            os._exit(128 + signum)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        runtime.start()
        if args.api:
            from api.server import start_in_thread

            engine = EngineClient(runtime)
            server = start_in_thread(settings, store=runtime.store, engine=engine)
        kind = "joined" if info.get("joined") else "started here"
        print(f"LTS engine running on the Ray cluster at {info.get('address') or settings.get('ray_address')} "
              f"({kind}), namespace {runtime.namespace!r}, {len(runtime.supervisors)} active portfolio(s)")
        if server is not None:
            print(f"  API:            {server.url}   (health: {server.url}/health, docs: {server.url}/docs)")
        if info.get("dashboard_url"):
            print(f"  Ray dashboard:  {info['dashboard_url']}   (actors and ray_lts_* metrics)")
        record = write_record(settings["state_dir"], new_record(
            address=info.get("address"), dashboard_url=info.get("dashboard_url"),
            api_url=server.url if server is not None else None, namespace=runtime.namespace))
        print(f"  Recorded in:    {record}   (lts status asks this cluster)")
        print("Press Ctrl-C to stop.", flush=True)
        while not stop.wait(1.0):
            pass
        print("Stopping: finishing in-flight steps...", flush=True)
    finally:
        remove_record(settings["state_dir"], pid=os.getpid())
        outcome = shutdown(runtime, server=server, engine=engine, address=info.get("address"),
                           started_ray=started_ray, deadline_s=stop_deadline_s(settings))
    print(outcome.message, flush=True)
    if not outcome.exit_normally:
        # Ray's atexit hook would call into the gone (or wedged) cluster and hang the exit
        # for up to a minute; the processes Ray started for us die with this process anyway
        # (Ray's kernel fate sharing), so leave without running it.
        sys.stderr.flush()
        os._exit(outcome.exit_code)
    return outcome.exit_code


def stop_deadline_s(settings: dict[str, Any]) -> float:
    """How long a stop may take before ``lts run`` exits anyway: the supervisors' own
    deadline (``step_timeout_s`` + 15 s, all portfolios together) plus the singletons and
    Ray's shutdown. Only a wedged actor gets near it; a healthy stop takes seconds."""
    from actors.runtime_settings import RuntimeSettings

    return RuntimeSettings.from_config(settings).step_timeout_s + 30.0


@dataclass(frozen=True, slots=True)
class StopOutcome:
    """How a stop went: the line to print, the exit code, and whether the process may
    exit normally (Ray's exit hooks would otherwise call into a gone or wedged cluster)."""

    message: str
    exit_code: int
    exit_normally: bool


STOPPED_CLEANLY = "Stopped cleanly."


def shutdown(runtime: Any, *, server: Any = None, engine: Any = None, address: str | None = None,
             started_ray: bool = True, deadline_s: float = 40.0) -> StopOutcome:
    """Stop the gateway, then the engine, then (when we started it) Ray, in bounded time.

    * Cluster alive (the usual case, also after a signal to our whole process group, since
      a local cluster's processes are in sessions of their own): the clean stop. The
      gateway stops taking requests, heartbeats stop, in-flight steps finish, every
      acknowledged write is committed, the actors and Ray go. Exit code 0.
    * Cluster gone (its GCS does not answer: e.g. a joined cluster that was stopped with
      us): the actors went with it, and every Ray call would block until Ray gives up (a
      minute). Nothing is called; what the database acknowledged is committed, and intents
      left pending are reconciled with the broker on the next start. Exit code 0: the stop
      that was asked for happened, and the message says what could not be done.
    * A stop past ``deadline_s`` (a wedged actor): exit code 1 with the message.
    """
    from actors.runtime import cluster_reachable

    if server is not None:
        server.stop()
    if not cluster_reachable(address):
        runtime.close_local()
        return StopOutcome(
            "Stopped. The Ray cluster was already gone (its processes were stopped before lts run), "
            "and the engine's actors with it: no clean stop of in-flight steps was possible. "
            "Acknowledged writes are committed; pending orders are reconciled with the broker on the next start.",
            0, exit_normally=False)
    errors: list[BaseException] = []

    def stop_all() -> None:
        import ray

        try:
            if engine is not None:
                engine.shutdown()
            runtime.stop()
            if started_ray:
                ray.shutdown()
        except BaseException as exc:  # reported below; the process is leaving anyway
            errors.append(exc)

    # In a thread, so a wedged call cannot hold the process past the deadline.
    worker = threading.Thread(target=stop_all, name="lts-stop", daemon=True)
    worker.start()
    worker.join(deadline_s)
    if worker.is_alive():
        return StopOutcome(f"Stop did not finish within {deadline_s:.0f} s: exiting anyway "
                           "(acknowledged writes are committed; pending orders are reconciled on the next start).",
                           1, exit_normally=False)
    if errors:
        logger.error("stopping the engine failed: %s: %s", type(errors[0]).__name__, errors[0])
        return StopOutcome(f"Stopped, with an error during the stop: {type(errors[0]).__name__}: {errors[0]}",
                           1, exit_normally=False)
    return StopOutcome(STOPPED_CLEANLY, 0, exit_normally=True)
