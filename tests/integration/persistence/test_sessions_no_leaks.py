"""INT-03: sessions are always closed; the pool lends out nothing after heavy mixed use."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, make_url, select, text
from sqlalchemy.exc import DBAPIError

from engine.errors import ConfigError
from persistence import database
from persistence.database import Database, checked_out_connections, db_session, get_db
from persistence.models import ConfigEntry

USES = 1000


class Boom(Exception):
    """Raised on purpose mid-transaction."""


@pytest.fixture
def default_db(db_url: str) -> Iterator[database.SyncDatabase]:
    configured = database.configure(db_url)
    try:
        yield configured
    finally:
        database.reset_default()


def _request_via_get_db(i: int) -> None:
    """What FastAPI does with a generator dependency, including a handler that raises."""
    dependency = get_db()
    session = next(dependency)
    session.add(ConfigEntry(key=f"get_db-{i}", value=i))
    if i % 3 == 0:
        try:
            dependency.throw(Boom("handler failed"))
        except Boom:
            return
        raise AssertionError("get_db swallowed the handler's exception")
    with pytest.raises(StopIteration):
        next(dependency)


def _request_via_context_manager(i: int) -> None:
    try:
        with db_session() as session:
            session.add(ConfigEntry(key=f"ctx-{i}", value=i))
            session.flush()
            if i % 3 == 0:
                raise Boom("mid-transaction failure")
    except Boom:
        pass


def test_a_thousand_sync_and_a_thousand_async_uses_leak_no_connection(
    default_db: database.SyncDatabase, db_url: str
) -> None:
    for i in range(USES):
        (_request_via_get_db if i % 2 else _request_via_context_manager)(i)
    assert checked_out_connections(default_db.engine) == 0

    async_db = Database(db_url)

    async def one(i: int) -> None:
        try:
            async with async_db.session() as session:
                session.add(ConfigEntry(key=f"async-{i}", value=i))
                await session.flush()
                if i % 3 == 0:
                    raise Boom("async failure")
        except Boom:
            pass

    async def run_all() -> tuple[int, int]:
        for start in range(0, USES, 50):  # 50 concurrent at a time
            await asyncio.gather(*(one(i) for i in range(start, start + 50)))
        leaked = async_db.checked_out()
        async with async_db.session() as session:
            committed = await session.scalar(
                select(func.count()).select_from(ConfigEntry).where(ConfigEntry.key.like("async-%"))
            )
        await async_db.dispose()
        return leaked, int(committed or 0)

    leaked, async_committed = asyncio.run(run_all())
    assert leaked == 0

    # Commits and rollbacks really happened: the raising third of each kind left nothing.
    with db_session() as session:
        sync_committed = session.scalar(
            select(func.count()).select_from(ConfigEntry).where(~ConfigEntry.key.like("async-%"))
        )
    expected = sum(1 for i in range(USES) if i % 3 != 0)
    assert sync_committed == expected
    assert async_committed == expected
    assert checked_out_connections(default_db.engine) == 0


def test_get_db_without_a_configured_database_is_a_clear_config_error() -> None:
    database.reset_default()
    with pytest.raises(ConfigError, match="no database configured"):
        next(get_db())


def test_sqlite_connections_get_wal_foreign_keys_and_busy_timeout(sqlite_db_url: str) -> None:
    engine = database.make_engine(sqlite_db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == database.SQLITE_BUSY_TIMEOUT_MS
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
    finally:
        engine.dispose()


def test_postgres_engines_get_a_bounded_pool_that_pings_only_idle_connections(
    postgres_db_url: str, postgres_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"lts-ping-{uuid.uuid4().hex[:8]}"
    url = make_url(postgres_db_url).update_query_dict({"application_name": name})
    engine = database.make_engine(url)
    try:
        assert engine.pool._pre_ping is False  # noqa: SLF001 - no round trip per checkout
        assert engine.pool.size() == database.POSTGRES_POOL_SIZE
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1

        # A connection used moments ago is not pinged: killed by the server, its next use
        # fails and invalidates it (the Store's reads retry once on that).
        _terminate(postgres_server, name)
        with pytest.raises(DBAPIError) as failed:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        assert failed.value.connection_invalidated

        # A connection idle longer than the threshold is pinged at checkout and replaced.
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
        monkeypatch.setattr(database, "POSTGRES_PING_AFTER_IDLE_S", 0.0)
        _terminate(postgres_server, name)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def _terminate(server_url: str, application_name: str) -> None:
    """Have the server kill this test's connections (as a restart would)."""
    import psycopg

    libpq = make_url(server_url).set(drivername="postgresql", query={}).render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                     (application_name,))


@pytest.mark.parametrize(
    ("url", "message"),
    [("mysql://u@h/db", "unsupported database 'mysql'"), ("not a url", "cannot parse")],
)
def test_bad_database_urls_name_the_config_key(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"database_url: .*{message}"):
        database.make_engine(url)


def test_postgresql_urls_without_a_driver_use_psycopg3() -> None:
    assert database.parse_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert database.async_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
