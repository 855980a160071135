"""Pausing asset actors while they wait for a step slot.

An idle Ray worker is not free: its main thread wakes every 10 ms to check for signals (a
fixed interval in Ray's core worker, not a setting), and on the 2-vCPU VM that cost is
about 6.6 ms of CPU per second per process. A hundred asset actors that wait for their
turn therefore burn a third of two cores doing nothing (measured beside
``bench/bench_actors.py``: 660 CPU ms/s for 100 idle asset actors, of 2,000), and the
assets that do step, the persistence actor and the broker actor get what is left.

A portfolio with more running assets than step slots has most of its assets waiting at
any time: for their turn in a free-running simulation, for the next tick on a paced
heartbeat. The supervisor then stops (``SIGSTOP``) each asset's process once its call has
answered (the call waited for its results to be recorded) and continues it (``SIGCONT``)
right before its next call. A stopped process costs nothing; its sockets stay open, so a call
sent to it meanwhile waits in the kernel and is served when it continues, and a
``kill -9`` still kills it at once (the supervisor's ``watch`` call then fails as usual).

Only processes on the supervisor's own node are paused, through a pidfd (Linux >= 5.3):
the descriptor names the process itself, so a signal can never reach a process that
reused the pid. Anywhere this is not available nothing is paused.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

logger = logging.getLogger(__name__)


def pausing_supported() -> bool:
    """Whether this platform can pause a process through a pidfd."""
    return hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal")


class ProcessPause:
    """Stop and continue one local process (an asset actor's), race-free through a pidfd.

    ``pause()`` and ``resume()`` are idempotent and never raise: a process that is gone
    (killed, restarted) needs no resume, and pausing is only ever a saving of CPU."""

    def __init__(self, pidfd: int, pid: int) -> None:
        self._fd: int | None = pidfd
        self.pid = pid
        self.paused = False

    @classmethod
    def open(cls, pid: Any, node_id: Any, own_node_id: Any) -> "ProcessPause | None":
        """A handle on process ``pid`` of node ``node_id``; None when it is on another node
        (or either id is unknown), or the platform cannot pause processes."""
        if not pid or not node_id or node_id != own_node_id or not pausing_supported():
            return None
        try:
            return cls(os.pidfd_open(int(pid)), int(pid))
        except (OSError, ValueError) as exc:  # gone already, or not ours to signal
            logger.debug("process %s cannot be paused: %s", pid, exc)
            return None

    def pause(self) -> bool:
        """Stop the process (until ``resume``); whether it is paused now."""
        if not self.paused and self._signal(signal.SIGSTOP):
            self.paused = True
        return self.paused

    def resume(self) -> None:
        """Continue the process if this handle paused it."""
        if self.paused:
            self.paused = False
            self._signal(signal.SIGCONT)

    def close(self) -> None:
        """Resume the process (if paused) and release the descriptor."""
        self.resume()
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def _signal(self, signum: int) -> bool:
        if self._fd is None:
            return False
        try:
            signal.pidfd_send_signal(self._fd, signum)  # type: ignore[attr-defined]
            return True
        except OSError:  # the process has exited: nothing to pause or resume
            return False


def node_id() -> str | None:
    """This process's Ray node id (None outside Ray)."""
    try:
        import ray

        return str(ray.get_runtime_context().get_node_id())
    except Exception:
        return None


__all__ = ["ProcessPause", "node_id", "pausing_supported"]
