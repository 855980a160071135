"""``AssetActor`` (named ``asset:{id}``): runs one active asset's pipeline steps.

A thin host around engine objects: the pipeline plugin (the step logic), the strategy
plugin, the asset's market data, and ports to the broker actor and the persistence actor.

Order records: the intent is committed before the broker sees the order; the broker's
answer is written behind (``StoreJournal``): it rides with the asset's next intent or
leaves unawaited at the end of the step call, so an order step waits for two round trips
(intent, broker), not three. ``stop`` and every state rebuild wait for those writes
first; a crash with some in flight is covered by the reconciliation below.

Where the strategy runs: inside this actor by default. A hold decision, which is most
steps, then costs no actor hop at all: one step is the supervisor's call plus, with a
bar-driven broker, one ``advance`` call to the broker actor; orders add the persistence and
broker round trips they need. A ``StrategyActor`` (``strategy_actors: true`` in the
config) adds one hop per decision but lets a heavy strategy sit on its own CPU/GPU.

On every (re)start the actor rebuilds its state from the database (open positions,
pending intents) and reconciles them with the broker by client order id *before* its first
decision (``start``). The supervisor, not Ray, restarts this actor (``max_restarts=0``),
so it can count restarts, back off and give up. When the broker actor restarts (its
accounts are in memory), the supervisor calls ``reattach_broker``: the asset hands the new
broker its journal from the database (``actors.broker_journal``) and rebuilds its state
again, keeping its place in the data.

Each step's result carries the asset's open positions and equity (allocated capital +
realized P&L + open P&L at the bar's close); the supervisor sums them into the
per-portfolio gauges. Counters (steps, decisions, orders) are counted by the supervisor
from the results, once per statistics flush, not here per step.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from decimal import Decimal
from typing import Any

from actors.metrics import engine_metrics, tags
from actors.ports import ActorBrokerPort, InlineStrategyPort, PredictionActorPort, StoreJournal
from actors.remote import hot_path
from actors.runtime_settings import RuntimeSettings
from actors.store_proxy import StoreProxy
from engine.data.asset_source import data_key, load_asset_data
from engine.data.market_data import MarketData, MarketSnapshot
from engine.errors import ConfigError, DomainError
from engine.pipeline.default_pipeline import StepOutcome, StepPorts
from engine.pipeline.ports import AssetState
from engine.plugins.base import PipelinePlugin

logger = logging.getLogger(__name__)


class AssetActor:
    """One asset's steps; see the module docstring."""

    RAY_OPTIONS: dict[str, Any] = {"num_cpus": 0, "max_restarts": 0, "max_concurrency": 64}

    def __init__(self, portfolio_id: int, asset_id: int, settings: RuntimeSettings) -> None:
        self.portfolio_id = portfolio_id
        self.asset_id = asset_id
        self.settings = RuntimeSettings.of(settings)
        self.store = StoreProxy.from_settings(self.settings)
        self._lock = asyncio.Lock()  # one step at a time; stop() waits for it
        self._started = False
        self._stopping = False
        self._forever = asyncio.Event()  # never set: watch() fails only when we die
        self._last: dict[str, Any] | None = None
        self._steps = 0
        self._reload = False
        self.state: AssetState | None = None
        self.data: MarketData | None = None
        self.index = 0
        self._shared_data: dict[str, Any] | None = None
        self._data_shared = False  # the data in use is the supervisor's shared parse

    # ------------------------------------------------------------------ lifecycle

    async def start(self, shared_data: dict[str, Any] | None = None) -> dict[str, Any]:
        """Load the asset, its data and plugins; rebuild state from the database;
        reconcile with the broker. Idempotent.

        ``shared_data``: ``{"key": data_key(...), "data": ObjectRef}`` of the asset's CSV,
        parsed once by the supervisor for every asset (and restart) that reads that file;
        used while the asset's data source still has that key."""
        if shared_data is not None:
            self._shared_data = shared_data
        async with self._lock:
            if not self._started:
                await self._build()
                self._started = True
            return self._info()

    async def _build(self, resume_index: int | None = None, finished: bool = False) -> None:
        """Load everything and rebuild the state from the database. ``resume_index``: the
        bar this (still running) actor is at, when it re-attaches to a restarted broker."""
        from actors.broker_journal import load_journal
        from engine.plugins.loader import create_plugin

        await self._settle_journal()  # the last journal's results, before the database is read
        record = await self.store.asset(self.asset_id)
        if record.portfolio_id != self.portfolio_id:
            raise DomainError(f"asset {self.asset_id} belongs to portfolio {record.portfolio_id}, not {self.portfolio_id}")
        self.record = record
        self.mode = self.settings.mode
        # Live mode starts from the asset's history file when it has one, else from nothing.
        has_file = bool((record.data_source or {}).get("path") or (record.data_source or {}).get("csv"))
        self.data = await self._market_data(record) if self.mode == "simulation" or has_file else None
        strategy = create_plugin("strategy", record.strategy_plugin, record.strategy_config)
        self.pipeline = create_plugin("pipeline", record.pipeline_plugin, record.pipeline_config)
        if not isinstance(self.pipeline, PipelinePlugin) or not hasattr(self.pipeline, "sync_with_broker"):
            raise ConfigError(f"asset {self.asset_id}: pipeline plugin {record.pipeline_plugin!r} cannot run in an asset actor")
        if self.settings.strategy_actors:
            from actors.strategy_actor import strategy_port

            decider = await strategy_port(record.strategy_plugin, record.strategy_config, self.settings)
        else:
            decider = InlineStrategyPort(strategy)
        broker = await ActorBrokerPort.open(record, self.data if self.mode == "simulation" else None, self.settings)
        predictions = PredictionActorPort.for_strategy(strategy, self.data, record, self.settings)
        self.ports = StepPorts(broker=broker, journal=StoreJournal(self.store, record), strategy=decider,
                               predictions=predictions)
        await self.store.audit_asset_started(self.portfolio_id, self.asset_id, os.getpid())
        self.state = await self.store.rebuild_state(record)
        self.state.realized_pnl = await self._realized_pnl()
        if not broker.attached_before:
            # A new account, or the broker actor restarted since this asset last attached:
            # hand it what the database knows (nothing to do on a fresh start).
            journal = await load_journal(
                self.store, self.asset_id, self.data if broker.bar_driven else None,
                cursor=None if resume_index is None else resume_index - 1, finished=finished)
            if journal:
                info = await broker.restore(journal)
                if info.get("missing"):
                    logger.error("asset %s: the restored broker account lacks open positions %s",
                                 self.asset_id, info["missing"])
        # Resume where the broker's account is: re-running the bar it last processed is
        # safe (same client order ids, idempotent advance), skipping one is not.
        self.index = max(broker.cursor, self.index, 0)  # a config reload never rewinds
        if broker.finished or finished:
            self.state.finished = True
        await self.pipeline.sync_with_broker(self.state, self.ports, None)  # reconcile first
        await self._settle_journal()  # what reconciling found is in the database before a step
        logger.info("asset %s (portfolio %s): started at bar %d with %d open positions, %d pending",
                    self.asset_id, self.portfolio_id, self.index, len(self.state.positions), len(self.state.pending))

    async def _market_data(self, record: Any) -> MarketData:
        """The supervisor's shared parse of this asset's CSV when it is still the file the
        record names (same path, size and modification time), else a parse of our own."""
        shared = self._shared_data
        self._data_shared = shared is not None and shared.get("key") == data_key(record, self.settings.engine_config())
        if self._data_shared:
            assert shared is not None
            data = await shared["data"]  # zero-copy: numpy arrays in the node's shared memory
            if data.symbol != record.symbol:
                import dataclasses

                data = dataclasses.replace(data, symbol=record.symbol)
            return data
        return load_asset_data(record, self.settings.engine_config())

    async def _realized_pnl(self) -> Decimal:
        """The P&L of every position this asset closed, from the database."""
        from persistence.paging import every_item_async

        closed = await every_item_async(
            lambda page: self.store.read("list_positions", asset_id=self.asset_id, is_open=False, page=page))
        return sum((p.realized_pnl for p in closed), Decimal("0"))

    async def reattach_broker(self) -> dict[str, Any]:
        """The broker actor restarted: restore this asset's account there from the database
        and rebuild the state, keeping the place in the data (after the step in flight)."""
        async with self._lock:
            if self._started and not self._stopping:
                assert self.state is not None
                finished = self.state.finished
                self._started = False
                await self._build(resume_index=self.index, finished=finished)
                self._started = True
            return self._info()

    async def stop(self) -> bool:
        """Finish the in-flight step (if any), wait for its results to be recorded, and
        refuse new steps."""
        self._stopping = True
        async with self._lock:
            await self._settle_journal()
            return True

    async def _settle_journal(self) -> None:
        """Every result write of the current journal answered (see ``StoreJournal``)."""
        ports = getattr(self, "ports", None)
        if ports is not None:
            await ports.journal.settle()

    async def reload(self) -> None:
        """The asset's config changed in the database: rebuild before the next step."""
        self._reload = True

    # ------------------------------------------------------------------ steps

    @hot_path
    async def step(self, allocated_capital: Decimal | str | None = None, settle: bool = False) -> dict[str, Any]:
        """One pipeline step at the next bar; returns the ``StepOutcome`` as a dict.

        ``settle``: return only once the step's results are in the database too (a step
        asked for through the API, whose caller may read its orders next); otherwise they
        leave unawaited (heartbeats: write-behind)."""
        async with self._lock:
            early = await self._prepare(allocated_capital)
            if early is not None:
                return early
            result = await self._step_once()
            if settle:
                await self.ports.journal.settle()
            else:
                self.ports.journal.flush()  # the step's results leave now; nobody waits for them
            return result

    @hot_path
    async def steps(self, max_bars: int, budget_ms: float,
                    allocated_capital: Decimal | str | None = None, settle: bool = False) -> dict[str, Any]:
        """Free-running simulation: up to ``max_bars`` steps in this one call.

        The bars are stepped one after another exactly as ``step`` would (same pipeline,
        same broker and persistence calls for orders), so only the supervisor's hop is
        shared: a hold bar costs no actor call. The call ends early after the bar that
        spends ``budget_ms``, at the end of the data, and when a stop or a config reload
        is asked for, so a stop never waits long for a burst. ``settle``: answer only once
        the bars' results are recorded; otherwise they leave unawaited (write-behind).

        Returns a summary (see ``BurstSummary``): the last bar's result, how many bars were
        stepped, each bar's duration, and the counts the supervisor's statistics need.
        """
        async with self._lock:
            early = await self._prepare(allocated_capital)
            if early is not None:
                return {"bars": 0, "last": early, "finished": bool(early.get("finished"))}
            summary = BurstSummary()
            deadline = time.perf_counter() + budget_ms / 1000.0
            for _ in range(max(1, int(max_bars))):
                result = await self._step_once()
                summary.add(result)
                if (result.get("finished") or self._stopping or self._reload
                        or time.perf_counter() >= deadline):
                    break
            if settle:
                await self.ports.journal.settle()
            else:
                self.ports.journal.flush()  # results not carried by an intent leave now, unawaited
            return summary.as_dict()

    async def _prepare(self, allocated_capital: Decimal | str | None) -> dict[str, Any] | None:
        """Before a call's first step (lock held): (re)build when needed and take the
        allocation; an answer when there is nothing to step."""
        if self._stopping:
            return {"asset_id": self.asset_id, "ok": True, "action": "none", "reason": "stopping"}
        ports = getattr(self, "ports", None)
        failure = ports.journal.failure if ports is not None else None
        if failure is not None and self._started:
            # A result write behind the steps failed: the state here may be ahead of the
            # database. Rebuild it from the database and reconcile with the broker, as a
            # restart would (the broker has every order by its client order id).
            logger.error("asset %s: resynchronising with the database: %s", self.asset_id, failure)
            from engine.public_text import public_text  # audit details are client-visible

            try:
                await self.store.audit_step_failure(self.portfolio_id, self.asset_id, "journal",
                                                    public_text(failure, data_dir=self.settings.data_dir))
            except Exception as exc:  # the rebuild matters more than its audit row
                logger.warning("asset %s: could not audit the resync: %s", self.asset_id, exc)
            self._reload = True
        if self._reload or not self._started:
            self._reload = False
            self._started = False
            await self._build()
            self._started = True
        assert self.state is not None
        if allocated_capital is not None:
            self.state.allocated_capital = Decimal(str(allocated_capital))
        if self.state.finished:
            return {"asset_id": self.asset_id, "ok": True, "action": "none", "reason": "finished", "finished": True}
        return None

    async def _step_once(self) -> dict[str, Any]:
        """One bar (lock held, state built): the step's result as a dict."""
        assert self.state is not None
        started = time.perf_counter()
        outcome, price = await self._one_step()
        result = outcome.as_dict()
        if self.mode == "simulation" and self.data is not None and self.index >= len(self.data):
            await self.pipeline.finish(self.state, self.ports)
            result["finished"] = True
        result["open_positions"] = len(self.state.positions)
        result["equity"] = str(self.state.equity(price))
        took = time.perf_counter() - started
        result["took_ms"] = took * 1000.0
        self._observe(took)
        self._last = result
        self._steps += 1
        return result

    async def _one_step(self) -> tuple[StepOutcome, float | None]:
        """One pipeline step; returns its outcome and the bar's close (for the equity)."""
        assert self.state is not None
        if self.mode == "simulation" and self.data is not None:
            snapshot = MarketSnapshot(self.data, self.index)
            outcome = await self.pipeline.run_step(self.state, snapshot, self.ports)
            self.index += 1  # a failed step is skipped, not retried (INT-04)
            return outcome, float(self.data.close[snapshot.index])
        # Live: the newest bar of the feed (the broker's prices) at wall-clock time.
        try:
            self.data = await self.ports.broker.live_data(self.data, self.record.symbol)
        except Exception as exc:  # no price this heartbeat: skipped and reported (INT-04)
            logger.warning("asset %s: no live price: %s", self.asset_id, exc)
            return StepOutcome(asset_id=self.asset_id, index=-1, bar_time=None, ok=False, action="none",
                               error_kind="broker", reason=f"{type(exc).__name__}: {exc}"[:500]), None
        snapshot = MarketSnapshot(self.data, len(self.data) - 1)
        return await self.pipeline.run_step(self.state, snapshot, self.ports), float(self.data.close[-1])

    def _observe(self, seconds: float) -> None:
        """The step latency histogram (observed here, where the steps run in parallel)."""
        metrics = engine_metrics()
        if metrics is not None:
            metrics.step_latency.observe(seconds * 1000.0, tags=tags(portfolio=self.portfolio_id))

    # ------------------------------------------------------------------ introspection

    async def watch(self) -> None:
        """Never returns: the supervisor awaits it to learn of this actor's death at once."""
        await self._forever.wait()

    async def ping(self) -> str:
        return "ok"

    async def pid(self) -> int:
        return os.getpid()

    async def info(self) -> dict[str, Any]:
        return self._info()

    def _info(self) -> dict[str, Any]:
        state = self.state
        return {
            "asset_id": self.asset_id,
            "portfolio_id": self.portfolio_id,
            "pid": os.getpid(),
            "index": self.index,
            "bars": len(self.data) if self.data is not None else 0,
            "data_shared": self._data_shared,
            "steps": self._steps,
            "open_positions": len(state.positions) if state else 0,
            "pending": len(state.pending) if state else 0,
            # Result writes not yet acknowledged (write-behind, see ``StoreJournal``).
            "unrecorded_writes": self.ports.journal.pending_writes if getattr(self, "ports", None) else 0,
            "finished": bool(state and state.finished),
            "last_step": self._last,
        }


