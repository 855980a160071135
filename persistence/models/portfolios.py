"""Portfolios and their assets, each with the plugin names and JSON configs a user chose."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from persistence.base import Base, JSONType, Money, UTCDateTime
from persistence.enums import AssetStatus, PortfolioStatus, sql_in
from persistence.models._columns import IdType, created_at, non_negative, primary_key, updated_at


class Portfolio(Base):
    __tablename__ = "portfolios"
    __table_args__ = (
        UniqueConstraint("owner_id", "name", name="uq_portfolios_owner_id_name"),
        CheckConstraint(sql_in("status", PortfolioStatus), name="status"),
        CheckConstraint(non_negative("total_capital"), name="total_capital_non_negative"),
        CheckConstraint("latency IS NULL OR latency > 0", name="latency_positive"),
        Index("ix_portfolios_owner_id", "owner_id"),
        Index("ix_portfolios_is_active", "is_active"),
    )

    id: Mapped[int] = primary_key()
    owner_id: Mapped[int] = mapped_column(IdType, ForeignKey("users.id"), nullable=False)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    description: Mapped[str] = mapped_column(String(1024), nullable=False, default="")
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=PortfolioStatus.INACTIVE.value
    )
    portfolio_plugin: Mapped[str] = mapped_column(
        String(64), nullable=False, default="default_portfolio"
    )
    portfolio_config: Mapped[dict[str, Any]] = mapped_column(
        JSONType, nullable=False, default=dict
    )
    total_capital: Mapped[Decimal] = mapped_column(Money(), nullable=False)
    # Seconds between heartbeats for this portfolio; null = the global_latency config key.
    latency: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class Asset(Base):
    __tablename__ = "assets"
    __table_args__ = (
        UniqueConstraint("portfolio_id", "symbol", name="uq_assets_portfolio_id_symbol"),
        CheckConstraint(sql_in("status", AssetStatus), name="status"),
        CheckConstraint(non_negative("allocated_capital"), name="allocated_non_negative"),
        CheckConstraint("max_positions >= 1", name="max_positions_positive"),
        Index("ix_assets_portfolio_id_is_active", "portfolio_id", "is_active"),
    )

    id: Mapped[int] = primary_key()
    portfolio_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("portfolios.id", ondelete="CASCADE"), nullable=False
    )
    symbol: Mapped[str] = mapped_column(String(32), nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default=AssetStatus.INACTIVE.value
    )
    status_reason: Mapped[str | None] = mapped_column(String(1024))
    strategy_plugin: Mapped[str] = mapped_column(
        String(64), nullable=False, default="default_strategy"
    )
    strategy_config: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    broker_plugin: Mapped[str] = mapped_column(String(64), nullable=False, default="default_broker")
    broker_config: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    # The user's own broker credentials, each encrypted (engine.credentials): name ->
    # Fernet token. Kept out of broker_config, which responses and audit rows show.
    broker_secrets: Mapped[dict[str, str] | None] = mapped_column(JSONType)
    pipeline_plugin: Mapped[str] = mapped_column(
        String(64), nullable=False, default="default_pipeline"
    )
    pipeline_config: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    allocated_capital: Mapped[Decimal] = mapped_column(Money(), nullable=False, default=0)
    max_positions: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    # Where simulation market data comes from, e.g. {"csv_path": "data/eurusd.csv"}.
    data_source: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    errored_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()
