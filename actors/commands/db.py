"""``lts db init``: create the schema and the first administrator.

The admin's password comes from the environment variable ``LTS_ADMIN_PASSWORD``; without
it a strong one is generated and printed once. There is no default password. Running it
again is safe: missing tables are created, existing ones and an existing admin are kept.
"""

from __future__ import annotations

import argparse
import os
import secrets
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError

from engine.config import LTSConfig
from engine.errors import ConfigError
from engine.plugins.loader import create_plugin
from persistence.database import make_engine, parse_url
from persistence.enums import Role
from persistence.records import AuditContext
from persistence.schema import create_schema
from persistence.store import Store

ADMIN_PASSWORD_ENV = "LTS_ADMIN_PASSWORD"
_GENERATED_LENGTH = 20


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``lts db``."""
    parser.add_argument("action", choices=["init"], help="init: create the schema and the first admin")
    parser.add_argument("--admin_username", default="admin", help="name of the first admin (default: admin)")
    parser.add_argument("--admin_email", default=None, help="email of the first admin")


def generate_password() -> str:
    """A random password that meets the AAA policy (upper, lower, digit, 20 characters)."""
    alphabet = string.ascii_letters + string.digits
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(_GENERATED_LENGTH))
        if (
            any(c.isupper() for c in candidate)
            and any(c.islower() for c in candidate)
            and any(c.isdigit() for c in candidate)
        ):
            return candidate


def ensure_first_admin(
    store: Store, config: LTSConfig | Mapping[str, Any], *, username: str = "admin", email: str | None = None
) -> None:
    """Create the first admin unless one exists, and say so on stdout.

    The password comes from ``LTS_ADMIN_PASSWORD``; without it a strong one is generated
    and printed this once (it is stored only as a bcrypt hash). ``lts run`` calls this on
    an empty database so a newcomer can log in straight away.
    """
    admins = store.count_admins()
    if admins:
        print(f"an admin already exists ({admins} in total); no user created")
        return
    password = os.environ.get(ADMIN_PASSWORD_ENV)
    generated = not password
    if generated:
        password = generate_password()
    aaa = create_plugin("aaa", str(config["aaa_plugin"]), config)
    try:
        password_hash = aaa.hash_password(password)  # type: ignore[attr-defined]
    except ValueError as exc:
        raise ConfigError(f"{ADMIN_PASSWORD_ENV}: {exc}") from None
    user = store.create_user(
        AuditContext.system(), username=username, password_hash=password_hash, email=email, role=Role.ADMIN
    )
    print(f"admin user {user.username!r} created (id {user.id})")
    if generated:
        print(f"generated admin password (shown only this once, store it now): {password}")
    else:
        print(f"admin password taken from {ADMIN_PASSWORD_ENV}")


def _prepare_sqlite_directory(url: str) -> None:
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def run(config: LTSConfig, args: argparse.Namespace) -> int:
    """Create missing tables, then the first admin unless one exists."""
    url = str(config["database_url"])
    shown_url = parse_url(url).render_as_string(hide_password=True)
    _prepare_sqlite_directory(url)
    engine = make_engine(url)
    try:
        try:
            create_schema(engine)
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise ConfigError(f"database_url: cannot use {shown_url}: {reason}") from None
        store = Store(engine)
        print(f"schema ready in {shown_url}")

        ensure_first_admin(store, config, username=args.admin_username, email=args.admin_email)
        return 0
    finally:
        engine.dispose()
