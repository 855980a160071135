"""Writes described as data: batches with a savepoint per write, and safe resends."""

from __future__ import annotations

from persistence.records import AuditContext, PortfolioCreate
from persistence.store import Store, WriteRequest
from tests.integration.persistence._helpers import audit_count, snapshot
from tests.integration.persistence._store_ops import World, make_world


def _intent_write(world: World, request_id: str, **overrides) -> WriteRequest:
    return WriteRequest(
        op="record_order_intent",
        ctx=AuditContext.system(request_id=request_id),
        args=(world.intent(**overrides),),
    )


def test_a_bad_write_in_a_batch_fails_alone_and_the_rest_commit_in_order(store: Store) -> None:
    world = make_world(store)
    writes = [
        _intent_write(world, "r1"),
        _intent_write(world, "r2", portfolio_id=9999),  # unknown portfolio
        _intent_write(world, "r3"),
        WriteRequest(op="drop_everything", ctx=AuditContext.system(request_id="r4")),
        WriteRequest(op="create_portfolio", ctx=AuditContext.system(request_id="r5"),
                     args=({"name": "p2", "total_capital": "-1"},), kwargs={"owner_id": world.owner_id}),
        _intent_write(world, "r6"),
    ]
    before = audit_count(store.engine)
    outcomes = store.apply_batch(writes)

    assert [o.ok for o in outcomes] == [True, False, True, False, False, True]
    assert outcomes[1].error_type == "NotFound" and "portfolio 9999 not found" in outcomes[1].error
    assert "unknown write operation 'drop_everything'" in outcomes[3].error
    assert "total_capital" in outcomes[4].error
    ids = [o.result.id for o in outcomes if o.ok]
    assert ids == sorted(ids)  # applied in arrival order
    assert audit_count(store.engine) == before + 3


def test_a_write_resent_in_the_same_or_a_later_batch_is_replayed_not_repeated(store: Store) -> None:
    world = make_world(store)
    write = _intent_write(world, "resent")
    first, again_same_batch = store.apply_batch([write, write])
    assert first.ok and again_same_batch.ok
    assert again_same_batch.result.id == first.result.id

    before = snapshot(store.engine)
    (later,) = store.apply_batch([write])
    assert later.result.id == first.result.id
    (unbatched,) = store.apply_each([write])
    assert unbatched.result.id == first.result.id
    assert snapshot(store.engine) == before


def test_apply_each_commits_each_write_on_its_own(store: Store) -> None:
    world = make_world(store)
    outcomes = store.apply_each(
        [
            WriteRequest(op="create_portfolio", ctx=AuditContext.system(request_id="a"),
                         args=(PortfolioCreate(name="a", total_capital=1),), kwargs={"owner_id": world.owner_id}),
            WriteRequest(op="create_portfolio", ctx=AuditContext.system(request_id="b"),
                         args=(PortfolioCreate(name="a", total_capital=1),), kwargs={"owner_id": world.owner_id}),
        ]
    )
    assert [o.ok for o in outcomes] == [True, False]
    assert "already exists" in outcomes[1].error
    assert store.list_portfolios(owner_id=world.owner_id).total == 2  # seeded one + "a"


def _trade_writes(world: World, coid: str, tag: str) -> list[WriteRequest]:
    from persistence.records import OrderFill, PositionOpen

    spec = PositionOpen(portfolio_id=world.portfolio_id, asset_id=world.asset_id,
                        opening_client_order_id=coid, side="buy", quantity="0.5", entry_price="1.1")
    return [
        WriteRequest(op="record_order_intent", ctx=AuditContext.system(request_id=f"{tag}-i"),
                     args=(world.intent(client_order_id=coid),)),
        WriteRequest(op="mark_order_open", ctx=AuditContext.system(request_id=f"{tag}-o"),
                     args=(coid, OrderFill(broker_order_id="B", filled_price="1.1"))),
        WriteRequest(op="open_position", ctx=AuditContext.system(request_id=f"{tag}-p"), args=(spec,)),
        # The same position again under another request id: must return the first one.
        WriteRequest(op="open_position", ctx=AuditContext.system(request_id=f"{tag}-p2"), args=(spec,)),
    ]


def test_a_whole_trade_in_one_batch_links_order_and_position_once(store: Store) -> None:
    world = make_world(store)
    outcomes = store.apply_batch(_trade_writes(world, "trade-1", "t1"))
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    order, opened, position, again = (o.result for o in outcomes)
    assert (opened.status, position.opening_order_id, again.id) == ("open", order.id, position.id)
    assert store.get_order(order.id).position_id == position.id
    assert store.list_positions(asset_id=world.asset_id).total == 1

    # The same trade in a later batch, new request ids: nothing new is stored.
    before = snapshot(store.engine)
    outcomes = store.apply_batch(_trade_writes(world, "trade-1", "t1-later"))
    assert [o.ok for o in outcomes] == [True, False, True, True]
    assert "cannot go from open to open" in outcomes[1].error
    assert {o.result.id for o in outcomes[2:]} == {position.id}
    assert store.list_positions(asset_id=world.asset_id).total == 1
    assert store.list_orders(asset_id=world.asset_id).total == 1
    assert snapshot(store.engine)["positions"] == before["positions"]


def test_a_failed_write_does_not_leave_a_batch_believing_its_order_exists(store: Store) -> None:
    world = make_world(store)
    bad_intent = WriteRequest(op="record_order_intent", ctx=AuditContext.system(request_id="bad"),
                              args=(world.intent(client_order_id="ghost", asset_id=4242),))
    follow_up = WriteRequest(op="mark_order_open", ctx=AuditContext.system(request_id="follow"),
                             args=("ghost", {"filled_price": "1.1"}))
    outcomes = store.apply_batch([bad_intent, follow_up])
    assert [o.error_type for o in outcomes] == ["NotFound", "NotFound"]
    assert store.get_order_by_client_id("ghost") is None
