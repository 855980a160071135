"""Strategy behaviour one decision at a time: parameters, warm-up, crossover decisions,
reversal as close-then-open, and prediction_strategy's signal rules."""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal

import numpy as np
import pytest

from engine.data.market_data import MarketData, MarketSnapshot
from engine.errors import ConfigError, PredictionError
from engine.plugins.loader import create_plugin
from engine.prediction.csv_provider import CsvPredictionProvider
from engine.prediction.types import PREDICTION_TYPES, PredictionResult
from engine.strategies.default_strategy import DefaultStrategy
from engine.strategies.prediction_strategy import PredictionStrategy
from engine.strategies.sma_cross import SmaCrossStrategy
from engine.types import Action, AssetContext, PositionView, Side
from tests.unit.engine._factories import bars, random_walk

FLAT_CTX = AssetContext(symbol="EURUSD")


def ctx_with(side: Side, position_id: str = "P9") -> AssetContext:
    pos = PositionView(position_id=position_id, symbol="EURUSD", side=side, quantity=Decimal("1000"),
                       entry_price=Decimal("1.1"))
    return AssetContext(symbol="EURUSD", open_positions=(pos,))


def first_cross(strat: SmaCrossStrategy, data: MarketData, code: int) -> int:
    return int(np.flatnonzero(strat.prepare(data).action == code)[0])


