"""Asset bodies. Plugin configs are checked against the plugin's ``plugin_params``."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import ConfigDict, Field, SerializerFunctionWrapHandler, StrictBool, model_serializer, model_validator

from api.schemas.common import DecimalOut, JsonObject, PublicModel, PublicText, RequestModel
from engine.config.schema import suggest
from engine.credentials import PLACEHOLDER
from engine.types import Money
from persistence.enums import AssetStatus

PLUGIN_NAME = Field(min_length=1, max_length=64)
SYMBOL = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_./\-]+$")


DATA_FILE_KEYS: tuple[str, ...] = ("path", "csv")
"""The ``data_source`` keys that name a file (``csv``: the legacy alias of ``path``)."""


class DataSource(RequestModel):
    """Where an asset's market data comes from (what ``actors.asset_actor`` and the
    prediction port read). Every key is optional; only those given are stored.

    The file must exist inside the server's ``data_dir`` (relative path, or an absolute
    one inside it); anything resolving elsewhere is refused with 422 at create/update."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [
            {"path": "eurusd.csv"},
            {"path": "fx/eurusd_h1.csv", "datetime_column": "DATE_TIME", "drop_invalid": True, "predictions": "csv"},
        ]},
    )

    path: str | None = Field(default=None, min_length=1, max_length=1024,
                             description="OHLC CSV, relative to the server's data_dir")
    csv: str | None = Field(default=None, min_length=1, max_length=1024,
                            description="legacy alias of path (give one of them)")
    datetime_column: str | None = Field(default=None, max_length=64,
                                        description='the CSV\'s date/time column (default "DATE_TIME"; "" = the first)')
    drop_invalid: StrictBool | None = Field(default=None, description="skip invalid rows instead of refusing the file")
    predictions: Literal["csv", "api"] | None = Field(
        default=None, description='for strategies that need predictions: "api" (the prediction service, default) '
                                  'or "csv" (columns of the data file)')

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, value: Any) -> Any:
        """One line for an unknown key, with the closest known one (``csv_path`` -> ``path``)."""
        if isinstance(value, dict):
            known = list(cls.model_fields)
            for key in value:
                if key not in known:
                    shown = repr(key) if len(repr(key)) <= 64 else repr(key)[:60] + "...'"
                    hint = suggest(str(key), known) or f" known keys: {', '.join(known)}"
                    raise ValueError(f"unknown key {shown}:{hint}")
        return value

    @model_validator(mode="after")
    def _one_file(self) -> "DataSource":
        if self.path is not None and self.csv is not None:
            raise ValueError("give 'path' or its legacy alias 'csv', not both")
        return self

    @model_serializer(mode="wrap")
    def _given_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Stored as given: keys left out stay out (the engine applies its defaults)."""
        return {key: value for key, value in handler(self).items() if value is not None}


class AssetCreate(RequestModel):
    """A new asset (inactive until activated). ``data_source.path`` names a CSV inside the
    server's data_dir; the examples are posted by a test (tests/integration/api/test_openapi_examples.py)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"symbol": "EURUSD", "strategy_plugin": "default_strategy", "strategy_config": {"lookback": 5, "quantity": 1000},
         "allocated_capital": "5000", "data_source": {"path": "eurusd.csv"}},
        {"symbol": "GBPUSD", "strategy_plugin": "sma_cross", "strategy_config": {"fast": 10, "slow": 30, "quantity": 1000},
         "data_source": {"path": "gbpusd.csv", "drop_invalid": True}},
    ]})

    symbol: str = SYMBOL
    strategy_plugin: str = Field(default="default_strategy", min_length=1, max_length=64)
    strategy_config: JsonObject = Field(default_factory=dict)
    broker_plugin: str = Field(default="default_broker", min_length=1, max_length=64)
    broker_config: JsonObject = Field(default_factory=dict)
    pipeline_plugin: str = Field(default="default_pipeline", min_length=1, max_length=64)
    pipeline_config: JsonObject = Field(default_factory=dict)
    allocated_capital: Money = Field(default=Decimal("0"), ge=0, max_digits=20, decimal_places=8)
    max_positions: int = Field(default=1, ge=1, le=1000)
    data_source: DataSource = Field(default_factory=DataSource, description='e.g. {"path": "eurusd.csv"}')


class AssetUpdate(RequestModel):
    """Symbol, position limit and data source (plugin configs have their own PATCH routes)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"max_positions": 2}, {"data_source": {"path": "eurusd.csv", "datetime_column": "DATE_TIME"}}]})

    symbol: str | None = Field(default=None, min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_./\-]+$")
    max_positions: int | None = Field(default=None, ge=1, le=1000)
    data_source: DataSource | None = Field(default=None, description="replaces the whole data source")

    @model_validator(mode="after")
    def _something(self) -> "AssetUpdate":
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        return self


class PluginConfigUpdate(RequestModel):
    """Switch an asset's strategy/broker/pipeline plugin and/or replace its config.

    ``plugin`` left out keeps the current plugin; ``config`` replaces the whole config
    (keys: the plugin's parameters, ``GET /api/plugins``; ``{}`` = its defaults)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"config": {}}]})

    plugin: str | None = Field(default=None, min_length=1, max_length=64)
    config: JsonObject = Field(default_factory=dict)


class AllocationUpdate(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"allocated_capital": "2500"}]})

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
