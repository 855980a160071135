"""Where the JWT signing secret comes from. There is never a built-in default.

In order: config key ``jwt_secret``; env ``LTS_JWT_SECRET``; else a secret generated
once with :func:`secrets.token_urlsafe` and stored in a 0600 file beside the SQLite
database (``<db file>.jwt_secret``), or in ``data_dir/jwt_secret`` for other databases.
Every gateway process on the machine then signs with the same key, and tokens survive
restarts.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.errors import ConfigError

logger = logging.getLogger(__name__)

ENV_VAR = "LTS_JWT_SECRET"
FILE_MODE = 0o600


def secret_file_path(config: Mapping[str, Any]) -> Path:
    """The file a generated secret lives in, derived from ``database_url``/``data_dir``."""
    url = str(config.get("database_url") or "")
    for prefix in ("sqlite:///", "sqlite+pysqlite:///", "sqlite+aiosqlite:///"):
        if url.startswith(prefix):
            db_path = url[len(prefix) :].split("?", 1)[0]
            if db_path and db_path != ":memory:":
                return Path(db_path).with_name(Path(db_path).name + ".jwt_secret")
    return Path(str(config.get("data_dir") or ".")) / "jwt_secret"


def _read_secret_file(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"JWT secret file {path} is readable by other users (mode {mode:o}); "
            f"run 'chmod 600 {path}' or set {ENV_VAR}"
        )
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise ConfigError(f"JWT secret file {path} is empty; delete it to have a new one generated")
    return value


def resolve_jwt_secret(config: Mapping[str, Any]) -> str:
    """The signing secret for this deployment (see the module docstring for the order)."""
    configured = config.get("jwt_secret")
    if configured:
        return str(configured)
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return from_env
    path = secret_file_path(config)
    if path.exists():
        return _read_secret_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    try:
        # O_EXCL: two processes starting together cannot both write a different key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return _read_secret_file(path)
    except OSError as exc:
        raise ConfigError(
            f"cannot create JWT secret file {path}: {exc.strerror}; set config 'jwt_secret' "
            f"or env {ENV_VAR}"
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    logger.info("generated a new JWT signing secret in %s (mode 600)", path)
    return value
