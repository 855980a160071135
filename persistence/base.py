"""ORM base and the column types every model shares.

Kept tiny on purpose (Freqtrade's ``persistence/base.py``): models import ``Base`` and the
types from here, nothing else.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, Numeric, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator, TypeEngine

from engine.types import ensure_utc, to_decimal
from persistence.enums import MONEY_SCALE  # decimal places of every money column (no SQLAlchemy there)

_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)

# Deterministic constraint names, so the same schema on SQLite and PostgreSQL has the same
# names and error messages can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every LTS table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that always hands back aware UTC datetimes.

    SQLite has no time zone support and returns naive values; PostgreSQL returns the
    session's zone. Both are normalised to UTC here, and naive inputs are taken to be UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        aware = ensure_utc(value)
        # SQLite stores text: store naive UTC so lexical order is time order.
        return aware.replace(tzinfo=None) if dialect.name == "sqlite" else aware

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Money(TypeDecorator[Decimal]):
    """Exact decimal money/price/quantity with ``MONEY_SCALE`` places.

    PostgreSQL stores ``NUMERIC(20, 8)``. SQLite has no decimal type (its NUMERIC affinity
    keeps only 15 significant digits), so there the value is stored as canonical text and
    comes back as the exact ``Decimal`` that went in. Comparisons in SQL on SQLite must
    therefore ``CAST(col AS NUMERIC)`` (the CHECK constraints do).
    """

    impl = Numeric(20, MONEY_SCALE, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(20, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        number = to_decimal(value)
        assert number is not None
        if not number.is_finite():
            raise ValueError(f"not a finite number: {value!r}")
        quantised = number.quantize(_QUANTUM)
        return format(quantised, "f") if dialect.name == "sqlite" else quantised

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(value) if isinstance(value, str) else to_decimal(value)


JSONType = JSON().with_variant(JSONB(), "postgresql")
"""JSON on SQLite, JSONB on PostgreSQL."""
