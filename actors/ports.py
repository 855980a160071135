"""The asset actor's implementations of the pipeline ports (``engine.pipeline.ports``):
broker calls go to the broker actor, records to the persistence actor (via
``StoreProxy``), decisions to the in-process strategy (or a strategy actor), predictions
to the prediction actor (API mode) or an in-process CSV provider. Every actor call has a
timeout; an unavailable actor becomes a ``TemporaryError`` the step reports."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from actors import naming
from actors.broker_actor import OperatorRules, account_key
from actors.runtime_settings import RuntimeSettings
from engine.data.market_data import MarketData, MarketSnapshot
from engine.errors import TemporaryError
from engine.pipeline.ledger import (
    CancelOrder,
    Fill,
    LedgerChange,
    MarkFilled,
    MarkOpened,
    OpenPosition,
    RejectOrder,
    closes_position,
    result_changes,
)
from engine.pipeline.ports import AssetState, OrderIntent
from engine.types import Action, AssetContext, Decision, OrderResult, PositionView, Side

logger = logging.getLogger(__name__)


async def _call(ref: Any, timeout_s: float, what: str) -> Any:
    from ray.exceptions import RayActorError

    try:
        return await asyncio.wait_for(ref, timeout_s)
    except asyncio.TimeoutError as exc:
        raise TemporaryError(f"{what}: no answer within {timeout_s:g} s") from exc
    except RayActorError as exc:
        raise TemporaryError(f"{what}: actor unavailable ({type(exc).__name__})") from exc


# ---------------------------------------------------------------------- broker


class ActorBrokerPort:
    """``BrokerPort`` over the broker actor, for one asset's account."""

    def __init__(self, handle: Any, key: str, timeout_s: float, info: Mapping[str, Any]) -> None:
        self._handle = handle
        self.key = key
        self._timeout_s = timeout_s
        self.cursor = int(info.get("cursor", -1))
        self.finished = bool(info.get("finished", False))
        # False after a broker actor restart (or on first use): the account may need a restore.
        self.attached_before = bool(info.get("attached_before", True))
        self.bar_driven = bool(info.get("bar_driven", False))
        # Lazy: the broker's bars produce no results, so the bar travels with the next order.
        self._lazy = bool(info.get("lazy_advance", False))
        self._bar: int | None = None

    @classmethod
    async def open(cls, record: Any, data: MarketData | None, settings: RuntimeSettings) -> "ActorBrokerPort":
        """Open (or find) the asset's account in the broker actor."""
        import ray

        from engine.plugins.loader import load_plugin

        broker_cls = load_plugin("broker", record.broker_plugin)
        bar_driven = callable(getattr(broker_cls, "on_bar", None)) and data is not None
        config = dict(record.broker_config or {})
        if "symbol" in broker_cls.plugin_params and "symbol" not in config:
            config["symbol"] = record.symbol
        # The credentials travel encrypted (decrypted in the broker actor only), with the
        # operator's rules for this asset: only this side knows the asset's portfolio.
        secrets = dict(getattr(record, "broker_secrets", None) or {})
        rules = OperatorRules.for_asset(record.portfolio_id, settings)
        key = account_key(record.broker_plugin, config, record.id, bar_driven, secrets=secrets, rules=rules)
        handle = ray.get_actor(naming.BROKER, namespace=settings.namespace)
        timeout = settings.step_timeout_s
        info = await _call(handle.open_account.remote(key, record.broker_plugin, config, data if bar_driven else None,
                                                      record.id, secrets, rules), timeout, "broker.open_account")
        return cls(handle, key, timeout, info)

    async def restore(self, journal: Any) -> Mapping[str, Any]:
        """Rebuild this account in a restarted broker actor from the database's journal
        (``engine.pipeline.replay.AccountJournal``); returns what the broker rebuilt."""
        info = await _call(self._handle.restore_account.remote(self.key, journal), max(self._timeout_s, 60.0),
                           "broker.restore_account")
        self.cursor = int(info.get("cursor", self.cursor))
        self.finished = bool(info.get("finished", self.finished))
        self.attached_before = True
        return info

    async def advance(self, index: int) -> Sequence[OrderResult]:
        if self._lazy:
            self._bar = index
            return []
        return await _call(self._handle.advance.remote(self.key, index), self._timeout_s, "broker.advance")

    async def execute_order(self, action: str, parameters: Mapping[str, Any]) -> OrderResult:
        return await _call(self._handle.execute_order.remote(self.key, action, dict(parameters), self._bar),
                           self._timeout_s, "broker.execute_order")

    async def find_order(self, client_order_id: str) -> OrderResult | None:
        return await _call(self._handle.find_order.remote(self.key, client_order_id), self._timeout_s, "broker.find_order")

    async def finish(self) -> Sequence[OrderResult]:
        return await _call(self._handle.finish.remote(self.key), self._timeout_s, "broker.finish")

    async def closed_positions(self, position_ids: Sequence[str]) -> Sequence[OrderResult]:
        return await _call(self._handle.closed_positions.remote(self.key, list(position_ids)),
                           self._timeout_s, "broker.closed_positions")

    async def live_data(self, data: MarketData | None, symbol: str, window: int = 500) -> MarketData:
        """Live mode: the recent window plus one bar at the broker's current price, stamped
        with the wall clock (UTC)."""
        import time as _time

        import numpy as np

        price = await _call(self._handle.quote.remote(self.key, symbol), self._timeout_s, "broker.quote")
        now_ns = _time.time_ns()
        p = float(price)
        if data is None or len(data) == 0:
            arrays = [np.array([now_ns], dtype=np.int64)] + [np.array([p]) for _ in range(4)]
        else:
            if now_ns <= int(data.timestamps[-1]):
                now_ns = int(data.timestamps[-1]) + 1
            arrays = [np.append(data.timestamps[-window + 1:], now_ns)] + [
                np.append(col[-window + 1:], p) for col in (data.open, data.high, data.low, data.close)]
        return MarketData(symbol=symbol, timestamps=arrays[0], open=arrays[1], high=arrays[2], low=arrays[3],
                          close=arrays[4], source="live")


