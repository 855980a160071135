"""``backtrader_simulation_broker``: a simulated FX account driven one bar at a time.

The caller feeds bars with :meth:`BacktraderSimulationBroker.on_bar` and sends orders
with ``execute_order`` in between — exactly what the actor runtime does in simulation
mode (one bar per heartbeat) and what ``engine.backtest.stepwise`` does over a file:

1. ``on_bar(index, timestamp, open, high, low, close)`` fills the orders queued on the
   previous bar at this bar's open, then checks stops/targets of the positions opened
   before this bar against its high/low, and returns those fills as ``OrderResult``s;
2. the strategy decides on this bar's close and the caller calls
   ``execute_order("open" | "close" | "modify", parameters)``; with the default
   ``fill_on="next_open"`` an accepted order answers ``status="pending"`` and fills at
   the next bar's open (``fill_on="current"`` fills at once at this bar's close, for
   interactive use).

Costs and fill rules are those of ``engine.backtest.runner`` (same functions, so the
fast backtest and this broker give identical trades): half spread + slippage against
the trader on every fill, commission per lot per side, swap per lot per UTC midnight
held, stop/target distances from the entry fill, gaps fill at the open, stop before
target. An opening order whose margin (units x price / leverage) exceeds the free
margin is rejected with the reason. A repeated ``client_order_id`` returns the first
result. Prices are floats inside (speed); results carry ``Decimal``.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, ClassVar

from engine.brokers._sim_costs import (
    DEFAULT_SIM_PARAMS,
    NS_PER_DAY,
    CostModel,
    commission,
    entry_fill,
    exit_fill,
    gross_pnl,
    required_margin,
    stop_exit,
    stop_levels,
    swap,
)
from engine.brokers._sim_orders import BadOrder, optional_level, parse_open, parse_position_id
from engine.errors import ConfigError, DataError
from engine.plugins.base import BrokerPlugin
from engine.types import OrderResult, OrderStatus, PositionView, Side, Trade, to_decimal

logger = logging.getLogger(__name__)

FILL_MODES = ("next_open", "current")


@dataclass(slots=True)
class _Position:
    position_id: str
    order_id: str
    client_order_id: str | None
    side: int
    units: float
    entry_price: float
    entry_bar: int
    entry_day: int
    entry_ts: int
    sl: float
    tp: float
    entry_commission: float
    closing: bool = False  # a close is queued for the next open


@dataclass(slots=True)
class _PendingOpen:
    order_id: str
    client_order_id: str | None
    position_id: str
    side: int
    units: float
    ref_price: float  # the decision bar's close, shown to strategies until the fill
    sl: float | None
    tp: float | None
    sl_distance: float
    tp_distance: float


@dataclass(slots=True)
class _PendingClose:
    order_id: str
    client_order_id: str | None
    position_id: str
    reason: str


def _ts_to_ns(timestamp: int | datetime) -> int:
    if isinstance(timestamp, datetime):
        aware = timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=timezone.utc)
        return int(round(aware.timestamp() * 1_000_000)) * 1000
    return int(timestamp)


def _dt(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)


def _dec(value: float) -> Decimal:
    """Money leaving the simulation: rounded to 8 decimals so float noise such as
    6.999999999999999 is reported (and stored) as 7.0."""
    return to_decimal(round(float(value), 8))  # type: ignore[return-value]


def _price(value: float) -> Decimal:
    """A price leaving the simulation, rounded to 10 decimals (far below any pip)."""
    return to_decimal(round(float(value), 10))  # type: ignore[return-value]


class BacktraderSimulationBroker(BrokerPlugin):
    """Simulated account with spread, slippage, commission, swap, margin and SL/TP."""

    name: ClassVar[str] = "backtrader_simulation_broker"
    plugin_params: ClassVar[dict[str, Any]] = {
        **DEFAULT_SIM_PARAMS,
        "symbol": "EURUSD",
        "fill_on": "next_open",  # or "current": fill at the current bar's close at once
    }
    plugin_debug_vars: ClassVar[list[str]] = ["symbol", "initial_cash", "leverage", "spread_pips", "fill_on"]

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self._configure()
        self._cash = self._costs.cash
        self._positions: dict[str, _Position] = {}
        self._pending: list[_PendingOpen | _PendingClose] = []
        self._results: dict[str, OrderResult] = {}
        self._history: list[Trade] = []
        self._ids = itertools.count(1)
        self._bar = -1
        self._ts = 0
        self._day = 0
        self._close = math.nan
        self.rejected_orders = 0

    def _configure(self) -> None:
        where = f"broker {self.name}"
        self._costs = CostModel.from_params(self.params, where=where)
        if self.params["fill_on"] not in FILL_MODES:
            raise ConfigError(f"{where}: parameter 'fill_on' must be one of {FILL_MODES}, got {self.params['fill_on']!r}")
        self._symbol = str(self.params["symbol"])

    def set_params(self, **kwargs: Any) -> None:
        super().set_params(**kwargs)
        if hasattr(self, "_costs"):
            if self._positions or self._pending:
                logger.warning("broker %s: parameters changed with positions open; new costs apply to new fills", self._symbol)
            self._configure()

    # ------------------------------------------------------------------ bars
    def on_bar(
        self, index: int, timestamp: int | datetime, open: float, high: float, low: float, close: float
    ) -> list[OrderResult]:
        """Advance to bar ``index``: fill queued orders at its open, then stops/targets.

        ``timestamp`` is the bar's time (int ns UTC or an aware datetime). Returns the
        fills that happened, in order (opens: status ``open`` with ``entry_price``;
        closes: status ``filled`` with ``close_price``, ``pnl`` and the reason).
        """
        o, h, l, c = float(open), float(high), float(low), float(close)
        if not (l <= min(o, c) and h >= max(o, c)) or not all(map(math.isfinite, (o, h, l, c))):
            raise DataError(
                f"{self._symbol} bar {index}: open={open!r} high={high!r} low={low!r} close={close!r}; "
                "need finite prices with low <= open, close <= high"
            )
        ts = _ts_to_ns(timestamp)
        if self._bar >= 0 and (index <= self._bar or ts <= self._ts):
            raise DataError(
                f"{self._symbol} bar {index} at {_dt(ts).isoformat()} does not come after bar "
                f"{self._bar} at {_dt(self._ts).isoformat()}"
            )
        self._bar, self._ts, self._day, self._close = int(index), ts, ts // NS_PER_DAY, c
        events: list[OrderResult] = []
        pending, self._pending = self._pending, []
        for order in pending:
            if isinstance(order, _PendingClose):
                pos = self._positions.get(order.position_id)
                if pos is not None:
                    events.append(self._close_position(pos, o, order.reason, order.order_id, order.client_order_id))
            else:
                events.append(self._fill_open(order, o))
        for pos in list(self._positions.values()):
            if pos.entry_bar < self._bar:
                hit = stop_exit(pos.side, pos.sl, pos.tp, o, h, l)
                if hit is not None:
                    events.append(self._close_position(pos, hit[0], hit[1], f"O{next(self._ids)}", None))
        return events

    def _fill_open(self, order: _PendingOpen, ref: float) -> OrderResult:
        price = entry_fill(ref, order.side, self._costs.adj)
        sl, tp = stop_levels(order.side, price, order.sl_distance, order.tp_distance)
        if order.sl is not None:
            sl = order.sl
        if order.tp is not None:
            tp = order.tp
        comm = commission(order.units, self._costs)
        self._cash = self._cash - comm
        pos = _Position(
            position_id=order.position_id,
            order_id=order.order_id,
            client_order_id=order.client_order_id,
            side=order.side,
            units=order.units,
            entry_price=price,
            entry_bar=self._bar,
            entry_day=self._day,
            entry_ts=self._ts,
            sl=sl,
            tp=tp,
            entry_commission=comm,
        )
        self._positions[pos.position_id] = pos
        logger.debug("%s: opened %s %s at %s", self._symbol, pos.position_id, order.units, price)
        return OrderResult(
            success=True,
            client_order_id=order.client_order_id,
            order_id=order.order_id,
            position_id=pos.position_id,
            status=OrderStatus.OPEN,
            side=Side.BUY if pos.side > 0 else Side.SELL,
            quantity=_dec(pos.units),
            entry_price=_price(price),
            commission=_dec(comm),
            timestamp=_dt(self._ts),
        )

    def _close_position(
        self, pos: _Position, ref: float, reason: str, order_id: str, client_order_id: str | None
    ) -> OrderResult:
        price = exit_fill(ref, pos.side, self._costs.adj)
        comm = commission(pos.units, self._costs)
        swp = swap(pos.units, pos.entry_day, self._day, self._costs)
        gross = gross_pnl(pos.side, pos.units, pos.entry_price, price)
        self._cash = self._cash + gross - comm - swp
        pnl = gross - pos.entry_commission - comm - swp
        del self._positions[pos.position_id]
        side = Side.BUY if pos.side > 0 else Side.SELL
        self._history.append(
            Trade(
                symbol=self._symbol,
                side=side,
                quantity=pos.units,
                entry_time=_dt(pos.entry_ts),
                entry_price=pos.entry_price,
                exit_time=_dt(self._ts),
                exit_price=price,
                pnl=pnl,
                commission=pos.entry_commission + comm,
                swap=swp,
                exit_reason=reason,
            )
        )
        logger.debug("%s: closed %s at %s (%s), pnl %s", self._symbol, pos.position_id, price, reason, pnl)
        return OrderResult(
            success=True,
            client_order_id=client_order_id,
            order_id=order_id,
            position_id=pos.position_id,
            status=OrderStatus.FILLED,
            side=side,
            quantity=_dec(pos.units),
            entry_price=_price(pos.entry_price),
            close_price=_price(price),
            pnl=_dec(pnl),
            commission=_dec(pos.entry_commission + comm),
            swap=_dec(swp),
            reason=reason,
            timestamp=_dt(self._ts),
        )

    def close_all(self, reason: str = "end") -> list[OrderResult]:
        """Cancel queued orders and close every position at the current bar's close."""
        self._pending.clear()
        return [
            self._close_position(pos, self._close, reason, f"O{next(self._ids)}", None)
            for pos in list(self._positions.values())
        ]

    # ---------------------------------------------------------------- orders
    def execute_order(self, action: str, parameters: Mapping[str, Any]) -> OrderResult:
        """Seed §3 entry point: ``open`` / ``close`` / ``modify`` (``hold`` places nothing).

        A repeated ``parameters["client_order_id"]`` returns the first answer unchanged.
        """
        cid = parameters.get("client_order_id")
        cid = None if cid is None else str(cid)
        if cid is not None and cid in self._results:
            return self._results[cid]
        act = str(getattr(action, "value", action)).strip().lower()
        if act == "open":
            result = self.open_order(parameters)
        elif act == "close":
            result = self.close_order(parameters)
        elif act == "modify":
            result = self.modify_order(parameters)
        elif act == "hold":
            return OrderResult(success=True, client_order_id=cid, status=OrderStatus.CANCELLED,
                               reason="hold: no order placed")
        else:
            result = self._reject(cid, f"unknown action {action!r}; expected open, close, modify or hold")
        if cid is not None:
            self._results[cid] = result
        return result

    def _reject(self, cid: str | None, reason: str) -> OrderResult:
        self.rejected_orders += 1
        logger.info("%s: order %s rejected: %s", self._symbol, cid, reason)
        return OrderResult(success=False, client_order_id=cid, status=OrderStatus.REJECTED, reason=reason,
                           timestamp=_dt(self._ts) if self._bar >= 0 else None)

    def open_order(self, parameters: Mapping[str, Any]) -> OrderResult:
        """Open a position (``side``, ``quantity`` in units, optional ``sl``/``tp`` price
        levels or ``sl_distance``/``tp_distance`` from the entry fill)."""
        cid = None if parameters.get("client_order_id") is None else str(parameters["client_order_id"])
        try:
            req = parse_open(parameters)
        except BadOrder as exc:
            return self._reject(cid, str(exc))
        if self._bar < 0:
            return self._reject(cid, "no market price yet: call on_bar() before sending orders")
        need = required_margin(req.quantity, self._close, self._costs)
        free = self.free_margin()
        if need > free:
            return self._reject(
                cid, f"insufficient margin: {req.quantity:g} units at {self._close:g} need {need:.2f}, free margin {free:.2f}"
            )
        n = next(self._ids)
        order = _PendingOpen(
            order_id=f"O{n}", client_order_id=cid, position_id=f"P{n}",
            side=req.side.sign, units=req.quantity, ref_price=self._close,
            sl=req.sl, tp=req.tp, sl_distance=req.sl_distance, tp_distance=req.tp_distance,
        )
        if self.params["fill_on"] == "current":
            return self._fill_open(order, self._close)
        self._pending.append(order)
        return OrderResult(
            success=True, client_order_id=cid, order_id=order.order_id, position_id=order.position_id,
            status=OrderStatus.PENDING, side=req.side, quantity=_dec(req.quantity), timestamp=_dt(self._ts),
            reason="fills at the next bar's open",
        )

    def close_order(self, parameters: Mapping[str, Any]) -> OrderResult:
        """Close position ``position_id`` (a still-queued open is cancelled instead)."""
        cid = None if parameters.get("client_order_id") is None else str(parameters["client_order_id"])
        try:
            pid = parse_position_id(parameters)
        except BadOrder as exc:
            return self._reject(cid, str(exc))
        for order in self._pending:
            if isinstance(order, _PendingOpen) and order.position_id == pid:
                self._pending.remove(order)
                return OrderResult(success=True, client_order_id=cid, order_id=order.order_id, position_id=pid,
                                   status=OrderStatus.CANCELLED, reason="open order cancelled before its fill")
        pos = self._positions.get(pid)
        if pos is None or pos.closing:
            return self._reject(cid, f"position {pid!r} is not open (unknown, closed or already closing)")
        order_id = f"O{next(self._ids)}"
        reason = str(parameters.get("reason_code", "signal"))
        if self.params["fill_on"] == "current":
            return self._close_position(pos, self._close, reason, order_id, cid)
        pos.closing = True
        self._pending.append(_PendingClose(order_id=order_id, client_order_id=cid, position_id=pid, reason=reason))
        return OrderResult(success=True, client_order_id=cid, order_id=order_id, position_id=pid,
                           status=OrderStatus.PENDING, side=Side.BUY if pos.side > 0 else Side.SELL,
                           quantity=_dec(pos.units), entry_price=_price(pos.entry_price), timestamp=_dt(self._ts),
                           reason="closes at the next bar's open")

    def modify_order(self, parameters: Mapping[str, Any]) -> OrderResult:
        """Set new absolute ``sl`` / ``tp`` levels on an open position."""
        cid = None if parameters.get("client_order_id") is None else str(parameters["client_order_id"])
        try:
            pid = parse_position_id(parameters)
            sl = optional_level(parameters, "sl")
            tp = optional_level(parameters, "tp")
        except BadOrder as exc:
            return self._reject(cid, str(exc))
        pos = self._positions.get(pid)
        if pos is None:
            return self._reject(cid, f"position {pid!r} is not open")
        if sl is None and tp is None:
            return self._reject(cid, "modify needs parameters.sl and/or parameters.tp")
        if sl is not None:
            pos.sl = sl
        if tp is not None:
            pos.tp = tp
        return OrderResult(success=True, client_order_id=cid, order_id=pos.order_id, position_id=pid,
                           status=OrderStatus.OPEN, side=Side.BUY if pos.side > 0 else Side.SELL,
                           quantity=_dec(pos.units), entry_price=_price(pos.entry_price), reason="sl/tp modified")

    # ----------------------------------------------------------------- views
    def _view(self, pos: _Position) -> PositionView:
        upnl = gross_pnl(pos.side, pos.units, pos.entry_price, self._close)
        return PositionView(
            position_id=pos.position_id, symbol=self._symbol, side=Side.BUY if pos.side > 0 else Side.SELL,
            quantity=_dec(pos.units), entry_price=_price(pos.entry_price), current_price=_price(self._close),
            unrealized_pnl=_dec(upnl), commission=_dec(pos.entry_commission),
            swap=_dec(swap(pos.units, pos.entry_day, self._day, self._costs)),
            sl=None if math.isinf(pos.sl) else _price(pos.sl), tp=None if math.isinf(pos.tp) else _price(pos.tp),
            opened_at=_dt(pos.entry_ts),
        )

    def get_open_orders(self) -> list[PositionView]:
        """The open positions (including those with a close queued), oldest first."""
        return [self._view(p) for p in self._positions.values()]

    open_trades = get_open_orders

    def positions_for_strategy(self) -> tuple[PositionView, ...]:
        """Positions as a strategy deciding now should see them: open ones minus those
        with a queued close, plus queued opens (priced at their decision bar's close
        until they fill). This is what makes a reversal two decisions in one step."""
        views = [self._view(p) for p in self._positions.values() if not p.closing]
        for order in self._pending:
            if isinstance(order, _PendingOpen):
                views.append(PositionView(
                    position_id=order.position_id, symbol=self._symbol,
                    side=Side.BUY if order.side > 0 else Side.SELL, quantity=_dec(order.units),
                    entry_price=_price(order.ref_price), current_price=_price(self._close),
                ))
        return tuple(views)

    def equity(self) -> float:
        """Cash + open P&L at the current close - swap accrued (same formula as the backtest)."""
        eq = self._cash
        for p in self._positions.values():
            eq = eq + gross_pnl(p.side, p.units, p.entry_price, self._close) - swap(p.units, p.entry_day, self._day, self._costs)
        return eq

    def margin_used(self) -> float:
        """Margin of open positions not being closed plus queued opens, at the current close."""
        used = 0.0
        for p in self._positions.values():
            if not p.closing:
                used += required_margin(p.units, self._close, self._costs)
        for order in self._pending:
            if isinstance(order, _PendingOpen):
                used += required_margin(order.units, self._close, self._costs)
        return used

    def free_margin(self) -> float:
        return self.equity() - self.margin_used()

    def account_summary(self) -> dict[str, Any]:
        """Balance, equity, margin and counts (money as Decimal)."""
        eq = self.equity()
        return {
            "symbol": self._symbol,
            "balance": _dec(self._cash),
            "equity": _dec(eq),
            "unrealized_pnl": _dec(eq - self._cash),
            "margin_used": _dec(self.margin_used()),
            "free_margin": _dec(self.free_margin()),
            "leverage": _dec(self._costs.leverage),
            "open_positions": len(self._positions),
            "pending_orders": len(self._pending),
            "closed_trades": len(self._history),
            "rejected_orders": self.rejected_orders,
            "bar": self._bar,
            "time": _dt(self._ts) if self._bar >= 0 else None,
        }

    def trade_history(self) -> list[Trade]:
        """Closed round trips, oldest first."""
        return list(self._history)

    def current_price(self) -> Decimal | None:
        """The last bar's close, or None before the first bar."""
        return None if self._bar < 0 else _price(self._close)

    @property
    def costs(self) -> CostModel:
        return self._costs
