"""Create and drop the schema (no migrations yet: ``create_all`` is idempotent)."""

from __future__ import annotations

from sqlalchemy import Engine, inspect

import persistence.models  # noqa: F401 - registers every table on Base.metadata
from persistence.base import Base


def create_schema(engine: Engine) -> None:
    """Create every missing table and index; existing ones are left alone."""
    Base.metadata.create_all(engine)


def drop_schema(engine: Engine) -> None:
    Base.metadata.drop_all(engine)


def missing_tables(engine: Engine) -> list[str]:
    """Tables the models define that the database lacks (empty when the schema is there)."""
    present = set(inspect(engine).get_table_names())
    return sorted(set(Base.metadata.tables) - present)