# ---------------------------------------------------------------------- strategy / predictions


class InlineStrategyPort:
    """``DecisionPort`` over a strategy plugin in this process (no hop)."""

    def __init__(self, strategy: Any) -> None:
        self._strategy = strategy
        self.needs_predictions = bool(getattr(strategy, "needs_predictions", False))

    async def decide(self, asset: AssetContext, snapshot: MarketSnapshot) -> Decision:
        return self._strategy.decide(asset, snapshot)


class PredictionActorPort:
    """``PredictionPort``: the prediction actor (API mode) or an in-process CSV provider."""

    def __init__(self, symbol: str, provider: Any = None, handle: Any = None, timeout_s: float = 10.0) -> None:
        self._symbol = symbol
        self._provider = provider
        self._handle = handle
        self._timeout_s = timeout_s

    @classmethod
    def for_strategy(cls, strategy: Any, data: MarketData | None, record: Any,
                     settings: RuntimeSettings) -> "PredictionActorPort | None":
        if not getattr(strategy, "needs_predictions", False):
            return None
        source = str((record.data_source or {}).get("predictions", "api"))
        if source == "csv" and data is not None:
            from engine.prediction.csv_provider import CsvPredictionProvider

            # The whole file's predictions at once (row i = made at bar i), exactly what the
            # single-CSV backtest hands the strategy: the same rows, hence the same trades.
            return cls(record.symbol, provider=CsvPredictionProvider(data).precompute(data))
        import ray

        handle = ray.get_actor(naming.PREDICTION, namespace=settings.namespace)
        return cls(record.symbol, handle=handle, timeout_s=settings.prediction_timeout_s + 1.0)

    async def predictions_at(self, snapshot: MarketSnapshot) -> Any:
        if self._provider is not None:
            return self._provider  # PrecomputedPredictions: the strategy reads row snapshot.index
        return await _call(self._handle.get_predictions.remote(self._symbol, snapshot.timestamp),
                           self._timeout_s, "prediction.get_predictions")


