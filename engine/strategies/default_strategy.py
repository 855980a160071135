"""``default_strategy``: a deliberately simple, deterministic DEMO strategy.

It exists so a fresh install trades something out of the box (``lts run`` seeds a demo
portfolio with it) — it is not meant to make money. Rule: momentum over ``lookback``
bars. When the close moves above the close ``lookback`` bars earlier (it was not above
on the bar before) go long; when it moves below, go short. Same inputs, same
decisions, every time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from engine.data.market_data import MarketData, MarketSnapshot
from engine.plugins.base import StrategyPlugin
from engine.strategies._indicators import crossings
from engine.strategies._mapping import decision_for
from engine.strategies._params import integer, number
from engine.strategies.signals import HOLD, LONG, SHORT, BarSignals
from engine.types import AssetContext, Decision


class DefaultStrategy(StrategyPlugin):
    """Demo momentum flip over ``lookback`` bars (see module doc)."""

    name: ClassVar[str] = "default_strategy"
    plugin_params: ClassVar[dict[str, Any]] = {
        "lookback": 5,
        "quantity": 1_000.0,  # instrument units
    }
    plugin_debug_vars: ClassVar[list[str]] = ["lookback", "quantity"]

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self._check()

    def set_params(self, **kwargs: Any) -> None:
        super().set_params(**kwargs)
        if hasattr(self, "_lookback"):
            self._check()

    def _check(self) -> None:
        where = "strategy default_strategy"
        self._lookback = integer(self.params, "lookback", where, minimum=1)
        self._quantity = number(self.params, "quantity", where, minimum=0.0, strict=True)

    def _codes(self, close: np.ndarray) -> np.ndarray:
        lag = self._lookback
        past = np.full(close.size, np.nan)
        past[lag:] = close[:-lag]
        up, down = crossings(close, past)
        codes = np.zeros(close.size, dtype=np.int8)
        codes[up] = LONG
        codes[down] = SHORT
        return codes

    def prepare(self, data: MarketData, predictions: Any | None = None) -> BarSignals:
        """Signals for every bar (same comparisons as ``decide``)."""
        codes = self._codes(np.asarray(data.close, dtype=np.float64))
        return BarSignals(action=codes, quantity=np.full(len(data), self._quantity))

    def decide(self, asset_data: AssetContext, market_data: MarketSnapshot) -> Decision:
        """Long on upward momentum flips, short on downward ones, else hold."""
        i = market_data.index
        if i <= self._lookback:
            return Decision.hold(f"warming up: need {self._lookback + 2} bars, have {i + 1}")
        window = np.asarray(market_data.data.close[i - self._lookback - 1 : i + 1], dtype=np.float64)
        code = int(self._codes(window)[-1])
        reason = {LONG: "momentum turned up", SHORT: "momentum turned down"}.get(code, "no momentum flip")
        if code == HOLD:
            return Decision.hold(reason)
        return decision_for(code, self._quantity, float("nan"), float("nan"), asset_data, reason)
