"""The default per-asset pipeline step (seed §1.1 / §3, made crash-safe).

One step for one asset at one bar:

1. bar-driven brokers advance to the bar (queued fills, stop-loss / take-profit) and what
   happened is recorded;
2. anything still ``pending`` (an intent recorded before a crash or a failed broker call)
   is reconciled with the broker by client order id *before* a new decision;
3. predictions (when the strategy needs them) -> ``decide()``;
4. an open/close decision becomes an ``OrderIntent`` with a deterministic client order id,
   recorded as pending, then sent to the broker, then the broker's answer is recorded.

Failures are classified (strategy / prediction / broker / journal) into the returned
``StepOutcome`` instead of raised, so the host can isolate the asset (INT-04). The step is
pure engine code: the host supplies the ports (see ``engine.pipeline.ports``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from engine.data.market_data import MarketSnapshot
from engine.errors import DomainError, OrderRejected, PredictionError
from engine.pipeline.ports import (
    AssetState,
    BrokerPort,
    DecisionPort,
    JournalPort,
    OrderIntent,
    PredictionPort,
)
from engine.plugins.base import PipelinePlugin
from engine.types import Action, Decision, OrderResult, OrderStatus, PositionView, Side, to_decimal

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StepPorts:
    """The collaborators of one asset's step."""

    broker: BrokerPort
    journal: JournalPort
    strategy: DecisionPort
    predictions: PredictionPort | None = None


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What one step did, JSON-able through ``as_dict`` (statistics, API, status)."""

    asset_id: Any
    index: int
    bar_time: datetime | None
    ok: bool
    action: str = "hold"  # open | close | hold | none (no decision was made)
    reason: str | None = None
    error_kind: str | None = None  # strategy | prediction | broker | journal | data
    client_order_id: str | None = None
    order_status: str | None = None
    events: int = 0  # broker-initiated results recorded (fills, stops, targets)
    duration_ms: float = 0.0
    order: dict[str, Any] | None = field(default=None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "asset_id": self.asset_id,
            "index": self.index,
            "bar_time": self.bar_time.isoformat() if self.bar_time else None,
            "ok": self.ok,
            "action": self.action,
            "reason": self.reason,
            "error_kind": self.error_kind,
            "client_order_id": self.client_order_id,
            "order_status": self.order_status,
            "events": self.events,
            "duration_ms": round(self.duration_ms, 3),
            "order": self.order,
        }


# The reason recorded on a pending intent that the broker had no record of when
# reconciliation asked after a restart: either the process died between recording the
# intent and sending it, or the broker actor restarted and its rebuilt account never saw
# it (an order it had queued to fill at a later bar is lost with its memory). Such a
# client order id is refused by the broker from then on (and never replayed).
RECONCILE_CANCEL_REASON = "cancelled by reconciliation: the broker had no record of it after a restart"

# What databases written before 2026-12-04 hold for the same case ("not received" was
# wrong for an order the dead broker had queued); ``is_reconcile_cancel`` knows both.
LEGACY_RECONCILE_CANCEL_REASONS = frozenset({"not received by the broker before a restart"})


def is_reconcile_cancel(reason: str | None) -> bool:
    """Whether an order's cancel reason says reconciliation cancelled it (see above)."""
    text = reason or ""
    return text == RECONCILE_CANCEL_REASON or text in LEGACY_RECONCILE_CANCEL_REASONS


def client_order_id(asset_id: Any, bar_time_ns: int, what: str) -> str:
    """Deterministic client order id ``{asset}-{bar time ns}-{what}``.

    ``what`` names the order itself, not its position in the step: ``c{position}`` for a
    close, ``o{n}`` for the n-th open at this bar. A step replayed after a crash may make
    fewer decisions than the first run (e.g. only the open of a reversal whose close went
    through), and must still give each order the id it had the first time, so the broker
    and the store recognise it instead of confusing it with another order."""
    return f"{asset_id}-{bar_time_ns}-{what}"


def result_summary(result: OrderResult) -> dict[str, Any]:
    """An ``OrderResult`` as JSON-able data (Decimals as strings)."""
    return result.model_dump(mode="json", exclude_none=True)


