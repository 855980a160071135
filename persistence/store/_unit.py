"""The write machinery every Store operation goes through.

One operation = one transaction that applies the change and inserts its ``audit_logs``
row before commit, so a change without its audit row cannot exist (INT-08).
``AuditContext.request_id`` makes a write idempotent: if an audit row with that id exists,
the write was applied before and its result is replayed instead.

Batches (``Store.apply_batch``) put many writes in one transaction. They first run an
optimistic pass: no savepoints, audit rows inserted together just before the commit. If any
write (or the audit insert) fails, that pass is rolled back and the batch runs again with
a SAVEPOINT and an immediate audit insert per write, so a bad write fails alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import bindparam, select
from sqlalchemy.exc import DataError as DatabaseDataError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import DomainError, NotFound, UnstorableValue
from engine.public_text import public_text
from engine.types import utcnow
from persistence.models import AuditLog, Portfolio
from persistence.records import AuditContext, AuditRecord
from persistence.store._audit import upsert_aggregated

logger = logging.getLogger(__name__)

# Statements built once: building them per write costs more than running them on SQLite.
_AUDIT_TABLE = AuditLog.__table__
_AUDIT_INSERT = _AUDIT_TABLE.insert().returning(_AUDIT_TABLE.c.id)
# A pass's deferred audit rows: one statement (insertmanyvalues), ids in write order.
_AUDIT_INSERT_MANY = _AUDIT_TABLE.insert().returning(_AUDIT_TABLE.c.id, sort_by_parameter_order=True)
_AUDIT_BY_REQUEST = select(AuditLog).where(AuditLog.request_id == bindparam("request_id"))

R = TypeVar("R")
T = TypeVar("T")
S = TypeVar("S", bound=BaseModel)

WRITE_OPS: dict[str, str] = {}
"""Name of every public write operation -> its area; the persistence actor accepts only these."""


def write_op(area: str) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Register a Store method as a write operation callable through ``Store.apply``."""

    def register(method: Callable[..., R]) -> Callable[..., R]:
        WRITE_OPS[method.__name__] = area
        return method

    return register


@dataclass
class Change(Generic[R]):
    """What an operation did: its result, and the audit row describing it."""

    result: R
    action: str
    target_type: str | None = None
    target_id: Any = None
    details: dict[str, Any] = field(default_factory=dict)
    # Builds the result from the inserted audit row, for writes whose result is that row.
    finish: Callable[[AuditRecord], R] | None = None
    # Runs once the write and its audit row are in: updates batch-local caches.
    after: Callable[[], None] | None = None
    # Repeated authentication failures: count into the window's shared row instead of
    # inserting one (``persistence.store._audit``).
    aggregate: bool = False


class _Batch:
    """State of an open batch transaction on the writer thread."""

    def __init__(self, session: Session, absent_request_ids: set[str], savepoints: bool) -> None:
        self.session = session
        # False on the optimistic first pass: no SAVEPOINT round trips; any failure aborts
        # the pass and the batch is re-run with a SAVEPOINT per write.
        self.savepoints = savepoints
        # Request ids known not to be in audit_logs at batch start: no lookup needed.
        self.absent = absent_request_ids
        # Orders created in this batch, by client order id, and the positions opened for
        # them here: a trade's later writes find them without a SELECT each.
        self.new_orders: dict[str, Any] = {}
        self.new_positions: dict[int, Any] = {}
        # Client order ids known not to be in the database at batch start.
        self.absent_orders: set[str] = set()

        # Optimistic pass only: audit rows to insert together at the end of the pass.
        self.pending_audits: list[dict[str, Any]] = []
        self.deferred_audits: dict[str, dict[str, Any]] = {}

    def defer_audit(self, values: dict[str, Any]) -> None:
        self.pending_audits.append(values)
        if values["request_id"] is not None:
            self.deferred_audits[values["request_id"]] = values

    def forget_orders(self) -> None:
        """Drop the caches (a delete may have cascaded to cached rows)."""
        self.new_orders.clear()
        self.new_positions.clear()
        self.absent_orders.clear()


