"""``default_aaa``: bcrypt password hashing, the password policy, HS256 JWTs and the
failed-login lockout's numbers (the policy itself: :mod:`persistence.lockout`).

Tokens carry ``sub`` (user id), ``type`` (``access``|``refresh``), ``jti`` (unique id),
``sid`` (the login's token family), ``iat`` and ``exp``. Decoding pins the algorithm
(``alg=none`` and RS/HS confusion are refused) and requires ``exp``, ``iat``, ``sub``,
``jti`` and ``type``: PyJWT only checks ``exp`` when it is present, so a token without
one would otherwise live forever.

The signing secret is never a built-in default: it comes from config ``jwt_secret``,
env ``LTS_JWT_SECRET`` or a generated file (see :mod:`api.secrets`) and is handed to
the plugin with :meth:`DefaultAAA.set_secret`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

import bcrypt
import jwt

from api.errors import Unauthorized
from engine.errors import ConfigError
from engine.plugins.base import AAAPlugin
from engine.types import utcnow
from persistence.lockout import LockoutPolicy

logger = logging.getLogger(__name__)

_LOCKOUT = LockoutPolicy()  # the policy's defaults are this plugin's parameter defaults

ACCESS = "access"
REFRESH = "refresh"
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_BYTES = 72  # bcrypt's limit; bcrypt 5 raises ValueError above it
MIN_SECRET_CHARS = 32  # HS256 wants a key of at least 256 bits


def password_problems(password: str) -> list[str]:
    """What is wrong with ``password`` under the policy (empty list: acceptable).

    Policy: at least 8 characters, an uppercase letter, a digit, at most 72 bytes in
    UTF-8 (bcrypt only ever sees 72 bytes: a longer password is refused, not cut)."""
    problems = []
    if len(password) < MIN_PASSWORD_CHARS:
        problems.append(f"must be at least {MIN_PASSWORD_CHARS} characters long")
    if not any(c.isupper() for c in password):
        problems.append("must contain an uppercase letter")
    if not any(c.isdigit() for c in password):
        problems.append("must contain a digit")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        problems.append(f"must be at most {MAX_PASSWORD_BYTES} bytes in UTF-8")
    return problems


class DefaultAAA(AAAPlugin):
    """Password hashing, token issue/validation and the lockout policy's numbers."""

    ALGORITHM: ClassVar[str] = "HS256"
    REQUIRED_CLAIMS: ClassVar[list[str]] = ["exp", "iat", "sub", "jti", "type"]

    # The lockout numbers (persistence.lockout says what each one does): consecutive
    # failures from one client before its backoff starts, the first backoff (doubling
    # per further failure), the longest hold (a client's cap and the account-wide hold),
    # the failures of all clients that hold the account, and the counting window.
    plugin_params = {
        "bcrypt_rounds": 12,
        "access_token_minutes": 30,
        "refresh_token_days": 7,
        "max_failed_logins": _LOCKOUT.client_max_failures,
        "lockout_backoff_seconds": int(_LOCKOUT.backoff_s),
        "lockout_minutes": int(_LOCKOUT.max_lock_s // 60),
        "account_max_failed_logins": _LOCKOUT.account_max_failures,
        "failure_window_minutes": int(_LOCKOUT.window_s // 60),
    }
    plugin_debug_vars = [
        "bcrypt_rounds",
        "access_token_minutes",
        "refresh_token_days",
        "max_failed_logins",
        "lockout_backoff_seconds",
        "lockout_minutes",
        "account_max_failed_logins",
        "failure_window_minutes",
    ]

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        *,
        secret: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(config)
        self._secret: str | None = None
        self._clock = clock
        if secret is not None:
            self.set_secret(secret)
        # A hash to verify against when the user does not exist, so a login for an
        # unknown name costs the same time as one with a wrong password.
        self._dummy_hash: bytes | None = None

    # -- configuration -------------------------------------------------------------
    def set_secret(self, secret: str) -> None:
        """Install the HMAC signing secret (at least 32 characters)."""
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_CHARS:
            raise ConfigError(
                f"jwt_secret must be a string of at least {MIN_SECRET_CHARS} characters "
                "(set config 'jwt_secret' or env LTS_JWT_SECRET, or leave both unset to "
                "have one generated)"
            )
        self._secret = secret

    @property
    def has_secret(self) -> bool:
        return self._secret is not None

    def _key(self) -> str:
        if self._secret is None:
            raise ConfigError("default_aaa has no signing secret: call set_secret() first")
        return self._secret

    def _int_param(self, name: str, low: int, high: int) -> int:
        value = self.params.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"aaa parameter '{name}' must be an integer in [{low}, {high}], got {value!r}")
        return value

    @property
    def max_failed_logins(self) -> int:
        return self._int_param("max_failed_logins", 1, 1000)

    @property
    def lockout(self) -> timedelta:
        return timedelta(minutes=self._int_param("lockout_minutes", 1, 100_000))

    @property
    def lockout_policy(self) -> LockoutPolicy:
        """The failed-login policy from this plugin's parameters."""
        lockout_s = self.lockout.total_seconds()
        backoff_s = self._int_param("lockout_backoff_seconds", 1, 86_400)
        if backoff_s > lockout_s:
            raise ConfigError(
                f"aaa parameter 'lockout_backoff_seconds' ({backoff_s}) must not exceed "
                f"'lockout_minutes' ({self.lockout} = {int(lockout_s)} s)"
            )
        return LockoutPolicy(
            client_max_failures=self.max_failed_logins,
            backoff_s=float(backoff_s),
            max_lock_s=lockout_s,
            account_max_failures=self._int_param("account_max_failed_logins", 1, 1_000_000),
            window_s=float(self._int_param("failure_window_minutes", 1, 100_000) * 60),
        )

    @property
    def access_ttl(self) -> timedelta:
        return timedelta(minutes=self._int_param("access_token_minutes", 1, 24 * 60))

    @property
    def refresh_ttl(self) -> timedelta:
        return timedelta(days=self._int_param("refresh_token_days", 1, 365))

    # -- passwords -----------------------------------------------------------------
    def hash_password(self, password: str) -> str:
        """bcrypt hash of ``password``; refuses passwords that break the policy."""
        problems = password_problems(password)
        if problems:
            raise ValueError("password " + "; ".join(problems))
        rounds = self._int_param("bcrypt_rounds", 4, 31)
        return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds)).decode("ascii")

    def verify_password(self, password: str, password_hash: str) -> bool:
        """True when ``password`` matches; False for a wrong, over-long or odd input."""
        raw = password.encode("utf-8")
        if len(raw) > MAX_PASSWORD_BYTES or not password_hash:
            self.burn_verify_time()
            return False
        try:
            return bcrypt.checkpw(raw, password_hash.encode("ascii"))
        except ValueError:  # malformed stored hash
            logger.error("stored password hash is malformed")
            return False

    def burn_verify_time(self) -> None:
        """Spend about one verification's time (unknown user / refused input)."""
        if self._dummy_hash is None:
            rounds = self._int_param("bcrypt_rounds", 4, 31)
            self._dummy_hash = bcrypt.hashpw(secrets.token_bytes(16).hex().encode(), bcrypt.gensalt(rounds))
        bcrypt.checkpw(b"not-the-password", self._dummy_hash)

    # -- tokens --------------------------------------------------------------------
    def _encode(self, subject: str, token_type: str, ttl: timedelta, claims: Mapping[str, Any]) -> tuple[str, str, datetime]:
        now = self._clock()
        jti = secrets.token_urlsafe(16)
        expires = now + ttl
        payload = {
            **claims,
            "sub": subject,
            "type": token_type,
            "jti": jti,
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
        }
        token = jwt.encode(payload, self._key(), algorithm=self.ALGORITHM)
        return token, jti, expires

    def create_tokens(self, subject: str, **claims: Any) -> dict[str, Any]:
        """An access token (``access_token_minutes``) and a refresh token
        (``refresh_token_days``) for ``subject``; ``claims`` (e.g. ``sid``) go in both,
        and the access token also carries ``rjti``, the refresh token's ``jti``.

        Returns ``access_token``, ``refresh_token``, ``token_type``, ``expires_in``
        (seconds), ``access_jti``, ``refresh_jti``, ``access_expires_at``,
        ``refresh_expires_at``."""
        refresh, refresh_jti, refresh_exp = self._encode(subject, REFRESH, self.refresh_ttl, claims)
        # The access token names the refresh token issued with it ("rjti"), so the
        # gateway can tell whether that login was since revoked (logout, token reuse).
        access, access_jti, access_exp = self._encode(
            subject, ACCESS, self.access_ttl, {**claims, "rjti": refresh_jti}
        )
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "bearer",
            "expires_in": int(self.access_ttl.total_seconds()),
            "access_jti": access_jti,
            "refresh_jti": refresh_jti,
            "access_expires_at": access_exp,
            "refresh_expires_at": refresh_exp,
        }

    def decode_token(self, token: str, expected_type: str = ACCESS) -> dict[str, Any]:
        """The token's claims after checking signature, algorithm, required claims,
        expiry (no leeway) and type; raises :class:`api.errors.Unauthorized`."""
        try:
            claims = jwt.decode(
                token,
                self._key(),
                algorithms=[self.ALGORITHM],
                options={"require": self.REQUIRED_CLAIMS, "verify_signature": True},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        if claims.get("type") != expected_type:
            raise Unauthorized(f"invalid token: expected a {expected_type} token")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise Unauthorized("invalid token: bad subject")
        return claims
