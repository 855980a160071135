"""Trades written in batches (``Store.apply_batch``) are indistinguishable from the same
writes applied one by one: the same results, the same rows, the same audit rows (one per
write), and the same answers when a write of the batch fails (it fails alone).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from persistence.models import AuditLog, Order, Position
from persistence.records import AuditContext, OrderFill, PositionClose, PositionOpen
from persistence.store import Store, WriteOutcome, WriteRequest
from tests.integration.persistence._helpers import audit_count
from tests.fixtures.db_fixtures import seed_owner_portfolio
from tests.integration.persistence._store_ops import World, make_world

_TIMES = {"created_at", "updated_at", "filled_at", "opened_at", "closed_at"}


def _trade(world: World, tag: str, *, fill_op: str = "mark_order_open", linked: bool = True,
           owner_ctx: bool = False) -> list[WriteRequest]:
    ctx = (AuditContext(user_id=world.owner_id) if owner_ctx else AuditContext.system())
    coid = f"{tag}-coid"
    spec = PositionOpen(
        portfolio_id=world.portfolio_id, asset_id=world.asset_id,
        opening_client_order_id=coid if linked else None,
        side="sell", quantity="2.5", entry_price="1.23456789", sl="1.3", commission="0.7",
    )
    return [
        WriteRequest(op="record_order_intent", ctx=ctx.with_request_id(f"{tag}-i"),
                     args=(world.intent(client_order_id=coid, side="sell", quantity=Decimal("2.5"),
                                        reason="signal", details={"k": [1, "x"]}),)),
        WriteRequest(op=fill_op, ctx=ctx.with_request_id(f"{tag}-f"),
                     args=(coid, OrderFill(broker_order_id=f"B{tag}", filled_quantity="2",
                                           filled_price="1.2346", commission="0.35"))),
        WriteRequest(op="open_position", ctx=ctx.with_request_id(f"{tag}-p"), args=(spec,)),
    ]


class _Ids:
    """Replaces database ids by their order of appearance, so two worlds compare equal."""

    def __init__(self, world: World, prefix: str) -> None:
        self.prefix = prefix
        self.names: dict[tuple[str, Any], str] = {
            ("portfolio", world.portfolio_id): "P", ("asset", world.asset_id): "A",
            ("user", world.owner_id): "U",
        }

    def name(self, kind: str, key: Any) -> Any:
        if key is None:
            return None
        key = int(key)
        return self.names.setdefault((kind, key), f"{kind}{sum(k == kind for k, _ in self.names)}")


def _unprefixed(item: Any, prefix: str) -> Any:
    """Client/broker order ids without the world's prefix (they are unique per database)."""
    if isinstance(item, str):
        return item.replace(prefix, "")
    if isinstance(item, dict):
        return {key: _unprefixed(value, prefix) for key, value in item.items()}
    return item


def _normal(value: dict[str, Any], ids: _Ids, kind: str) -> dict[str, Any]:
    kinds = {"id": kind, "portfolio_id": "portfolio", "asset_id": "asset", "user_id": "user",
             "position_id": "position", "opening_order_id": "order", "closing_order_id": "order"}
    out = {}
    for name, item in value.items():
        if name in _TIMES:
            out[name] = item is not None
        elif name in kinds:
            out[name] = ids.name(kinds[name], item)
        else:
            out[name] = _unprefixed(item, ids.prefix)
    return out


def _results(outcomes: list[WriteOutcome], ids: _Ids) -> list[Any]:
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    return [
        _normal(o.result.model_dump(), ids, "order" if o.op != "open_position" else "position")
        for o in outcomes
    ]


def _rows_since(store: Store, world_ids: _Ids, audit_from: int, asset_id: int) -> dict[str, list[Any]]:
    with store.engine.connect() as conn:
        orders = [dict(r._mapping) for r in conn.execute(
            select(Order.__table__).where(Order.asset_id == asset_id).order_by(Order.id))]
        positions = [dict(r._mapping) for r in conn.execute(
            select(Position.__table__).where(Position.asset_id == asset_id).order_by(Position.id))]
        audits = [dict(r._mapping) for r in conn.execute(
            select(AuditLog.__table__).where(AuditLog.id > audit_from).order_by(AuditLog.id))]
    for audit in audits:
        audit.pop("id")
        kind = audit["target_type"]
        audit["target_id"] = world_ids.name(kind, audit["target_id"])
        details = dict(audit["details"])
        for key, key_kind in (("opening_order_id", "order"), ("closing_order_id", "order"),
                              ("asset_id", "asset")):
            if key in details:
                details[key] = world_ids.name(key_kind, details[key])
        audit["details"] = details
        audit["request_id"] = audit["request_id"].split(":", 1)[1]
    return {
        "orders": [_normal(o, world_ids, "order") for o in orders],
        "positions": [_normal(p, world_ids, "position") for p in positions],
        "audits": [_normal(a, world_ids, "audit") for a in audits],
    }


