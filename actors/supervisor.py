"""``PortfolioSupervisor`` (named ``portfolio:{id}``): one per active portfolio.

A tree of actors: the supervisor creates one ``AssetActor`` per active asset, owns their
lifecycle and drives the heartbeat. It is a thin Ray host around three parts:

- ``actors.supervision.Supervision``: start, watch, restart with backoff, give up (errored
  and audited), stop; restart counts survive a restart of the supervisor itself;
- ``actors.heartbeat.Heartbeat``: the schedule (paced cycles or free-running drivers)
  within a window of steps in flight, and collecting each call's answer;
- ``actors.step_stats.StepStats``: counters, latencies, metrics, audit of failed steps.

They see asset actors only through ``actors.children.ChildHandle`` (``RayChild`` here).

The supervisor also watches the broker actor: when it restarts (Ray brings the process
back, not its in-memory accounts) every asset re-attaches and restores its account from
the database. The supervisor itself runs with ``max_restarts=-1``: Ray re-runs
``__init__``, which starts the loop again and rebuilds the children (the old ones died with
their owner). Its calls are never retried by Ray (``max_task_retries=0``): a step asked
for through the API runs at most once from Ray's side; the caller decides to ask again,
and an order repeated that way is a no-op by its client order id.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Mapping
from typing import Any

from actors import naming
from actors.children import ChildDied, RayChildren
from actors.heartbeat import Heartbeat
from actors.restart_policy import RestartPolicy
from actors.runtime_settings import RuntimeSettings, check_steps_in_flight
from actors.step_stats import StepStats
from actors.store_proxy import StoreProxy
from actors.supervision import RESTART_AUDIT_ACTION, Supervision

logger = logging.getLogger(__name__)

_REATTACH_ATTEMPTS = 5


def default_steps_in_flight(cluster_cpus: float) -> int:
    """The window when ``max_steps_in_flight`` is unset: two steps per CPU of the cluster,
    at least 4.

    A step alternates work in its asset actor with waits on the persistence and broker
    actors, so two per core keep each core busy while the other step waits; more only
    queue at those singletons and at the CPU, which raises every step's latency without
    adding steps per second. The CPUs are those Ray knows: the machine's cores locally
    (``lts run`` declares nothing), each node's on a cluster."""
    return max(4, 2 * int(cluster_cpus))


def steps_in_flight(settings: RuntimeSettings) -> int:
    """``max_steps_in_flight`` (0 = no limit); unset: see ``default_steps_in_flight``."""
    if settings.max_steps_in_flight is not None:
        return settings.max_steps_in_flight
    try:
        import ray

        cpus = float(ray.cluster_resources().get("CPU", os.cpu_count() or 2))
    except Exception:  # not connected (unit use): this machine's cores
        cpus = float(os.cpu_count() or 2)
    return default_steps_in_flight(cpus)


