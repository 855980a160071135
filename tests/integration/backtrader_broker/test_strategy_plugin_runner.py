"""LTS strategy plugins run inside a real cerebro through StrategyPluginRunner, trading
through BacktraderBroker on the real hourly EURUSD file."""

from __future__ import annotations

import backtrader as bt
import pytest

from engine.brokers.backtrader_broker import BacktraderBroker, StrategyPluginRunner
from engine.plugins.loader import create_plugin
from engine.types import OrderStatus


def _run(eurusd_data, plugin, **broker_config):
    frame = eurusd_data.to_frame()
    frame.index = frame.index.tz_convert(None)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame, name="EURUSD"))
    broker = BacktraderBroker({"cash": 1_000_000.0, **broker_config})
    cerebro.setbroker(broker)
    cerebro.addstrategy(StrategyPluginRunner, plugin=plugin, market_data=eurusd_data, asset_id="a-1")
    cerebro.addanalyzer(bt.analyzers.TradeAnalyzer, _name="trades")
    [runner] = cerebro.run()
    return broker, runner


def test_prediction_strategy_trades_on_the_brokers_csv_predictions(eurusd_data):
    plugin = create_plugin("strategy", "prediction_strategy", {"stop_loss": 30.0, "take_profit": 60.0})
    broker, runner = _run(eurusd_data, plugin)

    metrics = broker.metrics()
    assert metrics["predictions_by_source"] == {"csv": len(eurusd_data)}  # asked at every bar
    assert runner.decisions["open"] > 10
    trades = runner.analyzers.trades.get_analysis()
    assert metrics["trades"] == trades.total.closed
    assert metrics["net_pnl"] == pytest.approx(trades.pnl.net.total, abs=1e-6)
    # CSV predictions are the future closes: trading on them must pay
    assert metrics["net_pnl"] > 0 and metrics["win_rate"] > 0.5
    bar, first = next((i, r) for i, r in runner.orders if r.status is OrderStatus.PENDING)
    filled = broker.get_order_result(first.client_order_id)
    assert first.client_order_id == f"EURUSD-{bar}-open"
    assert float(filled.entry_price) == pytest.approx(float(eurusd_data.open[bar + 1]))


def test_sma_cross_closes_what_it_opened(eurusd_data):
    plugin = create_plugin("strategy", "sma_cross", {"fast": 10, "slow": 30, "quantity": 1000.0})
    broker, runner = _run(eurusd_data, plugin)
    closes = [r for _, r in runner.orders if r.client_order_id.endswith("-close")]
    assert runner.decisions["open"] > 20 and runner.decisions["close"] > 20
    assert closes and all(broker.get_order_result(r.client_order_id).status is OrderStatus.FILLED for r in closes)
    assert broker.metrics()["trades"] == runner.analyzers.trades.get_analysis().total.closed
    assert broker.metrics()["predictions_by_source"] == {}  # sma_cross never asks for predictions


def test_runner_refuses_a_plugin_that_is_not_a_strategy(eurusd_data):
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match="plugin=<a StrategyPlugin>"):
        _run(eurusd_data, object())
