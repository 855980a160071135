"""A 3-asset portfolio in simulation mode through the real actors, a real SQLite
database and real market data: the orders and positions in the database match the
broker actor's records exactly (opens, closes, P&L), and one asset matches
``run_backtest`` trade for trade (parity)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import ray

from actors import naming
from engine.backtest.runner import run_backtest
from engine.data.csv_loader import load_csv
from tests.integration.actors.engine_helpers import engine_config, running_engine, seed_portfolio, wait_for, write_ohlc_csv

pytestmark = pytest.mark.ray

SMA = {"fast": 10, "slow": 30, "quantity": 10000.0}


def q8(value: Decimal) -> Decimal:
    """The database stores money with 8 decimal places."""
    return value.quantize(Decimal("1e-8"))


@pytest.fixture
def three_files(tmp_path: Path, backtesting_data_dir: Path) -> list[Path]:
    eur = backtesting_data_dir / "EURUSD.csv"
    return [
        write_ohlc_csv(eur, tmp_path / "eurusd_a.csv", slice(0, 600)),
        write_ohlc_csv(eur, tmp_path / "eurusd_b.csv", slice(2000, 2500)),
        write_ohlc_csv(backtesting_data_dir / "GOOG.csv", tmp_path / "goog.csv", slice(0, 400)),
    ]


def test_three_assets_db_matches_broker_and_backtest(ray_session, sqlite_store, sqlite_db_url, tmp_path, three_files):
    specs = []
    for i, path in enumerate(three_files):
        broker_cfg = {} if i < 2 else {"pip_size": 0.01, "spread_pips": 2, "slippage_pips": 1}
        strategy = dict(SMA) if i < 2 else {**SMA, "quantity": 10.0, "pip_size": 0.01}
        specs.append({"symbol": f"SYM{i}", "strategy_plugin": "sma_cross", "strategy_config": strategy,
                      "broker_plugin": "backtrader_simulation_broker", "broker_config": broker_cfg,
                      "data_source": {"path": path.name}})
    portfolio_id, asset_ids = seed_portfolio(sqlite_store, specs)
    config = engine_config(sqlite_db_url, tmp_path)
    with running_engine(config) as runtime:
        def finished() -> bool:
            status = runtime.status()
            states = [a["state"] for a in status["assets"]]
            return len(states) == 3 and all(s == "finished" for s in states)

        wait_for(finished, 90, what="all three assets to walk their data")
        broker = ray.get_actor(naming.BROKER, namespace=config["ray_namespace"])
        records = ray.get(broker.records.remote(), timeout=10)
        counts = runtime.status()["supervisors"][0]["counts"]

    from persistence.records import PageRequest

    orders = sqlite_store.list_orders(portfolio_id=portfolio_id, page=PageRequest(limit=500)).items
    positions = sqlite_store.list_positions(portfolio_id=portfolio_id, page=PageRequest(limit=500)).items
    assert len(records) == 3
    # Simulation accounts are one per asset (key ends in ":asset{id}"); position ids are per account.
    by_asset = {int(key.rsplit(":asset", 1)[1]): acc for key, acc in records.items()}
    assert set(by_asset) == set(asset_ids)
    broker_orders = {r.client_order_id: r for acc in records.values() for r in acc["orders"]}
    broker_closes = {(a, r.position_id): r for a, acc in by_asset.items() for r in acc["events"]
                     if r.close_price is not None}
    broker_opens = {(a, r.position_id): r for a, acc in by_asset.items() for r in acc["events"]
                    if r.entry_price is not None and r.close_price is None}

    # Orders: one DB row per broker order, same ids, nothing pending, same final status.
    assert len(broker_orders) > 10
    assert {o.client_order_id for o in orders} == set(broker_orders)
    assert all(o.status.value in ("filled", "open", "rejected", "cancelled") for o in orders), \
        [o for o in orders if o.status.value == "pending"]
    # Positions: every broker fill is a DB position with the same entry; every close the same P&L.
    assert {(p.asset_id, p.broker_position_id) for p in positions} == set(broker_opens)
    assert not any(p.is_open for p in positions)  # the simulation ended flat
    for p in positions:
        assert p.entry_price == q8(broker_opens[p.asset_id, p.broker_position_id].entry_price)
        close = broker_closes[p.asset_id, p.broker_position_id]
        assert p.close_price == q8(close.close_price)
        assert p.realized_pnl == q8(close.pnl)
        assert p.close_reason == close.reason
    assert sum(p.realized_pnl for p in positions) == sum(q8(c.pnl) for c in broker_closes.values())

    # Parity: asset 0's trades equal run_backtest's on the same file and parameters.
    data = load_csv(three_files[0], symbol="SYM0")
    expected = run_backtest(data, "sma_cross", SMA)
    mine = sorted((p for p in positions if p.asset_id == asset_ids[0]), key=lambda p: p.opened_at)
    assert len(mine) == len(expected.trades) > 5
    for position, trade in zip(mine, expected.trades):
        assert position.side.value == trade.side.value
        assert position.opened_at == trade.entry_time and position.closed_at == trade.exit_time
        assert position.entry_price == q8(Decimal(repr(trade.entry_price)))
        assert position.close_price == q8(Decimal(repr(trade.exit_price)))
        assert position.realized_pnl == q8(Decimal(repr(trade.pnl)))
        assert position.close_reason == trade.exit_reason
    # The engine status counted every step.
    assert counts["steps_ok"] >= 600 + 500 + 400 - 3
