"""Billing records, key/value configuration and statistics."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from persistence.base import Base, JSONType, Money, UTCDateTime
from persistence.models._columns import IdType, created_at, primary_key, updated_at


class BillingRecord(Base):
    __tablename__ = "billing_records"
    __table_args__ = (Index("ix_billing_records_user_id_created_at", "user_id", "created_at"),)

    id: Mapped[int] = primary_key()
    user_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(32), nullable=False)  # e.g. usage, fee, credit
    amount: Mapped[Decimal] = mapped_column(Money(), nullable=False)
    currency: Mapped[str] = mapped_column(String(8), nullable=False, default="USD")
    description: Mapped[str] = mapped_column(String(512), nullable=False, default="")
    period_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    created_at: Mapped[datetime] = created_at()


class ConfigEntry(Base):
    __tablename__ = "config"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONType, nullable=True)
    updated_at: Mapped[datetime] = updated_at()


class Statistic(Base):
    """A named set of figures for a portfolio or asset (or the whole engine when both
    are null), e.g. kind="step" name="latency" or kind="backtest" name="summary"."""

    __tablename__ = "statistics"
    __table_args__ = (
        Index("ix_statistics_portfolio_id_created_at", "portfolio_id", "created_at"),
        Index("ix_statistics_asset_id_created_at", "asset_id", "created_at"),
        Index("ix_statistics_kind_name", "kind", "name"),
        CheckConstraint("kind <> ''", name="kind_not_empty"),
    )

    id: Mapped[int] = primary_key()
    portfolio_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("portfolios.id", ondelete="CASCADE")
    )
    asset_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("assets.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    value: Mapped[Decimal | None] = mapped_column(Money())
    values: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    created_at: Mapped[datetime] = created_at()
