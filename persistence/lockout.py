"""The failed-login policy: who is held back from logging in, and for how long.

A lockout that anyone can trigger is a denial of service on the account's owner
(OWASP ASVS 4.0 V2.2.1, API2:2023), so failures are counted per **(account, client
address)**, not per account:

* **Per client, with exponential backoff.** After ``client_max_failures`` consecutive
  failures from one client, that client is held back from that account for
  ``backoff_s``; every further failure (possible only once the hold has expired)
  doubles it, up to ``max_lock_s``. Other clients are unaffected, so an anonymous
  attacker hammering an account from one address does not stop its owner logging in
  from another. A success from a client clears that client's count; a client's count
  also restarts after ``window_s`` without failures.
* **Per account, a much higher ceiling.** When the failures of all clients within
  ``window_s`` (each client counts in fixed windows of that length) reach
  ``account_max_failures`` (ASVS: at most 100 failed attempts per hour per account; one
  client under backoff makes about a dozen an hour), the account is held for
  ``max_lock_s`` against every client that never
  logged into it successfully. Clients it was used from before (a success recorded for
  that address) are still admitted, each with its own backoff, so a distributed attack
  locks out attackers, not the owner's known clients.
* An administrator can lift every hold at once (``POST /api/users/{id}/unlock``,
  ``lts users unlock NAME``).

The numbers come from the AAA plugin's parameters (``api.aaa``); the Store keeps the
counts in the ``login_failures`` table (shared by every gateway process, kept across
restarts). A client is its peer address as the gateway sees it (``ip`` of the audit
context); behind a reverse proxy every client is the proxy's address.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from persistence.records import UserRecord

UNKNOWN_CLIENT = "unknown"
"""The client key when the peer address is not known (same word as the rate limiter)."""

CLIENT = "client"
ACCOUNT = "account"


def client_key(ip: str | None) -> str:
    """The key failures are counted under for a client address."""
    return (ip or UNKNOWN_CLIENT)[:64]


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    """The policy's numbers (see the module docstring); validated on creation."""

    client_max_failures: int = 5
    backoff_s: float = 60.0
    max_lock_s: float = 1800.0
    account_max_failures: int = 100
    window_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.client_max_failures < 1 or self.account_max_failures < 1:
            raise ValueError("lockout: failure limits must be at least 1")
        if not 0 < self.backoff_s <= self.max_lock_s or self.window_s <= 0:
            raise ValueError("lockout: need 0 < backoff_s <= max_lock_s and window_s > 0")

    def client_lock(self, failures: int) -> timedelta | None:
        """How long a client is held after its ``failures``-th consecutive failure
        (None: not yet): ``backoff_s`` doubled per failure past the limit, capped."""
        if failures < self.client_max_failures:
            return None
        doublings = min(failures - self.client_max_failures, 40)  # 2**40 x backoff is past any cap
        return timedelta(seconds=min(self.max_lock_s, self.backoff_s * 2**doublings))

    def restarts(self, since: datetime | None, now: datetime) -> bool:
        """Whether a count kept ``since`` then starts again: a client's consecutive count
        after a window without failures, its window count when its window is over."""
        return since is None or since <= now - timedelta(seconds=self.window_s)


@dataclass(frozen=True, slots=True)
class LoginGate:
    """Whether a client may try a password for an account now.

    ``blocked_until``: when the hold ends (None: the attempt may go ahead); ``scope``:
    ``"client"`` (this client's own backoff) or ``"account"`` (the account-wide hold,
    which a client that logged in before is exempt from)."""

    blocked_until: datetime | None = None
    scope: str | None = None

    @classmethod
    def decide(
        cls,
        now: datetime,
        *,
        client_locked_until: datetime | None,
        account_locked_until: datetime | None,
        trusted_client: bool,
    ) -> "LoginGate":
        """The one rule: a client's own hold always applies; the account's hold applies
        to clients without an earlier successful login."""
        if client_locked_until is not None and client_locked_until > now:
            return cls(client_locked_until, CLIENT)
        if account_locked_until is not None and account_locked_until > now and not trusted_client:
            return cls(account_locked_until, ACCOUNT)
        return cls()


@dataclass(frozen=True, slots=True)
class FailedLogin:
    """What recording one failed login did: the user after it, this client's
    consecutive failures, and the holds this failure started (``"client"``,
    ``"account"``)."""

    user: UserRecord
    client_failures: int
    client_locked_until: datetime | None
    locks_started: tuple[str, ...] = ()
