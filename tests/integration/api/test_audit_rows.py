"""INT-08: every state-changing 2xx leaves exactly one audit row naming the user, the
action, the target, details and the client IP; refused logins, 401s and 403s are audited
too (repeats counted into one row a minute: tests/integration/api/test_audit_flood.py);
reads and refused writes (4xx) change nothing and write no change row."""

from __future__ import annotations

from typing import Any

from tests.integration.api.conftest import PASSWORD, Gateway, UserSession

CLIENT_IP = "10.1.2.3"  # the in-process client's address (see conftest)


def _newest(gateway: Gateway) -> Any:
    return gateway.store.list_audit_logs().items[0]


def _one_row(gateway: Gateway, who: UserSession | None, method: str, path: str, body: Any, action: str, target: str | None) -> Any:
    before = gateway.audit_count()
    headers = who.headers if who else {}
    resp = gateway.client.request(method, path, headers=headers, json=body)
    assert 200 <= resp.status_code < 300, f"{method} {path}: {resp.status_code} {resp.text}"
    assert gateway.audit_count() == before + 1, f"{method} {path} wrote {gateway.audit_count() - before} audit rows"
    row = _newest(gateway)
    assert row.action == action, (method, path, row.action)
    assert row.target_type == target
    assert row.ip == CLIENT_IP
    if who is not None:
        assert row.user_id == who.user_id
    return resp


def test_every_state_changing_2xx_writes_exactly_one_audit_row(gateway: Gateway) -> None:
    client = gateway.client
    _one_row(gateway, None, "POST", "/api/auth/register", {"username": "newbie", "password": PASSWORD}, "user.create", "user")
    gateway.make_user("boss", role="admin")
    boss = gateway.login("boss")
    user = gateway.login("newbie")

    resp = _one_row(gateway, user, "POST", "/api/portfolios", {"name": "p", "total_capital": "100"}, "portfolio.create", "portfolio")
    pid = resp.json()["id"]
    calls = [
        ("PUT", f"/api/portfolios/{pid}", {"description": "d"}, "portfolio.update", "portfolio"),
        ("POST", f"/api/portfolios/{pid}/assets", {"symbol": "EURUSD"}, "asset.create", "asset"),
    ]
    for method, path, body, action, target in calls:
        resp = _one_row(gateway, user, method, path, body, action, target)
    aid = resp.json()["id"]
    calls = [
        ("PUT", f"/api/assets/{aid}", {"max_positions": 2}, "asset.update", "asset"),
        ("PATCH", f"/api/assets/{aid}/strategy", {"plugin": "sma_cross", "config": {"fast": 4, "slow": 12}}, "asset.strategy_change", "asset"),
        ("PATCH", f"/api/assets/{aid}/broker", {"config": {}}, "asset.broker_change", "asset"),
        ("PATCH", f"/api/assets/{aid}/pipeline", {"config": {}}, "asset.pipeline_change", "asset"),
        ("PATCH", f"/api/assets/{aid}/allocation", {"allocated_capital": "50"}, "asset.allocation_change", "asset"),
        ("POST", f"/api/assets/{aid}/activate", None, "asset.activate", "asset"),
        ("POST", f"/api/portfolios/{pid}/activate", None, "portfolio.activate", "portfolio"),
        ("POST", f"/api/portfolios/{pid}/deactivate", None, "portfolio.deactivate", "portfolio"),
        ("POST", f"/api/assets/{aid}/deactivate", None, "asset.deactivate", "asset"),
        ("DELETE", f"/api/assets/{aid}", None, "asset.delete", "asset"),
        ("DELETE", f"/api/portfolios/{pid}", None, "portfolio.delete", "portfolio"),
    ]
    for method, path, body, action, target in calls:
        _one_row(gateway, user, method, path, body, action, target)
    row = _newest(gateway)
    assert row.target_id == str(pid) and row.details == {"name": "p"}

    _one_row(gateway, boss, "PATCH", f"/api/users/{user.user_id}", {"role": "admin"}, "user.role_change", "user")
    assert _newest(gateway).details == {"from": "user", "to": "admin"}
    resp = _one_row(gateway, None, "POST", "/api/auth/refresh", {"refresh_token": user.refresh_token}, "session.rotate", "session")
    new_access = resp.json()["access_token"]
    user = UserSession(user.username, user.user_id, new_access, resp.json()["refresh_token"])
    _one_row(gateway, user, "POST", "/api/auth/logout", None, "session.revoke_family", "session_family")
    _one_row(gateway, boss, "PATCH", f"/api/users/{user.user_id}", {"is_active": False}, "user.deactivate", "user")


