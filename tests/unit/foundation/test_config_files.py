"""Config files: bundled names, JSON errors with file:line, ``--save_config`` round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import build_config, read_config_file, resolve_config_path, save_config
from engine.config import files as config_files
from engine.errors import ConfigError
from tests.unit.foundation.conftest import TINY_CONFIG


@pytest.fixture
def bundled_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real package holding JSON configs, standing in for ``configs`` (whose files
    belong to other areas), found through importlib.resources like the real one."""
    package = tmp_path / "lts_test_bundled_configs"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "simulation.json").write_text('{\n  "mode": "simulation",\n  "api_port": 8123\n}\n')
    (package / "cluster.json").write_text('{"ray_address": "auto"}')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(config_files, "BUNDLED_PACKAGE", package.name)
    return package


def test_bare_name_resolves_to_a_bundled_config(bundled_dir: Path) -> None:
    assert resolve_config_path("simulation") == bundled_dir / "simulation.json"
    path, values, lines = read_config_file("simulation")
    assert values == {"mode": "simulation", "api_port": 8123}
    assert lines == {"mode": 2, "api_port": 3}
    config = build_config("cluster", require_loadable=False).config
    assert config["ray_address"] == "auto"
    assert str(config.source("ray_address")) == f"file {bundled_dir / 'cluster.json'}:1"


def test_existing_path_wins_over_a_bundled_name(
    bundled_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("simulation").write_text('{"api_port": 1}')
    assert resolve_config_path("simulation") == Path("simulation")


def test_unknown_bare_name_lists_the_bundled_configs(bundled_dir: Path) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_config_path("simulaton")
    assert str(err.value) == (
        "config file 'simulaton' not found (no such file, and no bundled config named "
        "'simulaton'; bundled: cluster, simulation)"
    )


def test_missing_path_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_config_path(tmp_path / "nope.json")
    assert str(err.value) == f"config file '{tmp_path / 'nope.json'}' not found (no such file)"


def test_invalid_json_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "api_port": 8000,\n  "mode": "live",,\n}\n')
    with pytest.raises(ConfigError) as err:
        read_config_file(path)
    assert str(err.value) == f"{path}:3:18: invalid JSON: Expecting property name enclosed in double quotes"


def test_duplicate_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.json"
    path.write_text('{"api_port": 1, "api_port": 2}')
    with pytest.raises(ConfigError) as err:
        read_config_file(path)
    assert str(err.value) == f"{path}: key 'api_port' appears more than once"


def test_top_level_must_be_an_object(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError) as err:
        read_config_file(path)
    assert str(err.value) == (
        f"{path}: a config file must hold a JSON object of key: value, not a list"
    )


def test_save_config_writes_what_differs_and_loads_back(tiny_config_file: Path, tmp_path: Path) -> None:
    built = build_config(
        tiny_config_file,
        ["--fast", "11", "--api_port", "8000", "--mode", "live", "--jwt_secret", "hunter2-secret"],
    )
    target = save_config(built.config, tmp_path / "out" / "saved.json")
    saved = json.loads(target.read_text())
    # api_port equals its default: not saved; the secret is never written.
    assert saved == {**TINY_CONFIG, "fast": 11, "mode": "live"}
    assert "hunter2" not in target.read_text()
    again = build_config(target).config
    assert again["fast"] == 11 and again.source("fast").kind == "file"
    assert again["mode"] == "live" and again["jwt_secret"] is None


def test_save_config_to_an_unwritable_place_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"cannot write config file .*file/x\.json"):
        save_config(build_config(None, require_loadable=False).config, blocker / "x.json")
