"""The persistence actor on the shared Ray session: ordering, batching and crash safety."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from actors.persistence_actor import (
    PersistenceClient,
    PersistenceSettings,
    raise_for_outcome,
    start_persistence_actor,
)
from engine.errors import NotFound
from engine.types import utcnow
from persistence.models import Order
from persistence.records import AuditContext, LoginRecord, OrderIntent, SessionOpen
from persistence.store import Store
from tests.fixtures.db_fixtures import SeededPortfolio, seed_owner_portfolio

pytestmark = pytest.mark.ray


@pytest.fixture
def actor_name() -> str:
    return f"persistence-test-{uuid.uuid4().hex[:8]}"


def _start(ray_session: Any, url: str, name: str, **settings: Any) -> Any:
    handle = start_persistence_actor(url, settings=PersistenceSettings(**settings), name=name)
    ray_session.get(handle.stats.remote(), timeout=60)  # constructed and reachable
    return handle


@pytest.fixture
def seeded_store(store: Store) -> tuple[Store, SeededPortfolio]:
    return store, seed_owner_portfolio(store)


def _intent(seeded: SeededPortfolio, client_order_id: str) -> OrderIntent:
    return OrderIntent(
        client_order_id=client_order_id,
        portfolio_id=seeded.portfolio_id,
        asset_id=seeded.asset_id,
        side="buy",
        quantity=Decimal("1"),
    )


def test_twenty_concurrent_callers_writes_all_land_in_per_caller_order(
    ray_session: Any, seeded_store: tuple[Store, SeededPortfolio], db_url: str, actor_name: str
) -> None:
    store, seeded = seeded_store
    handle = _start(ray_session, db_url, actor_name, batch_size=64, batch_delay_ms=2)
    callers, per_caller, per_call = 20, 40, 4

    async def caller(n: int) -> None:
        client = PersistenceClient(handle, caller_id=f"caller{n}")
        for start in range(0, per_caller, per_call):
            writes = [
                client.request("record_order_intent", AuditContext.system(), _intent(seeded, f"c{n:02d}-{i:04d}"))
                for i in range(start, start + per_call)
            ]
            for outcome in await client.write_many(writes):
                raise_for_outcome(outcome)

    async def run() -> None:
        await asyncio.gather(*(caller(n) for n in range(callers)))

    try:
        asyncio.run(run())
        stats = ray_session.get(handle.stats.remote(), timeout=30)
    finally:
        ray_session.kill(handle)

    with store.engine.connect() as conn:
        rows = conn.execute(select(Order.id, Order.client_order_id).order_by(Order.id)).all()
    assert len(rows) == callers * per_caller
    for n in range(callers):
        mine = [coid for _, coid in rows if coid.startswith(f"c{n:02d}-")]
        assert mine == [f"c{n:02d}-{i:04d}" for i in range(per_caller)], f"caller {n} out of order"
    assert stats["applied"] == callers * per_caller
    assert stats["batches"] < stats["applied"]  # writes from several callers shared commits


def _orders_by_writer(store: Store, writers: int) -> dict[int, list[str]]:
    with store.engine.connect() as conn:
        coids = conn.execute(select(Order.client_order_id).order_by(Order.id)).scalars().all()
    return {n: [c for c in coids if c.startswith(f"w{n:02d}-")] for n in range(writers)}


def test_concurrent_writers_land_in_per_writer_order_in_shared_transactions_and_errors_stay_their_own(
    ray_session: Any, seeded_store: tuple[Store, SeededPortfolio], db_url: str, actor_name: str
) -> None:
    """Server-side group commit against the real actor: 20 writers of one event loop call
    it concurrently; every write lands once, in each writer's order, the actor put
    several callers' writes into one transaction, and a bad write fails only its own
    writer."""
    store, seeded = seeded_store
    handle = _start(ray_session, db_url, actor_name, batch_size=64, batch_delay_ms=2)
    writers, per_writer, per_batch = 20, 40, 4

    async def writer(n: int) -> None:
        client = PersistenceClient(handle, caller_id=f"writer{n}")  # this writer's request ids
        for start in range(0, per_writer, per_batch):
            batch = [client.request("record_order_intent", AuditContext.system(), _intent(seeded, f"w{n:02d}-{i:04d}"))
                     for i in range(start, start + per_batch)]
            for outcome in await client.write_many(batch):
                raise_for_outcome(outcome)

    async def bad_writer() -> None:
        client = PersistenceClient(handle, caller_id="bad")
        bad = client.request("record_order_intent", AuditContext.system(),
                             {"client_order_id": "bad", "portfolio_id": 999, "asset_id": 1, "side": "buy",
                              "quantity": 1})
        await asyncio.sleep(0.01)  # while the others' batches are in flight
        (outcome,) = await client.write_many([bad])
        raise_for_outcome(outcome)

    async def run() -> list[Any]:
        return await asyncio.gather(*(writer(n) for n in range(writers)), bad_writer(), return_exceptions=True)

    try:
        results = asyncio.run(run())
        stats = ray_session.get(handle.stats.remote(), timeout=60)
    finally:
        ray_session.kill(handle)

    assert results[:writers] == [None] * writers
    assert isinstance(results[-1], NotFound) and "portfolio 999" in str(results[-1])
    for n, mine in _orders_by_writer(store, writers).items():
        assert mine == [f"w{n:02d}-{i:04d}" for i in range(per_writer)], f"writer {n} out of order"
    assert stats["applied"] == writers * per_writer + 1
    assert stats["batches"] < stats["applied"] / per_batch  # callers' writes shared transactions


def test_threads_writing_at_once_land_in_per_thread_order(
    ray_session: Any, seeded_store: tuple[Store, SeededPortfolio], db_url: str, actor_name: str
) -> None:
    """The API gateway's case: request threads writing through the actor at once."""
    import threading

    store, seeded = seeded_store
    handle = _start(ray_session, db_url, actor_name)
    threads, per_thread = 8, 15
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        client = PersistenceClient(handle, caller_id=f"thread{n}")
        try:
            for i in range(per_thread):
                write = client.request("record_order_intent", AuditContext.system(), _intent(seeded, f"w{n:02d}-{i:04d}"))
                (outcome,) = client.write_many_sync([write])
                raise_for_outcome(outcome)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
    finally:
        ray_session.kill(handle)
    assert errors == []
    for n, mine in _orders_by_writer(store, threads).items():
        assert mine == [f"w{n:02d}-{i:04d}" for i in range(per_thread)], f"thread {n} out of order"


