"""The one policy for user-named paths (engine.user_paths): only files inside data_dir,
symlinks followed; messages name the field and the user's text, never a server path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.user_paths import UnsafePath, UserPathPolicy, check_server_layout, sqlite_file


@pytest.fixture()
def tree(tmp_path: Path) -> dict[str, Path]:
    """data/ with a file, a subfolder file, links in and out; a secret outside."""
    data = tmp_path / "srv" / "data"
    (data / "fx").mkdir(parents=True)
    (data / "a.csv").write_text("x\n")
    (data / "fx" / "b.csv").write_text("x\n")
    secret = tmp_path / "srv" / "state" / "jwt_secret"
    secret.parent.mkdir(parents=True)
    secret.write_text("s3cr3t\n")
    os.symlink(secret, data / "out.csv")
    os.symlink(data / "a.csv", data / "in.csv")
    os.symlink(secret.parent, data / "outdir")
    os.symlink(data / "loop", data / "loop")
    return {"data": data, "secret": secret}


def test_files_inside_are_resolved(tree: dict[str, Path]) -> None:
    policy = UserPathPolicy.for_data_dir(tree["data"])
    assert policy.resolve_file("a.csv", "f") == tree["data"] / "a.csv"
    assert policy.resolve_file("fx/b.csv", "f") == tree["data"] / "fx" / "b.csv"
    assert policy.resolve_file(str(tree["data"] / "fx" / "b.csv"), "f") == tree["data"] / "fx" / "b.csv"
    assert policy.resolve_file("in.csv", "f") == tree["data"] / "a.csv"  # a link that stays inside
    assert policy.resolve_file("fx/./b.csv", "f") == tree["data"] / "fx" / "b.csv"
    assert policy.resolve_file("new.csv", "f", must_exist=False) == tree["data"] / "new.csv"
    assert policy.shown(tree["data"] / "fx" / "b.csv") == "fx/b.csv"
    assert policy.shown(tree["secret"]) == "jwt_secret"  # outside: the bare name only


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("../state/jwt_secret", "data_source.path '../state/jwt_secret': '..' is not allowed"),
        ("fx/../../state/jwt_secret", "'..' is not allowed"),
        ("{secret}", "data_source.path '{secret}': resolves outside the data directory"),
        ("/etc/passwd", "data_source.path '/etc/passwd': resolves outside the data directory"),
        ("out.csv", "data_source.path 'out.csv': resolves outside the data directory"),
        ("outdir/jwt_secret", "resolves outside the data directory"),
        ("loop", "data_source.path 'loop': cannot be read"),
        ("~/x.csv", "give a path relative to the data directory"),
        ("missing.csv", "data_source.path 'missing.csv': no such file in the data directory"),
        ("fx", "no such file in the data directory"),  # a folder is no file
        ("", "data_source.path: must be a non-empty path"),
        ("a\x00b", "data_source.path: not a usable path"),
        ("x" * 2000, "data_source.path: not a usable path"),
    ],
)
def test_refusals_name_the_field_and_the_users_text(tree: dict[str, Path], value: str, message: str) -> None:
    policy = UserPathPolicy.for_data_dir(tree["data"])
    value = value.format(secret=tree["secret"])
    with pytest.raises(UnsafePath) as err:
        policy.resolve_file(value, "data_source.path")
    text = str(err.value)
    assert message.format(secret=tree["secret"]) in text and "\n" not in text
    assert isinstance(err.value, ConfigError)  # a client error: the API answers 422
    if not value.startswith(str(tree["secret"])):
        assert str(tree["data"]) not in text and str(tree["secret"]) not in text  # no server path


def test_non_text_is_refused(tree: dict[str, Path]) -> None:
    policy = UserPathPolicy.for_data_dir(tree["data"])
    for value in (None, 5, ["a.csv"], {"a": 1}):
        with pytest.raises(UnsafePath, match="^p: must be a non-empty path"):
            policy.resolve_file(value, "p")


def test_globs_stay_inside(tree: dict[str, Path]) -> None:
    policy = UserPathPolicy.for_data_dir(tree["data"])
    assert policy.resolve_files(["fx/*.csv", "a.csv", "fx/b.csv"], "files") == [
        tree["data"] / "fx" / "b.csv", tree["data"] / "a.csv"]
    with pytest.raises(UnsafePath, match=r"^files\[0\] '\*\.csv': resolves outside"):
        policy.resolve_files(["*.csv"], "files")  # the glob reaches out.csv
    with pytest.raises(UnsafePath, match=r"^files\[1\] '/\*\*/jwt_secret': resolves outside"):
        policy.resolve_files(["a.csv", "/**/jwt_secret"], "files")  # refused before any walk
    with pytest.raises(UnsafePath, match="resolves outside"):
        policy.resolve_files(["outdir/*"], "files")
    with pytest.raises(UnsafePath, match=r"^files\[0\] 'fx/\*\.txt': no such file"):
        policy.resolve_files(["fx/*.txt"], "files")


def test_sqlite_file_of_a_url() -> None:
    assert sqlite_file("sqlite:////srv/lts.db") == Path("/srv/lts.db")
    assert sqlite_file("sqlite:///./lts.db?timeout=5") == Path("./lts.db")
    assert sqlite_file("sqlite+aiosqlite:///x.db") == Path("x.db")
    assert sqlite_file("sqlite:///:memory:") is None and sqlite_file("sqlite://") is None
    assert sqlite_file("postgresql+psycopg://u@h/db") is None


def test_server_layout(tmp_path: Path) -> None:
    good = {"data_dir": str(tmp_path / "data"), "state_dir": str(tmp_path / "state"),
            "backtest_dir": str(tmp_path / "reports"), "database_url": f"sqlite:///{tmp_path}/lts.db"}
    check_server_layout(good)
    check_server_layout({**good, "database_url": "postgresql+psycopg://u@h/db"})
    with pytest.raises(ConfigError, match=r"^config key 'database_url' .* lies inside data_dir"):
        check_server_layout({**good, "database_url": f"sqlite:///{tmp_path}/data/sub/lts.db"})
    with pytest.raises(ConfigError, match="config key 'data_dir'"):
        check_server_layout({**good, "data_dir": str(tmp_path / "state" / "d")})
    with pytest.raises(ConfigError, match="config key 'logs'"):
        check_server_layout(good, {"logs (server log)": tmp_path / "data" / "lts.log"})
