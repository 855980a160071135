"""Parsing of ``execute_order`` parameters shared by the in-memory brokers.

Each failure is a one-line reason naming the parameter, returned to the caller inside
a rejected ``OrderResult`` (seed §3: brokers answer, they do not crash the pipeline).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.types import Side


class BadOrder(ValueError):
    """The order parameters are invalid; the message names the parameter."""


@dataclass(frozen=True, slots=True)
class OpenParams:
    side: Side
    quantity: float
    price: float | None
    sl: float | None
    tp: float | None
    sl_distance: float
    tp_distance: float


def _optional_number(params: Mapping[str, Any], key: str, *, positive: bool = True) -> float | None:
    raw = params.get(key)
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise BadOrder(f"parameters.{key} must be a number, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise BadOrder(f"parameters.{key} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or (positive and value <= 0):
        raise BadOrder(f"parameters.{key} must be a finite number > 0, got {raw!r}")
    return value


def parse_side(raw: Any) -> Side:
    """``buy``/``sell`` (also ``long``/``short``, any case) as a Side."""
    text = str(getattr(raw, "value", raw)).strip().lower()
    aliases = {"buy": Side.BUY, "long": Side.BUY, "sell": Side.SELL, "short": Side.SELL}
    if text not in aliases:
        raise BadOrder(f"parameters.side must be 'buy' or 'sell', got {raw!r}")
    return aliases[text]


def parse_open(params: Mapping[str, Any]) -> OpenParams:
    """Validated parameters of an ``open`` order."""
    if "side" not in params:
        raise BadOrder("parameters.side is missing (expected 'buy' or 'sell')")
    side = parse_side(params["side"])
    qty = _optional_number(params, "quantity")
    if qty is None:
        raise BadOrder("parameters.quantity is missing (units to trade, > 0)")
    sl_d = _optional_number(params, "sl_distance")
    tp_d = _optional_number(params, "tp_distance")
    return OpenParams(
        side=side,
        quantity=qty,
        price=_optional_number(params, "price"),
        sl=_optional_number(params, "sl"),
        tp=_optional_number(params, "tp"),
        sl_distance=math.nan if sl_d is None else sl_d,
        tp_distance=math.nan if tp_d is None else tp_d,
    )


def parse_position_id(params: Mapping[str, Any]) -> str:
    """The ``position_id`` of a close/modify order."""
    raw = params.get("position_id")
    if raw is None or str(raw).strip() == "":
        raise BadOrder("parameters.position_id is missing")
    return str(raw)


def optional_level(params: Mapping[str, Any], key: str) -> float | None:
    """An optional absolute price level (sl / tp) for modify orders."""
    return _optional_number(params, key)
