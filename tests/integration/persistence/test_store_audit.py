"""INT-08: every Store write leaves exactly one audit row, written atomically with it."""

from __future__ import annotations

import pytest

from persistence.records import AuditContext
from persistence.store import WRITE_OPS, Store, WriteRequest
from tests.integration.persistence._helpers import (
    audit_count,
    install_failing_audit_trigger,
    newest_audit,
    remove_failing_audit_trigger,
    snapshot,
)
from tests.integration.persistence._store_ops import OP_CASES, make_world


def test_the_case_table_covers_every_write_operation() -> None:
    assert set(OP_CASES) == set(WRITE_OPS), (
        f"missing cases: {sorted(set(WRITE_OPS) - set(OP_CASES))}; "
        f"unknown: {sorted(set(OP_CASES) - set(WRITE_OPS))}"
    )


def test_every_write_writes_exactly_one_audit_row_with_who_what_and_where(store: Store) -> None:
    world = make_world(store)
    problems = []
    for op, case in OP_CASES.items():
        call, expected_action = case(world)
        ctx = AuditContext(user_id=world.owner_id, is_admin=True, ip="203.0.113.7", user_agent="pytest")
        before = audit_count(store.engine)
        call(ctx)
        added = audit_count(store.engine) - before
        row = newest_audit(store.engine)
        if added != 1:
            problems.append(f"{op}: {added} audit rows")
        elif (row.action, row.user_id, row.ip, row.user_agent) != (
            expected_action, world.owner_id, "203.0.113.7", "pytest"
        ):
            problems.append(f"{op}: audit row {row.action, row.user_id, row.ip, row.user_agent}")
        elif op != "audit" and row.target_id is None:
            problems.append(f"{op}: audit row names no target")
    assert problems == []


def test_a_failing_audit_insert_leaves_neither_the_change_nor_the_audit_row(store: Store) -> None:
    world = make_world(store)
    still_written = []
    for op, case in OP_CASES.items():
        call, _ = case(world)
        before = snapshot(store.engine)
        install_failing_audit_trigger(store.engine)
        try:
            with pytest.raises(Exception, match="forced audit failure|refused by the database"):
                call(AuditContext.system())
        finally:
            remove_failing_audit_trigger(store.engine)
        if snapshot(store.engine) != before:
            still_written.append(op)
    assert still_written == []


def test_a_batch_whose_audit_rows_fail_stores_none_of_its_changes(store: Store) -> None:
    world = make_world(store)
    writes = [
        WriteRequest(op="record_order_intent", ctx=AuditContext.system(request_id=f"b{i}"), args=(world.intent(),))
        for i in range(5)
    ]
    before = snapshot(store.engine)
    install_failing_audit_trigger(store.engine)
    try:
        outcomes = store.apply_batch(writes)
    finally:
        remove_failing_audit_trigger(store.engine)
    assert [o.ok for o in outcomes] == [False] * 5
    assert all("forced audit failure" in (o.error or "") for o in outcomes)
    assert snapshot(store.engine) == before
    assert store.apply_batch(writes[:1])[0].ok  # and it works once the database accepts audits
    assert store.list_orders(asset_id=world.asset_id).total == 1
