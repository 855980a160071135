"""``PortfolioSupervisor`` (named ``portfolio:{id}``): one per active portfolio.

A tree of actors: the supervisor creates its asset actors, owns their lifecycle and
drives the heartbeat.

Paced (``latency`` > 0 seconds, the portfolio's own or ``global_latency``): every cycle it
runs the portfolio plugin's ``allocate(portfolio, assets)`` and steps every running asset
once, concurrently, waiting for all of them (each bounded by ``step_timeout_s``).
As fast as possible (``latency`` 0, simulations): every asset has its own driver that
steps it again as soon as its last step answered, so a slow asset never holds up the
others; the allocation is refreshed on a short tick.

Either way at most ``max_steps_in_flight`` steps run at once (a FIFO of slots, so assets
take turns fairly): a hundred steps dispatched at once to a hundred processes on a
two-core machine only thrash. A step's latency is measured from its dispatch.

Isolation (INT-04): a step that failed or timed out is counted in the statistics and
audited with its reason (once per asset and reason, not per step, so a broken strategy
does not flood the audit log); the other assets go on. A timed-out step is left to
finish; its asset gets no new step until it has (no pile-up).

Statistics and metrics are batched: step results are counted in memory and written (one
statistics row, one increment per metric and tag set, the equity / open-positions gauges)
at most once a second.

Supervision: every asset actor has a never-returning ``watch()`` call in flight; when its
process dies that call fails at once and the asset is restarted by ``RestartTracker``'s
rules (backoff, give up past ``max_asset_restarts`` within ``restart_window_s``: the asset
is marked errored, audited, and left stopped). Every restart is audited
(``asset.restarted``, with the supervisor's run id, the restart's number and wall-clock
time); a supervisor that Ray restarted rebuilds each asset's count and window from those
rows, so crashing the supervisor too does not reset them. The supervisor also watches the broker
actor: when it restarts (Ray brings the process back, not its in-memory accounts) every
asset re-attaches and restores its account from the database. The supervisor itself runs
with ``max_restarts=-1``: Ray re-runs ``__init__``, which starts the loop again and
rebuilds the children (the old ones died with their owner).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import ray
from ray.exceptions import RayActorError

from actors import naming
from actors.asset_actor import AssetActor, BurstSummary, data_key, load_asset_data
from actors.errors import public_reason_of
from actors.metrics import engine_metrics, tags
from actors.pace import PaceKeeper
from actors.pausing import ProcessPause, node_id
from actors.priority import run_as_singleton
from actors.remote import make_remote
from actors.restart_policy import RestartPolicy, RestartTracker
from actors.store_proxy import StoreProxy
from engine.errors import DomainError, LTSError
from engine.public_text import public_text

logger = logging.getLogger(__name__)

_START_TIMEOUT_S = 120.0
_PARALLEL_STARTS = 8
_FREE_TICK_S = 0.5  # free-running: allocation refresh / statistics flush / reload check
_STATS_EVERY_S = 1.0
_REATTACH_ATTEMPTS = 5
RESTART_AUDIT_ACTION = "asset.restarted"


def check_steps_in_flight(value: Any) -> int | None:
    """Validate the ``max_steps_in_flight`` config value (``None``, or an int >= 0)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        from engine.errors import ConfigError

        raise ConfigError(f"max_steps_in_flight: must be null or an integer >= 0 (0 = no limit), got {value!r}")
    return value


def default_steps_in_flight(cluster_cpus: float, cores_per_node: int, nodes: int) -> int:
    """The window when ``max_steps_in_flight`` is unset: twice the cores that run the
    steps, plus one, at least 4.

    The cores are the cluster's CPU resource capped at this machine's core count times the
    number of nodes: the resource can be larger than the hardware (``lts run`` and the
    tests declare two more CPUs than the machine has so that backtest tasks find a slot
    beside the actors; ``ray start --num-cpus`` can declare anything). A window sized on
    the declared CPUs only queues more order steps at the persistence and broker actors.
    Measured with 100 asset actors free-running on 2 cores (``bench/bench_actors.py``):
    window 8 (twice the declared 4 CPUs): order steps p50 129-198 ms, all-steps p99
    186-314 ms; window 4: p50 67-93 ms, p99 93-165 ms, at the same steps per second.
    Since assets waiting for a slot are paused (``actors.pausing``) the cores are no
    longer full at twice their number: window 4 left 13% of the 2 cores idle (529
    steps/s, p99 63 ms), window 5 made 643 steps/s with p99 65 ms.
    """
    cores = min(int(cluster_cpus), max(1, cores_per_node) * max(1, nodes))
    return max(4, 2 * cores + 1)


