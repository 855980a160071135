"""``lts status``: portfolios, assets, actor states, restarts and the last step of each
asset — from the database, plus the live supervisors of the engine's Ray cluster.

The cluster asked is the one ``lts run`` recorded in ``<state_dir>/engine.json``
(``actors.engine_record``), or ``--address``; the output names it. When there is no
engine to ask, or its cluster cannot be reached (nothing listening, a wrong address, a
refused authentication token), it says so in one line on stderr and exits 1, within the
connect timeout and without Ray's own warnings.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import LTSConfig

EXIT_UNREACHABLE = 1
DEFAULT_CONNECT_TIMEOUT_S = 30.0
_AUTH_MARKERS = ("Unauthenticated", "InvalidAuthToken", "authentication token")


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``lts status``."""
    parser.add_argument("--address", default=None, metavar="auto|HOST:PORT",
                        help="Ray cluster to ask (default: the one lts run recorded in <state_dir>/engine.json)")
    parser.add_argument("--connect-timeout", dest="connect_timeout", type=float, default=DEFAULT_CONNECT_TIMEOUT_S,
                        metavar="SECONDS", help=f"give up on the cluster after this long (default {DEFAULT_CONNECT_TIMEOUT_S:g})")
    parser.add_argument("--json", action="store_true", help="print JSON")


class Unreachable(Exception):
    """The cluster to ask could not be asked; the message is the one line to print."""


@dataclass(frozen=True, slots=True)
class Target:
    """The cluster ``lts status`` asks, and why that one."""

    address: str
    source: str  # "--address" or the record's path
    namespace: str


def choose_target(config: LTSConfig | dict[str, Any], address: str | None) -> Target:
    """``--address`` if given, else the engine record; ``Unreachable`` when neither names a
    running engine."""
    from actors.engine_record import read_record, record_path

    namespace = str(config.get("ray_namespace", "lts"))
    if address:
        return Target(address, "--address", namespace)
    path = record_path(config["state_dir"])
    record = read_record(config["state_dir"])
    if record is None:
        raise Unreachable(f"no engine is recorded in {path}: start one with `lts run` in this folder, "
                          "or name its Ray cluster with --address HOST:PORT")
    if not record.pid_alive():
        raise Unreachable(f"the engine recorded in {path} (pid {record.pid}, Ray at {record.address}) "
                          "is not running any more: start it with `lts run`")
    if not record.address:
        raise Unreachable(f"{path} names no Ray address: pass --address HOST:PORT")
    return Target(record.address, str(path), record.namespace)


def _tcp_reachable(address: str, timeout_s: float) -> bool:
    from actors.runtime import cluster_reachable

    return cluster_reachable(address, timeout_s=timeout_s)


def _token_available() -> bool:
    """Whether this user has a Ray token to send (Ray's own places for one)."""
    return bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
                or (Path.home() / ".ray" / "auth_token").is_file())


def _probe(cmd: list[str], env: dict[str, str], timeout_s: float) -> tuple[dict[str, Any] | None, bool, int]:
    """Run the probe child: (its JSON answer or None on timeout, whether the cluster
    refused its token, its exit code). Its stderr (Ray's warnings) is read here, never
    shown; a token refusal ends it at once."""
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                             text=True, cwd=os.getcwd(), env=env)
    refused = threading.Event()

    def watch_stderr() -> None:
        assert child.stderr is not None
        for line in child.stderr:
            if any(marker in line for marker in _AUTH_MARKERS):
                refused.set()

    watcher = threading.Thread(target=watch_stderr, name="lts-status-stderr", daemon=True)
    watcher.start()
    deadline = time.monotonic() + timeout_s
    while child.poll() is None and not refused.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    if child.poll() is None:
        child.kill()
        child.wait()
        return None, refused.is_set(), -9
    watcher.join(2.0)
    out = (child.stdout.read() if child.stdout else "").strip().splitlines()
    try:
        answer = json.loads(out[-1]) if out else {}
    except ValueError:
        answer = {}
    return answer, refused.is_set(), child.returncode


