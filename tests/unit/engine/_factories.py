"""Test data for the engine tests: hand-written bars, synthetic series, a scripted strategy."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.data.market_data import MarketData, MarketSnapshot
from engine.plugins.base import StrategyPlugin
from engine.strategies._mapping import decision_for
from engine.strategies.signals import BarSignals
from engine.types import AssetContext, Decision

HOUR_NS = 3_600_000_000_000
DAY_NS = 24 * HOUR_NS
START_NS = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z


def bars(rows: Sequence[tuple[float, float, float, float]], *, step_ns: int = HOUR_NS,
         symbol: str = "EURUSD") -> MarketData:
    """MarketData from (open, high, low, close) rows, ``step_ns`` apart from 2024-01-01 UTC."""
    arr = np.array(rows, dtype=np.float64)
    ts = START_NS + np.arange(len(rows), dtype=np.int64) * step_ns
    return MarketData(symbol, ts, arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy(), arr[:, 3].copy())


def flat_bars(n: int, price: float = 1.1, *, step_ns: int = HOUR_NS) -> list[tuple[float, float, float, float]]:
    """``n`` quiet bars around ``price`` (range of 2 pips), for tests to edit."""
    return [(price, price + 0.0001, price - 0.0001, price) for _ in range(n)]


def random_walk(n: int, seed: int = 7, *, start: float = 1.1, vol: float = 0.0008,
                step_ns: int = HOUR_NS) -> MarketData:
    """A reproducible OHLC random walk with realistic hourly FX ranges."""
    rng = np.random.default_rng(seed)
    close = start + np.cumsum(rng.normal(0.0, vol, n))
    open_ = np.concatenate(([start], close[:-1])) + rng.normal(0.0, vol / 8, n)
    high = np.maximum(open_, close) + np.abs(rng.normal(0.0, vol / 2, n))
    low = np.minimum(open_, close) - np.abs(rng.normal(0.0, vol / 2, n))
    ts = START_NS + np.arange(n, dtype=np.int64) * step_ns
    return MarketData("EURUSD", ts, open_, high, low, close)


class ScriptedStrategy(StrategyPlugin):
    """Emits fixed signal codes per bar (see ``engine.strategies.signals``), through both
    ``prepare`` and ``decide`` — lets a test state exactly when orders are sent."""

    name = "scripted"

    def __init__(self, codes: Sequence[int], quantity: float = 100_000.0,
                 sl_distance: float = math.nan, tp_distance: float = math.nan) -> None:
        super().__init__()
        self.codes = np.asarray(codes, dtype=np.int8)
        self.quantity = quantity
        self.sl_distance = sl_distance
        self.tp_distance = tp_distance

    def prepare(self, data: MarketData, predictions: Any | None = None) -> BarSignals:
        n = len(data)
        return BarSignals(
            action=self.codes,
            quantity=np.full(n, self.quantity),
            sl_distance=None if math.isnan(self.sl_distance) else np.full(n, self.sl_distance),
            tp_distance=None if math.isnan(self.tp_distance) else np.full(n, self.tp_distance),
        )

    def decide(self, asset_data: AssetContext, market_data: MarketSnapshot) -> Decision:
        code = int(self.codes[market_data.index])
        return decision_for(code, self.quantity, self.sl_distance, self.tp_distance, asset_data)