def steps_in_flight(settings: dict[str, Any]) -> int:
    """``max_steps_in_flight`` (0 = no limit); unset: see ``default_steps_in_flight``."""
    value = check_steps_in_flight(settings.get("max_steps_in_flight"))
    if value is None:
        try:
            cpus = float(ray.cluster_resources().get("CPU", 2))
            nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
        except Exception:  # not connected (unit use): a small machine's value
            cpus, nodes = 2.0, 1
        return default_steps_in_flight(cpus, os.cpu_count() or 2, nodes)
    return value


class _Child:
    """A supervised asset actor and its bookkeeping."""

    def __init__(self, asset_id: int, policy: RestartPolicy, tracker: RestartTracker | None = None) -> None:
        self.asset_id = asset_id
        self.handle: Any = None
        self.state = "starting"  # starting | running | restarting | finished | errored | stopped
        self.tracker = tracker or RestartTracker(policy)
        self.watch_task: asyncio.Task[None] | None = None
        self.driver: asyncio.Task[None] | None = None  # free-running step loop
        self.inflight: asyncio.Future[Any] | None = None  # the step in flight, if any
        self.timed_out = False
        self.sent_capital: str | None = None  # the allocation the actor last got
        self.last_step: dict[str, Any] | None = None
        self.last_error: str | None = None
        self.audited_kind: str | None = None
        self.failures = 0
        self.pid: int | None = None
        # Stops / continues the actor's process between its calls (``actors.pausing``);
        # None when it may not be paused (another node, config, no pidfds).
        self.pause: ProcessPause | None = None
        self.calls = 0  # calls other than steps in flight to it (it is not paused meanwhile)

    @property
    def restarts(self) -> int:
        return self.tracker.restarts


