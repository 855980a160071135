"""Run an LTS strategy plugin inside backtrader's cerebro against the backtrader broker.

This is seed §1.1's step inside cerebro: at every bar the plugin's ``decide(asset,
snapshot)`` sees the data up to that bar (and, when it ``needs_predictions``, the broker's
predictions for the bar's time from whichever source is current), and every non-hold
decision goes to ``broker.execute_order(action, parameters)`` with a deterministic client
order id (``<symbol>-<bar>-<action>``). Decisions are made on bar t's close; backtrader
fills them at bar t+1's open.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import backtrader as bt
import numpy as np

from engine.data.market_data import MarketData, MarketSnapshot
from engine.errors import ConfigError, DataError
from engine.plugins.base import StrategyPlugin
from engine.types import Action, AssetContext

logger = logging.getLogger(__name__)


@runtime_checkable
class StrategyHost(Protocol):
    """What the runner needs of cerebro's broker (``BacktraderBroker`` provides it); a
    protocol, so this module does not import the broker's (which re-exports the runner)."""

    def bind(self, strategy: Any) -> None: ...

    def feed_market_data(self) -> MarketData: ...

    def get_predictions(self, symbol: str) -> Any: ...

    def get_open_orders(self) -> list[Any]: ...

    def execute_order(self, action: str, parameters: Mapping[str, Any]) -> Any: ...


class StrategyPluginRunner(bt.Strategy):
    """cerebro strategy that hosts one ``StrategyPlugin`` (params: ``plugin``, optional
    ``market_data`` — the feed's bars as ``MarketData``, built from a pandas feed when
    omitted — ``asset_id`` and ``allocated_capital``)."""

    params = (("plugin", None), ("market_data", None), ("asset_id", None), ("allocated_capital", 0))

    def start(self) -> None:
        if not isinstance(self.p.plugin, StrategyPlugin):
            raise ConfigError(f"StrategyPluginRunner needs plugin=<a StrategyPlugin>, got {self.p.plugin!r}")
        if not isinstance(self.broker, StrategyHost):
            raise ConfigError("StrategyPluginRunner needs cerebro.setbroker(BacktraderBroker(...))")
        self.broker.bind(self)
        self.market_data: MarketData = self.p.market_data or self.broker.feed_market_data()
        self.decisions: Counter[str] = Counter()
        self.orders: list[tuple[int, Any]] = []  # (bar, OrderResult) for every non-hold decision

    def next(self) -> None:
        i = len(self) - 1
        data = self.market_data
        bar_ns = int(np.datetime64(bt.num2date(self.data.datetime[0]), "ns").astype(np.int64))
        if i >= len(data) or int(data.timestamps[i]) != bar_ns:
            raise DataError(
                f"StrategyPluginRunner: market_data {data.symbol!r} does not match the cerebro feed at bar {i}"
            )
        plugin = self.p.plugin
        predictions = self.broker.get_predictions(data.symbol) if plugin.needs_predictions else None
        asset = AssetContext(
            asset_id=self.p.asset_id,
            symbol=data.symbol,
            allocated_capital=self.p.allocated_capital,
            open_positions=tuple(self.broker.get_open_orders()),
        )
        decision = plugin.decide(asset, MarketSnapshot(data, i, predictions))
        self.decisions[str(decision.action)] += 1
        if decision.action is Action.HOLD:
            return
        parameters: dict[str, Any] = dict(decision.parameters)
        parameters.setdefault("client_order_id", f"{data.symbol}-{i}-{decision.action}")
        parameters.setdefault("symbol", self.data._name)
        result = self.broker.execute_order(str(decision.action), parameters)
        self.orders.append((i, result))
        if not result.success:
            logger.warning("asset %s bar %d: %s rejected: %s", self.p.asset_id, i, decision.action, result.reason)
