"""Registration, login with lockout, refresh-token rotation with reuse detection, logout.

Lockout (``persistence.lockout`` is the policy): failures count per account AND client
address, with exponential backoff per client and a much higher account-wide ceiling
that known clients are exempt from, so anonymous requests cannot lock an owner out.

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
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from api.errors import AccountLocked, Conflict, Unauthorized
from engine.errors import DomainError, NotFound
from engine.plugins.base import AAAPlugin
from engine.types import utcnow
from persistence.enums import Role
from persistence.lockout import ACCOUNT, LockoutPolicy, client_key
from persistence.records import AuditContext, SessionOpen, UserRecord

logger = logging.getLogger(__name__)

BAD_CREDENTIALS = "invalid username or password"


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int


def _lockout_policy(aaa: AAAPlugin) -> LockoutPolicy:
    """The AAA plugin's lockout numbers; the policy's defaults for a plugin without any."""
    policy = getattr(aaa, "lockout_policy", None)
    return policy if isinstance(policy, LockoutPolicy) else LockoutPolicy()


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
    """Check the password under the lockout policy (``persistence.lockout``) and open a
    new login. A client held back (its own backoff, or the account-wide hold for a
    client that never logged into this account, or its other attempt still running)
    gets 423 with ``Retry-After`` before any password is checked. Refusals are audited as aggregated rows (one per user,
    client, reason and minute, with a count)."""
    creds = store.get_credentials(username)
    if creds is None:
        burn = getattr(aaa, "burn_verify_time", None)
        if burn is not None:
            burn()  # an unknown name costs what a wrong password costs
        # Not keyed by the name tried: a spray of made-up names is one row per client and minute.
        writer.audit(ctx, "auth.login_failed", target_type="user", details={"reason": "unknown user"}, aggregate=True)
        raise Unauthorized(BAD_CREDENTIALS, audited=True)
    user = creds.user
    user_ctx = ctx.model_copy(update={"user_id": user.id})
    with _IN_FLIGHT.claim((user.id, client_key(ctx.ip))) as claimed:
        if not claimed:
            raise _held_back(writer, user_ctx, user.id, utcnow(), IN_FLIGHT)
        gate = store.login_gate(user.id, ctx.ip)
        if gate.blocked_until is not None:
            raise _held_back(writer, user_ctx, user.id, gate.blocked_until, gate.scope)
        if not aaa.verify_password(password, creds.password_hash):
            failed = writer.record_failed_login(user_ctx, user.id, policy=_lockout_policy(aaa))
            if failed.locks_started:
                logger.warning("user %s: failed logins started a %s hold", user.id, " and ".join(failed.locks_started))
            raise Unauthorized(BAD_CREDENTIALS, audited=True)
    if not user.is_active:
        writer.audit(user_ctx, "auth.login_refused", target_type="user", target_id=user.id, details={"reason": "deactivated"}, aggregate=True)
        raise Unauthorized("account deactivated", audited=True)
    family = secrets.token_urlsafe(16)
    tokens = aaa.create_tokens(str(user.id), sid=family)
    login_ctx = ctx.model_copy(update={"user_id": user.id, "is_admin": user.is_admin})
    # One write, one audit row (auth.login): clears this client's failures and opens the
    # refresh-token session, in one transaction.
    session = SessionOpen(jti=_refresh_jti(tokens, aaa), family_id=family, expires_at=_refresh_expiry(tokens, aaa))
    try:
        writer.record_login(login_ctx, user.id, session=session)
    except DomainError as exc:  # deactivated between the check above and the write
        raise Unauthorized(f"login refused: {exc}") from None
    return _issued(tokens)


def _held_back(writer: Any, ctx: AuditContext, user_id: int, until: datetime, scope: str | None) -> AccountLocked:
    wait = max(1, math.ceil((until - utcnow()).total_seconds()))
    writer.audit(ctx, "auth.login_locked", target_type="user", target_id=user_id, details={"scope": scope}, aggregate=True)
    if scope == ACCOUNT:
        message = f"account locked after too many failed logins; try again in {wait} s"
    elif scope == IN_FLIGHT:
        message = f"another login for this account from this client is in progress; try again in {wait} s"
    else:
        message = f"too many failed logins from this client; try again in {wait} s"
    return AccountLocked(message, headers={"Retry-After": str(wait)}, audited=True)


IN_FLIGHT = "in_flight"


class _InFlight:
    """The (user id, client) pairs whose password check is running in this process.

    The hold is checked before the password and written after it: without this, N
    requests sent at once would all pass the check and get N guesses where the policy
    allows a few. A second attempt for the same pair while one runs is refused at once
    (423, nothing waits, so a flood cannot tie up the thread pool). Across P gateway
    processes at most P attempts per pair are in flight."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[tuple[int, str]] = set()

    @contextmanager
    def claim(self, key: tuple[int, str]) -> Iterator[bool]:
        with self._lock:
            claimed = key not in self._running
            self._running.add(key)
        try:
            yield claimed
        finally:
            if claimed:
                with self._lock:
                    self._running.discard(key)


_IN_FLIGHT = _InFlight()


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
