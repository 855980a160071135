"""The persistence actor: the single writer, and the client callers use to reach it.

``PersistenceActor`` hosts a ``Store``. Writes arrive as ``WriteRequest`` lists; one writer
task takes them in arrival order, groups up to ``batch_size`` of them (waiting at most
``batch_delay_ms`` for more) into one transaction (``Store.apply_batch``: each write as if
in its own SAVEPOINT), commits, and only then answers each caller. ``batch_size=1`` turns
batching off (one transaction per write).

This group commit is the one batching layer in front of the database: it is the only
place that sees every writer of the cluster, so callers send their batches directly
(``PersistenceClient``) and no caller-side pipe merges them first.

Ray restarts the actor after a crash (``max_restarts``) but replays nothing: calls in flight
fail. ``PersistenceClient`` therefore resends a call that got no answer, with the same
request ids; the Store recognises an already-applied request id (unique in ``audit_logs``)
and answers with the first result, so a resend never writes twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError
from tenacity import (
    AsyncRetrying,
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from actors import naming
from actors.remote import hot_path, remote_class
from engine import errors as lts_errors
from engine.errors import LTSError, TemporaryError
from persistence.records import AuditContext
from persistence.store import WriteOutcome, WriteRequest

logger = logging.getLogger(__name__)

try:  # Ray >= 2.10 has a distinct error for an actor that is restarting.
    from ray.exceptions import ActorUnavailableError
except ImportError:  # pragma: no cover
    ActorUnavailableError = RayActorError  # type: ignore[misc,assignment]

_NO_ANSWER_ERRORS: tuple[type[BaseException], ...] = (
    RayActorError,
    ActorUnavailableError,
    GetTimeoutError,
    asyncio.TimeoutError,
    TimeoutError,
    TemporaryError,
)
"""Errors after which a call may or may not have been applied: resend it (idempotent)."""

@dataclass(frozen=True)
class PersistenceSettings:
    """Batching knobs (config keys ``persistence_batch_size`` / ``persistence_batch_delay_ms``)."""

    batch_size: int = 100
    batch_delay_ms: float = 0.0  # see engine.config.defaults

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise lts_errors.ConfigError(
                f"persistence_batch_size: must be >= 1, got {self.batch_size}"
            )
        if self.batch_delay_ms < 0:
            raise lts_errors.ConfigError(
                f"persistence_batch_delay_ms: must be >= 0, got {self.batch_delay_ms}"
            )

    @classmethod
    def from_config(cls, config: Any) -> "PersistenceSettings":
        return cls(
            batch_size=int(config["persistence_batch_size"]),
            batch_delay_ms=float(config["persistence_batch_delay_ms"]),
        )


_Queued = tuple[WriteRequest, asyncio.Future[WriteOutcome]]  # a write and the future its caller awaits

ENGINE_READS = frozenset({
    "get_portfolio", "list_assets", "get_asset", "get_order", "get_order_by_client_id", "list_orders",
    "get_position", "list_positions", "open_positions", "pending_orders", "list_statistics", "list_audit_logs",
})
"""The Store reads actor processes make (``PersistenceActor.read``); no user or credential
reads."""


class PersistenceActor:
    """Plain class hosted as a Ray async actor (see ``start_persistence_actor``)."""

    RAY_OPTIONS: dict[str, Any] = {
        "max_restarts": -1,  # always come back; callers resend what was not acknowledged
        "max_task_retries": 0,  # resends are the client's, with the same request ids
        "num_cpus": 0,
        "max_concurrency": 1000,  # many callers wait on acks while one task writes
    }

    def __init__(self, database_url: str, settings: PersistenceSettings | None = None) -> None:
        self._settings = settings or PersistenceSettings()
        from persistence.store import Store  # only the actor itself needs SQLAlchemy

        self._store = Store.from_url(database_url)
        self._queue: asyncio.Queue[_Queued] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._applied = 0
        self._batches = 0
        self._busy_s = 0.0  # time spent writing (to tell a busy database from idle waits)
        self._started = time.time()
        logger.info(
            "persistence actor up (pid %s, batch_size %s, batch_delay_ms %s)",
            os.getpid(),
            self._settings.batch_size,
            self._settings.batch_delay_ms,
        )

    # ------------------------------------------------------------------ API

    @hot_path
    async def submit(self, writes: Sequence[WriteRequest]) -> list[WriteOutcome]:
        """Queue ``writes`` (in order) and answer once all of them are committed."""
        queue = self._ensure_writer()
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[WriteOutcome]] = []
        # No await between the puts: a call's writes stay contiguous and in order.
        for write in writes:
            future: asyncio.Future[WriteOutcome] = loop.create_future()
            queue.put_nowait((write, future))
            futures.append(future)
        return list(await asyncio.gather(*futures))

    async def read(self, method: str, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None) -> Any:
        """``store.<method>(*args, **kwargs)`` for one of ``ENGINE_READS``, in a worker
        thread (writes go on meanwhile; SQLite in WAL mode and PostgreSQL read beside a
        writer). Actor processes read through here instead of opening a Store of their
        own, so they never import SQLAlchemy (a restarted asset actor is back sooner)."""
        if method not in ENGINE_READS:
            raise lts_errors.DomainError(f"read {method!r} is not one the engine's actors may make")
        return await asyncio.to_thread(getattr(self._store, method), *args, **(kwargs or {}))

    async def ping(self) -> int:
        """A trivial call (benchmarks measure the bare round trip with it)."""
        return 1

    def pid(self) -> int:
        """The actor's process id (tests kill it to prove crash safety)."""
        return os.getpid()

    def stats(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "applied": self._applied,
            "batches": self._batches,
            "busy_s": self._busy_s,
            "queued": 0 if self._queue is None else self._queue.qsize(),
            "batch_size": self._settings.batch_size,
            "batch_delay_ms": self._settings.batch_delay_ms,
            "uptime_s": time.time() - self._started,
        }

    # ------------------------------------------------------------------ writer

    def _ensure_writer(self) -> asyncio.Queue[_Queued]:
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        return self._queue

    async def _write_loop(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            batch = [await queue.get()]
            await self._fill_batch(queue, batch)
            writes = [write for write, _ in batch]
            started = time.perf_counter()
            try:
                # Written on the event loop thread itself, blocking it on purpose: calls that
                # arrive meanwhile wait in Ray's queue and form the next batch, and no
                # second Python thread fights this one for the GIL (measured: a writer
                # thread beside the loop ran at a third of the Store's in-process speed).
                outcomes = self._apply(writes)
            except Exception as exc:  # noqa: BLE001 - the commit failed: nothing was stored
                logger.warning("persistence batch of %d writes failed: %s", len(writes), exc)
                # The class only: a driver's text carries the statement (the log has it).
                failure = TemporaryError(f"database write failed ({type(exc).__name__}), resend")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(failure)
                continue
            self._busy_s += time.perf_counter() - started
            self._applied += len(writes)
            self._batches += 1
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)
            # Yield to the loop: calls that arrived while this batch was written are
            # queued and form the next batch.
            await asyncio.sleep(0)

    async def _fill_batch(
        self,
        queue: asyncio.Queue[_Queued],
        batch: list[_Queued],
    ) -> None:
        limit = self._settings.batch_size
        # Take everything already queued (it arrived while the last batch was written).
        while len(batch) < limit and not queue.empty():
            batch.append(queue.get_nowait())
        if len(batch) > 1 or len(batch) >= limit or self._settings.batch_delay_ms <= 0:
            # Under load the queue refills while this batch is written: waiting here would
            # only leave the database idle.
            return
        # A lone write on a quiet system: give companions up to the delay to join it.
        deadline = time.monotonic() + self._settings.batch_delay_ms / 1000.0
        while len(batch) < limit:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except asyncio.TimeoutError:
                return
            while len(batch) < limit and not queue.empty():
                batch.append(queue.get_nowait())

    def _apply(self, writes: list[WriteRequest]) -> list[WriteOutcome]:
        if self._settings.batch_size == 1:
            return self._store.apply_each(writes)
        return self._store.apply_batch(writes)


