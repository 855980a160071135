"""Column types, records and settings, without a database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError
from sqlalchemy.dialects import postgresql, sqlite

from actors.persistence_actor import PersistenceSettings, raise_for_outcome
from engine.errors import ConfigError, DomainError, NotFound
from persistence.base import Money, UTCDateTime
from persistence.records import AuditContext, OrderIntent, PageRequest, MAX_PAGE_SIZE, Viewer
from persistence.store import WriteOutcome, WriteRequest

SQLITE, POSTGRES = sqlite.dialect(), postgresql.dialect()


def test_money_is_stored_as_exact_text_on_sqlite_and_as_a_decimal_on_postgres() -> None:
    money = Money()
    assert money.process_bind_param(Decimal("123456789012.123456789"), SQLITE) == "123456789012.12345679"
    assert money.process_bind_param(0.1, SQLITE) == "0.10000000"  # float via repr, no drift
    assert money.process_bind_param(Decimal("1.5"), POSTGRES) == Decimal("1.50000000")
    assert money.process_result_value("0.10000000", SQLITE) == Decimal("0.1")
    with pytest.raises(ValueError, match="not a finite number"):
        money.process_bind_param(Decimal("NaN"), SQLITE)


def test_datetimes_go_in_as_utc_and_come_back_aware() -> None:
    column = UTCDateTime()
    paris = datetime(2024, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    stored = column.process_bind_param(paris, SQLITE)
    assert stored == datetime(2024, 3, 1, 12, 0)  # naive UTC text on SQLite
    back = column.process_result_value(stored, SQLITE)
    assert back == paris and back.tzinfo == timezone.utc
    assert column.process_bind_param(paris, POSTGRES).tzinfo == timezone.utc


def test_order_intents_refuse_bad_values_with_the_field_named() -> None:
    base = {"client_order_id": "c", "portfolio_id": 1, "asset_id": 1, "side": "buy", "quantity": "1"}
    OrderIntent(**base)
    for field, bad in (("quantity", "-1"), ("side", "short"), ("client_order_id", ""), ("action", "flip")):
        with pytest.raises(ValidationError, match=field):
            OrderIntent(**{**base, field: bad})


def test_page_size_is_capped_and_contexts_know_their_scope() -> None:
    assert PageRequest(limit=10**6).capped_limit == MAX_PAGE_SIZE
    assert AuditContext.system().viewer() is None
    assert AuditContext(user_id=3).viewer() == Viewer(user_id=3)
    assert AuditContext(user_id=3, is_admin=True).viewer() is None


@pytest.mark.parametrize(("size", "delay"), [(0, 5), (10, -1)])
def test_persistence_settings_refuse_nonsense_naming_the_config_key(size: int, delay: float) -> None:
    with pytest.raises(ConfigError, match="persistence_batch_"):
        PersistenceSettings(batch_size=size, batch_delay_ms=delay)


def test_failed_outcomes_raise_the_engine_error_they_carry() -> None:
    write = WriteRequest(op="create_user", ctx=AuditContext.system(request_id="r"))
    with pytest.raises(NotFound, match="create_user: user 3 not found"):
        raise_for_outcome(WriteOutcome.failure(write, NotFound("user 3 not found")))
    with pytest.raises(DomainError, match="boom"):
        raise_for_outcome(WriteOutcome.failure(write, RuntimeError("boom")))
    assert raise_for_outcome(WriteOutcome.success(write, 42)) == 42
