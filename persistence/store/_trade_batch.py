"""The fast path of a batch: a trade's writes as a handful of executemany statements.

A trade is three writes in a row: the order intent, the broker's answer (order open or
filled) and the position. Through the ORM each one costs object construction, a flush
(INSERT or UPDATE), identity-map lookups and its audit row, which capped the Store at
~2,500 records/s on SQLite and ~1,500 on PostgreSQL. Inside one batch transaction the
intermediate states of a new order are never visible to anyone, so ``TradeBatch`` keeps
the new orders and positions as plain dicts, applies each write's change to them in
memory (with the same checks the ORM path makes) and writes them with four statements
per batch: INSERT orders, INSERT positions, UPDATE orders.position_id (orders and
positions refer to each other), and the audit rows with the rest of the pass.

An order recorded by an earlier batch (the asset actors write a trade's intent before
the broker call and its outcome after, so in two batches) is loaded with one SELECT for
all such orders of the batch; its transition becomes one executemany UPDATE, and a
position opened from it is taken like one from a new order, unless the database already
holds a position opened from it.

Closes take it too (2026-12-04; before, every close went through the ORM path, which
was about a third of the persistence actor's CPU with the default strategy, whose every
reversal closes): the close intent checks its position (loaded with one SELECT for all
the positions the batch names), and ``close_position`` becomes one executemany UPDATE
of the positions it closes.

The batch's statements run on the raw DB-API cursor of the session's connection
(``persistence.store._raw``: compiled once per database with SQLAlchemy's own type
conversions, errors raised as SQLAlchemy raises them), except the two that load full
rows of earlier orders and positions, whose values need the column types' result
conversions.

It only *accepts* the simple, common case and declines everything else (a resend, an
order the ORM path touched in this batch, any check that fails, keyword
arguments...). A declined write goes through the ORM path after ``flush()``, so the
database is up to date for it; a failing check there aborts the optimistic pass and the
batch re-runs with a SAVEPOINT per write on the ORM path, which gives the exact error.
So the outcomes, rows and audit rows are those of the ORM path, one audit row per write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from engine.types import utcnow
from persistence.enums import ORDER_TRANSITIONS, OrderStatus
from persistence.models import Asset, Order, Portfolio, Position
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
from persistence.store._raw import RawLookup, RawStatement, raw_insert
from persistence.store._unit import _Batch, may_touch
from persistence.store.writes import WriteOutcome, WriteRequest

_ORDERS = Order.__table__
_POSITIONS = Position.__table__
_LINK_POSITIONS = (
    update(_ORDERS)
    .where(_ORDERS.c.id == bindparam("order_key"))
    .values(position_id=bindparam("position_key"), updated_at=bindparam("linked_at"))
)
# An order recorded before this batch moves on (open / filled): the columns a fill sets.
_UPDATE_EXISTING_ORDERS = (
    update(_ORDERS)
    .where(_ORDERS.c.id == bindparam("order_key"))
    .values(
        status=bindparam("new_status"),
        filled_quantity=bindparam("new_filled_quantity"),
        broker_order_id=bindparam("new_broker_order_id"),
        filled_price=bindparam("new_filled_price"),
        commission=bindparam("new_commission"),
        filled_at=bindparam("new_filled_at"),
        updated_at=bindparam("new_updated_at"),
        position_id=bindparam("new_position_id"),
    )
)
# Positions this batch closes: the columns ``close_position`` sets.
_CLOSE_POSITIONS = (
    update(_POSITIONS)
    .where(_POSITIONS.c.id == bindparam("position_key"))
    .values(
        is_open=bindparam("new_is_open"),
        close_price=bindparam("new_close_price"),
        current_price=bindparam("new_current_price"),
        realized_pnl=bindparam("new_realized_pnl"),
        unrealized_pnl=bindparam("new_unrealized_pnl"),
        commission=bindparam("new_commission"),
        swap=bindparam("new_swap"),
        closed_at=bindparam("new_closed_at"),
        close_reason=bindparam("new_close_reason"),
        closing_order_id=bindparam("new_closing_order_id"),
        updated_at=bindparam("new_updated_at"),
    )
)
# The writes above on the raw DB-API cursor (``persistence.store._raw``).
_RAW_UPDATE_EXISTING_ORDERS = RawStatement(_UPDATE_EXISTING_ORDERS)
_RAW_LINK_POSITIONS = RawStatement(_LINK_POSITIONS)
_RAW_CLOSE_POSITIONS = RawStatement(_CLOSE_POSITIONS)
_POSITIONS_BY_ID = select(_POSITIONS)
_ORDERS_BY_CLIENT_ID = select(_ORDERS)
_OPENED_FROM = RawLookup(_POSITIONS, "opening_order_id", ["opening_order_id"])
_ASSETS_BY_ID = RawLookup(Asset.__table__, "id", ["id", "portfolio_id", "symbol"])
_OWNERS_BY_ID = RawLookup(Portfolio.__table__, "id", ["id", "owner_id"])

FAST_OPS = frozenset({"record_order_intent", "mark_order_open", "mark_order_filled", "open_position",
                      "close_position"})
"""Operations ``TradeBatch`` may take; any other write goes through the ORM path."""

_TRANSITION_ACTIONS = {"mark_order_open": (OrderStatus.OPEN, "order.open"),
                       "mark_order_filled": (OrderStatus.FILLED, "order.fill")}


@dataclass
class _Planned:
    """A write taken by the fast path; its outcome and audit row are completed at flush."""

    write: WriteRequest
    audit: dict[str, Any]
    # Builds the write's result once the ids are known.
    result: Callable[[], Any]
    # The audit row's target id, once the ids are known.
    target: Callable[[], Any]
    # Adds what only the ids tell to the audit row's details.
    more_details: Callable[[], dict[str, Any]] | None = None
    outcome: WriteOutcome | None = None


@dataclass
class _NewOrder:
    row: dict[str, Any]
    position: dict[str, Any] | None = None
    # Recorded by an earlier batch: written back with an UPDATE, not inserted.
    existing: bool = False
    changed: bool = False


@dataclass
class _NewPosition:
    row: dict[str, Any]
    order: _NewOrder | None


@dataclass
class TradeBatch:
    """New orders and positions of one optimistic batch pass, held until ``flush``."""

    session: Session
    batch: _Batch
    orders: dict[str, _NewOrder] = field(default_factory=dict)  # by client order id
    positions: list[_NewPosition] = field(default_factory=list)
    planned: list[_Planned] = field(default_factory=list)
    # asset id -> (portfolio id, symbol); portfolio id -> owner id. Loaded once per batch
    # and dropped whenever an ORM write runs (it may have changed them).
    _assets: dict[int, tuple[int, str]] = field(default_factory=dict)
    _owners: dict[int, int] = field(default_factory=dict)
    _prefetch: tuple[set[int], set[int]] = field(default_factory=lambda: (set(), set()))
    # Orders recorded before the batch that its writes name (client order id -> order),
    # loaded in one query on first need; None until then. Dropped with the other caches.
    _existing: dict[str, _NewOrder] | None = None
    _existing_ids: set[str] = field(default_factory=set)
    # Positions recorded before the batch that close intents and closes name (id -> row),
    # loaded in one query on first need; None until then. Dropped with the other caches.
    _db_positions: dict[int, dict[str, Any]] | None = None
    _position_ids: set[int] = field(default_factory=set)
    # Positions this pass closed (row, closing order), written back at flush.
    closed: list[tuple[dict[str, Any], _NewOrder | None]] = field(default_factory=list)

    # ------------------------------------------------------------------ taking writes

    def prefetch(self, writes: Sequence[WriteRequest]) -> None:
        """Remember which assets/portfolios the batch's trade writes name (one query each)."""
        assets, portfolios = self._prefetch
        for write in writes:
            if write.op in ("record_order_intent", "open_position") and len(write.args) == 1:
                spec = write.args[0]
                if isinstance(spec, (OrderIntent, PositionOpen)):
                    assets.add(spec.asset_id)
                    portfolios.add(spec.portfolio_id)
                if isinstance(spec, PositionOpen) and spec.opening_client_order_id is not None:
                    self._existing_ids.add(spec.opening_client_order_id)
                if isinstance(spec, OrderIntent) and spec.position_id is not None:
                    self._position_ids.add(spec.position_id)
            elif write.op == "close_position" and len(write.args) == 2 and _is_id(write.args[0]):
                self._position_ids.add(write.args[0])
                spec = write.args[1]
                if isinstance(spec, PositionClose) and spec.closing_client_order_id is not None:
                    self._existing_ids.add(spec.closing_client_order_id)
            elif write.op in _TRANSITION_ACTIONS and len(write.args) == 2 and isinstance(write.args[0], str):
                self._existing_ids.add(write.args[0])

    def take(self, write: WriteRequest) -> _Planned | None:
        """Apply ``write`` in memory and return its placeholder, or None (ORM path)."""
        if write.op not in FAST_OPS or write.kwargs:
            return None
        request_id = write.ctx.request_id
        if request_id is not None and (
            request_id not in self.batch.absent or request_id in self.batch.deferred_audits
        ):
            return None  # possibly a resend: the ORM path replays it
        if write.op == "record_order_intent":
            planned = self._intent(write)
        elif write.op == "open_position":
            planned = self._position(write)
        elif write.op == "close_position":
            planned = self._close(write)
        else:
            planned = self._transition(write)
        if planned is not None:
            if request_id is not None:
                self.batch.absent.discard(request_id)  # a resend later in the batch replays
            self.planned.append(planned)
        return planned

    def invalidate(self) -> None:
        """An ORM write ran: forget cached portfolio/asset facts and orders loaded from
        before the batch (it may have changed them; they are loaded again if needed)."""
        self._assets.clear()
        self._owners.clear()
        self._existing = None
        self._db_positions = None

    def _asset(self, ctx: AuditContext, portfolio_id: int, asset_id: int) -> tuple[int, str] | None:
        """(owner id, symbol) if the asset is in the portfolio and ``ctx`` may change it."""
        if asset_id not in self._assets or portfolio_id not in self._owners:
            self._load({asset_id} | self._prefetch[0], {portfolio_id} | self._prefetch[1])
        asset = self._assets.get(asset_id)
        owner = self._owners.get(portfolio_id)
        if asset is None or owner is None or asset[0] != portfolio_id or not may_touch(ctx, owner):
            return None
        return owner, asset[1]

    def _owner(self, portfolio_id: int) -> int | None:
        if portfolio_id not in self._owners:
            self._load(set(), {portfolio_id})
        return self._owners.get(portfolio_id)

    def _load(self, asset_ids: set[int], portfolio_ids: set[int]) -> None:
        connection = self.session.connection()
        for key, portfolio_id, symbol in _ASSETS_BY_ID.rows(connection, sorted(asset_ids)):
            self._assets[key] = (portfolio_id, symbol)
        for key, owner_id in _OWNERS_BY_ID.rows(connection, sorted(portfolio_ids)):
            self._owners[key] = owner_id

    def _order(self, client_order_id: str) -> _NewOrder | None:
        """The order this batch's fast path created, or one recorded by an earlier batch
        that the ORM path has not touched in this batch; None: the ORM path decides."""
        order = self.orders.get(client_order_id)
        if order is not None:
            return order
        if client_order_id in self.batch.new_orders or client_order_id in self.batch.absent_orders:
            return None  # created by the ORM path in this batch, or not in the database
        if self._existing is None:
            self._load_existing()
        assert self._existing is not None
        return self._existing.get(client_order_id)

    def _load_existing(self) -> None:
        """Load, in one query each, the earlier orders this batch's writes name and which
        of them a position was already opened from (those are left to the ORM path)."""
        self._existing = {}
        wanted = sorted(self._existing_ids - set(self.orders) - set(self.batch.new_orders))
        if not wanted:
            return
        rows = [dict(r._mapping) for r in self.session.execute(
            keyed(self.session, _ORDERS_BY_CLIENT_ID, _ORDERS.c.client_order_id), {KEYS: wanted})]
        opened_from = {row[0] for row in _OPENED_FROM.rows(self.session.connection(), [r["id"] for r in rows])}
        for row in rows:
            if row["id"] in opened_from or (row["position_id"] is not None and row["action"] != "close"):
                continue  # a position exists: the ORM path answers (idempotent replay)
            self._existing[row["client_order_id"]] = _NewOrder(row, existing=True)

    def _position_row(self, position_id: int) -> dict[str, Any] | None:
        """A position recorded before this batch (as this pass left it), or None: the ORM
        path decides (missing, or named by nothing the batch prefetched)."""
        if self._db_positions is None:
            self._db_positions = {}
            wanted = sorted(self._position_ids | {position_id})
            for r in self.session.execute(keyed(self.session, _POSITIONS_BY_ID, _POSITIONS.c.id), {KEYS: wanted}):
                self._db_positions[r.id] = dict(r._mapping)
        return self._db_positions.get(position_id)

    def _intent(self, write: WriteRequest) -> _Planned | None:
        if len(write.args) != 1 or not isinstance(write.args[0], OrderIntent):
            return None
        intent: OrderIntent = write.args[0]
        coid = intent.client_order_id
        if coid in self.orders or coid not in self.batch.absent_orders:
            return None  # an existing or repeated id: the ORM path answers it
        found = self._asset(write.ctx, intent.portfolio_id, intent.asset_id)
        if found is None:
            return None
        if intent.action == "close":
            # The ORM path's checks: the position exists, the caller may see its portfolio,
            # and it belongs to this asset (whether it is still open is the close's check).
            position = None if intent.position_id is None else self._position_row(intent.position_id)
            if position is None or position["asset_id"] != intent.asset_id:
                return None
            if not may_touch(write.ctx, self._owner(position["portfolio_id"])):
                return None
        elif intent.action != "open" or intent.position_id is not None:
            return None
        owner_id, symbol = found
        now = utcnow()
        row: dict[str, Any] = {
            "portfolio_id": intent.portfolio_id,
            "asset_id": intent.asset_id,
            "user_id": owner_id,
            "client_order_id": coid,
            "broker_order_id": None,
            "symbol": symbol,
            "side": intent.side.value,
            "order_type": intent.order_type.value,
            "status": OrderStatus.PENDING.value,
            "action": intent.action,
            "position_id": intent.position_id,
            "quantity": intent.quantity,
            "price": intent.price,
            "sl": intent.sl,
            "tp": intent.tp,
            "filled_quantity": Decimal(0),
            "filled_price": None,
            "commission": Decimal(0),
            "reason": intent.reason,
            "details": intent.details,
            "created_at": now,
            "updated_at": now,
            "filled_at": None,
        }
        order = _NewOrder(row)
        self.orders[coid] = order
        self.batch.absent_orders.discard(coid)
        snapshot = dict(row)
        details = {
            "client_order_id": coid,
            "asset_id": intent.asset_id,
            "side": intent.side.value,
            "quantity": str(intent.quantity),
            "action": intent.action,
        }
        return _Planned(
            write,
            _audit(write.ctx, "order.intent", "order", details),
            result=lambda: _order_record(snapshot, row["id"]),
            target=lambda: row["id"],
        )

    def _transition(self, write: WriteRequest) -> _Planned | None:
        if len(write.args) != 2 or not isinstance(write.args[1], OrderFill):
            return None
        coid, fill = write.args
        order = self._order(coid) if isinstance(coid, str) else None
        if order is None or order.position is not None:
            return None
        row = order.row
        if not may_touch(write.ctx, self._owner(row["portfolio_id"])):
            return None
        to, action = _TRANSITION_ACTIONS[write.op]
        current = OrderStatus(row["status"])
        if to not in ORDER_TRANSITIONS[current]:
            return None
        quantity = fill.filled_quantity if fill.filled_quantity is not None else row["quantity"]
        if quantity > row["quantity"]:
            return None
        row["filled_quantity"] = quantity
        if fill.broker_order_id is not None:
            row["broker_order_id"] = fill.broker_order_id
        if fill.filled_price is not None:
            row["filled_price"] = fill.filled_price
        row["commission"] = fill.commission
        row["filled_at"] = fill.filled_at or utcnow()
        row["status"] = to.value
        row["updated_at"] = utcnow()
        order.changed = True
        details = {
            "client_order_id": coid,
            "from": current.value,
            "broker_order_id": row["broker_order_id"],
            "filled_quantity": str(quantity),
            "filled_price": None if fill.filled_price is None else str(fill.filled_price),
            "commission": str(fill.commission),
        }
        snapshot = dict(row)
        return _Planned(
            write,
            _audit(write.ctx, action, "order", details),
            result=lambda: _order_record(snapshot, row["id"]),
            target=lambda: row["id"],
        )

    def _position(self, write: WriteRequest) -> _Planned | None:
        if len(write.args) != 1 or not isinstance(write.args[0], PositionOpen):
            return None
        spec: PositionOpen = write.args[0]
        found = self._asset(write.ctx, spec.portfolio_id, spec.asset_id)
        if found is None:
            return None
        order: _NewOrder | None = None
        if spec.opening_client_order_id is not None:
            order = self._order(spec.opening_client_order_id)
            if order is None or order.position is not None:
                return None  # unknown here, or a repeat: the ORM path answers
            if order.row["action"] != "open" or order.row["position_id"] is not None:
                return None  # a close order, or one linked already: the ORM path answers
            if order.row["asset_id"] != spec.asset_id:
                return None
            if order.row["status"] in (OrderStatus.REJECTED.value, OrderStatus.CANCELLED.value):
                return None
            if not may_touch(write.ctx, self._owner(order.row["portfolio_id"])):
                return None
        now = utcnow()
        row: dict[str, Any] = {
            "portfolio_id": spec.portfolio_id,
            "asset_id": spec.asset_id,
            "opening_order_id": None,
            "closing_order_id": None,
            "broker_position_id": spec.broker_position_id,
            "symbol": found[1],
            "side": spec.side.value,
            "quantity": spec.quantity,
            "entry_price": spec.entry_price,
            "current_price": spec.entry_price,
            "close_price": None,
            "sl": spec.sl,
            "tp": spec.tp,
            "unrealized_pnl": Decimal(0),
            "realized_pnl": Decimal(0),
            "commission": spec.commission,
            "swap": Decimal(0),
            "is_open": True,
            "opened_at": spec.opened_at or now,
            "closed_at": None,
            "close_reason": None,
            "updated_at": now,
        }
        self.positions.append(_NewPosition(row, order))
        if order is not None:
            order.position = row
            order.row["updated_at"] = now
        opening = None if order is None else order.row
        return _Planned(
            write,
            _audit(write.ctx, "position.open", "position", {
                "asset_id": spec.asset_id,
                "side": spec.side.value,
                "quantity": str(spec.quantity),
                "entry_price": str(spec.entry_price),
            }),
            result=lambda: _position_record(row, opening),
            target=lambda: row["id"],
            more_details=lambda: {"opening_order_id": None if opening is None else opening["id"]},
        )

    def _close(self, write: WriteRequest) -> _Planned | None:
        if len(write.args) != 2 or not _is_id(write.args[0]) or not isinstance(write.args[1], PositionClose):
            return None
        position_id, spec = write.args
        position = self._position_row(position_id)
        if position is None or not position["is_open"]:
            return None  # missing or closed already: the ORM path gives the error
        if not may_touch(write.ctx, self._owner(position["portfolio_id"])):
            return None
        closing: _NewOrder | None = None
        if spec.closing_client_order_id is not None:
            closing = self._order(spec.closing_client_order_id)
            if closing is None or closing.row["asset_id"] != position["asset_id"]:
                return None
            if not may_touch(write.ctx, self._owner(closing.row["portfolio_id"])):
                return None
        now = utcnow()
        if closing is not None and closing.row["position_id"] != position_id:
            # The ORM path links the closing order to the position (an UPDATE only when
            # the link changes, as its dirty-attribute check does).
            closing.row["position_id"] = position_id
            closing.row["updated_at"] = now
            closing.changed = True
        position.update(
            is_open=False,
            close_price=spec.close_price,
            current_price=spec.close_price,
            realized_pnl=spec.realized_pnl,
            unrealized_pnl=Decimal(0),
            commission=position["commission"] + spec.commission,
            swap=position["swap"] + spec.swap,
            closed_at=spec.closed_at or now,
            close_reason=spec.close_reason,
            updated_at=now,
        )
        self.closed.append((position, closing))
        snapshot = dict(position)

        def closing_id() -> Any:
            return None if closing is None else closing.row["id"]

        return _Planned(
            write,
            _audit(write.ctx, "position.close", "position", {
                "close_price": str(spec.close_price),
                "realized_pnl": str(spec.realized_pnl),
                "close_reason": spec.close_reason,
                "closing_order_id": None,
            }),
            result=lambda: PositionRecord.model_validate({**snapshot, "closing_order_id": closing_id()}),
            target=lambda: position_id,
            more_details=lambda: {"closing_order_id": closing_id()},
        )

    # ------------------------------------------------------------------ writing

    def flush(self) -> None:
        """Write what was taken (orders, positions, links), queue the audit rows in write
        order and complete each taken write's outcome. A database error propagates."""
        if not self.planned:
            return
        connection = self.session.connection()
        orders = list(self.orders.values())
        if orders:
            rows = [order.row for order in orders]
            ids = raw_insert(_ORDERS, list(rows[0]), returning_id=True).insert_returning(connection, rows)
            for row, key in zip(rows, ids, strict=True):
                row["id"] = key
        moved = [o for o in (self._existing or {}).values() if o.changed]
        if moved:
            _RAW_UPDATE_EXISTING_ORDERS.execute_many(connection, [
                {"order_key": o.row["id"], "new_status": o.row["status"],
                 "new_filled_quantity": o.row["filled_quantity"],
                 "new_broker_order_id": o.row["broker_order_id"],
                 "new_filled_price": o.row["filled_price"], "new_commission": o.row["commission"],
                 "new_filled_at": o.row["filled_at"], "new_updated_at": o.row["updated_at"],
                 "new_position_id": o.row["position_id"]}
                for o in moved
            ])
            for order in moved:
                order.changed = False
        if self.positions:
            rows = []
            for position in self.positions:
                if position.order is not None:
                    position.row["opening_order_id"] = position.order.row["id"]
                rows.append(position.row)
            ids = raw_insert(_POSITIONS, list(rows[0]), returning_id=True).insert_returning(connection, rows)
            for row, key in zip(rows, ids, strict=True):
                row["id"] = key
            links = [
                {"order_key": p.order.row["id"], "position_key": p.row["id"],
                 "linked_at": p.order.row["updated_at"]}
                for p in self.positions
                if p.order is not None
            ]
            if links:
                _RAW_LINK_POSITIONS.execute_many(connection, links)
        closed = self.closed
        if closed:
            _RAW_CLOSE_POSITIONS.execute_many(connection, [
                {"position_key": row["id"], "new_is_open": False, "new_close_price": row["close_price"],
                 "new_current_price": row["current_price"], "new_realized_pnl": row["realized_pnl"],
                 "new_unrealized_pnl": row["unrealized_pnl"], "new_commission": row["commission"],
                 "new_swap": row["swap"], "new_closed_at": row["closed_at"],
                 "new_close_reason": row["close_reason"],
                 "new_closing_order_id": None if closing is None else closing.row["id"],
                 "new_updated_at": row["updated_at"]}
                for row, closing in closed
            ])
            for row, closing in closed:
                row["closing_order_id"] = None if closing is None else closing.row["id"]
            self.closed = []
        for planned in self.planned:
            key = planned.target()
            planned.audit["target_id"] = str(key)
            if planned.more_details is not None:
                planned.audit["details"].update(planned.more_details())
            self.batch.defer_audit(planned.audit)
            planned.outcome = WriteOutcome.success(planned.write, planned.result())
        linked_existing = any(p.order is not None and p.order.existing for p in self.positions)
        self.orders.clear()
        self.positions.clear()
        self.planned = []
        if moved or linked_existing or closed:
            # Rows written with Core behind the ORM's back: any Order the session holds
            # must be read again by a later ORM write in this batch.
            self.session.expire_all()
            self._existing = None


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _audit(ctx: AuditContext, action: str, target_type: str, details: dict[str, Any]) -> dict[str, Any]:
    return {
        "user_id": ctx.user_id,
        "action": action,
        "target_type": target_type,
        "target_id": None,
        "details": details,
        "ip": ctx.ip,
        "user_agent": ctx.user_agent,
        "request_id": ctx.request_id,
        "created_at": utcnow(),
    }


def _order_record(snapshot: dict[str, Any], key: int) -> OrderRecord:
    return OrderRecord.model_validate({**snapshot, "id": key})


def _position_record(row: dict[str, Any], opening: dict[str, Any] | None) -> PositionRecord:
    values = dict(row)
    if opening is not None:
        values["opening_order_id"] = opening["id"]
    return PositionRecord.model_validate(values)
