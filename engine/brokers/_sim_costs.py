"""Cost and fill arithmetic shared by the simulation broker and the fast backtest loop.

Both call these functions at each fill, so a bar-by-bar run through
``BacktraderSimulationBroker`` and ``run_backtest`` produce bit-identical prices and
P&L. Internally everything is float (the hot loop cannot afford ``Decimal``); values
become ``Decimal`` only where they leave the simulation (``OrderResult``).

Conventions: prices are the data's mid prices; ``units`` are instrument units (an FX
standard lot is ``lot_size`` units); P&L is in the quote currency, which is taken to
be the account currency.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import ConfigError

NS_PER_DAY = 86_400_000_000_000


@dataclass(frozen=True, slots=True)
class CostModel:
    """Per-fill costs derived once from broker parameters.

    ``adj``: half the spread plus slippage, in price — every fill pays it against the
    trader. Commission and swap are applied per lot (units / lot size), multiplying
    before dividing so round lot sizes give exact amounts (1 lot x 7 = 7.0, not 6.99...).
    """

    cash: float
    leverage: float
    pip: float
    lot_size: float
    half_spread: float
    slippage: float
    adj: float
    commission_per_lot: float
    swap_per_lot_day: float

    @classmethod
    def from_params(cls, params: Mapping[str, Any], where: str = "broker") -> "CostModel":
        """Build from simulation-broker parameters, naming the bad key on error."""

        def num(key: str, minimum: float = 0.0, strict: bool = False) -> float:
            raw = params.get(key)
            try:
                value = float(raw)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: parameter {key!r} must be a number, got {raw!r}") from None
            if not math.isfinite(value) or value < minimum or (strict and value == minimum):
                op = ">" if strict else ">="
                raise ConfigError(f"{where}: parameter {key!r} must be {op} {minimum}, got {raw!r}")
            return value

        pip = num("pip_size", strict=True)
        lot = num("lot_size", strict=True)
        half_spread = num("spread_pips") * pip / 2.0
        slippage = num("slippage_pips") * pip
        return cls(
            cash=num("initial_cash", strict=True),
            leverage=num("leverage", strict=True),
            pip=pip,
            lot_size=lot,
            half_spread=half_spread,
            slippage=slippage,
            adj=half_spread + slippage,
            commission_per_lot=num("commission_per_lot"),
            swap_per_lot_day=num("swap_per_lot_per_day"),
        )


def entry_fill(ref_price: float, side: int, adj: float) -> float:
    """Entry price for a position of ``side`` (+1 long / -1 short) at ``ref_price``."""
    return ref_price + adj if side > 0 else ref_price - adj


def exit_fill(ref_price: float, side: int, adj: float) -> float:
    """Exit price closing a position of ``side`` at ``ref_price`` (the trade goes the other way)."""
    return ref_price - adj if side > 0 else ref_price + adj


def commission(units: float, costs: CostModel) -> float:
    """Commission for one side of a fill of ``units``."""
    return units * costs.commission_per_lot / costs.lot_size


def swap(units: float, entry_day: int, exit_day: int, costs: CostModel) -> float:
    """Swap for holding ``units`` across ``exit_day - entry_day`` UTC midnights."""
    return units * costs.swap_per_lot_day * (exit_day - entry_day) / costs.lot_size


def gross_pnl(side: int, units: float, entry_price: float, exit_price: float) -> float:
    """Price P&L of a round trip, before costs."""
    return side * units * (exit_price - entry_price)


def required_margin(units: float, price: float, costs: CostModel) -> float:
    """Margin needed to carry ``units`` at ``price`` with the account's leverage."""
    return units * price / costs.leverage


def stop_levels(
    side: int, entry_price: float, sl_distance: float, tp_distance: float
) -> tuple[float, float]:
    """(stop, target) price levels from distances measured from the entry fill.

    A NaN distance means "none": the level becomes an infinity that is never touched
    (-inf stop / +inf target for a long, the mirror for a short).
    """
    if side > 0:
        sl = entry_price - sl_distance if sl_distance == sl_distance else -math.inf
        tp = entry_price + tp_distance if tp_distance == tp_distance else math.inf
    else:
        sl = entry_price + sl_distance if sl_distance == sl_distance else math.inf
        tp = entry_price - tp_distance if tp_distance == tp_distance else -math.inf
    return sl, tp


def stop_exit(
    side: int, sl: float, tp: float, o: float, h: float, l: float
) -> tuple[float, str] | None:
    """Whether a bar (open ``o``, high ``h``, low ``l``) stops the position out.

    Returns (reference exit price, "sl" | "tp") or None. Rules (ARCHITECTURE.md):
    a bar opening beyond a level fills at its open; when one bar touches both the
    stop is assumed first.
    """
    if side > 0:
        if o <= sl:
            return o, "sl"
        if o >= tp:
            return o, "tp"
        if l <= sl:
            return sl, "sl"
        if h >= tp:
            return tp, "tp"
    else:
        if o >= sl:
            return o, "sl"
        if o <= tp:
            return o, "tp"
        if h >= sl:
            return sl, "sl"
        if l <= tp:
            return tp, "tp"
    return None


DEFAULT_SIM_PARAMS: dict[str, Any] = {
    "initial_cash": 10_000.0,
    "leverage": 100.0,
    "spread_pips": 2.0,
    "commission_per_lot": 7.0,  # per lot, per side
    "slippage_pips": 1.0,
    "swap_per_lot_per_day": 10.0,  # charged per lot per UTC midnight held
    "pip_size": 0.0001,
    "lot_size": 100_000.0,
}
"""The seed's simulation-broker defaults; every key is configurable per asset."""
