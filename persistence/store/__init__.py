"""The Store: the one place for every state-changing operation, plus the reads.

Every write takes an ``AuditContext`` first and writes exactly one ``audit_logs`` row in
its own transaction (INT-08); a write given a ``request_id`` is idempotent. Reads return
frozen records from ``persistence.records`` and accept ``viewer=`` for owner scoping.

    store = Store.from_url("sqlite:///./lts.db")
    user = store.create_user(AuditContext.system(), username="ann", password_hash=h)

Writes can also be described as data (``WriteRequest``) and applied one by one
(``apply``) or many per transaction (``apply_batch``), which is what the persistence
actor does.
"""

from __future__ import annotations

from typing import Any

from persistence.store.writes import WriteOutcome, WriteRequest

__all__ = ["Store", "WriteOutcome", "WriteRequest", "WRITE_OPS"]

# The Store and its write table import SQLAlchemy and the ORM models (about half a second
# of a process start): loaded on first use. An asset actor, which describes its writes
# and reads through the persistence actor, never loads them, so a restart is that much
# faster.
_LAZY = {"Store": "persistence.store._store", "WRITE_OPS": "persistence.store._unit"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