class DefaultPipeline(PipelinePlugin):
    """The seed's per-asset pipeline: data -> predictions -> decide -> execute -> record."""

    plugin_params = {
        "enforce_max_positions": True,  # refuse opens beyond the asset's max_positions
        "max_decisions": 4,  # orders per step at most (a reversal is close + open)
    }
    plugin_debug_vars = ["enforce_max_positions"]

    async def run_step(  # type: ignore[override]
        self, state: AssetState, snapshot: MarketSnapshot, ports: StepPorts
    ) -> StepOutcome:
        """Run one step of ``state``'s asset at ``snapshot.index``; never raises for
        strategy, prediction or broker failures (they come back in the outcome)."""
        started = time.perf_counter()
        index = snapshot.index
        bar_time = snapshot.timestamp
        state.last_bar_time = bar_time

        def done(**kwargs: Any) -> StepOutcome:
            kwargs.setdefault("ok", True)
            return StepOutcome(
                asset_id=state.asset_id,
                index=index,
                bar_time=bar_time,
                duration_ms=(time.perf_counter() - started) * 1000.0,
                **kwargs,
            )

        # 1-2: broker-side events, then reconcile anything pending before deciding.
        try:
            events = await self.sync_with_broker(state, ports, index)
        except Exception as exc:  # isolate: a broker outage skips this asset's step
            logger.warning("asset %s: broker sync failed at bar %s: %s", state.asset_id, bar_time, exc)
            return done(ok=False, action="none", error_kind=_error_kind(exc, "broker"), reason=_reason(exc))

        # 3: predictions and the decision.
        try:
            if ports.strategy.needs_predictions and ports.predictions is not None:
                predictions = await ports.predictions.predictions_at(snapshot)
                snapshot = MarketSnapshot(snapshot.data, snapshot.index, predictions)
        except Exception as exc:
            logger.warning("asset %s: predictions failed at bar %s: %s", state.asset_id, bar_time, exc)
            return done(ok=False, action="none", events=events, error_kind="prediction", reason=_reason(exc))

        # Like ``engine.backtest.stepwise.step_bar``: ask again after every accepted order
        # (a reversal is a close, then an open with the position gone) until the strategy
        # holds, an order fails, or ``max_decisions`` orders were sent on this bar.
        outcome: StepOutcome | None = None
        opens = 0
        for _ in range(int(self.params.get("max_decisions", 4))):
            try:
                decision = await ports.strategy.decide(state.context(), snapshot)
                if not isinstance(decision, Decision):
                    decision = Decision.model_validate(decision)
            except Exception as exc:
                logger.warning("asset %s: strategy failed at bar %s: %s", state.asset_id, bar_time, exc)
                kind = "prediction" if isinstance(exc, PredictionError) else "strategy"
                return done(ok=False, action="none", events=events, error_kind=kind, reason=_reason(exc))
            if decision.action is Action.HOLD:
                return outcome or done(action="hold", events=events, reason=decision.parameters.get("reason"))
            # 4: intent -> pending record -> broker -> record.
            try:
                intent = self.make_intent(state, decision, snapshot, opens)
            except DomainError as exc:
                return outcome or done(action=str(decision.action), events=events, reason=str(exc))
            if intent is None:
                return outcome or done(action="hold", events=events, reason="max positions reached")
            opens += intent.action is Action.OPEN
            outcome = await self._execute(state, intent, ports, done, events, snapshot)
            if not outcome.ok or outcome.order_status in ("rejected", "cancelled"):
                break
        assert outcome is not None
        return outcome

    async def _execute(self, state, intent, ports, done, events, snapshot) -> StepOutcome:  # type: ignore[no-untyped-def]
        action = str(intent.action)
        try:
            await ports.journal.record_intent(intent)
        except Exception as exc:
            # Nothing reached the broker: safe to decide again on the next step.
            logger.error("asset %s: could not record intent %s: %s", state.asset_id, intent.client_order_id, exc)
            return done(ok=False, action=action, events=events, error_kind="journal",
                        client_order_id=intent.client_order_id, reason=_reason(exc))
        state.pending[intent.client_order_id] = intent
        try:
            result = await ports.broker.execute_order(action, intent.broker_parameters())
        except OrderRejected as exc:
            result = OrderResult(success=False, client_order_id=intent.client_order_id,
                                 status=OrderStatus.REJECTED, reason=str(exc))
        except Exception as exc:
            # Ambiguous (timeout, broker down): the intent stays pending and is reconciled
            # by client order id before the next decision; never blindly resent.
            logger.warning("asset %s: broker failed on %s: %s", state.asset_id, intent.client_order_id, exc)
            return done(ok=False, action=action, events=events, error_kind=_error_kind(exc, "broker"),
                        client_order_id=intent.client_order_id, order_status="pending", reason=_reason(exc))
        try:
            await self.apply_result(state, ports.journal, intent, result, snapshot.price)
        except Exception as exc:
            logger.error("asset %s: could not record result of %s: %s", state.asset_id, intent.client_order_id, exc)
            return done(ok=False, action=action, events=events, error_kind="journal",
                        client_order_id=intent.client_order_id, reason=_reason(exc))
        return done(
            ok=True, action=action, events=events, client_order_id=intent.client_order_id,
            order_status=str(result.status), reason=result.reason, order=result_summary(result),
        )

    async def sync_with_broker(self, state: AssetState, ports: StepPorts, index: int | None) -> int:
        """Record broker-side events up to bar ``index`` and reconcile pending intents
        with the broker; ``index=None`` (after a (re)start) also asks the broker which of
        the positions the database holds open it has closed meanwhile. Returns how many
        results were recorded."""
        recorded = 0
        if index is not None:
            for result in await ports.broker.advance(index):
                await self.apply_event(state, ports.journal, result)
                recorded += 1
        recorded += await self.reconcile(state, ports, positions=index is None)
        return recorded

    async def reconcile(self, state: AssetState, ports: StepPorts, positions: bool = True) -> int:
        """Resolve pending intents by client order id (and, with ``positions``, the
        positions the broker closed while nobody was listening)."""
        recorded = 0
        for cid, intent in list(state.pending.items()):
            result = await ports.broker.find_order(cid)
            if result is None:
                # The broker never saw it (crash between record and send): the broker port
                # guarantees a later arrival of this id is refused, so cancelling is safe.
                result = OrderResult(success=False, client_order_id=cid, status=OrderStatus.CANCELLED,
                                     reason=RECONCILE_CANCEL_REASON)
            elif result.status is OrderStatus.PENDING:
                # Accepted, fills on a later bar: the strategy must see it as held.
                await self.apply_result(state, ports.journal, intent, result)
                continue
            await self.apply_result(state, ports.journal, intent, result)
            recorded += 1
        if positions and state.positions:
            for result in await ports.broker.closed_positions(sorted(state.positions)):
                await self.apply_event(state, ports.journal, result)
                recorded += 1
        return recorded

    async def finish(self, state: AssetState, ports: StepPorts) -> int:
        """End of a simulation: the broker closes what is open; record it."""
        recorded = 0
        for result in await ports.broker.finish():
            await self.apply_event(state, ports.journal, result)
            recorded += 1
        state.finished = True
        return recorded

    def make_intent(
        self, state: AssetState, decision: Decision, snapshot: MarketSnapshot, opens: int = 0
    ) -> OrderIntent | None:
        """Turn an open/close decision into an intent (``opens``: opens already made at this
        bar); ``None`` when the position limit refuses it. Raises ``DomainError`` for a
        decision that makes no sense."""
        params: Mapping[str, Any] = decision.parameters
        bar_time = snapshot.timestamp
        bar_ns = int(snapshot.data.timestamps[snapshot.index])
        cid = client_order_id(state.asset_id, bar_ns, f"o{opens}")
        if decision.action is Action.OPEN:
            held = sum(1 for pid in state.positions if pid not in state.closing)
            if self.params.get("enforce_max_positions", True) and held >= state.max_positions:
                return None
            try:
                side = Side(str(params["side"]).lower())
                quantity = to_decimal(params["quantity"])
            except (KeyError, ValueError) as exc:
                raise DomainError(f"open decision needs side and quantity, got {dict(params)}") from exc
            if quantity is None or quantity <= 0:
                raise DomainError(f"open decision quantity must be > 0, got {params.get('quantity')}")
            known = {"side", "quantity", "price", "sl", "tp"}
            return OrderIntent(
                client_order_id=cid, portfolio_id=state.portfolio_id, asset_id=state.asset_id,
                symbol=state.symbol, action=Action.OPEN, side=side, quantity=quantity, bar_time=bar_time,
                price=_opt_decimal(params.get("price")), sl=_opt_decimal(params.get("sl")),
                tp=_opt_decimal(params.get("tp")),
                extra={k: v for k, v in params.items() if k not in known},
            )
        position_id = str(params.get("position_id", ""))
        position = state.positions.get(position_id)
        if position is None or position_id in state.closing:
            raise DomainError(f"close decision names position {position_id!r}, which is not open")
        cid = client_order_id(state.asset_id, bar_ns, f"c{position_id}")
        return OrderIntent(
            client_order_id=cid, portfolio_id=state.portfolio_id, asset_id=state.asset_id,
            symbol=state.symbol, action=Action.CLOSE, side=position.side.opposite,
            quantity=position.quantity, bar_time=bar_time, position_id=position_id,
            extra={k: v for k, v in params.items() if k != "position_id"},
        )

    async def apply_result(
        self,
        state: AssetState,
        journal: JournalPort,
        intent: OrderIntent,
        result: OrderResult,
        price: float | None = None,
    ) -> None:
        """Record the broker's answer to ``intent`` and update the asset's state.

        A queued open (``pending``, fills at the next bar's open) is shown to the strategy
        as a position priced at ``price``, exactly as the simulation broker's
        ``positions_for_strategy`` does in the stepwise backtest."""
        await journal.record_result(intent, result)
        if result.status is not OrderStatus.PENDING:
            state.pending.pop(intent.client_order_id, None)
        if intent.action is Action.OPEN and result.status in (OrderStatus.CANCELLED, OrderStatus.REJECTED):
            state.positions.pop(result.position_id or intent.client_order_id, None)
        if not result.success:
            return
        if intent.action is Action.OPEN and result.status is OrderStatus.PENDING:
            pid = result.position_id or intent.client_order_id
            if pid not in state.positions:
                state.positions[pid] = PositionView(
                    position_id=pid, symbol=intent.symbol, side=intent.side, quantity=intent.quantity,
                    entry_price=to_decimal(price) if price is not None else (intent.price or Decimal("0")),
                    current_price=to_decimal(price) if price is not None else None,
                )
        elif intent.action is Action.OPEN and result.status in (OrderStatus.OPEN, OrderStatus.FILLED):
            self._open_position(state, result, intent)
        elif intent.action is Action.CLOSE and result.status is OrderStatus.FILLED:
            if state.positions.pop(intent.position_id or "", None) is not None:
                state.realized_pnl += result.pnl or Decimal("0")
            state.closing.discard(intent.position_id or "")
        elif intent.action is Action.CLOSE and result.status is OrderStatus.PENDING:
            # Queued until the next bar's open: the strategy no longer sees it.
            state.closing.add(intent.position_id or "")

    async def apply_event(self, state: AssetState, journal: JournalPort, result: OrderResult) -> None:
        """Record a broker-initiated result: a queued open that filled, or a close."""
        intent = state.pending.get(result.client_order_id or "")
        if intent is not None:
            await self.apply_result(state, journal, intent, result)
            return
        await journal.record_result(None, result)
        if result.close_price is not None and result.position_id:
            if state.positions.pop(result.position_id, None) is not None:
                state.realized_pnl += result.pnl or Decimal("0")
            state.closing.discard(result.position_id)

    @staticmethod
    def _open_position(state: AssetState, result: OrderResult, intent: OrderIntent) -> None:
        position_id = result.position_id or result.order_id or intent.client_order_id
        state.positions[position_id] = PositionView(
            position_id=position_id,
            symbol=intent.symbol,
            side=result.side or intent.side,
            quantity=result.quantity or intent.quantity,
            entry_price=result.entry_price if result.entry_price is not None else Decimal("0"),
            sl=intent.sl,
            tp=intent.tp,
            opened_at=result.timestamp or intent.bar_time,
        )


def _opt_decimal(value: Any) -> Decimal | None:
    return None if value is None else to_decimal(value)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]


def _error_kind(exc: BaseException, default: str) -> str:
    return "timeout" if isinstance(exc, TimeoutError) else default


__all__: Sequence[str] = ("RECONCILE_CANCEL_REASON", "is_reconcile_cancel", "DefaultPipeline", "StepOutcome", "StepPorts", "client_order_id")
