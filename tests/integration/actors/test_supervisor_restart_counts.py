"""An asset's restart count and restart window survive a ``kill -9`` of its portfolio's
supervisor. Ray restarts the supervisor (``max_restarts=-1``), which rebuilds each asset's
restart history from the ``asset.restarted`` audit rows it wrote: the count shown by the
supervisor (and so by ``lts status`` and the API) goes on from where it was, and the
"errored after N restarts within the window" rule still counts the restarts made before
the supervisor died. Before the fix both started again from zero, so an asset that kept
crashing escaped the rule whenever its supervisor crashed too."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.integration.actors.engine_helpers import engine_config, running_engine, seed_portfolio, wait_for, write_ohlc_csv

pytestmark = [pytest.mark.ray, pytest.mark.slow]

MAX_RESTARTS = 3
WINDOW_S = 600.0  # far longer than the test: every restart below is inside it


def test_restart_count_and_window_survive_a_supervisor_kill(ray_session, sqlite_store, sqlite_db_url,
                                                             tmp_path: Path, backtesting_data_dir: Path):
    from actors.commands.status import collect
    from persistence.records import PageRequest

    write_ohlc_csv(backtesting_data_dir / "EURUSD.csv", tmp_path / "a.csv", slice(0, 3000))
    # Paced (0.1 s a bar over 3,000 bars): still trading when the test ends.
    portfolio_id, (asset_id,) = seed_portfolio(sqlite_store, [
        {"symbol": "EURUSD", "strategy_plugin": "default_strategy",
         "strategy_config": {"lookback": 3, "quantity": 1000.0},
         "broker_plugin": "default_broker", "data_source": {"path": "a.csv"}}], latency=0.1)
    config = engine_config(sqlite_db_url, tmp_path, max_asset_restarts=MAX_RESTARTS, restart_window_s=WINDOW_S)
    with running_engine(config) as runtime:
        def supervisor() -> dict:
            (status,) = runtime.status()["supervisors"]
            return status

        def asset() -> dict:
            return {a["asset_id"]: a for a in runtime.status()["assets"]}.get(asset_id, {})

        def kill_asset() -> None:
            before = asset()
            os.kill(before["pid"], signal.SIGKILL)
            wait_for(lambda: (a := asset()).get("restarts") == before["restarts"] + 1 and a["state"] == "running"
                     and a["pid"] != before["pid"], 60, what="the asset back after kill -9")

        wait_for(lambda: asset().get("state") == "running", 90, what="the asset running")
        kill_asset()
        kill_asset()
        assert asset()["restarts"] == 2

        old = supervisor()
        os.kill(old["pid"], signal.SIGKILL)
        wait_for(lambda: (s := supervisor()).get("pid") not in (None, old["pid"]) and s.get("restarted")
                 and asset().get("state") == "running", 120, what="the supervisor back after kill -9")
        # The count goes on where it was, in the supervisor's status and in `lts status`.
        assert asset()["restarts"] == 2
        import ray

        # The cluster of this test session by its address: "auto" could find another one.
        (row,) = collect(config, ray.get_runtime_context().gcs_address)["portfolios"]
        assert row["supervisor"] == "running"
        assert [(a["asset_id"], a["restarts"]) for a in row["assets"]] == [(asset_id, 2)]

        # The window survived too: one more restart is allowed (3 of 3), the next death is
        # over the limit and the asset is given up, although this supervisor saw only two.
        kill_asset()
        assert asset()["restarts"] == MAX_RESTARTS
        os.kill(asset()["pid"], signal.SIGKILL)
        wait_for(lambda: asset().get("state") == "errored", 60, what="the asset given up")
        assert asset()["restarts"] == MAX_RESTARTS
        assert asset()["last_error"] == f"died more than {MAX_RESTARTS} times within {WINDOW_S:g} s"

    record = sqlite_store.get_asset(asset_id)
    assert str(getattr(record.status, "value", record.status)) == "errored"
    restarts = [a for a in sqlite_store.list_audit_logs(action="asset.restarted", page=PageRequest(limit=50)).items
                if a.target_id == str(asset_id)]
    assert sorted(a.details["restart"] for a in restarts) == [1, 2, 3]
    assert {a.details["portfolio_id"] for a in restarts} == {portfolio_id}
