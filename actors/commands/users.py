"""``lts users unlock USERNAME``: lift every failed-login hold on an account.

For the operator when the only administrator is held back (so nobody can call
``POST /api/users/{id}/unlock``): clears the account-wide hold, every client's backoff and
the failure counts (``persistence.lockout``), straight in the database through the Store
with a system audit context, so the unlock is audited (``user.unlock``) like the API's.
No gateway has to run, and one that does sees the change at the next login.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sqlalchemy.exc import OperationalError

from engine.config import LTSConfig
from engine.errors import ConfigError, NotFound
from engine.types import utcnow
from persistence.database import parse_url
from persistence.records import AuditContext
from persistence.schema import missing_tables
from persistence.store import Store

_CLI_AGENT = "lts users unlock"


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``lts users``."""
    parser.add_argument("action", choices=["unlock"], help="unlock: lift every failed-login hold on the account")
    parser.add_argument("username", help="the account's username")


def run(config: LTSConfig, args: argparse.Namespace) -> int:
    """Unlock ``args.username`` in ``database_url``; a one-line error when the database
    has no schema or the user does not exist."""
    url = str(config["database_url"])
    parsed = parse_url(url)
    shown_url = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not Path(parsed.database).expanduser().is_file():  # connecting would create an empty file
            raise ConfigError(f"database_url: {shown_url}: no such database file (run `lts db init` first)")
    store = Store.from_url(url)
    try:
        try:
            missing = missing_tables(store.engine)
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            raise ConfigError(f"database_url: cannot use {shown_url}: {reason}") from None
        if missing:
            raise ConfigError(f"database_url: {shown_url} has no LTS schema (run `lts db init` first)")
        # A NUL cannot be in a stored name (and PostgreSQL refuses it in a query).
        user = None if "\x00" in args.username else store.find_user(args.username)
        if user is None:
            raise NotFound(f"user {args.username!r} not found")
        held_until = user.locked_until if user.is_locked(utcnow()) else None
        store.unlock_user(AuditContext.system().model_copy(update={"user_agent": _CLI_AGENT}), user.id)
        held = f"account hold until {held_until.isoformat()} lifted" if held_until else "no account hold"
        print(f"user {user.username!r} (id {user.id}) unlocked: {held}, client holds and failure counts cleared")
        return 0
    finally:
        store.close()
