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
