"""The schema itself: constraints hold even for writes that bypass the Store."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import Engine, insert, inspect
from sqlalchemy.exc import IntegrityError

from engine.errors import DomainError
from engine.types import utcnow
from persistence.base import Base
from persistence.models import Order
from persistence.schema import missing_tables
from persistence.store import Store
from tests.fixtures.db_fixtures import seed_owner_portfolio


def _order_row(seeded, **overrides):
    row = {
        "portfolio_id": seeded.portfolio_id, "asset_id": seeded.asset_id, "client_order_id": "raw-1",
        "symbol": "EURUSD", "side": "buy", "order_type": "market", "status": "pending", "action": "open",
        "quantity": Decimal("1"), "filled_quantity": Decimal("0"), "commission": Decimal("0"),
        "details": {}, "created_at": utcnow(), "updated_at": utcnow(),
    }
    row.update(overrides)
    return row


def _insert(engine: Engine, row: dict) -> None:
    with engine.begin() as conn:
        conn.execute(insert(Order), row)


def test_every_model_table_exists_with_the_indexes_the_api_filters_on(store: Store) -> None:
    assert missing_tables(store.engine) == []
    inspector = inspect(store.engine)
    order_indexes = {tuple(ix["column_names"]) for ix in inspector.get_indexes("orders")}
    assert {("portfolio_id", "created_at"), ("asset_id", "created_at"), ("status", "created_at")} <= order_indexes
    position_indexes = {tuple(ix["column_names"]) for ix in inspector.get_indexes("positions")}
    assert ("asset_id", "is_open") in position_indexes
    audit_indexes = {tuple(ix["column_names"]) for ix in inspector.get_indexes("audit_logs")}
    assert {("created_at",), ("user_id", "created_at")} <= audit_indexes
    assert len(Base.metadata.tables) == 13  # 13: login_failures (the lockout policy)


@pytest.mark.parametrize(
    "overrides",
    [{"quantity": Decimal("-1")}, {"quantity": Decimal("0")}, {"side": "long"}, {"status": "done"},
     {"portfolio_id": 999}],
    ids=["negative-quantity", "zero-quantity", "bad-side", "bad-status", "unknown-portfolio"],
)
def test_the_database_refuses_invalid_orders_written_around_the_store(store: Store, overrides) -> None:
    seeded = seed_owner_portfolio(store)
    with pytest.raises(IntegrityError):
        _insert(store.engine, _order_row(seeded, **overrides))


def test_a_client_order_id_cannot_be_recorded_twice_even_around_the_store(store: Store) -> None:
    seeded = seed_owner_portfolio(store)
    _insert(store.engine, _order_row(seeded))
    with pytest.raises(IntegrityError):
        _insert(store.engine, _order_row(seeded))


def test_a_bad_filter_value_is_a_domain_error_naming_the_filter(store: Store) -> None:
    with pytest.raises(DomainError, match="status: 'done' is not one of pending, open"):
        store.list_orders(status="done")
