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
