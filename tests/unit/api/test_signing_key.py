"""Where the JWT secret comes from: config, env, or a generated 0600 file; never a default."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from api.signing_key import ENV_VAR, resolve_jwt_secret, secret_file_path
from engine.errors import ConfigError


@pytest.fixture(autouse=True)
def _no_env_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


def test_config_wins_then_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = {"jwt_secret": "c" * 40, "database_url": f"sqlite:///{tmp_path}/x.db"}
    monkeypatch.setenv(ENV_VAR, "e" * 40)
    assert resolve_jwt_secret(config) == "c" * 40
    assert resolve_jwt_secret({**config, "jwt_secret": None}) == "e" * 40
    assert not list(tmp_path.iterdir())  # nothing generated


def test_generated_once_beside_the_sqlite_file_with_mode_600(tmp_path: Path) -> None:
    config = {"database_url": f"sqlite:///{tmp_path}/lts.db"}
    first = resolve_jwt_secret(config)
    path = tmp_path / "lts.db.jwt_secret"
    assert secret_file_path(config) == path
    assert len(first) >= 48
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert resolve_jwt_secret(config) == first  # stable across restarts
    other = {"database_url": f"sqlite:///{tmp_path}/other.db"}
    assert resolve_jwt_secret(other) != first  # never one shared built-in value


def test_non_sqlite_databases_use_data_dir(tmp_path: Path) -> None:
    config = {"database_url": "postgresql+psycopg://u@h/db", "data_dir": str(tmp_path / "data")}
    assert secret_file_path(config) == tmp_path / "data" / "jwt_secret"
    assert resolve_jwt_secret(config)
    assert (tmp_path / "data" / "jwt_secret").exists()


def test_a_world_readable_secret_file_is_refused(tmp_path: Path) -> None:
    config = {"database_url": f"sqlite:///{tmp_path}/lts.db"}
    resolve_jwt_secret(config)
    path = secret_file_path(config)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        resolve_jwt_secret(config)


def test_empty_secret_file_is_refused(tmp_path: Path) -> None:
    config = {"database_url": f"sqlite:///{tmp_path}/lts.db"}
    path = secret_file_path(config)
    path.touch(mode=0o600)
    with pytest.raises(ConfigError, match="empty"):
        resolve_jwt_secret(config)
