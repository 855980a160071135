"""``lts db init`` through the real console entry point, on both databases."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest

from persistence.store import Store

REPO = Path(__file__).resolve().parents[3]


def lts(*args: str, env_password: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LTS_ADMIN_PASSWORD"}
    if env_password is not None:
        env["LTS_ADMIN_PASSWORD"] = env_password
    return subprocess.run(
        [sys.executable, "-m", "actors.cli", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )


def in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The same dispatcher, without a new interpreter (the subprocess test covers that)."""
    from actors.cli import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_init_creates_the_schema_and_an_admin_with_a_generated_password_shown_once(
    empty_db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LTS_ADMIN_PASSWORD", raising=False)
    code, out, err = in_process(capsys, "db", "init", "--database_url", empty_db_url)
    assert code == 0, err
    match = re.search(r"generated admin password .*: (\S+)$", out, re.MULTILINE)
    assert match, out
    password = match.group(1)

    store = Store.from_url(empty_db_url)
    try:
        credentials = store.get_credentials("admin")
        assert credentials is not None and credentials.user.is_admin
        assert bcrypt.checkpw(password.encode(), credentials.password_hash.encode())
        assert store.list_audit_logs(action="user.create").total == 1

        code, out, err = in_process(capsys, "db", "init", "--database_url", empty_db_url)
        assert code == 0, err
        assert "an admin already exists" in out
        assert "password" not in out
        assert store.list_users().total == 1
    finally:
        store.close()


def test_the_console_entry_point_runs_db_init_and_reads_the_config_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'from-file.db'}"
    config_file = tmp_path / "lts.json"
    config_file.write_text(json.dumps({"database_url": url}))
    result = lts("db", "init", "--config", str(config_file), env_password="File-Config-42")
    assert result.returncode == 0, result.stderr
    assert "admin user 'admin' created" in result.stdout
    store = Store.from_url(url)
    try:
        assert store.count_admins() == 1
    finally:
        store.close()


def test_init_takes_the_password_from_the_environment_and_never_prints_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'lts.db'}"
    monkeypatch.setenv("LTS_ADMIN_PASSWORD", "Env-Secret-123")
    code, out, err = in_process(capsys, "db", "init", "--database_url", url, "--admin_username", "root")
    assert code == 0, err
    assert "Env-Secret-123" not in out + err
    store = Store.from_url(url)
    try:
        credentials = store.get_credentials("root")
        assert credentials is not None
        assert bcrypt.checkpw(b"Env-Secret-123", credentials.password_hash.encode())
    finally:
        store.close()


def test_a_weak_admin_password_is_refused_in_one_line_and_creates_no_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'lts.db'}"
    monkeypatch.setenv("LTS_ADMIN_PASSWORD", "short")
    code, _, err = in_process(capsys, "db", "init", "--database_url", url)
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "LTS_ADMIN_PASSWORD: password must be at least 8 characters" in err
    store = Store.from_url(url)
    try:
        assert store.list_users().total == 0
    finally:
        store.close()


@pytest.mark.parametrize("url", ["postgresql+psycopg://nobody@127.0.0.1:1/none", "mysql://x@y/z"])
def test_an_unusable_database_url_is_one_clear_line(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = in_process(capsys, "db", "init", "--database_url", url)
    assert code == 2
    assert err.startswith("lts db: error: database_url:")
    assert "Traceback" not in err