def coerce(spec_type: type[S], value: S | dict[str, Any], where: str) -> S:
    """Accept a spec or a plain dict; invalid input becomes a DomainError naming fields."""
    if isinstance(value, spec_type):
        return value
    try:
        return spec_type.model_validate(value)
    except ValidationError as exc:
        raise DomainError(f"{where}: {describe_validation(exc)}") from None


def describe_validation(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"]) or "value"
        parts.append(f"{loc}: {error['msg']}")
    return "; ".join(parts)


def _integrity_message(exc: IntegrityError) -> str:
    """The driver's own first line ("UNIQUE constraint failed: portfolios.name"), never
    SQLAlchemy's text around it (the statement and its parameters)."""
    return public_text(exc.orig if exc.orig is not None else type(exc).__name__)


# SQLSTATE of a value PostgreSQL refuses -> what the client is told (the driver's text
# quotes the value and, on later lines, the statement).
_REFUSED_VALUES: dict[str, str] = {
    "22001": "a text value is longer than its column allows",
    "22003": "a number is outside the range the database can store",
    "22007": "a date or time value is not valid",
    "22008": "a date or time value is out of range",
    "22021": "text contains a character the database cannot store",
    "22P02": "a value is not in the form its column needs",
    "22P05": "text contains a character the database cannot store",
}


def refused_value(exc: BaseException) -> UnstorableValue | None:
    """The client's error for a value the database or its driver refused to store, or
    None when ``exc`` is something else (a bug, a lost connection: not the input's fault).

    Covers SQLAlchemy's ``DataError`` (PostgreSQL's class 22, and psycopg's refusal of a
    NUL character) and the driver's ``UnicodeEncodeError`` for a lone surrogate, which
    neither database can encode. The request layer refuses these first; this is the
    backstop that keeps the statement out of the answer."""
    if isinstance(exc, UnicodeEncodeError):
        return UnstorableValue("write refused by the database: text contains a character that is not "
                               "valid Unicode (a lone surrogate)")
    if not isinstance(exc, DatabaseDataError):
        return None
    orig = exc.orig
    text = str(orig) if orig is not None else ""
    if "NUL" in text and "0x00" in text:
        reason = "text contains a NUL character"
    else:
        code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        reason = _REFUSED_VALUES.get(str(code), "a value was refused")
    return UnstorableValue(f"write refused by the database: {reason}")


def _log_refusal(request_id: str | None, exc: BaseException) -> None:
    """The server log's record of a refused write: the driver's message and the statement,
    never the parameters (they may be a password hash or a user's secret)."""
    statement = getattr(exc, "statement", None)
    logger.info("write %s refused by the database: %s: %s%s", request_id, type(exc).__name__,
                getattr(exc, "orig", None) or exc, f" [statement: {statement}]" if statement else "")


class UnitOfWork:
    """Transaction + audit + idempotency for Store writes (mixed into ``Store``)."""

    def __init__(self, write_sessions: sessionmaker[Session], read_sessions: sessionmaker[Session]):
        self._write_sessions = write_sessions
        self._read_sessions = read_sessions
        self._local = threading.local()

    # ------------------------------------------------------------------ running writes

    def _current_batch(self) -> _Batch | None:
        return getattr(self._local, "batch", None)

    def _run(
        self,
        ctx: AuditContext,
        apply: Callable[[Session], Change[R]],
        replay: Callable[[Session, AuditLog], R],
    ) -> R:
        """Apply one write with its audit row atomically, or replay it if already applied."""
        batch = self._current_batch()
        if batch is None:
            with self._write_sessions.begin() as session:
                return self._apply_once(session, ctx, apply, replay, batch=None)
        if not batch.savepoints:
            return self._apply_once(batch.session, ctx, apply, replay, batch=batch)
        with batch.session.begin_nested():
            return self._apply_once(batch.session, ctx, apply, replay, batch=batch)

    def _apply_once(
        self,
        session: Session,
        ctx: AuditContext,
        apply: Callable[[Session], Change[R]],
        replay: Callable[[Session, AuditLog], R],
        batch: _Batch | None,
    ) -> R:
        request_id = ctx.request_id
        if request_id is not None:
            deferred = None if batch is None else batch.deferred_audits.get(request_id)
            if deferred is not None:  # applied earlier in this pass, audit row not yet inserted
                return replay(session, AuditLog(**deferred))
            if batch is None or request_id not in batch.absent:
                previous = session.scalars(_AUDIT_BY_REQUEST, {"request_id": request_id}).first()
                if previous is not None:
                    logger.debug("write %s already applied (%s): replaying", request_id, previous.action)
                    return replay(session, previous)
        audit_id: int | None = None
        aggregated: AuditRecord | None = None
        try:
            change = apply(session)
            session.flush()
            values: dict[str, Any] = {
                "user_id": ctx.user_id,
                "action": change.action,
                "target_type": change.target_type,
                "target_id": None if change.target_id is None else str(change.target_id),
                "details": change.details,
                "ip": ctx.ip,
                "user_agent": ctx.user_agent,
                "request_id": request_id,
                "created_at": utcnow(),
            }
            if change.aggregate:
                aggregated = upsert_aggregated(session, values)
                audit_id = aggregated.id
            elif batch is not None and not batch.savepoints and change.finish is None:
                # Optimistic batch pass: every audit row of the pass goes in with one
                # statement before the commit; if that fails the pass is re-run with
                # a SAVEPOINT and an immediate audit insert per write.
                batch.defer_audit(values)
            else:
                # A Core insert: a third of the cost of an ORM flush.
                audit_id = session.execute(_AUDIT_INSERT, values).scalar_one()
        except IntegrityError as exc:
            _log_refusal(request_id, exc)
            raise DomainError(
                f"write refused by the database: {_integrity_message(exc)}"
            ) from None
        except (DatabaseDataError, UnicodeEncodeError) as exc:
            refusal = refused_value(exc)
            if refusal is None:  # pragma: no cover - both kinds are values the input holds
                raise
            _log_refusal(request_id, exc)
            raise refusal from None
        if batch is not None and request_id is not None:
            batch.absent.discard(request_id)  # a resend later in this batch must replay
        if change.after is not None:
            change.after()
        if change.finish is not None:
            assert audit_id is not None
            return change.finish(aggregated or AuditRecord(id=audit_id, **values))
        return change.result

    def _insert_deferred_audits(self, batch: _Batch) -> None:
        """Insert the audit rows an optimistic pass deferred (one executemany)."""
        if batch.pending_audits:
            batch.session.execute(_AUDIT_INSERT_MANY, batch.pending_audits).all()
            batch.pending_audits = []

    # ------------------------------------------------------------------ shared checks

    @staticmethod
    def _portfolio_for(session: Session, ctx: AuditContext, portfolio_id: int) -> Portfolio:
        """The portfolio, if it exists and ``ctx`` may change it; NotFound otherwise
        (a user cannot tell another user's portfolio from a missing one)."""
        portfolio = session.get(Portfolio, portfolio_id)
        if portfolio is None or not _may_touch(ctx, portfolio.owner_id):
            raise NotFound(f"portfolio {portfolio_id} not found")
        return pin(session, portfolio)

    @staticmethod
    def _replay_audit(session: Session, row: AuditLog) -> AuditRecord:
        return AuditRecord.model_validate(row)


def pin(session: Session, obj: T) -> T:
    """Keep ``obj`` alive for the session's lifetime.

    The identity map holds objects weakly: without this, the portfolio and asset a batch
    of order writes all refer to would be garbage collected and reloaded for every write.
    """
    session.info.setdefault("lts_pins", {})[id(obj)] = obj
    return obj


def _may_touch(ctx: AuditContext, owner_id: int | None) -> bool:
    return ctx.is_system or ctx.is_admin or (owner_id is not None and owner_id == ctx.user_id)


def may_touch(ctx: AuditContext, owner_id: int | None) -> bool:
    """Whether the writer in ``ctx`` may change something owned by ``owner_id``."""
    return _may_touch(ctx, owner_id)
