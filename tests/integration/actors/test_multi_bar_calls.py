"""Free-running simulations step several bars per supervisor call (``AssetActor.steps``):
the trades are the same as with one call per bar, every bar is counted as a step, a
strategy that fails on some bars is counted bar by bar, and the calls really carry
several bars each (a hold bar costs no actor hop)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import ray

from tests.integration.actors.engine_helpers import engine_config, running_engine, seed_portfolio, wait_for, write_ohlc_csv
from tests.integration.actors.faulty_strategy import registered_faulty_strategy

pytestmark = pytest.mark.ray

BARS = 400


def _run(store: Any, db_url: str, tmp_path: Path, data: Path, bars_per_call: int, faulty: str) -> dict[str, Any]:
    from persistence.records import PageRequest

    portfolio_id, (asset_id, failing_id) = seed_portfolio(store, [
        {"symbol": "EUR", "strategy_plugin": "sma_cross", "strategy_config": {"fast": 5, "slow": 20, "quantity": 10000.0},
         "broker_plugin": "default_broker", "data_source": {"path": data.name}},
        # Raises on every bar: each bar is a failed step, counted one by one.
        {"symbol": "BAD", "strategy_plugin": faulty, "strategy_config": {},
         "broker_plugin": "default_broker", "data_source": {"path": data.name}},
    ])
    config = engine_config(db_url, tmp_path, simulation_bars_per_call=bars_per_call)
    with running_engine(config) as runtime:
        supervisor = runtime.supervisors[portfolio_id]
        def states() -> list[str]:
            mine = [s for s in runtime.status()["supervisors"] if s["portfolio_id"] == portfolio_id]
            return [a["state"] for s in mine for a in s.get("assets", [])]

        wait_for(lambda: states() == ["finished", "finished"], 60, what="both assets to walk their data")
        window = ray.get(supervisor.take_latencies.remote(), timeout=30)
        from actors import naming

        # Both assets read the one file: the supervisor parsed it once for both.
        infos = [ray.get(ray.get_actor(naming.asset(a), namespace=config["ray_namespace"]).info.remote(), timeout=30)
                 for a in (asset_id, failing_id)]
        assert [i["data_shared"] for i in infos] == [True, True]
        assert [i["bars"] for i in infos] == [BARS, BARS]
        counts = (runtime.deactivate_portfolio(portfolio_id) or {})["counts"]
    from persistence.records import AuditContext

    store.deactivate_portfolio(AuditContext.system(), portfolio_id)  # the next run starts without it
    positions = store.list_positions(asset_id=asset_id, page=PageRequest(limit=500)).items
    return {
        "trades": sorted((p.side.value, p.opened_at, p.closed_at, p.entry_price, p.close_price, p.realized_pnl)
                         for p in positions),
        "window": window,
        "steps_ok": counts.get("steps_ok", 0),
        "steps_failed": counts.get("steps_failed", 0),
        "failed_audits": [a for a in store.list_audit_logs(action="asset.step_failed", page=PageRequest(limit=50)).items
                          if int(a.target_id) == failing_id],
    }


def test_multi_bar_calls_trade_and_count_like_one_call_per_bar(ray_session, sqlite_store, sqlite_db_url,
                                                                tmp_path: Path, backtesting_data_dir: Path):
    data = write_ohlc_csv(backtesting_data_dir / "EURUSD.csv", tmp_path / "eur.csv", slice(0, BARS))
    with registered_faulty_strategy() as faulty:
        single = _run(sqlite_store, sqlite_db_url, tmp_path, data, 1, faulty)
        burst = _run(sqlite_store, sqlite_db_url, tmp_path, data, 16, faulty)

    assert len(single["trades"]) > 5
    assert burst["trades"] == single["trades"]
    for run in (single, burst):
        # Every bar of both assets is one step: the good asset's ok, the bad one's failed
        # (audited once, not once per bar).
        assert run["steps_ok"] == BARS
        assert run["steps_failed"] == BARS
        assert len(run["failed_audits"]) == 1
    # One call per bar, against calls of several bars (a hold bar rides along).
    assert single["window"]["bars_per_call"] == 1 and not single["window"]["call_latencies_ms"]
    assert len(single["window"]["latencies_ms"]) == 2 * BARS
    calls = burst["window"]["call_latencies_ms"]
    assert burst["window"]["bars_per_call"] == 16
    assert len(burst["window"]["latencies_ms"]) == 2 * BARS
    assert 2 * BARS / 16 <= len(calls) < 2 * BARS / 3, len(calls)
