"""``PortfolioSupervisor`` (named ``portfolio:{id}``): one per active portfolio.

A tree of actors: the supervisor creates its asset actors, owns their lifecycle and
drives the heartbeat. Each cycle (every ``latency`` seconds, the portfolio's own or
``global_latency``; 0 = as fast as possible, for simulations) it

1. runs the portfolio plugin's ``allocate(portfolio, assets)``;
2. steps every running asset actor concurrently and waits for all of them, each with
   ``step_timeout_s`` (one ``asyncio.wait`` over the refs, no ``ray.get`` in a loop);
3. isolates failures (INT-04): a step that failed or timed out is counted in the cycle's
   statistics and audited with its reason (once per asset and reason, not per step, so a
   broken strategy does not flood the audit log); the other assets go on.

Supervision: every asset actor has a never-returning ``watch()`` call in flight; when its
process dies that call fails at once and the asset is restarted after a backoff
(0.2 s doubling up to 2 s), its restarts counted. More than ``max_asset_restarts`` within
``restart_window_s`` marks the asset errored (audited) and leaves it stopped. The
supervisor itself runs with ``max_restarts=-1``: Ray re-runs ``__init__``, which starts
the loop again and rebuilds the children (the old ones died with their owner).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from decimal import Decimal
from typing import Any

import ray
from ray.exceptions import RayActorError

from actors import naming
from actors.asset_actor import AssetActor
from actors.metrics import engine_metrics, tags
from actors.remote import make_remote
from actors.store_proxy import StoreProxy
from engine.errors import LTSError

logger = logging.getLogger(__name__)

_BACKOFF_START_S = 0.2
_BACKOFF_MAX_S = 2.0
_START_TIMEOUT_S = 120.0
_PARALLEL_STARTS = 8


class _Child:
    """A supervised asset actor and its bookkeeping."""

    def __init__(self, asset_id: int) -> None:
        self.asset_id = asset_id
        self.handle: Any = None
        self.state = "starting"  # starting | running | restarting | finished | errored | stopped
        self.restarts = 0
        self.restart_times: collections.deque[float] = collections.deque()
        self.watch_task: asyncio.Task[None] | None = None
        self.future: asyncio.Future[Any] | None = None  # the step in flight, if any
        self.sent_at = 0.0
        self.timed_out = False
        self.last_step: dict[str, Any] | None = None
        self.last_error: str | None = None
        self.audited_kind: str | None = None
        self.failures = 0
        self.pid: int | None = None


class PortfolioSupervisor:
    """See the module docstring."""

    RAY_OPTIONS: dict[str, Any] = {"num_cpus": 0, "max_restarts": -1, "max_task_retries": -1, "max_concurrency": 64}

    def __init__(self, portfolio_id: int, settings: dict[str, Any]) -> None:
        self.portfolio_id = portfolio_id
        self.settings = dict(settings)
        self.namespace = str(self.settings.get("ray_namespace", "lts"))
        self.store = StoreProxy.from_settings(self.settings)
        self.children: dict[int, _Child] = {}
        self.cycles = 0
        self.started_at = time.time()
        self._stop = asyncio.Event()
        self._start_slots = asyncio.Semaphore(_PARALLEL_STARTS)
        self._wake = asyncio.Event()
        self._reload = True
        self._stats = collections.Counter()
        # Round trip of each step as the supervisor sees it (ms), for status and benchmarks.
        self._latencies: collections.deque[float] = collections.deque(maxlen=100_000)
        self.steps_total = 0
        self._stats_flushed = time.monotonic()
        self._portfolio: Any = None
        self._assets: list[Any] = []
        self._plugin: Any = None
        self._loop_task = asyncio.get_event_loop().create_task(self._run())

    # ------------------------------------------------------------------ control

    async def stop(self) -> dict[str, Any]:
        """Stop the heartbeat after the in-flight cycle, stop the asset actors (each
        finishes its step), flush statistics. Idempotent."""
        self._stop.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._loop_task), float(self.settings.get("step_timeout_s", 10.0)) + 5)
        except (asyncio.TimeoutError, Exception):
            logger.warning("portfolio %s: heartbeat did not end in time", self.portfolio_id)
        await self._stop_children()
        await self._flush_stats(force=True)
        return self._status()

    async def reload(self) -> None:
        """Re-read the portfolio and its assets before the next cycle."""
        self._reload = True
        self._wake.set()

    async def reload_asset(self, asset_id: int) -> None:
        child = self.children.get(asset_id)
        if child is not None and child.handle is not None:
            await asyncio.wait_for(child.handle.reload.remote(), 5.0)
        self._reload = True

    async def step_asset(self, asset_id: int) -> dict[str, Any]:
        """One step of one asset now (``POST /api/trading/execute``)."""
        child = self.children.get(asset_id)
        if child is None or child.handle is None or child.state != "running":
            from engine.errors import DomainError

            raise DomainError(f"asset {asset_id} is not running in portfolio {self.portfolio_id}")
        allocation = self._allocation().get(asset_id)
        ref = child.handle.step.remote(None if allocation is None else str(allocation))
        return await asyncio.wait_for(ref, float(self.settings.get("step_timeout_s", 10.0)))

    async def status(self) -> dict[str, Any]:
        return self._status()

    async def take_latencies(self) -> dict[str, Any]:
        """Step round trips (ms) since the last call, and the step count (benchmarks)."""
        values = list(self._latencies)
        self._latencies.clear()
        return {"latencies_ms": values, "steps_total": self.steps_total, "cycles": self.cycles}

    async def ping(self) -> str:
        return "ok"

    # ------------------------------------------------------------------ heartbeat

    async def _run(self) -> None:
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                if self._reload:
                    await self._load()
                await self._cycle()
                latency = self._latency()
                remaining = latency - (time.monotonic() - started)
                self._wake.clear()
                if remaining > 0:
                    try:
                        await asyncio.wait_for(self._wake.wait(), remaining)
                    except asyncio.TimeoutError:
                        pass
                else:
                    await asyncio.sleep(0)  # let watch tasks and calls run
                if self._all_done():
                    await self._flush_stats(force=True)
                    await asyncio.sleep(max(latency, 0.5))
        except Exception:
            logger.exception("portfolio %s: heartbeat crashed", self.portfolio_id)
            raise

    async def _load(self) -> None:
        from engine.plugins.loader import create_plugin

        self._reload = False
        self._portfolio = await self.store.portfolio(self.portfolio_id)
        self._assets = [a for a in await self.store.assets(self.portfolio_id) if a.is_active]
        self._plugin = create_plugin("portfolio", self._portfolio.portfolio_plugin, self._portfolio.portfolio_config)
        wanted = {a.id for a in self._assets if str(getattr(a.status, "value", a.status)) != "errored"}
        for asset_id in list(self.children):
            if asset_id not in wanted and self.children[asset_id].state != "errored":
                await self._stop_child(self.children.pop(asset_id))
        starts = [self._start_child(asset_id) for asset_id in wanted if asset_id not in self.children]
        if starts:
            await asyncio.gather(*starts)

    def _latency(self) -> float:
        own = getattr(self._portfolio, "latency", None)
        return float(own if own is not None else self.settings.get("global_latency", 1.0))

    def _allocation(self) -> dict[int, Decimal]:
        try:
            return self._plugin.allocate(self._portfolio.model_dump(), [a.model_dump() for a in self._assets])
        except LTSError as exc:
            logger.error("portfolio %s: allocation failed: %s", self.portfolio_id, exc)
            return {}

    async def _cycle(self) -> None:
        """Dispatch a step to every running asset that is not busy, then collect.

        Paced (latency > 0): wait for all of this cycle's steps (each bounded by
        ``step_timeout_s``). As fast as possible (latency 0, simulations): collect whatever
        finished first and go round again, so one slow asset never holds up the others.
        A step past its timeout is recorded as failed once and left to finish; its asset
        gets no new step until it has (no pile-up)."""
        allocation = self._allocation()
        timeout = float(self.settings.get("step_timeout_s", 10.0))
        now = time.perf_counter()
        for child in self.children.values():
            if child.state != "running" or child.future is not None:
                continue
            capital = allocation.get(child.asset_id)
            ref = child.handle.step.remote(None if capital is None else str(capital))
            child.future = asyncio.ensure_future(_await_ref(ref, now, self._latencies))
            child.sent_at, child.timed_out = now, False
        busy = {c.future: c for c in self.children.values() if c.future is not None}
        if not busy:
            return
        self.cycles += 1
        free_running = self._latency() <= 0
        await asyncio.wait(busy, timeout=timeout,
                           return_when=asyncio.FIRST_COMPLETED if free_running else asyncio.ALL_COMPLETED)
        now = time.perf_counter()
        for future, child in busy.items():
            if not future.done():
                if now - child.sent_at >= timeout and not child.timed_out:
                    child.timed_out = True
                    await self._failed(child, "timeout", f"step took longer than step_timeout_s={timeout}")
                continue
            child.future = None
            exc = future.exception()
            if isinstance(exc, RayActorError):
                continue  # the watch task restarts it
            if exc is not None:
                await self._failed(child, "error", f"{type(exc).__name__}: {exc}")
                continue
            result = future.result()
            self.steps_total += 1
            child.last_step = result
            if result.get("finished"):
                child.state = "finished"
            if result.get("ok", True):
                child.audited_kind = None
                self._stats["steps_ok"] += 1
                self._stats[f"action_{result.get('action', 'none')}"] += 1
                if result.get("order_status"):
                    self._stats[f"orders_{result['order_status']}"] += 1
            else:
                await self._failed(child, str(result.get("error_kind")), str(result.get("reason")))
        await self._flush_stats()

    def _all_done(self) -> bool:
        return bool(self.children) and all(c.state in ("finished", "errored") for c in self.children.values())

    async def _failed(self, child: _Child, kind: str, reason: str) -> None:
        """INT-04: count, log and (once per reason) audit a failed step; never raise."""
        child.failures += 1
        self._stats["steps_failed"] += 1
        self._stats[f"failed_{kind}"] += 1
        logger.warning("portfolio %s asset %s: step failed (%s): %s", self.portfolio_id, child.asset_id, kind, reason)
        child.last_error = f"{kind}: {reason}"
        if child.audited_kind != kind:
            # Audited once per kind of failure until the asset steps cleanly again, so a
            # strategy that raises on every bar does not write an audit row per bar.
            child.audited_kind = kind
            try:
                await self.store.audit_step_failure(self.portfolio_id, child.asset_id, kind, reason)
            except Exception:
                logger.exception("portfolio %s asset %s: could not audit a step failure", self.portfolio_id, child.asset_id)

    async def _flush_stats(self, force: bool = False) -> None:
        """Per-cycle statistics, aggregated and written at most once a second."""
        now = time.monotonic()
        if not self._stats or (not force and now - self._stats_flushed < 1.0):
            return
        values = dict(self._stats)
        values["cycles"] = self.cycles
        values["restarts"] = sum(c.restarts for c in self.children.values())
        values["assets"] = {str(c.asset_id): {"state": c.state, "restarts": c.restarts, "failures": c.failures,
                                              "last_error": c.last_error} for c in self.children.values()}
        self._stats.clear()
        self._stats_flushed = now
        try:
            await self.store.record_cycle_statistics(self.portfolio_id, values)
        except Exception:
            logger.exception("portfolio %s: could not record statistics", self.portfolio_id)
        metrics = engine_metrics()
        if metrics is not None:
            open_positions = sum(int((c.last_step or {}).get("open_positions", 0)) for c in self.children.values())
            metrics.open_positions.set(open_positions, tags=tags(portfolio=self.portfolio_id))

    # ------------------------------------------------------------------ children

    async def _start_child(self, asset_id: int, child: _Child | None = None) -> None:
        child = child or self.children.setdefault(asset_id, _Child(asset_id))
        child.state = "starting"
        name = naming.asset(asset_id)
        deadline = time.monotonic() + 30.0
        while True:
            try:
                child.handle = make_remote(AssetActor).options(name=name, namespace=self.namespace).remote(
                    self.portfolio_id, asset_id, self.settings)
                break
            except ValueError:
                # The name is still held by a dying predecessor (or an orphan): wait it out.
                if time.monotonic() > deadline:
                    await self._mark_errored(child, f"actor name {name} stayed taken")
                    return
                await asyncio.sleep(0.1)
        child.watch_task = asyncio.ensure_future(self._watch(child, child.handle))
        try:
            # A few starts at a time: every new actor is a new Python process importing the
            # engine, and a hundred at once on a small machine would starve each other.
            async with self._start_slots:
                info = await asyncio.wait_for(child.handle.start.remote(), _START_TIMEOUT_S)
            child.pid = info.get("pid")
            child.state = "finished" if info.get("finished") else "running"
        except RayActorError:
            pass  # died while starting: the watch task handles it
        except asyncio.TimeoutError:
            # Slow, not broken: count it as a restart (with backoff and the restart limit).
            logger.warning("portfolio %s: asset %s did not start within %.0f s", self.portfolio_id, asset_id,
                           _START_TIMEOUT_S)
            asyncio.ensure_future(self._restart(child))
        except Exception as exc:
            # Bad config or data: restarting cannot help, so it is errored at once.
            await self._mark_errored(child, f"start failed: {type(exc).__name__}: {exc}")
            ray.kill(child.handle, no_restart=True)

    async def _watch(self, child: _Child, handle: Any) -> None:
        try:
            await handle.watch.remote()
        except RayActorError:
            pass
        except asyncio.CancelledError:
            return
        if self._stop.is_set() or child.handle is not handle or child.state in ("errored", "stopped"):
            return
        await self._restart(child)

    async def _restart(self, child: _Child) -> None:
        now = time.monotonic()
        window = float(self.settings.get("restart_window_s", 60.0))
        limit = int(self.settings.get("max_asset_restarts", 5))
        while child.restart_times and now - child.restart_times[0] > window:
            child.restart_times.popleft()
        if len(child.restart_times) >= limit:
            await self._mark_errored(child, f"died more than {limit} times within {window:g} s")
            return
        child.restart_times.append(now)
        child.restarts += 1
        child.state = "restarting"
        child.future = None
        try:
            # Frees the actor's name at once (a dead actor's name stays taken while its
            # owner still holds the handle).
            ray.kill(child.handle, no_restart=True)
        except Exception:
            pass
        delay = min(_BACKOFF_START_S * 2 ** (len(child.restart_times) - 1), _BACKOFF_MAX_S)
        logger.warning("portfolio %s: asset %s died; restart #%d in %.1f s",
                       self.portfolio_id, child.asset_id, child.restarts, delay)
        metrics = engine_metrics()
        if metrics is not None:
            metrics.restarts.inc(tags=tags(portfolio=self.portfolio_id))
        await asyncio.sleep(delay)
        if not self._stop.is_set():
            await self._start_child(child.asset_id, child)

    async def _mark_errored(self, child: _Child, reason: str) -> None:
        child.state = "errored"
        child.last_error = reason
        logger.error("portfolio %s: asset %s errored: %s", self.portfolio_id, child.asset_id, reason)
        try:
            await self.store.mark_asset_errored(child.asset_id, reason)
        except Exception:
            logger.exception("portfolio %s: could not mark asset %s errored", self.portfolio_id, child.asset_id)

    async def _stop_child(self, child: _Child) -> None:
        if child.watch_task is not None:
            child.watch_task.cancel()
        if child.handle is not None and child.state not in ("errored",):
            try:
                await asyncio.wait_for(child.handle.stop.remote(), float(self.settings.get("step_timeout_s", 10.0)))
            except Exception:
                pass
            ray.kill(child.handle, no_restart=True)
        if child.state != "errored":
            child.state = "stopped"

    async def _stop_children(self) -> None:
        await asyncio.gather(*(self._stop_child(c) for c in self.children.values()), return_exceptions=True)

    def _status(self) -> dict[str, Any]:
        return {
            "portfolio_id": self.portfolio_id,
            "running": not self._stop.is_set(),
            "cycles": self.cycles,
            "steps_total": self.steps_total,
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
                for c in self.children.values()
            ],
        }


async def _await_ref(ref: Any, sent: float, latencies: collections.deque[float]) -> Any:
    result = await ref
    latencies.append((time.perf_counter() - sent) * 1000.0)
    return result


__all__ = ["PortfolioSupervisor"]
