"""A paced simulation faster than the machine can step one bar per asset per cycle keeps
its pace (``actors.pace``): late assets step the bars they owe in one call, each bar
recorded as alone, so the trades still equal the single-CSV backtest's; with
``paced_catch_up: false`` every cycle steps one bar, however late."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import ray

from tests.integration.actors.engine_helpers import (
    assert_trades_equal_backtest,
    engine_config,
    running_engine,
    seed_portfolio,
    wait_for,
    write_ohlc_csv,
)

pytestmark = pytest.mark.ray

SMA = {"fast": 10, "slow": 30, "quantity": 10000.0}
PACE_S = 0.002  # 500 bars/s per asset: one call per bar and asset cannot keep that pace


def _portfolio(store: Any, files: list[Path], prefix: str) -> tuple[int, list[int]]:
    return seed_portfolio(store, [
        {"symbol": f"{prefix}{i}", "strategy_plugin": "sma_cross", "strategy_config": dict(SMA),
         "broker_plugin": "backtrader_simulation_broker", "data_source": {"path": path.name}}
        for i, path in enumerate(files)], latency=PACE_S)


def test_a_late_paced_simulation_catches_up_and_trades_as_the_backtest(
        ray_session, sqlite_store, sqlite_db_url, tmp_path: Path, backtesting_data_dir: Path):
    eur = backtesting_data_dir / "EURUSD.csv"
    files = [write_ohlc_csv(eur, tmp_path / f"c{i}.csv", slice(i * 900, i * 900 + 900)) for i in range(3)]
    portfolio_id, asset_ids = _portfolio(sqlite_store, files, "C")
    # One step slot: a cycle's three calls queue behind each other, so a cycle takes
    # longer than the pace.
    config = engine_config(sqlite_db_url, tmp_path, max_steps_in_flight=1, simulation_bars_per_call=16)
    with running_engine(config) as runtime:
        supervisor = runtime.supervisors[portfolio_id]

        def assets() -> dict[int, dict[str, Any]]:
            return {a["asset_id"]: a for a in runtime.status()["assets"] if a["asset_id"] in asset_ids}

        wait_for(lambda: len(found := assets()) == 3 and all(a["state"] == "finished" for a in found.values()),
                 120, what="the paced assets to walk their data")
        window = ray.get(supervisor.take_latencies.remote(), timeout=30)
        status = ray.get(supervisor.status.remote(), timeout=30)
        runtime.deactivate_portfolio(portfolio_id)

    # Late cycles stepped several bars per call: far fewer cycles than bars.
    assert window["call_latencies_ms"], "no multi-bar call: the replay never caught up"
    assert window["steps_total"] >= 3 * 899
    assert status["cycles"] < window["steps_total"] / 3 / 1.5
    # Each bar still stepped and recorded as alone: the trades are the backtest's.
    for asset_id, path in zip(asset_ids, files, strict=True):
        assert_trades_equal_backtest(sqlite_store, asset_id, path, "sma_cross", SMA)


def test_without_catch_up_every_cycle_steps_one_bar(ray_session, sqlite_store, sqlite_db_url, tmp_path: Path,
                                                    backtesting_data_dir: Path):
    files = [write_ohlc_csv(backtesting_data_dir / "EURUSD.csv", tmp_path / f"n{i}.csv", slice(0, 3000))
             for i in range(3)]
    portfolio_id, _ = _portfolio(sqlite_store, files, "N")
    config = engine_config(sqlite_db_url, tmp_path, max_steps_in_flight=1, paced_catch_up=False)
    with running_engine(config) as runtime:
        supervisor = runtime.supervisors[portfolio_id]
        wait_for(lambda: ray.get(supervisor.status.remote(), timeout=30)["cycles"] > 5, 60, what="paced cycles")
        first = ray.get(supervisor.take_latencies.remote(), timeout=30)
        time.sleep(3.0)
        window = ray.get(supervisor.take_latencies.remote(), timeout=30)
        runtime.deactivate_portfolio(portfolio_id)
    cycles = window["cycles"] - first["cycles"]
    bars = window["steps_total"] - first["steps_total"]
    assert not window["call_latencies_ms"]  # no multi-bar call
    assert cycles > 10
    # One bar per asset per cycle (a cycle in flight at either end may fall on either side).
    assert 3 * (cycles - 1) <= bars <= 3 * (cycles + 1)