class BurstSummary:
    """What one ``AssetActor.steps`` call did, in the shape the supervisor counts: plain
    counters and lists (cheap to ship), not one result dict per bar."""

    def __init__(self) -> None:
        self.bars = 0
        self.last: dict[str, Any] | None = None
        self.took_ms: list[float] = []  # every bar's step time
        self.order_took_ms: list[float] = []  # the bars that sent an order
        self.outcomes: dict[str, int] = {}  # "ok" or the error kind -> bars
        self.actions: dict[str, int] = {}  # decision -> bars
        self.orders: dict[str, int] = {}  # order status -> bars
        self.ok_actions: dict[str, int] = {}  # the same two counts, of the bars that succeeded
        self.ok_orders: dict[str, int] = {}
        self.reasons: dict[str, str] = {}  # error kind -> the last reason of that kind

    def add(self, result: dict[str, Any]) -> None:
        self.bars += 1
        self.last = result
        took = float(result.get("took_ms", 0.0))
        self.took_ms.append(took)
        if result.get("client_order_id"):
            self.order_took_ms.append(took)
        ok = bool(result.get("ok", True))
        outcome = "ok" if ok else str(result.get("error_kind"))
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        action = str(result.get("action", "none"))
        self.actions[action] = self.actions.get(action, 0) + 1
        if ok:
            self.ok_actions[action] = self.ok_actions.get(action, 0) + 1
        if result.get("order_status"):
            status = str(result["order_status"])
            self.orders[status] = self.orders.get(status, 0) + 1
            if ok:
                self.ok_orders[status] = self.ok_orders.get(status, 0) + 1
        if not ok:
            # One reason per kind: a strategy that raises on every bar would otherwise ship
            # the same reason once per bar.
            self.reasons[outcome] = str(result.get("reason"))

    def as_dict(self) -> dict[str, Any]:
        return {"bars": self.bars, "last": self.last, "finished": bool(self.last and self.last.get("finished")),
                "took_ms": self.took_ms, "order_took_ms": self.order_took_ms, "outcomes": self.outcomes,
                "actions": self.actions, "orders": self.orders, "ok_actions": self.ok_actions,
                "ok_orders": self.ok_orders, "reasons": self.reasons}
