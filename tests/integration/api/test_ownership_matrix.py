"""RBAC and ownership: users A and B and an admin x every object endpoint x read /
update / delete x own / other / nonexistent id, on SQLite and PostgreSQL.

A user gets 404 for anything not theirs (indistinguishable from a missing id, so ids
cannot be probed); an admin reaches everything; every admin-only call by a user is 403.
No cross-user read or write may succeed: the victim's rows are compared before and after.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from engine.types import utcnow
from tests.integration.api.conftest import Gateway, TradingData, UserSession, seed_trading

MISSING = 987_654_321


@dataclass(frozen=True)
class Call:
    kind: str  # read | update | delete
    method: str
    path: str
    body: dict[str, Any] | None = None
    ok: int = 200


def object_calls(data: TradingData, tag: str) -> list[Call]:
    """Every endpoint that names an object, in an order that ends with the deletes."""
    p, a, o, q = data.portfolio_id, data.asset_id, data.order_id, data.position_id
    return [
        Call("read", "GET", f"/api/portfolios/{p}"),
        Call("read", "GET", f"/api/portfolios/{p}/assets"),
        Call("read", "GET", f"/api/assets/{a}"),
        Call("read", "GET", f"/api/orders/{o}"),
        Call("read", "GET", f"/api/positions/{q}"),
        Call("update", "PUT", f"/api/portfolios/{p}", {"description": f"changed by {tag}"}),
        Call("update", "POST", f"/api/portfolios/{p}/assets", {"symbol": "GBPUSD"}, ok=201),
        Call("update", "PUT", f"/api/assets/{a}", {"max_positions": 3}),
        Call("update", "PATCH", f"/api/assets/{a}/strategy", {"plugin": "sma_cross", "config": {"fast": 3}}),
        Call("update", "PATCH", f"/api/assets/{a}/broker", {"config": {}}),
        Call("update", "PATCH", f"/api/assets/{a}/pipeline", {"config": {}}),
        Call("update", "PATCH", f"/api/assets/{a}/allocation", {"allocated_capital": "123.45"}),
        Call("update", "POST", f"/api/assets/{a}/activate"),
        Call("update", "POST", f"/api/assets/{a}/deactivate"),
        Call("update", "POST", f"/api/portfolios/{p}/activate"),
        Call("update", "POST", f"/api/portfolios/{p}/deactivate"),
        Call("delete", "DELETE", f"/api/assets/{a}"),
        Call("delete", "DELETE", f"/api/portfolios/{p}"),
    ]


def missing_calls() -> list[Call]:
    return object_calls(TradingData(MISSING, MISSING, MISSING, MISSING), "nobody")


def admin_only_calls(target_user: int) -> list[Call]:
    return [
        Call("read", "GET", "/api/users"),
        Call("update", "PATCH", f"/api/users/{target_user}", {"role": "admin"}),
        Call("read", "GET", "/api/audit-logs"),
        Call("read", "GET", "/api/config"),
        Call("read", "GET", "/api/billing"),
    ]


def snapshot(gateway: Gateway, data: TradingData) -> tuple[Any, ...]:
    """The victim's rows as the engine (system) sees them."""
    store = gateway.store
    return (
        store.get_portfolio(data.portfolio_id),
        store.get_asset(data.asset_id),
        store.get_order(data.order_id),
        store.get_position(data.position_id),
        store.list_assets(portfolio_id=data.portfolio_id).total,
    )


@pytest.fixture
def world(gateway: Gateway) -> dict[str, UserSession]:
    for name, role in (("alice", "user"), ("bob", "user"), ("root", "admin")):
        gateway.make_user(name, role=role)
    return {name: gateway.login(name) for name in ("alice", "bob", "root")}


def _run(gateway: Gateway, who: UserSession, calls: list[Call], expect: Any, label: str, wrong: list[str]) -> None:
    for call in calls:
        resp = gateway.client.request(call.method, call.path, headers=who.headers, json=call.body)
        wanted = expect(call)
        if resp.status_code != wanted:
            wrong.append(f"{label}: {who.username} {call.method} {call.path} -> {resp.status_code}, expected {wanted}: {resp.text[:160]}")
        elif resp.status_code >= 400:
            assert resp.json()["error"]["code"] in ("not_found", "forbidden"), resp.text


