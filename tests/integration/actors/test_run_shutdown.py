"""``lts run`` stopped by SIGTERM. It must exit promptly with exit code 0: after the clean
stop ("Stopped cleanly.") when Ray's processes are alive (SIGTERM to ``lts run`` itself),
or at once with a message saying the cluster was already gone (SIGTERM to its whole
process group, as a terminal, systemd or ``docker stop`` send it: a local cluster's GCS
and raylet are in that group and die too); and nothing that Ray started for it may be
left running. For a clean stop under a service manager, the cluster runs on its own
(``ray start --head``; docs/actors.md).

Before the fix ``lts run`` waited about a minute for its Ray calls to time out once the
cluster was gone."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.actors.engine_helpers import wait_for

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups and /proc")]

BIN = Path(sys.executable).parent
# The whole stop (supervisor, in-flight steps, singletons, Ray) on a loaded two-core box.
STOP_WITHIN_S = 20.0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state letter) of every process, from ``/proc`` (Linux)."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        table[int(entry)] = (int(fields[1]), fields[0])
    return table


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _descendants(pid: int) -> dict[int, str]:
    """Every process below ``pid`` (by parent pid), with its command line."""
    table = _proc_table()
    found, todo = {}, [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, _state) in table.items():
            if ppid == parent and child not in found:
                found[child] = _cmdline(child)
                todo.append(child)
    return found


def _alive(procs: dict[int, str]) -> list[str]:
    """Those of ``procs`` still running (same pid and command line; zombies count as gone)."""
    table = _proc_table()
    return [f"{pid} {cmd[:120]}" for pid, cmd in procs.items()
            if pid in table and table[pid][1] != "Z" and _cmdline(pid) == cmd]


@contextmanager
def _lts_run(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    """``lts run`` on a temp SQLite DB and a free API port, in its own session and process
    group (like a service: a group signal then reaches lts run and its group, not pytest),
    trading; yields (process, database, log). Whatever is left is killed afterwards."""
    db = tmp_path / "run.db"
    api_port = _free_port()
    log = tmp_path / "lts-run.log"
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled",
               LTS_ADMIN_PASSWORD="Sup3rsecret-test")
    with log.open("w") as out:
        lts = subprocess.Popen(
            [str(BIN / "lts"), "run", "--database_url", f"sqlite:///{db}", "--data_dir", str(tmp_path / "data"),
             "--api_port", str(api_port), "--global_latency", "0.05", "--log_level", "WARNING"],
            env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    started: dict[int, str] = {}
    try:
        wait_for(lambda: lts.poll() is not None or _healthy(api_port), 180, interval_s=0.5,
                 what="lts run's API health route")
        assert lts.poll() is None, log.read_text()
        # Trading, so the stop has steps and writes in flight to finish.
        wait_for(lambda: lts.poll() is not None or _settled_orders(db) >= 2, 120, interval_s=0.5,
                 what="the demo portfolio to trade")
        assert lts.poll() is None, log.read_text()
        started.update(_descendants(lts.pid))
        assert any("raylet" in cmd for cmd in started.values()), started
        yield lts, db, log
    finally:
        if lts.poll() is None:
            os.killpg(lts.pid, signal.SIGKILL)
            lts.wait(10)
        for line in _alive(started):  # whatever is left, so it does not outlive the test
            try:
                os.kill(int(line.split()[0]), signal.SIGKILL)
            except OSError:
                pass


def _stop_group(lts: subprocess.Popen[bytes], log: Path, *, group: bool = True) -> tuple[int | None, float, str]:
    """SIGTERM to lts run's whole process group (``group``) or to lts run alone; (exit code
    or None, seconds, its output)."""
    started = _descendants(lts.pid)
    if group:
        os.killpg(lts.pid, signal.SIGTERM)  # lts run leads its group (start_new_session)
    else:
        os.kill(lts.pid, signal.SIGTERM)
    signalled = time.monotonic()
    try:
        code: int | None = lts.wait(STOP_WITHIN_S + 60)
    except subprocess.TimeoutExpired:
        code = None
    took = time.monotonic() - signalled
    # Everything Ray started for it is gone (a short grace for the kernel to reap).
    deadline = time.monotonic() + 10
    while _alive(started) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _alive(started) == [], "left behind"
    return code, took, log.read_text()


def test_sigterm_stops_lts_run_cleanly_and_promptly(tmp_path: Path) -> None:
    with _lts_run(tmp_path) as (lts, db, log):
        code, took, output = _stop_group(lts, log, group=False)
    print(f"lts run stopped in {took:.1f} s")
    assert code == 0, f"exit code {code} after {took:.1f} s:\n{output[-3000:]}"
    assert took < STOP_WITHIN_S, f"took {took:.1f} s to stop:\n{output[-3000:]}"
    # The clean stop ran on a live cluster: supervisors, steps, writes, then Ray.
    assert "Stopped cleanly." in output, output[-3000:]
    assert "did not stop cleanly" not in output and "Traceback" not in output, output[-3000:]
    with sqlite3.connect(db) as conn:
        statuses = dict(conn.execute("select status, count(*) from orders group by status").fetchall())
    assert sum(statuses.values()) >= 2, statuses


def test_lts_run_exits_promptly_when_its_ray_cluster_is_already_gone(tmp_path: Path) -> None:
    """Ray's processes got the SIGTERM too (the whole process group was signalled, or a
    joined cluster stopped along with us): no minute-long wait on Ray calls, a clear
    message, exit code 0."""
    with _lts_run(tmp_path) as (lts, _db, log):
        code, took, output = _stop_group(lts, log)
    print(f"lts run stopped in {took:.1f} s")
    assert code == 0, f"exit code {code} after {took:.1f} s:\n{output[-3000:]}"
    assert took < STOP_WITHIN_S, f"took {took:.1f} s to stop:\n{output[-3000:]}"
    assert "The Ray cluster was already gone" in output, output[-3000:]
    assert "Stopped cleanly." not in output
