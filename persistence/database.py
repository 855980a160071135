"""Engines and sessions: one function builds an engine from a URL; nothing at import time.

* ``make_engine(url)``: SQLite gets WAL, foreign keys, a busy timeout and
  ``synchronous=NORMAL``; PostgreSQL gets a bounded, recycled pool whose connections are
  pinged only after they sat idle (see ``_ping_idle_connections``).
* ``make_session_factory(engine)``: the sync ``sessionmaker``.
* ``configure(url)`` installs the process-wide default used by ``get_db()`` (FastAPI
  dependency) and ``db_session()`` (context manager). Ray workers import this module
  freely: nothing is built until ``configure`` is called.
* ``Database``: the async side (``AsyncSession``) for async callers.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from engine.errors import ConfigError

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_POOL_SIZE = 10
POSTGRES_MAX_OVERFLOW = 20
POSTGRES_POOL_RECYCLE_S = 1800
# A pooled PostgreSQL connection idle longer than this is pinged before reuse. Busy
# connections (reused within milliseconds) are not: ``pool_pre_ping`` paid a round trip at
# every checkout, a third of a simple API read. A connection that dies while in use (server
# restarted under load) is handled optimistically: SQLAlchemy invalidates the whole pool on
# the disconnect error, and Store reads retry once (``persistence.store.reads``).
POSTGRES_PING_AFTER_IDLE_S = 10.0

# Engine execution option that makes SQLite transactions "BEGIN IMMEDIATE": a writer
# takes the write lock up front and waits (busy_timeout) instead of failing with
# "database is locked" when it later upgrades a read lock held by another process.
SQLITE_IMMEDIATE = "lts_sqlite_begin_immediate"


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_dumps(value: Any) -> str:
    """JSON for JSON columns: Decimals as exact strings, datetimes as ISO 8601."""
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def parse_url(url: str | URL) -> URL:
    """Parse a database URL, normalising bare drivers (``postgresql://`` -> psycopg 3)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"database_url: cannot parse {str(url)!r}: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"database_url: unsupported database {backend!r} "
            "(use sqlite:///path.db or postgresql+psycopg://user@host/db)"
        )
    return parsed


