"""What ``lts run`` settles on the driver before anything starts.

* Relative paths become absolute here, against the directory ``lts run`` was started in.
  Ray workers run in the directory of ``ray start``, not the driver's: a relative SQLite
  URL handed to a joined cluster's persistence actor silently opened another, empty
  database there.
* The API port is bind-tested first, so a busy port is one line at once instead of an
  error after the whole engine has started.
* The SQLite writer (the persistence actor) is pinned to the driver's node: the database
  file is on the driver's disk, and a writer on another node would create its own.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Mapping
from typing import Any

from engine.errors import ConfigError

PATH_KEYS = ("data_dir", "backtest_dir", "state_dir")
"""Config keys that name a folder the server (or its actors) opens."""


def absolute_sqlite_url(url: str) -> str:
    """``url`` with a relative SQLite file made absolute (against the current directory);
    every other URL (PostgreSQL, in-memory SQLite, ``file:`` URIs) as it is."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - the Store reports a bad URL in its own words later
        return url
    database = parsed.database
    if (not parsed.get_backend_name() == "sqlite" or not database or database == ":memory:"
            or database.startswith("file:") or parsed.query.get("uri")):
        return url
    if os.path.isabs(os.path.expanduser(database)):
        return url
    return parsed.set(database=os.path.abspath(os.path.expanduser(database))).render_as_string(hide_password=False)


def resolve_driver_paths(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``settings`` whose ``database_url`` (SQLite file) and ``data_dir``,
    ``backtest_dir``, ``state_dir`` are absolute paths of the driver's directory."""
    out = dict(settings)
    if out.get("database_url"):
        out["database_url"] = absolute_sqlite_url(str(out["database_url"]))
    for key in PATH_KEYS:
        if out.get(key):
            out[key] = os.path.abspath(os.path.expanduser(str(out[key])))
    return out


def _source_of(config: Mapping[str, Any], key: str) -> str:
    source = getattr(config, "source", None)
    try:
        return str(source(key)) if callable(source) else "config"
    except KeyError:
        return "default"


def check_api_port(config: Mapping[str, Any]) -> None:
    """Refuse (one-line ``ConfigError``) an ``api_host``:``api_port`` that cannot be bound,
    naming the key and where its value came from. Port 0 (any free port) always binds."""
    host = str(config.get("api_host") or "127.0.0.1")
    port = int(config.get("api_port") or 0)
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"config key 'api_host' ({host!r}, from {_source_of(config, 'api_host')}): "
                          f"not a host this machine can listen on ({exc.strerror})") from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # As uvicorn binds: a port whose old connections linger in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                why = "is already in use (another lts run?); choose another with --api_port N"
            else:
                why = f"cannot be bound ({exc.strerror})"
            raise ConfigError(f"config key 'api_port' ({port}, from {_source_of(config, 'api_port')}): "
                              f"{host}:{port} {why}") from None


def is_sqlite_url(url: object) -> bool:
    """Whether ``url`` names a SQLite database (the one-writer-per-file case)."""
    return str(url or "").split(":", 1)[0].split("+", 1)[0] == "sqlite"


def writer_placement(database_url: object) -> dict[str, Any]:
    """Ray options for the persistence actor: with SQLite, a hard affinity to the node of
    the calling driver (whose disk holds the file); nothing for a database server."""
    if not is_sqlite_url(database_url):
        return {}
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node_id = ray.get_runtime_context().get_node_id()
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)}
