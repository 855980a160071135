"""The lockout bookkeeping in the database (``persistence.store.logins``), with the
clock under the test's control: per-client backoff, the account-wide hold and who is
exempt from it, the window, an unlock, aggregated failure rows and a resend, on SQLite
and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from engine.errors import DomainError, NotFound
from engine.types import utcnow
from persistence.lockout import LockoutPolicy
from persistence.models import LoginFailure
from persistence.records import AuditContext, SessionOpen
from persistence.store import Store
from tests.integration.persistence._helpers import audit_count, snapshot
from tests.integration.persistence._store_ops import SYSTEM, World, make_world

POLICY = LockoutPolicy(client_max_failures=3, backoff_s=60, max_lock_s=600, account_max_failures=7, window_s=3600)


@pytest.fixture
def world(store: Store) -> World:
    return make_world(store)


def _from(world: World, ip: str, **extra: object) -> AuditContext:
    return AuditContext(user_id=world.owner_id, ip=ip, **extra)  # type: ignore[arg-type]


def _fail(world: World, ip: str, at: object, policy: LockoutPolicy = POLICY, **extra: object):  # noqa: ANN202
    return world.store.record_failed_login(_from(world, ip, **extra), world.owner_id, policy=policy, now=at)


def _login(world: World, ip: str, at: object) -> None:
    world.store.record_login(
        _from(world, ip), world.owner_id, now=at,  # type: ignore[arg-type]
        session=SessionOpen(jti=world.unique("jti"), family_id=world.unique("fam"), expires_at=utcnow() + timedelta(days=1)),
    )


def _client_rows(world: World) -> int:
    with world.store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(LoginFailure)) or 0)


def test_one_clients_failures_double_its_hold_and_leave_other_clients_alone(world: World) -> None:
    policy = LockoutPolicy(client_max_failures=3, backoff_s=60, max_lock_s=600)  # account ceiling: 100
    t0 = utcnow()
    holds = []
    at = t0
    for _ in range(6):
        failed = _fail(world, "203.0.113.9", at, policy)
        if failed.client_locked_until is not None:
            holds.append((failed.client_locked_until - at).total_seconds())
            at = failed.client_locked_until  # the next try is possible only once the hold ends
        else:
            at += timedelta(seconds=1)
    assert holds == [60, 120, 240, 480]  # from the 3rd failure on: doubling, capped at 600 next
    assert _fail(world, "203.0.113.9", at, policy).client_locked_until == at + timedelta(seconds=600)
    assert world.store.login_gate(world.owner_id, "203.0.113.9", now=at).scope == "client"
    # The owner, at another address, is not held back at all.
    assert world.store.login_gate(world.owner_id, "198.51.100.1", now=at).blocked_until is None
    assert world.store.get_user(world.owner_id).locked_until is None


def test_the_account_wide_hold_spares_known_clients_and_an_unlock_lifts_everything(world: World) -> None:
    t0 = utcnow()
    _login(world, "198.51.100.1", t0)  # the owner's usual client: known from now on
    started = []
    for i in range(7):  # attackers at seven addresses, one wrong password each
        started += _fail(world, f"203.0.113.{i}", t0 + timedelta(seconds=i)).locks_started
    assert started == ["account"]
    user = world.store.get_user(world.owner_id)
    assert user.failed_login_count == 7 and user.locked_until == t0 + timedelta(seconds=6 + 600)
    now = t0 + timedelta(seconds=10)
    assert world.store.login_gate(world.owner_id, "192.0.2.50", now=now).scope == "account"  # a new client
    assert world.store.login_gate(world.owner_id, "198.51.100.1", now=now).blocked_until is None  # the known one
    assert world.store.held_clients([world.owner_id], now=now) == {}  # no client reached its own limit

    admin = AuditContext(user_id=world.new_user(), is_admin=True, ip="192.0.2.1")
    before = audit_count(world.store.engine)
    unlocked = world.store.unlock_user(admin, world.owner_id)
    assert audit_count(world.store.engine) == before + 1
    assert (unlocked.failed_login_count, unlocked.locked_until) == (0, None)
    assert world.store.login_gate(world.owner_id, "192.0.2.50", now=now).blocked_until is None
    assert _client_rows(world) == 1  # the known client's row stays (it is still known), the others went
    row = world.store.list_audit_logs(action="user.unlock").items[0]
    assert row.details == {"account_locked_until": user.locked_until.isoformat(), "client_holds_cleared": 0}


def test_a_clients_count_restarts_after_the_window_and_stale_rows_are_dropped(world: World) -> None:
    t0 = utcnow() - timedelta(hours=3)
    for i in range(2):
        _fail(world, "203.0.113.1", t0)
        _fail(world, f"203.0.113.{100 + i}", t0)
    assert _client_rows(world) == 3
    later = t0 + timedelta(hours=2)
    failed = _fail(world, "203.0.113.1", later)
    assert (failed.client_failures, failed.client_locked_until) == (1, None)  # 2 old ones forgotten
    assert failed.user.failed_login_count == 1
    assert _client_rows(world) == 1  # the aged-out clients' rows were deleted


def test_failures_are_one_counted_audit_row_and_a_resend_is_counted_once(world: World) -> None:
    at = utcnow()
    for i in range(2):
        _fail(world, "203.0.113.7", at, request_id=f"fail-{i}")
    _fail(world, "203.0.113.7", at, request_id="fail-1")  # the persistence actor resending
    rows = world.store.list_audit_logs(action="auth.login_failed").items
    assert [(r.count, r.ip, r.details) for r in rows] == [(2, "203.0.113.7", {"reason": "wrong password"})]
    assert rows[0].last_seen_at is not None and rows[0].created_at <= rows[0].last_seen_at
    assert world.store.get_user(world.owner_id).failed_login_count == 2
    # The third failure starts the client's hold: counted in the row AND a row of its own.
    _fail(world, "203.0.113.7", at, request_id="fail-2")
    assert world.store.list_audit_logs(action="auth.login_failed").items[0].count == 3
    lockout = world.store.list_audit_logs(action="auth.lockout").items
    assert [(r.details["scope"], r.details["failures"], r.ip) for r in lockout] == [("client", 3, "203.0.113.7")]


def test_unlock_refuses_non_admins_and_unknown_users_and_changes_nothing(world: World) -> None:
    _fail(world, "203.0.113.7", utcnow())
    before = snapshot(world.store.engine)
    with pytest.raises(DomainError, match="administrator"):
        world.store.unlock_user(AuditContext(user_id=world.owner_id), world.owner_id)
    with pytest.raises(NotFound):
        world.store.unlock_user(SYSTEM, 987654)
    assert snapshot(world.store.engine) == before
