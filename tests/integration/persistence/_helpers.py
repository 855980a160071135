"""Helpers shared by the persistence integration tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select, text

import persistence.models  # noqa: F401 - registers the tables
from persistence.base import Base
from persistence.models import AuditLog


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every LTS table, in primary-key order: equal snapshots = nothing written."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = conn.execute(select(table).order_by(*table.primary_key.columns)).all()
            tables[table.name] = [tuple(row) for row in rows]
    return tables


def audit_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(AuditLog)) or 0)


def newest_audit(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(AuditLog).order_by(AuditLog.id.desc()).limit(1)).one()


def install_failing_audit_trigger(engine: Engine) -> None:
    """Make every INSERT into audit_logs fail, in the database itself (no mocks)."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER lts_fail_audit BEFORE INSERT ON audit_logs "
                    "BEGIN SELECT RAISE(ABORT, 'forced audit failure'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION lts_fail_audit() RETURNS trigger AS $$ "
                    "BEGIN RAISE EXCEPTION 'forced audit failure'; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER lts_fail_audit BEFORE INSERT ON audit_logs "
                    "FOR EACH ROW EXECUTE FUNCTION lts_fail_audit()"
                )
            )


def remove_failing_audit_trigger(engine: Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER lts_fail_audit"))
        else:
            conn.execute(text("DROP TRIGGER lts_fail_audit ON audit_logs"))
            conn.execute(text("DROP FUNCTION lts_fail_audit()"))
