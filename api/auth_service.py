"""Registration, login with lockout, refresh-token rotation with reuse detection, logout.

Passwords and tokens are the AAA plugin's business; every state change goes through the
Store (``writer``), which writes its audit row in the same transaction. A refresh token
is one ``sessions`` row; the rows of one login share a family id (the ``sid`` claim).
Rotation revokes the presented row and creates its successor; presenting a revoked
row again is reuse, and the Store then revokes the whole family.
"""

from __future__ import annotations

import logging
import math
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from api.errors import AccountLocked, Conflict, Unauthorized
from engine.errors import DomainError, NotFound
from engine.plugins.base import AAAPlugin
from engine.types import utcnow
from persistence.enums import Role
from persistence.records import AuditContext, SessionOpen, UserRecord

logger = logging.getLogger(__name__)

BAD_CREDENTIALS = "invalid username or password"


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int


def _lockout_policy(aaa: AAAPlugin) -> tuple[int, float]:
    """(failed attempts before lock, lock seconds) from the AAA plugin (defaults 5, 30 min)."""
    attempts = getattr(aaa, "max_failed_logins", 5)
    lockout = getattr(aaa, "lockout", None)
    seconds = lockout.total_seconds() if lockout is not None else 1800.0
    return int(attempts), float(seconds)


def _refresh_expiry(tokens: dict[str, Any], aaa: AAAPlugin) -> datetime:
    expires = tokens.get("refresh_expires_at")
    if isinstance(expires, datetime):
        return expires
    claims = aaa.decode_token(tokens["refresh_token"], "refresh")
    return datetime.fromtimestamp(claims["exp"], tz=utcnow().tzinfo)


def _refresh_jti(tokens: dict[str, Any], aaa: AAAPlugin) -> str:
    jti = tokens.get("refresh_jti")
    return jti if isinstance(jti, str) else aaa.decode_token(tokens["refresh_token"], "refresh")["jti"]


def _issued(tokens: dict[str, Any]) -> IssuedTokens:
    return IssuedTokens(
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        token_type=tokens.get("token_type", "bearer"),
        expires_in=int(tokens.get("expires_in", 0)),
    )


def register(writer: Any, store: Any, aaa: AAAPlugin, ctx: AuditContext, *, username: str, password: str, email: str | None) -> UserRecord:
    """Create an account with role ``user`` (the policy was checked by the schema)."""
    if store.find_user(username) is not None:
        raise Conflict(f"username {username!r} is already taken")
    try:
        password_hash = aaa.hash_password(password)
    except ValueError as exc:  # policy (e.g. > 72 bytes): a client error, never a 500
        raise DomainError(str(exc)) from None
    return writer.create_user(ctx, username=username, password_hash=password_hash, email=email, role=Role.USER)


def login(writer: Any, store: Any, aaa: AAAPlugin, ctx: AuditContext, *, username: str, password: str) -> IssuedTokens:
    """Check the password, count failures (lock after the limit), open a new login."""
    creds = store.get_credentials(username)
    if creds is None:
        burn = getattr(aaa, "burn_verify_time", None)
        if burn is not None:
            burn()  # an unknown name costs what a wrong password costs
        writer.audit(ctx, "auth.login_failed", target_type="user", details={"username": username[:64], "reason": "unknown user"})
        raise Unauthorized(BAD_CREDENTIALS, audited=True)
    user = creds.user
    now = utcnow()
    if user.is_locked(now):
        assert user.locked_until is not None
        wait = max(1, math.ceil((user.locked_until - now).total_seconds()))
        writer.audit(
            ctx.model_copy(update={"user_id": user.id}),
            "auth.login_locked",
            target_type="user",
            target_id=user.id,
            details={"locked_until": user.locked_until.isoformat()},
        )
        raise AccountLocked(
            f"account locked after too many failed logins; try again in {wait} s",
            headers={"Retry-After": str(wait)},
            audited=True,
        )
    if not aaa.verify_password(password, creds.password_hash):
        attempts, lock_s = _lockout_policy(aaa)
        after = writer.record_failed_login(ctx.model_copy(update={"user_id": user.id}), user.id, max_attempts=attempts, lockout_s=lock_s)
        if after.is_locked(utcnow()):
            logger.warning("user %s locked after %d failed logins", user.id, attempts)
        raise Unauthorized(BAD_CREDENTIALS, audited=True)
    if not user.is_active:
        writer.audit(ctx.model_copy(update={"user_id": user.id}), "auth.login_refused", target_type="user", target_id=user.id, details={"reason": "deactivated"})
        raise Unauthorized("account deactivated", audited=True)
    family = secrets.token_urlsafe(16)
    tokens = aaa.create_tokens(str(user.id), sid=family)
    user_ctx = ctx.model_copy(update={"user_id": user.id, "is_admin": user.is_admin})
    # One write, one audit row (auth.login): resets the failure count and any lock and
    # opens the refresh-token session, in one transaction.
    session = SessionOpen(jti=_refresh_jti(tokens, aaa), family_id=family, expires_at=_refresh_expiry(tokens, aaa))
    try:
        writer.record_login(user_ctx, user.id, session=session)
    except DomainError as exc:  # deactivated between the check above and the write
        raise Unauthorized(f"login refused: {exc}") from None
    return _issued(tokens)


def subject_user_id(claims: dict[str, Any]) -> int:
    """The user id a verified token names (``sub``): ASCII digits for an id the database
    can hold, else 401 (``"²".isdigit()`` is true, and an id past 2**63 breaks a query)."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not (sub.isascii() and sub.isdigit()) or not 0 < int(sub) < 2**63:
        raise Unauthorized("invalid token: bad subject")
    return int(sub)


def refresh(writer: Any, aaa: AAAPlugin, ctx: AuditContext, *, refresh_token: str) -> IssuedTokens:
    """Rotate a refresh token: the presented one dies, a new pair is issued. Reusing a
    rotated (or revoked) token revokes every token of that login.

    The token is valid only for the user (``sub``) and login (``sid``) it was issued
    for: the Store refuses a session that belongs to another user or family (401, and
    nothing changes), so a token re-signed with another ``sub`` gets nothing."""
    claims = aaa.decode_token(refresh_token, "refresh")
    family = claims.get("sid")
    if not isinstance(family, str) or not family:
        raise Unauthorized("invalid token: no session id")
    user_id = subject_user_id(claims)
    tokens = aaa.create_tokens(str(user_id), sid=family)
    try:
        outcome = writer.rotate_session(
            ctx.model_copy(update={"user_id": user_id}),
            old_jti=claims["jti"],
            new_jti=_refresh_jti(tokens, aaa),
            expires_at=_refresh_expiry(tokens, aaa),
            user_id=user_id,
            family_id=family,
        )
    except NotFound:
        raise Unauthorized("refresh token unknown") from None
    except DomainError as exc:  # expired session, deactivated user
        raise Unauthorized(f"refresh refused: {exc}") from None
    if outcome.reuse_detected:
        logger.warning("refresh token reuse for user %s: login family revoked", claims["sub"])
        raise Unauthorized("refresh token already used; every token of this login is now revoked", audited=True)
    return _issued(tokens)


def logout(writer: Any, ctx: AuditContext, family: str, *, user_id: int) -> int:
    """Revoke every token of the caller's login (``user_id``'s family ``family``);
    returns how many were live."""
    try:
        return int(writer.revoke_session_family(ctx, family, user_id=user_id))
    except NotFound:
        raise Unauthorized("session unknown") from None
