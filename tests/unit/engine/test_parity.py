"""The parity contract the actor runtime relies on: the fast backtest loop and the
bar-by-bar driver (broker.on_bar -> strategy.decide -> broker.execute_order, what an
asset actor does each heartbeat) produce identical trades, equity and statistics; and
each strategy's vectorised ``prepare`` agrees with its ``decide`` on every bar."""

from __future__ import annotations

import numpy as np
import pytest

from engine.backtest.runner import BacktestResult, run_backtest
from engine.backtest.stepwise import run_stepwise
from engine.data.market_data import MarketData
from engine.prediction.csv_provider import CsvPredictionProvider
from engine.strategies.prediction_strategy import PredictionStrategy
from engine.strategies.signals import HOLD
from engine.strategies.sma_cross import SmaCrossStrategy
from tests.unit.engine._factories import random_walk


def assert_same(fast: BacktestResult, slow: BacktestResult) -> None:
    assert [t.model_dump() for t in fast.trades] == [t.model_dump() for t in slow.trades]
    np.testing.assert_array_equal(fast.equity, slow.equity)
    assert fast.rejected_orders == slow.rejected_orders
    assert fast.stats == pytest.approx(slow.stats, nan_ok=True)
    assert fast.costs == pytest.approx(slow.costs)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"stop_loss": 15, "take_profit": 30},
        {"fast": 5, "slow": 12, "allow_short": False, "stop_loss": 0.002, "distance_unit": "price"},
    ],
    ids=["reversal", "sl-tp", "long-only-price-stops"],
)
def test_sma_cross_fast_equals_stepwise_on_real_eurusd(eurusd_data: MarketData, params: dict) -> None:
    fast = run_backtest(eurusd_data, "sma_cross", params)
    slow = run_stepwise(eurusd_data, "sma_cross", params)
    assert len(fast.trades) > 50
    assert_same(fast, slow)
    if params.get("stop_loss"):
        assert {"sl", "signal"} <= {t.exit_reason for t in fast.trades}


def test_margin_rejections_agree(eurusd_data: MarketData) -> None:
    # A small account that runs out of margin part way: both engines reject the same orders.
    params = {"quantity": 80_000}
    broker = {"initial_cash": 900, "commission_per_lot": 20}
    fast = run_backtest(eurusd_data, "sma_cross", params, broker)
    slow = run_stepwise(eurusd_data, "sma_cross", params, broker)
    assert fast.rejected_orders > 0
    assert_same(fast, slow)


def test_default_strategy_fast_equals_stepwise() -> None:
    data = random_walk(4_000, seed=3)
    fast = run_backtest(data, "default_strategy")
    assert len(fast.trades) > 100
    assert_same(fast, run_stepwise(data, "default_strategy"))


@pytest.mark.parametrize(
    "params",
    [{}, {"confidence_threshold": 0.3, "require_alignment": False, "stop_loss": 20, "take_profit": 40}],
    ids=["defaults", "loose-with-stops"],
)
def test_prediction_strategy_fast_equals_stepwise(eurusd_data: MarketData, params: dict) -> None:
    predictions = CsvPredictionProvider(eurusd_data).precompute()
    fast = run_backtest(eurusd_data, "prediction_strategy", params, predictions=predictions)
    slow = run_stepwise(eurusd_data, "prediction_strategy", params, predictions=predictions)
    assert len(fast.trades) > 20
    assert_same(fast, slow)


def test_sma_cross_prepare_matches_decide_bar_by_bar(eurusd_data: MarketData) -> None:
    strat = SmaCrossStrategy({"fast": 7, "slow": 21})
    codes = strat.prepare(eurusd_data).action
    assert np.count_nonzero(codes) > 100
    assert [strat.signal_at(eurusd_data, i) for i in range(len(eurusd_data))] == codes.tolist()


def test_prediction_strategy_prepare_matches_generate_signal(eurusd_data: MarketData) -> None:
    strat = PredictionStrategy({"confidence_threshold": 0.5})
    pred = CsvPredictionProvider(eurusd_data).precompute()
    signals = strat.prepare(eurusd_data, pred)
    opened = 0
    for i in range(len(eurusd_data)):
        sig = strat.generate_signal(
            float(eurusd_data.close[i]), pred.short_term[i].tolist(), pred.long_term[i].tolist(),
            pred.short_uncertainty[i].tolist(), pred.long_uncertainty[i].tolist(),
        )
        code = int(signals.action[i])
        assert sig.action == {1: "buy", -1: "sell", HOLD: "hold"}[code], i
        if code != HOLD:
            opened += 1
            assert sig.quantity == signals.quantity[i]
    assert opened > 100
