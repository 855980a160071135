"""Free-running with more assets than step slots: the supervisor stops (SIGSTOP) the
processes of asset actors waiting for a slot and continues them for their calls
(``actors.pausing``).

On a real Ray session and SQLite: assets really are stopped between their calls, their
trades equal the single-CSV backtest's, a paused asset killed with ``kill -9`` comes back
and its orders still match the broker's one to one, nothing is left stopped when the
assets finish, assets on a paced heartbeat are paused between ticks, and a portfolio
deactivated while assets are paused stops promptly and leaves no process behind."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import ray

from actors import naming
from actors.pausing import pausing_supported
from tests.fixtures.processes import process_state as proc_state
from tests.integration.actors.engine_helpers import (
    all_orders,
    assert_trades_equal_backtest,
    engine_config,
    running_engine,
    seed_portfolio,
    wait_for,
    write_ohlc_csv,
)

pytestmark = [pytest.mark.ray, pytest.mark.skipif(not pausing_supported(), reason="needs Linux pidfds")]

SMA = {"fast": 10, "slow": 30, "quantity": 10000.0}
ASSETS = 5


def specs(files: list[Path], prefix: str) -> list[dict[str, Any]]:
    return [{"symbol": f"{prefix}{i}", "strategy_plugin": "sma_cross", "strategy_config": dict(SMA),
             "broker_plugin": "backtrader_simulation_broker", "data_source": {"path": path.name}}
            for i, path in enumerate(files)]


def test_waiting_assets_are_paused_and_trade_as_unpaused(ray_session, sqlite_store, sqlite_db_url, tmp_path: Path,
                                                         backtesting_data_dir: Path):
    eur = backtesting_data_dir / "EURUSD.csv"
    files = [write_ohlc_csv(eur, tmp_path / f"f{i}.csv", slice(i * 700, i * 700 + 700)) for i in range(ASSETS)]
    long_files = [write_ohlc_csv(eur, tmp_path / f"long{i}.csv", slice(0, 4000)) for i in range(ASSETS)]
    portfolio_id, asset_ids = seed_portfolio(sqlite_store, specs(files, "P"))
    # Two slots for five assets, a few bars per call: assets take turns, three wait at a time.
    config = engine_config(sqlite_db_url, tmp_path, max_steps_in_flight=2, simulation_bars_per_call=4)
    with running_engine(config) as runtime:
        def assets() -> dict[int, dict[str, Any]]:
            return {a["asset_id"]: a for a in runtime.status()["assets"] if a["asset_id"] in asset_ids}

        # Waiting assets are stopped processes, as the supervisor reports them.
        def a_paused_asset() -> dict[str, Any] | None:
            for asset in assets().values():
                if asset["paused"] and asset["state"] == "running" and proc_state(asset["pid"]) == "T":
                    return asset
            return None

        victim = wait_for(a_paused_asset, 60, interval_s=0.02, what="an asset paused while it waits")
        # kill -9 of a paused process: the supervisor notices and restarts it.
        os.kill(victim["pid"], signal.SIGKILL)
        wait_for(lambda: (a := assets()[victim["asset_id"]])["restarts"] == 1 and a["pid"] != victim["pid"]
                 and a["state"] in ("running", "finished"), 30, what="the killed paused asset back")
        wait_for(lambda: all(a["state"] == "finished" for a in assets().values()), 120,
                 what="all assets to walk their data")
        finished = assets()
        # Nobody is left stopped once the drivers end.
        assert {a: proc_state(finished[a]["pid"]) for a in asset_ids if proc_state(finished[a]["pid"]) == "T"} == {}
        assert not any(a["paused"] for a in finished.values())
        broker = ray.get_actor(naming.BROKER, namespace=config["ray_namespace"])
        records = ray.get(broker.records.remote(), timeout=10)

        # On a paced heartbeat the assets are paused between ticks; a portfolio stopped
        # while some of them are paused stops promptly and leaves no process behind.
        other_id, _ = seed_portfolio(sqlite_store, specs(long_files, "L"), latency=0.05)
        runtime.activate_portfolio(other_id)
        supervisor = runtime.supervisors[other_id]

        def other_paused() -> list[int]:
            status = ray.get(supervisor.status.remote(), timeout=10)
            return [a["pid"] for a in status["assets"] if a["paused"]]

        wait_for(other_paused, 60, interval_s=0.02, what="a paused asset in the paced portfolio")
        assert ray.get(supervisor.status.remote(), timeout=10)["cycles"] > 0
        pids = [a["pid"] for a in ray.get(supervisor.status.remote(), timeout=10)["assets"]]
        started = time.monotonic()
        runtime.deactivate_portfolio(other_id)
        assert time.monotonic() - started < 15
        wait_for(lambda: all(proc_state(pid) is None for pid in pids), 15, what="the stopped assets' processes gone")

    # The trades: every asset's orders match the broker's one to one; the assets nobody
    # killed equal the single-CSV backtest trade for trade.
    by_asset = {int(key.rsplit(":asset", 1)[1]): acc for key, acc in records.items()}
    for asset_id, path in zip(asset_ids, files, strict=True):
        orders = all_orders(sqlite_store, asset_id)
        broker_orders = {r.client_order_id: r for r in by_asset[asset_id]["orders"]}
        assert len(orders) == len({o.client_order_id for o in orders})
        assert {o.client_order_id for o in orders if o.status.value != "cancelled"} == set(broker_orders)
        assert not [o for o in orders if o.status.value == "pending"]
        if asset_id == victim["asset_id"]:
            continue
        assert_trades_equal_backtest(sqlite_store, asset_id, path, "sma_cross", SMA)
