"""The PostgreSQL pool survives its connections being killed by the server (as a restart
does), without pinging busy connections at every checkout.

The server kills this test's connections only (``pg_terminate_backend`` on a unique
``application_name``): other tests share the server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import make_url

from persistence.database import checked_out_connections
from persistence.records import AuditContext, PortfolioCreate
from persistence.store import Store
from tests.fixtures.db_fixtures import seed_owner_portfolio

pytestmark = pytest.mark.postgres


@pytest.fixture
def named_store(postgres_db_url: str) -> Iterator[tuple[Store, str]]:
    name = f"lts-disconnect-{uuid.uuid4().hex[:8]}"
    url = make_url(postgres_db_url).update_query_dict({"application_name": name})
    store = Store.from_url(url)
    try:
        yield store, name
    finally:
        store.close()


def _kill_connections(server_url: str, application_name: str) -> int:
    libpq = make_url(server_url).set(drivername="postgresql", query={}).render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchone()
    return int(killed[0]) if killed else 0


def test_reads_survive_the_server_killing_every_pooled_connection(
    named_store: tuple[Store, str], postgres_server: str
) -> None:
    store, name = named_store
    seeded = seed_owner_portfolio(store)
    assert store.get_portfolio(seeded.portfolio_id).id == seeded.portfolio_id  # pool warm

    assert _kill_connections(postgres_server, name) >= 1
    # The first read meets a dead connection: it is retried on a fresh one, no error.
    assert store.get_portfolio(seeded.portfolio_id).id == seeded.portfolio_id
    assert store.login_state(seeded.owner_id, "no-such-jti") is not None
    assert store.list_portfolios(owner_id=seeded.owner_id).total == 1
    assert checked_out_connections(store.engine) == 0


def test_a_write_after_the_server_killed_the_pool_fails_cleanly_then_works(
    named_store: tuple[Store, str], postgres_server: str
) -> None:
    store, name = named_store
    seeded = seed_owner_portfolio(store)
    assert _kill_connections(postgres_server, name) >= 1
    # A write is not retried blindly (it could have committed): at most the first attempt
    # fails, and the pool was invalidated by it, so the next attempt (a resend with the
    # same request id, as the persistence client does) succeeds once.
    ctx = AuditContext.system(request_id=f"after-kill-{uuid.uuid4().hex[:6]}")
    spec = PortfolioCreate(name="after-kill", total_capital=5)
    try:
        created = store.create_portfolio(ctx, spec, owner_id=seeded.owner_id)
    except Exception:  # noqa: BLE001 - the dead connection's error; resend below
        created = store.create_portfolio(ctx, spec, owner_id=seeded.owner_id)
    again = store.create_portfolio(ctx, spec, owner_id=seeded.owner_id)
    assert again.id == created.id
    assert store.list_portfolios(owner_id=seeded.owner_id).total == 2
