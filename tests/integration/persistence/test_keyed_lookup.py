"""``persistence.store._lookup.keyed``: a key-list lookup built once per statement and
database, with the keys bound at execution (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import select

from persistence.models import Order
from persistence.store import Store
from persistence.store._lookup import KEYS, keyed
from tests.integration.persistence._store_ops import make_world

_CLIENT_IDS = select(Order.client_order_id)
_IDS = select(Order.id)


def test_keyed_finds_exactly_the_keys_present_and_is_built_once(store: Store) -> None:
    world = make_world(store)
    present = [world.pending_order() for _ in range(3)]
    with store.engine.connect() as conn, store._write_sessions() as session:  # noqa: SLF001
        stmt = keyed(session, _CLIENT_IDS, Order.client_order_id)
        assert keyed(session, _CLIENT_IDS, Order.client_order_id) is stmt  # reused, not rebuilt
        found = set(session.scalars(stmt, {KEYS: [*present[:2], "missing-1", "missing-2"]}))
        assert found == set(present[:2])
        assert set(session.scalars(stmt, {KEYS: []})) == set()
        ids = set(session.scalars(keyed(session, _IDS, Order.id), {KEYS: [1, 2, 3, 10**9]}))
        assert ids == set(conn.scalars(select(Order.id).where(Order.id.in_([1, 2, 3]))))
