"""What a restarted broker actor needs to rebuild one asset's account, read from the database.

The broker actor keeps its accounts in memory: a simulation account *is* its in-memory
state (cash, positions, queued orders, results by client order id), and a live account
keeps the results that make a repeated client order id return the first answer. Ray
restarts a killed broker actor (``max_restarts``) but not its memory, so every asset
re-attaches to the new incarnation and hands it an ``AccountJournal`` built here from
the orders the database holds for the asset (the actor runtime reads them,
``actors.broker_journal.load_journal``; everything here is pure):

* a bar-driven (simulation) account is rebuilt by **deterministic replay**: the same
  orders, with the same parameters and client order ids, at the same bars, in the order
  they were created, then the bars up to where the asset is. The simulation brokers are
  deterministic, so the replay reproduces the same fills, position ids, stops and P&L
  the database recorded;
* a live account is told which client order ids were already sent (a resend is looked up
  at the broker instead of placed again) and which were cancelled by reconciliation.

Orders still ``pending`` in the database are not replayed: whether the dead incarnation
received them is unknown, so the asset reconciles them after the restore like after any
crash (the rebuilt account has never seen them: they are cancelled, and broker and
database agree). Orders cancelled by that reconciliation are refused for good.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from engine.data.market_data import MarketData
from engine.pipeline.default_pipeline import is_reconcile_cancel
from engine.pipeline.ports import OrderIntent
from engine.types import Action, Side, ensure_utc


@dataclass(frozen=True, slots=True)
class ReplayOrder:
    """One order the broker saw, as the database recorded it."""

    client_order_id: str
    action: str  # "open" | "close"
    parameters: dict[str, Any]  # exactly what ``execute_order`` was given
    bar_ns: int | None  # the bar it was decided on (int64 ns UTC)
    status: str  # its final status in the database


@dataclass(frozen=True, slots=True)
class AccountJournal:
    """One asset's history for a broker account rebuild (see the module docstring)."""

    asset_id: Any
    orders: tuple[ReplayOrder, ...] = ()  # sent to the broker, oldest first
    refused: tuple[str, ...] = ()  # cancelled by reconciliation: must never execute
    cursor: int = -1  # last bar the asset processed (simulation accounts)
    finished: bool = False  # the simulation ended (positions closed at the last close)
    open_position_ids: tuple[str, ...] = ()  # the database's open positions (broker ids)

    def __bool__(self) -> bool:
        return bool(self.orders or self.refused or self.cursor >= 0 or self.finished)


def replay_parameters(order: Any) -> dict[str, Any]:
    """The ``execute_order`` parameters of a recorded order (an ``OrderRecord``)."""
    details = dict(order.details or {})
    action = Action(str(order.action))
    intent = OrderIntent(
        client_order_id=order.client_order_id, portfolio_id=order.portfolio_id, asset_id=order.asset_id,
        symbol=order.symbol, action=action, side=Side(str(getattr(order.side, "value", order.side))),
        quantity=order.quantity, bar_time=order.created_at, price=order.price, sl=order.sl, tp=order.tp,
        position_id=details.get("broker_position_id") if action is Action.CLOSE else None,
        extra=dict(details.get("params") or {}),
    )
    return intent.broker_parameters()


def bar_ns(order: Any) -> int | None:
    """The bar time an order was decided on (``details.bar_time``), as int64 ns UTC."""
    text = (order.details or {}).get("bar_time")
    if not text:
        return None
    moment = ensure_utc(datetime.fromisoformat(str(text)))
    return int(np.datetime64(moment.replace(tzinfo=None), "ns").astype(np.int64))


def bar_index(data: MarketData, ns: int) -> int:
    """The index of the bar stamped ``ns`` in ``data``; ``ValueError`` if there is none."""
    i = int(np.searchsorted(data.timestamps, ns))
    if i >= len(data) or int(data.timestamps[i]) != ns:
        raise ValueError(f"no bar at {np.datetime64(ns, 'ns')} in {data.source or data.symbol}")
    return i


def journal_from_records(
    asset_id: Any,
    orders: Sequence[Any],
    open_positions: Sequence[Any],
    data: MarketData | None,
    *,
    cursor: int | None = None,
    finished: bool = False,
) -> AccountJournal:
    """Build the journal from the asset's ``OrderRecord``s (any order) and open
    ``PositionRecord``s. ``cursor``: the last bar the asset processed when it knows
    (a running asset); otherwise the bar of its last recorded order, where a restarted
    asset resumes anyway."""
    replay: list[ReplayOrder] = []
    refused: list[str] = []
    for order in sorted(orders, key=lambda o: o.id):
        status = str(getattr(order.status, "value", order.status))
        if status == "pending":
            continue  # reconciled after the restore (see the module docstring)
        if status == "cancelled" and is_reconcile_cancel(order.reason):
            refused.append(order.client_order_id)
            continue
        replay.append(ReplayOrder(client_order_id=order.client_order_id, action=str(order.action),
                                  parameters=replay_parameters(order), bar_ns=bar_ns(order), status=status))
    if cursor is None:
        cursor = -1
        if data is not None:
            bars = [bar_index(data, o.bar_ns) for o in replay if o.bar_ns is not None]
            cursor = max(bars, default=-1)
    return AccountJournal(
        asset_id=asset_id, orders=tuple(replay), refused=tuple(refused), cursor=cursor, finished=finished,
        open_position_ids=tuple(str(p.broker_position_id) for p in open_positions if p.broker_position_id),
    )


__all__ = ["AccountJournal", "ReplayOrder", "bar_index", "bar_ns", "journal_from_records", "replay_parameters"]
