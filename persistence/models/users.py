"""Users, their refresh-token sessions and their failed-login counts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from persistence.base import Base, UTCDateTime
from persistence.enums import Role, sql_in
from persistence.models._columns import IdType, created_at, primary_key, updated_at


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(sql_in("role", Role), name="role"),)

    id: Mapped[int] = primary_key()
    username: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False, default=Role.USER.value)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    failed_login_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class UserSession(Base):
    """One refresh token. ``family_id`` links the tokens of one login across rotations,
    so reuse of a rotated token can revoke the whole family."""

    __tablename__ = "sessions"
    __table_args__ = (
        Index("ix_sessions_user_id_revoked_at", "user_id", "revoked_at"),
        Index("ix_sessions_family_id", "family_id"),
    )

    id: Mapped[int] = primary_key()
    jti: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    family_id: Mapped[str] = mapped_column(String(64), nullable=False)
    user_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    issued_at: Mapped[datetime] = created_at()
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    replaced_by_jti: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))


class LoginFailure(Base):
    """Failed logins of one user from one client address, for the lockout policy
    (``persistence.lockout``): consecutive failures, this client's hold, and when this
    client last logged in successfully (a known client is exempt from the account-wide
    hold). One row per (user, client); in the database so that every gateway process
    shares it and a restart does not forget it."""

    __tablename__ = "login_failures"
    __table_args__ = (UniqueConstraint("user_id", "client"),)

    id: Mapped[int] = primary_key()
    user_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    client: Mapped[str] = mapped_column(String(64), nullable=False)
    # Consecutive failures (the backoff's count) and the failures of the current fixed
    # window (what the account-wide ceiling adds up).
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    window_failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
