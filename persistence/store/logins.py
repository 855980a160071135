"""Login bookkeeping: failed logins under the lockout policy, successful logins, the
gate a login attempt passes first, and an administrator's unlock.

The policy itself (what is counted, who is held back, for how long) is
``persistence.lockout``; this module keeps its counts in ``login_failures`` (one row
per user and client address: consecutive failures for the backoff, and the failures of
the client's current fixed window) and in the user's ``failed_login_count`` (the
window failures of all clients: what the account-wide ceiling compares) and
``locked_until`` (the account-wide hold).

A failed login is audited as an aggregated ``auth.login_failed`` row (one per user,
client and minute, with a count: ``persistence.store._audit``); a hold starting gets an
``auth.lockout`` row of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.orm import Session

from engine.errors import DomainError, NotFound
from engine.types import ensure_utc, utcnow
from persistence.lockout import ACCOUNT, CLIENT, FailedLogin, LockoutPolicy, LoginGate, client_key
from persistence.models import AuditLog, LoginFailure, User, UserSession
from persistence.records import AuditContext, LoginRecord, SessionOpen, SessionRecord, UserRecord
from persistence.store._audit import insert_audit_row
from persistence.store._replay import target_record
from persistence.store._unit import Change, UnitOfWork, coerce, write_op
from persistence.store.users import _add_session

_user_replay = target_record(User, UserRecord)


def _policy(policy: LockoutPolicy | dict[str, Any] | None) -> LockoutPolicy:
    if policy is None:
        return LockoutPolicy()
    if isinstance(policy, LockoutPolicy):
        return policy
    try:
        return LockoutPolicy(**policy)
    except (TypeError, ValueError) as exc:
        raise DomainError(f"record_failed_login.policy: {exc}") from None


def _client_row(session: Session, user_id: int, client: str) -> LoginFailure:
    row = session.scalars(
        select(LoginFailure).where(LoginFailure.user_id == user_id, LoginFailure.client == client)
    ).first()
    if row is None:
        row = LoginFailure(user_id=user_id, client=client, failures=0, window_failures=0)
        session.add(row)
    return row


def _locked_user(session: Session, user_id: int) -> User:
    """The user row, locked for this transaction: a user's login bookkeeping is
    serialised across gateway processes (PostgreSQL; SQLite writers are serial anyway),
    so two racing failures cannot both insert the client's row or both miss a limit."""
    user = session.get(User, user_id, with_for_update=True)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