def test_a_login_writes_exactly_one_audit_row_naming_its_session(gateway: Gateway) -> None:
    """A login resets the failure count and opens a refresh session in ONE Store write:
    one ``auth.login`` row that names the session, never a token."""
    user_id = gateway.make_user("once")
    assert gateway.client.post("/api/auth/login", json={"username": "once", "password": "Wrong12345"}).status_code == 401
    assert gateway.store.get_user(user_id).failed_login_count == 1

    resp = _one_row(gateway, None, "POST", "/api/auth/login", {"username": "once", "password": PASSWORD}, "auth.login", "user")
    row = _newest(gateway)
    tokens = resp.json()
    refresh_jti = gateway.aaa.decode_token(tokens["refresh_token"], "refresh")["jti"]
    session = gateway.store.get_session(refresh_jti)
    assert session is not None and session.revoked_at is None and session.ip == CLIENT_IP
    assert (row.user_id, row.target_id) == (user_id, str(user_id))
    assert row.details == {"session_id": session.id, "family_id": session.family_id}
    for secret in (tokens["access_token"], tokens["refresh_token"], refresh_jti):
        assert secret not in str(row.details)
    user = gateway.store.get_user(user_id)
    assert (user.failed_login_count, user.locked_until) == (0, None) and user.last_login_at is not None


def test_refresh_and_logout_each_write_exactly_one_audit_row(gateway: Gateway) -> None:
    gateway.make_user("cycler")
    user = gateway.login("cycler")
    for _ in range(2):
        resp = _one_row(gateway, None, "POST", "/api/auth/refresh", {"refresh_token": user.refresh_token}, "session.rotate", "session")
        user = UserSession(user.username, user.user_id, resp.json()["access_token"], resp.json()["refresh_token"])
    _one_row(gateway, user, "POST", "/api/auth/logout", None, "session.revoke_family", "session_family")
    assert _newest(gateway).details["count"] == 1  # the one live session of the login
    assert gateway.client.get("/api/users/me", headers=user.headers).status_code == 401


def test_reads_and_refused_writes_write_no_change_rows(gateway: Gateway) -> None:
    gateway.make_user("reader")
    reader = gateway.login("reader")
    pid = gateway.client.post("/api/portfolios", headers=reader.headers, json={"name": "r", "total_capital": 1}).json()["id"]
    before = gateway.audit_count()
    for path in ("/api/portfolios", f"/api/portfolios/{pid}", "/api/orders", "/api/positions", "/api/users/me", "/api/statistics", "/api/billing/me", "/api/plugins", "/health"):
        assert gateway.client.get(path, headers=reader.headers).status_code == 200, path
    refused = [
        ("POST", "/api/portfolios", {"name": "r", "total_capital": 1}, 409),  # duplicate name
        ("POST", "/api/portfolios", {"name": "neg", "total_capital": -1}, 422),
        ("PUT", f"/api/portfolios/{pid}", {}, 422),
        ("DELETE", "/api/portfolios/123456", None, 404),
        ("POST", f"/api/portfolios/{pid}/assets", {"symbol": "X", "strategy_plugin": "nope"}, 422),
    ]
    for method, path, body, status in refused:
        resp = gateway.client.request(method, path, headers=reader.headers, json=body)
        assert resp.status_code == status, (method, path, resp.text)
    assert gateway.audit_count() == before


def test_denials_are_audited(gateway: Gateway) -> None:
    gateway.make_user("mallory")
    mallory = gateway.login("mallory")
    client = gateway.client

    before = gateway.audit_count()
    assert client.post("/api/auth/login", json={"username": "mallory", "password": "Wrong12345"}).status_code == 401
    assert gateway.audit_count() == before + 1
    row = _newest(gateway)
    assert (row.action, row.user_id, row.ip, row.count) == ("auth.login_failed", mallory.user_id, CLIENT_IP, 1)
    assert row.details == {"reason": "wrong password"}
    # A repeat is counted into the same row (repeated failures are aggregated per minute).
    assert client.post("/api/auth/login", json={"username": "mallory", "password": "Wrong12345"}).status_code == 401
    again = gateway.store.list_audit_logs(action="auth.login_failed", user_id=mallory.user_id).items
    assert sum(r.count for r in again) == 2 and len(again) <= 2

    assert client.post("/api/auth/login", json={"username": "ghost", "password": "Wrong12345"}).status_code == 401
    row = _newest(gateway)
    assert (row.action, row.user_id) == ("auth.login_failed", None)
    assert row.details == {"reason": "unknown user"} and "Wrong12345" not in str(row.details)

    assert client.get("/api/portfolios", headers={"Authorization": "Bearer garbage"}).status_code == 401
    row = _newest(gateway)
    assert (row.action, row.user_id, row.ip) == ("auth.unauthorized", None, CLIENT_IP)
    assert row.details["path"] == "/api/portfolios" and row.details["method"] == "GET"

    assert client.get("/api/audit-logs", headers=mallory.headers).status_code == 403
    row = _newest(gateway)
    assert (row.action, row.user_id, row.ip) == ("auth.forbidden", mallory.user_id, CLIENT_IP)
    assert row.details["path"] == "/api/audit-logs"
