"""Repeated authentication failures are aggregated in the audit log: a flood of failed
logins, dead-token 401s or 403s writes a few rows whose ``count`` adds up to the
requests sent, not one row each; a lockout still gets a row of its own; two gateways
racing for the same row neither duplicate it nor fail. SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from sqlalchemy import func, select

from engine.types import utcnow
from persistence.models import LoginFailure
from persistence.records import AuditContext, AuditRecord, PageRequest
from persistence.store._audit import AGGREGATE_WINDOW_S, window_start
from tests.integration.api.conftest import PASSWORD, Gateway, bearer, serve_live

FLOOD = 300


class Minutes:
    """How many aggregation windows (minutes) a flood touched: one row per key and
    window, so a key may have that many rows (two when a flood straddles a minute)."""

    def __enter__(self) -> "Minutes":
        self._first = window_start(utcnow())
        return self

    def __exit__(self, *exc: object) -> None:
        self.count = int((window_start(utcnow()) - self._first).total_seconds()) // AGGREGATE_WINDOW_S + 1


def _rows(gateway: Gateway, action: str, **filters: Any) -> list[AuditRecord]:
    page = gateway.store.list_audit_logs(action=action, page=PageRequest(limit=500), **filters)
    assert page.total <= 500
    return list(page.items)


def _counted(rows: list[AuditRecord]) -> int:
    return sum(row.count for row in rows)


def test_a_flood_of_failed_logins_writes_a_bounded_number_of_rows(gateway: Gateway) -> None:
    victim = gateway.make_user("victim")
    before = gateway.audit_count()
    with Minutes() as spanned:
        for i in range(FLOOD):
            resp = gateway.client.post("/api/auth/login", json={"username": f"nobody-{i}", "password": "Wrong1234"})
            assert resp.status_code == 401
        statuses = [
            gateway.client.post("/api/auth/login", json={"username": "victim", "password": "Wrong1234"}).status_code
            for _ in range(FLOOD)
        ]
    assert statuses == [401] * 5 + [423] * (FLOOD - 5)

    unknown = [r for r in _rows(gateway, "auth.login_failed") if r.user_id is None]
    failed = _rows(gateway, "auth.login_failed", user_id=victim)
    held = _rows(gateway, "auth.login_locked", user_id=victim)
    assert len(unknown) <= spanned.count and _counted(unknown) == FLOOD
    assert len(failed) <= spanned.count and _counted(failed) == 5
    assert len(held) <= spanned.count and _counted(held) == FLOOD - 5
    # The security signal keeps a row of its own.
    (lockout,) = _rows(gateway, "auth.lockout")
    assert (lockout.user_id, lockout.count, lockout.details["scope"]) == (victim, 1, "client")
    assert gateway.audit_count() - before <= 3 * spanned.count + 1
    # No attacker-chosen name lands in the log.
    assert all("nobody" not in str(row.details) for row in unknown)


def test_a_flood_of_dead_token_and_forbidden_requests_writes_a_bounded_number_of_rows(gateway: Gateway) -> None:
    gateway.make_user("root", role="admin")
    gateway.make_user("user")
    admin = gateway.login("root")
    user = gateway.login("user")
    dead = gateway.login("user")
    assert gateway.client.post("/api/auth/logout", headers=dead.headers).status_code == 200
    before = gateway.audit_count()
    with Minutes() as spanned:
        for _ in range(FLOOD):
            assert gateway.client.get("/api/portfolios", headers=dead.headers).status_code == 401
            assert gateway.client.get("/api/audit-logs", headers=user.headers).status_code == 403
    unauthorized = _rows(gateway, "auth.unauthorized")
    forbidden = _rows(gateway, "auth.forbidden")
    assert len(unauthorized) <= spanned.count and _counted(unauthorized) == FLOOD
    assert len(forbidden) <= spanned.count and _counted(forbidden) == FLOOD
    assert gateway.audit_count() - before <= 2 * spanned.count
    assert {r.details["reason"] for r in unauthorized} == {"session revoked; log in again"}
    assert {(r.user_id, r.details["path"]) for r in forbidden} == {(user.user_id, "/api/audit-logs")}

    # The audit API shows the count and the first and last time.
    resp = gateway.client.get("/api/audit-logs", params={"action": "auth.unauthorized"}, headers=admin.headers)
    assert resp.status_code == 200
    items = resp.json()["items"]
    assert sum(item["count"] for item in items) == FLOOD
    assert all(item["last_seen_at"] >= item["created_at"] for item in items)


def test_route_ids_and_token_bytes_do_not_multiply_the_rows(gateway: Gateway) -> None:
    """The key is the route's template and the reason's first parts: probing many ids or
    mangled tokens still counts into one row per route and kind of refusal."""
    with Minutes() as spanned:
        for i in range(40):
            assert gateway.client.get(f"/api/portfolios/{i + 1}").status_code == 401
            garbage = f"Bearer eyJ{'A' * i}.e30.x"  # PyJWT's message names a byte position
            assert gateway.client.get("/api/portfolios", headers={"Authorization": garbage}).status_code == 401
    rows = _rows(gateway, "auth.unauthorized")
    assert _counted(rows) == 80
    assert len({(r.details["path"], r.details["reason"]) for r in rows}) <= 4
    assert len(rows) <= 4 * spanned.count


def test_two_gateways_racing_for_the_same_rows_neither_duplicate_nor_fail(db_url: str) -> None:
    """Two gateway processes (each its own Store and pool) on one database, 16 threads:
    every refusal is counted once, into one row per key and minute, with no 5xx, and
    concurrency buys no extra password guesses."""
    servers = [serve_live(db_url) for _ in range(2)]
    try:
        running, store, aaa = servers[0]
        owner = store.create_user(AuditContext.system(), username="owner", password_hash=aaa.hash_password(PASSWORD)).id
        urls = [server[0].url for server in servers]
        clients = [httpx.Client(base_url=url, timeout=60.0) for url in urls]

        def wrong_login(i: int) -> int:
            return clients[i % 2].post("/api/auth/login", json={"username": "owner", "password": "Wrong1234"}).status_code

        def dead_token(i: int) -> int:
            return clients[i % 2].get("/api/portfolios", headers=bearer("not.a.token")).status_code

        with Minutes() as spanned, ThreadPoolExecutor(max_workers=16) as pool:
            logins = list(pool.map(wrong_login, range(60)))
            tokens = list(pool.map(dead_token, range(120)))
        for client in clients:
            client.close()
        assert set(logins) <= {401, 423} and logins.count(401) >= 1
        # The policy allows 5 wrong passwords from one client; checks in flight in
        # another process could add one each (these two share one process's guard).
        assert logins.count(401) <= 5 + 1
        assert tokens == [401] * 120

        gateway = Gateway(store=store, aaa=aaa, client=None, base_url=urls[0])  # type: ignore[arg-type]
        failed = _rows(gateway, "auth.login_failed", user_id=owner)
        held = _rows(gateway, "auth.login_locked", user_id=owner)
        assert _counted(failed) == logins.count(401) and _counted(held) == logins.count(423)
        scopes = {row.details["scope"] for row in held}  # "client" (held) and "in_flight" (busy)
        assert len(failed) <= spanned.count and len(held) <= spanned.count * len(scopes)
        unauthorized = _rows(gateway, "auth.unauthorized")
        assert _counted(unauthorized) == 120 and len(unauthorized) <= spanned.count
        with store.engine.connect() as conn:
            row = conn.execute(select(LoginFailure.failures, func.count()).group_by(LoginFailure.failures)).all()
        # One row for (owner, 127.0.0.1) whose count is every wrong password that was checked.
        assert row == [(logins.count(401), 1)]
    finally:
        for running, store, _ in servers:
            running.stop()
            store.close()
