"""``persistence.store._raw``: the fast path's statements on the raw DB-API cursor write
exactly what a Core ``execute`` writes (exact money, UTC datetimes, JSON) and fail the way
it fails, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from persistence.models import AuditLog, Order
from persistence.store import Store
from persistence.store._raw import RawLookup, RawStatement, insert_rows, raw_insert
from persistence.store._trade_batch import _CLOSE_POSITIONS
from tests.integration.persistence._store_ops import make_world

ORDERS = Order.__table__


def _order_row(world, coid: str, when: datetime) -> dict:
    return {
        "portfolio_id": world.portfolio_id, "asset_id": world.asset_id, "user_id": world.owner_id,
        "client_order_id": coid, "broker_order_id": None, "symbol": "EURUSD", "side": "buy",
        "order_type": "market", "status": "pending", "action": "open", "position_id": None,
        "quantity": Decimal("12345.12345678"), "price": Decimal("1.10512"), "sl": None, "tp": None,
        "filled_quantity": Decimal(0), "filled_price": None, "commission": Decimal("0.00000001"),
        "reason": None, "details": {"bar_time": when.isoformat(), "params": {"x": 1.5}},
        "created_at": when, "updated_at": when, "filled_at": None,
    }


def test_raw_insert_writes_what_core_writes(store: Store) -> None:
    world = make_world(store)
    when = datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=timezone.utc)
    raw_coid, core_coid = world.unique("raw"), world.unique("core")
    with store.engine.begin() as conn:
        raw_row = _order_row(world, raw_coid, when)
        (raw_id,) = raw_insert(ORDERS, list(raw_row), returning_id=True).insert_returning(conn, [raw_row])
        core_id = conn.execute(insert(ORDERS).returning(ORDERS.c.id), _order_row(world, core_coid, when)).scalar_one()
    raw = store.get_order_by_client_id(raw_coid)
    core = store.get_order_by_client_id(core_coid)
    assert raw.id == raw_id and core.id == core_id and raw_id != core_id
    ignore = {"id", "client_order_id"}
    assert raw.model_dump(exclude=ignore) == core.model_dump(exclude=ignore)
    assert raw.quantity == Decimal("12345.12345678") and raw.commission == Decimal("0.00000001")
    assert raw.created_at == when and raw.created_at.tzinfo is not None
    assert raw.details == {"bar_time": when.isoformat(), "params": {"x": 1.5}}


def test_raw_updates_and_executemany_match_core(store: Store) -> None:
    world = make_world(store)
    first, second = world.open_position(), world.open_position()
    closed_at = datetime(2024, 3, 2, 8, 0, tzinfo=timezone.utc)

    def values(key: int, pnl: str) -> dict:
        return {"position_key": key, "new_is_open": False, "new_close_price": Decimal("1.2"),
                "new_current_price": Decimal("1.2"), "new_realized_pnl": Decimal(pnl),
                "new_unrealized_pnl": Decimal(0), "new_commission": Decimal("0.5"), "new_swap": Decimal("-0.01"),
                "new_closed_at": closed_at, "new_close_reason": "signal", "new_closing_order_id": None,
                "new_updated_at": closed_at}

    with store.engine.begin() as conn:
        RawStatement(_CLOSE_POSITIONS).execute_many(conn, [values(first, "-3.14159265")])
        conn.execute(_CLOSE_POSITIONS, [values(second, "-3.14159265")])
    raw, core = store.get_position(first), store.get_position(second)
    ignore = {"id", "opening_order_id", "opened_at"}  # two positions opened one after the other
    assert raw.model_dump(exclude=ignore) == core.model_dump(exclude=ignore)
    assert raw.realized_pnl == Decimal("-3.14159265") and not raw.is_open and raw.closed_at == closed_at


def test_insert_rows_keeps_order_across_differing_columns(store: Store) -> None:
    when = datetime(2024, 3, 3, tzinfo=timezone.utc)
    tag = make_world(store).unique("audit")
    rows = [
        {"user_id": None, "action": "a1", "target_type": "t", "target_id": None, "details": {},
         "ip": None, "user_agent": None, "request_id": f"{tag}-1", "created_at": when},
        {"action": "a2", "target_type": "t", "details": {"k": "v"}, "request_id": f"{tag}-2", "created_at": when},
        {"user_id": None, "action": "a3", "target_type": "t", "target_id": "7", "details": {},
         "ip": "127.0.0.1", "user_agent": None, "request_id": f"{tag}-3", "created_at": when},
    ]
    with store.engine.begin() as conn:
        insert_rows(conn, AuditLog.__table__, rows)
        found = conn.execute(select(AuditLog.action, AuditLog.details, AuditLog.ip)
                             .where(AuditLog.request_id.like(f"{tag}-%")).order_by(AuditLog.id)).all()
    assert [tuple(r) for r in found] == [("a1", {}, None), ("a2", {"k": "v"}, None), ("a3", {}, "127.0.0.1")]


def test_raw_lookup_finds_exactly_the_keys_present(store: Store) -> None:
    world = make_world(store)
    present = [world.pending_order() for _ in range(3)]
    by_coid = RawLookup(ORDERS, "client_order_id", ["client_order_id", "asset_id"])
    by_id = RawLookup(ORDERS, "id", ["id"])
    with store.engine.connect() as conn:
        found = by_coid.rows(conn, [*present[:2], "missing-1"])
        assert sorted(found) == sorted((c, world.asset_id) for c in present[:2])
        assert by_coid.rows(conn, []) == []
        ids = [row[0] for row in conn.execute(select(Order.id).where(Order.client_order_id.in_(present)))]
        assert sorted(r[0] for r in by_id.rows(conn, [*ids, 10**12])) == sorted(ids)


def test_a_refused_raw_write_raises_like_core_and_rolls_back(store: Store) -> None:
    world = make_world(store)
    coid = world.pending_order()  # the client order id exists: a second insert violates UNIQUE
    when = datetime(2024, 3, 4, tzinfo=timezone.utc)
    row = _order_row(world, coid, when)
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        raw_insert(ORDERS, list(row), returning_id=True).insert_returning(conn, [row])
    with store.engine.connect() as conn:  # the pool hands out a usable connection again
        assert conn.execute(select(Order.id).where(Order.client_order_id == coid)).all()


def test_several_rows_get_their_own_ids_in_order(store: Store) -> None:
    """PostgreSQL inserts several rows in one pipelined ``executemany``; each row's id
    must still come back in the rows' order."""
    world = make_world(store)
    when = datetime(2024, 3, 5, tzinfo=timezone.utc)
    coids = [world.unique(f"multi{i}") for i in range(5)]
    rows = [_order_row(world, coid, when) for coid in coids]
    with store.engine.begin() as conn:
        ids = raw_insert(ORDERS, list(rows[0]), returning_id=True).insert_returning(conn, rows)
    assert len(set(ids)) == 5
    assert [store.get_order(key).client_order_id for key in ids] == coids
