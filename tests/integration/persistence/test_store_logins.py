"""Logins as one audited change, and the one-query login state an access-token check
reads (user + refresh-session rotation chain), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.errors import DomainError
from engine.types import utcnow
from persistence.lockout import LockoutPolicy
from persistence.records import AuditContext, SessionOpen
from persistence.store import Store
from persistence.store.reads import ROTATION_CHAIN_LIMIT
from tests.integration.persistence._helpers import audit_count, newest_audit, snapshot
from tests.integration.persistence._store_ops import SYSTEM, World, make_world


@pytest.fixture
def world(store: Store) -> World:
    return make_world(store)


def _opening(jti: str = "jti-1", family: str = "fam-1", days: int = 1) -> SessionOpen:
    return SessionOpen(jti=jti, family_id=family, expires_at=utcnow() + timedelta(days=days))


def _rotate(world: World, old: str, new: str, family: str) -> None:
    world.store.rotate_session(
        SYSTEM, old_jti=old, new_jti=new, expires_at=utcnow() + timedelta(days=1),
        user_id=world.owner_id, family_id=family,
    )


# ------------------------------------------------------------------ record_login


def test_a_login_resets_the_lock_opens_the_session_and_writes_one_audit_row(world: World) -> None:
    store = world.store
    client = AuditContext(user_id=world.owner_id, ip="198.51.100.4")
    for _ in range(3):
        store.record_failed_login(client, world.owner_id, policy=LockoutPolicy(client_max_failures=3))
    assert store.login_gate(world.owner_id, "198.51.100.4").scope == "client"
    ctx = AuditContext(user_id=world.owner_id, ip="198.51.100.4", user_agent="ua/1", request_id="login-1")
    before = audit_count(store.engine)

    login = store.record_login(ctx, world.owner_id, session=_opening("secret-jti", "fam-x"))

    assert audit_count(store.engine) == before + 1
    row = newest_audit(store.engine)
    assert (row.action, row.target_type, row.target_id, row.user_id) == ("auth.login", "user", str(world.owner_id), world.owner_id)
    assert row.details == {"session_id": login.session.id, "family_id": "fam-x"}
    assert "secret-jti" not in str(row.details)  # the refresh token's id stays out of the audit log
    assert (login.user.failed_login_count, login.user.locked_until) == (0, None)
    assert store.login_gate(world.owner_id, "198.51.100.4").blocked_until is None
    assert login.user.last_login_at is not None
    stored = store.get_session("secret-jti")
    assert stored == login.session
    assert (stored.family_id, stored.user_id, stored.ip, stored.user_agent) == ("fam-x", world.owner_id, "198.51.100.4", "ua/1")
    assert store.get_user(world.owner_id) == login.user


def test_a_resent_login_is_applied_once_and_replays_its_result(world: World) -> None:
    ctx = AuditContext(user_id=world.owner_id, request_id="login-resend")
    first = world.store.record_login(ctx, world.owner_id, session=_opening("r-1"))
    before = snapshot(world.store.engine)
    again = world.store.record_login(ctx, world.owner_id, session=_opening("r-2"))
    assert again == first
    assert snapshot(world.store.engine) == before
    assert world.store.get_session("r-2") is None


def test_a_deactivated_user_cannot_log_in_and_nothing_is_written(world: World) -> None:
    world.store.set_user_active(SYSTEM, world.owner_id, False)
    before = snapshot(world.store.engine)
    with pytest.raises(DomainError, match=f"user {world.owner_id} is deactivated"):
        world.store.record_login(SYSTEM, world.owner_id, session=_opening())
    assert snapshot(world.store.engine) == before


@pytest.mark.parametrize(
    ("session", "message"),
    [
        ({"jti": "", "family_id": "f", "expires_at": utcnow() + timedelta(days=1)}, "record_login.session: jti"),
        ({"jti": "j", "family_id": "f"}, "record_login.session: expires_at: Field required"),
        ({"jti": "j", "family_id": "f", "expires_at": utcnow() - timedelta(seconds=1)}, "expires_at: must be after issued_at"),
        ({"jti": "j", "family_id": "f", "expires_at": utcnow() + timedelta(days=1), "token": "x"}, "token: Extra inputs"),
    ],
    ids=["empty-jti", "no-expiry", "already-expired", "unknown-field"],
)
def test_a_login_with_a_bad_session_raises_a_clear_error_and_writes_nothing(world: World, session, message) -> None:
    before = snapshot(world.store.engine)
    with pytest.raises(DomainError, match=message):
        world.store.record_login(SYSTEM, world.owner_id, session=session)
    assert snapshot(world.store.engine) == before


# ------------------------------------------------------------------ login_state


def test_a_fresh_login_is_live_and_names_its_family(world: World) -> None:
    world.store.record_login(SYSTEM, world.owner_id, session=_opening("a", "fam-a"))
    state = world.store.login_state(world.owner_id, "a")
    assert state is not None
    assert (state.session_family, state.session_live) == ("fam-a", True)
    assert state.user == world.store.get_user(world.owner_id)


def test_an_access_token_from_before_a_rotation_stays_live_until_the_login_ends(world: World) -> None:
    world.store.record_login(SYSTEM, world.owner_id, session=_opening("r0", "fam-r"))
    _rotate(world, "r0", "r1", "fam-r")
    _rotate(world, "r1", "r2", "fam-r")
    for jti in ("r0", "r1", "r2"):
        state = world.store.login_state(world.owner_id, jti)
        assert (state.session_family, state.session_live) == ("fam-r", True), jti
    world.store.revoke_session_family(SYSTEM, "fam-r")  # logout
    assert [world.store.login_state(world.owner_id, j).session_live for j in ("r0", "r1", "r2")] == [False] * 3


def test_reusing_a_rotated_refresh_token_kills_every_access_token_of_that_login(world: World) -> None:
    world.store.record_login(SYSTEM, world.owner_id, session=_opening("u0", "fam-u"))
    world.store.record_login(SYSTEM, world.owner_id, session=_opening("other", "fam-other"))
    _rotate(world, "u0", "u1", "fam-u")
    assert world.store.rotate_session(
        SYSTEM, old_jti="u0", new_jti="u2", expires_at=utcnow() + timedelta(days=1),
        user_id=world.owner_id, family_id="fam-u",
    ).reuse_detected
    assert not world.store.login_state(world.owner_id, "u0").session_live
    assert not world.store.login_state(world.owner_id, "u1").session_live
    assert world.store.login_state(world.owner_id, "other").session_live  # another login is untouched


def test_an_expired_login_is_dead(world: World) -> None:
    world.store.record_login(SYSTEM, world.owner_id, session=_opening("e0", "fam-e", days=1))
    assert world.store.login_state(world.owner_id, "e0", now=utcnow() + timedelta(hours=23)).session_live
    assert not world.store.login_state(world.owner_id, "e0", now=utcnow() + timedelta(days=1, seconds=1)).session_live


def test_a_deactivated_user_is_reported_with_a_dead_login(world: World) -> None:
    world.store.record_login(SYSTEM, world.owner_id, session=_opening("d0", "fam-d"))
    world.store.set_user_active(SYSTEM, world.owner_id, False)
    state = world.store.login_state(world.owner_id, "d0")
    assert (state.user.is_active, state.session_live) == (False, False)


def test_unknown_sessions_users_and_other_users_sessions_are_not_live(world: World) -> None:
    world.store.record_login(SYSTEM, world.owner_id, session=_opening("mine", "fam-m"))
    other = world.new_user()
    assert world.store.login_state(123456, "mine") is None
    unknown = world.store.login_state(world.owner_id, "no-such-jti")
    assert (unknown.session_family, unknown.session_live) == (None, False)
    foreign = world.store.login_state(other, "mine")  # a token naming another user's session
    assert (foreign.user.id, foreign.session_family, foreign.session_live) == (other, None, False)


def test_a_rotation_chain_longer_than_the_limit_counts_as_dead(world: World) -> None:
    world.store.record_login(SYSTEM, world.owner_id, session=_opening("c0", "fam-c"))
    for i in range(ROTATION_CHAIN_LIMIT - 1):
        _rotate(world, f"c{i}", f"c{i + 1}", "fam-c")
    # c0 .. c31: exactly ROTATION_CHAIN_LIMIT sessions, the last one live.
    assert world.store.login_state(world.owner_id, "c0").session_live
    _rotate(world, f"c{ROTATION_CHAIN_LIMIT - 1}", f"c{ROTATION_CHAIN_LIMIT}", "fam-c")
    assert not world.store.login_state(world.owner_id, "c0").session_live
    assert world.store.login_state(world.owner_id, "c1").session_live
