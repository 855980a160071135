"""``StoreProxy``: the ``persistence.Store`` as the actors (and the API, when the engine
runs) use it — reads straight from the database, writes through the persistence actor.

The persistence actor is the only writer. Writes travel as ``WriteRequest`` batches: one
call per order result (the order transition and its position change are one batch, hence
one transaction), each write carrying a deterministic ``request_id`` so a resend after a
timeout or a restart is a no-op. Reads open the database directly (SQLite in WAL mode
lets many readers run beside the one writer), in a thread so an async actor's event loop
never blocks on I/O.

Without a persistence actor (``persistence: "local"`` in the settings, used by unit
tests and single-process tools) writes go to a local Store instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from engine.errors import LTSError, TemporaryError

logger = logging.getLogger(__name__)


class _NoAnswer(Exception):
    """A read that got no answer (the persistence actor is restarting or unreachable)."""


class StoreProxy:
    """Reads and writes through the persistence actor (reads: ``PersistenceActor.read``;
    writes: one ``submit`` call per batch); with ``local_writes`` both on a local Store."""

    def __init__(self, database_url: str, *, namespace: str = "lts", local_writes: bool = False,
                 timeout_s: float = 10.0) -> None:
        self.database_url = database_url
        self.namespace = namespace
        self.local_writes = local_writes
        self.timeout_s = timeout_s
        self._store: Any = None
        self._writer: Any = None
        self._reader: Any = None  # the persistence actor's handle, for reads

    @classmethod
    def from_settings(cls, settings: Any) -> "StoreProxy":
        """The proxy of the runtime's settings (``actors.runtime_settings.RuntimeSettings``,
        or a config mapping)."""
        from actors.runtime_settings import RuntimeSettings

        settings = RuntimeSettings.of(settings)
        return cls(settings.database_url, namespace=settings.namespace, local_writes=settings.local_persistence,
                   timeout_s=settings.step_timeout_s)

    # ------------------------------------------------------------------ plumbing

    @property
    def store(self) -> Any:
        """The local Store (built on first use, never at import time)."""
        if self._store is None:
            from persistence.store import Store

            self._store = Store.from_url(self.database_url)
        return self._store

    async def read(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``store.<method>(*args, **kwargs)``: through the persistence actor (this process
        then needs no Store, hence no SQLAlchemy), or with ``local_writes`` in a worker
        thread on the local Store. Raises the Store's own errors (``NotFound``...), and
        ``TemporaryError`` when the persistence actor does not answer."""
        if self.local_writes:
            return await asyncio.to_thread(getattr(self.store, method), *args, **kwargs)
        from ray.exceptions import RayActorError, RayTaskError
        from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_random_exponential

        # A read is safe to repeat: like a write without an answer, it is sent again while
        # the persistence actor restarts, for up to three call timeouts.
        retrying = AsyncRetrying(retry=retry_if_exception_type(_NoAnswer), reraise=True,
                                 wait=wait_random_exponential(multiplier=0.05, max=2.0),
                                 stop=stop_after_delay(3 * self.timeout_s))
        try:
            async for attempt in retrying:
                with attempt:
                    try:
                        if self._reader is None:
                            import ray

                            from actors import naming

                            self._reader = ray.get_actor(naming.PERSISTENCE, namespace=self.namespace)
                        return await asyncio.wait_for(self._reader.read.remote(method, args, kwargs), self.timeout_s)
                    except RayTaskError as exc:
                        cause = getattr(exc, "cause", None)
                        raise (cause if isinstance(cause, LTSError) else exc) from None
                    except (asyncio.TimeoutError, RayActorError, ValueError) as exc:  # ValueError: no such actor (yet)
                        self._reader = None
                        raise _NoAnswer(f"{type(exc).__name__}: {exc}") from exc
        except _NoAnswer as exc:
            raise TemporaryError(f"persistence actor unavailable for {method}: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def write(self, writes: Sequence[Any]) -> list[Any]:
        """Apply ``writes`` (``WriteRequest``) as one batch; raise on the first failed one.

        Returns each write's result. A failure that is a replay of an earlier success is
        impossible by construction (request ids), so any failure is real and raised."""
        from actors.persistence_actor import raise_for_outcome

        return [raise_for_outcome(outcome) for outcome in await self.write_outcomes(writes)]

    async def write_outcomes(self, writes: Sequence[Any]) -> list[Any]:
        """Apply ``writes`` as one batch; each write's ``WriteOutcome`` (a failed write
        does not fail the others: each has its own savepoint). Raises only when the batch
        got no answer at all (``TemporaryError``)."""
        if not writes:
            return []
        if self.local_writes:
            return list(await asyncio.to_thread(self.store.apply_batch, list(writes)))
        return list(await self._actor_write(list(writes)))

    async def _actor_write(self, writes: list[Any]) -> list[Any]:
        if self._writer is None:
            from actors.persistence_actor import PersistenceClient

            # Resends keep the request ids, so an unacknowledged batch is safe to resend.
            # Concurrent writers of this process each make their own call: the actor's
            # group commit puts the calls that meet there into one transaction.
            self._writer = PersistenceClient(namespace=self.namespace, call_timeout_s=self.timeout_s,
                                             give_up_after_s=3 * self.timeout_s)
        try:
            return await self._writer.write_many(writes)
        except LTSError:
            raise
        except Exception as exc:
            raise TemporaryError(f"persistence actor unavailable: {type(exc).__name__}: {exc}") from exc

    # ------------------------------------------------------------------ reads used by the runtime

    async def portfolio(self, portfolio_id: int) -> Any:
        return await self.read("get_portfolio", portfolio_id)

    async def assets(self, portfolio_id: int) -> list[Any]:
        from persistence.records import PageRequest

        page = await self.read("list_assets", portfolio_id=portfolio_id, page=PageRequest(limit=500))
        return list(getattr(page, "items", page))

    async def asset(self, asset_id: int) -> Any:
        return await self.read("get_asset", asset_id)

    # ------------------------------------------------------------------ engine writes

    async def audit_step_failure(self, portfolio_id: int, asset_id: int, kind: str, reason: str) -> None:
        from persistence.records import AuditContext
        from persistence.store.writes import WriteRequest

        await self.write([WriteRequest(op="audit", ctx=AuditContext.system(), args=("asset.step_failed",),
                                       kwargs={"target_type": "asset", "target_id": asset_id,
                                               "details": {"portfolio_id": portfolio_id, "kind": kind,
                                                           "reason": reason[:1000]}})])

    async def audit_asset_started(self, portfolio_id: int, asset_id: int, pid: int) -> None:
        """Audit an asset actor's (re)start. Also a barrier: the persistence actor applies
        writes in arrival order, so once this is acknowledged every write a killed
        predecessor had queued is committed, and the state rebuilt next is complete."""
        from persistence.records import AuditContext
        from persistence.store.writes import WriteRequest

        await self.write([WriteRequest(op="audit", ctx=AuditContext.system(), args=("asset.started",),
                                       kwargs={"target_type": "asset", "target_id": asset_id,
                                               "details": {"portfolio_id": portfolio_id, "pid": pid}})])

    async def mark_asset_errored(self, asset_id: int, reason: str) -> None:
        from persistence.records import AuditContext
        from persistence.store.writes import WriteRequest

        await self.write([WriteRequest(op="mark_asset_errored", ctx=AuditContext.system(), args=(asset_id, reason))])

    async def rebuild_state(self, record: Any) -> Any:
        """The asset's ``AssetState`` from the database: open positions (by the broker's
        position id) and pending intents, to be reconciled before the first decision."""
        from actors.ports import state_from_records

        positions = await self.read("open_positions", record.id)
        pending = await self.read("pending_orders", record.id)
        return state_from_records(record, positions, pending)
