"""Lockout that anonymous requests cannot turn against an account's owner, and an
administrator's unlock (API and ``lts users unlock``), on SQLite and PostgreSQL.

Policy (``persistence.lockout``): failures count per (account, client address) with a
doubling backoff; a much higher account-wide ceiling holds back only clients that never
logged into the account."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from api.aaa import DefaultAAA
from api.app import create_app
from persistence.enums import Role
from persistence.records import AuditContext
from persistence.store import Store
from tests.integration.api._clients import AddressedASGIClient, loopback_client
from tests.integration.api.conftest import PASSWORD, TEST_SECRET, Gateway, base_config, bearer

WRONG = "Wrong7Password"
REPO = Path(__file__).resolve().parents[3]


@dataclass
class Clients:
    """One app over a fresh database, and clients at chosen addresses."""

    app: Any
    store: Store
    aaa: DefaultAAA
    db_url: str
    _open: dict[str, AddressedASGIClient] = field(default_factory=dict)

    def at(self, ip: str) -> AddressedASGIClient:
        if ip not in self._open:
            self._open[ip] = AddressedASGIClient(self.app, ip)
        return self._open[ip]

    def user(self, name: str, role: Role = Role.USER) -> int:
        return self.store.create_user(
            AuditContext.system(), username=name, password_hash=self.aaa.hash_password(PASSWORD), role=role
        ).id

    def login(self, ip: str, name: str, password: str = PASSWORD) -> Any:
        return self.at(ip).post("/api/auth/login", json={"username": name, "password": password})

    def token(self, ip: str, name: str) -> dict[str, str]:
        resp = self.login(ip, name)
        assert resp.status_code == 200, resp.text
        return bearer(resp.json()["access_token"])

    def close(self) -> None:
        for client in self._open.values():
            client.close()


def _clients(db_url: str, **aaa_params: Any) -> Iterator[Clients]:
    store = Store.from_url(db_url)
    aaa = DefaultAAA({"bcrypt_rounds": 4, **aaa_params}, secret=TEST_SECRET)
    clients = Clients(create_app(base_config(db_url), store=store, aaa=aaa), store, aaa, db_url)
    try:
        yield clients
    finally:
        clients.close()
        store.close()


@pytest.fixture
def clients(db_url: str) -> Iterator[Clients]:
    """The default policy: 5 failures per client, 60 s first backoff, 100 per account."""
    yield from _clients(db_url)


@pytest.fixture
def small_ceiling(db_url: str) -> Iterator[Clients]:
    """An account-wide ceiling of 6 failures (and 3 per client), so a test can reach it."""
    yield from _clients(db_url, max_failed_logins=3, account_max_failed_logins=6)


def _listed(clients: Clients, admin: dict[str, str], user_id: int) -> dict[str, Any]:
    resp = clients.at("192.0.2.1").get("/api/users", headers=admin)
    assert resp.status_code == 200, resp.text
    (row,) = [u for u in resp.json()["items"] if u["id"] == user_id]
    return row


def test_an_attacker_at_one_address_cannot_lock_the_owner_out(clients: Clients) -> None:
    owner_id = clients.user("owner")
    clients.user("root", Role.ADMIN)
    admin = clients.token("192.0.2.1", "root")
    attacker = "203.0.113.66"
    statuses = [clients.login(attacker, "owner", WRONG).status_code for _ in range(10)]
    assert statuses == [401] * 5 + [423] * 5
    held = clients.login(attacker, "owner")  # even the right password, from the attacker's address
    assert held.status_code == 423 and "from this client" in held.json()["error"]["message"]
    assert 1 <= int(held.headers["retry-after"]) <= 60
    # The owner, from an address that never failed (and never logged in before), gets in.
    assert clients.login("198.51.100.7", "owner").status_code == 200
    row = _listed(clients, admin, owner_id)
    assert (row["is_locked"], row["locked_until"], row["held_clients"]) == (False, None, 1)


def test_on_a_real_server_each_loopback_source_address_is_its_own_client(live_gateway: Gateway) -> None:
    owner_id = live_gateway.make_user("owner")
    attacker = loopback_client(live_gateway.base_url, "127.0.0.2")
    owner = loopback_client(live_gateway.base_url, "127.0.0.3")
    try:
        for _ in range(5):
            assert attacker.post("/api/auth/login", json={"username": "owner", "password": WRONG}).status_code == 401
        assert attacker.post("/api/auth/login", json={"username": "owner", "password": PASSWORD}).status_code == 423
        assert owner.post("/api/auth/login", json={"username": "owner", "password": PASSWORD}).status_code == 200
    finally:
        attacker.close()
        owner.close()
    (failed,) = live_gateway.store.list_audit_logs(action="auth.lockout").items
    assert (failed.ip, failed.user_id, failed.details["scope"]) == ("127.0.0.2", owner_id, "client")


def test_a_distributed_attack_holds_new_clients_but_not_the_owners_known_one(small_ceiling: Clients) -> None:
    c = small_ceiling
    owner_id = c.user("owner")
    c.user("root", Role.ADMIN)
    admin = c.token("192.0.2.1", "root")
    c.token("198.51.100.7", "owner")  # the owner's usual client: known from now on
    for i in range(6):  # six addresses, one wrong password each: no client reaches its own limit
        assert c.login(f"203.0.113.{i}", "owner", WRONG).status_code == 401
    fresh = c.login("192.0.2.99", "owner")  # a client never seen: held by the account-wide hold
    assert fresh.status_code == 423 and "account locked" in fresh.json()["error"]["message"]
    assert c.login("198.51.100.7", "owner").status_code == 200  # the known client is not
    row = _listed(c, admin, owner_id)
    assert row["is_locked"] is True and row["locked_until"] is not None and row["failed_login_count"] == 6
    lockouts = c.store.list_audit_logs(action="auth.lockout").items
    assert [r.details["scope"] for r in lockouts] == ["account"]

    resp = c.at("192.0.2.1").post(f"/api/users/{owner_id}/unlock", headers=admin)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["is_locked"], body["locked_until"], body["held_clients"], body["failed_login_count"]) == (False, None, 0, 0)
    assert c.login("192.0.2.99", "owner").status_code == 200
    (audit,) = c.store.list_audit_logs(action="user.unlock").items
    assert (audit.target_id, audit.ip) == (str(owner_id), "192.0.2.1")
    assert audit.user_id == c.store.find_user("root").id


def test_unlock_is_for_admins_only_and_404s_an_unknown_account(clients: Clients) -> None:
    owner_id = clients.user("owner")
    clients.user("root", Role.ADMIN)
    admin = clients.token("192.0.2.1", "root")
    user = clients.token("192.0.2.2", "owner")
    for _ in range(5):
        clients.login("203.0.113.5", "owner", WRONG)
    refused = clients.at("192.0.2.2").post(f"/api/users/{owner_id}/unlock", headers=user)
    assert refused.status_code == 403
    assert clients.at("192.0.2.1").post("/api/users/987654/unlock", headers=admin).status_code == 404
    assert clients.at("192.0.2.1").post("/api/users/0/unlock", headers=admin).status_code == 422
    assert clients.store.list_audit_logs(action="user.unlock").total == 0
    assert clients.login("203.0.113.5", "owner").status_code == 423  # still held


def test_lts_users_unlock_lifts_the_holds(clients: Clients, capsys: pytest.CaptureFixture[str]) -> None:
    from actors.cli import main

    clients.user("owner")
    for _ in range(5):
        clients.login("203.0.113.5", "owner", WRONG)
    assert clients.login("203.0.113.5", "owner").status_code == 423

    assert main(["users", "unlock", "owner", "--database_url", clients.db_url]) == 0
    out = capsys.readouterr().out
    assert "user 'owner'" in out and "unlocked" in out
    assert clients.login("203.0.113.5", "owner").status_code == 200
    (audit,) = clients.store.list_audit_logs(action="user.unlock").items
    assert (audit.user_id, audit.user_agent, audit.details["client_holds_cleared"]) == (None, "lts users unlock", 1)

    assert main(["users", "unlock", "nobody", "--database_url", clients.db_url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["lts users: error: user 'nobody' not found"]


def test_the_console_entry_point_runs_users_unlock(clients: Clients) -> None:
    clients.user("owner")
    for _ in range(5):
        clients.login("203.0.113.5", "owner", WRONG)
    result = subprocess.run(
        [sys.executable, "-m", "actors.cli", "users", "unlock", "owner", "--database_url", clients.db_url],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert clients.login("203.0.113.5", "owner").status_code == 200
