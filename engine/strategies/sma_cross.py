"""``sma_cross``: the moving-average crossover every user expects, and the strategy we
cross-check against backtrader.

When the fast SMA crosses above the slow SMA the strategy goes long; when it crosses
below it goes short (``allow_short=True``, the default: always in the market once the
first cross happened, reversing on each cross) or just closes the long
(``allow_short=False``). Optional stop-loss / take-profit distances are measured from
the entry fill, in pips (``distance_unit="pips"``, times ``pip_size``) or in price
units (``distance_unit="price"``); 0 means none. ``quantity`` is in instrument units
(10,000 = 0.1 standard FX lot).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from engine.data.market_data import MarketData, MarketSnapshot
from engine.errors import ConfigError
from engine.plugins.base import StrategyPlugin
from engine.strategies._indicators import crossings, sma
from engine.strategies._mapping import decision_for
from engine.strategies._params import flag, integer, number, stop_distance
from engine.strategies.signals import FLAT, HOLD, LONG, SHORT, BarSignals
from engine.types import AssetContext, Decision


class SmaCrossStrategy(StrategyPlugin):
    """Fast/slow simple-moving-average crossover (see module doc)."""

    name: ClassVar[str] = "sma_cross"
    plugin_params: ClassVar[dict[str, Any]] = {
        "fast": 10,
        "slow": 30,
        "quantity": 10_000.0,  # instrument units per position
        "stop_loss": 0.0,  # distance from the entry fill; 0 = none
        "take_profit": 0.0,  # idem
        "distance_unit": "pips",  # "pips" (x pip_size) or "price"
        "pip_size": 0.0001,
        "allow_short": True,  # False: a down-cross only closes the long
    }
    plugin_debug_vars: ClassVar[list[str]] = ["fast", "slow", "quantity", "stop_loss", "take_profit"]

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self._check()

    def set_params(self, **kwargs: Any) -> None:
        super().set_params(**kwargs)
        if hasattr(self, "_fast"):  # re-validate after construction-time updates
            self._check()

    def _check(self) -> None:
        where = "strategy sma_cross"
        p = self.params
        self._fast = integer(p, "fast", where, minimum=1)
        self._slow = integer(p, "slow", where, minimum=2)
        if self._fast >= self._slow:
            raise ConfigError(f"{where}: 'fast' ({self._fast}) must be smaller than 'slow' ({self._slow})")
        self._quantity = number(p, "quantity", where, minimum=0.0, strict=True)
        self._sl = stop_distance(p, "stop_loss", where)
        self._tp = stop_distance(p, "take_profit", where)
        self._allow_short = flag(p, "allow_short", where)

    def _codes(self, close: np.ndarray) -> np.ndarray:
        up, down = crossings(sma(close, self._fast), sma(close, self._slow))
        codes = np.zeros(close.size, dtype=np.int8)
        codes[up] = LONG
        codes[down] = SHORT if self._allow_short else FLAT
        return codes

    def prepare(self, data: MarketData, predictions: Any | None = None) -> BarSignals:
        """Signals for every bar at once (same arithmetic as ``decide``)."""
        n = len(data)
        codes = self._codes(np.asarray(data.close, dtype=np.float64))
        return BarSignals(
            action=codes,
            quantity=np.full(n, self._quantity),
            sl_distance=None if math.isnan(self._sl) else np.full(n, self._sl),
            tp_distance=None if math.isnan(self._tp) else np.full(n, self._tp),
        )

    def signal_at(self, data: MarketData, index: int) -> int:
        """The signal code at bar ``index`` using only bars ``<= index``."""
        if index < self._slow:
            return HOLD
        window = np.asarray(data.close[index - self._slow : index + 1], dtype=np.float64)
        return int(self._codes(window)[-1])

    def decide(self, asset_data: AssetContext, market_data: MarketSnapshot) -> Decision:
        """One step: cross up -> be long, cross down -> be short (or flat), else hold."""
        if market_data.index < self._slow:
            return Decision.hold(f"warming up: need {self._slow + 1} bars, have {market_data.index + 1}")
        code = self.signal_at(market_data.data, market_data.index)
        reason = {LONG: "fast SMA crossed above slow", SHORT: "fast SMA crossed below slow",
                  FLAT: "fast SMA crossed below slow"}.get(code, "no crossover")
        return decision_for(code, self._quantity, self._sl, self._tp, asset_data, reason)