def start_persistence_actor(
    database_url: str,
    *,
    settings: PersistenceSettings | None = None,
    name: str = naming.PERSISTENCE,
    namespace: str | None = None,
    detached: bool = False,
    get_if_exists: bool = True,
    **ray_options: Any,
) -> Any:
    """Create (or find) the named persistence actor and return its handle.

    ``detached=True`` keeps it alive after the creating driver exits (``lts run``);
    tests keep the default so it dies with the test session. Extra ``ray_options`` override
    ``PersistenceActor.RAY_OPTIONS``.
    """
    options = {**PersistenceActor.RAY_OPTIONS, **ray_options}
    cls = remote_class(PersistenceActor, **options)
    instance_options: dict[str, Any] = {"name": name, "get_if_exists": get_if_exists}
    if namespace is not None:
        instance_options["namespace"] = namespace
    if detached:
        instance_options["lifetime"] = "detached"
    return cls.options(**instance_options).remote(database_url, settings)


# ---------------------------------------------------------------------------- client


def raise_for_outcome(outcome: WriteOutcome) -> Any:
    """The outcome's result, or the LTSError it failed with (same class when it is one of
    ``engine.errors``; DomainError otherwise)."""
    if outcome.ok:
        return outcome.result
    error_type = getattr(lts_errors, outcome.error_type or "", None)
    if not (isinstance(error_type, type) and issubclass(error_type, LTSError)):
        error_type = lts_errors.DomainError
    raise error_type(f"{outcome.op}: {outcome.error}")