class PortfolioSupervisor:
    """See the module docstring."""

    RAY_OPTIONS: dict[str, Any] = {"num_cpus": 0, "max_restarts": -1, "max_task_retries": 0, "max_concurrency": 64}

    def __init__(self, portfolio_id: int, settings: RuntimeSettings | Mapping[str, Any],
                 run: dict[str, Any] | None = None) -> None:
        """``run``: ``{"id": str, "started_at": epoch seconds}``, made once by whoever
        activates the portfolio (``EngineRuntime.activate_portfolio``). Ray passes the same
        value again when it re-runs this constructor after a crash, which is how a
        restarted supervisor finds the restarts its predecessor recorded."""
        self.portfolio_id = portfolio_id
        self.settings = RuntimeSettings.of(settings)
        run = dict(run or {})
        self.run_id = str(run.get("id") or uuid.uuid4().hex)
        self.started_at = time.time()
        self.restarted = _was_restarted()
        self.store = StoreProxy.from_settings(self.settings)
        self._stop = asyncio.Event()
        factory = RayChildren(portfolio_id, self.settings)
        self.supervision = Supervision(
            portfolio_id, store=self.store, factory=factory, policy=RestartPolicy.from_settings(self.settings),
            stopping=self._stop, run_id=self.run_id, run_started_at=float(run.get("started_at") or time.time()),
            data_dir=self.settings.data_dir, call_timeout_s=self.settings.step_timeout_s)
        self.stats = StepStats(portfolio_id, self.supervision)
        self.window = steps_in_flight(self.settings)
        self.heartbeat = Heartbeat(portfolio_id, self.settings, self.supervision, self.stats, factory, self.window,
                                   restarted=self.restarted)
        self.broker_restarts = 0
        loop = asyncio.get_event_loop()
        self._loop_task = loop.create_task(self.heartbeat.run())
        self._broker_watch = loop.create_task(self._watch_broker())
        if self.restarted:
            logger.warning("portfolio %s: supervisor restarted (pid %s); rebuilding its asset actors",
                           portfolio_id, os.getpid())

    # ------------------------------------------------------------------ control

    async def stop(self) -> dict[str, Any]:
        """Stop the heartbeat after the in-flight steps, stop the asset actors (each
        finishes its step), flush metrics. Idempotent."""
        timeout = self.settings.step_timeout_s + 5
        self._stop.set()
        self.heartbeat.wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._loop_task), timeout)
        except (asyncio.TimeoutError, Exception):
            logger.warning("portfolio %s: heartbeat did not end in time", self.portfolio_id)
        self._broker_watch.cancel()
        drivers = [c.driver for c in self.supervision.children.values() if c.driver is not None]
        if drivers:
            await asyncio.wait(drivers, timeout=timeout)
        await self.supervision.stop_all()
        self.stats.flush(force=True)
        return self._status()

    async def reload(self) -> None:
        """Re-read the portfolio and its assets before the next cycle."""
        self.heartbeat.reload_due = True
        self.heartbeat.wake.set()

    async def reload_asset(self, asset_id: int) -> None:
        child = self.supervision.children.get(asset_id)
        if child is not None and child.handle is not None:
            try:
                await asyncio.wait_for(child.handle.reload(), 5.0)
            except ChildDied:
                pass  # its restart reads the new config anyway
        self.heartbeat.reload_due = True

    async def step_asset(self, asset_id: int) -> dict[str, Any]:
        """One step of one asset now (``POST /api/trading/execute``)."""
        return await self.heartbeat.step_now(asset_id)

    async def status(self) -> dict[str, Any]:
        return self._status()

    async def ping(self) -> str:
        return "ok"

    async def take_latencies(self) -> dict[str, Any]:
        """Step latencies (ms) since the last call (all steps, and those that sent an
        order), the round trips of multi-bar calls, and the step count (benchmarks).

        A step's latency is its round trip from dispatch when it is a call of its own (paced
        heartbeats; ``tick_latencies_ms`` then has each step's time from its cycle's start,
        the wait for a step slot included), and its time in the asset actor when several
        bars share a call (free-running simulations: ``call_latencies_ms`` then has the
        calls' round trips)."""
        return {**self.stats.take_latencies(), "steps_total": self.stats.steps_total,
                "cycles": self.heartbeat.cycles, "window": self.window, "bars_per_call": self.heartbeat.burst_size()}

    async def metrics(self) -> dict[str, Any]:
        """Every counter increment and the last gauge values this supervisor handed to Ray
        metrics (cumulative since it started): what the Prometheus endpoint should show."""
        return {"counters": {f"{name}:{label}": n for (name, label), n in self.stats.emitted.items()},
                "gauges": dict(self.stats.gauges)}

    # ------------------------------------------------------------------ the broker actor

    async def _watch_broker(self) -> None:
        """Keep a never-returning ``watch`` call on the broker actor; when it fails the
        broker died (Ray restarts it without its accounts): every asset re-attaches."""
        import ray
        from ray.exceptions import RayActorError

        while not self._stop.is_set():
            try:
                handle = await asyncio.to_thread(ray.get_actor, naming.BROKER, namespace=self.settings.namespace)
            except ValueError:
                await asyncio.sleep(1.0)  # not started (yet)
                continue
            try:
                await handle.watch.remote()
            except asyncio.CancelledError:
                return
            except RayActorError:
                if self._stop.is_set():
                    return
                self.broker_restarts += 1
                logger.warning("portfolio %s: the broker actor died; re-attaching %d assets to its restart",
                               self.portfolio_id, len(self.supervision.children))
                await self.supervision.reattach_all(_REATTACH_ATTEMPTS)
            except Exception:
                logger.exception("portfolio %s: watching the broker actor failed", self.portfolio_id)
                await asyncio.sleep(1.0)

    # ------------------------------------------------------------------ status

    def _status(self) -> dict[str, Any]:
        """What ``lts status`` and ``GET /api/engine/status`` show: the heartbeat's health
        (cumulative counts) and every asset's state."""
        return {
            "portfolio_id": self.portfolio_id,
            "running": not self._stop.is_set(),
            "pid": os.getpid(),
            "restarted": self.restarted,
            "cycles": self.heartbeat.cycles,
            "steps_total": self.stats.steps_total,
            "counts": self.stats.summary(),
            "steps_in_flight_limit": self.window,
            "broker_restarts_seen": self.broker_restarts,
            "uptime_s": round(time.time() - self.started_at, 1),
            "assets": [
                {
                    "asset_id": c.asset_id,
                    "state": c.state,
                    "pid": c.pid,
                    "restarts": c.restarts,
                    "failures": c.failures,
                    "last_error": c.last_error,
                    "last_step": c.last_step,
                    "last_step_at": (c.last_step or {}).get("bar_time"),
                }
                for c in self.supervision.children.values()
            ],
        }


def _was_restarted() -> bool:
    """Whether Ray re-ran this actor's constructor after its process died."""
    try:
        import ray

        return bool(ray.get_runtime_context().was_current_actor_reconstructed)
    except Exception:
        return False


__all__ = ["RESTART_AUDIT_ACTION", "PortfolioSupervisor", "check_steps_in_flight", "default_steps_in_flight",
           "steps_in_flight"]
