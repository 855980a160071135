"""``tune_malloc_for_backtests``: memory a run frees stays in the process for the next
run instead of being faulted in again page by page (glibc only).

Each case runs in a fresh interpreter: the thresholds are process state."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

ROUNDS = """
import json, resource, sys
import numpy as np
sys.path.insert(0, {root!r})
from actors.backtests.malloc_tuning import tune_malloc_for_backtests
applied = tune_malloc_for_backtests() if {tuned} else None
faults = []
for _ in range(5):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    arrays = [np.ones(400_000) for _ in range(8)]  # 8 x 3.2 MB, every page written
    del arrays
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({{"applied": applied, "again": tune_malloc_for_backtests() if {tuned} else None,
                  "faults": faults}}))
"""


def _rounds(tuned: bool) -> dict:
    code = ROUNDS.format(root=str(ROOT), tuned=tuned)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_run_memory_is_reused_instead_of_faulted_in_again():
    plain, tuned = _rounds(False), _rounds(True)
    assert tuned["applied"] is True and tuned["again"] is True  # idempotent
    pages = 8 * 400_000 * 8 // 4096
    # Without tuning glibc hands the 25 MB back to the kernel after every round, so each
    # round faults every page in again (the scenario this guards against really happens)...
    assert min(plain["faults"][1:]) > pages * 0.8
    # ...with it, the rounds after the first reuse the pages already in the process.
    assert max(tuned["faults"][1:]) < pages * 0.05