def ask_cluster(target: Target, portfolio_ids: list[int], timeout_s: float) -> dict[str, Any]:
    """The live supervisors' status (``actors.status_probe`` in a child process), or
    ``Unreachable`` with one line: nothing listens, the token is refused, no answer."""
    where = f"the Ray cluster at {target.address} (from {target.source})"
    if not _tcp_reachable(target.address, min(timeout_s, 3.0)):
        raise Unreachable(f"cannot reach {where}: nothing listens there (is lts run running?)")
    cmd = [sys.executable, "-m", "actors.status_probe", target.address, target.namespace,
           *(str(p) for p in portfolio_ids)]
    answer, refused, code = _probe(cmd, dict(os.environ), timeout_s)
    if refused and "RAY_AUTH_MODE" not in os.environ and _token_available():
        # A local `lts run` cluster (and `ray start`) use token authentication by default,
        # and a joining driver sends its token only in token mode: ask again in that mode.
        answer, refused, code = _probe(cmd, dict(os.environ, RAY_AUTH_MODE="token"), timeout_s)
    if refused:
        raise Unreachable(f"{where} refused our authentication token "
                          "(set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH to the cluster's token)")
    if answer is None:
        raise Unreachable(f"no answer from {where} within {timeout_s:g} s")
    if "error" in answer or code != 0:
        raise Unreachable(f"cannot connect to {where}: {answer.get('error') or f'exit code {code}'}")
    return answer


def collect(config: LTSConfig | dict[str, Any], address: str | None,
            timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S) -> dict[str, Any]:
    """Database view merged with the live supervisors of the chosen cluster."""
    from persistence.records import PageRequest
    from persistence.store import Store

    from persistence.schema import missing_tables

    target = choose_target(config, address)
    store = Store.from_url(str(config["database_url"]))
    try:
        if missing_tables(store.engine):
            raise Unreachable(f"config key 'database_url' names no LTS database (its tables are missing): "
                              "run `lts run` (or `lts db`) with this config first")
        portfolios = store.list_portfolios(page=PageRequest(limit=500)).items
        assets = store.list_assets(page=PageRequest(limit=500)).items
    finally:
        store.close()
    answer = ask_cluster(target, [p.id for p in portfolios], timeout_s)
    live = {int(k): v for k, v in answer.get("supervisors", {}).items()}
    rows = []
    for p in portfolios:
        sup = live.get(p.id)
        states = {a["asset_id"]: a for a in (sup or {}).get("assets", [])}
        rows.append({
            "portfolio_id": p.id, "name": p.name, "active": p.is_active, "status": str(p.status.value),
            "supervisor": "running" if sup else "not running", "cycles": (sup or {}).get("cycles"),
            "assets": [{
                "asset_id": a.id, "symbol": a.symbol, "active": a.is_active, "status": str(a.status.value),
                "actor": states.get(a.id, {}).get("state", "-"),
                "restarts": states.get(a.id, {}).get("restarts", 0),
                "last_step": states.get(a.id, {}).get("last_step"), "reason": a.status_reason,
            } for a in assets if a.portfolio_id == p.id],
        })
    cluster = {"address": answer.get("address") or target.address, "asked": target.address,
               "source": target.source, "namespace": target.namespace}
    return {"cluster": cluster, "cluster_reachable": True, "portfolios": rows}


def run(config: LTSConfig, args: argparse.Namespace) -> int:
    try:
        data = collect(config, args.address, float(args.connect_timeout))
    except Unreachable as exc:
        print(f"lts status: error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if args.json:
        print(json.dumps(data, default=str, indent=2))
        return 0
    cluster = data["cluster"]
    print(f"Ray cluster {cluster['address']} (from {cluster['source']}), namespace {cluster['namespace']!r}")
    if not data["portfolios"]:
        print("No portfolios.")
    for p in data["portfolios"]:
        print(f"portfolio {p['portfolio_id']} {p['name']!r}: {'active' if p['active'] else 'inactive'}, "
              f"supervisor {p['supervisor']}" + (f", {p['cycles']} cycles" if p["cycles"] is not None else ""))
        for a in p["assets"]:
            step = a["last_step"] or {}
            last = (f"{step.get('bar_time')} {step.get('action')} "
                    f"{'ok' if step.get('ok', True) else 'FAILED ' + str(step.get('reason'))}") if step else "-"
            print(f"  asset {a['asset_id']} {a['symbol']:<8} {a['status']:<8} actor={a['actor']:<10} "
                  f"restarts={a['restarts']} last step: {last}" + (f" ({a['reason']})" if a["reason"] else ""))
    return 0
