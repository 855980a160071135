"""A real two-node ``ray start`` cluster on this machine (head on a free port, never 6379,
plus a second node joining it), ``lts run --address ...`` against it in a subprocess: the
demo portfolio trades, and everything started here is stopped here (no ``ray stop``,
which would kill other people's clusters)."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration.actors.engine_helpers import wait_for

pytestmark = [pytest.mark.slow]

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_lts_run_on_a_ray_start_cluster(tmp_path: Path) -> None:
    port = free_port()
    assert port != 6379
    address = f"127.0.0.1:{port}"
    # Token auth off for this throw-away loopback cluster: the token file in ~/.ray is shared
    # with every other Ray session on the machine, which may rewrite it mid-test.
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths are length-limited
    ports = [free_port() for _ in range(4)]
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", f"--temp-dir={temp_dir}", f"--node-manager-port={ports[0]}",
         f"--object-manager-port={ports[1]}", "--min-worker-port=0", "--max-worker-port=0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    procs = [head]
    try:
        wait_for(lambda: _reachable(port), 60, interval_s=0.5, what="the Ray head")
        worker = subprocess.Popen(
            [str(BIN / "ray"), "start", "--block", f"--address={address}", "--num-cpus=1",
             f"--node-manager-port={ports[2]}", f"--object-manager-port={ports[3]}",
             "--min-worker-port=0", "--max-worker-port=0"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(worker)
        db = tmp_path / "cluster.db"
        api_port = free_port()
        lts = subprocess.Popen(
            [str(BIN / "lts"), "run", "--address", address, "--database_url", f"sqlite:///{db}",
             "--data_dir", str(tmp_path / "data"), "--api_port", str(api_port), "--global_latency", "0.02",
             "--log_level", "WARNING"],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(lts)
        wait_for(lambda: _orders(db) >= 3 or lts.poll() is not None, 120, interval_s=0.5,
                 what="the demo portfolio to trade on the cluster")
        assert lts.poll() is None, lts.stdout.read() if lts.stdout else ""
        # The second node may register after the demo's first orders on a fast run.
        wait_for(lambda: _nodes(address, env) == 2, 60, interval_s=0.5, what="both nodes in the cluster")
        _stop(lts, signal.SIGINT, 60)
        output = lts.stdout.read() if lts.stdout else ""
        assert lts.returncode == 0, output
        # lts run names the cluster as Ray reports it (the node's own IP, not the loopback alias).
        assert "Stopped cleanly." in output and f":{port}" in output
        with sqlite3.connect(db) as conn:
            orders = conn.execute("select id, asset_id, status, json_extract(details, '$.bar_time') "
                                  "from orders order by id").fetchall()
        assert len(orders) >= 3
        # A decision on bar t fills at bar t+1's open: a stop between two bars may leave the
        # orders of each asset's newest decision queued at the broker ("pending"; a reversal
        # is two: close and open), to be reconciled on the next start. Anything pending from
        # an earlier bar than its asset's newest decision would be a lost intent.
        newest_bar: dict[int, str] = {}
        for _id, asset_id, _status, bar_time in orders:
            newest_bar[asset_id] = max(newest_bar.get(asset_id, ""), bar_time or "")
        stranded = [o for o in orders if o[2] == "pending" and (o[3] or "") != newest_bar[o[1]]]
        assert stranded == [], orders
    finally:
        for proc in reversed(procs):
            _stop(proc)


def _reachable(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _orders(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("select count(*) from orders where status != 'pending'").fetchone()[0])
    except sqlite3.Error:
        return 0


def _nodes(address: str, env: dict[str, str]) -> int:
    code = ("import ray; ray.init(address=%r, log_to_driver=False); "
            "print(sum(1 for n in ray.nodes() if n['Alive']))") % address
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    return int(out.stdout.strip().splitlines()[-1])
