"""The ``Store`` class (see the package docstring); imported on first use of
``persistence.store.Store``, so that processes that only describe writes
(``WriteRequest``) and read records do not import SQLAlchemy."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from engine.errors import DomainError, LTSError
from engine.public_text import public_text
from persistence.database import make_engine, make_read_session_factory, make_write_session_factory
from persistence.models import AuditLog
from persistence.store._lookup import KEYS, keyed
from persistence.store._unit import WRITE_OPS, _Batch
from persistence.store.logins import LoginOps
from persistence.store.portfolios import PortfolioOps
from persistence.store.reads import ReadOps
from persistence.store.records_ops import RecordOps
from persistence.store.trading import TradingOps
from persistence.store.trading_stats import TradingStatsOps
from persistence.store.users import UserOps
from persistence.store.writes import WriteOutcome, WriteRequest

logger = logging.getLogger(__name__)

# Which of a batch's request ids are applied already (one keyed query, see ``_lookup``).
_APPLIED_REQUEST_IDS = select(AuditLog.request_id)

# Each write operation's signature, to check a WriteRequest's arguments before the call.
_SIGNATURES: dict[str, inspect.Signature] = {}

__all__ = ["Store", "WriteOutcome", "WriteRequest", "WRITE_OPS"]


class Store(UserOps, LoginOps, PortfolioOps, TradingOps, RecordOps, ReadOps, TradingStatsOps):
    """Facade over the database: every write with its audit row, every read as records."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(make_write_session_factory(engine), make_read_session_factory(engine))
        self.engine = engine

    @classmethod
    def from_url(cls, url: str | URL, **engine_options: Any) -> "Store":
        """A Store with its own engine (dispose it with ``close()``)."""
        return cls(make_engine(url, **engine_options))

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ writes as data

    def apply(self, write: WriteRequest) -> Any:
        """Run one described write (its own transaction). Raises like the method would."""
        return self._dispatch(write)

    def apply_each(self, writes: Sequence[WriteRequest]) -> list[WriteOutcome]:
        """Apply ``writes`` in order, each in its own transaction (no batching)."""
        outcomes: list[WriteOutcome] = []
        for write in writes:
            try:
                outcomes.append(WriteOutcome.success(write, self._dispatch(write)))
            except LTSError as exc:
                outcomes.append(WriteOutcome.failure(write, exc))
        return outcomes

    def apply_batch(self, writes: Sequence[WriteRequest]) -> list[WriteOutcome]:
        """Apply ``writes`` in order in ONE transaction, each as if inside its own
        SAVEPOINT, so a bad write fails alone (its outcome says why) and the rest commit
        together.

        Optimistic: the batch first runs without savepoints (they cost two statements per
        write, a third of a trade's round trips on PostgreSQL) and inserts its audit rows
        with one multi-row insert at the end. If any write fails, that pass is rolled back
        and the batch is re-run with a real SAVEPOINT per write. Both passes run the same
        Store operations: there is one implementation of the ledger rules.

        Returns one outcome per write, in order, after the commit. If the database or the
        commit fails the exception propagates and nothing of the batch is stored.
        """
        if self._current_batch() is not None:
            raise RuntimeError("apply_batch cannot be nested")
        try:
            return self._run_batch(writes, savepoints=False)
        except _OptimisticPassFailed as failed:
            logger.debug("batch of %d writes re-run with savepoints: %s", len(writes), failed)
            return self._run_batch(writes, savepoints=True)

    def _run_batch(self, writes: Sequence[WriteRequest], *, savepoints: bool) -> list[WriteOutcome]:
        outcomes: list[WriteOutcome] = []
        with self._write_sessions.begin() as session:
            request_ids = [w.ctx.request_id for w in writes if w.ctx.request_id is not None]
            present: set[str] = set()
            if request_ids:
                present = set(session.scalars(keyed(session, _APPLIED_REQUEST_IDS, AuditLog.request_id),
                                              {KEYS: request_ids}))
            batch = self._local.batch = _Batch(session, set(request_ids) - present, savepoints)
            try:
                self.prefetch_order_ids(session, _intent_ids(writes))
                for write in writes:
                    outcome = self._apply_in_batch(write)
                    if not savepoints and not outcome.ok:
                        # No savepoint to roll back to: undo the pass, re-run with savepoints.
                        raise _OptimisticPassFailed(f"{write.op}: {outcome.error}")
                    outcomes.append(outcome)
                if not savepoints:
                    try:
                        self._insert_deferred_audits(batch)
                    except DBAPIError as exc:
                        if _is_connection_failure(exc):
                            raise
                        raise _OptimisticPassFailed(f"audit rows refused: {exc.orig}") from None
            finally:
                self._local.batch = None
        return outcomes

    def _apply_in_batch(self, write: WriteRequest) -> WriteOutcome:
        try:
            result = self._dispatch(write)
        except LTSError as exc:
            return WriteOutcome.failure(write, exc)
        except DBAPIError as exc:
            if _is_connection_failure(exc):
                raise  # the connection or database failed: the whole batch must be resent
            # Not a refused value (``_unit`` turned those into domain errors): a statement
            # the database refused (a trigger, a bug). SQLAlchemy's text has the SQL and
            # the parameters: server log only; the outcome says what the database said.
            logger.exception("write %s (%s) failed in the database", write.ctx.request_id, write.op)
            return _internal_failure(write, exc, f"the database refused the write: {public_text(exc.orig or exc)}")
        except Exception as exc:  # noqa: BLE001 - a bug in one write must not sink the batch
            logger.exception("write %s (%s) failed unexpectedly", write.ctx.request_id, write.op)
            return _internal_failure(write, exc)
        return WriteOutcome.success(write, result)

    def _dispatch(self, write: WriteRequest) -> Any:
        if write.op not in WRITE_OPS:
            raise DomainError(f"unknown write operation {write.op!r}")
        method = getattr(self, write.op)
        signature = _SIGNATURES.get(write.op)
        if signature is None:
            signature = _SIGNATURES[write.op] = inspect.signature(method)
        try:
            signature.bind(write.ctx, *write.args, **write.kwargs)
        except TypeError as exc:
            # A malformed request (wrong arguments for the operation): the client's error.
            # A TypeError raised inside the operation is a bug and propagates as one.
            raise DomainError(f"{write.op}: {exc}") from None
        return method(write.ctx, *write.args, **write.kwargs)


def _internal_failure(write: WriteRequest, exc: BaseException, message: str | None = None) -> WriteOutcome:
    """The outcome of a write that failed on a bug or a refused statement: ``message``
    (default: the exception's class), never its text (the caller may show the outcome's
    error to a client, and SQLAlchemy's text quotes the statement and its parameters)."""
    return WriteOutcome(request_id=write.request_id, op=write.op, ok=False,
                        error=message or f"internal error ({type(exc).__name__}); see the server log",
                        error_type=type(exc).__name__)


def _is_connection_failure(exc: DBAPIError) -> bool:
    """The database or connection failed (retry the whole batch), as opposed to one
    statement being refused (that write fails alone)."""
    return exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError))


def _intent_ids(writes: Sequence[WriteRequest]) -> list[str]:
    """Client order ids of the order intents in ``writes`` (for one existence query)."""
    ids = []
    for write in writes:
        if write.op == "record_order_intent" and write.args:
            intent = write.args[0]
            coid = intent.get("client_order_id") if isinstance(intent, dict) else getattr(intent, "client_order_id", None)
            if isinstance(coid, str):
                ids.append(coid)
    return ids


class _OptimisticPassFailed(Exception):
    """A write failed during a batch's savepoint-free pass: roll it back, use savepoints."""
