"""Gateway fixtures: a real app on a real database (persistence fixtures), served by a
real uvicorn on loopback (``live_gateway``) or called in-process (``gateway``), plus
helpers to make users and log them in.

bcrypt runs with 4 rounds here (the policy and the code path are the same; 12 rounds
would cost ~0.25 s per hash on this machine).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest

from api.aaa import DefaultAAA
from api.app import create_app
from api.server import RunningServer, start_in_thread
from persistence.enums import Role
from persistence.records import AuditContext, OrderIntent, PositionOpen
from persistence.store import Store

TEST_SECRET = "integration-test-signing-secret-" + "0123456789abcdef" * 2
PASSWORD = "Correct7Horse"


def make_aaa() -> DefaultAAA:
    return DefaultAAA({"bcrypt_rounds": 4}, secret=TEST_SECRET)


def base_config(db_url: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "database_url": db_url,
        "api_host": "127.0.0.1",
        "api_port": 0,
        "rate_limit_per_minute": 100_000,
        "max_body_bytes": 1_048_576,
        "cors_origins": [],
        "jwt_secret": TEST_SECRET,
        "log_level": "WARNING",
    }
    config.update(overrides)
    return config


@dataclass
class Gateway:
    """An app over a Store, with an HTTP client (in-process or over loopback)."""

    store: Store
    aaa: DefaultAAA
    client: httpx.Client
    base_url: str
    admin_token: str = ""
    users: dict[str, "UserSession"] = field(default_factory=dict)

    def make_user(self, username: str, *, role: Role = Role.USER, password: str = PASSWORD) -> int:
        """Create a user directly through the Store (admins cannot register over the API)."""
        user = self.store.create_user(
            AuditContext.system(), username=username, password_hash=self.aaa.hash_password(password), role=role
        )
        return user.id

    def login(self, username: str, password: str = PASSWORD) -> "UserSession":
        resp = self.client.post("/api/auth/login", json={"username": username, "password": password})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        me = self.client.get("/api/users/me", headers=bearer(body["access_token"])).json()
        session = UserSession(username, me["id"], body["access_token"], body["refresh_token"])
        self.users[username] = session
        return session

    def audit_count(self, **filters: Any) -> int:
        return self.store.list_audit_logs(**filters).total


@dataclass
class UserSession:
    username: str
    user_id: int
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class _SyncASGIClient(httpx.Client):
    """A sync httpx client over an ASGI app (httpx's ASGITransport is async-only)."""

    def __init__(self, app: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._async = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("10.1.2.3", 5555)), base_url="http://gateway"
        )
        super().__init__(base_url="http://gateway")

    def request(self, method: str, url: Any, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        return self._loop.run_until_complete(self._async.request(method, url, **kwargs))

    def close(self) -> None:
        self._loop.run_until_complete(self._async.aclose())
        self._loop.close()
        super().close()


@pytest.fixture
def gateway(db_url: str) -> Iterator[Gateway]:
    """The app in-process over a fresh database (SQLite and PostgreSQL)."""
    yield from _in_process(db_url)


@pytest.fixture
def sqlite_gateway(sqlite_db_url: str) -> Iterator[Gateway]:
    """The app in-process over a fresh SQLite database."""
    yield from _in_process(sqlite_db_url)


def _in_process(db_url: str, **overrides: Any) -> Iterator[Gateway]:
    store = Store.from_url(db_url)
    aaa = make_aaa()
    app = create_app(base_config(db_url, **overrides), store=store, aaa=aaa)
    client = _SyncASGIClient(app)
    try:
        yield Gateway(store=store, aaa=aaa, client=client, base_url="http://gateway")
    finally:
        client.close()
        store.close()


def serve_live(db_url: str, *, engine: Any | None = None, **overrides: Any) -> tuple[RunningServer, Store, DefaultAAA]:
    """A real uvicorn gateway on an ephemeral loopback port. ``engine``: an
    ``api.engine_handle.EngineHandle`` (the runtime's seed-flow test passes its own);
    ``overrides``: config keys."""
    store = Store.from_url(db_url)
    aaa = make_aaa()
    running = start_in_thread(base_config(db_url, **overrides), store=store, aaa=aaa, engine=engine)
    return running, store, aaa


@contextmanager
def served_gateway(db_url: str, *, timeout_s: float = 10.0, **overrides: Any) -> Iterator[Gateway]:
    """:func:`serve_live` with an HTTP client, everything stopped and closed afterwards."""
    running, store, aaa = serve_live(db_url, **overrides)
    client = httpx.Client(base_url=running.url, timeout=timeout_s)
    try:
        yield Gateway(store=store, aaa=aaa, client=client, base_url=running.url)
    finally:
        client.close()
        running.stop()
        store.close()


@pytest.fixture
def live_gateway(db_url: str) -> Iterator[Gateway]:
    """The app served by a real uvicorn on 127.0.0.1 (ephemeral port), real database."""
    with served_gateway(db_url) as gateway:
        yield gateway


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def module_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One fresh database with the schema per test module and backend, for modules whose
    tests use their own users and so can share it (saves a schema + server per test)."""
    from sqlalchemy import make_url

    from persistence.database import make_engine
    from persistence.schema import create_schema

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('api-db') / 'lts.db'}"
        schema = None
    else:
        import psycopg

        server = request.getfixturevalue("postgres_server")
        schema = f"lts_test_api_{uuid.uuid4().hex[:10]}"
        conninfo = make_url(server).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        url = make_url(server).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    engine = make_engine(url)
    create_schema(engine)
    engine.dispose()
    try:
        yield url
    finally:
        if schema is not None:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="module")
def shared_live_gateway(module_db_url: str) -> Iterator[Gateway]:
    """One real uvicorn gateway per module and backend (tests make unique users)."""
    with served_gateway(module_db_url) as gateway:
        yield gateway


def unique(prefix: str) -> str:
    """A username no other test in a shared database uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ------------------------------------------------------------------------- test data


@dataclass(frozen=True)
class TradingData:
    """A portfolio with an asset, one filled order and its open position, owned by a user."""

    portfolio_id: int
    asset_id: int
    order_id: int
    position_id: int


def seed_trading(gateway: Gateway, owner: UserSession, name: str) -> TradingData:
    """Create a portfolio and asset over the API, then an order and a position the way
    the engine records them (through the Store, as the system)."""
    resp = gateway.client.post(
        "/api/portfolios", headers=owner.headers, json={"name": name, "total_capital": "10000"}
    )
    assert resp.status_code == 201, resp.text
    portfolio_id = resp.json()["id"]
    resp = gateway.client.post(
        f"/api/portfolios/{portfolio_id}/assets", headers=owner.headers, json={"symbol": "EURUSD"}
    )
    assert resp.status_code == 201, resp.text
    asset_id = resp.json()["id"]
    system = AuditContext.system()
    client_id = f"{name}-order-1"
    order = gateway.store.record_order_intent(
        system,
        OrderIntent(
            client_order_id=client_id, portfolio_id=portfolio_id, asset_id=asset_id, side="buy", quantity=Decimal("1000")
        ),
    )
    gateway.store.mark_order_filled(system, client_id, {"filled_price": Decimal("1.1012"), "broker_order_id": "b-1"})
    position = gateway.store.open_position(
        system,
        PositionOpen(
            portfolio_id=portfolio_id,
            asset_id=asset_id,
            opening_client_order_id=client_id,
            side="buy",
            quantity=Decimal("1000"),
            entry_price=Decimal("1.1012"),
        ),
    )
    gateway.store.record_statistic(system, kind="step", name="equity", value=Decimal("10000"), portfolio_id=portfolio_id)
    gateway.store.record_billing(system, user_id=owner.user_id, kind="usage", amount=Decimal("1.25"))
    return TradingData(portfolio_id, asset_id, order.id, position.id)
