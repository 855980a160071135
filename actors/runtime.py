"""Engine lifecycle: start or join Ray, start the singleton actors and one supervisor per
active portfolio, and stop it all cleanly.

The process that calls ``EngineRuntime.start`` is the long-lived root of the actor tree
(``lts run``, or a test session): it owns the supervisors, which own their asset actors.
Supervisors run with ``max_restarts=-1`` (Ray restarts a crashed supervisor while the root
lives, and the supervisor rebuilds its children); when the root exits, the tree goes with
it — no orphaned engines on a shared cluster.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Mapping
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError

from actors import naming
from actors.broker_actor import BrokerActor
from actors.remote import make_remote
from actors.runtime_settings import RuntimeSettings
from actors.supervisor import PortfolioSupervisor
from engine.errors import ConfigError, TemporaryError

logger = logging.getLogger(__name__)

def actor_settings(config: Mapping[str, Any]) -> RuntimeSettings:
    """The part of the merged config the actors need, typed, frozen and checked once."""
    return RuntimeSettings.from_config(config)


def init_ray(config: Mapping[str, Any], *, own_session: bool = False) -> dict[str, Any]:
    """Start a local Ray cluster (``ray_address`` None) or join one (``auto``/``HOST:PORT``).

    Returns what to tell the user (dashboard URL, GCS address, whether it joined). A local
    cluster declares the CPUs the machine has (Ray detects them): the engine's actors
    reserve none, and backtest tasks take one each.

    ``own_session`` is accepted for callers and does nothing: a local cluster's processes
    are in the caller's process group, so a signal sent to the whole group reaches them
    too. ``lts run`` then notices the cluster is gone and exits at once (see
    ``cluster_reachable``); for a clean stop under a service manager, start the cluster
    with ``ray start --head`` and run ``lts run --address auto`` (docs/actors.md)."""
    del own_session
    namespace = str(config.get("ray_namespace", "lts"))
    if ray.is_initialized():
        context = ray.get_runtime_context()
        return {"address": context.gcs_address, "dashboard_url": None, "joined": True}
    address = config.get("ray_address")
    kwargs: dict[str, Any] = {"namespace": namespace, "log_to_driver": False, "configure_logging": False}
    if address:
        context = ray.init(address=str(address), **kwargs)
    else:
        import importlib.util

        dashboard = importlib.util.find_spec("ray.dashboard") is not None  # ray[default]
        context = ray.init(include_dashboard=dashboard, **kwargs)
    url = getattr(context, "dashboard_url", None)
    return {"address": context.address_info.get("gcs_address") if hasattr(context, "address_info") else None,
            "dashboard_url": f"http://{url}" if url else None, "joined": bool(address)}


def cluster_reachable(address: str | None, timeout_s: float = 1.0) -> bool:
    """Whether the Ray cluster's GCS at ``address`` (``host:port``) accepts connections.

    A bounded probe for shutdown: when the GCS is gone every Ray call that needs it blocks
    until Ray gives up on it (a minute), so a caller checks this first and skips the calls.
    An unknown address counts as reachable (nothing to decide on)."""
    if not address or ":" not in address:
        return True
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


class EngineRuntime:
    """The running engine: singletons + supervisors. Methods are synchronous (CLI, API)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self.settings = actor_settings(config)
        # (checked here, before any actor starts: a bad key is refused naming it)
        self.namespace = self.settings.namespace
        self.timeout_s = self.settings.step_timeout_s
        self.supervisors: dict[int, Any] = {}
        self.broker: Any = None
        self.persistence: Any = None
        self.prediction: Any = None
        self._store: Any = None

    # ------------------------------------------------------------------ lifecycle

    def start(self, *, activate: bool = True) -> None:
        """Create the singleton actors (or adopt running ones) and, with ``activate``, one
        supervisor per active portfolio."""
        if not ray.is_initialized():
            raise ConfigError("Ray is not initialised: call init_ray(config) first")
        self._start_singletons()
        if activate:
            from persistence.records import PageRequest

            for portfolio in self.store.list_portfolios(is_active=True, page=PageRequest(limit=500)).items:
                self.activate_portfolio(portfolio.id)

    def _start_singletons(self) -> None:
        if not self.settings.local_persistence:
            from actors.persistence_actor import PersistenceSettings, start_persistence_actor
            from actors.preflight import writer_placement

            self.persistence = start_persistence_actor(
                str(self.config["database_url"]), settings=PersistenceSettings(
                    batch_size=self.settings.persistence_batch_size,
                    batch_delay_ms=self.settings.persistence_batch_delay_ms),
                namespace=self.namespace,
                # A SQLite file is on the driver's disk: its one writer runs on the driver's node.
                **writer_placement(self.config["database_url"]))
        self.broker = make_remote(BrokerActor).options(
            name=naming.BROKER, namespace=self.namespace, get_if_exists=True).remote()
        from actors.prediction_actor import PredictionActor

        self.prediction = make_remote(PredictionActor).options(
            name=naming.PREDICTION, namespace=self.namespace, get_if_exists=True).remote(self.settings.engine_config())
        handles = [h for h in (self.persistence, self.broker) if h is not None]
        # Generous: each singleton is a new worker process, and on a small, loaded machine
        # Ray starts them a few at a time.
        ray.get([h.__ray_ready__.remote() for h in handles], timeout=300)

    @property
    def store(self) -> Any:
        """A local Store for reads (and for writes when no persistence actor runs)."""
        if self._store is None:
            from persistence.store import Store

            self._store = Store.from_url(str(self.config["database_url"]))
        return self._store

    def activate_portfolio(self, portfolio_id: int) -> Any:
        """Start ``portfolio:{id}`` (idempotent)."""
        handle = self.supervisors.get(portfolio_id)
        if handle is not None:
            return handle
        # The run identifies this activation's restart history (audit rows) for a
        # supervisor that Ray restarts: it gets the same constructor arguments again.
        run = {"id": uuid.uuid4().hex, "started_at": time.time()}
        handle = make_remote(PortfolioSupervisor).options(
            name=naming.portfolio_supervisor(portfolio_id), namespace=self.namespace, get_if_exists=True,
        ).remote(portfolio_id, self.settings, run)
        self.supervisors[portfolio_id] = handle
        logger.info("portfolio %s: supervisor started", portfolio_id)
        return handle

    def deactivate_portfolio(self, portfolio_id: int) -> dict[str, Any] | None:
        """Stop ``portfolio:{id}`` after its in-flight step (idempotent)."""
        return self._stop_supervisors([portfolio_id]).get(portfolio_id)

    def _stop_supervisors(self, portfolio_ids: list[int]) -> dict[int, dict[str, Any] | None]:
        """Stop these supervisors together (each finishes its in-flight steps, stops its
        assets and flushes its statistics), all under one deadline, then kill them.

        Together, not one after the other: a clean stop then takes as long as the slowest
        portfolio, not the sum of them all (``lts run`` has seconds, not minutes, once a
        service manager asked it to stop)."""
        handles: dict[int, Any] = {}
        for portfolio_id in portfolio_ids:
            handle = self.supervisors.pop(portfolio_id, None)
            if handle is None:
                try:
                    handle = ray.get_actor(naming.portfolio_supervisor(portfolio_id), namespace=self.namespace)
                except ValueError:
                    continue
            handles[portfolio_id] = handle
        refs = {pid: handle.stop.remote() for pid, handle in handles.items()}
        deadline = time.monotonic() + self.timeout_s + 15
        summaries: dict[int, dict[str, Any] | None] = {}
        for portfolio_id, ref in refs.items():
            try:
                summaries[portfolio_id] = ray.get(ref, timeout=max(deadline - time.monotonic(), 0.1))
            except (GetTimeoutError, RayActorError) as exc:
                logger.warning("portfolio %s: supervisor did not stop cleanly: %s", portfolio_id, exc)
                summaries[portfolio_id] = None
        for portfolio_id, handle in handles.items():
            ray.kill(handle, no_restart=True)
            logger.info("portfolio %s: supervisor stopped", portfolio_id)
        return summaries

    def supervisor(self, portfolio_id: int) -> Any:
        handle = self.supervisors.get(portfolio_id)
        if handle is None:
            try:
                handle = ray.get_actor(naming.portfolio_supervisor(portfolio_id), namespace=self.namespace)
            except ValueError:
                return None
        return handle

    def status(self) -> dict[str, Any]:
        """Every supervisor's status (a dead or slow one is reported, not raised)."""
        refs = {pid: h.status.remote() for pid, h in self.supervisors.items()}
        out = []
        for pid, ref in refs.items():
            try:
                out.append(ray.get(ref, timeout=self.timeout_s))
            except (GetTimeoutError, RayActorError) as exc:
                out.append({"portfolio_id": pid, "running": False, "error": type(exc).__name__, "assets": []})
        return {"running": True, "supervisors": out,
                "assets": [dict(a, portfolio_id=s["portfolio_id"]) for s in out for a in s.get("assets", [])]}

    def stop(self) -> None:
        """Graceful shutdown: heartbeats stop, in-flight steps finish, writes are flushed
        (the persistence actor acknowledges only committed writes, and every step awaited
        its writes), then the singletons go."""
        self._stop_supervisors(list(self.supervisors))
        for handle in (self.prediction, self.broker, self.persistence):
            if handle is not None:
                try:
                    ray.kill(handle, no_restart=True)
                except Exception:  # already gone
                    pass
        self._kill_strategy_actors()
        self.close_local()

    def close_local(self) -> None:
        """Release what this process holds itself (the read Store), with no Ray call: all
        there is to do when the cluster is gone."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def _kill_strategy_actors(self) -> None:
        try:
            from ray.util import list_named_actors

            for entry in list_named_actors(all_namespaces=True):
                if entry.get("namespace") == self.namespace and str(entry.get("name", "")).startswith("strategy:"):
                    ray.kill(ray.get_actor(entry["name"], namespace=self.namespace), no_restart=True)
        except Exception:
            logger.debug("could not list strategy actors", exc_info=True)

    def wait_healthy(self, timeout_s: float = 30.0) -> None:
        """Block until every supervisor answers (or raise ``TemporaryError``)."""
        deadline = time.monotonic() + timeout_s
        for pid, handle in self.supervisors.items():
            try:
                ray.get(handle.ping.remote(), timeout=max(deadline - time.monotonic(), 0.1))
            except (GetTimeoutError, RayActorError) as exc:
                raise TemporaryError(f"portfolio {pid}: supervisor not healthy: {exc}") from exc
