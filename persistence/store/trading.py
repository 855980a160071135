"""Order intents and their outcomes, positions opened, re-priced and closed (seed §3)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from engine.errors import DomainError, NotFound
from engine.types import to_decimal, utcnow
from persistence.enums import ORDER_TRANSITIONS, OrderStatus
from persistence.models import Asset, Order, Position
from persistence.records import (
    AuditContext,
    OrderFill,
    OrderIntent,
    OrderRecord,
    PositionClose,
    PositionOpen,
    PositionRecord,
)
from persistence.store._lookup import KEYS, keyed
from persistence.store._replay import target_record
from persistence.store._unit import Change, UnitOfWork, coerce, pin, write_op

# Built once (hot path of every trade).
_ORDER_BY_CLIENT_ID = select(Order).where(Order.client_order_id == bindparam("coid"))
_POSITION_BY_OPENING_ORDER = select(Position).where(Position.opening_order_id == bindparam("order_id"))
_KNOWN_CLIENT_IDS = select(Order.client_order_id)

_order_replay = target_record(Order, OrderRecord)
_position_replay = target_record(Position, PositionRecord)

# Fields that must match when an intent is recorded again under the same client order id.
_INTENT_IDENTITY = ("portfolio_id", "asset_id", "side", "quantity", "action")


def _money(value: Any, name: str) -> Decimal:
    try:
        number = to_decimal(value)
    except ValueError as exc:
        raise DomainError(f"{name}: {exc}") from None
    if number is None or not number.is_finite():
        raise DomainError(f"{name}: must be a finite number, got {value!r}")
    return number


class TradingOps(UnitOfWork):
    def _asset_in_portfolio(
        self, session: Session, ctx: AuditContext, portfolio_id: int, asset_id: int
    ) -> Asset:
        portfolio = self._portfolio_for(session, ctx, portfolio_id)
        asset = session.get(Asset, asset_id)
        if asset is None or asset.portfolio_id != portfolio.id:
            raise NotFound(f"asset {asset_id} not found in portfolio {portfolio_id}")
        return pin(session, asset)

    def _find_order(self, session: Session, client_order_id: str) -> Order | None:
        """The order with this client id; inside a batch, orders the batch created (or
        knows to be absent) are answered without a query."""
        batch = self._current_batch()
        if batch is not None:
            if client_order_id in batch.new_orders:
                return batch.new_orders[client_order_id]
            if client_order_id in batch.absent_orders:
                return None
        return session.scalars(_ORDER_BY_CLIENT_ID, {"coid": client_order_id}).first()

    def _remember_order(self, order: Order) -> Callable[[], None] | None:
        batch = self._current_batch()
        if batch is None:
            return None

        def remember() -> None:
            batch.new_orders[order.client_order_id] = order
            batch.absent_orders.discard(order.client_order_id)

        return remember

    def _remember_position(self, order: Order | None, position: Position) -> Callable[[], None] | None:
        batch = self._current_batch()
        if batch is None or order is None:
            return None
        return lambda: batch.new_positions.__setitem__(order.id, position)

    def _existing_position_for(self, session: Session, order: Order) -> Position | None:
        batch = self._current_batch()
        if batch is not None and batch.new_orders.get(order.client_order_id) is order:
            # Created in this batch: a position for it can only have been opened here too.
            return batch.new_positions.get(order.id)
        return session.scalars(_POSITION_BY_OPENING_ORDER, {"order_id": order.id}).first()

    def prefetch_order_ids(self, session: Session, client_order_ids: list[str]) -> None:
        """Inside a batch: learn in one query which of these client order ids are new."""
        batch = self._current_batch()
        if batch is None or not client_order_ids:
            return
        present = set(session.scalars(keyed(session, _KNOWN_CLIENT_IDS, Order.client_order_id),
                                      {KEYS: client_order_ids}))
        batch.absent_orders.update(set(client_order_ids) - present)

    def _order_by_client_id(self, session: Session, ctx: AuditContext, client_order_id: str) -> Order:
        order = self._find_order(session, client_order_id)
        if order is None:
            raise NotFound(f"order with client_order_id {client_order_id!r} not found")
        try:
            self._portfolio_for(session, ctx, order.portfolio_id)
        except NotFound:
            raise NotFound(f"order with client_order_id {client_order_id!r} not found") from None
        return order

    def _position(self, session: Session, ctx: AuditContext, position_id: int) -> Position:
        position = session.get(Position, position_id)
        if position is None:
            raise NotFound(f"position {position_id} not found")
        try:
            self._portfolio_for(session, ctx, position.portfolio_id)
        except NotFound:
            raise NotFound(f"position {position_id} not found") from None
        return position

    # ------------------------------------------------------------------ orders

    @write_op("orders")
    def record_order_intent(
        self, ctx: AuditContext, intent: OrderIntent | dict[str, Any]
    ) -> OrderRecord:
        """Record an order about to be sent (status ``pending``).

        Idempotent by ``client_order_id``: recording the same intent again returns the
        existing order (audited as ``order.intent_repeated``) and never a second row; the
        same id with a different side/quantity/asset is refused.
        """
        intent = coerce(OrderIntent, intent, "order")

        def apply(session: Session) -> Change[OrderRecord]:
            existing = self._find_order(session, intent.client_order_id)
            if existing is not None:
                self._portfolio_for(session, ctx, existing.portfolio_id)
                mismatched = [
                    name
                    for name in _INTENT_IDENTITY
                    if str(getattr(existing, name)) != str(getattr(intent, name))
                    and not (name == "quantity" and Decimal(existing.quantity) == intent.quantity)
                ]
                if mismatched:
                    raise DomainError(
                        f"client_order_id {intent.client_order_id!r} is already used by order "
                        f"{existing.id} with a different {', '.join(mismatched)}"
                    )
                return Change(
                    OrderRecord.model_validate(existing),
                    "order.intent_repeated",
                    "order",
                    existing.id,
                    {"client_order_id": intent.client_order_id, "status": existing.status},
                )
            asset = self._asset_in_portfolio(session, ctx, intent.portfolio_id, intent.asset_id)
            portfolio_owner = self._portfolio_for(session, ctx, intent.portfolio_id).owner_id
            if intent.action == "close":
                if intent.position_id is None:
                    raise DomainError("position_id: a close order must name the position it closes")
                position = self._position(session, ctx, intent.position_id)
                if position.asset_id != asset.id:
                    raise DomainError(
                        f"position_id: position {position.id} belongs to asset {position.asset_id}"
                    )
            order = Order(
                portfolio_id=intent.portfolio_id,
                asset_id=intent.asset_id,
                user_id=portfolio_owner,
                client_order_id=intent.client_order_id,
                symbol=asset.symbol,
                side=intent.side.value,
                order_type=intent.order_type.value,
                status=OrderStatus.PENDING.value,
                action=intent.action,
                position_id=intent.position_id,
                quantity=intent.quantity,
                price=intent.price,
                sl=intent.sl,
                tp=intent.tp,
                reason=intent.reason,
                details=intent.details,
            )
            session.add(order)
            session.flush()
            return Change(
                OrderRecord.model_validate(order),
                "order.intent",
                "order",
                order.id,
                {
                    "client_order_id": intent.client_order_id,
                    "asset_id": intent.asset_id,
                    "side": intent.side.value,
                    "quantity": str(intent.quantity),
                    "action": intent.action,
                },
                after=self._remember_order(order),
            )

        return self._run(ctx, apply, _order_replay)

    def _transition(
        self,
        ctx: AuditContext,
        client_order_id: str,
        to: OrderStatus,
        update: Any,
        action: str,
    ) -> OrderRecord:
        def apply(session: Session) -> Change[OrderRecord]:
            order = self._order_by_client_id(session, ctx, client_order_id)
            current = OrderStatus(order.status)
            if to not in ORDER_TRANSITIONS[current]:
                raise DomainError(
                    f"order {client_order_id!r}: cannot go from {current.value} to {to.value}"
                )
            details: dict[str, Any] = {"client_order_id": client_order_id, "from": current.value}
            details.update(update(order))
            order.status = to.value
            session.flush()
            return Change(OrderRecord.model_validate(order), action, "order", order.id, details)

        return self._run(ctx, apply, _order_replay)

    def _fill_update(self, fill: OrderFill, *, set_filled_at: bool) -> Any:
        def update(order: Order) -> dict[str, Any]:
            quantity = fill.filled_quantity if fill.filled_quantity is not None else order.quantity
            if quantity > order.quantity:
                raise DomainError(
                    f"filled_quantity: {quantity} exceeds the order quantity {order.quantity}"
                )
            order.filled_quantity = quantity
            if fill.broker_order_id is not None:
                order.broker_order_id = fill.broker_order_id
            if fill.filled_price is not None:
                order.filled_price = fill.filled_price
            order.commission = fill.commission
            if set_filled_at or fill.filled_at is not None:
                order.filled_at = fill.filled_at or utcnow()
            return {
                "broker_order_id": order.broker_order_id,
                "filled_quantity": str(quantity),
                "filled_price": None if fill.filled_price is None else str(fill.filled_price),
                "commission": str(fill.commission),
            }

        return update

    @write_op("orders")
    def mark_order_open(
        self, ctx: AuditContext, client_order_id: str, fill: OrderFill | dict[str, Any]
    ) -> OrderRecord:
        """The broker executed an opening order: status ``open`` (seed §3)."""
        fill = coerce(OrderFill, fill, "fill")
        return self._transition(
            ctx, client_order_id, OrderStatus.OPEN, self._fill_update(fill, set_filled_at=True), "order.open"
        )

    @write_op("orders")
    def mark_order_filled(
        self, ctx: AuditContext, client_order_id: str, fill: OrderFill | dict[str, Any]
    ) -> OrderRecord:
        """The order is complete (a closing order, or an open order finished): ``filled``."""
        fill = coerce(OrderFill, fill, "fill")
        return self._transition(
            ctx, client_order_id, OrderStatus.FILLED, self._fill_update(fill, set_filled_at=True), "order.fill"
        )

    @write_op("orders")
    def mark_order_rejected(self, ctx: AuditContext, client_order_id: str, reason: str) -> OrderRecord:
        """The broker refused the order; ``reason`` says why."""

        def update(order: Order) -> dict[str, Any]:
            order.reason = reason[:1024]
            return {"reason": reason}

        return self._transition(ctx, client_order_id, OrderStatus.REJECTED, update, "order.reject")

    @write_op("orders")
    def mark_order_cancelled(self, ctx: AuditContext, client_order_id: str, reason: str) -> OrderRecord:
        def update(order: Order) -> dict[str, Any]:
            order.reason = reason[:1024]
            return {"reason": reason}

        return self._transition(ctx, client_order_id, OrderStatus.CANCELLED, update, "order.cancel")

    # ------------------------------------------------------------------ positions

    @write_op("positions")
    def open_position(self, ctx: AuditContext, spec: PositionOpen | dict[str, Any]) -> PositionRecord:
        """Record a position the broker opened. With ``opening_client_order_id`` it is
        idempotent per order: the order's existing position is returned instead of a second."""
        spec = coerce(PositionOpen, spec, "position")

        def apply(session: Session) -> Change[PositionRecord]:
            asset = self._asset_in_portfolio(session, ctx, spec.portfolio_id, spec.asset_id)
            order: Order | None = None
            if spec.opening_client_order_id is not None:
                order = self._order_by_client_id(session, ctx, spec.opening_client_order_id)
                if order.asset_id != asset.id:
                    raise DomainError(
                        f"opening_client_order_id: order {order.client_order_id!r} "
                        f"belongs to asset {order.asset_id}, not {asset.id}"
                    )
                if order.status in (OrderStatus.REJECTED.value, OrderStatus.CANCELLED.value):
                    raise DomainError(
                        f"opening_client_order_id: order {order.client_order_id!r} is {order.status}"
                    )
                existing = self._existing_position_for(session, order)
                if existing is not None:
                    return Change(
                        PositionRecord.model_validate(existing),
                        "position.open_repeated",
                        "position",
                        existing.id,
                        {"opening_order_id": order.id},
                    )
            position = Position(
                portfolio_id=spec.portfolio_id,
                asset_id=spec.asset_id,
                opening_order_id=None if order is None else order.id,
                broker_position_id=spec.broker_position_id,
                symbol=asset.symbol,
                side=spec.side.value,
                quantity=spec.quantity,
                entry_price=spec.entry_price,
                current_price=spec.entry_price,
                sl=spec.sl,
                tp=spec.tp,
                commission=spec.commission,
                opened_at=spec.opened_at or utcnow(),
            )
            session.add(position)
            session.flush()
            if order is not None:
                order.position_id = position.id
            return Change(
                PositionRecord.model_validate(position),
                "position.open",
                "position",
                position.id,
                {
                    "asset_id": spec.asset_id,
                    "side": spec.side.value,
                    "quantity": str(spec.quantity),
                    "entry_price": str(spec.entry_price),
                    "opening_order_id": None if order is None else order.id,
                },
                after=self._remember_position(order, position),
            )

        return self._run(ctx, apply, _position_replay)

    @write_op("positions")
    def close_position(
        self, ctx: AuditContext, position_id: int, spec: PositionClose | dict[str, Any]
    ) -> PositionRecord:
        """Close an open position with its realised P&L (``is_open=False``)."""
        spec = coerce(PositionClose, spec, "close")

        def apply(session: Session) -> Change[PositionRecord]:
            position = self._position(session, ctx, position_id)
            if not position.is_open:
                raise DomainError(f"position {position_id} is already closed")
            closing: Order | None = None
            if spec.closing_client_order_id is not None:
                closing = self._order_by_client_id(session, ctx, spec.closing_client_order_id)
                if closing.asset_id != position.asset_id:
                    raise DomainError(
                        f"closing_client_order_id: order {closing.client_order_id!r} "
                        f"belongs to asset {closing.asset_id}, not {position.asset_id}"
                    )
                closing.position_id = position.id
            position.is_open = False
            position.close_price = spec.close_price
            position.current_price = spec.close_price
            position.realized_pnl = spec.realized_pnl
            position.unrealized_pnl = Decimal("0")
            position.commission = position.commission + spec.commission
            position.swap = position.swap + spec.swap
            position.closed_at = spec.closed_at or utcnow()
            position.close_reason = spec.close_reason
            position.closing_order_id = None if closing is None else closing.id
            session.flush()
            return Change(
                PositionRecord.model_validate(position),
                "position.close",
                "position",
                position_id,
                {
                    "close_price": str(spec.close_price),
                    "realized_pnl": str(spec.realized_pnl),
                    "close_reason": spec.close_reason,
                    "closing_order_id": None if closing is None else closing.id,
                },
            )

        return self._run(ctx, apply, _position_replay)

    @write_op("positions")
    def update_position_price(
        self,
        ctx: AuditContext,
        position_id: int,
        *,
        current_price: Decimal | float | str,
        unrealized_pnl: Decimal | float | str | None = None,
        swap: Decimal | float | str | None = None,
    ) -> PositionRecord:
        """Mark an open position to market. ``unrealized_pnl`` defaults to
        ``(current - entry) * quantity * side``; ``swap`` replaces the accrued swap."""
        price = _money(current_price, "current_price")
        if price <= 0:
            raise DomainError(f"current_price: must be > 0, got {current_price!r}")
        pnl = None if unrealized_pnl is None else _money(unrealized_pnl, "unrealized_pnl")
        new_swap = None if swap is None else _money(swap, "swap")

        def apply(session: Session) -> Change[PositionRecord]:
            position = self._position(session, ctx, position_id)
            if not position.is_open:
                raise DomainError(f"position {position_id} is closed")
            sign = 1 if position.side == "buy" else -1
            position.current_price = price
            position.unrealized_pnl = (
                pnl if pnl is not None else (price - position.entry_price) * position.quantity * sign
            )
            if new_swap is not None:
                position.swap = new_swap
            session.flush()
            return Change(
                PositionRecord.model_validate(position),
                "position.mark",
                "position",
                position_id,
                {"current_price": str(price), "unrealized_pnl": str(position.unrealized_pnl)},
            )

        return self._run(ctx, apply, _position_replay)
