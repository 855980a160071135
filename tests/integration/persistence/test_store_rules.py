"""Store behaviour: bad input writes nothing, idempotency, lifecycles, scoping, reads."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from engine.errors import DomainError, NotFound
from engine.types import utcnow
from persistence.lockout import LockoutPolicy
from persistence.records import (
    MAX_PAGE_SIZE,
    AuditContext,
    OrderFill,
    PageRequest,
    PortfolioCreate,
    PositionClose,
    PositionOpen,
    SessionOpen,
    Viewer,
)
from persistence.store import Store
from tests.integration.persistence._helpers import snapshot
from tests.integration.persistence._store_ops import SYSTEM, World, make_world


@pytest.fixture
def world(store: Store) -> World:
    return make_world(store)


# ------------------------------------------------------------------ bad input writes nothing


@pytest.mark.parametrize(
    ("attempt", "error", "message"),
    [
        (lambda w: w.store.record_order_intent(SYSTEM, {**w.intent().model_dump(), "portfolio_id": 9999}),
         NotFound, "portfolio 9999 not found"),
        (lambda w: w.store.record_order_intent(SYSTEM, {**w.intent().model_dump(), "quantity": "-1"}),
         DomainError, "quantity: Input should be greater than 0"),
        (lambda w: w.store.record_order_intent(SYSTEM, {**w.intent().model_dump(), "side": "long"}),
         DomainError, "side: Input should be 'buy' or 'sell'"),
        (lambda w: w.store.record_order_intent(SYSTEM, {**w.intent().model_dump(), "asset_id": 4242}),
         NotFound, "asset 4242 not found in portfolio"),
        (lambda w: w.store.record_order_intent(SYSTEM, {**w.intent().model_dump(), "colour": "red"}),
         DomainError, "colour: Extra inputs are not permitted"),
        (lambda w: w.store.create_asset(SYSTEM, 9999, {"symbol": "X"}), NotFound, "portfolio 9999"),
        (lambda w: w.store.create_portfolio(SYSTEM, {"name": "p", "total_capital": "-5"}, owner_id=w.owner_id),
         DomainError, "total_capital"),
        (lambda w: w.store.open_position(SYSTEM, {
            "portfolio_id": w.portfolio_id, "asset_id": w.asset_id, "side": "sell",
            "quantity": "0", "entry_price": "1.1"}),
         DomainError, "quantity"),
        (lambda w: w.store.set_asset_allocation(SYSTEM, w.asset_id, allocated_capital="-1"),
         DomainError, "allocated_capital: must be a number >= 0"),
        (lambda w: w.store.set_user_role(SYSTEM, w.owner_id, "superuser"), DomainError, "role: 'superuser'"),
        (lambda w: w.store.create_user(SYSTEM, username="owner", password_hash="h"),
         DomainError, "username: 'owner' is already taken"),
        (lambda w: w.store.mark_order_open(SYSTEM, "no-such-order", OrderFill()), NotFound, "no-such-order"),
        (lambda w: w.store.close_position(SYSTEM, 777, PositionClose(close_price=1, realized_pnl=0)),
         NotFound, "position 777"),
        (lambda w: w.store.update_backtest_run(SYSTEM, 5, status="finished"), DomainError, "status: 'finished'"),
    ],
    ids=[
        "unknown-portfolio", "negative-quantity", "wrong-side", "asset-not-in-portfolio", "unknown-field",
        "asset-for-unknown-portfolio", "negative-capital", "zero-position-quantity", "negative-allocation",
        "unknown-role", "duplicate-username", "unknown-order", "unknown-position", "unknown-backtest-status",
    ],
)
def test_invalid_writes_raise_a_clear_error_and_write_nothing(world: World, attempt, error, message) -> None:
    before = snapshot(world.store.engine)
    with pytest.raises(error, match=message):
        attempt(world)
    assert snapshot(world.store.engine) == before


def test_order_lifecycle_refuses_bad_transitions_and_writes_nothing(world: World) -> None:
    coid = world.pending_order()
    world.store.mark_order_rejected(SYSTEM, coid, "insufficient margin")
    before = snapshot(world.store.engine)
    with pytest.raises(DomainError, match="cannot go from rejected to open"):
        world.store.mark_order_open(SYSTEM, coid, OrderFill(filled_price="1.1"))
    assert snapshot(world.store.engine) == before
    assert world.store.get_order_by_client_id(coid).reason == "insufficient margin"


def test_fill_larger_than_the_order_is_refused(world: World) -> None:
    coid = world.pending_order()  # quantity 0.5
    with pytest.raises(DomainError, match="exceeds the order quantity"):
        world.store.mark_order_filled(SYSTEM, coid, OrderFill(filled_quantity="0.6"))


# ------------------------------------------------------------------ idempotency


def test_the_same_client_order_id_is_one_order_never_two(world: World) -> None:
    intent = world.intent()
    first = world.store.record_order_intent(SYSTEM, intent)
    again = world.store.record_order_intent(SYSTEM, intent)
    assert again.id == first.id
    orders = world.store.list_orders(asset_id=world.asset_id)
    assert [o.client_order_id for o in orders.items].count(intent.client_order_id) == 1
    actions = [a.action for a in world.store.list_audit_logs(target_type="order", target_id=first.id).items]
    assert sorted(actions) == ["order.intent", "order.intent_repeated"]


def test_a_client_order_id_reused_for_a_different_order_is_refused(world: World) -> None:
    intent = world.intent(side="buy")
    world.store.record_order_intent(SYSTEM, intent)
    with pytest.raises(DomainError, match="already used by order .* different side"):
        world.store.record_order_intent(SYSTEM, intent.model_copy(update={"side": "sell"}))


def test_a_resent_write_with_the_same_request_id_is_applied_once(world: World) -> None:
    ctx = AuditContext.system(request_id="req-42")
    first = world.store.create_portfolio(ctx, PortfolioCreate(name="once", total_capital=1), owner_id=world.owner_id)
    before = snapshot(world.store.engine)
    again = world.store.create_portfolio(ctx, PortfolioCreate(name="once", total_capital=1), owner_id=world.owner_id)
    assert again == first
    assert snapshot(world.store.engine) == before


def test_opening_a_position_twice_for_one_order_returns_the_first(world: World) -> None:
    coid = world.pending_order()
    spec = PositionOpen(portfolio_id=world.portfolio_id, asset_id=world.asset_id,
                        opening_client_order_id=coid, side="buy", quantity="0.5", entry_price="1.1")
    first = world.store.open_position(SYSTEM, spec)
    assert world.store.open_position(SYSTEM, spec).id == first.id
    assert world.store.list_positions(asset_id=world.asset_id).total == 1
    assert world.store.get_order_by_client_id(coid).position_id == first.id


# ------------------------------------------------------------------ trading values


def test_a_round_trip_keeps_exact_decimals_and_closes_with_realised_pnl(world: World) -> None:
    position_id = world.open_position()
    marked = world.store.update_position_price(SYSTEM, position_id, current_price="1.13")
    assert marked.unrealized_pnl == Decimal("0.015")  # (1.13 - 1.1) * 0.5, exact
    close_coid = world.store.record_order_intent(
        SYSTEM, world.intent(side="sell", action="close", position_id=position_id)
    ).client_order_id
    world.store.mark_order_filled(SYSTEM, close_coid, OrderFill(filled_price="1.2", commission="0.07"))
    closed = world.store.close_position(
        SYSTEM, position_id,
        PositionClose(close_price="1.2", realized_pnl="0.05", commission="0.07",
                      closing_client_order_id=close_coid, close_reason="tp"),
    )
    stored = world.store.get_position(position_id)
    assert stored == closed
    assert (stored.is_open, stored.realized_pnl, stored.close_reason) == (False, Decimal("0.05"), "tp")
    assert stored.closed_at is not None and stored.closed_at.utcoffset() == timedelta(0)
    assert world.store.open_positions(world.asset_id) == []
    with pytest.raises(DomainError, match="already closed"):
        world.store.close_position(SYSTEM, position_id, PositionClose(close_price=1, realized_pnl=0))


def test_money_beyond_float_precision_round_trips_exactly(world: World) -> None:
    value = Decimal("123456789012.12345678")  # 20 significant digits: a float keeps ~15
    created = world.store.create_portfolio(
        SYSTEM, PortfolioCreate(name="big", total_capital=value), owner_id=world.owner_id
    )
    assert world.store.get_portfolio(created.id).total_capital == value


def test_pending_orders_are_listed_for_reconciliation(world: World) -> None:
    pending = world.pending_order()
    done = world.pending_order()
    world.store.mark_order_open(SYSTEM, done, OrderFill(filled_price="1.1"))
    assert [o.client_order_id for o in world.store.pending_orders(world.asset_id)] == [pending]


# ------------------------------------------------------------------ users and sessions


def test_failed_logins_hold_the_client_back_and_a_good_login_resets(world: World) -> None:
    now = utcnow()
    policy = LockoutPolicy(client_max_failures=3, backoff_s=300)
    for _ in range(2):
        failed = world.store.record_failed_login(SYSTEM, world.owner_id, policy=policy, now=now)
    assert (failed.user.failed_login_count, failed.client_failures, failed.client_locked_until) == (2, 2, None)
    failed = world.store.record_failed_login(SYSTEM, world.owner_id, policy=policy, now=now)
    assert failed.locks_started == ("client",) and failed.client_locked_until == now + timedelta(seconds=300)
    assert world.store.login_gate(world.owner_id, None, now=now + timedelta(seconds=299)).scope == "client"
    assert world.store.login_gate(world.owner_id, None, now=now + timedelta(seconds=301)).blocked_until is None
    assert failed.user.locked_until is None  # the account itself is not held
    login = world.store.record_login(
        SYSTEM, world.owner_id, now=now,
        session=SessionOpen(jti="j-reset", family_id="f-reset", expires_at=now + timedelta(days=1)),
    )
    user = login.user
    assert (user.failed_login_count, user.locked_until, user.last_login_at) == (0, None, now)
    assert world.store.login_gate(world.owner_id, None, now=now).blocked_until is None
    assert world.store.get_user(world.owner_id) == user


def test_rotating_a_refresh_token_twice_revokes_its_whole_family(world: World) -> None:
    jti, family = world.session_jti()
    expires = utcnow() + timedelta(days=1)
    rotated = world.store.rotate_session(
        SYSTEM, old_jti=jti, new_jti="second", expires_at=expires, user_id=world.owner_id, family_id=family
    )
    assert rotated.session is not None and rotated.session.family_id == family
    assert world.store.get_session(jti).replaced_by_jti == "second"

    reuse = world.store.rotate_session(
        SYSTEM, old_jti=jti, new_jti="third", expires_at=expires, user_id=world.owner_id, family_id=family
    )
    assert reuse.reuse_detected and reuse.session is None
    assert world.store.get_session("second").revoked_at is not None
    assert world.store.get_session("third") is None


def test_deactivating_a_user_revokes_their_sessions(world: World) -> None:
    jti, _ = world.session_jti()
    world.store.set_user_active(SYSTEM, world.owner_id, False)
    assert world.store.get_session(jti).revoked_at is not None
    with pytest.raises(DomainError, match="deactivated"):
        world.store.create_session(SYSTEM, user_id=world.owner_id, jti="j2", family_id="f2",
                                   expires_at=utcnow() + timedelta(hours=1))


def test_credentials_carry_the_hash_but_user_records_never_do(world: World) -> None:
    credentials = world.store.get_credentials("owner")
    assert credentials is not None and credentials.password_hash.startswith("$2b$")
    assert "password_hash" not in type(credentials.user).model_fields
    assert "$2b$" not in repr(credentials)


# ------------------------------------------------------------------ owner scoping


def test_users_see_and_change_only_their_own_portfolios(world: World) -> None:
    other = world.store.create_user(SYSTEM, username="mallory", password_hash="h")
    owner_view, other_view = Viewer(user_id=world.owner_id), Viewer(user_id=other.id)
    admin_view = Viewer(user_id=other.id, is_admin=True)
    world.pending_order()

    assert world.store.list_portfolios(viewer=other_view).total == 0
    assert world.store.list_orders(viewer=other_view).total == 0
    assert world.store.list_orders(viewer=owner_view).total == 1
    assert world.store.list_orders(viewer=admin_view).total == 1
    with pytest.raises(NotFound):
        world.store.get_portfolio(world.portfolio_id, viewer=other_view)
    with pytest.raises(NotFound):
        world.store.get_asset(world.asset_id, viewer=other_view)

    before = snapshot(world.store.engine)
    as_other = AuditContext(user_id=other.id)
    with pytest.raises(NotFound, match=f"portfolio {world.portfolio_id} not found"):
        world.store.update_portfolio(as_other, world.portfolio_id, {"description": "mine now"})
    with pytest.raises(NotFound):
        world.store.deactivate_asset(as_other, world.asset_id)
    with pytest.raises(DomainError, match="only an administrator"):
        world.store.set_user_role(as_other, other.id, "admin")
    assert snapshot(world.store.engine) == before


# ------------------------------------------------------------------ reads


def test_order_reads_filter_by_status_and_time_and_cap_the_page_size(world: World) -> None:
    start = utcnow()
    coids = [world.pending_order() for _ in range(4)]
    world.store.mark_order_open(SYSTEM, coids[0], OrderFill(filled_price="1.1"))
    world.store.mark_order_rejected(SYSTEM, coids[1], "no margin")

    assert world.store.list_orders(status="pending").total == 2
    assert world.store.list_orders(status=["open", "rejected"]).total == 2
    assert world.store.list_orders(since=start, until=utcnow() + timedelta(seconds=1)).total == 4
    assert world.store.list_orders(until=start).total == 0

    page = world.store.list_orders(page=PageRequest(offset=1, limit=2))
    assert (page.total, page.offset, len(page.items)) == (4, 1, 2)
    newest_first = [o.client_order_id for o in world.store.list_orders().items]
    assert newest_first == list(reversed(coids))
    assert world.store.list_orders(page=PageRequest(limit=10_000)).limit == MAX_PAGE_SIZE


def test_deleting_an_active_portfolio_is_refused_and_an_inactive_one_takes_its_assets(world: World) -> None:
    world.store.activate_portfolio(SYSTEM, world.portfolio_id)
    with pytest.raises(DomainError, match="deactivate it first"):
        world.store.delete_portfolio(SYSTEM, world.portfolio_id)
    world.pending_order()
    world.store.deactivate_portfolio(SYSTEM, world.portfolio_id)
    world.store.delete_portfolio(SYSTEM, world.portfolio_id)
    assert world.store.list_assets(portfolio_id=world.portfolio_id).total == 0
    assert world.store.list_orders(portfolio_id=world.portfolio_id).total == 0
    assert world.store.list_audit_logs(action="portfolio.delete").total == 1
