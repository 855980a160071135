"""INT-04: one asset whose strategy raises on every step is counted (engine status) and
audited with the reason, and skipped, while its siblings keep trading. The heartbeat's
health is not written to the statistics table (no row per portfolio per second)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.actors.engine_helpers import engine_config, running_engine, seed_portfolio, wait_for, write_ohlc_csv
from tests.integration.actors.faulty_strategy import registered_faulty_strategy

pytestmark = pytest.mark.ray


def test_raising_strategy_is_isolated(ray_session, sqlite_store, sqlite_db_url, tmp_path: Path, backtesting_data_dir: Path):
    from persistence.records import PageRequest

    eur = backtesting_data_dir / "EURUSD.csv"
    write_ohlc_csv(eur, tmp_path / "a.csv", slice(0, 300))
    write_ohlc_csv(eur, tmp_path / "b.csv", slice(300, 600))
    with registered_faulty_strategy() as faulty:
        sma = {"strategy_plugin": "sma_cross", "strategy_config": {"fast": 5, "slow": 20},
               "broker_plugin": "default_broker"}
        portfolio_id, (bad, good1, good2) = seed_portfolio(sqlite_store, [
            {"symbol": "BAD", "strategy_plugin": faulty, "data_source": {"path": "a.csv"}},
            {"symbol": "GOOD1", **sma, "data_source": {"path": "a.csv"}},
            {"symbol": "GOOD2", **sma, "data_source": {"path": "b.csv"}},
        ])
        with running_engine(engine_config(sqlite_db_url, tmp_path)) as runtime:
            def settled() -> dict | None:
                status = {a["asset_id"]: a for a in runtime.status()["assets"]}
                done = len(status) == 3 and all(status[g]["state"] == "finished" for g in (good1, good2))
                return status if done and status[bad]["failures"] >= 100 else None

            status = wait_for(settled, 90, what="the good assets to finish while the bad one fails")
            counts = runtime.status()["supervisors"][0]["counts"]

    # The bad asset kept running (skipped, not restarted, not errored) and says why.
    assert status[bad]["state"] in ("running", "finished")
    assert status[bad]["restarts"] == 0
    assert "strategy" in status[bad]["last_error"] and "boom at bar" in status[bad]["last_error"]
    # Its siblings traded: orders through the broker into the database.
    orders = sqlite_store.list_orders(portfolio_id=portfolio_id, page=PageRequest(limit=500)).items
    by_asset = {a: [o for o in orders if o.asset_id == a] for a in (bad, good1, good2)}
    assert by_asset[bad] == []
    assert len(by_asset[good1]) > 5 and len(by_asset[good2]) > 5
    # The engine status counts the failed steps by kind; no heartbeat statistics rows.
    assert counts["failed_strategy"] >= 100 and counts["steps_failed"] >= counts["failed_strategy"]
    stats = sqlite_store.list_statistics(portfolio_id=portfolio_id, page=PageRequest(limit=500)).items
    assert not [s for s in stats if (s.kind, s.name) == ("engine", "cycle")]
    assert not sqlite_store.list_audit_logs(action="statistic.record", page=PageRequest(limit=5)).items
    # The audit log has the failure with its reason (once per distinct reason, not per step).
    audits = sqlite_store.list_audit_logs(action="asset.step_failed", page=PageRequest(limit=500)).items
    mine = [a for a in audits if a.target_id == str(bad)]
    assert len(mine) == 1 and mine[0].details["kind"] == "strategy"
    assert "RuntimeError: boom at bar" in mine[0].details["reason"]
    assert not [a for a in audits if a.target_id in (str(good1), str(good2))]