# ---------------------------------------------------------------- sma_cross
def test_sma_cross_is_loadable_by_name_with_params() -> None:
    strat = create_plugin("strategy", "sma_cross", {"fast": 3, "slow": 8})
    assert isinstance(strat, SmaCrossStrategy) and strat.params["slow"] == 8


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"fast": 30, "slow": 10}, "'fast' \\(30\\) must be smaller than 'slow' \\(10\\)"),
        ({"quantity": -5}, "'quantity' must be > 0"),
        ({"stop_loss": 10, "distance_unit": "points"}, "'distance_unit' must be one of"),
        ({"fast": 2.5}, "'fast' must be an integer"),
        ({"allow_short": "maybe"}, "'allow_short' must be true or false"),
    ],
)
def test_sma_cross_rejects_bad_parameters_naming_them(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SmaCrossStrategy(params)


def test_sma_cross_holds_while_warming_up() -> None:
    data = random_walk(40)
    d = SmaCrossStrategy({"fast": 3, "slow": 10}).decide(FLAT_CTX, MarketSnapshot(data, 5))
    assert d.action == Action.HOLD and "warming up" in d.parameters["reason"]


def test_sma_cross_opens_on_a_cross_with_stops_converted_from_pips() -> None:
    data = random_walk(600, seed=5)
    strat = SmaCrossStrategy({"fast": 3, "slow": 10, "quantity": 2_500, "stop_loss": 15, "take_profit": 40})
    i = first_cross(strat, data, 1)
    d = strat.decide(FLAT_CTX, MarketSnapshot(data, i))
    assert d.action == Action.OPEN
    assert d.parameters["side"] == "buy" and d.parameters["quantity"] == 2_500
    assert d.parameters["sl_distance"] == pytest.approx(0.0015)
    assert d.parameters["tp_distance"] == pytest.approx(0.0040)
    # The bar before the cross holds.
    assert strat.decide(FLAT_CTX, MarketSnapshot(data, i - 1)).action == Action.HOLD


def test_sma_cross_reverses_by_closing_first_then_holds_when_aligned() -> None:
    data = random_walk(600, seed=5)
    strat = SmaCrossStrategy({"fast": 3, "slow": 10})
    i = first_cross(strat, data, -1)
    closing = strat.decide(ctx_with(Side.BUY, "P7"), MarketSnapshot(data, i))
    assert closing.action == Action.CLOSE and closing.parameters["position_id"] == "P7"
    reopened = strat.decide(FLAT_CTX, MarketSnapshot(data, i))
    assert reopened.action == Action.OPEN and reopened.parameters["side"] == "sell"
    assert strat.decide(ctx_with(Side.SELL), MarketSnapshot(data, i)).action == Action.HOLD


def test_sma_cross_long_only_closes_on_the_down_cross() -> None:
    data = random_walk(600, seed=5)
    strat = SmaCrossStrategy({"fast": 3, "slow": 10, "allow_short": False})
    i = first_cross(strat, data, 2)
    assert strat.decide(ctx_with(Side.BUY), MarketSnapshot(data, i)).action == Action.CLOSE
    assert strat.decide(FLAT_CTX, MarketSnapshot(data, i)).action == Action.HOLD


def test_sma_cross_decides_on_a_live_window() -> None:
    # Live mode: the snapshot is the recent window and the index its last bar.
    data = random_walk(600, seed=5)
    strat = SmaCrossStrategy({"fast": 3, "slow": 10})
    i = first_cross(strat, data, 1)
    window = data.slice(i - 30, i + 1)
    assert strat.decide(FLAT_CTX, MarketSnapshot(window, len(window) - 1)).action == Action.OPEN


# ---------------------------------------------------------- default_strategy
def test_default_strategy_is_deterministic_and_trades_momentum_flips() -> None:
    data = random_walk(300, seed=2)
    strat = DefaultStrategy({"lookback": 4})
    codes = strat.prepare(data).action
    i = int(np.flatnonzero(codes)[0])
    expected_side = "buy" if data.close[i] > data.close[i - 4] else "sell"
    decision = strat.decide(FLAT_CTX, MarketSnapshot(data, i))
    assert decision.action == Action.OPEN and decision.parameters["side"] == expected_side
    assert strat.decide(FLAT_CTX, MarketSnapshot(data, i)) == decision


# ------------------------------------------------------- prediction_strategy
def up(price: float, pct: float, n: int = 6) -> list[float]:
    return [price * (1 + pct)] * n


def test_prediction_strategy_buys_a_strong_aligned_trend_sized_by_confidence() -> None:
    strat = PredictionStrategy()
    # 0.6 * 0.2 % + 0.4 * 0.1 % = 0.16 % -> strength 0.8 of full_confidence_move (0.2 %).
    sig = strat.generate_signal(1.0, up(1.0, 0.002), up(1.0, 0.001), [0.0] * 6, [0.0] * 6)
    assert sig.action == "buy"
    assert sig.confidence == pytest.approx(0.8)
    assert sig.quantity == 8_000.0  # 10,000 x 0.8, rounded down to 1,000-unit steps


def test_prediction_strategy_weights_short_and_long_term() -> None:
    strat = PredictionStrategy({"require_alignment": False, "confidence_threshold": 0.0})
    # short says +0.3 %, long says -0.4 %: 0.6*0.3 - 0.4*0.4 = +0.02 % -> below min_move (0.05 %)
    assert "below minimum" in strat.generate_signal(1.0, up(1.0, 0.003), up(1.0, -0.004)).reasoning
    # short says +0.3 %, long -0.2 %: +0.10 % -> buy despite the long-term disagreement
    assert strat.generate_signal(1.0, up(1.0, 0.003), up(1.0, -0.002)).action == "buy"
    # only the first three predictions count: a wild 4th..6th value changes nothing
    s = up(1.0, 0.003)[:3] + [9.0, 9.0, 9.0]
    assert strat.generate_signal(1.0, s, up(1.0, -0.002)) == strat.generate_signal(1.0, up(1.0, 0.003), up(1.0, -0.002))


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"short": up(1.0, 0.003), "long": up(1.0, -0.002)}, "trends disagree"),
        ({"short": up(1.0, 0.001), "long": up(1.0, 0.001)}, "confidence 0.50 below threshold 0.7"),
        ({"short": up(1.0, 0.0002), "long": up(1.0, 0.0002)}, "below minimum"),
        ({"short": up(1.0, 0.01), "long": up(1.0, 0.01), "unc": 0.06}, "uncertainty 0.06 above threshold 0.05"),
        ({"short": [1.01, None, 1.01], "long": up(1.0, 0.01)}, "partial predictions: need 3 of each, have 2 short / 3 long"),
        ({"short": [1.01, 1.01], "long": up(1.0, 0.01)}, "partial predictions"),
    ],
    ids=["misaligned", "weak", "tiny-move", "uncertain", "missing-value", "too-few"],
)
def test_prediction_strategy_holds_with_the_reason(kwargs: dict, reason: str) -> None:
    unc = [kwargs.get("unc", 0.0)] * 6
    sig = PredictionStrategy().generate_signal(1.0, kwargs["short"], kwargs["long"], unc, unc)
    assert sig.action == "hold"
    assert reason in sig.reasoning


def test_uncertainty_scales_confidence_down() -> None:
    strat = PredictionStrategy({"confidence_threshold": 0.0})
    sure = strat.generate_signal(1.0, up(1.0, 0.01), up(1.0, 0.01), [0.0] * 6, [0.0] * 6)
    unsure = strat.generate_signal(1.0, up(1.0, 0.01), up(1.0, 0.01), [0.025] * 6, [0.025] * 6)
    assert sure.confidence == pytest.approx(1.0)
    assert unsure.confidence == pytest.approx(0.5)  # half the uncertainty threshold


