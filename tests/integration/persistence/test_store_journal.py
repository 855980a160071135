"""The asset actor's journal (``actors.ports.StoreJournal``) over a real Store, on SQLite
and PostgreSQL: intents are committed before ``record_intent`` returns; results are
written behind (queued, then carried by the next intent or flushed), a close is linked to
its position even when the opening result was still queued, and a result write that
fails is reported on ``failure`` instead of being lost silently."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

from actors.ports import StoreJournal
from actors.store_proxy import StoreProxy
from engine.pipeline.ports import OrderIntent
from engine.types import Action, OrderResult, OrderStatus, Side, utcnow
from persistence.records import PageRequest
from persistence.store import Store
from tests.fixtures.db_fixtures import seed_owner_portfolio


class CountingProxy(StoreProxy):
    """The real proxy (local writes to the database), counting its write calls."""

    calls = 0

    async def write_outcomes(self, writes: Any) -> list[Any]:
        self.calls += 1
        return await super().write_outcomes(writes)


def _orders(store: Store, asset_id: int) -> dict[str, Any]:
    return {o.client_order_id: o for o in store.list_orders(asset_id=asset_id, page=PageRequest(limit=100)).items}


def _positions(store: Store, asset_id: int) -> list[Any]:
    return list(store.list_positions(asset_id=asset_id, page=PageRequest(limit=100)).items)


def test_results_are_written_behind_and_carried_by_the_next_intent(store: Store, db_url: str) -> None:
    seeded = seed_owner_portfolio(store)
    record = store.get_asset(seeded.asset_id)
    proxy = CountingProxy(db_url, local_writes=True)
    journal = StoreJournal(proxy, record)
    t0 = utcnow()
    t1 = t0 + timedelta(hours=1)

    def intent(cid: str, action: Action, side: Side, at: Any, position: str | None = None) -> OrderIntent:
        return OrderIntent(client_order_id=cid, portfolio_id=seeded.portfolio_id, asset_id=seeded.asset_id,
                           symbol=seeded.symbol, action=action, side=side, quantity=Decimal("1000"), bar_time=at,
                           position_id=position)

    async def scenario() -> None:
        opening = intent("a-1-o0", Action.OPEN, Side.BUY, t0)
        await journal.record_intent(opening)
        assert _orders(store, seeded.asset_id)["a-1-o0"].status.value == "pending"
        await journal.record_result(opening, OrderResult(
            success=True, client_order_id="a-1-o0", status=OrderStatus.OPEN, order_id="B1", position_id="P1",
            side=Side.BUY, quantity=Decimal("1000"), entry_price=Decimal("1.10010"), commission=Decimal("0.5"),
            timestamp=t0))
        # Written behind: the answer is queued, nothing reached the database yet.
        assert journal.pending_writes == 2
        assert _orders(store, seeded.asset_id)["a-1-o0"].status.value == "pending"
        assert _positions(store, seeded.asset_id) == []

        # The close needs the position's database id, still queued: the opening result is
        # written first, and the close order is linked to that position.
        closing = intent("a-2-cP1", Action.CLOSE, Side.SELL, t1, position="P1")
        await journal.record_intent(closing)
        orders = _orders(store, seeded.asset_id)
        (position,) = _positions(store, seeded.asset_id)
        assert orders["a-1-o0"].status.value == "open" and position.is_open
        assert orders["a-2-cP1"].status.value == "pending" and orders["a-2-cP1"].position_id == position.id

        # A reversal: the close's answer rides with the next open's intent, in one call.
        await journal.record_result(closing, OrderResult(
            success=True, client_order_id="a-2-cP1", status=OrderStatus.FILLED, order_id="B2", position_id="P1",
            close_price=Decimal("1.10110"), pnl=Decimal("1.00"), commission=Decimal("1.0"), timestamp=t1))
        assert journal.pending_writes == 2 and _orders(store, seeded.asset_id)["a-2-cP1"].status.value == "pending"
        calls = proxy.calls
        reopening = intent("a-2-o0", Action.OPEN, Side.SELL, t1)
        await journal.record_intent(reopening)
        assert proxy.calls == calls + 1
        orders = _orders(store, seeded.asset_id)
        assert orders["a-2-cP1"].status.value == "filled" and orders["a-2-o0"].status.value == "pending"
        (closed,) = _positions(store, seeded.asset_id)
        assert not closed.is_open and closed.realized_pnl == Decimal("1.00")

        # The last answer leaves on flush without anyone waiting; settle waits for it.
        await journal.record_result(reopening, OrderResult(
            success=True, client_order_id="a-2-o0", status=OrderStatus.OPEN, order_id="B3", position_id="P2",
            side=Side.SELL, quantity=Decimal("1000"), entry_price=Decimal("1.10100"), timestamp=t1))
        journal.flush()
        assert journal.pending_writes == 1  # one call in flight
        await journal.settle()
        assert journal.pending_writes == 0 and journal.failure is None
        assert _orders(store, seeded.asset_id)["a-2-o0"].status.value == "open"
        assert sorted(p.broker_position_id for p in _positions(store, seeded.asset_id) if p.is_open) == ["P2"]

        # A broker event (here its stop-loss close of P2) is queued the same way.
        await journal.record_result(None, OrderResult(
            success=True, client_order_id=None, status=OrderStatus.FILLED, position_id="P2",
            close_price=Decimal("1.10300"), pnl=Decimal("-2.00"), reason="stop_loss", timestamp=t1))
        assert journal.pending_writes == 1
        journal.flush()
        await journal.settle()
        assert journal.pending_writes == 0 and journal.failure is None
        assert [p.is_open for p in _positions(store, seeded.asset_id)] == [False, False]

        # A result the database cannot take (an order it never recorded) is reported.
        ghost = intent("ghost-o0", Action.OPEN, Side.BUY, t1)
        await journal.record_result(ghost, OrderResult(
            success=True, client_order_id="ghost-o0", status=OrderStatus.OPEN, order_id="B4", position_id="P3",
            side=Side.BUY, quantity=Decimal("1000"), entry_price=Decimal("1.1"), timestamp=t1))
        await journal.settle()
        assert journal.failure is not None and "mark_order_open" in journal.failure

    asyncio.run(scenario())
