"""Create and drop the schema (no migrations yet: ``create_all`` is idempotent)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Engine, inspect, text

import persistence.models  # noqa: F401 - registers every table on Base.metadata
from engine.errors import ConfigError
from persistence.base import Base


def create_schema(engine: Engine) -> None:
    """Create every missing table and index, and add the nullable columns a table made by
    an older version lacks (e.g. ``assets.broker_secrets``); nothing else is altered."""
    Base.metadata.create_all(engine)
    _add_missing_columns(engine)


def _missing_columns(engine: Engine) -> list[tuple[str, Column[Any]]]:
    inspector = inspect(engine)
    present = set(inspector.get_table_names())
    missing = []
    for name, table in Base.metadata.tables.items():
        if name in present:
            have = {c["name"] for c in inspector.get_columns(name)}
            missing.extend((name, c) for c in table.columns if c.name not in have)
    return missing


def _add_missing_columns(engine: Engine) -> None:
    """``ALTER TABLE ... ADD COLUMN`` for nullable columns only: a required column would
    need a value for the rows already there, which is a migration, not this."""
    missing = _missing_columns(engine)
    if not missing:
        return
    preparer = engine.dialect.identifier_preparer
    with engine.begin() as conn:
        for table, column in missing:
            if not column.nullable:
                raise ConfigError(f"database: table {table} lacks the required column {column.name}; "
                                  "this version needs a migration of that table")
            kind = column.type.compile(dialect=engine.dialect)
            conn.execute(text(f"ALTER TABLE {preparer.quote(table)} ADD COLUMN {preparer.quote(column.name)} {kind}"))


def drop_schema(engine: Engine) -> None:
    Base.metadata.drop_all(engine)


def missing_tables(engine: Engine) -> list[str]:
    """Tables the models define that the database lacks, and ``table.column`` for
    columns an existing table lacks (empty when the schema is there)."""
    present = set(inspect(engine).get_table_names())
    columns = [f"{table}.{column.name}" for table, column in _missing_columns(engine)]
    return sorted(set(Base.metadata.tables) - present) + columns


def make_sqlite_folder(url: str) -> None:
    """Create the folder of a SQLite database file (``sqlite:///dir/lts.db``) so that a
    first run on a fresh machine can create the file; other URLs are left alone."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        from persistence.database import prepare_sqlite_file  # the file 0600, its folder 0700

        prepare_sqlite_file(url)
