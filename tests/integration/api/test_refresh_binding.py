"""A refresh token is valid only for the user (``sub``) and login (``sid``) it was issued
for: a token re-signed with the signing secret but naming another user or another login
is refused with 401, and nothing in the database changes (no rotation, no reuse
detection that would revoke someone else's login). SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import jwt
from sqlalchemy import select

from persistence.models import AuditLog, UserSession
from tests.integration.api.conftest import TEST_SECRET, Gateway, UserSession as LoggedIn, bearer


def _resigned(token: str, **changes: Any) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    claims.update(changes)
    return jwt.encode(claims, TEST_SECRET, algorithm="HS256")


def _claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def _state(gateway: Gateway) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every session row, and every audit row that is not a denial."""
    with gateway.store.engine.connect() as conn:
        sessions = [tuple(r) for r in conn.execute(select(UserSession.__table__).order_by(UserSession.id))]
        audits = [
            tuple(r)
            for r in conn.execute(
                select(AuditLog.id, AuditLog.action).where(AuditLog.action.not_like("auth.%")).order_by(AuditLog.id)
            )
        ]
    return sessions, audits


def _refused(gateway: Gateway, token: str) -> dict[str, Any]:
    before = _state(gateway)
    resp = gateway.client.post("/api/auth/refresh", json={"refresh_token": token})
    assert resp.status_code == 401, resp.text
    assert _state(gateway) == before, "a refused refresh changed the database"
    return resp.json()["error"]


def _still_works(gateway: Gateway, who: LoggedIn) -> None:
    assert gateway.client.get("/api/users/me", headers=who.headers).status_code == 200
    resp = gateway.client.post("/api/auth/refresh", json={"refresh_token": who.refresh_token})
    assert resp.status_code == 200, resp.text


def test_a_refresh_token_resigned_with_another_subject_is_refused(gateway: Gateway) -> None:
    gateway.make_user("victim")
    gateway.make_user("mallory")
    victim = gateway.login("victim")
    mallory = gateway.login("mallory")
    # The victim's refresh token claiming to be mallory's, and mallory's claiming the victim.
    for token, sub in ((victim.refresh_token, mallory.user_id), (mallory.refresh_token, victim.user_id)):
        error = _refused(gateway, _resigned(token, sub=str(sub)))
        assert error["message"] == "refresh token unknown"
    # Neither login was touched: both refresh tokens still rotate.
    _still_works(gateway, victim)
    _still_works(gateway, mallory)


def test_a_refresh_token_resigned_with_another_login_is_refused(gateway: Gateway) -> None:
    gateway.make_user("victim")
    first = gateway.login("victim")
    second = gateway.login("victim")
    other_family = _claims(second.refresh_token)["sid"]
    for sid in (other_family, "made-up-family"):
        assert _refused(gateway, _resigned(first.refresh_token, sid=sid))["message"] == "refresh token unknown"
    _still_works(gateway, first)
    _still_works(gateway, second)


def test_a_used_token_resigned_for_another_user_does_not_revoke_the_owners_login(gateway: Gateway) -> None:
    """Reuse detection fires only for the token's own user and login: a rotated token
    re-signed with another ``sub`` is just unknown, and the owner's login lives on."""
    gateway.make_user("victim")
    mallory_id = gateway.make_user("mallory")
    victim = gateway.login("victim")
    rotated = gateway.client.post("/api/auth/refresh", json={"refresh_token": victim.refresh_token})
    assert rotated.status_code == 200
    fresh = LoggedIn("victim", victim.user_id, rotated.json()["access_token"], rotated.json()["refresh_token"])
    _refused(gateway, _resigned(victim.refresh_token, sub=str(mallory_id)))
    assert gateway.store.list_audit_logs(action="session.reuse_detected").total == 0
    _still_works(gateway, fresh)
    # The genuine reuse is still caught.
    resp = gateway.client.post("/api/auth/refresh", json={"refresh_token": victim.refresh_token})
    assert resp.status_code == 401 and "already used" in resp.json()["error"]["message"]


def test_odd_subjects_are_refused_without_a_server_error(gateway: Gateway) -> None:
    gateway.make_user("victim")
    victim = gateway.login("victim")
    for sub in ("²", "0", "9" * 30, "-1", "1.0", ""):
        resp = gateway.client.post("/api/auth/refresh", json={"refresh_token": _resigned(victim.refresh_token, sub=sub)})
        assert resp.status_code == 401, (sub, resp.text)
        resp = gateway.client.get("/api/users/me", headers=bearer(_resigned(victim.access_token, sub=sub)))
        assert resp.status_code == 401, (sub, resp.text)
    _still_works(gateway, victim)


def test_logout_with_a_token_naming_another_login_changes_nothing(gateway: Gateway) -> None:
    gateway.make_user("victim")
    gateway.make_user("mallory")
    victim = gateway.login("victim")
    mallory = gateway.login("mallory")
    victim_sid = _claims(victim.access_token)["sid"]
    forged = _resigned(mallory.access_token, sid=victim_sid)
    before = _state(gateway)
    resp = gateway.client.post("/api/auth/logout", headers=bearer(forged))
    assert resp.status_code == 401
    assert _state(gateway) == before
    _still_works(gateway, victim)
