"""Backtest runs (one request, possibly many CSVs x parameter sets) and their results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from persistence.base import Base, JSONType, UTCDateTime
from persistence.enums import BacktestStatus, sql_in
from persistence.models._columns import IdType, created_at, primary_key, updated_at


class BacktestRun(Base):
    __tablename__ = "backtest_runs"
    __table_args__ = (
        CheckConstraint(sql_in("status", BacktestStatus), name="status"),
        Index("ix_backtest_runs_owner_id_created_at", "owner_id", "created_at"),
    )

    id: Mapped[int] = primary_key()
    owner_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    strategy_plugin: Mapped[str] = mapped_column(String(64), nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    data_paths: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    output_dir: Mapped[str | None] = mapped_column(String(1024))
    total_jobs: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    completed_jobs: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class BacktestResult(Base):
    """One job of a run: one CSV with one parameter combination."""

    __tablename__ = "backtest_results"
    __table_args__ = (Index("ix_backtest_results_run_id", "run_id"),)

    id: Mapped[int] = primary_key()
    run_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("backtest_runs.id", ondelete="CASCADE"), nullable=False
    )
    data_path: Mapped[str] = mapped_column(String(1024), nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    # statistics as JSON strings/numbers (total_return, sharpe, max_drawdown, ...).
    stats: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    trades_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    equity_curve_path: Mapped[str | None] = mapped_column(String(1024))
    trades_path: Mapped[str | None] = mapped_column(String(1024))
    plot_path: Mapped[str | None] = mapped_column(String(1024))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at()
