"""``lts run``: start (or join) Ray, the engine's actors and the API gateway.

On a fresh machine with no arguments it starts a local Ray cluster, creates the SQLite
database if missing, seeds a demo portfolio in simulation mode over generated data when
the database is empty, starts everything and prints where to look. Ctrl-C / SIGTERM stop
it cleanly: the gateway stops taking requests, heartbeats stop, in-flight steps finish,
acknowledged writes are already committed, then Ray is shut down (when we started it).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
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
    from persistence.schema import create_schema, missing_tables
    from persistence.store import Store

    url = str(config["database_url"])
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
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
    """Run the engine until Ctrl-C / SIGTERM."""
    import ray

    from actors.engine_client import EngineClient
    from actors.runtime import EngineRuntime, init_ray

    settings = dict(config)
    if args.address:
        settings["ray_address"] = args.address
    prepare_database(settings, seed_demo=args.demo)
    info = init_ray(settings)
    started_ray = not info.get("joined")
    runtime = EngineRuntime(settings)
    server = None
    engine = None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        runtime.start()
        if args.api:
            from api.server import start_in_thread

            engine = EngineClient(runtime)
            server = start_in_thread(settings, store=runtime.store, engine=engine)
        where = settings.get("ray_address") or "a local cluster"
        print(f"LTS engine running on Ray ({where}), namespace {runtime.namespace!r}, "
              f"{len(runtime.supervisors)} active portfolio(s)")
        if server is not None:
            print(f"  API:            {server.url}   (health: {server.url}/health, docs: {server.url}/docs)")
        if info.get("dashboard_url"):
            print(f"  Ray dashboard:  {info['dashboard_url']}   (actors and lts_* metrics)")
        print("Press Ctrl-C to stop.", flush=True)
        while not stop.wait(1.0):
            pass
        print("Stopping: finishing in-flight steps...", flush=True)
    finally:
        if server is not None:
            server.stop()
        if engine is not None:
            engine.shutdown()
        runtime.stop()
        if started_ray:
            ray.shutdown()
    print("Stopped cleanly.")
    return 0
