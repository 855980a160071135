"""``lts status`` asks the cluster ``lts run`` recorded (or ``--address``) and, when it
cannot, says why in one line on stderr and exits 1 — no Ray warnings, no "not running"
with exit code 0. Run as the real command (a subprocess), against no cluster at all.

Also the driver-side preflight of ``lts run``: relative paths made absolute, the API port
bind-tested with the key and its source named."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from actors.engine_record import new_record, read_record, record_path, remove_record, write_record
from actors.preflight import absolute_sqlite_url, check_api_port, resolve_driver_paths
from engine.config import LTSConfig, build_config
from engine.errors import ConfigError

LTS = [sys.executable, "-m", "actors.cli"]


def _database(tmp_path: Path) -> str:
    from persistence.schema import create_schema
    from persistence.store import Store

    url = f"sqlite:///{tmp_path / 'lts.db'}"
    store = Store.from_url(url)
    try:
        create_schema(store.engine)
    finally:
        store.close()
    return url


def _status(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    return subprocess.run([*LTS, "status", "--state_dir", str(tmp_path / "state"), *args],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lts status: error: ")
    assert "Traceback" not in result.stderr and "gcs_client" not in result.stderr
    return lines[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_status_without_a_recorded_engine_fails_in_one_line(tmp_path: Path) -> None:
    line = _one_line(_status(tmp_path, "--database_url", _database(tmp_path)))
    assert "no engine is recorded in" in line and str(tmp_path / "state" / "engine.json") in line
    assert "--address" in line


def test_status_with_a_wrong_address_names_it_and_fails(tmp_path: Path) -> None:
    port = _closed_port()
    line = _one_line(_status(tmp_path, "--database_url", _database(tmp_path), "--address", f"127.0.0.1:{port}"))
    assert f"127.0.0.1:{port} (from --address)" in line and "nothing listens there" in line


def test_status_uses_the_record_and_names_it(tmp_path: Path) -> None:
    port = _closed_port()
    # This process is alive, so the record is current; its cluster is not there.
    write_record(tmp_path / "state", new_record(address=f"127.0.0.1:{port}", dashboard_url=None,
                                                api_url=None, namespace="lts"))
    line = _one_line(_status(tmp_path, "--database_url", _database(tmp_path)))
    assert f"127.0.0.1:{port} (from {tmp_path / 'state' / 'engine.json'})" in line


def test_status_with_a_stale_record_says_the_engine_stopped(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record = new_record(address="127.0.0.1:6379", dashboard_url=None, api_url=None, namespace="lts")
    path = write_record(tmp_path / "state", record)
    data = json.loads(path.read_text())
    data["pid"] = int(gone.stdout)
    path.write_text(json.dumps(data))
    line = _one_line(_status(tmp_path, "--database_url", _database(tmp_path)))
    assert f"pid {data['pid']}" in line and "not running any more" in line


def test_status_on_a_missing_database_names_the_key(tmp_path: Path) -> None:
    write_record(tmp_path / "state", new_record(address="127.0.0.1:1", dashboard_url=None, api_url=None,
                                                namespace="lts"))
    line = _one_line(_status(tmp_path, "--database_url", f"sqlite:///{tmp_path / 'none.db'}"))
    assert "'database_url'" in line


def test_engine_record_is_private_and_round_trips(tmp_path: Path) -> None:
    record = new_record(address="10.0.0.1:6379", dashboard_url="http://10.0.0.1:8265",
                        api_url="http://127.0.0.1:8000", namespace="lts")
    path = write_record(tmp_path / "state", record)
    assert path == record_path(tmp_path / "state")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_record(tmp_path / "state") == record
    remove_record(tmp_path / "state", pid=record.pid + 1)  # someone else's: kept
    assert path.exists()
    remove_record(tmp_path / "state", pid=record.pid)
    assert not path.exists() and read_record(tmp_path / "state") is None


def test_a_broken_record_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "engine.json").write_text("{not json")
    with pytest.raises(ConfigError, match="is not an engine record"):
        read_record(tmp_path)


def test_relative_paths_become_absolute_on_the_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = resolve_driver_paths(LTSConfig.from_values())  # the defaults are relative
    assert settings["database_url"] == f"sqlite:///{tmp_path / 'lts.db'}"
    for key, name in (("data_dir", "data"), ("backtest_dir", "backtest_results"), ("state_dir", ".lts")):
        assert settings[key] == str(tmp_path / name)
    assert absolute_sqlite_url("sqlite:///:memory:") == "sqlite:///:memory:"
    assert absolute_sqlite_url("sqlite+aiosqlite:///x/y.db") == f"sqlite+aiosqlite:///{tmp_path / 'x' / 'y.db'}"
    assert absolute_sqlite_url("sqlite:////abs/a.db") == "sqlite:////abs/a.db"
    pg = "postgresql+psycopg://u:secret@db:5432/lts"
    assert absolute_sqlite_url(pg) == pg


def test_busy_api_port_names_the_key_and_its_source() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = build_config(None, ["--api_port", str(port)]).config
        with pytest.raises(ConfigError) as caught:
            check_api_port(config)
    message = str(caught.value)
    assert message.startswith(f"config key 'api_port' ({port}, from command line (--api_port)): 127.0.0.1:{port}")
    assert "already in use" in message and "\n" not in message
    check_api_port(build_config(None, ["--api_port", str(port)]).config)  # free again: no error
