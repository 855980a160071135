"""Pure conversions between LTS domain values and OANDA v20 JSON (no I/O).

OANDA sends every number as a string; they become ``Decimal`` here and never pass
through float. Times are RFC 3339 with nanoseconds; they become aware UTC datetimes
(truncated to microseconds, which is all ``datetime`` holds).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from engine.errors import DomainError
from engine.types import OrderResult, OrderStatus, PositionView, Side, to_decimal

_PAIR = re.compile(r"^([A-Z0-9]{2,10})[_/\-]?([A-Z]{3})$")
_SIX_LETTERS = re.compile(r"^[A-Z]{6}$")


def to_instrument(symbol: str) -> str:
    """``EURUSD`` / ``EUR/USD`` / ``eur_usd`` -> ``EUR_USD``; ``DE30_EUR`` stays as is."""
    text = symbol.strip().upper()
    if _SIX_LETTERS.match(text):
        return f"{text[:3]}_{text[3:]}"
    if "_" in text or "/" in text or "-" in text:
        match = _PAIR.match(text)
        if match:
            return f"{match.group(1)}_{match.group(2)}"
    raise DomainError(
        f"cannot map symbol {symbol!r} to an OANDA instrument: use a six-letter pair such as "
        "EURUSD, or BASE_QUOTE such as DE30_EUR"
    )


def to_symbol(instrument: str) -> str:
    """``EUR_USD`` -> ``EURUSD`` (the LTS symbol)."""
    return instrument.replace("_", "")


def price_decimals(instrument: str) -> int:
    """OANDA's display precision for FX: 3 decimals for JPY-quoted pairs, 5 otherwise."""
    return 3 if instrument.endswith("_JPY") else 5


def format_price(value: Any, instrument: str, field: str) -> str:
    """A positive price as the string OANDA accepts (rounded to its precision)."""
    try:
        number = to_decimal(value)
    except (ValueError, InvalidOperation) as exc:
        raise DomainError(f"{field} must be a number, got {value!r}") from exc
    if number is None or not number.is_finite() or number <= 0:
        raise DomainError(f"{field} must be a positive price, got {value!r}")
    quantum = Decimal(1).scaleb(-price_decimals(instrument))
    return str(number.quantize(quantum, rounding=ROUND_HALF_EVEN))


def to_units(quantity: Any, side: Side, units_per_quantity: Decimal) -> str:
    """Signed integer OANDA units for ``quantity`` (buy positive, sell negative)."""
    try:
        number = to_decimal(quantity)
    except (ValueError, InvalidOperation) as exc:
        raise DomainError(f"quantity must be a number, got {quantity!r}") from exc
    if number is None or not number.is_finite() or number <= 0:
        raise DomainError(f"quantity must be positive, got {quantity!r}")
    units = number * units_per_quantity
    if units != units.to_integral_value():
        raise DomainError(
            f"quantity {quantity} x units_per_quantity {units_per_quantity} = {units} units; "
            "OANDA FX orders need whole units"
        )
    return str(int(units) * side.sign)


