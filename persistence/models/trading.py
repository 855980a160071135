"""Orders and positions (seed §3 order lifecycle)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from persistence.base import Base, JSONType, Money, UTCDateTime
from persistence.enums import OrderStatus, OrderType, Side, sql_in
from persistence.models._columns import (
    IdType,
    created_at,
    non_negative,
    positive,
    primary_key,
    updated_at,
)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(positive("quantity"), name="quantity_positive"),
        CheckConstraint(sql_in("side", Side), name="side"),
        CheckConstraint(sql_in("order_type", OrderType), name="order_type"),
        CheckConstraint(sql_in("status", OrderStatus), name="status"),
        CheckConstraint(non_negative("filled_quantity"), name="filled_quantity_non_negative"),
        Index("ix_orders_portfolio_id_created_at", "portfolio_id", "created_at"),
        Index("ix_orders_asset_id_created_at", "asset_id", "created_at"),
        Index("ix_orders_status_created_at", "status", "created_at"),
        Index("ix_orders_user_id_created_at", "user_id", "created_at"),
        Index("ix_orders_created_at", "created_at"),
    )

    id: Mapped[int] = primary_key()
    portfolio_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("portfolios.id", ondelete="CASCADE"), nullable=False
    )
    asset_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("assets.id", ondelete="CASCADE"), nullable=False
    )
    user_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="SET NULL")
    )
    # The idempotency key: the same intent recorded twice is one row.
    client_order_id: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    broker_order_id: Mapped[str | None] = mapped_column(String(128))
    symbol: Mapped[str] = mapped_column(String(32), nullable=False)
    side: Mapped[str] = mapped_column(String(8), nullable=False)
    order_type: Mapped[str] = mapped_column(String(16), nullable=False, default="market")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    # "open" opens a position, "close" closes position_id (seed §3 decisions).
    action: Mapped[str] = mapped_column(String(8), nullable=False, default="open")
    position_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("positions.id", ondelete="SET NULL", use_alter=True)
    )
    quantity: Mapped[Decimal] = mapped_column(Money(), nullable=False)
    price: Mapped[Decimal | None] = mapped_column(Money())
    sl: Mapped[Decimal | None] = mapped_column(Money())
    tp: Mapped[Decimal | None] = mapped_column(Money())
    filled_quantity: Mapped[Decimal] = mapped_column(Money(), nullable=False, default=0)
    filled_price: Mapped[Decimal | None] = mapped_column(Money())
    commission: Mapped[Decimal] = mapped_column(Money(), nullable=False, default=0)
    reason: Mapped[str | None] = mapped_column(String(1024))
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()
    filled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Position(Base):
    __tablename__ = "positions"
    __table_args__ = (
        CheckConstraint(positive("quantity"), name="quantity_positive"),
        CheckConstraint(sql_in("side", Side), name="side"),
        Index("ix_positions_asset_id_is_open", "asset_id", "is_open"),
        Index("ix_positions_portfolio_id_is_open", "portfolio_id", "is_open"),
        Index("ix_positions_opened_at", "opened_at"),
    )

    id: Mapped[int] = primary_key()
    portfolio_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("portfolios.id", ondelete="CASCADE"), nullable=False
    )
    asset_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("assets.id", ondelete="CASCADE"), nullable=False
    )
    # One position per opening order: makes "open position" idempotent per order.
    opening_order_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("orders.id", ondelete="SET NULL"), unique=True
    )
    closing_order_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("orders.id", ondelete="SET NULL")
    )
    broker_position_id: Mapped[str | None] = mapped_column(String(128))
    symbol: Mapped[str] = mapped_column(String(32), nullable=False)
    side: Mapped[str] = mapped_column(String(8), nullable=False)
    quantity: Mapped[Decimal] = mapped_column(Money(), nullable=False)
    entry_price: Mapped[Decimal] = mapped_column(Money(), nullable=False)
    current_price: Mapped[Decimal | None] = mapped_column(Money())
    close_price: Mapped[Decimal | None] = mapped_column(Money())
    sl: Mapped[Decimal | None] = mapped_column(Money())
    tp: Mapped[Decimal | None] = mapped_column(Money())
    unrealized_pnl: Mapped[Decimal] = mapped_column(Money(), nullable=False, default=0)
    realized_pnl: Mapped[Decimal] = mapped_column(Money(), nullable=False, default=0)
    commission: Mapped[Decimal] = mapped_column(Money(), nullable=False, default=0)
    swap: Mapped[Decimal] = mapped_column(Money(), nullable=False, default=0)
    is_open: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    opened_at: Mapped[datetime] = created_at()
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    close_reason: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = updated_at()
