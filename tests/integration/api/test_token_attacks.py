"""INT-07: every forged, stale or misused token gets 401 against a real uvicorn, and
each refusal is counted in the audit log (repeats within a minute share a row)."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timedelta, timezone

import jwt
import pytest

from api.aaa import DefaultAAA
from persistence.records import PageRequest
from tests.integration.api.conftest import TEST_SECRET, Gateway, UserSession, bearer, unique

PROTECTED = "/api/portfolios"


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(victim: UserSession, token: str, **changes: object) -> dict:
    claims = jwt.decode(token, options={"verify_signature": False})
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _refusals(gateway: Gateway) -> int:
    """How many 401s the audit log has counted (repeats share a row, with a count)."""
    total, offset = 0, 0
    while True:
        page = gateway.store.list_audit_logs(action="auth.unauthorized", page=PageRequest(offset=offset, limit=500))
        total += sum(row.count for row in page.items)
        offset += len(page.items)
        if offset >= page.total or not page.items:
            return total


def _assert_401(gateway: Gateway, headers: dict[str, str]) -> dict:
    before = _refusals(gateway)
    resp = gateway.client.get(PROTECTED, headers=headers)
    assert resp.status_code == 401, resp.text
    assert resp.headers["www-authenticate"] == "Bearer"
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == "unauthorized"
    assert _refusals(gateway) == before + 1
    return body


@pytest.fixture
def live_gateway(shared_live_gateway: Gateway) -> Gateway:
    """One real uvicorn per backend for this module: every test makes its own users."""
    return shared_live_gateway


@pytest.fixture
def victim(live_gateway: Gateway) -> UserSession:
    name = unique("victim")
    live_gateway.make_user(name)
    session = live_gateway.login(name)
    assert live_gateway.client.get(PROTECTED, headers=session.headers).status_code == 200
    return session


def test_alg_none(live_gateway: Gateway, victim: UserSession) -> None:
    claims = _claims(victim, victim.access_token)
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    _assert_401(live_gateway, bearer(unsigned))


def test_wrong_signature(live_gateway: Gateway, victim: UserSession) -> None:
    claims = _claims(victim, victim.access_token)
    forged = jwt.encode(claims, "an-attacker-secret-that-is-long-enough-000", algorithm="HS256")
    _assert_401(live_gateway, bearer(forged))
    # Tampering with the payload of a genuine token breaks its signature too.
    header, _payload, signature = victim.access_token.split(".")
    admin_claims = _b64(_claims(victim, victim.access_token, role="admin", sub="1"))
    _assert_401(live_gateway, bearer(f"{header}.{admin_claims}.{signature}"))


def test_expired_by_one_second(live_gateway: Gateway, victim: UserSession) -> None:
    issued = datetime.now(timezone.utc) - timedelta(minutes=30, seconds=1)
    old = DefaultAAA({"bcrypt_rounds": 4}, secret=TEST_SECRET, clock=lambda: issued)
    claims = _claims(victim, victim.access_token)
    token = old.create_tokens(claims["sub"], sid=claims["sid"])["access_token"]
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert time.time() - 3 < exp < time.time()  # expired about one second ago
    body = _assert_401(live_gateway, bearer(token))
    assert "expired" in body["error"]["message"]


def test_missing_exp(live_gateway: Gateway, victim: UserSession) -> None:
    claims = _claims(victim, victim.access_token)
    del claims["exp"]
    token = jwt.encode(claims, TEST_SECRET, algorithm="HS256")  # correctly signed, no expiry
    body = _assert_401(live_gateway, bearer(token))
    assert "exp" in body["error"]["message"]


def test_refresh_token_used_as_access_token(live_gateway: Gateway, victim: UserSession) -> None:
    body = _assert_401(live_gateway, bearer(victim.refresh_token))
    assert "access" in body["error"]["message"]
    # And the converse: an access token cannot refresh.
    resp = live_gateway.client.post("/api/auth/refresh", json={"refresh_token": victim.access_token})
    assert resp.status_code == 401


def test_reused_refresh_token_revokes_the_login(live_gateway: Gateway, victim: UserSession) -> None:
    client = live_gateway.client
    rotated = client.post("/api/auth/refresh", json={"refresh_token": victim.refresh_token})
    assert rotated.status_code == 200
    new = rotated.json()
    # The attacker replays the old (already used) refresh token.
    reuse = client.post("/api/auth/refresh", json={"refresh_token": victim.refresh_token})
    assert reuse.status_code == 401 and "already used" in reuse.json()["error"]["message"]
    reuse_rows = live_gateway.store.list_audit_logs(action="session.reuse_detected", user_id=victim.user_id)
    assert reuse_rows.total == 1
    # Every token of that login is now dead, including the legitimately rotated ones.
    _assert_401(live_gateway, bearer(new["access_token"]))
    _assert_401(live_gateway, victim.headers)
    assert client.post("/api/auth/refresh", json={"refresh_token": new["refresh_token"]}).status_code == 401


def test_deactivated_users_token(live_gateway: Gateway, victim: UserSession) -> None:
    root = unique("root")
    live_gateway.make_user(root, role="admin")
    admin = live_gateway.login(root)
    resp = live_gateway.client.patch(f"/api/users/{victim.user_id}", headers=admin.headers, json={"is_active": False})
    assert resp.status_code == 200 and resp.json()["is_active"] is False
    _assert_401(live_gateway, victim.headers)
    assert live_gateway.client.post("/api/auth/refresh", json={"refresh_token": victim.refresh_token}).status_code == 401
    login = live_gateway.client.post("/api/auth/login", json={"username": victim.username, "password": "Correct7Horse"})
    assert login.status_code == 401


def test_a_signed_token_naming_another_login_is_refused(live_gateway: Gateway, victim: UserSession) -> None:
    """Even with the signing secret, a token's subject, login family (``sid``) and refresh
    session (``rjti``) must belong together."""
    genuine = jwt.encode(_claims(victim, victim.access_token), TEST_SECRET, algorithm="HS256")
    assert live_gateway.client.get(PROTECTED, headers=bearer(genuine)).status_code == 200  # re-signing alone is fine
    other_name = unique("other")
    live_gateway.make_user(other_name)
    other = jwt.decode(live_gateway.login(other_name).access_token, options={"verify_signature": False})
    foreign = _claims(victim, victim.access_token, sid=other["sid"], rjti=other["rjti"])
    _assert_401(live_gateway, bearer(jwt.encode(foreign, TEST_SECRET, algorithm="HS256")))
    second = jwt.decode(live_gateway.login(victim.username).access_token, options={"verify_signature": False})
    mixed = _claims(victim, victim.access_token, sid=second["sid"])  # own live session, other login's family
    body = _assert_401(live_gateway, bearer(jwt.encode(mixed, TEST_SECRET, algorithm="HS256")))
    assert "session revoked" in body["error"]["message"]


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer not.a.jwt",
        "Bearer " + "A" * 5000,
    ],
)
def test_malformed_authorization_headers(sqlite_gateway: Gateway, header: str) -> None:
    resp = sqlite_gateway.client.get(PROTECTED, headers={"Authorization": header} if header else {})
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "unauthorized"


def test_subject_of_a_deleted_or_absurd_user(sqlite_gateway: Gateway) -> None:
    sqlite_gateway.make_user("temp")
    session = sqlite_gateway.login("temp")
    claims = _claims(session, session.access_token)
    for sub in ("999999", "9" * 30, "-1", "abc"):
        token = jwt.encode({**claims, "sub": sub}, TEST_SECRET, algorithm="HS256")
        assert sqlite_gateway.client.get(PROTECTED, headers=bearer(token)).status_code == 401