def test_ownership_matrix(gateway: Gateway, world: dict[str, UserSession]) -> None:
    alice, bob, root = world["alice"], world["bob"], world["root"]
    wrong: list[str] = []

    # own: a user (and the admin) can do everything to their own objects
    for who in (alice, bob, root):
        data = seed_trading(gateway, who, f"own-{who.username}")
        _run(gateway, who, object_calls(data, who.username), lambda c: c.ok, "own", wrong)

    # other: a user can neither see nor touch another user's objects
    for attacker, victim in ((alice, bob), (bob, alice)):
        data = seed_trading(gateway, victim, f"victim-of-{attacker.username}")
        before, since = snapshot(gateway, data), utcnow()
        _run(gateway, attacker, object_calls(data, attacker.username), lambda c: 404, "other", wrong)
        assert snapshot(gateway, data) == before, f"{attacker.username} changed {victim.username}'s data"
        assert gateway.store.list_audit_logs(user_id=attacker.user_id, since=since).total == 0

    # other, as admin: everything is reachable
    data = seed_trading(gateway, alice, "admin-target")
    _run(gateway, root, object_calls(data, "root"), lambda c: c.ok, "admin-other", wrong)

    # nonexistent ids: 404 for everyone
    for who in (alice, bob, root):
        _run(gateway, who, missing_calls(), lambda c: 404, "missing", wrong)

    # admin-only endpoints: 403 for users (and nothing changes), 200 for the admin
    for who in (alice, bob):
        _run(gateway, who, admin_only_calls(who.user_id), lambda c: 403, "admin-only", wrong)
    assert gateway.store.get_user(alice.user_id).role == "user"
    _run(gateway, root, admin_only_calls(bob.user_id), lambda c: 200, "admin-only as admin", wrong)

    assert not wrong, "\n".join(wrong)


def test_lists_and_filters_never_leak(gateway: Gateway, world: dict[str, UserSession]) -> None:
    alice, bob, root = world["alice"], world["bob"], world["root"]
    mine = seed_trading(gateway, alice, "alice-data")
    theirs = seed_trading(gateway, bob, "bob-data")
    client = gateway.client

    def ids(path: str, who: UserSession, **params: Any) -> set[int]:
        resp = client.get(path, headers=who.headers, params=params)
        assert resp.status_code == 200, resp.text
        return {item["id"] for item in resp.json()["items"]}

    assert ids("/api/portfolios", alice) == {mine.portfolio_id}
    assert ids("/api/portfolios", alice, owner_id=bob.user_id) == set()
    assert ids("/api/orders", alice) == {mine.order_id}
    assert ids("/api/orders", alice, portfolio_id=theirs.portfolio_id) == set()
    assert ids("/api/orders", alice, asset_id=theirs.asset_id) == set()
    assert ids("/api/positions", alice) == {mine.position_id}
    assert ids("/api/positions", alice, portfolio_id=theirs.portfolio_id) == set()
    assert {s for s in ids("/api/statistics/records", alice)} and ids("/api/statistics/records", alice, portfolio_id=theirs.portfolio_id) == set()
    billing = client.get("/api/billing/me", headers=alice.headers).json()["items"]
    assert billing and {b["user_id"] for b in billing} == {alice.user_id}
    # The admin sees both users' objects.
    assert ids("/api/portfolios", root) >= {mine.portfolio_id, theirs.portfolio_id}
    assert ids("/api/orders", root) >= {mine.order_id, theirs.order_id}
    assert ids("/api/portfolios", root, owner_id=bob.user_id) == {theirs.portfolio_id}
    all_billing = client.get("/api/billing", headers=root.headers).json()["items"]
    assert {b["user_id"] for b in all_billing} >= {alice.user_id, bob.user_id}
    # /api/users/me is always the caller.
    assert client.get("/api/users/me", headers=bob.headers).json()["id"] == bob.user_id


def test_orders_filters_and_pagination(gateway: Gateway, world: dict[str, UserSession]) -> None:
    from decimal import Decimal

    from persistence.records import AuditContext, OrderIntent

    alice = world["alice"]
    data = seed_trading(gateway, alice, "paged")
    for i in range(7):
        gateway.store.record_order_intent(
            AuditContext.system(),
            OrderIntent(client_order_id=f"paged-{i}", portfolio_id=data.portfolio_id, asset_id=data.asset_id, side="sell", quantity=Decimal("1")),
        )
    client = gateway.client
    first = client.get("/api/orders", headers=alice.headers, params={"page_size": 3}).json()
    assert first["total"] == 8 and len(first["items"]) == 3 and first["page"] == 1
    third = client.get("/api/orders", headers=alice.headers, params={"page_size": 3, "page": 3}).json()
    assert len(third["items"]) == 2
    seen = {o["id"] for p in (1, 2, 3) for o in client.get("/api/orders", headers=alice.headers, params={"page_size": 3, "page": p}).json()["items"]}
    assert len(seen) == 8
    pending = client.get("/api/orders", headers=alice.headers, params={"status": "pending"}).json()
    assert pending["total"] == 7 and {o["status"] for o in pending["items"]} == {"pending"}
    both = client.get("/api/orders", headers=alice.headers, params=[("status", "pending"), ("status", "filled")]).json()
    assert both["total"] == 8
    future = client.get("/api/orders", headers=alice.headers, params={"since": "2999-01-01T00:00:00Z"}).json()
    assert future["total"] == 0
    # The page size is capped: asking for more than 500 is refused, not silently huge.
    too_big = client.get("/api/orders", headers=alice.headers, params={"page_size": 501})
    assert too_big.status_code == 422 and too_big.json()["error"]["details"][0]["loc"] == ["query", "page_size"]
    bad_status = client.get("/api/orders", headers=alice.headers, params={"status": "bogus"})
    assert bad_status.status_code == 422
