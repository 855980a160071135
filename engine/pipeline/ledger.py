"""What a broker's answer changes in the ledger: a pure mapping from an order result to
the ledger changes to record, with the commission arithmetic of a round trip.

The runtime records each change through the store (``actors.ports.StoreJournal``); the
request id of a change is deterministic, so recording it again is a no-op. Kept free of
I/O so the rules are unit-tested and read in one place:

* an answer to an intent that is still ``pending`` at the broker changes nothing (it
  fills on a later bar, and that fill is its own result);
* a rejection (or any failure that is not a cancel) marks the order rejected; a cancel
  marks it cancelled;
* a filled open marks the order open and opens a position; a filled close marks the
  order filled;
* a result that closes a position (the close of an intent, or the broker's own stop,
  target or end of data) closes the ledger's position. The broker reports the round
  trip's whole commission on the close; the ledger already holds the opening part, so
  the close adds only the rest (never below zero).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import ClassVar

from engine.pipeline.ports import OrderIntent
from engine.types import Action, OrderResult, OrderStatus

CLOSE_REASON_MAX = 64
"""The ledger stores at most this many characters of a close reason."""


@dataclass(frozen=True, slots=True)
class Fill:
    """What the broker answered for an order that went through."""

    broker_order_id: str | None
    filled_quantity: Decimal | None
    filled_price: Decimal | None
    commission: Decimal
    filled_at: datetime | None


@dataclass(frozen=True, slots=True)
class RejectOrder:
    op: ClassVar[str] = "mark_order_rejected"
    client_order_id: str
    reason: str

    @property
    def request_id(self) -> str:
        return f"reject:{self.client_order_id}"


@dataclass(frozen=True, slots=True)
class CancelOrder:
    op: ClassVar[str] = "mark_order_cancelled"
    client_order_id: str
    reason: str

    @property
    def request_id(self) -> str:
        return f"cancel:{self.client_order_id}"


@dataclass(frozen=True, slots=True)
class MarkOpened:
    """An opening order filled (its position is a separate :class:`OpenPosition`)."""

    op: ClassVar[str] = "mark_order_open"
    client_order_id: str
    fill: Fill

    @property
    def request_id(self) -> str:
        return f"open:{self.client_order_id}"


@dataclass(frozen=True, slots=True)
class OpenPosition:
    op: ClassVar[str] = "open_position"
    portfolio_id: int
    asset_id: int
    opening_client_order_id: str
    broker_position_id: str | None
    side: str
    quantity: Decimal
    entry_price: Decimal | None
    commission: Decimal
    opened_at: datetime | None

    @property
    def request_id(self) -> str:
        return f"position:{self.opening_client_order_id}"


@dataclass(frozen=True, slots=True)
class MarkFilled:
    """A closing order filled."""

    op: ClassVar[str] = "mark_order_filled"
    client_order_id: str
    fill: Fill

    @property
    def request_id(self) -> str:
        return f"fill:{self.client_order_id}"


@dataclass(frozen=True, slots=True)
class ClosePosition:
    op: ClassVar[str] = "close_position"
    asset_id: int
    broker_position_id: str
    position_db_id: int
    close_price: Decimal
    realized_pnl: Decimal
    closing_client_order_id: str | None
    commission: Decimal  # the closing part only: added to the opening commission
    swap: Decimal
    closed_at: datetime | None
    close_reason: str

    @property
    def request_id(self) -> str:
        # Keyed by the position, not an order: a broker-side stop has no client order id.
        return f"close:{self.asset_id}:{self.broker_position_id}"


LedgerChange = RejectOrder | CancelOrder | MarkOpened | OpenPosition | MarkFilled | ClosePosition


@dataclass(frozen=True, slots=True)
class ResultChanges:
    """The changes one result makes, in the order to record them.

    ``closed``: the broker position id whose ledger position the changes close (the
    caller forgets it); ``unknown_close``: a position the broker closed that the ledger
    does not hold open (nothing to record; worth a warning)."""

    changes: tuple[LedgerChange, ...] = ()
    closed: str | None = None
    unknown_close: str | None = None


def closes_position(result: OrderResult) -> bool:
    """Whether ``result`` closes a position (so the ledger must know that position)."""
    return result.close_price is not None and bool(result.position_id) and result.success


def result_changes(
    intent: OrderIntent | None,
    result: OrderResult,
    open_positions: Mapping[str, tuple[int, Decimal]],
    *,
    portfolio_id: int,
    asset_id: int,
) -> ResultChanges:
    """The ledger changes of the broker's ``result`` for ``intent`` (None: the broker's
    own event). ``open_positions``: broker position id -> (ledger position id, opening
    commission) of the asset's open positions."""
    changes: list[LedgerChange] = []
    cid = intent.client_order_id if intent is not None else None
    if intent is not None:
        assert cid is not None
        if result.status is OrderStatus.PENDING:
            return ResultChanges()  # accepted, fills on a later bar: the order stays pending
        if result.status is OrderStatus.REJECTED or not result.success and result.status is not OrderStatus.CANCELLED:
            changes.append(RejectOrder(cid, result.reason or "rejected by the broker"))
        elif result.status is OrderStatus.CANCELLED:
            changes.append(CancelOrder(cid, result.reason or "cancelled"))
        elif intent.action is Action.OPEN:
            quantity = result.quantity or intent.quantity
            changes.append(MarkOpened(cid, Fill(result.order_id, quantity, result.entry_price,
                                                result.commission, result.timestamp)))
            changes.append(OpenPosition(
                portfolio_id=portfolio_id, asset_id=asset_id, opening_client_order_id=cid,
                broker_position_id=result.position_id, side=(result.side or intent.side).value,
                quantity=quantity, entry_price=result.entry_price, commission=result.commission,
                opened_at=result.timestamp))
        else:  # a close that filled
            changes.append(MarkFilled(cid, Fill(result.order_id, result.quantity or intent.quantity,
                                                result.close_price, result.commission, result.timestamp)))
    if not closes_position(result):
        return ResultChanges(tuple(changes))
    position_id = result.position_id or ""
    known = open_positions.get(position_id)
    if known is None:
        return ResultChanges(tuple(changes), unknown_close=position_id)
    db_id, open_commission = known
    assert result.close_price is not None
    changes.append(ClosePosition(
        asset_id=asset_id, broker_position_id=position_id, position_db_id=db_id,
        close_price=result.close_price, realized_pnl=result.pnl or Decimal("0"),
        closing_client_order_id=cid, commission=max(result.commission - open_commission, Decimal("0")),
        swap=result.swap, closed_at=result.timestamp,
        close_reason=(result.reason or "signal")[:CLOSE_REASON_MAX]))
    return ResultChanges(tuple(changes), closed=position_id)


__all__ = [
    "CancelOrder", "ClosePosition", "Fill", "LedgerChange", "MarkFilled", "MarkOpened", "OpenPosition",
    "RejectOrder", "ResultChanges", "closes_position", "result_changes",
]