def _newest_audit_id(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(select(AuditLog.id).order_by(AuditLog.id.desc()).limit(1)) or 0)


def _prefixed(writes: list[WriteRequest], prefix: str) -> list[WriteRequest]:
    """The same writes with request ids unique to one world."""
    return [w.model_copy(update={"ctx": w.ctx.with_request_id(f"{prefix}:{w.ctx.request_id}")})
            for w in writes]


def test_a_batch_of_trades_equals_the_same_writes_applied_one_by_one(store: Store) -> None:
    batched_world = make_world(store)
    single_world = World(store, seed_owner_portfolio(store, username="second-owner"))

    def writes(world: World, prefix: str) -> list[WriteRequest]:
        trades = (
            _trade(world, f"{prefix}a")
            + _trade(world, f"{prefix}b", fill_op="mark_order_filled", owner_ctx=True)
            + _trade(world, f"{prefix}c", linked=False)
        )
        return _prefixed(trades, prefix)

    batched_ids, single_ids = _Ids(batched_world, "xx-"), _Ids(single_world, "yy-")
    audit_from = _newest_audit_id(store)
    batched = store.apply_batch(writes(batched_world, "xx-"))
    batched_rows = _rows_since(store, batched_ids, audit_from, batched_world.asset_id)
    batched_results = _results(batched, batched_ids)

    audit_from = _newest_audit_id(store)
    single = store.apply_each(writes(single_world, "yy-"))
    single_rows = _rows_since(store, single_ids, audit_from, single_world.asset_id)

    assert batched_results == _results(single, single_ids)
    assert batched_rows == single_rows
    assert len(batched_rows["audits"]) == 9 and len(batched_rows["positions"]) == 3
    # Exact decimals and the link both ways.
    assert batched[2].result.entry_price == Decimal("1.23456789")
    assert store.get_order(batched[0].result.id).position_id == batched[2].result.id


def test_a_write_failing_mid_batch_fails_alone_and_sees_the_earlier_writes(store: Store) -> None:
    world = make_world(store)
    a, b = _trade(world, "a"), _trade(world, "b")
    reject_b = WriteRequest(op="mark_order_rejected", ctx=AuditContext.system(request_id="b-r"),
                            args=("b-coid", "no margin"))
    # b's intent, its rejection, then a position for the rejected order.
    writes = [*a, b[0], reject_b, b[2], a[0]]
    before = audit_count(store.engine)
    outcomes = store.apply_batch(writes)

    assert [o.ok for o in outcomes] == [True, True, True, True, True, False, True]
    assert outcomes[4].result.status == "rejected"
    assert "is rejected" in (outcomes[5].error or "")
    assert outcomes[6].result.id == outcomes[0].result.id  # a resend inside the batch: replayed
    assert audit_count(store.engine) == before + 5  # refused write and replay add none
    assert store.get_order_by_client_id("b-coid").status == "rejected"
    assert store.list_positions(asset_id=world.asset_id).total == 1


def test_a_trade_split_across_batches_continues(store: Store) -> None:
    world = make_world(store)
    intent, fill, position = _trade(world, "s")
    (first,) = store.apply_batch([intent])
    opened, placed = store.apply_batch([fill, position])
    assert opened.ok and placed.ok, (opened.error, placed.error)
    assert placed.result.opening_order_id == first.result.id
    assert store.get_order(first.result.id).status == "open"


