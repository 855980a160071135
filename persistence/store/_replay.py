"""How a resent (already applied) write rebuilds its result from its audit row."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy.orm import Session

from engine.errors import NotFound
from persistence.models import AuditLog

RecordT = TypeVar("RecordT", bound=BaseModel)


def target_record(
    model: type[Any], record: type[RecordT], *, int_key: bool = True
) -> Callable[[Session, AuditLog], RecordT]:
    """Replay by loading the audit row's target and returning its current record."""

    def replay(session: Session, row: AuditLog) -> RecordT:
        key: Any = int(row.target_id) if int_key and row.target_id is not None else row.target_id
        obj = session.get(model, key) if key is not None else None
        if obj is None:
            raise NotFound(f"{row.target_type} {row.target_id} no longer exists")
        return record.model_validate(obj)

    return replay


def nothing(_session: Session, _row: AuditLog) -> None:
    """Replay of a write whose result is ``None`` (deletes)."""
    return None


def count_from_details(_session: Session, row: AuditLog) -> int:
    """Replay of a bulk write that returned how many rows it changed."""
    return int(row.details.get("count", 0))
