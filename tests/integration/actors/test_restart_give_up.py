"""Supervision gives up: an asset whose actor dies on every start (its strategy kills the
process) is restarted with backoff ``max_asset_restarts`` times, then marked errored in
the database (with an audit row and the reason), left stopped, and never restarted again,
while its sibling trades to the end of its data."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import ray

from actors import naming
from tests.integration.actors.crash_strategy import registered_crash_strategy
from tests.integration.actors.engine_helpers import engine_config, running_engine, seed_portfolio, wait_for, write_ohlc_csv

pytestmark = pytest.mark.ray

MAX_RESTARTS = 2


def test_asset_dying_on_every_start_is_given_up(ray_session, sqlite_store, sqlite_db_url, tmp_path: Path,
                                                backtesting_data_dir: Path):
    from persistence.records import PageRequest

    write_ohlc_csv(backtesting_data_dir / "EURUSD.csv", tmp_path / "a.csv", slice(0, 300))
    with registered_crash_strategy() as crashing:
        portfolio_id, (bad, good) = seed_portfolio(sqlite_store, [
            {"symbol": "BAD", "strategy_plugin": crashing, "data_source": {"path": "a.csv"}},
            {"symbol": "GOOD", "strategy_plugin": "sma_cross", "strategy_config": {"fast": 5, "slow": 20},
             "broker_plugin": "default_broker", "data_source": {"path": "a.csv"}}])
        config = engine_config(sqlite_db_url, tmp_path, max_asset_restarts=MAX_RESTARTS, restart_window_s=60.0)
        with running_engine(config) as runtime:
            def settled() -> dict | None:
                status = {a["asset_id"]: a for a in runtime.status()["assets"]}
                done = len(status) == 2 and status[bad]["state"] == "errored" and status[good]["state"] == "finished"
                return status if done else None

            started = time.monotonic()
            status = wait_for(settled, 90, what="the crashing asset to be given up and its sibling to finish")
            gave_up_s = time.monotonic() - started
            time.sleep(1.5)  # longer than any backoff: nothing restarts it again
            later = {a["asset_id"]: a for a in runtime.status()["assets"]}
            counts = runtime.status()["supervisors"][0]["counts"]
            with pytest.raises(ValueError):
                ray.get_actor(naming.asset(bad), namespace=config["ray_namespace"])

    # Restarted exactly MAX_RESTARTS times, then given up with the reason, and left stopped.
    assert status[bad]["restarts"] == MAX_RESTARTS
    assert status[bad]["last_error"] == f"died more than {MAX_RESTARTS} times within 60 s"
    assert later[bad]["state"] == "errored" and later[bad]["restarts"] == MAX_RESTARTS
    assert gave_up_s < 60
    record = sqlite_store.get_asset(bad)
    assert str(getattr(record.status, "value", record.status)) == "errored" and record.is_active is False
    assert record.status_reason == status[bad]["last_error"]
    audits = [a for a in sqlite_store.list_audit_logs(action="asset.errored", page=PageRequest(limit=50)).items
              if a.target_id == str(bad)]
    assert len(audits) == 1
    # The sibling was not disturbed: it walked all its data and traded.
    assert status[good]["restarts"] == 0 and status[good]["failures"] == 0
    orders = sqlite_store.list_orders(portfolio_id=portfolio_id, page=PageRequest(limit=500)).items
    assert {o.asset_id for o in orders} == {good} and len(orders) > 5
    # The engine status counts it (the heartbeat's health is not a statistics row).
    assert counts["steps_ok"] == 300 and counts["assets_errored"] == 1 and counts["restarts"] == MAX_RESTARTS
