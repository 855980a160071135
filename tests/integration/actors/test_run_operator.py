"""``lts run`` as an operator runs it, as real processes.

* Joining a cluster that ``ray start`` started in another directory, with the default
  (relative) SQLite URL: the engine writes to the database in the directory ``lts run``
  was started in, not to an empty one in the ``ray start`` directory (before the fix it
  did the latter: 0 orders, then "Stopped cleanly."). It prints and records the Ray
  address, and ``lts status`` asks that cluster and names it.
* A busy API port is refused in one line before anything is created.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest

from tests.integration.actors.engine_helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups")]

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["LTS_ADMIN_PASSWORD"] = "Operator-password-9"
    env["PYTHONPATH"] = str(REPO)  # the driver and the cluster's workers import this checkout
    # As tests/integration/actors/test_cluster.py: no token (a joining driver sends one only
    # in token mode; lts status's own handling of that is in tests/unit/foundation).
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    return env


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def _settled_orders(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("select count(*) from orders where status != 'pending'").fetchone()[0])
    except sqlite3.Error:
        return 0


def _start_head(cwd: Path, env: dict[str, str], gcs_port: int, prefix: str, log: Path) -> subprocess.Popen[bytes]:
    """``ray start --head --block`` in ``cwd``; returns once it says the node is up (its
    GCS alone accepting connections is not enough: the raylet may still be starting)."""
    temp_dir = tempfile.mkdtemp(prefix=prefix)  # Ray's socket paths must stay short
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", f"--port={gcs_port}", "--num-cpus=2",
         "--include-dashboard=false", f"--temp-dir={temp_dir}", "--disable-usage-stats",
         # As tests/integration/actors/test_cluster.py: ports of its own, beside other clusters.
         f"--node-manager-port={_free_port()}", f"--object-manager-port={_free_port()}",
         "--min-worker-port=0", "--max-worker-port=0"],
        cwd=cwd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    wait_for(lambda: "Ray runtime started" in log.read_text(errors="replace") or head.poll() is not None,
             240, what="ray start")
    assert head.poll() is None, log.read_text(errors="replace")[-2000:]
    return head


def _stop_head(head: subprocess.Popen[bytes]) -> None:
    os.killpg(head.pid, signal.SIGTERM)  # `ray start --block` stops its cluster on SIGTERM
    try:
        head.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()


def test_run_joining_a_cluster_uses_the_drivers_database_and_records_the_cluster(tmp_path: Path) -> None:
    ray_dir, run_dir = tmp_path / "ray-start-dir", tmp_path / "run-dir"
    ray_dir.mkdir()
    run_dir.mkdir()
    gcs_port, api_port = _free_port(), _free_port()
    head = _start_head(ray_dir, _env(), gcs_port, "/tmp/ltsop", tmp_path / "head.log")
    run = None
    try:
        run = subprocess.Popen(
            [str(BIN / "lts"), "run", "--address", f"127.0.0.1:{gcs_port}", "--api_port", str(api_port)],
            cwd=run_dir, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait_for(lambda: _healthy(api_port) or run.poll() is not None, 300, what="the gateway of lts run")
        assert run.poll() is None, run.stdout.read() if run.stdout else ""
        record_file = run_dir / ".lts" / "engine.json"
        wait_for(record_file.exists, 30, what="the engine record")
        assert stat.S_IMODE(record_file.stat().st_mode) == 0o600
        record = json.loads(record_file.read_text())
        assert record["address"].endswith(f":{gcs_port}") and record["pid"] == run.pid
        assert record["api_url"] == f"http://127.0.0.1:{api_port}"
        # The demo portfolio trades into the driver's database, resolved against run_dir.
        wait_for(lambda: _settled_orders(run_dir / "lts.db") > 0, 240, what="orders in the driver's database")
        assert not (ray_dir / "lts.db").exists() and not (ray_dir / "data").exists()

        status = subprocess.run([str(BIN / "lts"), "status", "--connect-timeout", "180"], cwd=run_dir, env=_env(), capture_output=True,
                                text=True, timeout=120)
        assert status.returncode == 0, status.stderr
        first = status.stdout.splitlines()[0]
        assert first.startswith(f"Ray cluster {record['address']} (from {record_file})"), status.stdout
        assert "supervisor running" in status.stdout

        run.send_signal(signal.SIGINT)
        out, _ = run.communicate(timeout=120)
        assert run.returncode == 0, out
        assert f"Ray cluster at {record['address']} (joined)" in out
        assert not record_file.exists()  # removed on stop: lts status then says no engine runs
    finally:
        if run is not None and run.poll() is None:
            run.kill()
            run.wait()
        _stop_head(head)


def test_run_refuses_a_busy_api_port_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([str(BIN / "lts"), "run", "--api_port", str(port)], cwd=tmp_path, env=_env(),
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0] == (f"lts run: error: config key 'api_port' ({port}, from command line (--api_port)): "
                        f"127.0.0.1:{port} is already in use (another lts run?); choose another with --api_port N")
    assert list(tmp_path.iterdir()) == []  # no database, no data, no state folder


def test_status_against_a_token_cluster_with_a_wrong_and_the_right_token(tmp_path: Path) -> None:
    """A cluster with token authentication: a wrong token is one line and exit 1 (before
    the fix: 20 s of Ray warnings, then "not running" and exit 0); the right one answers."""
    import secrets

    from persistence.schema import create_schema
    from persistence.store import Store

    url = f"sqlite:///{tmp_path / 'lts.db'}"
    store = Store.from_url(url)
    create_schema(store.engine)
    store.close()
    token = secrets.token_hex(16)
    gcs_port = _free_port()
    cluster_env = dict(_env(), RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    head = _start_head(tmp_path, cluster_env, gcs_port, "/tmp/ltstok", tmp_path / "head.log")
    try:

        def status(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
            return subprocess.run([str(BIN / "lts"), "status", "--address", f"127.0.0.1:{gcs_port}",
                                   "--database_url", url, "--connect-timeout", "120"],
                                  cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

        wrong = status(dict(cluster_env, RAY_AUTH_TOKEN=secrets.token_hex(16)))
        assert wrong.returncode == 1, (wrong.stdout, wrong.stderr)
        assert wrong.stderr.strip() == (f"lts status: error: the Ray cluster at 127.0.0.1:{gcs_port} (from --address) "
                                        "refused our authentication token (set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH "
                                        "to the cluster's token)")
        right = status(cluster_env)
        assert right.returncode == 0, (right.stdout, right.stderr)
        assert right.stdout.splitlines()[0].startswith("Ray cluster ") and "(from --address)" in right.stdout
        assert "No portfolios." in right.stdout
    finally:
        _stop_head(head)