class LoginOps(UnitOfWork):
    @write_op("users")
    def record_failed_login(
        self,
        ctx: AuditContext,
        user_id: int,
        *,
        policy: LockoutPolicy | dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> FailedLogin:
        """Count a wrong password for ``user_id`` from the client ``ctx.ip`` under
        ``policy`` (default: ``LockoutPolicy()``): the client's consecutive failures
        (restarting after the window) and its backoff hold, the account's failures
        within the window and, at the account limit, the account-wide hold."""
        rules = _policy(policy)
        at = ensure_utc(now) if now is not None else utcnow()
        client = client_key(ctx.ip)
        window_start = at - timedelta(seconds=rules.window_s)

        def apply(session: Session) -> Change[FailedLogin]:
            user = _locked_user(session, user_id)
            row = _client_row(session, user_id, client)
            if rules.restarts(row.last_failed_at, at):
                row.failures = 0
            if rules.restarts(row.window_start, at):
                row.window_failures, row.window_start = 0, at
            row.failures += 1
            row.window_failures += 1
            row.last_failed_at = at
            locks: list[str] = []
            hold = rules.client_lock(row.failures)
            if hold is not None:
                row.locked_until = at + hold
                locks.append(CLIENT)
                insert_audit_row(session, ctx, "auth.lockout", "user", user_id, {
                    "scope": CLIENT, "client": client, "failures": row.failures,
                    "locked_until": row.locked_until.isoformat(),
                })
            session.flush()
            recent = session.scalar(
                select(func.coalesce(func.sum(LoginFailure.window_failures), 0)).where(
                    LoginFailure.user_id == user_id, LoginFailure.window_start > window_start
                )
            )
            user.failed_login_count = int(recent or 0)
            account_held = user.locked_until is not None and user.locked_until > at
            if user.failed_login_count >= rules.account_max_failures and not account_held:
                user.locked_until = at + timedelta(seconds=rules.max_lock_s)
                locks.append(ACCOUNT)
                insert_audit_row(session, ctx, "auth.lockout", "user", user_id, {
                    "scope": ACCOUNT, "failures": user.failed_login_count,
                    "locked_until": user.locked_until.isoformat(),
                })
            # Rows of clients that never logged in and whose failures have aged out
            # mean nothing any more: without this, rotating addresses grows the table.
            session.execute(
                delete(LoginFailure).where(
                    LoginFailure.user_id == user_id,
                    LoginFailure.last_success_at.is_(None),
                    LoginFailure.last_failed_at <= window_start,
                    (LoginFailure.locked_until.is_(None)) | (LoginFailure.locked_until <= at),
                )
            )
            session.flush()
            result = FailedLogin(
                user=UserRecord.model_validate(user),
                client_failures=row.failures,
                client_locked_until=row.locked_until,
                locks_started=tuple(locks),
            )
            return Change(result, "auth.login_failed", "user", user_id, {"reason": "wrong password"}, aggregate=True)

        def replay(session: Session, row: AuditLog) -> FailedLogin:
            user = session.get(User, user_id)
            if user is None:
                raise NotFound(f"user {user_id} not found")
            mine = session.scalars(
                select(LoginFailure).where(LoginFailure.user_id == user_id, LoginFailure.client == client)
            ).first()
            return FailedLogin(
                user=UserRecord.model_validate(user),
                client_failures=mine.failures if mine is not None else 0,
                client_locked_until=mine.locked_until if mine is not None else None,
            )

        return self._run(ctx, apply, replay)

    @write_op("users")
    def record_login(
        self,
        ctx: AuditContext,
        user_id: int,
        *,
        session: SessionOpen | dict[str, Any],
        now: datetime | None = None,
    ) -> LoginRecord:
        """A successful login from the client ``ctx.ip``, as ONE change with one
        ``auth.login`` audit row: clears that client's failures and hold and marks it as
        a known client (exempt from the account-wide hold), stamps ``last_login_at`` and opens the login's first refresh-token
        session (ip and user agent from ``ctx``). The account-wide hold stays: it holds
        back unknown clients, whoever logged in meanwhile; the account's failure count
        loses this client's.

        The audit row names the user and the new session's id and family, never a token.
        A deactivated user gets a DomainError and nothing changes."""
        spec = coerce(SessionOpen, session, "record_login.session")
        at = ensure_utc(now) if now is not None else utcnow()
        issued = spec.issued_at if spec.issued_at is not None else at
        if spec.expires_at <= issued:
            raise DomainError("record_login.session.expires_at: must be after issued_at")
        client = client_key(ctx.ip)

        def apply(session: Session) -> Change[LoginRecord]:
            user = _locked_user(session, user_id)
            if not user.is_active:
                raise DomainError(f"user {user_id} is deactivated")
            row = _client_row(session, user_id, client)
            user.failed_login_count = max(0, user.failed_login_count - (row.window_failures or 0))
            row.failures = row.window_failures = 0
            row.locked_until = None
            row.last_success_at = at
            user.last_login_at = at
            opened = _add_session(session, ctx, user_id, spec.jti, spec.family_id, issued, spec.expires_at)
            return Change(
                LoginRecord(user=UserRecord.model_validate(user), session=SessionRecord.model_validate(opened)),
                "auth.login",
                "user",
                user_id,
                {"session_id": opened.id, "family_id": spec.family_id},
            )

        return self._run(ctx, apply, _login_replay)

    @write_op("users")
    def unlock_user(self, ctx: AuditContext, user_id: int) -> UserRecord:
        """Lift every hold on ``user_id`` (administrator or system): the account-wide
        hold, every client's hold and every failure count. Known clients stay known.
        Audited as ``user.unlock``; NotFound for an unknown user."""
        if not (ctx.is_system or ctx.is_admin):
            raise DomainError("unlock_user: only an administrator may do this")

        def apply(session: Session) -> Change[UserRecord]:
            user = _locked_user(session, user_id)
            was = user.locked_until
            held = session.scalar(
                select(func.count()).select_from(LoginFailure).where(
                    LoginFailure.user_id == user_id, LoginFailure.locked_until.is_not(None)
                )
            )
            session.execute(
                delete(LoginFailure).where(LoginFailure.user_id == user_id, LoginFailure.last_success_at.is_(None))
            )
            session.execute(
                update(LoginFailure)
                .where(LoginFailure.user_id == user_id)
                .values(failures=0, window_failures=0, window_start=None, locked_until=None, last_failed_at=None)
                .execution_options(synchronize_session=False)
            )
            user.failed_login_count = 0
            user.locked_until = None
            session.flush()
            return Change(
                UserRecord.model_validate(user),
                "user.unlock",
                "user",
                user_id,
                {"account_locked_until": was.isoformat() if was else None, "client_holds_cleared": int(held or 0)},
            )

        return self._run(ctx, apply, _user_replay)

    # ------------------------------------------------------------------ reads

    def login_gate(self, user_id: int, ip: str | None, *, now: datetime | None = None) -> LoginGate:
        """Whether the client ``ip`` may try a password for ``user_id`` now (one query;
        ``persistence.lockout.LoginGate.decide`` is the rule)."""
        at = ensure_utc(now) if now is not None else utcnow()
        client = client_key(ip)
        statement = (
            select(User.locked_until, LoginFailure.locked_until, LoginFailure.last_success_at)
            .select_from(User)
            .outerjoin(LoginFailure, and_(LoginFailure.user_id == User.id, LoginFailure.client == client))
            .where(User.id == user_id)
        )
        with self._read_sessions() as session:
            row = session.execute(statement).first()
        if row is None:
            return LoginGate()
        account_until, client_until, last_success = row
        return LoginGate.decide(
            at,
            client_locked_until=ensure_utc(client_until) if client_until else None,
            account_locked_until=ensure_utc(account_until) if account_until else None,
            trusted_client=last_success is not None,
        )

    def held_clients(self, user_ids: Sequence[int], *, now: datetime | None = None) -> dict[int, int]:
        """For each of ``user_ids`` with any, how many clients are held back now."""
        if not user_ids:
            return {}
        at = ensure_utc(now) if now is not None else utcnow()
        statement = (
            select(LoginFailure.user_id, func.count())
            .where(LoginFailure.user_id.in_(list(user_ids)), LoginFailure.locked_until > at)
            .group_by(LoginFailure.user_id)
        )
        with self._read_sessions() as session:
            return {int(uid): int(n) for uid, n in session.execute(statement)}


def _login_replay(session: Session, row: AuditLog) -> LoginRecord:
    """A resent login returns the user and the session the first delivery opened."""
    user = session.get(User, int(row.target_id)) if row.target_id is not None else None
    opened = session.get(UserSession, int(row.details.get("session_id", 0)))
    if user is None or opened is None:
        raise NotFound(f"login {row.request_id}: its user or session no longer exists")
    return LoginRecord(user=UserRecord.model_validate(user), session=SessionRecord.model_validate(opened))
