"""``default_broker``: an in-memory, deterministic simulated broker (no external calls).

Orders fill immediately at ``parameters["price"]`` when given, else at the last price
fed with :meth:`DefaultBroker.set_price` / :meth:`DefaultBroker.on_bar`; all money is
``Decimal``. Timestamps come from the last bar fed (``on_bar``) or an injected clock.
A repeated ``client_order_id`` returns the first answer.

Fault injection is OFF unless configured — for exercising retries and isolation:
``fail_every_n`` (every n-th new order fails), ``fail_probability`` (with
``fail_seed`` for a reproducible sequence) and ``fail_mode``: ``"reject"`` answers a
rejected ``OrderResult`` (final: repeats return it), ``"raise"`` raises
``TemporaryError`` (nothing recorded, so a retry with the same id executes).
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, ClassVar

from engine.brokers._sim_orders import BadOrder, optional_level, parse_open, parse_position_id
from engine.errors import ConfigError, TemporaryError
from engine.plugins.base import BrokerPlugin
from engine.types import OrderResult, OrderStatus, PositionView, Side, ensure_utc, to_decimal, utcnow

logger = logging.getLogger(__name__)

FAIL_MODES = ("reject", "raise")


@dataclass(slots=True)
class _Position:
    position_id: str
    order_id: str
    side: Side
    quantity: Decimal
    entry_price: Decimal
    commission: Decimal
    opened_at: datetime
    sl: Decimal | None
    tp: Decimal | None


class DefaultBroker(BrokerPlugin):
    """Immediate fills in memory, Decimal accounting, optional injected faults."""

    name: ClassVar[str] = "default_broker"
    plugin_params: ClassVar[dict[str, Any]] = {
        "symbol": "EURUSD",
        "initial_cash": 10_000.0,
        "commission_per_order": 0.0,  # charged on each open and each close
        "fail_every_n": 0,  # 0 = off
        "fail_probability": 0.0,  # 0 = off
        "fail_seed": 0,
        "fail_mode": "reject",  # "reject" | "raise"
    }
    plugin_debug_vars: ClassVar[list[str]] = ["symbol", "fail_every_n", "fail_probability", "fail_mode"]

    def __init__(self, config: Mapping[str, Any] | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        super().__init__(config)
        self._clock = clock  # injectable for deterministic timestamps; on_bar() overrides it
        self._configure()
        self._cash = to_decimal(self.params["initial_cash"])
        self._positions: dict[str, _Position] = {}
        self._results: dict[str, OrderResult] = {}
        self._ids = itertools.count(1)
        self._orders_seen = 0
        self._price: Decimal | None = None
        self._closed: list[PositionView] = []
        self._bar_time: datetime | None = None

    def _now(self) -> datetime:
        return self._bar_time if self._bar_time is not None else ensure_utc(self._clock())

    def _configure(self) -> None:
        where = f"broker {self.name}"
        p = self.params
        try:
            every = int(p["fail_every_n"])
            prob = float(p["fail_probability"])
            cash = to_decimal(p["initial_cash"])
            comm = to_decimal(p["commission_per_order"])
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise ConfigError(f"{where}: invalid parameter value ({exc})") from None
        if every < 0:
            raise ConfigError(f"{where}: parameter 'fail_every_n' must be >= 0, got {p['fail_every_n']!r}")
        if not 0.0 <= prob <= 1.0:
            raise ConfigError(f"{where}: parameter 'fail_probability' must be within [0, 1], got {p['fail_probability']!r}")
        if p["fail_mode"] not in FAIL_MODES:
            raise ConfigError(f"{where}: parameter 'fail_mode' must be one of {FAIL_MODES}, got {p['fail_mode']!r}")
        if cash is None or cash <= 0 or comm is None or comm < 0:
            raise ConfigError(f"{where}: 'initial_cash' must be > 0 and 'commission_per_order' >= 0")
        self._every, self._prob, self._commission = every, prob, comm
        self._rng = random.Random(int(p["fail_seed"]))

    # ----------------------------------------------------------------- prices
    def set_price(self, price: float | Decimal | str) -> None:
        """The price orders without an explicit ``price`` fill at."""
        value = to_decimal(price)
        if value is None or value <= 0:
            raise BadOrder(f"price must be > 0, got {price!r}")
        self._price = value

    def on_bar(self, index: int, timestamp: Any, open: float, high: float, low: float, close: float) -> list[OrderResult]:
        """Take the bar's close as the current price and its time as the clock (same
        driving call as the simulation broker)."""
        self.set_price(close)
        if isinstance(timestamp, datetime):
            self._bar_time = ensure_utc(timestamp)
        elif timestamp is not None:
            self._bar_time = datetime.fromtimestamp(int(timestamp) / 1e9, tz=timezone.utc)
        return []

    def current_price(self) -> Decimal | None:
        return self._price

    # ----------------------------------------------------------------- orders
    def _injected_fault(self) -> str | None:
        self._orders_seen += 1
        if self._every and self._orders_seen % self._every == 0:
            return f"injected fault on order #{self._orders_seen} (fail_every_n={self._every})"
        if self._prob and self._rng.random() < self._prob:
            return f"injected fault on order #{self._orders_seen} (fail_probability={self._prob:g})"
        return None

    def execute_order(self, action: str, parameters: Mapping[str, Any]) -> OrderResult:
        """``open`` / ``close`` / ``modify`` / ``hold``; idempotent by ``client_order_id``."""
        cid = parameters.get("client_order_id")
        cid = None if cid is None else str(cid)
        if cid is not None and cid in self._results:
            return self._results[cid]
        act = str(getattr(action, "value", action)).strip().lower()
        if act == "hold":
            return OrderResult(success=True, client_order_id=cid, status=OrderStatus.CANCELLED,
                               reason="hold: no order placed")
        fault = self._injected_fault()
        if fault is not None:
            logger.warning("%s: %s (client order id %s)", self.params["symbol"], fault, cid)
            if self.params["fail_mode"] == "raise":
                raise TemporaryError(f"default_broker: {fault}")
            result = self._reject(cid, fault)
        elif act == "open":
            result = self.open_order(parameters)
        elif act == "close":
            result = self.close_order(parameters)
        elif act == "modify":
            result = self.modify_order(parameters)
        else:
            result = self._reject(cid, f"unknown action {action!r}; expected open, close, modify or hold")
        if cid is not None:
            self._results[cid] = result
        return result

    def _reject(self, cid: str | None, reason: str) -> OrderResult:
        return OrderResult(success=False, client_order_id=cid, status=OrderStatus.REJECTED, reason=reason,
                           timestamp=self._now())

    def _fill_price(self, parameters: Mapping[str, Any]) -> Decimal | None:
        if parameters.get("price") is not None:
            return to_decimal(parameters["price"])  # already checked > 0 by parse_open / below
        return self._price

    def open_order(self, parameters: Mapping[str, Any]) -> OrderResult:
        """Open at the given or last price: ``{success, order_id, entry_price}``."""
        cid = None if parameters.get("client_order_id") is None else str(parameters["client_order_id"])
        try:
            req = parse_open(parameters)
        except BadOrder as exc:
            return self._reject(cid, str(exc))
        price = self._fill_price(parameters)
        if price is None:
            return self._reject(cid, "no price: pass parameters.price or call set_price() first")
        n = next(self._ids)
        qty = to_decimal(parameters["quantity"])  # the caller's exact value, not the parsed float
        pos = _Position(
            position_id=f"P{n}", order_id=f"D{n}", side=req.side, quantity=qty, entry_price=price,
            commission=self._commission, opened_at=self._now(),
            sl=None if req.sl is None else to_decimal(req.sl), tp=None if req.tp is None else to_decimal(req.tp),
        )
        self._cash -= self._commission
        self._positions[pos.position_id] = pos
        return OrderResult(success=True, client_order_id=cid, order_id=pos.order_id, position_id=pos.position_id,
                           status=OrderStatus.OPEN, side=pos.side, quantity=pos.quantity, entry_price=price,
                           commission=self._commission, timestamp=pos.opened_at)

    def close_order(self, parameters: Mapping[str, Any]) -> OrderResult:
        """Close ``position_id`` at the given or last price: ``{success, close_price, pnl}``."""
        cid = None if parameters.get("client_order_id") is None else str(parameters["client_order_id"])
        try:
            pid = parse_position_id(parameters)
        except BadOrder as exc:
            return self._reject(cid, str(exc))
        pos = self._positions.get(pid)
        if pos is None:
            return self._reject(cid, f"position {pid!r} is not open")
        try:
            optional_level(parameters, "price")
        except BadOrder as exc:
            return self._reject(cid, str(exc))
        price = self._fill_price(parameters)
        if price is None:
            return self._reject(cid, "no price: pass parameters.price or call set_price() first")
        gross = (price - pos.entry_price) * pos.quantity * pos.side.sign
        pnl = gross - pos.commission - self._commission
        self._cash += gross - self._commission
        del self._positions[pid]
        now = self._now()
        self._closed.append(PositionView(
            position_id=pid, symbol=str(self.params["symbol"]), side=pos.side, quantity=pos.quantity,
            entry_price=pos.entry_price, current_price=price, realized_pnl=pnl,
            commission=pos.commission + self._commission, is_open=False, opened_at=pos.opened_at, closed_at=now,
        ))
        return OrderResult(success=True, client_order_id=cid, order_id=f"D{next(self._ids)}", position_id=pid,
                           status=OrderStatus.FILLED, side=pos.side, quantity=pos.quantity,
                           entry_price=pos.entry_price, close_price=price, pnl=pnl,
                           commission=pos.commission + self._commission, timestamp=now)

    def modify_order(self, parameters: Mapping[str, Any]) -> OrderResult:
        """Set ``sl`` / ``tp`` price levels on an open position."""
        cid = None if parameters.get("client_order_id") is None else str(parameters["client_order_id"])
        try:
            pid = parse_position_id(parameters)
            sl, tp = optional_level(parameters, "sl"), optional_level(parameters, "tp")
        except BadOrder as exc:
            return self._reject(cid, str(exc))
        pos = self._positions.get(pid)
        if pos is None:
            return self._reject(cid, f"position {pid!r} is not open")
        if sl is None and tp is None:
            return self._reject(cid, "modify needs parameters.sl and/or parameters.tp")
        if sl is not None:
            pos.sl = to_decimal(parameters["sl"])
        if tp is not None:
            pos.tp = to_decimal(parameters["tp"])
        return OrderResult(success=True, client_order_id=cid, order_id=pos.order_id, position_id=pid,
                           status=OrderStatus.OPEN, side=pos.side, quantity=pos.quantity,
                           entry_price=pos.entry_price, reason="sl/tp modified")

    # ------------------------------------------------------------------ views
    def get_open_orders(self) -> list[PositionView]:
        """Open positions, oldest first, valued at the last price."""
        views = []
        for p in self._positions.values():
            upnl = Decimal("0") if self._price is None else (self._price - p.entry_price) * p.quantity * p.side.sign
            views.append(PositionView(
                position_id=p.position_id, symbol=str(self.params["symbol"]), side=p.side, quantity=p.quantity,
                entry_price=p.entry_price, current_price=self._price, unrealized_pnl=upnl,
                commission=p.commission, sl=p.sl, tp=p.tp, opened_at=p.opened_at,
            ))
        return views

    positions_for_strategy = get_open_orders

    def closed_positions(self) -> list[PositionView]:
        return list(self._closed)

    def account_summary(self) -> dict[str, Any]:
        """Balance (cash after realised P&L and commission), equity and counts."""
        upnl = sum((v.unrealized_pnl for v in self.get_open_orders()), Decimal("0"))
        return {"symbol": self.params["symbol"], "balance": self._cash, "equity": self._cash + upnl,
                "unrealized_pnl": upnl, "open_positions": len(self._positions),
                "closed_positions": len(self._closed)}
