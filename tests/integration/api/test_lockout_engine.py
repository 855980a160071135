"""The lockout, the unlock and the aggregated denial rows WITH THE ENGINE RUNNING: the
gateway's writes then go through the persistence actor (the policy, the failed-login
result and the aggregated audit writes cross a Ray call), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from persistence.enums import Role
from persistence.records import AuditContext, PageRequest
from tests.integration.actors.engine_helpers import engine_config
from tests.integration.api.conftest import PASSWORD, TEST_SECRET, bearer, make_aaa
from tests.integration.api.e2e_support import engine_and_gateway

pytestmark = pytest.mark.ray


def test_lockout_unlock_and_aggregated_denials_through_the_persistence_actor(
    ray_session, db_url: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"  # the database file must not lie inside data_dir
    data_dir.mkdir()
    config = engine_config(db_url, data_dir, jwt_secret=TEST_SECRET)
    with engine_and_gateway(config) as live:
        store, client = live.store, live.journey.client
        aaa = make_aaa()
        for name, role in (("owner", Role.USER), ("root", Role.ADMIN)):
            store.create_user(AuditContext.system(), username=name, password_hash=aaa.hash_password(PASSWORD), role=role)
        owner = store.find_user("owner").id
        statuses = [
            client.post("/api/auth/login", json={"username": "owner", "password": "Wrong1234"}).status_code
            for _ in range(7)
        ]
        assert statuses == [401] * 5 + [423] * 2
        failed = store.list_audit_logs(action="auth.login_failed", user_id=owner).items
        assert sum(row.count for row in failed) == 5 and len(failed) <= 2
        assert [row.details["scope"] for row in store.list_audit_logs(action="auth.lockout").items] == ["client"]

        admin = client.post("/api/auth/login", json={"username": "root", "password": PASSWORD})
        assert admin.status_code == 200, admin.text
        headers = bearer(admin.json()["access_token"])
        listed = {u["username"]: u for u in client.get("/api/users", headers=headers).json()["items"]}
        assert listed["owner"]["held_clients"] == 1
        unlocked = client.post(f"/api/users/{owner}/unlock", headers=headers)
        assert unlocked.status_code == 200 and unlocked.json()["held_clients"] == 0
        assert client.post("/api/auth/login", json={"username": "owner", "password": PASSWORD}).status_code == 200

        for _ in range(30):
            assert client.get("/api/portfolios", headers=bearer("dead.token.here")).status_code == 401
        rows = store.list_audit_logs(action="auth.unauthorized", page=PageRequest(limit=500)).items
        assert sum(row.count for row in rows) == 30 and len(rows) <= 2
