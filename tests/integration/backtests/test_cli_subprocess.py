"""The real ``lts`` console script in its own process: it joins the shared test cluster
with ``--address`` and a SIGINT (Ctrl-C) cancels the rest while keeping what finished."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.ray


def test_lts_backtest_joins_a_cluster_and_sigint_keeps_finished_runs(
    ray_session: Any, backtest_data: list[Path], tmp_path: Path
) -> None:
    address = ray_session.get_runtime_context().gcs_address
    lts = Path(sys.executable).parent / "lts"
    out = tmp_path / "out"
    grid = ",".join(str(v) for v in range(2, 40))
    proc = subprocess.Popen(
        [str(lts), "backtest", *map(str, backtest_data), "--strategy", "sma_cross",
         "--grid", f"fast={grid}", "--set", "slow=40", "--address", address,
         "--out", str(out), "--no_db", "--log_level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        seen = ""
        deadline = time.monotonic() + 120
        assert proc.stderr is not None
        # Wait for a progress line saying at least one run is done, then press Ctrl-C.
        while not any(int(done) >= 1 for done in re.findall(r"(\d+)/152 done", seen)):
            line = proc.stderr.readline()
            if not line or time.monotonic() > deadline:
                pytest.fail(f"no progress from lts backtest: {seen}")
            seen += line
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = seen + stderr
    assert proc.returncode == 130, stderr
    assert "cancelling the remaining backtests" in stderr
    summary = json.loads((out / "summary.json").read_text())
    counts = summary["counts"]
    assert summary["interrupted"] is True and counts["total"] == 4 * 38
    assert counts["ok"] >= 1 and counts["cancelled"] >= 1 and counts["failed"] == 0
    assert f"{counts['ok']} ok, 0 failed, {counts['cancelled']} cancelled of 152" in stdout
    assert (out / "report.html").exists()
    finished = [r for r in summary["runs"] if r["status"] == "ok"]
    assert all((out / r["files"]["equity_png"]).stat().st_size > 1000 for r in finished)
