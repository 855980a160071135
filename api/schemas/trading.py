"""Trading bodies: one-step execution, orders and positions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from api.schemas.common import DecimalOut, PublicModel, PublicText, RequestModel
from persistence.enums import OrderStatus, OrderType, Side


class ExecuteRequest(RequestModel):
    asset_id: int = Field(ge=1, lt=2**63)


class OrderPublic(PublicModel):
    id: int
    portfolio_id: int
    asset_id: int
    client_order_id: str
    broker_order_id: str | None
    symbol: str
    side: Side
    order_type: OrderType
    status: OrderStatus
    action: str
    position_id: int | None
    quantity: DecimalOut
    price: DecimalOut | None
    sl: DecimalOut | None
    tp: DecimalOut | None
    filled_quantity: DecimalOut
    filled_price: DecimalOut | None
    commission: DecimalOut
    reason: PublicText | None
    created_at: datetime
    updated_at: datetime
    filled_at: datetime | None


class PositionPublic(PublicModel):
    id: int
    portfolio_id: int
    asset_id: int
    symbol: str
    side: Side
    quantity: DecimalOut
    entry_price: DecimalOut
    current_price: DecimalOut | None
    close_price: DecimalOut | None
    sl: DecimalOut | None
    tp: DecimalOut | None
    unrealized_pnl: DecimalOut
    realized_pnl: DecimalOut
    commission: DecimalOut
    swap: DecimalOut
    is_open: bool
    opened_at: datetime
    closed_at: datetime | None
    close_reason: str | None


class ExecuteResult(PublicModel):
    """What one step did: the decision's action, the order it produced (if any) and,
    for a hold, why."""

    asset_id: int
    action: str
    order: OrderPublic | None = None
    reason: PublicText | None = None
    details: dict[str, Any] = Field(default_factory=dict)