class _RecordingProvider:
    """The real CSV provider, recording the time each prediction is asked for."""

    def __init__(self, inner: CsvPredictionProvider) -> None:
        self.inner = inner
        self.asked: list[datetime] = []

    def get_predictions(self, symbol: str, at: datetime, types: tuple[str, ...] = PREDICTION_TYPES) -> PredictionResult:
        self.asked.append(at)
        return self.inner.get_predictions(symbol, at, types)


def test_prediction_strategy_asks_the_provider_at_the_bar_time() -> None:
    data = random_walk(400, seed=9, vol=0.004)
    provider = _RecordingProvider(CsvPredictionProvider(data))
    strat = PredictionStrategy({"confidence_threshold": 0.3, "require_alignment": False}, provider=provider)
    decisions = [strat.decide(FLAT_CTX, MarketSnapshot(data, i)) for i in (10, 200)]
    assert provider.asked == [data.time_at(10), data.time_at(200)]
    # Same answer as reading the precomputed row of the same provider.
    pre = CsvPredictionProvider(data).precompute()
    assert decisions == [strat.decide(FLAT_CTX, MarketSnapshot(data, i, pre)) for i in (10, 200)]


def test_prediction_strategy_holds_when_predictions_fail() -> None:
    data = random_walk(50)
    failed = PredictionResult(symbol="EURUSD", timestamp=data.time_at(3), errors={"short_term": "model timed out"})
    d = PredictionStrategy().decide(FLAT_CTX, MarketSnapshot(data, 3, failed))
    assert d.action == Action.HOLD and "model timed out" in d.parameters["reason"]

    class Broken:
        def get_predictions(self, symbol: str, at: datetime, types: tuple[str, ...] = PREDICTION_TYPES) -> PredictionResult:
            raise PredictionError("provider answered 500 three times")

    d = PredictionStrategy(provider=Broken()).decide(FLAT_CTX, MarketSnapshot(data, 3))
    assert d.action == Action.HOLD and "provider answered 500" in d.parameters["reason"]
    d = PredictionStrategy().decide(FLAT_CTX, MarketSnapshot(data, 3))
    assert d.action == Action.HOLD and "no provider" in d.parameters["reason"]


def test_prediction_strategy_maps_sell_while_long_to_close() -> None:
    data = bars([(1.0, 1.0, 1.0, 1.0)] * 3)
    result = PredictionResult(symbol="EURUSD", timestamp=data.time_at(2), short_term=up(1.0, -0.003),
                              long_term=up(1.0, -0.003), short_uncertainty=[0.0] * 6, long_uncertainty=[0.0] * 6)
    strat = PredictionStrategy()
    assert strat.decide(ctx_with(Side.BUY, "P1"), MarketSnapshot(data, 2, result)).action == Action.CLOSE
    opened = strat.decide(FLAT_CTX, MarketSnapshot(data, 2, result))
    assert opened.action == Action.OPEN and opened.parameters["side"] == "sell"
    assert opened.parameters["quantity"] == 10_000.0
    assert not math.isnan(float(opened.parameters["quantity"]))


def test_prediction_strategy_ignores_errors_about_horizons_it_does_not_use() -> None:
    # The vectorised prepare() reads only the first `predictions_used` (3) values of each
    # horizon; decide() must agree even when a later horizon came back null with an error.
    data = bars([(1.0, 1.0, 1.0, 1.0)] * 3)
    complete = PredictionResult(symbol="EURUSD", timestamp=data.time_at(2), short_term=up(1.0, 0.003),
                                long_term=up(1.0, 0.003), short_uncertainty=[0.0] * 6, long_uncertainty=[0.0] * 6)
    later_missing = PredictionResult(
        symbol="EURUSD", timestamp=data.time_at(2), short_term=up(1.0, 0.003)[:5] + [None],
        long_term=up(1.0, 0.003), short_uncertainty=[0.0] * 6, long_uncertainty=[0.0] * 6,
        errors={"short_term": "horizon 6: no data"})
    strat = PredictionStrategy()
    expected = strat.decide(FLAT_CTX, MarketSnapshot(data, 2, complete))
    assert expected.action == Action.OPEN
    assert strat.decide(FLAT_CTX, MarketSnapshot(data, 2, later_missing)) == expected

    needed_missing = PredictionResult(
        symbol="EURUSD", timestamp=data.time_at(2), short_term=[None] + up(1.0, 0.003)[1:],
        long_term=up(1.0, 0.003), short_uncertainty=[0.0] * 6, long_uncertainty=[0.0] * 6,
        errors={"short_term": "horizon 1: no data"})
    held = strat.decide(FLAT_CTX, MarketSnapshot(data, 2, needed_missing))
    assert held.action == Action.HOLD and "horizon 1: no data" in held.parameters["reason"]