class PortfolioSupervisor:
    """See the module docstring."""

    RAY_OPTIONS: dict[str, Any] = {"num_cpus": 0, "max_restarts": -1, "max_task_retries": -1, "max_concurrency": 64}

    def __init__(self, portfolio_id: int, settings: dict[str, Any], run: dict[str, Any] | None = None) -> None:
        """``run``: ``{"id": str, "started_at": epoch seconds}``, made once by whoever
        activates the portfolio (``EngineRuntime.activate_portfolio``). Ray passes the same
        value again when it re-runs this constructor after a crash, which is how a
        restarted supervisor finds the restarts its predecessor recorded (without it,
        each constructor run starts a new history)."""
        run_as_singleton()  # its heartbeat paces every asset of the portfolio
        self.portfolio_id = portfolio_id
        self.settings = dict(settings)
        run = dict(run or {})
        self.run_id = str(run.get("id") or uuid.uuid4().hex)
        self.run_started_at = float(run.get("started_at") or time.time())
        # Asset id -> (restarts, wall-clock times of those in the window), read from the
        # audit log on the first load after a restart of this supervisor; then empty.
        self._restart_history: dict[int, tuple[int, list[float]]] = {}
        self._background: set[asyncio.Future[None]] = set()
        self.namespace = str(self.settings.get("ray_namespace", "lts"))
        self.store = StoreProxy.from_settings(self.settings)
        # Error texts shown to clients name files relative to it (``engine.public_text``).
        self.data_dir = self.settings.get("data_dir")
        self.policy = RestartPolicy.from_settings(self.settings)
        self.timeout_s = float(self.settings.get("step_timeout_s", 10.0))
        self.window = steps_in_flight(self.settings)
        # Free-running simulations step several bars per call (see ``AssetActor.steps``).
        self.bars_per_call = max(1, int(self.settings.get("simulation_bars_per_call", 64)))
        self.call_budget_ms = float(self.settings.get("simulation_call_budget_ms", 100))
        # More running assets than step slots: stop the processes of assets between their
        # calls (see ``actors.pausing``); only those on this supervisor's node.
        self.pausing = bool(self.settings.get("pause_waiting_assets", True))
        # A paced simulation that falls behind its pace catches up (``actors.pace``).
        catch_up = bool(self.settings.get("paced_catch_up", True))
        self._pace = PaceKeeper(self._burst_size() if catch_up else 1)
        self.node_id = node_id()
        self.children: dict[int, _Child] = {}
        self.cycles = 0
        self.started_at = time.time()
        self.restarted = _was_restarted()
        self._stop = asyncio.Event()
        self._start_slots = asyncio.Semaphore(_PARALLEL_STARTS)
        self._step_slots: Any = asyncio.Semaphore(self.window) if self.window > 0 else None
        self._wake = asyncio.Event()
        self._reload = True
        self._stats: collections.Counter[str] = collections.Counter()
        self._metric_counts: collections.Counter[tuple[str, str]] = collections.Counter()
        # What this supervisor has handed to Ray metrics so far (``metrics()``: status, tests).
        self._emitted: collections.Counter[tuple[str, str]] = collections.Counter()
        self._gauges: dict[str, float] = {}
        # Round trip of each step as the supervisor sees it (ms), for status and benchmarks.
        self._latencies: collections.deque[float] = collections.deque(maxlen=100_000)
        self._order_latencies: collections.deque[float] = collections.deque(maxlen=100_000)  # steps that sent orders
        # Round trip of each multi-bar call (free-running simulations), as the supervisor sees it (ms).
        self._call_latencies: collections.deque[float] = collections.deque(maxlen=100_000)
        # Paced heartbeats: from the cycle's start to each step's answer (ms), so the wait for a
        # step slot counts too: how late after the tick each asset's decision was done.
        self._tick_latencies: collections.deque[float] = collections.deque(maxlen=100_000)
        self.steps_total = 0
        self.broker_restarts = 0
        self._stats_flushed = time.monotonic()
        self._portfolio: Any = None
        self._assets: list[Any] = []
        self._plugin: Any = None
        self._dumps: tuple[dict[str, Any], list[dict[str, Any]]] = ({}, [])
        self._capital: dict[int, Decimal] = {}
        # data_key -> ObjectRef of that CSV parsed once (simulation): every asset and every
        # restart reading the file shares it, zero-copy, instead of parsing its own.
        self._shared_data: dict[tuple[Any, ...], Any] = {}
        self._data_lock = asyncio.Lock()  # concurrent starts of assets on one file parse it once
        self._loop_task = asyncio.get_event_loop().create_task(self._run())
        self._broker_watch = asyncio.get_event_loop().create_task(self._watch_broker())
        if self.restarted:
            logger.warning("portfolio %s: supervisor restarted (pid %s); rebuilding its asset actors",
                           portfolio_id, os.getpid())

    # ------------------------------------------------------------------ control

    async def stop(self) -> dict[str, Any]:
        """Stop the heartbeat after the in-flight steps, stop the asset actors (each
        finishes its step), flush statistics. Idempotent."""
        self._stop.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._loop_task), self.timeout_s + 5)
        except (asyncio.TimeoutError, Exception):
            logger.warning("portfolio %s: heartbeat did not end in time", self.portfolio_id)
        self._broker_watch.cancel()
        drivers = [c.driver for c in self.children.values() if c.driver is not None]
        if drivers:
            await asyncio.wait(drivers, timeout=self.timeout_s + 5)
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
            with self._awake(child):
                await asyncio.wait_for(child.handle.reload.remote(), 5.0)
        self._reload = True

    async def step_asset(self, asset_id: int) -> dict[str, Any]:
        """One step of one asset now (``POST /api/trading/execute``)."""
        child = self.children.get(asset_id)
        if child is None or child.handle is None or child.state != "running":
            raise DomainError(f"asset {asset_id} is not running in portfolio {self.portfolio_id}")
        allocation = self._allocation().get(asset_id)
        with self._awake(child):
            # Settled: the caller (the API) may read the step's orders as soon as it answers.
            ref = child.handle.step.remote(None if allocation is None else str(allocation), True)
            return self._public_step(await asyncio.wait_for(ref, self.timeout_s))

    async def status(self) -> dict[str, Any]:
        return self._status()

    async def take_latencies(self) -> dict[str, Any]:
        """Step latencies (ms) since the last call (all steps, and those that sent an
        order), the round trips of multi-bar calls, and the step count (benchmarks).

        A step's latency is its round trip from dispatch when it is a call of its own (paced
        heartbeats; ``tick_latencies_ms`` then has each step's time from its cycle's start,
        the wait for a step slot included), and its time in the asset actor when several
        bars share a call (free-running simulations: ``call_latencies_ms`` then has the
        calls' round trips)."""
        values, orders, calls = list(self._latencies), list(self._order_latencies), list(self._call_latencies)
        ticks = list(self._tick_latencies)
        for deque in (self._latencies, self._order_latencies, self._call_latencies, self._tick_latencies):
            deque.clear()
        return {"latencies_ms": values, "order_latencies_ms": orders, "call_latencies_ms": calls,
                "tick_latencies_ms": ticks,
                "steps_total": self.steps_total, "cycles": self.cycles, "window": self.window,
                "bars_per_call": self._burst_size()}

    def _burst_size(self) -> int:
        """Bars per call of a free-running driver: 1 outside simulations (a live step is
        one look at the broker's price)."""
        return self.bars_per_call if str(self.settings.get("mode", "simulation")) == "simulation" else 1

    async def ping(self) -> str:
        return "ok"

    async def metrics(self) -> dict[str, Any]:
        """Every counter increment and the last gauge values this supervisor handed to Ray
        metrics (cumulative since it started): what the Prometheus endpoint should show."""
        return {"counters": {f"{name}:{label}": n for (name, label), n in self._emitted.items()},
                "gauges": dict(self._gauges)}

    # ------------------------------------------------------------------ heartbeat

    async def _run(self) -> None:
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                if self._reload:
                    await self._load()
                latency = self._latency()
                if latency <= 0:
                    self._capital = self._allocation()
                    self.cycles += 1
                    for child in self.children.values():
                        if child.state == "running" and (child.driver is None or child.driver.done()):
                            child.driver = asyncio.ensure_future(self._drive(child))
                    pause = _FREE_TICK_S
                else:
                    await self._cycle()
                    pause = latency - (time.monotonic() - started)
                await self._flush_stats()
                self._wake.clear()
                if pause > 0:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), pause)
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
        self._pace.reset()  # a reload starts the paced replay's clock again
        if self.restarted and self.cycles == 0 and not self.children:
            self._restart_history = await self._read_restart_history()
        self._portfolio = await self.store.portfolio(self.portfolio_id)
        self._assets = [a for a in await self.store.assets(self.portfolio_id) if a.is_active]
        self._plugin = create_plugin("portfolio", self._portfolio.portfolio_plugin, self._portfolio.portfolio_config)
        # Dumped once per load: the plugin gets plain dicts, every cycle.
        self._dumps = (self._portfolio.model_dump(), [a.model_dump() for a in self._assets])
        self._capital = self._allocation()  # before the first steps are dispatched
        keys = {data_key(a, self.settings) for a in self._assets}
        for key in [k for k in self._shared_data if k not in keys]:
            del self._shared_data[key]  # a file no asset reads any more (or one that changed)
        wanted = {a.id for a in self._assets if str(getattr(a.status, "value", a.status)) != "errored"}
        for asset_id in list(self.children):
            if asset_id not in wanted and self.children[asset_id].state != "errored":
                await self._stop_child(self.children.pop(asset_id))
        starts = [self._start_child(asset_id) for asset_id in wanted if asset_id not in self.children]
        if starts:
            await asyncio.gather(*starts)
        self._restart_history = {}  # used by the first start of each asset only

    def _latency(self) -> float:
        own = getattr(self._portfolio, "latency", None)
        return float(own if own is not None else self.settings.get("global_latency", 1.0))

    def _allocation(self) -> dict[int, Decimal]:
        try:
            return self._plugin.allocate(*self._dumps)
        except LTSError as exc:
            logger.error("portfolio %s: allocation failed: %s", self.portfolio_id, exc)
            return {}

    async def _cycle(self) -> None:
        """Paced: one step for every running asset that is not still busy, then wait for
        all of them (a step past ``step_timeout_s`` is recorded and left to finish). In a
        simulation, an asset behind the pace steps the bars it owes in that one call
        (``actors.pace``)."""
        allocation = self._allocation()
        tick = time.perf_counter()
        due = self._pace.ticks_due(time.monotonic(), self._latency())
        steps = [self._step(child, allocation.get(child.asset_id), tick=tick, paced=True,
                            burst=self._pace.bars_for(child.asset_id, child.handle, due))
                 for child in self.children.values() if child.state == "running" and child.inflight is None]
        if steps:
            self.cycles += 1
            await asyncio.gather(*steps)

    async def _drive(self, child: _Child) -> None:
        """Free-running: step ``child`` again as soon as its last step answered (paused
        in between while other assets wait for a slot, see ``_may_pause``)."""
        handle = child.handle
        try:
            while not self._stop.is_set() and child.state == "running" and child.handle is handle:
                if self._latency() > 0:
                    return  # switched to paced by a reload: the cycle takes over
                late = await self._step(child, self._capital.get(child.asset_id), burst=self._burst_size())
                if late is not None:
                    await asyncio.wait({late})
                if child.handle is handle and child.last_error == "actor died":
                    await asyncio.sleep(0.05)  # the watch task restarts it
        finally:
            if child.pause is not None and child.handle is handle:
                child.pause.resume()  # whatever ends the driver, the asset is not left stopped

    def _may_pause(self, child: _Child) -> bool:
        """Whether ``child`` is to be paused after its next call: other assets wait for
        a step slot too (more running assets than slots), so a waiting Ray worker would
        burn CPU the working ones need (``actors.pausing``)."""
        return (child.pause is not None and self._step_slots is not None
                and sum(1 for c in self.children.values() if c.state == "running") > self.window)

    def _pause_while_waiting(self, child: _Child, handle: Any) -> None:
        """Stop ``child``'s process until its next call (``_step`` continues it). Never
        while another call to it is in flight, nor once the portfolio stops or the
        asset finished, errored or was replaced."""
        if (child.pause is None or child.calls or child.inflight is not None or child.handle is not handle
                or child.state != "running" or self._stop.is_set()):
            return
        child.pause.pause()

    @contextlib.contextmanager
    def _awake(self, child: _Child) -> Any:
        """Around a call to ``child`` other than its steps: the asset is continued first
        and not paused until the call has answered."""
        child.calls += 1
        if child.pause is not None:
            child.pause.resume()
        try:
            yield
        finally:
            child.calls -= 1

    @staticmethod
    def _drop_pause(child: _Child) -> None:
        """The asset's process is going (restart, stop): continue it, forget it."""
        if child.pause is not None:
            child.pause.close()
            child.pause = None

    async def _step(self, child: _Child, capital: Decimal | None, burst: int = 1,
                    tick: float | None = None, paced: bool = False) -> asyncio.Future[Any] | None:
        """Dispatch one step (``burst`` > 1: a call of up to that many bars, see
        ``AssetActor.steps``) in a slot and handle its answer. ``tick``: the paced cycle's
        start (``perf_counter``); ``paced``: a paced cycle's call, whose bars are counted
        towards the pace. Returns the call's future when it timed out (still running;
        handled when it ends), else ``None``."""
        handle = child.handle
        async with self._step_slots or contextlib.nullcontext():
            if self._stop.is_set() or child.state != "running" or child.handle is not handle:
                return None
            if burst > 1 and not paced and self._latency() > 0:
                # The portfolio switched to a paced heartbeat while this free-running driver
                # waited for a slot: its call would hold the slot (up to the call budget)
                # ahead of the first paced cycle, a hundred drivers for seconds.
                return None
            arg = None if capital is None else str(capital)
            if child.pause is not None:
                child.pause.resume()  # (a syscall; the call below waits for nothing else)
            # An asset that is paused after the call first waits for its results to be
            # recorded (a paused process sends nothing).
            pausing = self._may_pause(child)
            sent = time.perf_counter()
            if arg is not None and arg != child.sent_capital:
                child.sent_capital = arg
            else:
                arg = None  # no argument to serialize: the usual case
            if burst > 1:
                ref = handle.steps.remote(burst, self.call_budget_ms, arg, pausing)
            elif pausing:
                ref = handle.step.remote(arg, True)
            else:
                ref = handle.step.remote() if arg is None else handle.step.remote(arg)
            future = asyncio.wrap_future(ref.future())
            child.inflight, child.timed_out = future, False
            done, _ = await asyncio.wait({future}, timeout=self.timeout_s)
        if not done:
            child.timed_out = True
            if paced:
                self._pace.stepped(child.asset_id, burst)  # not asked for again meanwhile
            await self._failed(child, "timeout", f"step took longer than step_timeout_s={self.timeout_s:g}")
            future.add_done_callback(
                lambda f: asyncio.ensure_future(self._settle(child, handle, f, sent, burst > 1, tick)))
            return future
        bars = await self._settle(child, handle, future, sent, burst > 1, tick)
        if paced:
            self._pace.stepped(child.asset_id, bars)
        if pausing:
            self._pause_while_waiting(child, handle)
        return None

    async def _settle(self, child: _Child, handle: Any, future: asyncio.Future[Any], sent: float,
                      burst: bool = False, tick: float | None = None) -> int:
        """Count one call's answer (or failure) into the statistics; the bars it stepped."""
        if child.inflight is future:
            child.inflight = None
        if future.cancelled():
            return 0
        now = time.perf_counter()
        took_ms = (now - sent) * 1000.0
        if tick is not None:
            self._tick_latencies.append((now - tick) * 1000.0)
        exc = future.exception()
        if exc is not None:
            (self._call_latencies if burst else self._latencies).append(took_ms)
            if isinstance(exc, RayActorError):
                if child.handle is handle and child.state != "errored":
                    # The watch task restarts it. (Once it gave up, the reason it gave stays:
                    # a step failing with the dead actor may settle after that.)
                    child.last_error = "actor died"
                return 0
            logger.warning("portfolio %s asset %s: step call failed: %s", self.portfolio_id, child.asset_id, exc)
            await self._failed(child, "error", self._reason(exc))
            return 0
        summary = future.result()
        if burst:
            self._call_latencies.append(took_ms)
        else:
            # A bar in a call of its own: counted like a one-bar burst, its latency the round
            # trip as seen from here.
            one = BurstSummary()
            one.add({**summary, "took_ms": took_ms})
            summary = one.as_dict()
        await self._count_steps(child, handle, summary)
        return int(summary.get("bars", 0))

    async def _count_steps(self, child: _Child, handle: Any, summary: dict[str, Any]) -> None:
        """Count a call's steps (``AssetActor.steps``' summary, or one step's) into the
        statistics and metrics, bar by bar."""
        bars = int(summary.get("bars", 0))
        last = summary.get("last")
        if last is not None:
            child.last_step = self._public_step(last)
        if summary.get("finished") and child.handle is handle:
            child.state = "finished"
        if not bars:
            return
        self.steps_total += bars
        self._latencies.extend(summary.get("took_ms", ()))
        self._order_latencies.extend(summary.get("order_took_ms", ()))
        outcomes: dict[str, int] = summary.get("outcomes", {})
        for outcome, n in outcomes.items():
            self._metric_counts["steps", outcome] += n
        for action, n in summary.get("actions", {}).items():
            self._metric_counts["decisions", action] += n
        for status, n in summary.get("orders", {}).items():
            self._metric_counts["orders", status] += n
        if outcomes.get("ok"):
            self._stats["steps_ok"] += outcomes["ok"]
            for action, n in summary.get("ok_actions", {}).items():
                self._stats[f"action_{action}"] += n
            for status, n in summary.get("ok_orders", {}).items():
                self._stats[f"orders_{status}"] += n
        for kind, reason in summary.get("reasons", {}).items():
            await self._failed(child, kind, reason, count=outcomes.get(kind, 1))
        if last is not None and last.get("ok", True):
            child.audited_kind = None  # the asset stepped cleanly again

    def _all_done(self) -> bool:
        return bool(self.children) and all(c.state in ("finished", "errored") for c in self.children.values())

    async def _failed(self, child: _Child, kind: str, reason: str, count: int = 1) -> None:
        """INT-04: count (``count`` steps that failed the same way), log and (once per
        reason) audit a failed step; never raise."""
        child.failures += count
        self._stats["steps_failed"] += count
        self._stats[f"failed_{kind}"] += count
        if kind in ("broker", "prediction"):
            self._metric_counts[f"{kind}_errors", "step"] += count
        logger.warning("portfolio %s asset %s: step failed (%s): %s", self.portfolio_id, child.asset_id, kind, reason)
        reason = self._public(reason)  # what the status, statistics and audit row show
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
        """Per-cycle statistics and metrics, aggregated, written at most once a second."""
        now = time.monotonic()
        if not force and now - self._stats_flushed < _STATS_EVERY_S:
            return
        self._stats_flushed = now
        self._flush_metrics()
        if not self._stats:
            return
        values = dict(self._stats)
        values["cycles"] = self.cycles
        values["restarts"] = sum(c.restarts for c in self.children.values())
        values["assets"] = {str(c.asset_id): {"state": c.state, "restarts": c.restarts, "failures": c.failures,
                                              "last_error": c.last_error} for c in self.children.values()}
        self._stats.clear()
        try:
            await self.store.record_cycle_statistics(self.portfolio_id, values)
        except Exception:
            logger.exception("portfolio %s: could not record statistics", self.portfolio_id)

    def _flush_metrics(self) -> None:
        """Counters since the last flush, and the portfolio's gauges (open positions and
        equity: the sum of its assets' last reported values)."""
        metrics = engine_metrics()
        if metrics is None:
            return
        portfolio = str(self.portfolio_id)
        counts, self._metric_counts = self._metric_counts, collections.Counter()
        self._emitted.update(counts)
        for (name, label), n in counts.items():
            if name == "steps":
                metrics.steps.inc(n, tags=tags(portfolio=portfolio, outcome=label))
            elif name == "decisions":
                metrics.decisions.inc(n, tags=tags(portfolio=portfolio, action=label))
            elif name == "orders":
                metrics.orders.inc(n, tags=tags(portfolio=portfolio, status=label))
            elif name == "broker_errors":
                metrics.broker_errors.inc(n, tags=tags(broker=label))
            elif name == "prediction_errors":
                metrics.prediction_errors.inc(n, tags=tags(source=label))
        reported = [c.last_step for c in self.children.values() if c.last_step and "equity" in c.last_step]
        if reported:
            open_positions = sum(int(step.get("open_positions", 0)) for step in reported)
            try:
                equity = sum((Decimal(str(step["equity"])) for step in reported), Decimal("0"))
            except InvalidOperation:
                equity = None
            metrics.open_positions.set(open_positions, tags=tags(portfolio=portfolio))
            self._gauges["open_positions"] = float(open_positions)
            if equity is not None:
                metrics.equity.set(float(equity), tags=tags(portfolio=portfolio))
                self._gauges["equity"] = float(equity)

    # ------------------------------------------------------------------ children

    async def _start_child(self, asset_id: int, child: _Child | None = None) -> None:
        if child is None:
            child = self.children.get(asset_id)
        if child is None:
            child = self.children[asset_id] = _Child(asset_id, self.policy, self._resumed_tracker(asset_id))
        child.state = "starting"
        child.sent_capital = None  # a new actor starts from the database's allocation
        self._drop_pause(child)
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
                shared = await self._data_for(asset_id)
                info = await asyncio.wait_for(child.handle.start.remote(shared), _START_TIMEOUT_S)
            child.pid = info.get("pid")
            if self.pausing:
                child.pause = ProcessPause.open(child.pid, info.get("node_id"), self.node_id)
            child.last_error = None if child.last_error == "actor died" else child.last_error
            child.state = "finished" if info.get("finished") else "running"
            if child.state == "running" and self._latency() <= 0 and not self._stop.is_set():
                child.driver = asyncio.ensure_future(self._drive(child))
        except RayActorError:
            pass  # died while starting: the watch task handles it
        except asyncio.TimeoutError:
            # Slow, not broken: count it as a restart (with backoff and the restart limit).
            logger.warning("portfolio %s: asset %s did not start within %.0f s", self.portfolio_id, asset_id,
                           _START_TIMEOUT_S)
            asyncio.ensure_future(self._restart(child))
        except Exception as exc:
            # Bad config or data: restarting cannot help, so it is errored at once. The
            # client sees the domain message; the remote traceback goes to the log.
            logger.error("portfolio %s: asset %s failed to start: %s", self.portfolio_id, asset_id, exc)
            await self._mark_errored(child, "start failed: " + self._reason(exc))
            ray.kill(child.handle, no_restart=True)

    async def _data_for(self, asset_id: int) -> dict[str, Any] | None:
        """``{"key", "data"}`` of the asset's CSV parsed once here (simulation mode), or
        None: then the asset parses it itself (and reports a bad file as it always did)."""
        if str(self.settings.get("mode", "simulation")) != "simulation":
            return None
        record = next((a for a in self._assets if a.id == asset_id), None)
        key = None if record is None else data_key(record, self.settings)
        if key is None:
            return None
        async with self._data_lock:
            ref = self._shared_data.get(key)
            if ref is None:
                try:
                    data = await asyncio.to_thread(load_asset_data, record, self.settings)
                except Exception as exc:  # the asset's own load names the problem
                    logger.debug("portfolio %s: asset %s data not shared: %s", self.portfolio_id, asset_id, exc)
                    return None
                ref = self._shared_data[key] = ray.put(data)
        return {"key": key, "data": ref}

    async def _watch(self, child: _Child, handle: Any) -> None:
        try:
            await handle.watch.remote()
        except RayActorError:
            pass
        except asyncio.CancelledError:
            return
        if self._stop.is_set() or child.handle is not handle or child.state in ("errored", "stopped", "restarting"):
            return  # ("restarting": a start that timed out is already being restarted)
        await self._restart(child)

    async def _restart(self, child: _Child) -> None:
        decision = child.tracker.on_death(time.monotonic())
        self._drop_pause(child)
        try:
            # Frees the actor's name at once (a dead actor's name stays taken while its
            # owner still holds the handle).
            ray.kill(child.handle, no_restart=True)
        except Exception:
            pass
        if not decision.restart:
            await self._mark_errored(child, str(decision.reason))
            return
        child.state = "restarting"
        child.inflight = None
        logger.warning("portfolio %s: asset %s died; restart #%d in %.1f s",
                       self.portfolio_id, child.asset_id, child.restarts, decision.delay_s)
        # Recorded while the backoff runs (the restart does not wait on the database); the
        # set holds the task until it is done (the loop keeps only a weak reference).
        record = asyncio.ensure_future(self._record_restart(child.asset_id, child.restarts, decision.delay_s))
        self._background.add(record)
        record.add_done_callback(self._background.discard)
        metrics = engine_metrics()
        if metrics is not None:
            metrics.restarts.inc(tags=tags(portfolio=self.portfolio_id))
        await asyncio.sleep(decision.delay_s)
        if not self._stop.is_set():
            await self._start_child(child.asset_id, child)

    async def _record_restart(self, asset_id: int, number: int, delay_s: float) -> None:
        """Audit restart ``number`` of ``asset_id`` in this run (``asset.restarted``): the
        record a restarted supervisor rebuilds the count and the window from. The request
        id makes a resend a no-op."""
        from persistence.records import AuditContext
        from persistence.store.writes import WriteRequest

        ctx = AuditContext.system(request_id=f"asset.restarted:{self.run_id}:{asset_id}:{number}")
        details = {"portfolio_id": self.portfolio_id, "run": self.run_id, "restart": number, "at": time.time(),
                   "delay_s": round(delay_s, 3)}
        try:
            await self.store.write([WriteRequest(op="audit", ctx=ctx, args=(RESTART_AUDIT_ACTION,),
                                                 kwargs={"target_type": "asset", "target_id": asset_id,
                                                         "details": details})])
        except Exception:
            logger.exception("portfolio %s: could not record restart #%d of asset %s", self.portfolio_id, number,
                             asset_id)

    async def _read_restart_history(self) -> dict[int, tuple[int, list[float]]]:
        """This run's asset restarts, from the audit log: asset id -> (restarts so far,
        wall-clock times of those still inside the restart window)."""
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
            return {}
        history = {asset_id: (max(restarts), [at for at in restarts.values() if at >= horizon])
                   for asset_id, restarts in seen.items()}
        if history:
            logger.warning("portfolio %s: restart counts carried over from before this supervisor's restart: %s",
                           self.portfolio_id, {a: n for a, (n, _) in history.items()})
        return history

    def _resumed_tracker(self, asset_id: int) -> RestartTracker | None:
        """The asset's tracker as the previous supervisor left it (``None``: a new one)."""
        count, times = self._restart_history.get(asset_id, (0, []))
        if not count:
            return None
        now = time.time()
        return RestartTracker.resume(self.policy, count, [now - at for at in times], time.monotonic())

    async def _mark_errored(self, child: _Child, reason: str) -> None:
        reason = self._public(reason)  # the asset's status_reason, its audit row and the status
        child.state = "errored"
        self._drop_pause(child)
        child.last_error = reason
        self._stats["assets_errored"] += 1  # the next statistics row shows it, with the reason
        logger.error("portfolio %s: asset %s errored: %s", self.portfolio_id, child.asset_id, reason)
        try:
            await self.store.mark_asset_errored(child.asset_id, reason)
        except Exception:
            logger.exception("portfolio %s: could not mark asset %s errored", self.portfolio_id, child.asset_id)

    async def _stop_child(self, child: _Child) -> None:
        if child.watch_task is not None:
            child.watch_task.cancel()
        self._drop_pause(child)
        if child.handle is not None and child.state not in ("errored",):
            try:
                await asyncio.wait_for(child.handle.stop.remote(), self.timeout_s)
            except Exception:
                pass
            ray.kill(child.handle, no_restart=True)
        if child.state != "errored":
            child.state = "stopped"

    async def _stop_children(self) -> None:
        await asyncio.gather(*(self._stop_child(c) for c in self.children.values()), return_exceptions=True)

    # ------------------------------------------------------------------ the broker actor

    async def _watch_broker(self) -> None:
        """Keep a never-returning ``watch`` call on the broker actor; when it fails the
        broker died (Ray restarts it without its accounts): every asset re-attaches."""
        while not self._stop.is_set():
            try:
                handle = await asyncio.to_thread(ray.get_actor, naming.BROKER, namespace=self.namespace)
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
                               self.portfolio_id, len(self.children))
                await asyncio.gather(*(self._reattach(c) for c in list(self.children.values())))
            except Exception:
                logger.exception("portfolio %s: watching the broker actor failed", self.portfolio_id)
                await asyncio.sleep(1.0)

    async def _reattach(self, child: _Child) -> None:
        """Have one asset restore its broker account (retried while the broker restarts)."""
        for attempt in range(_REATTACH_ATTEMPTS):
            handle = child.handle
            if self._stop.is_set() or handle is None or child.state not in ("running", "finished"):
                return  # a (re)starting asset restores its account in its own start
            try:
                with self._awake(child):
                    await asyncio.wait_for(handle.reattach_broker.remote(), 3 * self.timeout_s)
                return
            except RayActorError:
                return  # the asset died meanwhile: its restart restores the account
            except Exception as exc:
                logger.warning("portfolio %s asset %s: re-attach to the broker failed (attempt %d): %s",
                               self.portfolio_id, child.asset_id, attempt + 1, exc)
                await asyncio.sleep(min(0.5 * 2 ** attempt, 5.0))
        logger.error("portfolio %s asset %s: could not re-attach to the restarted broker", self.portfolio_id,
                     child.asset_id)

    # ------------------------------------------------------------------ what clients see

    def _public(self, text: str) -> str:
        """An error text as clients may see it (one line, no server internals)."""
        return public_text(text, data_dir=self.data_dir)

    def _reason(self, exc: BaseException) -> str:
        """The one-line reason for an exception from an asset actor call."""
        return public_reason_of(exc, data_dir=self.data_dir, what="asset actor")

    def _public_step(self, result: dict[str, Any]) -> dict[str, Any]:
        """A step result as the engine status and ``POST /api/trading/execute`` show it:
        its ``reason`` cleaned (a failed step's reason is an exception's text)."""
        reason = result.get("reason")
        if not isinstance(reason, str):
            return result
        clean = self._public(reason)
        return result if clean == reason else {**result, "reason": clean}

    # ------------------------------------------------------------------ status

    def _status(self) -> dict[str, Any]:
        return {
            "portfolio_id": self.portfolio_id,
            "running": not self._stop.is_set(),
            "pid": os.getpid(),
            "restarted": self.restarted,
            "cycles": self.cycles,
            "steps_total": self.steps_total,
            "steps_in_flight_limit": self.window,
            "broker_restarts_seen": self.broker_restarts,
            "uptime_s": round(time.time() - self.started_at, 1),
            "assets": [
                {
                    "asset_id": c.asset_id,
                    "state": c.state,
                    "pid": c.pid,
                    "paused": bool(c.pause is not None and c.pause.paused),
                    "restarts": c.restarts,
                    "failures": c.failures,
                    "last_error": c.last_error,
                    "last_step": c.last_step,
                    "last_step_at": (c.last_step or {}).get("bar_time"),
                }
                for c in self.children.values()
            ],
        }


def _was_restarted() -> bool:
    """Whether Ray re-ran this actor's constructor after its process died."""
    try:
        return bool(ray.get_runtime_context().was_current_actor_reconstructed)
    except Exception:
        return False


__all__ = ["RESTART_AUDIT_ACTION", "PortfolioSupervisor", "check_steps_in_flight", "default_steps_in_flight",
           "steps_in_flight"]
