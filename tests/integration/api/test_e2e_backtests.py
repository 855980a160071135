"""A backtest batch submitted over REST runs on the real engine's Ray cluster.

Through the real gateway wired to the real ``EngineClient``: ``POST /api/backtests`` →
the runs execute as Ray tasks → progress and results are written through the
persistence actor → ``GET /api/backtests/{id}`` shows them, equal to ``run_backtest``
called directly on the same file, and the report downloads.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from engine.backtest.runner import run_backtest
from engine.data.csv_loader import load_csv
from tests.integration.actors.engine_helpers import engine_config
from tests.integration.api.conftest import PASSWORD, bearer
from tests.integration.api.e2e_support import engine_and_gateway

pytestmark = pytest.mark.ray


def _wait_finished(live: Any, run_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = live.journey.get(f"/api/backtests/{run_id}").json()
        if body["status"] in ("completed", "failed", "cancelled"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"backtest run {run_id} did not finish: {body}")


def test_rest_backtest_runs_on_the_engine_cluster(ray_session: Any, sqlite_db_url: str, tmp_path: Path,
                                                   backtesting_data_dir: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    source = backtesting_data_dir / "EURUSD.csv"
    (data_dir / "eurusd.csv").write_bytes(source.read_bytes())
    config = engine_config(sqlite_db_url, data_dir, backtest_dir=str(tmp_path / "reports"))

    with engine_and_gateway(config) as live:
        http = live.journey
        http.client.post("/api/auth/register", json={"username": "quant", "password": PASSWORD}).raise_for_status()
        tokens = http.client.post("/api/auth/login", json={"username": "quant", "password": PASSWORD}).json()
        http.headers = bearer(tokens["access_token"])

        answer = http.client.post("/api/backtests", headers=http.headers, json={
            "files": ["eurusd.csv"], "strategy": "sma_cross",
            "params": {"slow": 30}, "grid": {"fast": [5, 10]}})
        assert answer.status_code == 202, answer.text
        done = _wait_finished(live, answer.json()["id"])

        assert done["status"] == "completed", done
        assert done["completed_jobs"] == 2 and len(done["results"]) == 2
        data = load_csv(data_dir / "eurusd.csv")
        for result in done["results"]:
            fast = result["params"]["grid"]["fast"]
            direct = run_backtest(data, "sma_cross", {"fast": fast, "slow": 30})
            assert result["error"] is None
            assert result["trades_count"] == len(direct.trades) > 0
            assert result["stats"]["total_return"] == pytest.approx(direct.stats["total_return"], rel=1e-12)

        report = http.client.get(done["report_url"], headers=http.headers)
        assert report.status_code == 200 and "Winner: <b>" in report.text
        # Written through the persistence actor: the audit trail names the submitting user.
        created = live.store.list_audit_logs(action="backtest.create").items
        assert [row.user_id for row in created] == [done["owner_id"]]
