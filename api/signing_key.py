"""Where the JWT signing secret comes from. There is never a built-in default.

In order: config key ``jwt_secret``; env ``LTS_JWT_SECRET``; else a secret generated
once with :func:`secrets.token_urlsafe` and stored in ``<state_dir>/jwt_secret`` (file
0600, folder created 0700), for SQLite and PostgreSQL alike. Every gateway process on the
machine then signs with the same key, and tokens survive restarts.

``state_dir`` is the server's own folder: :func:`check_secret_placement` (run when the
gateway is built) refuses a layout that puts it, or the database, inside ``data_dir``,
where users name files (``engine.user_paths.check_server_layout``).

Older versions wrote the secret elsewhere:

* beside the SQLite database (``<db file>.jwt_secret``): outside ``data_dir`` (the
  layout check makes sure), so it was never user-reachable; it is moved into
  ``state_dir`` on first use and tokens stay valid;
* in ``data_dir/jwt_secret`` (PostgreSQL): any user could read it through a backtest
  or an asset's data source, so it must be treated as leaked. The gateway refuses to
  start while it exists and says to delete it; a fresh secret is then generated.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.config.defaults import DEFAULT_VALUES
from engine.errors import ConfigError
from engine.user_paths import check_server_layout, data_root, sqlite_file

logger = logging.getLogger(__name__)

ENV_VAR = "LTS_JWT_SECRET"
FILE_MODE = 0o600
DIR_MODE = 0o700
SECRET_NAME = "jwt_secret"


def state_dir(config: Mapping[str, Any]) -> Path:
    """The server's state folder (config ``state_dir``), as configured."""
    return Path(os.path.expanduser(str(config.get("state_dir") or DEFAULT_VALUES["state_dir"])))


def secret_file_path(config: Mapping[str, Any]) -> Path:
    """The file a generated secret lives in: ``<state_dir>/jwt_secret``."""
    return state_dir(config) / SECRET_NAME


def _legacy_sqlite_file(config: Mapping[str, Any]) -> Path | None:
    database = sqlite_file(config.get("database_url"))
    return None if database is None else database.with_name(database.name + "." + SECRET_NAME)


def _legacy_data_dir_file(config: Mapping[str, Any]) -> Path:
    return data_root(str(config.get("data_dir") or DEFAULT_VALUES["data_dir"])) / SECRET_NAME


def check_secret_placement(config: Mapping[str, Any]) -> None:
    """Refuse (one-line ``ConfigError``) a layout where the secret, the database or the
    state folder is reachable as user data, or where an older version left a secret in
    ``data_dir`` (see the module docstring)."""
    check_server_layout(config, {"state_dir (its jwt_secret)": secret_file_path(config)})
    leaked = _legacy_data_dir_file(config)
    if leaked.exists():
        raise ConfigError(
            f"{leaked} is a JWT secret an older LTS wrote into data_dir, where users could read it: "
            f"delete it (tokens signed with it stop working; a new secret is generated in state_dir)")


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


def _make_state_dir(folder: Path) -> None:
    """Create ``state_dir`` 0700 (whatever the umask; its parents as usual). An existing
    folder is the operator's: left as it is, with a warning when others may enter it."""
    try:
        if not folder.is_dir():
            folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            os.chmod(folder, DIR_MODE)
        elif stat.S_IMODE(folder.stat().st_mode) & 0o077:
            logger.warning("state_dir %s is open to other users; 'chmod 700' it", folder)
    except OSError as exc:
        raise ConfigError(
            f"cannot create state_dir {folder}: {exc.strerror}; set config 'state_dir', "
            f"'jwt_secret' or env {ENV_VAR}") from None


def _write_new(path: Path, value: str) -> bool:
    """Write ``value`` to a new 0600 file; False when the file appeared meanwhile."""
    try:
        # O_EXCL: two processes starting together cannot both write a different key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    except OSError as exc:
        raise ConfigError(
            f"cannot create JWT secret file {path}: {exc.strerror}; set config 'jwt_secret' "
            f"or env {ENV_VAR}"
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return True


def resolve_jwt_secret(config: Mapping[str, Any]) -> str:
    """The signing secret for this deployment (see the module docstring for the order)."""
    configured = config.get("jwt_secret")
    if configured:
        return str(configured)
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return from_env
    check_secret_placement(config)
    path = secret_file_path(config)
    _make_state_dir(path.parent)
    if path.exists():
        return _read_secret_file(path)
    legacy = _legacy_sqlite_file(config)
    if legacy is not None and legacy.exists():
        value = _read_secret_file(legacy)
        if not _write_new(path, value):
            return _read_secret_file(path)
        legacy.unlink(missing_ok=True)
        logger.info("moved the JWT signing secret from %s to %s (mode 600)", legacy, path)
        return value
    value = secrets.token_urlsafe(48)
    if not _write_new(path, value):
        return _read_secret_file(path)
    logger.info("generated a new JWT signing secret in %s (mode 600)", path)
    return value