def test_trades_split_across_batches_equal_the_same_writes_applied_one_by_one(store: Store) -> None:
    """The asset actors' shape: each intent in one batch, its outcome (open or fill, then
    the position) in a later one: the rows, results and audit rows of one-by-one writes."""
    split_world = make_world(store)
    single_world = World(store, seed_owner_portfolio(store, username="third-owner"))

    def trades(world: World, prefix: str) -> list[list[WriteRequest]]:
        return [_prefixed(t, prefix) for t in (
            _trade(world, f"{prefix}a"),
            _trade(world, f"{prefix}b", fill_op="mark_order_filled", owner_ctx=True),
            _trade(world, f"{prefix}c", linked=False),
        )]

    split_ids, single_ids = _Ids(split_world, "ss-"), _Ids(single_world, "tt-")
    split_trades = trades(split_world, "ss-")
    audit_from = _newest_audit_id(store)
    intents = store.apply_batch([t[0] for t in split_trades])
    outcomes = store.apply_batch([w for t in split_trades for w in t[1:]])
    split_rows = _rows_since(store, split_ids, audit_from, split_world.asset_id)
    # Results in the one-by-one order (intent, outcome, position per trade).
    split_results = _results([intents[0], *outcomes[0:2], intents[1], *outcomes[2:4],
                              intents[2], *outcomes[4:6]], split_ids)

    audit_from = _newest_audit_id(store)
    single = store.apply_each([w for t in trades(single_world, "tt-") for w in t])
    single_rows = _rows_since(store, single_ids, audit_from, single_world.asset_id)

    assert split_results == _results(single, single_ids)
    assert split_rows["orders"] == single_rows["orders"]
    assert split_rows["positions"] == single_rows["positions"]
    # Same audit rows; the split run wrote them in its own (batch) order.
    def key(a: dict) -> str:
        return a["request_id"]
    assert sorted(split_rows["audits"], key=key) == sorted(single_rows["audits"], key=key)
    linked = [o for o in outcomes if o.op == "open_position" and o.result.opening_order_id]
    assert len(linked) == 2
    for placed in linked:
        assert store.get_order(placed.result.opening_order_id).position_id == placed.result.id


def test_a_resent_outcome_batch_replays_and_a_second_position_is_refused_as_a_repeat(store: Store) -> None:
    """Orders recorded by an earlier batch: a resend of the outcome batch is
    answered from the first application (no second row, no second audit), and a new
    position write for an order that already has one returns the existing position."""
    world = make_world(store)
    intent, fill, position = _trade(world, "r")
    store.apply_batch([intent])
    first = store.apply_batch([fill, position])
    before = audit_count(store.engine)
    again = store.apply_batch([fill, position])
    assert [o.ok for o in again] == [True, True]
    assert again[1].result.id == first[1].result.id
    assert audit_count(store.engine) == before
    other = position.model_copy(update={"ctx": AuditContext.system(request_id="r-p2")})
    (repeat,) = store.apply_batch([other])
    assert repeat.ok and repeat.result.id == first[1].result.id
    assert store.list_positions(asset_id=world.asset_id).total == 1


def test_an_earlier_order_rejected_in_the_batch_is_not_filled_later_in_it(store: Store) -> None:
    world = make_world(store)
    intent, fill, position = _trade(world, "q")
    store.apply_batch([intent])
    reject = WriteRequest(op="mark_order_rejected", ctx=AuditContext.system(request_id="q-r"),
                          args=("q-coid", "no margin"))
    outcomes = store.apply_batch([reject, fill, position])
    assert outcomes[0].ok
    assert not outcomes[1].ok and "cannot go from rejected to" in (outcomes[1].error or "")
    assert not outcomes[2].ok and "is rejected" in (outcomes[2].error or "")
    assert store.get_order_by_client_id("q-coid").status == "rejected"
    assert store.list_positions(asset_id=world.asset_id).total == 0


# ---------------------------------------------------------------------- closes


def _close(world: World, tag: str, position_id: int, *, owner_ctx: bool = False,
           linked: bool = True) -> list[WriteRequest]:
    """A close trade as the asset actors write it: the close intent naming the position,
    its fill, then the position's close naming the closing order."""
    ctx = (AuditContext(user_id=world.owner_id) if owner_ctx else AuditContext.system())
    coid = f"{tag}-close"
    return [
        WriteRequest(op="record_order_intent", ctx=ctx.with_request_id(f"{tag}-ci"),
                     args=(world.intent(client_order_id=coid, side="buy", quantity=Decimal("2.5"),
                                        action="close", position_id=position_id),)),
        WriteRequest(op="mark_order_filled", ctx=ctx.with_request_id(f"{tag}-cf"),
                     args=(coid, OrderFill(broker_order_id=f"C{tag}", filled_quantity="2.5",
                                           filled_price="1.20001", commission="0.4"))),
        WriteRequest(op="close_position", ctx=ctx.with_request_id(f"{tag}-cp"),
                     args=(position_id, PositionClose(
                         close_price="1.20001", realized_pnl="-12.345678", commission="0.15",
                         swap="0.01", closing_client_order_id=coid if linked else None,
                         close_reason="reversal"))),
    ]


def _opened(store: Store, world: World, prefix: str, tags: list[str]) -> list[int]:
    """Open one position per tag (one batch); their ids."""
    outcomes = store.apply_batch(_prefixed([w for t in tags for w in _trade(world, f"{prefix}{t}")], prefix))
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    return [o.result.id for o in outcomes if o.op == "open_position"]


