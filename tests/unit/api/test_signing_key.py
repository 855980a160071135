"""Where the JWT secret comes from: config, env, or a generated 0600 file in the 0700
``state_dir`` (never in ``data_dir``, whatever the database); never a default."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from api.signing_key import ENV_VAR, check_secret_placement, resolve_jwt_secret, secret_file_path
from engine.errors import ConfigError

POSTGRES_URL = "postgresql+psycopg://u@h/db"


@pytest.fixture(autouse=True)
def _no_env_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


def _config(tmp_path: Path, database_url: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"database_url": database_url or f"sqlite:///{tmp_path}/db/lts.db", "data_dir": str(tmp_path / "data"),
            "state_dir": str(tmp_path / "state"), "backtest_dir": str(tmp_path / "reports"), **extra}


def test_config_wins_then_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = {**_config(tmp_path), "jwt_secret": "c" * 40}
    monkeypatch.setenv(ENV_VAR, "e" * 40)
    assert resolve_jwt_secret(config) == "c" * 40
    assert resolve_jwt_secret({**config, "jwt_secret": None}) == "e" * 40
    assert not list(tmp_path.iterdir())  # nothing generated


@pytest.mark.parametrize("database_url", [None, POSTGRES_URL], ids=["sqlite", "postgresql"])
def test_generated_once_in_state_dir_0600_in_a_0700_folder(tmp_path: Path, database_url: str | None) -> None:
    config = _config(tmp_path, database_url)
    first = resolve_jwt_secret(config)
    path = tmp_path / "state" / "jwt_secret"
    assert secret_file_path(config) == path and path.read_text().strip() == first
    assert len(first) >= 48
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").iterdir())  # nothing in data_dir
    assert resolve_jwt_secret(config) == first  # stable across restarts
    other = _config(tmp_path / "other", database_url)
    assert resolve_jwt_secret(other) != first  # never one shared built-in value


def test_state_dir_is_0700_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        os.umask(0o000)  # the loosest umask: 0700 must still come out
        resolve_jwt_secret(_config(tmp_path))
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state" / "jwt_secret").stat().st_mode) == 0o600


def test_a_legacy_secret_beside_the_sqlite_file_moves_into_state_dir(tmp_path: Path) -> None:
    config = _config(tmp_path)
    legacy = tmp_path / "db" / "lts.db.jwt_secret"
    legacy.parent.mkdir()
    legacy.write_text("L" * 48 + "\n")
    legacy.chmod(0o600)
    assert resolve_jwt_secret(config) == "L" * 48  # tokens signed before stay valid
    assert not legacy.exists()
    assert (tmp_path / "state" / "jwt_secret").read_text().strip() == "L" * 48
    assert resolve_jwt_secret(config) == "L" * 48


def test_a_legacy_secret_inside_data_dir_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path, POSTGRES_URL)
    leaked = tmp_path / "data" / "jwt_secret"
    leaked.parent.mkdir()
    leaked.write_text("P" * 48 + "\n")
    with pytest.raises(ConfigError, match="older LTS wrote into data_dir.*delete it") as err:
        resolve_jwt_secret(config)
    assert "\n" not in str(err.value) and "P" * 48 not in str(err.value)
    with pytest.raises(ConfigError, match="delete it"):  # the gateway's startup check too
        check_secret_placement({**config, "jwt_secret": "k" * 48})
    assert not (tmp_path / "state" / "jwt_secret").exists()


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"state_dir": "{data}/state"}, "config key 'state_dir'"),
        ({"state_dir": "{data}"}, "config key 'state_dir'"),
        ({"data_dir": "{tmp}/state/data"}, "config key 'data_dir'"),
        ({"database_url": "sqlite:///{data}/lts.db"}, "config key 'database_url'"),
        ({"backtest_dir": "{data}/reports"}, "config key 'backtest_dir'"),
        ({"data_dir": "{tmp}/reports/run-1"}, "config key 'data_dir'"),
    ],
)
def test_overlapping_server_and_data_folders_are_refused(tmp_path: Path, change: dict[str, str],
                                                         fragment: str) -> None:
    config = _config(tmp_path)
    for key, value in change.items():
        config[key] = value.format(tmp=tmp_path, data=tmp_path / "data")
    with pytest.raises(ConfigError, match=fragment) as err:
        check_secret_placement(config)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=fragment):
        resolve_jwt_secret(config)
    assert not list(tmp_path.rglob("jwt_secret"))  # nothing generated into the bad layout


def test_a_symlinked_state_dir_inside_data_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data" / "hidden").mkdir(parents=True)
    os.symlink(tmp_path / "data" / "hidden", tmp_path / "state")  # state_dir looks outside, is inside
    with pytest.raises(ConfigError, match="config key 'state_dir'"):
        check_secret_placement(_config(tmp_path))


def test_a_world_readable_secret_file_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path)
    resolve_jwt_secret(config)
    path = secret_file_path(config)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        resolve_jwt_secret(config)


def test_empty_secret_file_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path)
    path = secret_file_path(config)
    path.parent.mkdir(mode=0o700)
    path.touch(mode=0o600)
    with pytest.raises(ConfigError, match="empty"):
        resolve_jwt_secret(config)
