"""Column helpers shared by the model modules."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer
from sqlalchemy.orm import Mapped, mapped_column

from engine.types import utcnow
from persistence.base import UTCDateTime

IdType = BigInteger().with_variant(Integer(), "sqlite")
"""64-bit ids on PostgreSQL; SQLite needs exactly INTEGER for its rowid alias."""


def primary_key() -> Mapped[int]:
    return mapped_column(IdType, primary_key=True, autoincrement=True)


def created_at() -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), default=utcnow, nullable=False)


def updated_at() -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False)


def positive(column: str) -> str:
    """CHECK text ``column > 0`` that also works for Money stored as text on SQLite."""
    return f"CAST({column} AS NUMERIC) > 0"


def non_negative(column: str) -> str:
    return f"CAST({column} AS NUMERIC) >= 0"
