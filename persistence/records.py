"""Read-model records returned by the Store, and the write specs it accepts.

Frozen pydantic models: safe to pass between actors, to serialise in the API, and never
attached to a database session. Money is ``Decimal``, datetimes are aware UTC.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.types import Money, ensure_utc
from persistence.enums import (
    MONEY_SCALE,
    AssetStatus,
    BacktestStatus,
    OrderStatus,
    OrderType,
    PortfolioStatus,
    Role,
    Side,
)

_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)

MAX_PAGE_SIZE = 500
"""The largest page any list read returns, whatever the caller asks for."""


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", from_attributes=True)

    @field_validator("*", mode="after")
    @classmethod
    def _normalise(cls, value: Any) -> Any:
        # Same shape whether built right after a write or read back: aware UTC times,
        # decimals at the stored scale.
        if isinstance(value, datetime):
            return ensure_utc(value)
        if isinstance(value, Decimal) and value.is_finite():
            return value.quantize(_QUANTUM)
        return value


class _Spec(BaseModel):
    """Input of a write; unknown fields are refused so a typo is an error, not a no-op."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _utc(cls, value: Any) -> Any:
        return ensure_utc(value) if isinstance(value, datetime) else value


# --------------------------------------------------------------------------- contexts


class AuditContext(BaseModel):
    """Who does a write, from where, and its idempotency key.

    ``user_id=None`` is the engine itself (system). A non-admin user may only change what
    they own; ``request_id`` (unique in ``audit_logs``) makes a resent write a no-op that
    returns the first result.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    user_id: int | None = None
    is_admin: bool = False
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = Field(default=None, min_length=1, max_length=128)

    @classmethod
    def system(cls, request_id: str | None = None) -> "AuditContext":
        """The engine acting on its own (supervisors, asset actors, CLI)."""
        return cls(user_id=None, is_admin=True, request_id=request_id)

    @property
    def is_system(self) -> bool:
        return self.user_id is None

    def with_request_id(self, request_id: str) -> "AuditContext":
        return self.model_copy(update={"request_id": request_id})

    def viewer(self) -> "Viewer | None":
        """The read scope this writer has (None = everything)."""
        if self.is_system or self.is_admin:
            return None
        return Viewer(user_id=self.user_id, is_admin=False)  # type: ignore[arg-type]


class Viewer(BaseModel):
    """Read scope: a user sees their own rows, an admin sees all. ``None`` = system."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user_id: int
    is_admin: bool = False


