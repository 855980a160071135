"""Closed sets of values stored in string columns (each backed by a CHECK constraint).

Order side/type/status come from ``engine.types`` so the engine and the database agree.
"""

from __future__ import annotations

from enum import StrEnum

from engine.types import OrderStatus, OrderType, Side

MONEY_SCALE = 8
"""Decimal places of every stored money, price and quantity column (``persistence.base.Money``).
Here, not in ``persistence.base``, so that records can be used without importing SQLAlchemy."""

__all__ = [
    "AssetStatus",
    "BacktestStatus",
    "OrderStatus",
    "OrderType",
    "PortfolioStatus",
    "Role",
    "Side",
    "ORDER_TRANSITIONS",
    "sql_in",
]


class Role(StrEnum):
    ADMIN = "admin"
    USER = "user"


class PortfolioStatus(StrEnum):
    INACTIVE = "inactive"
    ACTIVE = "active"
    ERRORED = "errored"


class AssetStatus(StrEnum):
    INACTIVE = "inactive"
    ACTIVE = "active"
    ERRORED = "errored"  # the supervisor gave up restarting it (ARCHITECTURE.md)


class BacktestStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ORDER_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset(
        {OrderStatus.OPEN, OrderStatus.FILLED, OrderStatus.REJECTED, OrderStatus.CANCELLED}
    ),
    OrderStatus.OPEN: frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED}),
    OrderStatus.FILLED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
}
"""Allowed order status changes; terminal states have none (seed §3 lifecycle)."""


def sql_in(column: str, values: type[StrEnum]) -> str:
    """SQL text ``column IN ('a', 'b')`` for a CHECK constraint over an enum's values."""
    quoted = ", ".join(f"'{member.value}'" for member in values)
    return f"{column} IN ({quoted})"
