"""Property-based fuzz of the whole OpenAPI schema, in-process (schemathesis + hypothesis):
whatever the generator sends, positive or negative, the gateway never answers 5xx —
authenticated as a normal user and as an admin, on SQLite and on PostgreSQL (issue 20).

Bounded: ``MAX_EXAMPLES`` per operation, role and database keeps the whole battery near
a minute and a half on this machine. A normal user's token reaches every route's
ownership checks and the admin-only refusals; an admin's reaches every route's logic.
Logout gets a fresh login each time, so the shared tokens survive.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from api.app import create_app, openapi_document
from persistence.store import Store
from tests.integration.api.conftest import PASSWORD, Gateway, _SyncASGIClient, base_config, make_aaa, seed_trading

MAX_EXAMPLES = 8
ENGINE_ROUTES = {("POST", "/api/trading/execute"), ("GET", "/api/engine/status")}
ROLES = {"user": "user1", "admin": "root"}


@pytest.fixture(scope="module")
def fuzz_target(module_db_url: str) -> Iterator[dict[str, Any]]:
    """An app on a fresh database (SQLite, then PostgreSQL) with an admin, a user and
    some trading rows."""
    store = Store.from_url(module_db_url)
    aaa = make_aaa()
    app = create_app(base_config(module_db_url), store=store, aaa=aaa)
    client = _SyncASGIClient(app)
    gateway = Gateway(store=store, aaa=aaa, client=client, base_url="http://gateway")
    gateway.make_user("root", role="admin")
    gateway.make_user("user1")
    seed_trading(gateway, gateway.login("user1"), "fuzzed")
    gateway.login("root")
    try:
        yield {"app": app, "gateway": gateway}
    finally:
        client.close()
        store.close()


# The schema is the app's own OpenAPI document (built without a database); requests go
# to the fixture's app (``app=`` below). schemathesis' lazy ``from_fixture`` loader does
# not work with pytest 9 (it reads a removed ``Function._nodeid``).
schema = schemathesis.openapi.from_dict(openapi_document())


@schema.parametrize()
@pytest.mark.parametrize("role", sorted(ROLES))
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(case: Any, role: str, fuzz_target: dict[str, Any]) -> None:
    gateway: Gateway = fuzz_target["gateway"]
    if case.path == "/api/auth/logout":
        token = gateway.login(ROLES[role]).access_token
    else:
        token = gateway.users[ROLES[role]].access_token
    headers = {"Authorization": f"Bearer {token}"}
    if case.headers and "Authorization" in case.headers:
        headers = {}  # the generator is testing the auth header itself
    response = case.call(headers=headers, app=fuzz_target["app"])
    if (case.method, case.path) in ENGINE_ROUTES and response.status_code == 503:
        # No engine runs in this test: the documented answer (ERROR_RESPONSES), reached
        # only after input validation and the ownership check.
        assert response.json()["error"]["code"] == "engine_unavailable"
        return
    case.validate_response(response, checks=[not_a_server_error])


def test_schema_covers_every_route(fuzz_target: dict[str, Any]) -> None:
    """The fuzz above runs over the live schema: make sure it is the full API."""
    paths = fuzz_target["app"].openapi()["paths"]
    for path in (
        "/api/auth/register", "/api/auth/login", "/api/auth/refresh", "/api/auth/logout",
        "/api/users/me", "/api/users", "/api/users/{user_id}",
        "/api/portfolios", "/api/portfolios/{portfolio_id}", "/api/portfolios/{portfolio_id}/activate",
        "/api/portfolios/{portfolio_id}/deactivate", "/api/portfolios/{portfolio_id}/assets",
        "/api/assets/{asset_id}", "/api/assets/{asset_id}/strategy", "/api/assets/{asset_id}/broker",
        "/api/assets/{asset_id}/pipeline", "/api/assets/{asset_id}/allocation",
        "/api/assets/{asset_id}/activate", "/api/assets/{asset_id}/deactivate",
        "/api/trading/execute", "/api/orders", "/api/positions", "/api/statistics",
        "/api/audit-logs", "/api/config", "/api/billing", "/api/billing/me", "/api/plugins",
        "/api/engine/status", "/health",
    ):
        assert path in paths, path
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert any(code.startswith("2") for code in operation["responses"]), (method, path)
    assert PASSWORD  # the fixture users log in with the shared test password
