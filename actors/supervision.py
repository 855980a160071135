"""Supervision of one portfolio's asset actors: start, watch, restart with backoff, give up.

``Supervision`` is the state machine behind ``PortfolioSupervisor``; it sees its children
only through ``actors.children.ChildHandle`` and records through the ``StoreProxy``, so it
is unit-tested with plain Python children and a local store (``tests/unit/runtime``).

A child's states: ``starting`` -> ``running`` (or ``finished`` at the end of its data) ->
``restarting`` when its process died -> ``starting`` ... -> ``errored`` once it died more
than ``max_asset_restarts`` times within ``restart_window_s`` (``RestartTracker``), or at
once when its start failed for a reason a restart cannot fix (bad config or data);
``stopped`` when the portfolio stops or the asset is deactivated.

Every child has a never-returning ``watch()`` call in flight; when its process dies that
call fails at once and the restart follows. Every restart is audited (``asset.restarted``,
with the run id, the restart's number and wall-clock time); a supervisor that Ray restarted
reads those rows back (``load_history``), so crashing the supervisor too does not reset an
asset's count or window. An errored asset is marked so in the database and audited there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from actors.children import ChildDied, ChildFactory, ChildHandle, NameTaken
from actors.errors import public_reason_of
from actors.restart_policy import RestartPolicy, RestartTracker
from engine.public_text import public_text

logger = logging.getLogger(__name__)

RESTART_AUDIT_ACTION = "asset.restarted"
_PARALLEL_STARTS = 8
_NAME_WAIT_S = 30.0


@dataclass(eq=False)
class Child:
    """A supervised asset actor and its bookkeeping."""

    asset_id: int
    tracker: RestartTracker
    handle: ChildHandle | None = None
    state: str = "starting"  # starting | running | restarting | finished | errored | stopped
    pid: int | None = None
    watch_task: "asyncio.Task[None] | None" = None
    driver: "asyncio.Task[None] | None" = None  # free-running step loop (``actors.heartbeat``)
    inflight: "asyncio.Future[Any] | None" = None  # the step in flight, if any
    sent_capital: str | None = None  # the allocation the actor last got
    last_step: dict[str, Any] | None = None
    last_error: str | None = None
    audited_kind: str | None = None  # the failure kind last audited (once per kind)
    failures: int = 0

    @property
    def restarts(self) -> int:
        return self.tracker.restarts


class Supervision:
    """Children of one portfolio and their restart rules (see the module docstring).

    ``on_running(child)``: called when a child (re)started and is running (the heartbeat
    starts its free-running driver); ``data_for(asset_id)``: the shared data handed to a
    starting child (or None)."""

    def __init__(self, portfolio_id: int, *, store: Any, factory: ChildFactory, policy: RestartPolicy,
                 stopping: asyncio.Event, run_id: str, run_started_at: float, data_dir: str | None = None,
                 start_timeout_s: float = 120.0, call_timeout_s: float = 10.0,
                 on_running: Callable[[Child], None] | None = None,
                 data_for: Callable[[int], Awaitable[dict[str, Any] | None]] | None = None) -> None:
        self.portfolio_id = portfolio_id
        self.store = store
        self.factory = factory
        self.policy = policy
        self.stopping = stopping
        self.run_id = run_id
        self.run_started_at = run_started_at
        self.data_dir = data_dir
        self.start_timeout_s = start_timeout_s
        self.call_timeout_s = call_timeout_s
        self.on_running = on_running or (lambda child: None)
        self.data_for = data_for
        self.children: dict[int, Child] = {}
        self.errored = 0  # assets given up on by this supervisor
        # Asset id -> (restarts, wall-clock times of those in the window), read from the
        # audit log by a restarted supervisor before its first starts; then empty.
        self._history: dict[int, tuple[int, list[float]]] = {}
        self._start_slots = asyncio.Semaphore(_PARALLEL_STARTS)
        self._background: set[asyncio.Future[Any]] = set()

    # ------------------------------------------------------------------ text clients see

    def public(self, text: str) -> str:
        """An error text as clients may see it (one line, no server internals)."""
        return public_text(text, data_dir=self.data_dir)

    def reason(self, exc: BaseException) -> str:
        """The one-line reason for an exception from an asset actor call."""
        return public_reason_of(exc, data_dir=self.data_dir, what="asset actor")

    # ------------------------------------------------------------------ starting

    def running(self) -> list[Child]:
        return [c for c in self.children.values() if c.state == "running"]

    async def start(self, asset_id: int, child: Child | None = None) -> None:
        """(Re)start the asset actor of ``asset_id``: spawn it, watch it, build it."""
        child = child or self.children.get(asset_id)
        if child is None:
            child = self.children[asset_id] = Child(asset_id, self._tracker(asset_id))
        child.state = "starting"
        child.sent_capital = None  # a new actor starts from the database's allocation
        deadline = time.monotonic() + _NAME_WAIT_S
        while True:
            try:
                handle = child.handle = self.factory.spawn(asset_id)
                break
            except NameTaken as exc:
                if time.monotonic() > deadline:
                    await self.mark_errored(child, f"actor name {exc} stayed taken")
                    return
                await asyncio.sleep(0.1)
        child.watch_task = asyncio.ensure_future(self._watch(child, handle))
        try:
            # A few starts at a time: every new actor is a new Python process importing the
            # engine, and a hundred at once on a small machine would starve each other.
            async with self._start_slots:
                shared = None if self.data_for is None else await self.data_for(asset_id)
                info = await asyncio.wait_for(handle.start(shared), self.start_timeout_s)
        except ChildDied:
            return  # died while starting: the watch task restarts it
        except asyncio.TimeoutError:
            # Slow, not broken: a restart (with backoff and the restart limit).
            logger.warning("portfolio %s: asset %s did not start within %.0f s", self.portfolio_id, asset_id,
                           self.start_timeout_s)
            self._keep(asyncio.ensure_future(self.restart(child)))
            return
        except Exception as exc:
            # Bad config or data: restarting cannot help, so it is errored at once. The
            # client sees the domain message; the remote traceback goes to the log.
            logger.error("portfolio %s: asset %s failed to start: %s", self.portfolio_id, asset_id, exc)
            await self.mark_errored(child, "start failed: " + self.reason(exc))
            handle.kill()
            return
        if child.handle is not handle or child.state != "starting":
            return  # replaced or given up meanwhile
        child.pid = info.get("pid")
        if child.last_error == "actor died":
            child.last_error = None
        child.state = "finished" if info.get("finished") else "running"
        if child.state == "running" and not self.stopping.is_set():
            self.on_running(child)

    async def _watch(self, child: Child, handle: ChildHandle) -> None:
        try:
            await handle.watch()
        except ChildDied:
            pass
        except asyncio.CancelledError:
            return
        if self.stopping.is_set() or child.handle is not handle or child.state in ("errored", "stopped", "restarting"):
            return  # ("restarting": a start that timed out is already being restarted)
        await self.restart(child)

    # ------------------------------------------------------------------ restarting

    async def restart(self, child: Child) -> None:
        """The child's process died (or did not start in time): restart it after the
        backoff, or give up and mark it errored (``RestartTracker``)."""
        decision = child.tracker.on_death(time.monotonic())
        if child.handle is not None:
            child.handle.kill()  # frees the actor's name at once
        if not decision.restart:
            await self.mark_errored(child, str(decision.reason))
            return
        child.state = "restarting"
        child.inflight = None
        logger.warning("portfolio %s: asset %s died; restart #%d in %.1f s",
                       self.portfolio_id, child.asset_id, child.restarts, decision.delay_s)
        # Recorded while the backoff runs (the restart does not wait on the database).
        self._keep(asyncio.ensure_future(self._record_restart(child.asset_id, child.restarts, decision.delay_s)))
        from actors.metrics import engine_metrics, tags

        metrics = engine_metrics()
        if metrics is not None:
            metrics.restarts.inc(tags=tags(portfolio=self.portfolio_id))
        await asyncio.sleep(decision.delay_s)
        if not self.stopping.is_set() and child.state == "restarting":
            await self.start(child.asset_id, child)

    def _keep(self, task: "asyncio.Future[Any]") -> None:
        """Hold a background task until it is done (the loop keeps only a weak reference)."""
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def settle_background(self) -> None:
        """Wait for the restart records (and restarts) in flight (tests, stop)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def _record_restart(self, asset_id: int, number: int, delay_s: float) -> None:
        """Audit restart ``number`` of ``asset_id`` in this run: the record a restarted
        supervisor rebuilds the count and the window from. The request id makes a resend a
        no-op."""
        from persistence.records import AuditContext
        from persistence.store.writes import WriteRequest

        ctx = AuditContext.system(request_id=f"{RESTART_AUDIT_ACTION}:{self.run_id}:{asset_id}:{number}")
        details = {"portfolio_id": self.portfolio_id, "run": self.run_id, "restart": number, "at": time.time(),
                   "delay_s": round(delay_s, 3)}
        try:
            await self.store.write([WriteRequest(op="audit", ctx=ctx, args=(RESTART_AUDIT_ACTION,),
                                                 kwargs={"target_type": "asset", "target_id": asset_id,
                                                         "details": details})])
        except Exception:
            logger.exception("portfolio %s: could not record restart #%d of asset %s", self.portfolio_id, number,
                             asset_id)

    async def load_history(self) -> None:
        """Read this run's asset restarts from the audit log (a restarted supervisor, before
        its first starts): asset id -> (restarts so far, times of those in the window)."""
        from persistence.records import MAX_PAGE_SIZE, PageRequest

        # Rows of this run only; the margin covers another node's clock being behind ours.
        since = datetime.fromtimestamp(self.run_started_at - 300.0, tz=timezone.utc)
        horizon = time.time() - self.policy.window_s
        seen: dict[int, dict[int, float]] = {}  # asset id -> restart number -> its time
        offset = 0
        try:
            while True:
                page = await self.store.read("list_audit_logs", action=RESTART_AUDIT_ACTION, target_type="asset",
                                             since=since, page=PageRequest(offset=offset, limit=MAX_PAGE_SIZE))
                items = list(getattr(page, "items", page))
                for row in items:
                    details = row.details or {}
                    if details.get("run") != self.run_id or details.get("portfolio_id") != self.portfolio_id:
                        continue
                    # Keyed by number: a row read twice (pages shift as rows arrive) counts once.
                    restarts = seen.setdefault(int(str(row.target_id)), {})
                    restarts[int(details.get("restart", 0))] = float(details.get("at", 0.0))
                if len(items) < MAX_PAGE_SIZE:
                    break
                offset += len(items)
        except Exception:
            # Better a supervisor that forgets than one that cannot start.
            logger.exception("portfolio %s: could not read the restart history; counting from zero",
                             self.portfolio_id)
            return
        self._history = {asset_id: (max(restarts), [at for at in restarts.values() if at >= horizon])
                         for asset_id, restarts in seen.items()}
        if self._history:
            logger.warning("portfolio %s: restart counts carried over from before this supervisor's restart: %s",
                           self.portfolio_id, {a: n for a, (n, _) in self._history.items()})

    def forget_history(self) -> None:
        """The history is for each asset's first start only."""
        self._history = {}

    def _tracker(self, asset_id: int) -> RestartTracker:
        """The asset's tracker, as the previous supervisor left it when there was one."""
        count, times = self._history.get(asset_id, (0, []))
        if not count:
            return RestartTracker(self.policy)
        now = time.time()
        return RestartTracker.resume(self.policy, count, [now - at for at in times], time.monotonic())

    # ------------------------------------------------------------------ giving up, stopping

    async def mark_errored(self, child: Child, reason: str) -> None:
        """Give up on ``child``: errored here and in the database (which audits it)."""
        reason = self.public(reason)  # the asset's status_reason, its audit row and the status
        child.state = "errored"
        child.last_error = reason
        self.errored += 1
        logger.error("portfolio %s: asset %s errored: %s", self.portfolio_id, child.asset_id, reason)
        try:
            await self.store.mark_asset_errored(child.asset_id, reason)
        except Exception:
            logger.exception("portfolio %s: could not mark asset %s errored", self.portfolio_id, child.asset_id)

    async def stop(self, child: Child) -> None:
        """Stop one child: it finishes its step and records it, then its process ends."""
        if child.watch_task is not None:
            child.watch_task.cancel()
        if child.handle is not None and child.state != "errored":
            try:
                await asyncio.wait_for(child.handle.stop(), self.call_timeout_s)
            except Exception:
                pass
            child.handle.kill()
        if child.state != "errored":
            child.state = "stopped"

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(c) for c in self.children.values()), return_exceptions=True)

    async def remove(self, asset_id: int) -> None:
        """The asset was deactivated (or deleted): stop it and forget it."""
        child = self.children.pop(asset_id, None)
        if child is not None:
            await self.stop(child)

    # ------------------------------------------------------------------ the broker actor restarted

    async def reattach_all(self, attempts: int = 5) -> None:
        """The broker actor restarted without its accounts: every live asset restores its own."""
        await asyncio.gather(*(self._reattach(c, attempts) for c in list(self.children.values())))

    async def _reattach(self, child: Child, attempts: int) -> None:
        for attempt in range(attempts):
            handle = child.handle
            if self.stopping.is_set() or handle is None or child.state not in ("running", "finished"):
                return  # a (re)starting asset restores its account in its own start
            try:
                await asyncio.wait_for(handle.reattach_broker(), 3 * self.call_timeout_s)
                return
            except ChildDied:
                return  # the asset died meanwhile: its restart restores the account
            except Exception as exc:
                logger.warning("portfolio %s asset %s: re-attach to the broker failed (attempt %d): %s",
                               self.portfolio_id, child.asset_id, attempt + 1, exc)
                await asyncio.sleep(min(0.5 * 2 ** attempt, 5.0))
        logger.error("portfolio %s asset %s: could not re-attach to the restarted broker", self.portfolio_id,
                     child.asset_id)


__all__ = ["RESTART_AUDIT_ACTION", "Child", "Supervision"]
