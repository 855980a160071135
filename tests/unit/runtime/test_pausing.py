"""``ProcessPause`` stops and continues a real local process through a pidfd, only on the
caller's node, and never fails on a process that is gone."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from actors.pausing import ProcessPause, pausing_supported
from tests.fixtures.processes import process_state as state

pytestmark = pytest.mark.skipif(not pausing_supported(), reason="needs Linux pidfds")


def wait_state(pid: int, wanted: set[str | None], timeout_s: float = 5.0) -> str | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        current = state(pid)
        if current in wanted:
            return current
        time.sleep(0.01)
    return state(pid)


@pytest.fixture
def sleeper():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def test_pause_stops_the_process_and_resume_continues_it(sleeper) -> None:
    pause = ProcessPause.open(sleeper.pid, "node-a", "node-a")
    assert pause is not None
    assert wait_state(sleeper.pid, {"S", "R"}) in ("S", "R")
    assert pause.pause() and pause.paused
    assert wait_state(sleeper.pid, {"T"}) == "T"
    assert pause.pause()  # idempotent
    pause.resume()
    assert not pause.paused
    assert wait_state(sleeper.pid, {"S", "R"}) in ("S", "R")
    pause.pause()
    pause.close()  # closing continues a paused process
    assert wait_state(sleeper.pid, {"S", "R"}) in ("S", "R")
    assert not pause.pause()  # closed: nothing happens any more
    assert wait_state(sleeper.pid, {"S", "R"}) in ("S", "R")


def test_only_processes_on_the_callers_node_can_be_paused(sleeper) -> None:
    assert ProcessPause.open(sleeper.pid, "node-b", "node-a") is None
    assert ProcessPause.open(sleeper.pid, None, "node-a") is None
    assert ProcessPause.open(None, "node-a", "node-a") is None


def test_a_process_that_is_gone_is_neither_paused_nor_an_error(sleeper) -> None:
    pause = ProcessPause.open(sleeper.pid, "node-a", "node-a")
    assert pause is not None
    sleeper.kill()
    sleeper.wait()
    # The pidfd still names the dead process, never a new one with the same pid.
    assert not pause.pause()
    pause.resume()
    pause.close()
