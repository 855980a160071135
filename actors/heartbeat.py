"""A portfolio's schedule: when each running asset steps, and collecting the answers.

Paced (``latency`` > 0 seconds, the portfolio's own or ``global_latency``): every cycle
runs the portfolio plugin's ``allocate(portfolio, assets)`` and steps every running asset
once, concurrently, waiting for all of them (each bounded by ``step_timeout_s``). A paced
simulation that fell behind its pace steps the bars it owes in one call (``actors.pace``).
As fast as possible (``latency`` 0, simulations): every asset has its own driver that
steps it again as soon as its last call answered, several bars per call, so a slow asset
never holds up the others; the allocation is refreshed on a short tick.

Either way at most ``window`` steps run at once (a FIFO of slots, so assets take turns
fairly): steps dispatched to more processes than there are cores only queue for the CPU
and for the persistence and broker actors. A timed-out step is counted as failed and left
to finish; its asset gets no new step until it has (no pile-up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from decimal import Decimal
from typing import Any

from actors.asset_actor import BurstSummary
from actors.children import ChildDied, ChildFactory
from engine.data.asset_source import data_key, load_asset_data
from actors.pace import PaceKeeper
from actors.runtime_settings import RuntimeSettings
from actors.step_stats import StepStats
from actors.supervision import Child, Supervision
from engine.errors import DomainError, LTSError, TemporaryError

logger = logging.getLogger(__name__)

_FREE_TICK_S = 0.5  # free-running: allocation refresh / metrics flush / reload check


class Heartbeat:
    """One portfolio's step schedule (see the module docstring)."""

    def __init__(self, portfolio_id: int, settings: RuntimeSettings, supervision: Supervision, stats: StepStats,
                 factory: ChildFactory, window: int, *, restarted: bool = False) -> None:
        self.portfolio_id = portfolio_id
        self.settings = settings
        self.supervision = supervision
        self.stats = stats
        self.factory = factory
        self.window = window
        self.restarted = restarted
        self.timeout_s = settings.step_timeout_s
        self.cycles = 0
        self.stopping = supervision.stopping
        self.wake = asyncio.Event()
        self.reload_due = True
        self._slots: asyncio.Semaphore | None = asyncio.Semaphore(window) if window > 0 else None
        self._pace = PaceKeeper(self.burst_size() if settings.paced_catch_up else 1)
        self._portfolio: Any = None
        self._assets: list[Any] = []
        self._plugin: Any = None
        self._dumps: tuple[dict[str, Any], list[dict[str, Any]]] = ({}, [])
        self._capital: dict[int, Decimal] = {}
        # data_key -> the CSV parsed once (simulation), shared zero-copy by every asset and
        # every restart that reads the file, instead of each parsing its own.
        self._shared: dict[tuple[Any, ...], Any] = {}
        self._data_lock = asyncio.Lock()  # concurrent starts of assets on one file parse it once
        supervision.on_running = self._on_running
        supervision.data_for = self._data_for

    def burst_size(self) -> int:
        """Bars per call of a free-running driver: 1 outside simulations (a live step is
        one look at the broker's price)."""
        return self.settings.bars_per_call if self.settings.simulation else 1

    def latency(self) -> float:
        own = getattr(self._portfolio, "latency", None)
        return float(own if own is not None else self.settings.global_latency)

    def allocation(self) -> dict[int, Decimal]:
        try:
            return self._plugin.allocate(*self._dumps)
        except LTSError as exc:
            logger.error("portfolio %s: allocation failed: %s", self.portfolio_id, exc)
            return {}

    def all_done(self) -> bool:
        children = self.supervision.children.values()
        return bool(children) and all(c.state in ("finished", "errored") for c in children)

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        try:
            while not self.stopping.is_set():
                started = time.monotonic()
                if self.reload_due:
                    await self._load()
                latency = self.latency()
                if latency <= 0:
                    self._capital = self.allocation()
                    self.cycles += 1
                    for child in self.supervision.running():
                        self._on_running(child)
                    pause = _FREE_TICK_S
                else:
                    await self._cycle()
                    pause = latency - (time.monotonic() - started)
                self.stats.flush()
                self.wake.clear()
                if pause > 0:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), pause)
                else:
                    await asyncio.sleep(0)  # let watch tasks and calls run
                if self.all_done():
                    self.stats.flush(force=True)
                    await asyncio.sleep(max(latency, 0.5))
        except Exception:
            logger.exception("portfolio %s: heartbeat crashed", self.portfolio_id)
            raise

    async def _load(self) -> None:
        from engine.plugins.loader import create_plugin

        self.reload_due = False
        self._pace.reset()  # a reload starts the paced replay's clock again
        supervision = self.supervision
        if self.restarted and self.cycles == 0 and not supervision.children:
            await supervision.load_history()
        store = supervision.store
        self._portfolio = await store.portfolio(self.portfolio_id)
        self._assets = [a for a in await store.assets(self.portfolio_id) if a.is_active]
        self._plugin = create_plugin("portfolio", self._portfolio.portfolio_plugin, self._portfolio.portfolio_config)
        # Dumped once per load: the plugin gets plain dicts, every cycle.
        self._dumps = (self._portfolio.model_dump(), [a.model_dump() for a in self._assets])
        self._capital = self.allocation()  # before the first steps are dispatched
        keys = {data_key(a, self.settings.engine_config()) for a in self._assets}
        for key in [k for k in self._shared if k not in keys]:
            del self._shared[key]  # a file no asset reads any more (or one that changed)
        wanted = {a.id for a in self._assets if str(getattr(a.status, "value", a.status)) != "errored"}
        for asset_id, child in list(supervision.children.items()):
            if asset_id not in wanted and child.state != "errored":
                await supervision.remove(asset_id)
        starts = [supervision.start(asset_id) for asset_id in wanted if asset_id not in supervision.children]
        if starts:
            await asyncio.gather(*starts)
        supervision.forget_history()

    async def _data_for(self, asset_id: int) -> dict[str, Any] | None:
        """``{"key", "data"}`` of the asset's CSV parsed once here (simulation), or None:
        then the asset parses it itself (and reports a bad file as it always did)."""
        if not self.settings.simulation:
            return None
        record = next((a for a in self._assets if a.id == asset_id), None)
        config = self.settings.engine_config()
        key = None if record is None else data_key(record, config)
        if key is None:
            return None
        async with self._data_lock:
            ref = self._shared.get(key)
            if ref is None:
                try:
                    data = await asyncio.to_thread(load_asset_data, record, config)
                except Exception as exc:  # the asset's own load names the problem
                    logger.debug("portfolio %s: asset %s data not shared: %s", self.portfolio_id, asset_id, exc)
                    return None
                ref = self._shared[key] = self.factory.share(data)
        return {"key": key, "data": ref}

    def _on_running(self, child: Child) -> None:
        """Free-running: a running asset without a driver gets one."""
        if self.latency() <= 0 and not self.stopping.is_set() and (child.driver is None or child.driver.done()):
            child.driver = asyncio.ensure_future(self._drive(child))

    async def _cycle(self) -> None:
        """Paced: one step for every running asset that is not still busy, then wait for
        all of them."""
        allocation = self.allocation()
        tick = time.perf_counter()
        due = self._pace.ticks_due(time.monotonic(), self.latency())
        steps = [self._step(child, allocation.get(child.asset_id), tick=tick, paced=True,
                            burst=self._pace.bars_for(child.asset_id, child.handle, due))
                 for child in self.supervision.running() if child.inflight is None]
        if steps:
            self.cycles += 1
            await asyncio.gather(*steps)

    async def _drive(self, child: Child) -> None:
        """Free-running: step ``child`` again as soon as its last call answered."""
        handle = child.handle
        while not self.stopping.is_set() and child.state == "running" and child.handle is handle:
            if self.latency() > 0:
                return  # switched to paced by a reload: the cycle takes over
            late = await self._step(child, self._capital.get(child.asset_id), burst=self.burst_size())
            if late is not None:
                await asyncio.wait({late})
            if child.handle is handle and child.last_error == "actor died":
                await asyncio.sleep(0.05)  # the watch task restarts it

    # ------------------------------------------------------------------ one call

    async def _step(self, child: Child, capital: Decimal | None, burst: int = 1,
                    tick: float | None = None, paced: bool = False) -> "asyncio.Future[Any] | None":
        """Dispatch one call (``burst`` > 1: up to that many bars, ``AssetActor.steps``) in
        a slot and count its answer. ``tick``: the paced cycle's start (``perf_counter``);
        ``paced``: its bars count towards the pace. Returns the call's future when it timed
        out (still running; counted when it ends), else ``None``."""
        handle = child.handle
        async with self._slots or contextlib.nullcontext():
            if self.stopping.is_set() or child.state != "running" or child.handle is not handle or handle is None:
                return None
            if burst > 1 and not paced and self.latency() > 0:
                # Switched to paced while this driver waited for a slot: its call would hold
                # the slot (up to the call budget) ahead of the first paced cycle.
                return None
            arg = None if capital is None else str(capital)
            if arg is not None and arg != child.sent_capital:
                child.sent_capital = arg
            else:
                arg = None  # no argument to serialise: the usual case
            sent = time.perf_counter()
            call = handle.steps(burst, self.settings.call_budget_ms, arg) if burst > 1 else handle.step(arg)
            future = asyncio.ensure_future(call)
            child.inflight = future
            done, _ = await asyncio.wait({future}, timeout=self.timeout_s)
        if not done:
            if paced:
                self._pace.stepped(child.asset_id, burst)  # not asked for again meanwhile
            await self.stats.failed(child, "timeout", f"step took longer than step_timeout_s={self.timeout_s:g}")
            future.add_done_callback(
                lambda f: asyncio.ensure_future(self._settle(child, handle, f, sent, burst > 1, tick)))
            return future
        bars = await self._settle(child, handle, future, sent, burst > 1, tick)
        if paced:
            self._pace.stepped(child.asset_id, bars)
        return None

    async def _settle(self, child: Child, handle: Any, future: "asyncio.Future[Any]", sent: float,
                      burst: bool = False, tick: float | None = None) -> int:
        """Count one call's answer (or failure); the bars it stepped."""
        if child.inflight is future:
            child.inflight = None
        if future.cancelled():
            return 0
        now = time.perf_counter()
        took_ms = (now - sent) * 1000.0
        if tick is not None:
            self.stats.tick_latencies.append((now - tick) * 1000.0)
        exc = future.exception()
        if exc is not None:
            (self.stats.call_latencies if burst else self.stats.latencies).append(took_ms)
            if isinstance(exc, ChildDied):
                if child.handle is handle and child.state != "errored":
                    # The watch task restarts it. (Once it gave up, the reason it gave stays.)
                    child.last_error = "actor died"
                return 0
            logger.warning("portfolio %s asset %s: step call failed: %s", self.portfolio_id, child.asset_id, exc)
            await self.stats.failed(child, "error", self.supervision.reason(exc))
            return 0
        summary = future.result()
        if burst:
            self.stats.call_latencies.append(took_ms)
        else:
            # A bar in a call of its own: counted as a one-bar burst, its latency the round
            # trip as seen from here.
            one = BurstSummary()
            one.add({**summary, "took_ms": took_ms})
            summary = one.as_dict()
        last = summary.get("last")
        if last is not None:
            child.last_step = self.public_step(last)
        if summary.get("finished") and child.handle is handle:
            child.state = "finished"
        await self.stats.count(child, summary)
        return int(summary.get("bars", 0))

    def public_step(self, result: dict[str, Any]) -> dict[str, Any]:
        """A step result as the engine status and ``POST /api/trading/execute`` show it:
        its ``reason`` cleaned (a failed step's reason is an exception's text)."""
        reason = result.get("reason")
        if not isinstance(reason, str):
            return result
        clean = self.supervision.public(reason)
        return result if clean == reason else {**result, "reason": clean}

    async def step_now(self, asset_id: int) -> dict[str, Any]:
        """One step of one asset now (``POST /api/trading/execute``), answered once its
        results are recorded (the caller may read its orders next)."""
        child = self.supervision.children.get(asset_id)
        if child is None or child.handle is None or child.state != "running":
            raise DomainError(f"asset {asset_id} is not running in portfolio {self.portfolio_id}")
        allocation = self.allocation().get(asset_id)
        try:
            result = await asyncio.wait_for(child.handle.step(None if allocation is None else str(allocation), True),
                                            self.timeout_s)
        except ChildDied:
            raise TemporaryError(f"asset {asset_id}: its actor is restarting") from None
        return self.public_step(result)


__all__ = ["Heartbeat"]
