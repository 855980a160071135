"""A described write (``WriteRequest``) whose arguments do not fit its operation is the
client's error (``DomainError`` naming the operation); a ``TypeError`` raised while the
operation runs is a bug and stays one (it is not dressed up as bad input)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from engine.errors import DomainError
from persistence.records import AuditContext
from persistence.store import WRITE_OPS, Store, WriteRequest
from tests.integration.persistence._helpers import audit_count
from tests.integration.persistence._store_ops import World, make_world


class _BuggyStore(Store):
    """A Store with one operation whose body has a bug (a call with a missing argument)."""

    def buggy_write(self, ctx: AuditContext, value: int) -> Any:
        def needs_two(a: int, b: int) -> int:
            return a + b

        return needs_two(value)  # type: ignore[call-arg]  # the bug: TypeError "missing ... argument"


@pytest.fixture
def buggy_store(db_url: str) -> Iterator[Store]:
    WRITE_OPS["buggy_write"] = "tests"  # what ``@write_op`` does; undone below
    instance = _BuggyStore.from_url(db_url)
    try:
        yield instance
    finally:
        instance.close()
        WRITE_OPS.pop("buggy_write", None)  # the registry is global: leave it as it was


def _mark(world: World, request_id: str, *args: Any, **kwargs: Any) -> WriteRequest:
    return WriteRequest(op="mark_order_rejected", ctx=AuditContext.system(request_id=request_id),
                        args=args, kwargs=kwargs)


@pytest.mark.parametrize("args, kwargs, says", [
    (("coid",), {}, "missing a required argument: 'reason'"),
    (("coid", "no margin", "extra"), {}, "too many positional arguments"),
    (("coid", "no margin"), {"colour": "red"}, "got an unexpected keyword argument 'colour'"),
], ids=["missing", "too many", "unknown keyword"])
def test_a_request_whose_arguments_do_not_fit_the_operation_is_a_domain_error(
    store: Store, args: tuple[Any, ...], kwargs: dict[str, Any], says: str
) -> None:
    world = make_world(store)
    before = audit_count(store.engine)
    with pytest.raises(DomainError, match=f"mark_order_rejected: {says}"):
        store.apply(_mark(world, "m1", *args, **kwargs))
    # In a batch it fails alone; the write beside it commits.
    good = WriteRequest(op="record_order_intent", ctx=AuditContext.system(request_id="m2"),
                        args=(world.intent(),))
    bad, ok = store.apply_batch([_mark(world, "m3", *args, **kwargs), good])
    assert not bad.ok and bad.error_type == "DomainError" and says in (bad.error or "")
    assert ok.ok
    assert audit_count(store.engine) == before + 1


def test_a_type_error_inside_an_operation_stays_a_bug(buggy_store: Store) -> None:
    world = make_world(buggy_store)
    write = WriteRequest(op="buggy_write", ctx=AuditContext.system(request_id="b1"), args=(1,))
    with pytest.raises(TypeError, match="missing 1 required positional argument"):
        buggy_store.apply(write)
    # In a batch: an internal failure of that write alone, not the client's error.
    good = WriteRequest(op="record_order_intent", ctx=AuditContext.system(request_id="b2"),
                        args=(world.intent(),))
    bad, ok = buggy_store.apply_batch([write, good])
    assert not bad.ok and bad.error_type == "TypeError"
    assert "internal error" in (bad.error or "") and "argument" not in (bad.error or "")
    assert ok.ok