@pytest.mark.parametrize("split", [False, True], ids=["one batch", "intent then outcome"])
def test_batched_closes_have_the_rows_results_and_audits_of_one_by_one_writes(
    store: Store, split: bool
) -> None:
    """Closes of positions recorded earlier, in one batch (intent, fill, close) or the
    asset actors' way (the intent, then its outcome in a later batch): rows, results and
    audit rows equal one-by-one writes."""
    batched_world = make_world(store)
    single_world = World(store, seed_owner_portfolio(store, username="close-owner"))
    batched_positions = _opened(store, batched_world, "ff-", ["a", "b", "c"])
    single_positions = _opened(store, single_world, "gg-", ["a", "b", "c"])

    def closes(world: World, prefix: str, positions: list[int]) -> list[list[WriteRequest]]:
        return [_prefixed(c, prefix) for c in (
            _close(world, f"{prefix}a", positions[0]),
            _close(world, f"{prefix}b", positions[1], owner_ctx=True),
            _close(world, f"{prefix}c", positions[2], linked=False),
        )]

    batched_ids, single_ids = _Ids(batched_world, "ff-"), _Ids(single_world, "gg-")
    audit_from = _newest_audit_id(store)
    batched_closes = closes(batched_world, "ff-", batched_positions)
    if split:
        intents = store.apply_batch([c[0] for c in batched_closes])
        outcomes = store.apply_batch([w for c in batched_closes for w in c[1:]])
        batched = [intents[0], *outcomes[0:2], intents[1], *outcomes[2:4], intents[2], *outcomes[4:6]]
    else:
        batched = store.apply_batch([w for c in batched_closes for w in c])
    batched_rows = _rows_since(store, batched_ids, audit_from, batched_world.asset_id)

    audit_from = _newest_audit_id(store)
    single = store.apply_each([w for c in closes(single_world, "gg-", single_positions) for w in c])
    single_rows = _rows_since(store, single_ids, audit_from, single_world.asset_id)

    def results(outcomes: list[WriteOutcome], ids: _Ids) -> list[Any]:
        assert all(o.ok for o in outcomes), [o.error for o in outcomes]
        return [_normal(o.result.model_dump(), ids, "position" if o.op == "close_position" else "order")
                for o in outcomes]

    assert results(batched, batched_ids) == results(single, single_ids)
    assert batched_rows["orders"] == single_rows["orders"]
    assert batched_rows["positions"] == single_rows["positions"]

    def key(a: dict) -> str:
        return a["request_id"]
    assert sorted(batched_rows["audits"], key=key) == sorted(single_rows["audits"], key=key)
    # The money, exactly, and the links both ways.
    closed = store.get_position(batched_positions[0])
    assert not closed.is_open and closed.close_price == Decimal("1.20001")
    assert closed.realized_pnl == Decimal("-12.345678")
    assert closed.commission == Decimal("0.85") and closed.swap == Decimal("0.01")
    closing = store.get_order_by_client_id("ff-a-close")
    assert closed.closing_order_id == closing.id and closing.position_id == closed.id
    assert closing.status == "filled" and closing.action == "close"
    assert store.get_position(batched_positions[2]).closing_order_id is None


def test_a_batched_close_refuses_a_second_close_and_a_foreign_position(store: Store) -> None:
    """A second close of a position, a close intent naming another asset's position and a
    resent close: the error, or the first result replayed."""
    world = make_world(store)
    other = World(store, seed_owner_portfolio(store, username="other-owner"))
    (position_id,) = _opened(store, world, "rf-", ["a"])
    (foreign_id,) = _opened(store, other, "rg-", ["a"])
    intent, fill, close = _close(world, "r1", position_id)
    first = store.apply_batch([intent, fill, close])
    assert all(o.ok for o in first), [o.error for o in first]
    before = audit_count(store.engine)

    again = store.apply_batch([close])  # the same request resent: replayed, nothing new
    assert again[0].ok and again[0].result.id == position_id and audit_count(store.engine) == before
    second = _close(world, "r2", position_id)
    refused = store.apply_batch(second)
    assert refused[0].ok  # an intent's position is not checked to be still open
    assert not refused[2].ok and "already closed" in (refused[2].error or "")
    wrong = _close(world, "r3", foreign_id)[0]
    (answer,) = store.apply_batch([wrong])
    assert not answer.ok and "belongs to asset" in (answer.error or "")
    assert store.get_position(foreign_id).is_open