# ---------------------------------------------------------------------- journal


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    """Extra order parameters as JSON values (Decimals as strings; floats keep their repr)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        out[str(key)] = value if value is None or isinstance(value, (bool, int, float, str)) else str(value)
    return out


def state_from_records(record: Any, positions: Sequence[Any], pending: Sequence[Any]) -> AssetState:
    """Rebuild an ``AssetState`` from the database's open positions and pending orders."""
    state = AssetState(portfolio_id=record.portfolio_id, asset_id=record.id, symbol=record.symbol,
                       allocated_capital=record.allocated_capital, max_positions=record.max_positions)
    by_db_id: dict[int, str] = {}
    for pos in positions:
        pid = pos.broker_position_id or f"db{pos.id}"
        by_db_id[pos.id] = pid
        state.positions[pid] = PositionView(
            position_id=pid, symbol=pos.symbol, side=Side(str(pos.side.value if hasattr(pos.side, "value") else pos.side)),
            quantity=pos.quantity, entry_price=pos.entry_price, current_price=pos.current_price,
            commission=pos.commission, swap=pos.swap, sl=pos.sl, tp=pos.tp, opened_at=pos.opened_at,
        )
    for order in pending:
        details = dict(order.details or {})
        state.pending[order.client_order_id] = OrderIntent(
            client_order_id=order.client_order_id, portfolio_id=order.portfolio_id, asset_id=order.asset_id,
            symbol=order.symbol, action=Action(order.action),
            side=Side(str(order.side.value if hasattr(order.side, "value") else order.side)),
            quantity=order.quantity, bar_time=order.created_at, price=order.price, sl=order.sl, tp=order.tp,
            position_id=by_db_id.get(order.position_id) if order.position_id is not None else details.get("broker_position_id"),
        )
    return state


