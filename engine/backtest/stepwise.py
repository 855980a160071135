"""Bar-by-bar driving of a strategy and a simulation broker — what an asset actor does.

:func:`step_bar` is one heartbeat in simulation mode: feed the bar to the broker
(queued orders fill at its open, stops/targets are checked), then ask the strategy at
the bar's close and send its orders, asking again after each accepted order (a
reversal is ``close`` then ``open``) until it holds. Client order ids are
deterministic: ``{asset}-{bar time ns}-{sequence}``.

:func:`run_stepwise` runs that over a whole file. Its trades are identical to
``run_backtest`` (tests check it): that is the parity contract the actor runtime reuses.
It is slow (domain objects every bar) and meant for checks and strategies without
``prepare()``, not for bulk backtests.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.backtest.common import (
    BacktestResult,
    broker_settings,
    check_ohlc,
    cost_breakdown,
    plugin_name,
    resolve_strategy,
)
from engine.backtest.stats import compute_stats
from engine.backtest.trade_log import TradeLog
from engine.brokers.simulation_broker import BacktraderSimulationBroker
from engine.data.market_data import MarketData, MarketSnapshot
from engine.errors import LTSError, StrategyError
from engine.plugins.base import StrategyPlugin
from engine.types import Action, AssetContext, Decision, OrderResult

logger = logging.getLogger(__name__)

MAX_ORDERS_PER_BAR = 4
"""A strategy asking for more orders than this in one bar is stopped (and logged)."""


@dataclass(slots=True)
class StepOutcome:
    """What happened on one bar: fills from the broker, then decisions and answers."""

    index: int
    fills: list[OrderResult] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    results: list[OrderResult] = field(default_factory=list)


def client_order_id(asset: str, timestamp_ns: int, sequence: int) -> str:
    """Deterministic id of the ``sequence``-th order an asset sends on a bar."""
    return f"{asset}-{timestamp_ns}-{sequence}"


def step_bar(
    broker: BacktraderSimulationBroker,
    strategy: StrategyPlugin,
    data: MarketData,
    index: int,
    *,
    predictions: Any | None = None,
    asset_id: str | int | None = None,
    portfolio_id: str | int | None = None,
    max_orders: int = MAX_ORDERS_PER_BAR,
) -> StepOutcome:
    """Advance ``broker`` to bar ``index`` of ``data`` and let ``strategy`` act on its close."""
    ts = int(data.timestamps[index])
    outcome = StepOutcome(index=index)
    outcome.fills = broker.on_bar(
        index, ts, float(data.open[index]), float(data.high[index]), float(data.low[index]), float(data.close[index])
    )
    snapshot = MarketSnapshot(data=data, index=index, predictions=predictions)
    key = str(asset_id if asset_id is not None else data.symbol)
    for seq in range(max_orders):
        context = AssetContext(
            asset_id=asset_id, portfolio_id=portfolio_id, symbol=data.symbol,
            open_positions=broker.positions_for_strategy(),
        )
        try:
            decision = strategy.decide(context, snapshot)
        except LTSError:
            raise
        except Exception as exc:  # a strategy bug: name the bar, keep the cause
            raise StrategyError(
                f"strategy {plugin_name(type(strategy))!r} failed at bar {index} "
                f"({data.time_at(index).isoformat()}): {type(exc).__name__}: {exc}"
            ) from exc
        outcome.decisions.append(decision)
        if decision.action == Action.HOLD:
            break
        params = {**decision.parameters, "client_order_id": client_order_id(key, ts, seq)}
        result = broker.execute_order(str(decision.action), params)
        outcome.results.append(result)
        if not result.success:
            break
    else:
        logger.warning("asset %s bar %d: strategy still sending orders after %d; stopped", key, index, max_orders)
    return outcome


def run_stepwise(
    data: MarketData,
    strategy: str | StrategyPlugin,
    strategy_params: Mapping[str, Any] | None = None,
    broker_params: Mapping[str, Any] | None = None,
    *,
    predictions: Any | None = None,
) -> BacktestResult:
    """``run_backtest``'s result, computed by calling ``decide`` and the broker every bar."""
    strat = resolve_strategy(strategy, strategy_params)
    params, costs = broker_settings(broker_params)
    check_ohlc(data)
    broker = BacktraderSimulationBroker({**params, "symbol": data.symbol, "fill_on": "next_open"})
    n = len(data)
    equity = np.empty(n)
    exposed = 0
    for i in range(n):
        step_bar(broker, strat, data, i, predictions=predictions)
        if i == n - 1:
            broker.close_all("end")
        else:
            exposed += bool(broker.get_open_orders())
        equity[i] = broker.equity()
    # A position still open on the last bar's close counts as exposed there (as in run_backtest).
    if broker.trade_history() and broker.trade_history()[-1].exit_reason == "end":
        exposed += 1
    log = TradeLog.from_trades(data.symbol, broker.trade_history())
    cost_totals = cost_breakdown(log, costs)
    stats = compute_stats(equity, data.timestamps, log.pnl, costs.cash, cost_totals, exposed)
    stats["rejected_orders"] = broker.rejected_orders
    return BacktestResult(
        symbol=data.symbol,
        strategy=plugin_name(type(strat)),
        strategy_params=dict(strat.params),
        broker_params=params,
        timestamps=data.timestamps,
        equity=equity,
        trade_log=log,
        stats=stats,
        costs=cost_totals,
        initial_cash=costs.cash,
        rejected_orders=broker.rejected_orders,
    )