class PageRequest(BaseModel):
    """Offset pagination; ``limit`` is capped at ``MAX_PAGE_SIZE``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=50, ge=1)

    @property
    def capped_limit(self) -> int:
        return min(self.limit, MAX_PAGE_SIZE)


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    model_config = ConfigDict(frozen=True)

    items: list[T]
    total: int
    offset: int
    limit: int


# --------------------------------------------------------------------------- records


class UserRecord(_Record):
    id: int
    username: str
    email: str | None
    role: Role
    is_active: bool
    failed_login_count: int
    locked_until: datetime | None
    last_login_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def is_locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > ensure_utc(now)


class UserCredentials(_Record):
    """A user plus the password hash; only the AAA login path asks for this."""

    user: UserRecord
    password_hash: str = Field(repr=False)


class SessionRecord(_Record):
    id: int
    jti: str
    family_id: str
    user_id: int
    issued_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    replaced_by_jti: str | None
    ip: str | None
    user_agent: str | None

    def is_usable(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > ensure_utc(now)


class RotationOutcome(_Record):
    """Result of rotating a refresh token. ``reuse_detected``: the presented token had
    already been rotated or revoked, so its whole family was revoked and ``session`` is None."""

    session: SessionRecord | None
    reuse_detected: bool = False


class LoginRecord(_Record):
    """A successful login: the user after its bookkeeping, and the refresh-token session
    the login opened."""

    user: UserRecord
    session: SessionRecord


class LoginState(_Record):
    """What checking an access token needs from the database, read in one query.

    ``session_family`` is the login family of the refresh session the token was issued
    with (None: no such session for this user). ``session_live``: following that session's
    rotations (``replaced_by_jti``) ends in a session that is neither revoked nor expired.
    """

    user: UserRecord
    session_family: str | None
    session_live: bool


class AuditRecord(_Record):
    id: int
    user_id: int | None
    action: str
    target_type: str | None
    target_id: str | None
    details: dict[str, Any]
    ip: str | None
    user_agent: str | None
    request_id: str | None
    created_at: datetime
    # An aggregated row (repeated authentication failures) stands for ``count`` events,
    # the first at ``created_at``, the last at ``last_seen_at``.
    count: int = 1
    last_seen_at: datetime | None = None


class BillingRecordView(_Record):
    id: int
    user_id: int
    kind: str
    amount: Decimal
    currency: str
    description: str
    period_start: datetime | None
    period_end: datetime | None
    details: dict[str, Any]
    created_at: datetime


class ConfigRecord(_Record):
    key: str
    value: Any
    updated_at: datetime


class StatisticRecord(_Record):
    id: int
    portfolio_id: int | None
    asset_id: int | None
    kind: str
    name: str
    value: Decimal | None
    values: dict[str, Any]
    created_at: datetime


class PortfolioRecord(_Record):
    id: int
    owner_id: int
    name: str
    description: str
    is_active: bool
    status: PortfolioStatus
    portfolio_plugin: str
    portfolio_config: dict[str, Any]
    total_capital: Decimal
    latency: float | None
    created_at: datetime
    updated_at: datetime


class AssetRecord(_Record):
    id: int
    portfolio_id: int
    symbol: str
    is_active: bool
    status: AssetStatus
    status_reason: str | None
    strategy_plugin: str
    strategy_config: dict[str, Any]
    broker_plugin: str
    broker_config: dict[str, Any]
    pipeline_plugin: str
    pipeline_config: dict[str, Any]
    allocated_capital: Decimal
    max_positions: int
    # encrypted (engine.credentials); decrypted only where the broker plugin is created
    broker_secrets: dict[str, str] | None = Field(default=None, repr=False)
    data_source: dict[str, Any]
    errored_at: datetime | None
    created_at: datetime
    updated_at: datetime


class OrderRecord(_Record):
    id: int
    portfolio_id: int
    asset_id: int
    user_id: int | None
    client_order_id: str
    broker_order_id: str | None
    symbol: str
    side: Side
    order_type: OrderType
    status: OrderStatus
    action: str
    position_id: int | None
    quantity: Decimal
    price: Decimal | None
    sl: Decimal | None
    tp: Decimal | None
    filled_quantity: Decimal
    filled_price: Decimal | None
    commission: Decimal
    reason: str | None
    details: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    filled_at: datetime | None


class PositionRecord(_Record):
    id: int
    portfolio_id: int
    asset_id: int
    opening_order_id: int | None
    closing_order_id: int | None
    broker_position_id: str | None
    symbol: str
    side: Side
    quantity: Decimal
    entry_price: Decimal
    current_price: Decimal | None
    close_price: Decimal | None
    sl: Decimal | None
    tp: Decimal | None
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    commission: Decimal
    swap: Decimal
    is_open: bool
    opened_at: datetime
    closed_at: datetime | None
    close_reason: str | None
    updated_at: datetime


class BacktestRunRecord(_Record):
    id: int
    owner_id: int | None
    status: BacktestStatus
    strategy_plugin: str
    params: dict[str, Any]
    data_paths: list[str]
    output_dir: str | None
    total_jobs: int
    completed_jobs: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class BacktestResultRecord(_Record):
    id: int
    run_id: int
    data_path: str
    params: dict[str, Any]
    stats: dict[str, Any]
    trades_count: int
    equity_curve_path: str | None
    trades_path: str | None
    plot_path: str | None
    error: str | None
    created_at: datetime


# --------------------------------------------------------------------------- write specs


class PortfolioCreate(_Spec):
    name: str = Field(min_length=1, max_length=128)
    description: str = Field(default="", max_length=1024)
    portfolio_plugin: str = Field(default="default_portfolio", min_length=1, max_length=64)
    portfolio_config: dict[str, Any] = Field(default_factory=dict)
    total_capital: Money = Field(ge=0)
    latency: float | None = Field(default=None, gt=0)


class PortfolioUpdate(_Spec):
    """Fields left out (``None``) keep their value."""

    name: str | None = Field(default=None, min_length=1, max_length=128)
    description: str | None = Field(default=None, max_length=1024)
    portfolio_plugin: str | None = Field(default=None, min_length=1, max_length=64)
    portfolio_config: dict[str, Any] | None = None
    total_capital: Money | None = Field(default=None, ge=0)
    latency: float | None = Field(default=None, gt=0)


class AssetCreate(_Spec):
    symbol: str = Field(min_length=1, max_length=32)
    strategy_plugin: str = Field(default="default_strategy", min_length=1, max_length=64)
    strategy_config: dict[str, Any] = Field(default_factory=dict)
    broker_plugin: str = Field(default="default_broker", min_length=1, max_length=64)
    broker_config: dict[str, Any] = Field(default_factory=dict)
    pipeline_plugin: str = Field(default="default_pipeline", min_length=1, max_length=64)
    pipeline_config: dict[str, Any] = Field(default_factory=dict)
    allocated_capital: Money = Field(default=Decimal("0"), ge=0)
    max_positions: int = Field(default=1, ge=1)
    broker_secrets: dict[str, str] | None = Field(default=None, repr=False)  # encrypted values
    data_source: dict[str, Any] = Field(default_factory=dict)


class AssetUpdate(_Spec):
    """Fields left out (``None``) keep their value."""

    symbol: str | None = Field(default=None, min_length=1, max_length=32)
    strategy_plugin: str | None = Field(default=None, min_length=1, max_length=64)
    strategy_config: dict[str, Any] | None = None
    broker_plugin: str | None = Field(default=None, min_length=1, max_length=64)
    broker_config: dict[str, Any] | None = None
    pipeline_plugin: str | None = Field(default=None, min_length=1, max_length=64)
    pipeline_config: dict[str, Any] | None = None
    allocated_capital: Money | None = Field(default=None, ge=0)
    max_positions: int | None = Field(default=None, ge=1)
    data_source: dict[str, Any] | None = None


class OrderIntent(_Spec):
    """An order the engine is about to send (``orders.status = pending``)."""

    client_order_id: str = Field(min_length=1, max_length=128)
    portfolio_id: int
    asset_id: int
    side: Side
    quantity: Money = Field(gt=0)
    order_type: OrderType = OrderType.MARKET
    action: str = Field(default="open", pattern="^(open|close)$")
    position_id: int | None = None
    price: Money | None = Field(default=None, gt=0)
    sl: Money | None = Field(default=None, gt=0)
    tp: Money | None = Field(default=None, gt=0)
    reason: str | None = Field(default=None, max_length=1024)
    details: dict[str, Any] = Field(default_factory=dict)


class OrderFill(_Spec):
    """What the broker answered for an order that went through."""

    broker_order_id: str | None = Field(default=None, max_length=128)
    filled_quantity: Money | None = Field(default=None, gt=0)  # None: the whole quantity
    filled_price: Money | None = Field(default=None, gt=0)
    commission: Money = Decimal("0")
    filled_at: datetime | None = None


class PositionOpen(_Spec):
    portfolio_id: int
    asset_id: int
    opening_client_order_id: str | None = Field(default=None, min_length=1, max_length=128)
    broker_position_id: str | None = Field(default=None, max_length=128)
    side: Side
    quantity: Money = Field(gt=0)
    entry_price: Money = Field(gt=0)
    sl: Money | None = Field(default=None, gt=0)
    tp: Money | None = Field(default=None, gt=0)
    commission: Money = Decimal("0")
    opened_at: datetime | None = None


class PositionClose(_Spec):
    close_price: Money = Field(gt=0)
    realized_pnl: Money
    closing_client_order_id: str | None = Field(default=None, min_length=1, max_length=128)
    commission: Money = Decimal("0")  # added to the opening commission
    swap: Money = Decimal("0")
    closed_at: datetime | None = None
    close_reason: str = Field(default="signal", min_length=1, max_length=64)


class SessionOpen(_Spec):
    """The refresh-token session a login opens (ip and user agent come from the
    ``AuditContext``). ``issued_at`` defaults to the login time."""

    jti: str = Field(min_length=1, max_length=64)
    family_id: str = Field(min_length=1, max_length=64)
    expires_at: datetime
    issued_at: datetime | None = None


class BacktestRunCreate(_Spec):
    strategy_plugin: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)
    data_paths: list[str] = Field(default_factory=list)
    output_dir: str | None = None
    total_jobs: int = Field(default=0, ge=0)


class BacktestResultCreate(_Spec):
    data_path: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    stats: dict[str, Any] = Field(default_factory=dict)
    trades_count: int = Field(default=0, ge=0)
    equity_curve_path: str | None = None
    trades_path: str | None = None
    plot_path: str | None = None
    error: str | None = None
