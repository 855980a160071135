"""``lts run`` on an empty database: schema, first admin (password printed once), demo portfolio."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from actors.commands.run import prepare_database
from engine.config.defaults import DEFAULT_VALUES
from persistence.store import Store


def _config(tmp_path: Path) -> dict[str, object]:
    config = dict(DEFAULT_VALUES)
    config["database_url"] = f"sqlite:///{tmp_path / 'lts.db'}"
    config["data_dir"] = str(tmp_path / "data")
    return config


def test_first_run_creates_admin_that_can_log_in_and_second_run_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LTS_ADMIN_PASSWORD", raising=False)
    config = _config(tmp_path)

    portfolio_id = prepare_database(config, seed_demo=True)
    first = capsys.readouterr().out
    match = re.search(r"generated admin password \(shown only this once, store it now\): (\S+)", first)
    assert match, first
    password = match.group(1)
    assert portfolio_id is not None

    from api.aaa import DefaultAAA

    store = Store.from_url(str(config["database_url"]))
    try:
        assert store.count_admins() == 1
        credentials = store.get_credentials("admin")
        assert credentials is not None and credentials.user.role == "admin"
        assert DefaultAAA().verify_password(password, credentials.password_hash)
        assert not DefaultAAA().verify_password(password + "x", credentials.password_hash)
    finally:
        store.close()

    assert prepare_database(config, seed_demo=True) is None  # demo already there
    second = capsys.readouterr().out
    assert "password" not in second  # never printed again, no second admin