class PersistenceClient:
    """Caller side of the persistence actor: request ids, timeouts and resends.

    Every write gets a request id ``{caller_id}:{n}`` unless its context already has one.
    A call that fails without an answer (actor died or restarting, timeout, failed commit)
    is resent with the same ids, with exponential backoff, until ``give_up_after_s``.
    Domain errors (bad input) are answers, not failures: they are never resent.

    Use ``write``/``write_many`` from async code and ``write_sync``/``write_many_sync``
    from plain code. One client is meant for one caller (it is not shared across threads);
    keep one call in flight per client to preserve that caller's write order.
    """

    def __init__(
        self,
        actor: Any | None = None,
        *,
        name: str = naming.PERSISTENCE,
        namespace: str | None = None,
        caller_id: str | None = None,
        call_timeout_s: float = 30.0,
        give_up_after_s: float = 120.0,
        max_attempts: int = 50,
    ) -> None:
        self._actor = actor
        self._name = name
        self._namespace = namespace
        self.caller_id = caller_id or uuid.uuid4().hex[:16]
        self._sequence = 0
        self._call_timeout_s = call_timeout_s
        self._give_up_after_s = give_up_after_s
        self._max_attempts = max_attempts
        self.resends = 0

    # ------------------------------------------------------------------ building writes

    def request(self, op: str, ctx: AuditContext, *args: Any, **kwargs: Any) -> WriteRequest:
        """Describe ``store.<op>(ctx, *args, **kwargs)`` with a request id of this caller."""
        if ctx.request_id is None:
            self._sequence += 1
            ctx = ctx.with_request_id(f"{self.caller_id}:{self._sequence}")
        return WriteRequest(op=op, ctx=ctx, args=args, kwargs=kwargs)

    # ------------------------------------------------------------------ async

    async def write(self, op: str, ctx: AuditContext, *args: Any, **kwargs: Any) -> Any:
        """Apply one write and return the Store's result (or raise its domain error)."""
        (outcome,) = await self.write_many([self.request(op, ctx, *args, **kwargs)])
        return raise_for_outcome(outcome)

    async def write_many(self, writes: Sequence[WriteRequest]) -> list[WriteOutcome]:
        """Send ``writes`` in one call; answers come after commit, in order."""
        writes = list(writes)
        try:  # the common case, without building a retry loop for every call
            return await asyncio.wait_for(self._handle().submit.remote(writes), self._call_timeout_s)
        except _NO_ANSWER_ERRORS as exc:
            logger.warning("persistence call got no answer (%s); resending", type(exc).__name__)
            self.resends += 1
        async for attempt in self._retrying(AsyncRetrying):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    self.resends += 1
                # A call that times out may still be applied: the resend is then replayed.
                ref = self._handle().submit.remote(writes)
                return await asyncio.wait_for(ref, self._call_timeout_s)
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ sync

    def write_sync(self, op: str, ctx: AuditContext, *args: Any, **kwargs: Any) -> Any:
        (outcome,) = self.write_many_sync([self.request(op, ctx, *args, **kwargs)])
        return raise_for_outcome(outcome)

    def write_many_sync(self, writes: Sequence[WriteRequest]) -> list[WriteOutcome]:
        writes = list(writes)
        try:  # the common case, without building a retry loop for every call
            return list(ray.get(self._handle().submit.remote(writes), timeout=self._call_timeout_s))
        except _NO_ANSWER_ERRORS as exc:
            logger.warning("persistence call got no answer (%s); resending", type(exc).__name__)
            self.resends += 1
        for attempt in self._retrying(Retrying):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    self.resends += 1
                return list(ray.get(self._handle().submit.remote(writes), timeout=self._call_timeout_s))
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ internals

    def _retrying(self, kind: Any) -> Any:
        return kind(
            retry=retry_if_exception_type(_NO_ANSWER_ERRORS),
            wait=wait_random_exponential(multiplier=0.05, max=2.0),
            stop=stop_after_attempt(self._max_attempts) | stop_after_delay(self._give_up_after_s),
            before_sleep=before_sleep_log(logger, logging.WARNING),
            reraise=True,
        )

    def _handle(self) -> Any:
        if self._actor is None:
            self._actor = ray.get_actor(self._name, namespace=self._namespace)
        return self._actor
