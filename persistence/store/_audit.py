"""Aggregated audit rows for repeated authentication failures.

A failed login, a 401 for a dead token or a 403 is worth knowing about, but one row per
request lets anyone flood the audit log (a dead token retried in a loop wrote thousands
of rows a minute). Such events are written with ``aggregate=True``: all events with the
same action, user, client address, target and details within one ``AGGREGATE_WINDOW_S``
window share ONE row, whose ``count`` and ``last_seen_at`` the next event updates. So a
flood writes one row per distinct key and window, not one per request.

The row is found by ``aggregate_key``, a hash of that key and the window start, unique in
``audit_logs``: ``INSERT .. ON CONFLICT (aggregate_key) DO UPDATE`` (PostgreSQL and
SQLite alike) makes two gateway processes racing for the same window add to one row
instead of writing two or failing. The row carries the request id of its latest event,
so an immediate resend of that write is recognised and not counted twice.

Real security signals (a lockout starting) are not aggregated: ``insert_audit_row``
writes them as rows of their own.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from engine.types import utcnow
from persistence.models import AuditLog
from persistence.records import AuditContext, AuditRecord

AGGREGATE_WINDOW_S = 60
"""Length of one aggregation window: events of one key within it share a row."""

_TABLE = AuditLog.__table__
_RECORD_FIELDS = tuple(AuditRecord.model_fields)


def window_start(at: datetime) -> datetime:
    """The start of the aggregation window ``at`` falls in."""
    epoch = int(at.timestamp()) // AGGREGATE_WINDOW_S * AGGREGATE_WINDOW_S
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def aggregate_key(values: dict[str, Any]) -> str:
    """The hash naming an event's aggregated row (key fields plus window start)."""
    key = [
        values["action"],
        values["user_id"],
        values["ip"],
        values["target_type"],
        values["target_id"],
        values["details"],
        window_start(values["created_at"]).isoformat(),
    ]
    text = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def upsert_aggregated(session: Session, values: dict[str, Any]) -> AuditRecord:
    """Count one event into its window's row (creating it on the first event); returns
    the row as it now stands. ``values``: the audit row's columns."""
    row_values = {**values, "aggregate_key": aggregate_key(values), "count": 1, "last_seen_at": values["created_at"]}
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(_TABLE).values(**row_values)
    statement = statement.on_conflict_do_update(
        index_elements=[_TABLE.c.aggregate_key],
        set_={
            "count": _TABLE.c.count + 1,
            "last_seen_at": statement.excluded.last_seen_at,
            "request_id": func.coalesce(statement.excluded.request_id, _TABLE.c.request_id),
        },
    ).returning(*(_TABLE.c[name] for name in _RECORD_FIELDS))
    row = session.execute(statement).one()
    return AuditRecord.model_validate(dict(zip(_RECORD_FIELDS, row, strict=True)))


def insert_audit_row(
    session: Session,
    ctx: AuditContext,
    action: str,
    target_type: str | None,
    target_id: Any,
    details: dict[str, Any],
) -> None:
    """One more audit row of its own in the current transaction (a lockout starting,
    written beside the aggregated failure that caused it). No request id: the write's
    own row carries it."""
    session.execute(
        _TABLE.insert().values(
            user_id=ctx.user_id,
            action=action,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            details=details,
            ip=ctx.ip,
            user_agent=ctx.user_agent,
            request_id=None,
            created_at=utcnow(),
        )
    )
