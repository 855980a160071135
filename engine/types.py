"""Domain types shared by every layer (engine, actors, persistence, api).

Values crossing actor or process boundaries are frozen pydantic models; money and
prices are ``Decimal`` at these boundaries (floats are converted through ``str`` so
``0.1`` stays ``0.1``); datetimes are timezone-aware UTC.

Hot loops (backtests) do not build these objects per bar: they work on numpy arrays
and only materialise domain objects for orders and trades.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator


def to_decimal(value: Any) -> Decimal | None:
    """Convert ints, floats and strings to ``Decimal`` without binary float drift."""
    if value is None or isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, (int, str)):
        try:
            return Decimal(value)
        except InvalidOperation:  # an ArithmeticError: pydantic only maps ValueError
            raise ValueError(f"not a decimal number: {str(value)[:40]!r}") from None
    if isinstance(value, float):
        # repr() gives the shortest string that round-trips: 0.1 -> "0.1".
        return Decimal(repr(value))
    raise ValueError(f"cannot convert {type(value).__name__} to a decimal number")


def ensure_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime; naive values are taken to be UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


Money = Annotated[Decimal, BeforeValidator(to_decimal)]
"""A Decimal money/price field that accepts int, float (via repr) and str."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Action(StrEnum):
    """What a strategy decided for one asset at one step (seed §3)."""

    OPEN = "open"
    CLOSE = "close"
    HOLD = "hold"


class Side(StrEnum):
    """Direction of an order or position."""

    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for buy/long, -1 for sell/short."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> "Side":
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderStatus(StrEnum):
    """Order lifecycle states (ARCHITECTURE.md, 'Order lifecycle')."""

    PENDING = "pending"
    OPEN = "open"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"


class Bar(_Frozen):
    """One OHLC bar. ``timestamp`` is the bar's open time, UTC."""

    timestamp: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return ensure_utc(v)


class Decision(_Frozen):
    """A strategy decision, exactly the seed's ``{action, parameters}`` shape.

    open:  parameters = {side, quantity, price?, sl?, tp?}
    close: parameters = {position_id}
    hold:  parameters = {reason?}
    """

    action: Action
    parameters: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def hold(cls, reason: str = "") -> "Decision":
        return cls(action=Action.HOLD, parameters={"reason": reason} if reason else {})

    @classmethod
    def open(
        cls,
        side: Side | str,
        quantity: float | Decimal,
        price: float | Decimal | None = None,
        sl: float | Decimal | None = None,
        tp: float | Decimal | None = None,
        **extra: Any,
    ) -> "Decision":
        params: dict[str, Any] = {"side": str(Side(side)), "quantity": quantity}
        for key, val in (("price", price), ("sl", sl), ("tp", tp)):
            if val is not None:
                params[key] = val
        params.update(extra)
        return cls(action=Action.OPEN, parameters=params)

    @classmethod
    def close(cls, position_id: str, **extra: Any) -> "Decision":
        return cls(action=Action.CLOSE, parameters={"position_id": position_id, **extra})

    def as_dict(self) -> dict[str, Any]:
        """The seed's wire shape: ``{"action": ..., "parameters": {...}}``."""
        return {"action": str(self.action), "parameters": dict(self.parameters)}


class TradingSignal(_Frozen):
    """What ``prediction_strategy`` returns before it is mapped to a ``Decision``."""

    action: str  # "buy" | "sell" | "close" | "hold"
    confidence: float = 0.0
    quantity: float = 0.0
    reasoning: str = ""


class OrderRequest(_Frozen):
    """An order as sent to a broker. ``client_order_id`` is the idempotency key."""

    client_order_id: str = Field(min_length=1, max_length=128)
    symbol: str = Field(min_length=1)
    side: Side
    quantity: Money = Field(gt=0)
    order_type: OrderType = OrderType.MARKET
    price: Money | None = None
    sl: Money | None = None
    tp: Money | None = None


class OrderResult(_Frozen):
    """What a broker answered for an order.

    open:  success, order_id, entry_price;  close: success, close_price, pnl.
    """

    success: bool
    client_order_id: str | None = None
    order_id: str | None = None  # the broker's (external) id
    position_id: str | None = None
    status: OrderStatus = OrderStatus.OPEN
    side: Side | None = None
    quantity: Money | None = None
    entry_price: Money | None = None
    close_price: Money | None = None
    pnl: Money | None = None
    commission: Money = Decimal("0")
    swap: Money = Decimal("0")
    reason: str | None = None
    timestamp: datetime | None = None

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return None if v is None else ensure_utc(v)


class PositionView(_Frozen):
    """A read-only view of a position (strategies never see mutable state)."""

    position_id: str
    symbol: str
    side: Side
    quantity: Money
    entry_price: Money
    current_price: Money | None = None
    unrealized_pnl: Money = Decimal("0")
    realized_pnl: Money = Decimal("0")
    commission: Money = Decimal("0")
    swap: Money = Decimal("0")
    sl: Money | None = None
    tp: Money | None = None
    is_open: bool = True
    opened_at: datetime | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None


class Trade(_Frozen):
    """A closed round trip, as reported by backtests and simulation brokers."""

    symbol: str
    side: Side
    quantity: float
    entry_time: datetime
    entry_price: float
    exit_time: datetime
    exit_price: float
    pnl: float
    commission: float = 0.0
    swap: float = 0.0
    exit_reason: str = "signal"  # signal | sl | tp | end


class AssetContext(_Frozen):
    """What an asset knows about itself when its strategy decides (read-only)."""

    asset_id: int | str | None = None
    portfolio_id: int | str | None = None
    symbol: str
    allocated_capital: Money = Decimal("0")
    max_positions: int = 1
    open_positions: tuple[PositionView, ...] = ()