def async_url(url: str | URL) -> URL:
    """The async-driver form of ``url`` (aiosqlite for SQLite, psycopg for PostgreSQL)."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    return parsed


def _is_memory_sqlite(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or "mode=memory" in str(url)


SQLITE_FILE_MODE = 0o600
SQLITE_DIR_MODE = 0o700
_SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def prepare_sqlite_file(url: str | URL) -> None:
    """Create a SQLite database file 0600 (its folder 0700 when missing) before SQLite
    opens it, and tighten an existing one that others may read: it holds password hashes.

    SQLite creates ``-wal`` and ``-shm`` with the database file's own mode, so they follow;
    existing ones are tightened too. No umask change: the process's other files are not
    ours to decide. Other URLs (PostgreSQL, in-memory, ``file:`` URIs) are left alone."""
    parsed = parse_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or _is_memory_sqlite(parsed) or not database:
        return
    if database.startswith("file:") or parsed.query.get("uri"):
        return
    path = Path(database).expanduser()
    try:
        if not path.parent.is_dir():
            path.parent.mkdir(mode=SQLITE_DIR_MODE, parents=True, exist_ok=True)
            os.chmod(path.parent, SQLITE_DIR_MODE)
        # O_EXCL: an existing file is never truncated; an empty file is an empty database.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SQLITE_FILE_MODE))
        os.chmod(path, SQLITE_FILE_MODE)  # the umask may have taken bits we want
    except FileExistsError:
        _tighten(path)
    except OSError as exc:
        # SQLite reports the same failure itself, in its own words, when it opens the file.
        logger.warning("could not create SQLite file %s with mode 600: %s", path, exc.strerror)


def _tighten(database: Path) -> None:
    """Take group/other permissions off an existing database and its companion files."""
    for suffix in _SQLITE_COMPANIONS:
        path = database.with_name(database.name + suffix)
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                os.chmod(path, mode & 0o700)
                logger.warning("SQLite file %s was open to other users (mode %o): now %o", path, mode, mode & 0o700)
        except FileNotFoundError:
            continue
        except OSError as exc:  # not ours to change (another owner): say so, do not fail
            logger.warning("SQLite file %s is open to other users and cannot be changed: %s", path, exc.strerror)


def _apply_sqlite_pragmas(dbapi_connection: Any, *, in_memory: bool) -> None:
    """WAL, foreign keys, busy timeout and synchronous=NORMAL on a new connection (sync and
    async engines alike). pysqlite's own transaction handling breaks SAVEPOINT; SQLAlchemy's
    documented recipe: switch it off and emit BEGIN ourselves (the engines' "begin" hooks)."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _install_sqlite_pragmas(engine: Engine, *, in_memory: bool) -> None:
    """Per-connection pragmas, and explicit BEGIN so SAVEPOINTs work under pysqlite."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        _apply_sqlite_pragmas(dbapi_connection, in_memory=in_memory)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(SQLITE_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _install_async_sqlite_pragmas(engine: AsyncEngine, *, in_memory: bool) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        _apply_sqlite_pragmas(dbapi_connection, in_memory=in_memory)

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")


def _postgres_pool_options(pool_size: int | None, max_overflow: int | None) -> dict[str, Any]:
    return {
        "pool_size": POSTGRES_POOL_SIZE if pool_size is None else pool_size,
        "max_overflow": POSTGRES_MAX_OVERFLOW if max_overflow is None else max_overflow,
        "pool_recycle": POSTGRES_POOL_RECYCLE_S,
    }


def _ping_idle_connections(engine: Engine) -> None:
    """Pessimistic disconnect handling for idle connections only (SQLAlchemy's documented
    custom pre-ping: raising ``DisconnectionError`` on checkout makes the pool discard the
    connection and hand out a fresh one)."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["lts_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("lts_idle_since")
        if since is None or time.monotonic() - since < POSTGRES_PING_AFTER_IDLE_S:
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            if not dbapi_connection.autocommit:
                dbapi_connection.rollback()
        except Exception as exc:  # noqa: BLE001 - any failure: this connection is unusable
            logger.info("pooled database connection found dead after %.0f s idle: %s",
                        time.monotonic() - since, exc)
            raise DisconnectionError(str(exc)) from exc


def _plan_every_query(engine: Engine) -> None:
    """PostgreSQL: plan each execution of a prepared statement with its actual values.

    psycopg prepares a statement server-side after a few executions, and PostgreSQL then
    switches to a generic plan that cannot see parameter values. For the batch lookups
    (``key = ANY(:keys)``, see ``persistence.store._lookup``) that costs the hashed array:
    measured on a growing ``audit_logs``, the request-id lookup of a 100-write batch took
    7.4 ms on average under generic plans against ~1.6 ms planned per execution, and the
    Store's batch rate rose from 3,800 to 4,500 records/s. Planning these short
    statements costs microseconds."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET plan_cache_mode = force_custom_plan")
        dbapi_connection.commit()  # a SET rolled back with its transaction would not stick


def make_engine(
    url: str | URL,
    *,
    echo: bool = False,
    pool_size: int | None = None,
    max_overflow: int | None = None,
) -> Engine:
    """Build a sync engine for ``url`` with the settings LTS relies on.

    SQLite files use a QueuePool (one connection per thread, reused); in-memory SQLite is
    for throwaway use only. PostgreSQL URLs without a driver get psycopg 3.
    """
    parsed = parse_url(url)
    # hide_parameters: a logged or raised DBAPI error never carries the row values
    # (password hashes, encrypted credentials), only the statement.
    options: dict[str, Any] = {"echo": echo, "json_serializer": json_dumps, "hide_parameters": True}
    if parsed.get_backend_name() == "sqlite":
        in_memory = _is_memory_sqlite(parsed)
        if not in_memory:
            prepare_sqlite_file(parsed)
            options.update(
                poolclass=QueuePool,
                pool_size=pool_size or 5,
                max_overflow=10 if max_overflow is None else max_overflow,
                connect_args={"check_same_thread": False},
            )
        engine = create_engine(parsed, **options)
        _install_sqlite_pragmas(engine, in_memory=in_memory)
    else:
        engine = create_engine(parsed, **options, **_postgres_pool_options(pool_size, max_overflow))
        _ping_idle_connections(engine)
        _plan_every_query(engine)
    logger.debug("database engine built for %s", parsed.render_as_string(hide_password=True))
    return engine


def make_async_engine(
    url: str | URL,
    *,
    echo: bool = False,
    pool_size: int | None = None,
    max_overflow: int | None = None,
) -> AsyncEngine:
    """Build an async engine (aiosqlite / psycopg async) for ``url``."""
    parsed = async_url(url)
    # hide_parameters: a logged or raised DBAPI error never carries the row values
    # (password hashes, encrypted credentials), only the statement.
    options: dict[str, Any] = {"echo": echo, "json_serializer": json_dumps, "hide_parameters": True}
    if parsed.get_backend_name() == "sqlite":
        in_memory = _is_memory_sqlite(parsed)
        if not in_memory:
            prepare_sqlite_file(parsed)
        engine = create_async_engine(parsed, **options)
        _install_async_sqlite_pragmas(engine, in_memory=in_memory)
    else:
        engine = create_async_engine(
            parsed, **options, **_postgres_pool_options(pool_size, max_overflow), pool_pre_ping=True
        )
    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """The sync session factory. ``expire_on_commit=False``: records are built after
    commit from already-loaded attributes without a second round trip."""
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


def make_read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for reads only. On PostgreSQL they run in autocommit: under READ COMMITTED
    each statement has its own snapshot anyway, and it saves the ROLLBACK round trip that
    closing a read transaction costs (SQLite keeps its snapshot-per-transaction reads)."""
    bind = engine
    if engine.dialect.name == "postgresql":
        bind = engine.execution_options(isolation_level="AUTOCOMMIT")
    return sessionmaker(bind=bind, expire_on_commit=False, autoflush=False)


def make_write_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Like ``make_session_factory`` but SQLite transactions take the write lock at BEGIN."""
    bind = engine.execution_options(**{SQLITE_IMMEDIATE: True})
    return sessionmaker(bind=bind, expire_on_commit=False, autoflush=False)


def checked_out_connections(engine: Engine | AsyncEngine) -> int:
    """Connections currently lent out by ``engine``'s pool (0 when nothing leaks)."""
    pool = engine.pool
    checkedout = getattr(pool, "checkedout", None)
    return int(checkedout()) if callable(checkedout) else 0


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Commit on success, roll back on error, always close."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# ----------------------------------------------------------------- process-wide default


@dataclass(frozen=True)
class SyncDatabase:
    """A configured sync engine with its session factory."""

    engine: Engine
    sessions: sessionmaker[Session]

    def session(self) -> Any:
        """Context manager: commit on success, roll back on error, always close."""
        return session_scope(self.sessions)

    def get_db(self) -> Iterator[Session]:
        """FastAPI-style dependency generator bound to this database."""
        yield from _yield_session(self.sessions)

    def dispose(self) -> None:
        self.engine.dispose()


_default: SyncDatabase | None = None
_default_lock = threading.Lock()


def configure(url: str | URL, **engine_options: Any) -> SyncDatabase:
    """Install the process-wide default database for ``get_db()`` / ``db_session()``.

    Called once by the composition root (``lts run``, the API app factory). Calling it
    again with another URL disposes the previous engine.
    """
    global _default
    engine = make_engine(url, **engine_options)
    database = SyncDatabase(engine=engine, sessions=make_session_factory(engine))
    with _default_lock:
        previous, _default = _default, database
    if previous is not None:
        previous.dispose()
    return database


def get_default() -> SyncDatabase:
    """The database installed by ``configure``; a ConfigError if there is none."""
    database = _default
    if database is None:
        raise ConfigError(
            "no database configured: call persistence.database.configure(database_url) first"
        )
    return database


def reset_default() -> None:
    """Dispose and forget the default database (tests, shutdown)."""
    global _default
    with _default_lock:
        previous, _default = _default, None
    if previous is not None:
        previous.dispose()


def _yield_session(factory: sessionmaker[Session]) -> Iterator[Session]:
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def get_db() -> Iterator[Session]:
    """FastAPI dependency: a session from the default database, committed when the
    request handler returns, rolled back if it raises, and always closed."""
    yield from _yield_session(get_default().sessions)


def db_session() -> Any:
    """``with db_session() as session:`` on the default database (commit/rollback/close)."""
    return session_scope(get_default().sessions)


# ----------------------------------------------------------------------------- async


class Database:
    """Async access: ``async with database.session() as s`` (commit on success, rollback
    on error, always close), or ``get_session`` as an async FastAPI dependency.

    The engine is built lazily on first use, so constructing a ``Database`` is free.
    """

    def __init__(self, url: str | URL, **engine_options: Any) -> None:
        self._url = async_url(url)
        self._engine_options = engine_options
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            self._engine = make_async_engine(self._url, **self._engine_options)
            self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)
        return self._engine

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        self.engine  # noqa: B018 - builds the factory on first use
        assert self._sessions is not None
        return self._sessions

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        session = self.sessions()
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
        finally:
            await session.close()

    async def get_session(self) -> AsyncIterator[AsyncSession]:
        """Async FastAPI dependency generator."""
        async with self.session() as session:
            yield session

    def checked_out(self) -> int:
        return 0 if self._engine is None else checked_out_connections(self._engine)

    async def dispose(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
            self._sessions = None
