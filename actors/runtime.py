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
import os
import time
from collections.abc import Mapping
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError

from actors import naming
from actors.broker_actor import BrokerActor
from actors.remote import make_remote
from actors.supervisor import PortfolioSupervisor, check_steps_in_flight
from engine.errors import ConfigError, TemporaryError

logger = logging.getLogger(__name__)

_SETTING_KEYS = (
    "mode", "global_latency", "database_url", "data_dir", "ray_namespace", "step_timeout_s",
    "max_asset_restarts", "restart_window_s", "prediction_provider_url", "prediction_api_key",
    "prediction_timeout_s", "persistence_batch_size", "persistence_batch_delay_ms", "strategy_actors",
    "persistence", "max_steps_in_flight",
)


def actor_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of the merged config the actors need (plain, picklable)."""
    return {key: config[key] for key in _SETTING_KEYS if key in config}


def init_ray(config: Mapping[str, Any]) -> dict[str, Any]:
    """Start a local Ray cluster (``ray_address`` None) or join one (``auto``/``HOST:PORT``).

    Returns what to tell the user (dashboard URL, address). A local cluster gets a few
    logical CPUs more than the machine has: the engine's actors reserve no CPU, and
    backtest tasks should still fill every core."""
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
        context = ray.init(num_cpus=(os.cpu_count() or 2) + 2, include_dashboard=dashboard, **kwargs)
    url = getattr(context, "dashboard_url", None)
    return {"address": context.address_info.get("gcs_address") if hasattr(context, "address_info") else None,
            "dashboard_url": f"http://{url}" if url else None, "joined": bool(address)}


class EngineRuntime:
    """The running engine: singletons + supervisors. Methods are synchronous (CLI, API)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self.settings = actor_settings(config)
        check_steps_in_flight(self.settings.get("max_steps_in_flight"))  # before any actor starts
        self.namespace = str(config.get("ray_namespace", "lts"))
        self.timeout_s = float(config.get("step_timeout_s", 10.0))
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
        if self.settings.get("persistence") != "local":
            from actors.persistence_actor import PersistenceSettings, start_persistence_actor

            self.persistence = start_persistence_actor(
                str(self.config["database_url"]), settings=PersistenceSettings(
                    batch_size=int(self.config.get("persistence_batch_size", 100)),
                    batch_delay_ms=float(self.config.get("persistence_batch_delay_ms", 5))),
                namespace=self.namespace)
        self.broker = make_remote(BrokerActor).options(
            name=naming.BROKER, namespace=self.namespace, get_if_exists=True).remote()
        from actors.prediction_actor import PredictionActor

        self.prediction = make_remote(PredictionActor).options(
            name=naming.PREDICTION, namespace=self.namespace, get_if_exists=True).remote(self.settings)
        handles = [h for h in (self.persistence, self.broker) if h is not None]
        ray.get([h.__ray_ready__.remote() for h in handles], timeout=60)

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
        handle = make_remote(PortfolioSupervisor).options(
            name=naming.portfolio_supervisor(portfolio_id), namespace=self.namespace, get_if_exists=True,
        ).remote(portfolio_id, self.settings)
        self.supervisors[portfolio_id] = handle
        logger.info("portfolio %s: supervisor started", portfolio_id)
        return handle

    def deactivate_portfolio(self, portfolio_id: int) -> dict[str, Any] | None:
        """Stop ``portfolio:{id}`` after its in-flight step (idempotent)."""
        handle = self.supervisors.pop(portfolio_id, None)
        if handle is None:
            try:
                handle = ray.get_actor(naming.portfolio_supervisor(portfolio_id), namespace=self.namespace)
            except ValueError:
                return None
        try:
            summary = ray.get(handle.stop.remote(), timeout=self.timeout_s + 15)
        except (GetTimeoutError, RayActorError) as exc:
            logger.warning("portfolio %s: supervisor did not stop cleanly: %s", portfolio_id, exc)
            summary = None
        ray.kill(handle, no_restart=True)
        logger.info("portfolio %s: supervisor stopped", portfolio_id)
        return summary

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
        for portfolio_id in list(self.supervisors):
            self.deactivate_portfolio(portfolio_id)
        for handle in (self.prediction, self.broker, self.persistence):
            if handle is not None:
                try:
                    ray.kill(handle, no_restart=True)
                except Exception:  # already gone
                    pass
        self._kill_strategy_actors()
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
