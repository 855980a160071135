"""System bodies: health, engine status, statistics, audit, config, billing, plugins."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from api.schemas.common import DecimalOut, PublicModel, PublicText


class Health(PublicModel):
    status: str = Field(description='"ok" or "degraded"')
    database: str
    engine: str = Field(description='"running" or "absent"')


class EngineStatus(PublicModel):
    """What the engine reports about itself (supervisors, asset actors, restarts)."""

    running: bool
    details: dict[str, Any] = Field(default_factory=dict)


class StatisticPublic(PublicModel):
    id: int
    portfolio_id: int | None
    asset_id: int | None
    kind: str
    name: str
    value: DecimalOut | None
    values: dict[str, Any]
    created_at: datetime


class TradingFiguresPublic(PublicModel):
    """Trading statistics computed from the ledger (orders and positions); money as exact
    decimal strings, ratios as decimal strings in 0..1 (null where undefined)."""

    capital: DecimalOut = Field(description="the portfolio's total_capital, or the asset's allocated_capital")
    equity: DecimalOut = Field(description="capital + realized_pnl + unrealized_pnl")
    realized_pnl: DecimalOut = Field(description="sum over closed positions, as recorded at each close")
    unrealized_pnl: DecimalOut = Field(description="sum over open positions, at their last mark")
    max_drawdown: DecimalOut = Field(description="largest fall of equity from its running peak (money)")
    max_drawdown_pct: DecimalOut | None = Field(description="max_drawdown as a fraction of that peak")
    trades: int = Field(description="closed positions (round trips)")
    wins: int
    losses: int
    win_rate: DecimalOut | None = Field(description="wins / trades; null without trades")
    open_positions: int
    orders: int = Field(description="orders the broker executed (opening orders and closes)")


class AssetTradingStatisticsPublic(PublicModel):
    asset_id: int
    symbol: str
    figures: TradingFiguresPublic


class PortfolioTradingStatisticsPublic(PublicModel):
    """One portfolio's trading statistics, and each of its assets'."""

    portfolio_id: int
    name: str
    figures: TradingFiguresPublic
    assets: list[AssetTradingStatisticsPublic]


class AuditLogPublic(PublicModel):
    id: int
    user_id: int | None
    action: str
    target_type: str | None
    target_id: str | None
    details: dict[str, Any]
    ip: str | None
    user_agent: str | None
    created_at: datetime
    # Repeated authentication failures share one row per minute: ``count`` events, the
    # first at ``created_at``, the last at ``last_seen_at`` (null for ordinary rows).
    count: int = 1
    last_seen_at: datetime | None = None


class ConfigEntryPublic(PublicModel):
    key: str
    value: Any
    source: str


class ConfigPublic(PublicModel):
    """The gateway's merged config; secret values are replaced by ``"<hidden>"``."""

    values: list[ConfigEntryPublic]


class BillingRecordPublic(PublicModel):
    id: int
    user_id: int
    kind: str
    amount: DecimalOut
    currency: str
    description: str
    period_start: datetime | None
    period_end: datetime | None
    details: dict[str, Any]
    created_at: datetime


class PluginPublic(PublicModel):
    group: str
    name: str
    entry_point: str
    description: str
    params: dict[str, Any]
    error: PublicText | None


class PluginGroupPublic(PublicModel):
    group: str
    plugins: list[PluginPublic]
