"""The seed's authentication flow (§1.6) end to end against a real uvicorn on loopback,
on SQLite and PostgreSQL: register -> login -> Bearer -> portfolio -> asset -> activate
-> orders/positions visible -> deactivate; plus refresh rotation, logout and lockout.

``run_seed_flow`` takes an ``on_active`` hook: the engine-running variant (the actor
runtime's test) passes one that waits for a step to trade and checks the orders.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.integration.api.conftest import PASSWORD, Gateway, bearer

ActiveHook = Callable[[httpx.Client, dict[str, str], dict[str, Any]], None]


def run_seed_flow(client: httpx.Client, username: str, on_active: ActiveHook | None = None) -> dict[str, Any]:
    """The whole user journey over HTTP; returns the ids it created.

    ``on_active(client, headers, ids)`` runs while portfolio and asset are active."""
    resp = client.post("/api/auth/register", json={"username": username, "password": PASSWORD, "email": f"{username}@example.com"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["role"] == "user"

    resp = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    tokens = resp.json()
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 1800
    headers = bearer(tokens["access_token"])

    me = client.get("/api/users/me", headers=headers)
    assert me.status_code == 200 and me.json()["username"] == username

    resp = client.post(
        "/api/portfolios",
        headers=headers,
        json={"name": "main", "description": "seed flow", "total_capital": "25000.50", "latency": 0.5},
    )
    assert resp.status_code == 201, resp.text
    portfolio = resp.json()
    assert portfolio["owner_id"] == me.json()["id"]
    assert portfolio["total_capital"] == "25000.50000000"  # exact decimal, no float drift
    assert portfolio["is_active"] is False

    resp = client.post(
        f"/api/portfolios/{portfolio['id']}/assets",
        headers=headers,
        json={
            "symbol": "EURUSD",
            "strategy_plugin": "sma_cross",
            "strategy_config": {"fast": 5, "slow": 20},
            "allocated_capital": "25000.50",
        },
    )
    assert resp.status_code == 201, resp.text
    asset = resp.json()
    assert asset["strategy_config"] == {"fast": 5, "slow": 20}

    resp = client.post(f"/api/assets/{asset['id']}/activate", headers=headers)
    assert resp.status_code == 200 and resp.json()["is_active"] is True
    resp = client.post(f"/api/portfolios/{portfolio['id']}/activate", headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["is_active"] is True and resp.json()["status"] == "active"

    ids = {"portfolio_id": portfolio["id"], "asset_id": asset["id"], "user_id": me.json()["id"]}
    if on_active is not None:
        on_active(client, headers, ids)

    orders = client.get("/api/orders", headers=headers, params={"portfolio_id": portfolio["id"], "page_size": 100})
    positions = client.get("/api/positions", headers=headers, params={"asset_id": asset["id"]})
    assert orders.status_code == 200 and positions.status_code == 200
    ids["orders"] = orders.json()
    ids["positions"] = positions.json()

    resp = client.post(f"/api/portfolios/{portfolio['id']}/deactivate", headers=headers)
    assert resp.status_code == 200 and resp.json()["is_active"] is False
    ids["tokens"] = tokens
    return ids


def test_seed_flow_over_real_uvicorn(live_gateway: Gateway) -> None:
    assert live_gateway.base_url.startswith("http://127.0.0.1:")
    ids = run_seed_flow(live_gateway.client, "carol")
    assert ids["orders"] == {"items": [], "total": 0, "page": 1, "page_size": 100}
    assert ids["positions"]["total"] == 0
    # Every step is in the audit log with the user and the client address.
    rows = live_gateway.store.list_audit_logs(user_id=ids["user_id"]).items
    actions = [r.action for r in reversed(rows)]
    assert actions == [
        "auth.login",
        "portfolio.create",
        "asset.create",
        "asset.activate",
        "portfolio.activate",
        "portfolio.deactivate",
    ]
    assert {r.ip for r in rows} == {"127.0.0.1"}
    # Without an engine, the engine endpoints say so clearly.
    headers = bearer(ids["tokens"]["access_token"])
    resp = live_gateway.client.post("/api/trading/execute", headers=headers, json={"asset_id": ids["asset_id"]})
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "engine_unavailable"
    assert live_gateway.client.get("/api/engine/status", headers=headers).status_code == 503
    health = live_gateway.client.get("/health")
    assert health.status_code == 200 and health.json() == {"status": "ok", "database": "ok", "engine": "absent"}


def test_refresh_rotates_and_logout_revokes_everything(live_gateway: Gateway) -> None:
    client = live_gateway.client
    live_gateway.make_user("dave")
    first = live_gateway.login("dave")

    resp = client.post("/api/auth/refresh", json={"refresh_token": first.refresh_token})
    assert resp.status_code == 200, resp.text
    second = resp.json()
    assert second["refresh_token"] != first.refresh_token
    # The old access token still works until it expires (its login is alive)...
    assert client.get("/api/users/me", headers=first.headers).status_code == 200
    assert client.get("/api/users/me", headers=bearer(second["access_token"])).status_code == 200

    resp = client.post("/api/auth/logout", headers=bearer(second["access_token"]))
    assert resp.status_code == 200
    # ...and logout kills every token of that login, old and new.
    for token in (first.access_token, second["access_token"]):
        resp = client.get("/api/users/me", headers=bearer(token))
        assert resp.status_code == 401 and "revoked" in resp.json()["error"]["message"]
    resp = client.post("/api/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert resp.status_code == 401
    # Another login of the same user is unaffected.
    again = live_gateway.login("dave")
    assert client.get("/api/users/me", headers=again.headers).status_code == 200


def test_lockout_after_five_failures(live_gateway: Gateway) -> None:
    """Five failures from one client hold THAT client back from the account (the first
    backoff: 60 s); the failures are audited as one counted row, the hold as its own."""
    client = live_gateway.client
    user_id = live_gateway.make_user("erin")
    for _ in range(5):
        resp = client.post("/api/auth/login", json={"username": "erin", "password": "Wrong7Password"})
        assert resp.status_code == 401
        assert resp.json()["error"]["message"] == "invalid username or password"
    # Held back: even the right password is refused from this client, with how long to wait.
    resp = client.post("/api/auth/login", json={"username": "erin", "password": PASSWORD})
    assert resp.status_code == 423
    assert resp.json()["error"]["code"] == "account_locked"
    retry_after = int(resp.headers["retry-after"])
    assert 1 <= retry_after <= 60  # what is left of the first 60 s backoff
    assert live_gateway.store.login_gate(user_id, "127.0.0.1").scope == "client"
    failed = live_gateway.store.list_audit_logs(user_id=user_id, action="auth.login_failed").items
    assert sum(row.count for row in failed) == 5 and len(failed) <= 2  # 2: the five straddled a minute
    lockouts = live_gateway.store.list_audit_logs(user_id=user_id, action="auth.lockout").items
    assert [(row.details["scope"], row.details["failures"]) for row in lockouts] == [("client", 5)]
    assert live_gateway.store.list_audit_logs(user_id=user_id, action="auth.login_locked").items[0].count == 1


def test_lock_expires_and_success_resets_the_count(gateway: Gateway) -> None:
    from datetime import timedelta

    from engine.types import utcnow
    from persistence.lockout import LockoutPolicy
    from persistence.records import AuditContext

    user_id = gateway.make_user("fay")
    for _ in range(4):
        assert gateway.client.post("/api/auth/login", json={"username": "fay", "password": "Nope1234X"}).status_code == 401
    gateway.login("fay")  # a success resets the count: four more failures do not lock
    for _ in range(4):
        assert gateway.client.post("/api/auth/login", json={"username": "fay", "password": "Nope1234X"}).status_code == 401
    assert gateway.store.get_user(user_id).locked_until is None
    assert gateway.store.login_gate(user_id, "10.1.2.3").blocked_until is None
    # A hold that ended in the past no longer blocks.
    failed = gateway.store.record_failed_login(
        AuditContext(user_id=user_id, ip="10.1.2.3"), user_id,
        policy=LockoutPolicy(client_max_failures=1, backoff_s=1, max_lock_s=1), now=utcnow() - timedelta(seconds=5),
    )
    assert failed.client_locked_until is not None and failed.client_locked_until < utcnow()
    assert gateway.client.post("/api/auth/login", json={"username": "fay", "password": PASSWORD}).status_code == 200


def test_unknown_user_and_wrong_password_look_the_same(gateway: Gateway) -> None:
    gateway.make_user("gus")
    unknown = gateway.client.post("/api/auth/login", json={"username": "nobody", "password": PASSWORD})
    wrong = gateway.client.post("/api/auth/login", json={"username": "gus", "password": "Wrong1234"})
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()
    assert gateway.audit_count(action="auth.login_failed") == 2


def test_register_policy_and_mass_assignment(gateway: Gateway) -> None:
    client = gateway.client
    cases = {
        "short": "Ab1",
        "no uppercase": "lowercase123",
        "no digit": "NoDigitsHere",
        "73 bytes": "A1" + "b" * 71,
        "72 bytes of multibyte": "A1" + "é" * 36,  # 74 bytes: over
    }
    for label, password in cases.items():
        resp = client.post("/api/auth/register", json={"username": "hal", "password": password})
        assert resp.status_code == 422, (label, resp.text)
        assert resp.json()["error"]["details"][0]["loc"] == ["body", "password"]
        assert password not in resp.text  # the password is never echoed back
    ok = client.post("/api/auth/register", json={"username": "hal", "password": "A1" + "b" * 70})
    assert ok.status_code == 201
    # A client cannot make itself admin or pick an owner.
    resp = client.post("/api/auth/register", json={"username": "ivy", "password": PASSWORD, "role": "admin"})
    assert resp.status_code == 422 and resp.json()["error"]["details"][0]["loc"] == ["body", "role"]
    assert gateway.store.find_user("ivy") is None
    dup = client.post("/api/auth/register", json={"username": "hal", "password": PASSWORD})
    assert dup.status_code == 409
    hal = gateway.login("hal", "A1" + "b" * 70)
    resp = client.post("/api/portfolios", headers=hal.headers, json={"name": "x", "total_capital": 1, "owner_id": 1})
    assert resp.status_code == 422 and resp.json()["error"]["details"][0]["loc"] == ["body", "owner_id"]
