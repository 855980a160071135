"""The gateway's backtest routes and the planning code must not pull Ray in."""

from __future__ import annotations

import subprocess
import sys


def test_api_router_and_planning_do_not_import_ray() -> None:
    code = (
        "import sys, api.routers.backtests, engine.backtest.planning, actors.backtests.report;"
        "bad = sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
