"""The pipeline step, driven bar by bar with in-process ports over the real simulation
broker, gives exactly ``run_backtest``'s trades (the parity the asset actors rely on), and
records every order the broker saw, in order, with no Ray and no database."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from engine.backtest.runner import run_backtest
from engine.brokers.simulation_broker import BacktraderSimulationBroker
from engine.data.market_data import MarketData
from engine.pipeline.default_pipeline import DefaultPipeline, StepPorts
from engine.pipeline.ports import AssetState
from engine.plugins.loader import create_plugin
from engine.types import OrderResult, OrderStatus


class SimBrokerPort:
    """BrokerPort over an in-process simulation broker (what the broker actor does)."""

    def __init__(self, broker: BacktraderSimulationBroker, data: MarketData) -> None:
        self.broker, self.data, self.cursor = broker, data, -1
        self.sent: list[str] = []

    async def advance(self, index: int) -> list[OrderResult]:
        if index <= self.cursor:
            return []
        self.cursor = index
        d = self.data
        return self.broker.on_bar(index, int(d.timestamps[index]), d.open[index], d.high[index], d.low[index], d.close[index])

    async def execute_order(self, action: str, parameters: dict[str, Any]) -> OrderResult:
        self.sent.append(parameters["client_order_id"])
        return self.broker.execute_order(action, parameters)

    async def find_order(self, client_order_id: str) -> OrderResult | None:
        return None

    async def finish(self) -> list[OrderResult]:
        return self.broker.close_all("end")

    async def closed_positions(self, position_ids: list[str]) -> list[OrderResult]:
        return []


class ListJournal:
    def __init__(self) -> None:
        self.intents: list[str] = []
        self.results: list[OrderResult] = []

    async def record_intent(self, intent: Any) -> None:
        self.intents.append(intent.client_order_id)

    async def record_result(self, intent: Any, result: OrderResult) -> None:
        self.results.append(result)


class InlineStrategy:
    def __init__(self, strategy: Any) -> None:
        self.strategy = strategy
        self.needs_predictions = False

    async def decide(self, asset: Any, snapshot: Any) -> Any:
        return self.strategy.decide(asset, snapshot)


def _eurusd(backtesting_data_dir: Path, bars: int) -> MarketData:
    frame = pd.read_csv(backtesting_data_dir / "EURUSD.csv", index_col=0, parse_dates=True).iloc[:bars]
    ts = pd.DatetimeIndex(frame.index).tz_localize("UTC").as_unit("ns").asi8
    return MarketData(symbol="EURUSD", timestamps=ts, open=frame["Open"].to_numpy(float),
                      high=frame["High"].to_numpy(float), low=frame["Low"].to_numpy(float),
                      close=frame["Close"].to_numpy(float))


@pytest.mark.parametrize("params", [{"fast": 10, "slow": 30}, {"fast": 5, "slow": 20, "stop_loss": 30, "take_profit": 60}])
def test_pipeline_matches_run_backtest(backtesting_data_dir: Path, params: dict[str, Any]) -> None:
    data = _eurusd(backtesting_data_dir, 1500)
    strategy = create_plugin("strategy", "sma_cross", params)
    expected = run_backtest(data, "sma_cross", params)

    broker = BacktraderSimulationBroker({"symbol": "EURUSD"})
    port = SimBrokerPort(broker, data)
    journal = ListJournal()
    ports = StepPorts(broker=port, journal=journal, strategy=InlineStrategy(strategy))
    state = AssetState(portfolio_id=1, asset_id=7, symbol="EURUSD", max_positions=1)
    pipeline = DefaultPipeline()

    async def drive() -> None:
        for i in range(len(data)):
            outcome = await pipeline.run_step(state, data_snapshot(data, i), ports)
            assert outcome.ok, outcome
        await pipeline.finish(state, ports)

    asyncio.run(drive())
    assert broker.trade_history() == expected.trades
    assert len(expected.trades) > 10
    # Every order the broker saw was journalled as an intent first, in order.
    assert journal.intents == port.sent
    # Every opened position was closed (the run ends flat) and nothing is left pending.
    assert state.positions == {} and state.pending == {}
    closes = [r for r in journal.results if r.close_price is not None]
    assert len(closes) == len(expected.trades)
    assert [float(r.pnl) for r in closes] == pytest.approx([t.pnl for t in expected.trades], rel=0, abs=1e-9)
    assert all(r.status is not OrderStatus.REJECTED for r in journal.results)


def data_snapshot(data: MarketData, i: int) -> Any:
    from engine.data.market_data import MarketSnapshot

    return MarketSnapshot(data, i)
