"""Users, roles and refresh-token sessions (login bookkeeping: ``persistence.store.logins``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine.errors import DomainError, NotFound
from engine.types import ensure_utc, utcnow
from persistence.enums import Role
from persistence.models import AuditLog, User, UserSession
from persistence.records import (
    AuditContext,
    RotationOutcome,
    SessionRecord,
    UserRecord,
)
from persistence.store._replay import count_from_details, target_record
from persistence.store._unit import Change, UnitOfWork, write_op

_user_replay = target_record(User, UserRecord)
_session_replay = target_record(UserSession, SessionRecord)


def _role(value: Role | str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise DomainError(
            f"role: {value!r} is not a role (choose from {', '.join(r.value for r in Role)})"
        ) from None


def _require_admin(ctx: AuditContext, what: str) -> None:
    if not (ctx.is_system or ctx.is_admin):
        raise DomainError(f"{what}: only an administrator may do this")


class UserOps(UnitOfWork):
    # ------------------------------------------------------------------ users

    def _user(self, session: Session, user_id: int) -> User:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound(f"user {user_id} not found")
        return user

    @write_op("users")
    def create_user(
        self,
        ctx: AuditContext,
        *,
        username: str,
        password_hash: str,
        email: str | None = None,
        role: Role | str = Role.USER,
        is_active: bool = True,
    ) -> UserRecord:
        """Create a user. The password must already be hashed (the AAA plugin does it)."""
        username = username.strip()
        if not username or len(username) > 64:
            raise DomainError("username: must be 1 to 64 characters")
        if not password_hash:
            raise DomainError("password_hash: must not be empty")
        chosen_role = _role(role)
        if chosen_role is Role.ADMIN and ctx.user_id is not None and not ctx.is_admin:
            raise DomainError("role: only an administrator may create an administrator")

        def apply(session: Session) -> Change[UserRecord]:
            taken = session.scalar(select(User.id).where(User.username == username))
            if taken is not None:
                raise DomainError(f"username: {username!r} is already taken")
            if email is not None and session.scalar(select(User.id).where(User.email == email)):
                raise DomainError(f"email: {email!r} is already registered")
            user = User(
                username=username,
                email=email,
                password_hash=password_hash,
                role=chosen_role.value,
                is_active=is_active,
            )
            session.add(user)
            session.flush()
            return Change(
                UserRecord.model_validate(user),
                "user.create",
                "user",
                user.id,
                {"username": username, "role": chosen_role.value, "is_active": is_active},
            )

        return self._run(ctx, apply, _user_replay)

    @write_op("users")
    def set_user_role(self, ctx: AuditContext, user_id: int, role: Role | str) -> UserRecord:
        _require_admin(ctx, "set_user_role")
        new_role = _role(role)

        def apply(session: Session) -> Change[UserRecord]:
            user = self._user(session, user_id)
            old = user.role
            user.role = new_role.value
            session.flush()
            return Change(
                UserRecord.model_validate(user),
                "user.role_change",
                "user",
                user_id,
                {"from": old, "to": new_role.value},
            )

        return self._run(ctx, apply, _user_replay)

    @write_op("users")
    def set_user_active(self, ctx: AuditContext, user_id: int, is_active: bool) -> UserRecord:
        """Activate or deactivate a user; deactivating also revokes their sessions."""
        _require_admin(ctx, "set_user_active")

        def apply(session: Session) -> Change[UserRecord]:
            user = self._user(session, user_id)
            user.is_active = is_active
            revoked = 0
            if not is_active:
                revoked = _revoke_where(session, UserSession.user_id == user_id)
            session.flush()
            return Change(
                UserRecord.model_validate(user),
                "user.activate" if is_active else "user.deactivate",
                "user",
                user_id,
                {"sessions_revoked": revoked},
            )

        return self._run(ctx, apply, _user_replay)

    @write_op("users")
    def set_password_hash(self, ctx: AuditContext, user_id: int, password_hash: str) -> UserRecord:
        """Replace a user's password hash (self or admin); revokes their sessions."""
        if not password_hash:
            raise DomainError("password_hash: must not be empty")
        if not (ctx.is_system or ctx.is_admin or ctx.user_id == user_id):
            raise NotFound(f"user {user_id} not found")

        def apply(session: Session) -> Change[UserRecord]:
            user = self._user(session, user_id)
            user.password_hash = password_hash
            revoked = _revoke_where(session, UserSession.user_id == user_id)
            session.flush()
            return Change(
                UserRecord.model_validate(user),
                "user.password_change",
                "user",
                user_id,
                {"sessions_revoked": revoked},
            )

        return self._run(ctx, apply, _user_replay)

    # ------------------------------------------------------------------ sessions

    @write_op("sessions")
    def create_session(
        self,
        ctx: AuditContext,
        *,
        user_id: int,
        jti: str,
        family_id: str,
        expires_at: datetime,
        issued_at: datetime | None = None,
    ) -> SessionRecord:
        """Record a refresh token (ip and user agent come from ``ctx``)."""
        if not jti or not family_id:
            raise DomainError("create_session: jti and family_id must not be empty")
        issued = ensure_utc(issued_at) if issued_at is not None else utcnow()
        expires = ensure_utc(expires_at)
        if expires <= issued:
            raise DomainError("expires_at: must be after issued_at")

        def apply(session: Session) -> Change[SessionRecord]:
            user = self._user(session, user_id)
            if not user.is_active:
                raise DomainError(f"user {user_id} is deactivated")
            row = _add_session(session, ctx, user_id, jti, family_id, issued, expires)
            return Change(
                SessionRecord.model_validate(row),
                "session.create",
                "session",
                row.id,
                {"user_id": user_id, "family_id": family_id},
            )

        return self._run(ctx, apply, _session_replay)

    @write_op("sessions")
    def rotate_session(
        self,
        ctx: AuditContext,
        *,
        old_jti: str,
        new_jti: str,
        expires_at: datetime,
        user_id: int,
        family_id: str,
        now: datetime | None = None,
    ) -> RotationOutcome:
        """Replace refresh token ``old_jti`` by ``new_jti`` in the same family.

        ``user_id`` and ``family_id`` are what the presented token claims (``sub``,
        ``sid``): the session must belong to that user AND that login, or the token is
        refused as unknown (NotFound) and nothing changes, not even reuse detection, so
        a token re-signed with someone else's ``jti`` cannot revoke their login.
        Presenting a token that was already rotated or revoked is reuse (a stolen token):
        the whole family is revoked and the outcome says ``reuse_detected``.
        An unknown or expired token raises NotFound / DomainError and changes nothing.
        """
        at = ensure_utc(now) if now is not None else utcnow()
        expires = ensure_utc(expires_at)

        def apply(session: Session) -> Change[RotationOutcome]:
            old = session.scalars(select(UserSession).where(UserSession.jti == old_jti)).first()
            if old is None or old.user_id != user_id or old.family_id != family_id:
                raise NotFound("refresh session not found")
            if old.revoked_at is not None:
                count = _revoke_where(session, UserSession.family_id == old.family_id, at)
                return Change(
                    RotationOutcome(session=None, reuse_detected=True),
                    "session.reuse_detected",
                    "session_family",
                    old.family_id,
                    {"user_id": old.user_id, "count": count},
                )
            if old.expires_at <= at:
                raise DomainError("refresh session expired")
            user = self._user(session, old.user_id)
            if not user.is_active:
                raise DomainError(f"user {user.id} is deactivated")
            old.revoked_at = at
            old.replaced_by_jti = new_jti
            new = UserSession(
                jti=new_jti,
                family_id=old.family_id,
                user_id=old.user_id,
                issued_at=at,
                expires_at=expires,
                ip=ctx.ip,
                user_agent=ctx.user_agent,
            )
            session.add(new)
            session.flush()
            return Change(
                RotationOutcome(session=SessionRecord.model_validate(new)),
                "session.rotate",
                "session",
                new.id,
                {"user_id": old.user_id, "family_id": old.family_id, "replaced": old.id},
            )

        def replay(session: Session, row: AuditLog) -> RotationOutcome:
            if row.action == "session.reuse_detected":
                return RotationOutcome(session=None, reuse_detected=True)
            return RotationOutcome(session=_session_replay(session, row))

        return self._run(ctx, apply, replay)

    @write_op("sessions")
    def revoke_session(
        self, ctx: AuditContext, jti: str, *, user_id: int | None = None, now: datetime | None = None
    ) -> SessionRecord:
        """Revoke one refresh token (logout). Revoking a revoked token keeps its time.
        ``user_id``: the owner the caller expects (from a token's claims); another
        owner's session is NotFound."""
        at = ensure_utc(now) if now is not None else utcnow()

        def apply(session: Session) -> Change[SessionRecord]:
            row = session.scalars(select(UserSession).where(UserSession.jti == jti)).first()
            if (
                row is None
                or (user_id is not None and row.user_id != user_id)
                or not (ctx.is_system or ctx.is_admin or ctx.user_id == row.user_id)
            ):
                raise NotFound("refresh session not found")
            already = row.revoked_at is not None
            if not already:
                row.revoked_at = at
            session.flush()
            return Change(
                SessionRecord.model_validate(row),
                "session.revoke",
                "session",
                row.id,
                {"user_id": row.user_id, "already_revoked": already},
            )

        return self._run(ctx, apply, _session_replay)

    @write_op("sessions")
    def revoke_session_family(
        self, ctx: AuditContext, family_id: str, *, user_id: int | None = None, now: datetime | None = None
    ) -> int:
        """Revoke every live token of a login family; returns how many were revoked.
        ``user_id``: the owner the caller expects (logout passes the token's subject);
        another owner's family is NotFound and nothing changes."""
        at = ensure_utc(now) if now is not None else utcnow()

        def apply(session: Session) -> Change[int]:
            owner = session.scalar(
                select(UserSession.user_id).where(UserSession.family_id == family_id).limit(1)
            )
            if (
                owner is None
                or (user_id is not None and owner != user_id)
                or not (ctx.is_system or ctx.is_admin or ctx.user_id == owner)
            ):
                raise NotFound(f"session family {family_id!r} not found")
            count = _revoke_where(session, UserSession.family_id == family_id, at)
            return Change(
                count,
                "session.revoke_family",
                "session_family",
                family_id,
                {"user_id": owner, "count": count},
            )

        return self._run(ctx, apply, count_from_details)

    @write_op("sessions")
    def revoke_user_sessions(
        self, ctx: AuditContext, user_id: int, *, now: datetime | None = None
    ) -> int:
        """Revoke every live token of a user; returns how many were revoked."""
        at = ensure_utc(now) if now is not None else utcnow()
        if not (ctx.is_system or ctx.is_admin or ctx.user_id == user_id):
            raise NotFound(f"user {user_id} not found")

        def apply(session: Session) -> Change[int]:
            self._user(session, user_id)
            count = _revoke_where(session, UserSession.user_id == user_id, at)
            return Change(count, "session.revoke_all", "user", user_id, {"count": count})

        return self._run(ctx, apply, count_from_details)


def _add_session(
    session: Session,
    ctx: AuditContext,
    user_id: int,
    jti: str,
    family_id: str,
    issued_at: datetime,
    expires_at: datetime,
) -> UserSession:
    """Insert one refresh-token session (flushed: its id is known)."""
    row = UserSession(
        jti=jti,
        family_id=family_id,
        user_id=user_id,
        issued_at=issued_at,
        expires_at=expires_at,
        ip=ctx.ip,
        user_agent=ctx.user_agent,
    )
    session.add(row)
    session.flush()
    return row


def _revoke_where(session: Session, condition: Any, at: datetime | None = None) -> int:
    result = session.execute(
        update(UserSession)
        .where(condition, UserSession.revoked_at.is_(None))
        .values(revoked_at=at or utcnow())
        .execution_options(synchronize_session="fetch")
    )
    return int(result.rowcount or 0)