def test_domain_errors_come_back_as_errors_and_are_not_resent(
    ray_session: Any, sqlite_db_url: str, actor_name: str
) -> None:
    handle = _start(ray_session, sqlite_db_url, actor_name)
    client = PersistenceClient(handle)
    try:
        with pytest.raises(NotFound, match="portfolio 999 not found"):
            client.write_sync(
                "record_order_intent",
                AuditContext.system(),
                {"client_order_id": "x", "portfolio_id": 999, "asset_id": 1, "side": "buy", "quantity": 1},
            )
        assert client.resends == 0
    finally:
        ray_session.kill(handle)


def test_a_login_through_the_actor_is_one_write_with_one_audit_row_and_a_resend_replays_it(
    ray_session: Any, sqlite_db_url: str, sqlite_store: Store, actor_name: str
) -> None:
    """The gateway's login path when the engine runs: record_login travels with its
    session spec, commits once, and a resend returns the first result."""
    user = sqlite_store.create_user(AuditContext.system(), username="ann", password_hash="h")
    handle = _start(ray_session, sqlite_db_url, actor_name)
    client = PersistenceClient(handle)
    ctx = AuditContext(user_id=user.id, ip="192.0.2.9", request_id="gateway-login-1")
    opening = SessionOpen(jti="actor-jti", family_id="actor-fam", expires_at=utcnow() + timedelta(days=7))
    try:
        before = sqlite_store.list_audit_logs().total
        login = client.write_sync("record_login", ctx, user.id, session=opening)
        assert isinstance(login, LoginRecord) and login.session == sqlite_store.get_session("actor-jti")
        assert sqlite_store.list_audit_logs().total == before + 1
        assert client.write_sync("record_login", ctx, user.id, session=opening) == login
        assert sqlite_store.list_audit_logs().total == before + 1
        state = sqlite_store.login_state(user.id, "actor-jti")
        assert state is not None and (state.session_family, state.session_live) == ("actor-fam", True)
    finally:
        ray_session.kill(handle)


@pytest.fixture
def sqlite_seeded(sqlite_store: Store) -> Iterator[tuple[Store, SeededPortfolio]]:
    yield sqlite_store, seed_owner_portfolio(sqlite_store)


def test_kill_9_mid_stream_loses_no_acknowledged_write_and_duplicates_none(
    ray_session: Any, sqlite_seeded: tuple[Store, SeededPortfolio], sqlite_db_url: str, actor_name: str
) -> None:
    store, seeded = sqlite_seeded
    handle = _start(ray_session, sqlite_db_url, actor_name, batch_size=200, batch_delay_ms=2)
    first_pid = ray_session.get(handle.pid.remote(), timeout=30)
    callers, per_caller, per_call = 4, 2500, 100
    acknowledged: set[str] = set()
    killed = asyncio.Event()
    clients = [PersistenceClient(handle, caller_id=f"k{n}", call_timeout_s=20) for n in range(callers)]

    async def caller(n: int) -> None:
        client = clients[n]
        for start in range(0, per_caller, per_call):
            coids = [f"k{n}-{i:05d}" for i in range(start, start + per_call)]
            writes = [client.request("record_order_intent", AuditContext.system(), _intent(seeded, c)) for c in coids]
            outcomes = await client.write_many(writes)  # resends after the kill, same request ids
            assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok][:3]
            acknowledged.update(coids)

    async def killer() -> None:
        while len(acknowledged) < 2000:
            await asyncio.sleep(0.005)
        os.kill(first_pid, signal.SIGKILL)
        killed.set()

    async def run() -> None:
        await asyncio.gather(killer(), *(caller(n) for n in range(callers)))

    try:
        asyncio.run(run())
        second_pid = ray_session.get(handle.pid.remote(), timeout=60)
    finally:
        ray_session.kill(handle)

    assert killed.is_set() and second_pid != first_pid
    assert sum(c.resends for c in clients) >= 1  # some calls really were in flight and resent
    with store.engine.connect() as conn:
        stored = conn.execute(
            select(Order.client_order_id, func.count()).group_by(Order.client_order_id)
        ).all()
    counts = dict(stored)
    assert acknowledged <= set(counts), "an acknowledged write is missing"
    assert max(counts.values()) == 1, "a write was stored twice"
    assert len(counts) == callers * per_caller

    path = sqlite_db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
