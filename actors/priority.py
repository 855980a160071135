"""CPU priority of actor processes: every thread of the process, not just the caller's.

On Linux niceness belongs to each thread. A Ray worker starts its Python main thread at
niceness 15 (Ray's ``worker_niceness``) but its ~15 C++ threads (gRPC pollers, the core
worker's I/O and timers, which do the work of every call) at 0, and ``os.nice`` changes
only the thread that calls it. So an asset actor that lowered "its" priority lowered only
its event loop thread, while the singletons' Python work ran at 15, below a hundred asset
actors' polling threads at 0. These helpers set all of a process's threads at once;
threads started later inherit the niceness of the thread that starts them.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)

ASSET_NICENESS = 19
"""Asset actors: below everything else, so the kernel serves the singletons first."""

ASSET_ACTIVE_NICENESS = 10
"""An asset actor while it serves a step call or (re)builds its state: above the idle
asset actors, still below the singletons. Every idle Ray worker wakes every 10 ms to
check for signals (a fixed interval in Ray's core worker); at the same niceness a hundred
of them delay every reply an active asset waits for (its persistence and broker round
trips), one scheduling slice each, and a restarting asset's build queues behind every
asset that is stepping. Raising a priority needs CAP_SYS_NICE: without it the asset stays at
``ASSET_NICENESS`` (see ``StepPriority``)."""

SINGLETON_NICENESS = 0
"""Persistence, broker and supervisor actors: the level of Ray's own threads. Raising a
priority needs CAP_SYS_NICE; without it they stay where Ray put them."""


def _thread_ids() -> list[int]:
    try:
        return [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:  # not Linux: the process is one scheduling unit
        return [0]


def set_process_niceness(niceness: int) -> int:
    """Put every thread of this process at ``niceness``; the number of threads changed.

    Threads that refuse (raising priority without the privilege, a thread that just
    ended) keep theirs: this is a performance hint, never a reason to fail."""
    if not hasattr(os, "setpriority"):
        return 0
    changed = 0
    for tid in _thread_ids():
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) != niceness:
                os.setpriority(os.PRIO_PROCESS, tid, niceness)
                changed += 1
        except OSError as exc:  # PermissionError, or the thread is gone
            logger.debug("niceness %s for thread %s of %s not set: %s", niceness, tid, os.getpid(), exc)
    return changed


def yield_to_singletons() -> int:
    """An asset actor: run all its threads below the singletons (see ``ASSET_NICENESS``).

    Every asset's orders queue at the one persistence actor and the one broker actor; on
    a machine with fewer cores than actors, assets that compete with them on equal terms
    delay every order of every asset. Lowering one's own priority needs no privilege."""
    return set_process_niceness(ASSET_NICENESS)


class StepPriority:
    """An asset actor's CPU priority: ``active`` while it serves a step call, ``idle``
    otherwise (see ``ASSET_ACTIVE_NICENESS``).

    ``with priority:`` (or ``active()`` / ``rest()``) sets every thread of the process (a few dozen syscalls, tens
    of microseconds). Where the process may not raise its priority, the first refusal
    turns this off and the threads stay at ``idle``: a performance hint, never a failure."""

    def __init__(self, idle: int = ASSET_NICENESS, active: int = ASSET_ACTIVE_NICENESS) -> None:
        self.idle = idle
        self.active_level = active
        self.enabled = hasattr(os, "setpriority") and active < idle

    def active(self) -> None:
        """Raise every thread to the active level (no-op once refused)."""
        if not self.enabled:
            return
        set_process_niceness(self.active_level)
        try:
            allowed = os.getpriority(os.PRIO_PROCESS, 0) == self.active_level
        except OSError:
            allowed = False
        if not allowed:
            self.enabled = False
            logger.info("pid %s may not raise its CPU priority: asset steps stay at niceness %s",
                        os.getpid(), self.idle)
            set_process_niceness(self.idle)  # threads that did change go back down

    def rest(self) -> None:
        """Back to the idle level."""
        if self.enabled:
            set_process_niceness(self.idle)

    def __enter__(self) -> "StepPriority":
        self.active()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.rest()


def run_as_singleton() -> int:
    """A singleton: all its threads at ``SINGLETON_NICENESS`` when allowed."""
    return set_process_niceness(SINGLETON_NICENESS)
