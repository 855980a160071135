"""The result-to-ledger mapping (``engine.pipeline.ledger.result_changes``): which
ledger changes a broker's answer makes, with their idempotency keys and the round
trip's commission split."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from engine.pipeline.ledger import (
    CancelOrder,
    ClosePosition,
    MarkFilled,
    MarkOpened,
    OpenPosition,
    RejectOrder,
    closes_position,
    result_changes,
)
from engine.pipeline.ports import OrderIntent
from engine.types import Action, OrderResult, OrderStatus, Side

T0 = datetime(2024, 1, 2, 10, 0, tzinfo=UTC)


def _intent(action: Action, cid: str = "c1", position_id: str | None = None) -> OrderIntent:
    return OrderIntent(client_order_id=cid, portfolio_id=1, asset_id=7, symbol="EURUSD", action=action,
                       side=Side.BUY, quantity=Decimal("1000"), bar_time=T0, position_id=position_id)


def _changes(intent: OrderIntent | None, result: OrderResult, positions: dict[str, tuple[int, Decimal]] | None = None):
    return result_changes(intent, result, positions or {}, portfolio_id=1, asset_id=7)


def test_a_pending_answer_changes_nothing() -> None:
    out = _changes(_intent(Action.OPEN), OrderResult(success=True, status=OrderStatus.PENDING))
    assert out.changes == () and out.closed is None


def test_a_rejection_and_a_failure_mark_the_order_rejected_a_cancel_cancelled() -> None:
    rejected = _changes(_intent(Action.OPEN), OrderResult(success=False, status=OrderStatus.REJECTED, reason="margin"))
    assert rejected.changes == (RejectOrder("c1", "margin"),)
    assert rejected.changes[0].request_id == "reject:c1" and rejected.changes[0].op == "mark_order_rejected"
    failed = _changes(_intent(Action.OPEN), OrderResult(success=False, status=OrderStatus.OPEN))
    assert failed.changes == (RejectOrder("c1", "rejected by the broker"),)
    cancelled = _changes(_intent(Action.OPEN), OrderResult(success=False, status=OrderStatus.CANCELLED))
    assert cancelled.changes == (CancelOrder("c1", "cancelled"),)
    assert cancelled.changes[0].request_id == "cancel:c1"


def test_a_filled_open_marks_the_order_open_and_opens_a_position() -> None:
    result = OrderResult(success=True, order_id="b9", position_id="p1", side=Side.SELL, entry_price=Decimal("1.1"),
                         commission=Decimal("0.5"), timestamp=T0)
    mark, opened = _changes(_intent(Action.OPEN), result).changes
    assert isinstance(mark, MarkOpened) and mark.request_id == "open:c1"
    assert mark.fill.filled_quantity == Decimal("1000") and mark.fill.filled_price == Decimal("1.1")
    assert isinstance(opened, OpenPosition) and opened.request_id == "position:c1"
    assert (opened.side, opened.broker_position_id, opened.commission) == ("sell", "p1", Decimal("0.5"))


def test_a_close_adds_only_the_closing_part_of_the_round_trip_commission() -> None:
    result = OrderResult(success=True, position_id="p1", close_price=Decimal("1.2"), pnl=Decimal("100"),
                         commission=Decimal("1.25"), timestamp=T0, reason=None)
    out = _changes(_intent(Action.CLOSE, "c2", "p1"), result, {"p1": (42, Decimal("0.5"))})
    fill, close = out.changes
    assert isinstance(fill, MarkFilled) and fill.request_id == "fill:c2"
    assert isinstance(close, ClosePosition)
    assert (close.position_db_id, close.commission, close.realized_pnl) == (42, Decimal("0.75"), Decimal("100"))
    assert close.close_reason == "signal" and close.request_id == "close:7:p1" and out.closed == "p1"
    # A broker that reports less than the opening part never makes the close negative.
    low = _changes(None, result.model_copy(update={"commission": Decimal("0.1")}), {"p1": (42, Decimal("0.5"))})
    assert low.changes[0].commission == Decimal("0")


def test_a_broker_event_closes_a_known_position_and_names_an_unknown_one() -> None:
    stop = OrderResult(success=True, position_id="p1", close_price=Decimal("1.0"), pnl=Decimal("-5"),
                       reason="stop_loss" + "x" * 100)
    assert closes_position(stop)
    known = _changes(None, stop, {"p1": (3, Decimal("0"))})
    assert len(known.changes) == 1 and known.changes[0].closing_client_order_id is None
    assert len(known.changes[0].close_reason) == 64
    unknown = _changes(None, stop, {})
    assert unknown.changes == () and unknown.unknown_close == "p1" and unknown.closed is None