def parse_time(value: str | None) -> datetime | None:
    """OANDA RFC 3339 time (nanoseconds, ``Z``) -> aware UTC datetime."""
    if not value:
        return None
    match = re.match(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?Z$", value)
    if match is None:
        return datetime.fromisoformat(value).astimezone(timezone.utc)
    base = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S")
    micros = int((match.group(2) or "0")[:6].ljust(6, "0"))
    return base.replace(microsecond=micros, tzinfo=timezone.utc)


def dec(value: Any) -> Decimal | None:
    """OANDA's numeric string -> Decimal (None stays None)."""
    return None if value is None else Decimal(str(value))


def open_result_from_fill(
    client_order_id: str, order_id: str, fill: dict[str, Any], units_per_quantity: Decimal
) -> OrderResult:
    """The result of a market order that filled (``orderFillTransaction``)."""
    units = Decimal(fill["units"])
    opened = fill.get("tradeOpened") or {}
    return OrderResult(
        success=True,
        client_order_id=client_order_id,
        order_id=order_id,
        position_id=opened.get("tradeID"),
        status=OrderStatus.OPEN,
        side=Side.BUY if units > 0 else Side.SELL,
        quantity=abs(units) / units_per_quantity,
        entry_price=dec(opened.get("price", fill.get("price"))),
        commission=dec(fill.get("commission")) or Decimal("0"),
        reason=None if opened else "filled without opening a trade (reduced an existing one)",
        timestamp=parse_time(fill.get("time")),
    )


def open_result_from_trade(
    client_order_id: str, order_id: str, trade: dict[str, Any], units_per_quantity: Decimal
) -> OrderResult:
    """The result of a filled market order, rebuilt from the trade it opened (lookups)."""
    units = Decimal(trade["initialUnits"])
    return OrderResult(
        success=True,
        client_order_id=client_order_id,
        order_id=order_id,
        position_id=trade["id"],
        status=OrderStatus.OPEN,
        side=Side.BUY if units > 0 else Side.SELL,
        quantity=abs(units) / units_per_quantity,
        entry_price=dec(trade["price"]),
        timestamp=parse_time(trade.get("openTime")),
    )


def rejected(client_order_id: str | None, reason: str, order_id: str | None = None) -> OrderResult:
    return OrderResult(
        success=False,
        client_order_id=client_order_id,
        order_id=order_id,
        status=OrderStatus.REJECTED,
        reason=reason,
    )


def close_result_from_fill(
    client_order_id: str | None, trade_id: str, response: dict[str, Any], units_per_quantity: Decimal
) -> OrderResult:
    """The result of ``PUT trades/{id}/close``."""
    fill = response.get("orderFillTransaction") or {}
    if not fill:
        cancel = response.get("orderCancelTransaction") or {}
        return rejected(client_order_id, f"close of trade {trade_id} cancelled: {cancel.get('reason', 'unknown')}")
    closed = [*(fill.get("tradesClosed") or []), *([fill["tradeReduced"]] if fill.get("tradeReduced") else [])]
    pnl = sum((Decimal(c["realizedPL"]) for c in closed if c.get("tradeID") == trade_id), Decimal("0"))
    units = Decimal(fill["units"])
    return OrderResult(
        success=True,
        client_order_id=client_order_id,
        order_id=fill.get("orderID"),
        position_id=trade_id,
        status=OrderStatus.FILLED,
        side=Side.BUY if units > 0 else Side.SELL,  # the closing order's side
        quantity=abs(units) / units_per_quantity,
        close_price=dec(fill.get("price")),
        pnl=pnl,
        commission=dec(fill.get("commission")) or Decimal("0"),
        swap=-(dec(fill.get("financing")) or Decimal("0")),
        timestamp=parse_time(fill.get("time")),
    )


def close_result_from_trade(
    client_order_id: str | None, trade: dict[str, Any], units_per_quantity: Decimal, reason: str | None
) -> OrderResult:
    """The result of a close, rebuilt from a trade already CLOSED (lookups)."""
    units = Decimal(trade["initialUnits"])
    return OrderResult(
        success=True,
        client_order_id=client_order_id,
        position_id=trade["id"],
        status=OrderStatus.FILLED,
        side=Side.SELL if units > 0 else Side.BUY,
        quantity=abs(units) / units_per_quantity,
        close_price=dec(trade.get("averageClosePrice")),
        pnl=dec(trade.get("realizedPL")),
        swap=-(dec(trade.get("financing")) or Decimal("0")),
        reason=reason,
        timestamp=parse_time(trade.get("closeTime")),
    )


def position_from_trade(trade: dict[str, Any], units_per_quantity: Decimal) -> PositionView:
    """An OANDA trade (open or closed) as a read-only ``PositionView``."""
    initial = Decimal(trade["initialUnits"])
    current = Decimal(trade.get("currentUnits", "0"))
    is_open = trade.get("state") == "OPEN"
    return PositionView(
        position_id=trade["id"],
        symbol=to_symbol(trade["instrument"]),
        side=Side.BUY if initial > 0 else Side.SELL,
        quantity=abs(current if is_open else initial) / units_per_quantity,
        entry_price=Decimal(trade["price"]),
        current_price=dec(trade.get("averageClosePrice")) if not is_open else None,
        unrealized_pnl=dec(trade.get("unrealizedPL")) or Decimal("0"),
        realized_pnl=dec(trade.get("realizedPL")) or Decimal("0"),
        swap=-(dec(trade.get("financing")) or Decimal("0")),
        sl=dec((trade.get("stopLossOrder") or {}).get("price")),
        tp=dec((trade.get("takeProfitOrder") or {}).get("price")),
        is_open=is_open,
        opened_at=parse_time(trade.get("openTime")),
        closed_at=parse_time(trade.get("closeTime")),
    )
