"""The audit log: one row per state change, written in the change's transaction (INT-08).

Repeated authentication failures are the exception: they are aggregated, one row per
(action, user, client address, target, details) and minute, whose ``count`` and
``last_seen_at`` grow with every repeat (``persistence.store._audit``), so a flood of
refused requests cannot flood the log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from persistence.base import Base, JSONType, UTCDateTime
from persistence.models._columns import IdType, created_at, primary_key


class AuditLog(Base):
    __tablename__ = "audit_logs"
    __table_args__ = (
        Index("ix_audit_logs_created_at", "created_at"),
        Index("ix_audit_logs_user_id_created_at", "user_id", "created_at"),
        Index("ix_audit_logs_target", "target_type", "target_id"),
    )

    id: Mapped[int] = primary_key()
    user_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="SET NULL")
    )
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    # Idempotency key of the write that produced this row: a resent write with the same
    # request id is recognised here and not applied twice.
    request_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = created_at()
    # How many events the row stands for (1 but for aggregated rows); aggregated rows
    # only: the last event's time (``created_at`` is the first's) and the upsert's key.
    # ``count`` has a server default only: the raw batch insert names its columns.
    count: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("1"))
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    aggregate_key: Mapped[str | None] = mapped_column(String(64), unique=True)