class StoreJournal:
    """``JournalPort`` over the persistence actor; every write carries a deterministic
    request id, so a resend is a no-op.

    Intents are durable before ``record_intent`` returns: the broker never sees an order
    the database does not know. Results (the broker's answers, and its own events: fills
    of queued orders, stops, targets) are written behind: ``record_result`` only queues
    their writes. They leave with the asset's next intent (one call, in order, each write
    in its own savepoint), or when the host calls ``flush`` at the end of its step call,
    which sends them without waiting for the answer. That takes one persistence round
    trip out of every order step, and one call out of a reversal (the close's result
    rides with the open's intent).

    Nothing is lost when the process dies with results queued or in flight: their intent
    is still ``pending`` in the database and their positions still open, and every
    (re)start reconciles pending intents and open positions with the broker by client
    order id before it decides anything. The host calls ``settle`` before it reads the
    database (state rebuilds) and before it stops. A queued write that failed sets
    ``failure``: the host then rebuilds its state from the database and reconciles, as
    after a restart.
    """

    def __init__(self, store: Any, record: Any) -> None:
        self._store = store
        self._portfolio_id = record.portfolio_id
        self._asset_id = record.id
        # broker position id -> (database position id, opening commission)
        self._positions: dict[str, tuple[int, Decimal]] = {}
        self._loaded = False
        self._queued: list[Any] = []  # result writes not sent yet, in order
        self._in_flight: set[asyncio.Future[None]] = set()  # flushed, answer not yet in
        self.failure: str | None = None  # why a queued write failed (the host resyncs)

    async def _position_ids(self) -> dict[str, tuple[int, Decimal]]:
        if not self._loaded:
            for pos in await self._store.read("open_positions", self._asset_id):
                self._positions[pos.broker_position_id or f"db{pos.id}"] = (pos.id, pos.commission)
            self._loaded = True
        return self._positions

    @staticmethod
    def _ctx(request_id: str) -> Any:
        from persistence.records import AuditContext

        return AuditContext.system(request_id=request_id[:128])

    @property
    def pending_writes(self) -> int:
        """Result writes queued here or sent without their answer yet (status, tests)."""
        return len(self._queued) + len(self._in_flight)

    # ------------------------------------------------------------------ write-behind

    def flush(self) -> None:
        """Send the queued result writes now, without waiting for the answer."""
        if not self._queued:
            return
        batch, self._queued = self._queued, []
        task = asyncio.ensure_future(self._send(batch))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def settle(self) -> None:
        """Wait until every queued and flushed result write is answered (a failed one
        sets ``failure``)."""
        await self._drain()
        if self._queued:
            batch, self._queued = self._queued, []
            await self._send(batch)

    async def _drain(self) -> None:
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight))  # _send never raises

    async def _send(self, batch: list[Any]) -> None:
        try:
            outcomes = await self._store.write_outcomes(batch)
        except Exception as exc:  # no answer even after the client's resends
            self._failed(f"{len(batch)} result writes got no answer: {type(exc).__name__}: {exc}")
            return
        self._take(batch, outcomes)

    def _take(self, writes: Sequence[Any], outcomes: Sequence[Any]) -> None:
        """Learn the database ids of opened positions; note a failed write."""
        for write, outcome in zip(writes, outcomes, strict=True):
            if not outcome.ok:
                self._failed(f"{outcome.op} failed: {outcome.error}")
            elif write.op == "open_position":
                record = outcome.result
                self._positions[record.broker_position_id or f"db{record.id}"] = (record.id, record.commission)

    def _failed(self, reason: str) -> None:
        logger.error("asset %s: a result write failed, its state will be rebuilt from the database: %s",
                     self._asset_id, reason)
        if self.failure is None:
            self.failure = reason[:1000]

    # ------------------------------------------------------------------ the port

    async def record_intent(self, intent: OrderIntent) -> None:
        """Record ``intent`` as pending, with any queued results ahead of it in the same
        call; returns once the intent is committed (raises when it is not)."""
        from actors.persistence_actor import raise_for_outcome
        from persistence.records import OrderIntent as IntentSpec
        from persistence.store.writes import WriteRequest

        position_db_id = None
        if intent.action is Action.CLOSE and intent.position_id is not None:
            positions = await self._position_ids()
            if intent.position_id not in positions and self.pending_writes:
                await self.settle()  # the position's opening result is still on its way
            known = positions.get(intent.position_id)
            position_db_id = known[0] if known else None
        spec = IntentSpec(
            client_order_id=intent.client_order_id, portfolio_id=self._portfolio_id, asset_id=self._asset_id,
            side=intent.side.value, quantity=intent.quantity, action=str(intent.action), position_id=position_db_id,
            price=intent.price if intent.price and intent.price > 0 else None,
            sl=intent.sl if intent.sl and intent.sl > 0 else None, tp=intent.tp if intent.tp and intent.tp > 0 else None,
            # ``params``: the decision's extra broker parameters (e.g. sl_distance), so a
            # restarted broker actor can replay this order exactly (engine.pipeline.replay).
            details={"bar_time": intent.bar_time.isoformat(), "broker_position_id": intent.position_id,
                     "params": _jsonable(intent.extra)},
        )
        write = WriteRequest(op="record_order_intent", ctx=self._ctx(f"intent:{intent.client_order_id}"), args=(spec,))
        await self._drain()  # earlier flushes first: writes reach the actor in order
        batch, self._queued = [*self._queued, write], []
        try:
            outcomes = await self._store.write_outcomes(batch)
        except Exception:
            # No answer: the results go again with the next write (their ids make a
            # resend harmless); the intent's step reports the failure.
            self._queued = batch[:-1] + self._queued
            raise
        self._take(batch[:-1], outcomes[:-1])
        raise_for_outcome(outcomes[-1])

    async def record_result(self, intent: OrderIntent | None, result: OrderResult) -> None:
        """Queue the writes of the broker's answer (see the class docstring); what they
        are is ``engine.pipeline.ledger.result_changes``."""
        positions = await self._position_ids()
        if closes_position(result) and result.position_id not in positions and self.pending_writes:
            await self.settle()  # the position's opening result is still on its way
        outcome = result_changes(intent, result, positions, portfolio_id=self._portfolio_id, asset_id=self._asset_id)
        if outcome.unknown_close is not None:
            logger.warning("asset %s: broker closed position %s the database does not hold open",
                           self._asset_id, outcome.unknown_close)
        if outcome.closed is not None:
            positions.pop(outcome.closed, None)
        self._queued.extend(self._write(change) for change in outcome.changes)

    def _write(self, change: LedgerChange) -> Any:
        """The persistence actor's write request for one ledger change."""
        from persistence.records import OrderFill, PositionClose, PositionOpen
        from persistence.store.writes import WriteRequest

        def fill(f: Fill) -> OrderFill:
            return OrderFill(broker_order_id=f.broker_order_id, filled_quantity=f.filled_quantity,
                             filled_price=f.filled_price, commission=f.commission, filled_at=f.filled_at)

        args: tuple[Any, ...]
        if isinstance(change, (RejectOrder, CancelOrder)):
            args = (change.client_order_id, change.reason)
        elif isinstance(change, (MarkOpened, MarkFilled)):
            args = (change.client_order_id, fill(change.fill))
        elif isinstance(change, OpenPosition):
            args = (PositionOpen(
                portfolio_id=change.portfolio_id, asset_id=change.asset_id,
                opening_client_order_id=change.opening_client_order_id,
                broker_position_id=change.broker_position_id, side=change.side, quantity=change.quantity,
                entry_price=change.entry_price, commission=change.commission, opened_at=change.opened_at),)
        else:
            args = (change.position_db_id, PositionClose(
                close_price=change.close_price, realized_pnl=change.realized_pnl,
                closing_client_order_id=change.closing_client_order_id, commission=change.commission,
                swap=change.swap, closed_at=change.closed_at, close_reason=change.close_reason))
        return WriteRequest(op=change.op, ctx=self._ctx(change.request_id), args=args)
