"""Actor CPU priority covers every thread of the process (Linux niceness is per thread)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")

_CHILD = textwrap.dedent(
    """
    import json, os, threading, time
    from actors.priority import ASSET_NICENESS, yield_to_singletons

    stop = threading.Event()
    workers = [threading.Thread(target=stop.wait) for _ in range(3)]  # like Ray's C++ threads
    for w in workers:
        w.start()
    changed = yield_to_singletons()
    later = threading.Thread(target=stop.wait)  # started afterwards: inherits
    later.start()
    time.sleep(0.05)
    nice = {int(t): os.getpriority(os.PRIO_PROCESS, int(t)) for t in os.listdir("/proc/self/task")}
    stop.set()
    print(json.dumps({"changed": changed, "target": ASSET_NICENESS, "levels": sorted(set(nice.values())),
                      "threads": len(nice)}))
    """
)


def test_yield_to_singletons_lowers_every_thread_including_later_ones() -> None:
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=60, check=True)
    seen = json.loads(out.stdout)
    assert seen["threads"] == 5  # main, the 3 workers and the later one
    assert seen["levels"] == [seen["target"]]  # all of them at the asset niceness
    assert seen["changed"] == 4  # main + 3 workers; the later thread inherited it


_STEP_CHILD = textwrap.dedent(
    """
    import json, os, threading
    from actors.priority import ASSET_ACTIVE_NICENESS, ASSET_NICENESS, StepPriority, yield_to_singletons

    def levels():
        return sorted({os.getpriority(os.PRIO_PROCESS, int(t)) for t in os.listdir("/proc/self/task")})

    stop = threading.Event()
    workers = [threading.Thread(target=stop.wait) for _ in range(3)]  # like Ray's C++ threads
    for w in workers:
        w.start()
    yield_to_singletons()
    priority = StepPriority()
    seen = {"idle": levels()}
    priority.active()
    seen["active"] = levels()
    seen["enabled"] = priority.enabled
    priority.rest()
    seen["rest"] = levels()
    priority.active()  # a second step call: raised again (or, refused once, not tried)
    seen["again"] = levels()
    priority.rest()
    with priority:  # the form the asset actor uses
        seen["within"] = levels()
    seen["after"] = levels()
    stop.set()
    seen["targets"] = [ASSET_NICENESS, ASSET_ACTIVE_NICENESS]
    print(json.dumps(seen))
    """
)


def _run_step_child() -> dict:
    out = subprocess.run([sys.executable, "-c", _STEP_CHILD], capture_output=True, text=True, timeout=60,
                         check=True)
    return json.loads(out.stdout)


def test_step_priority_raises_every_thread_during_a_step_and_lowers_it_after() -> None:
    import os

    if os.geteuid() != 0:
        pytest.skip("raising a priority needs CAP_SYS_NICE; the unprivileged case is the next test")
    seen = _run_step_child()
    idle, active = seen["targets"]
    assert seen["idle"] == [idle]
    assert seen["active"] == [active] and seen["enabled"] is True
    assert seen["rest"] == [idle]
    assert seen["again"] == [active]
    assert seen["within"] == [active] and seen["after"] == [idle]


def test_step_priority_without_the_privilege_stays_idle_and_stops_trying() -> None:
    # The kernel's rule for a process without CAP_SYS_NICE: a thread may lower its
    # priority (raise its niceness), never raise it. Reproduced here, as the test may run
    # as root (where the interpreter is not readable by an unprivileged user).
    rule = textwrap.dedent(
        """
        import os
        _set = os.setpriority
        def unprivileged(which, who, value):
            if value < os.getpriority(which, who):
                raise PermissionError(1, "Operation not permitted")
            _set(which, who, value)
        os.setpriority = unprivileged
        """
    )
    out = subprocess.run([sys.executable, "-c", rule + _STEP_CHILD], capture_output=True, text=True,
                         timeout=60, check=True)
    seen = json.loads(out.stdout)
    idle, _ = seen["targets"]
    assert seen["active"] == [idle] and seen["enabled"] is False
    assert seen["rest"] == [idle] and seen["again"] == [idle]
    assert seen["within"] == [idle] and seen["after"] == [idle]
