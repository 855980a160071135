"""What the per-asset pipeline step talks to, as small async protocols.

The step itself (``default_pipeline``) is pure engine code; whoever hosts it supplies
these ports. The asset actor backs them with Ray actor calls (broker actor, persistence
actor, strategy/prediction actors); unit tests and the stepwise backtest back them with
in-process objects. Async because most hosts do I/O; an in-process port just returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from engine.data.market_data import MarketSnapshot
from engine.types import Action, AssetContext, Decision, OrderResult, PositionView, Side


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """An order the asset is about to send, recorded as ``pending`` *before* the broker
    sees it. ``client_order_id`` is deterministic (asset, bar time, sequence) so a resend
    after a crash is recognised by the broker and the store instead of duplicated."""

    client_order_id: str
    portfolio_id: Any
    asset_id: Any
    symbol: str
    action: Action  # OPEN or CLOSE
    side: Side
    quantity: Decimal
    bar_time: datetime
    price: Decimal | None = None
    sl: Decimal | None = None
    tp: Decimal | None = None
    position_id: str | None = None  # the position a CLOSE closes
    extra: Mapping[str, Any] = field(default_factory=dict)

    def broker_parameters(self) -> dict[str, Any]:
        """The seed's ``execute_order(action, parameters)`` parameters for this intent."""
        params: dict[str, Any] = {
            "client_order_id": self.client_order_id,
            "symbol": self.symbol,
            "side": str(self.side),
            "quantity": self.quantity,
        }
        if self.action is Action.CLOSE:
            params["position_id"] = self.position_id
        for key, value in (("price", self.price), ("sl", self.sl), ("tp", self.tp)):
            if value is not None:
                params[key] = value
        params.update(self.extra)
        return params


class BrokerPort(Protocol):
    """The asset's broker account (in the actor runtime: the broker actor)."""

    async def advance(self, index: int) -> Sequence[OrderResult]:
        """Bar-driven (simulation) brokers: process bar ``index`` (fills of queued orders
        at its open, stop-loss / take-profit on its range) and return what happened, as
        results carrying the order's ``client_order_id`` or the closed ``position_id``.
        Idempotent: advancing to a bar already processed returns ``[]``. Live brokers
        return ``[]``."""
        ...

    async def execute_order(self, action: str, parameters: Mapping[str, Any]) -> OrderResult:
        """Send an order; a repeated ``client_order_id`` returns the first result."""
        ...

    async def find_order(self, client_order_id: str) -> OrderResult | None:
        """The broker's result for ``client_order_id``, or ``None`` if it never saw it."""
        ...

    async def finish(self) -> Sequence[OrderResult]:
        """End of a simulation: close what is still open at the last close."""
        ...

    async def closed_positions(self, position_ids: Sequence[str]) -> Sequence[OrderResult]:
        """Close results for those of ``position_ids`` the broker no longer holds open
        (closed by stop-loss / take-profit while the asset was down)."""
        ...


class JournalPort(Protocol):
    """Durable order/position records (in the actor runtime: the persistence actor)."""

    async def record_intent(self, intent: OrderIntent) -> None:
        """Record ``intent`` as a pending order (idempotent by client order id)."""
        ...

    async def record_result(self, intent: OrderIntent | None, result: OrderResult) -> None:
        """Record the broker's answer: open (position opened), filled (position closed
        with its P&L), rejected or cancelled (with the reason). ``intent`` is ``None`` for
        broker-initiated events (stop-loss, take-profit, end-of-data close)."""
        ...


class DecisionPort(Protocol):
    """The strategy (in-process plugin or a strategy actor)."""

    needs_predictions: bool

    async def decide(self, asset: AssetContext, snapshot: MarketSnapshot) -> Decision: ...


class PredictionPort(Protocol):
    """Predictions for one bar time (the prediction actor, or an in-process provider)."""

    async def predictions_at(self, snapshot: MarketSnapshot) -> Any: ...


@dataclass(slots=True)
class AssetState:
    """What an asset knows between steps; rebuilt from the database on every (re)start."""

    portfolio_id: Any
    asset_id: Any
    symbol: str
    allocated_capital: Decimal = Decimal("0")
    max_positions: int = 1
    positions: dict[str, PositionView] = field(default_factory=dict)
    pending: dict[str, OrderIntent] = field(default_factory=dict)  # client order id -> intent
    closing: set[str] = field(default_factory=set)  # positions with a queued close
    last_bar_time: datetime | None = None
    finished: bool = False
    # P&L of the positions this asset closed (from the database on a rebuild, then every
    # close the step records): with the open positions' P&L, the asset's equity.
    realized_pnl: Decimal = Decimal("0")

    def equity(self, price: float | Decimal | None) -> Decimal:
        """Allocated capital + realized P&L + the open positions' P&L at ``price`` (an
        estimate for monitoring: the broker's account and the database are authoritative)."""
        total = self.allocated_capital + self.realized_pnl
        if price is None:
            return total
        mark = Decimal(str(price))
        for position in self.positions.values():
            sign = 1 if position.side is Side.BUY else -1
            total += (mark - position.entry_price) * position.quantity * sign
        return total

    def context(self) -> AssetContext:
        """The read-only view a strategy gets."""
        return AssetContext(
            asset_id=self.asset_id,
            portfolio_id=self.portfolio_id,
            symbol=self.symbol,
            allocated_capital=self.allocated_capital,
            max_positions=self.max_positions,
            open_positions=tuple(p for pid, p in self.positions.items() if pid not in self.closing),
        )
