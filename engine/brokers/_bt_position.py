"""One position of ``engine.brokers.backtrader_broker``, followed through its backtrader
orders, and the parsing of an order's parameters into backtrader's floats."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import backtrader as bt

from engine.errors import DomainError
from engine.types import OrderResult, OrderStatus, PositionView, Side, ensure_utc, to_decimal


def num2date(value: float) -> datetime:
    """A backtrader date number as a tz-aware UTC datetime."""
    return ensure_utc(bt.num2date(value))


def dec(value: float | None) -> Decimal | None:
    """A backtrader float as the Decimal the plugin contract carries."""
    return None if value is None else to_decimal(float(value))


@dataclass(slots=True)
class BtPosition:
    """One position opened through the plugin contract, followed through backtrader orders."""

    position_id: str
    client_order_id: str
    data: Any
    side: Side
    size: float
    main: Any
    sl_order: Any = None
    tp_order: Any = None
    close_order: Any = None
    close_client_id: str | None = None
    entry_price: float | None = None
    opened_at: datetime | None = None
    close_price: float | None = None
    closed_at: datetime | None = None
    pnl: float | None = None
    commission: float = 0.0
    state: str = "pending"  # pending | open | closed | rejected
    close_reason: str | None = None
    sl: float | None = None
    tp: float | None = None
    sl_distance: float | None = None  # from the entry fill: the exits are placed once it is known
    tp_distance: float | None = None

    def open_result(self) -> OrderResult:
        """The answer to the opening order (pending until it fills)."""
        filled = self.state == "open"
        return OrderResult(
            success=True,
            client_order_id=self.client_order_id,
            order_id=self.position_id,
            position_id=self.position_id,
            status=OrderStatus.OPEN if filled else OrderStatus.PENDING,
            side=self.side,
            quantity=dec(self.size),
            entry_price=dec(self.entry_price),
            commission=dec(self.commission) or Decimal("0"),
            timestamp=self.opened_at,
        )

    def close_result(self, cid: str) -> OrderResult:
        """The answer to the closing order ``cid`` (or the exit that closed it)."""
        return OrderResult(
            success=True,
            client_order_id=cid,
            order_id=str(self.close_order.ref) if self.close_order is not None else None,
            position_id=self.position_id,
            status=OrderStatus.FILLED,
            side=self.side.opposite,
            quantity=dec(self.size),
            entry_price=dec(self.entry_price),
            close_price=dec(self.close_price),
            pnl=dec(self.pnl),
            commission=dec(self.commission) or Decimal("0"),
            reason=self.close_reason,
            timestamp=self.closed_at,
        )

    def view(self) -> PositionView:
        """The plugin contract's view of this self."""
        current = float(self.data.close[0]) if len(self.data) else None
        unrealized = 0.0
        if self.state == "open" and current is not None and self.entry_price is not None:
            unrealized = (current - self.entry_price) * self.size * self.side.sign
        return PositionView(
            position_id=self.position_id,
            symbol=str(self.data._name),
            side=self.side,
            quantity=dec(self.size),
            entry_price=dec(self.entry_price) or Decimal("0"),
            current_price=dec(current),
            unrealized_pnl=dec(unrealized),
            realized_pnl=dec(self.pnl) or Decimal("0"),
            commission=dec(self.commission) or Decimal("0"),
            sl=dec(self.sl),
            tp=dec(self.tp),
            is_open=self.state == "open",
            opened_at=self.opened_at,
            closed_at=self.closed_at,
            close_reason=self.close_reason,
        )


def parse_side(value: Any) -> Side:
    """An order's ``side`` parameter; a ``DomainError`` names a bad one."""
    try:
        return Side(str(value).lower())
    except ValueError:
        raise DomainError(f"backtrader_broker open: side must be 'buy' or 'sell', got {value!r}") from None


def positive(value: Any, name: str) -> float:
    """A positive finite number parameter ``name`` as a float."""
    try:
        number = to_decimal(value)
    except (ValueError, InvalidOperation):
        number = None
    if number is None or not number.is_finite() or number <= 0:
        raise DomainError(f"backtrader_broker: {name} must be a positive number, got {value!r}")
    return float(number)


def optional_price(value: Any, name: str) -> float | None:
    """Like :func:`positive`, None when not given."""
    return None if value is None else positive(value, name)
