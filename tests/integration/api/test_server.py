"""Serving the gateway: a generated signing secret survives a restart, a busy port is a
clear error, and the server stops cleanly."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import httpx
import pytest

from api.server import start_in_thread
from api.signing_key import ENV_VAR
from engine.errors import ConfigError
from persistence.records import AuditContext
from persistence.store import Store
from tests.integration.api.conftest import PASSWORD, base_config, make_aaa


def test_generated_secret_is_stored_and_reused_across_restarts(
    sqlite_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    config = {**base_config(sqlite_db_url), "jwt_secret": None, "aaa_plugin": "default_aaa",
              "state_dir": str(tmp_path / "state"), "data_dir": str(tmp_path / "data")}
    store = Store.from_url(sqlite_db_url)
    store.create_user(AuditContext.system(), username="kim", password_hash=make_aaa().hash_password(PASSWORD))
    try:
        first = start_in_thread(config, store=store)  # AAA plugin built from config
        try:
            resp = httpx.post(f"{first.url}/api/auth/login", json={"username": "kim", "password": PASSWORD}, timeout=10)
            assert resp.status_code == 200
            token = resp.json()["access_token"]
        finally:
            first.stop()
        secret_file = tmp_path / "state" / "jwt_secret"  # in state_dir, never beside the data
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(secret_file.parent.stat().st_mode) == 0o700
        second = start_in_thread(config, store=store)
        try:
            me = httpx.get(f"{second.url}/api/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
            assert me.status_code == 200 and me.json()["username"] == "kim"
        finally:
            second.stop()
        assert not second.thread.is_alive()
    finally:
        store.close()


def test_port_in_use_is_a_clear_error(sqlite_db_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        store = Store.from_url(sqlite_db_url)
        try:
            with pytest.raises(ConfigError, match=f"127.0.0.1:{port}"):
                start_in_thread(base_config(sqlite_db_url, api_port=port), store=store, aaa=make_aaa())
        finally:
            store.close()
