"""Create and drop the schema (no migrations yet: ``create_all`` is idempotent)."""

from __future__ import annotations

from pathlib import Path

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


def make_sqlite_folder(url: str) -> None:
    """Create the folder of a SQLite database file (``sqlite:///dir/lts.db``) so that a
    first run on a fresh machine can create the file; other URLs are left alone."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
