"""Asset bodies. Plugin configs are checked against the plugin's ``plugin_params``."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import Field, model_validator

from api.schemas.common import DecimalOut, JsonObject, PublicModel, PublicText, RequestModel
from engine.credentials import PLACEHOLDER
from engine.types import Money
from persistence.enums import AssetStatus

PLUGIN_NAME = Field(min_length=1, max_length=64)
SYMBOL = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_./\-]+$")


class AssetCreate(RequestModel):
    symbol: str = SYMBOL
    strategy_plugin: str = Field(default="default_strategy", min_length=1, max_length=64)
    strategy_config: JsonObject = Field(default_factory=dict)
    broker_plugin: str = Field(default="default_broker", min_length=1, max_length=64)
    broker_config: JsonObject = Field(default_factory=dict)
    pipeline_plugin: str = Field(default="default_pipeline", min_length=1, max_length=64)
    pipeline_config: JsonObject = Field(default_factory=dict)
    allocated_capital: Money = Field(default=Decimal("0"), ge=0, max_digits=20, decimal_places=8)
    max_positions: int = Field(default=1, ge=1, le=1000)
    data_source: dict[str, Any] = Field(default_factory=dict, description='e.g. {"csv_path": "data/eurusd.csv"}')


class AssetUpdate(RequestModel):
    """Symbol, position limit and data source (plugin configs have their own PATCH routes)."""

    symbol: str | None = Field(default=None, min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_./\-]+$")
    max_positions: int | None = Field(default=None, ge=1, le=1000)
    data_source: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _something(self) -> "AssetUpdate":
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        return self


class PluginConfigUpdate(RequestModel):
    """Switch an asset's strategy/broker/pipeline plugin and/or replace its config.

    ``plugin`` left out keeps the current plugin; ``config`` replaces the whole config."""

    plugin: str | None = Field(default=None, min_length=1, max_length=64)
    config: JsonObject = Field(default_factory=dict)


class AllocationUpdate(RequestModel):
    allocated_capital: Money = Field(ge=0, max_digits=20, decimal_places=8)


class AssetPublic(PublicModel):
    id: int
    portfolio_id: int
    symbol: str
    is_active: bool
    status: AssetStatus
    status_reason: PublicText | None
    strategy_plugin: str
    strategy_config: dict[str, Any]
    broker_plugin: str
    broker_config: dict[str, Any] = Field(
        description=f'credentials are write-only: a stored one reads "{PLACEHOLDER}" (send that back, or leave '
                    "the key out, to keep it; null removes it)")
    pipeline_plugin: str
    pipeline_config: dict[str, Any]
    allocated_capital: DecimalOut
    max_positions: int
    data_source: dict[str, Any]
    errored_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _hide_credentials(cls, data: Any) -> Any:
        """Every broker credential that is set shows as the placeholder, never its value."""
        from api.plugin_config import public_broker_config

        if isinstance(data, dict):
            values = dict(data)
        else:
            values = {name: getattr(data, name) for name in cls.model_fields if hasattr(data, name)}
            values["broker_secrets"] = getattr(data, "broker_secrets", None)
        stored = values.pop("broker_secrets", None)
        if isinstance(values.get("broker_config"), dict):
            values["broker_config"] = public_broker_config(
                str(values.get("broker_plugin") or ""), values["broker_config"], stored)
        return values
