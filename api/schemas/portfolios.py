"""Portfolio bodies. The owner is always the caller: ``owner_id`` in a body is refused."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field, model_validator

from api.schemas.common import DecimalOut, JsonObject, PublicModel, RequestModel
from engine.types import Money
from persistence.enums import PortfolioStatus

NAME = Field(min_length=1, max_length=128)


class PortfolioCreate(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "fx-majors", "description": "EUR/USD on hourly bars", "total_capital": "10000", "latency": 1.0}]})

    name: str = NAME
    description: str = Field(default="", max_length=1024)
    portfolio_plugin: str = Field(default="default_portfolio", min_length=1, max_length=64)
    portfolio_config: JsonObject = Field(default_factory=dict)
    total_capital: Money = Field(ge=0, max_digits=20, decimal_places=8)
    latency: float | None = Field(default=None, gt=0, le=86400, description="seconds between heartbeats")


class PortfolioUpdate(RequestModel):
    """Fields left out keep their value."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"description": "paper trading", "latency": 0.5}]})

    name: str | None = Field(default=None, min_length=1, max_length=128)
    description: str | None = Field(default=None, max_length=1024)
    portfolio_plugin: str | None = Field(default=None, min_length=1, max_length=64)
    portfolio_config: JsonObject | None = None
    total_capital: Money | None = Field(default=None, ge=0, max_digits=20, decimal_places=8)
    latency: float | None = Field(default=None, gt=0, le=86400)

    @model_validator(mode="after")
    def _something(self) -> "PortfolioUpdate":
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        return self


class PortfolioPublic(PublicModel):
    id: int
    owner_id: int
    name: str
    description: str
    is_active: bool
    status: PortfolioStatus
    portfolio_plugin: str
    portfolio_config: dict[str, Any]
    total_capital: DecimalOut
    latency: float | None
    created_at: datetime
    updated_at: datetime
