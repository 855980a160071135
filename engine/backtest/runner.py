"""The single-CSV backtest: one strategy, one simulated account, one lean per-bar loop.

Semantics (ARCHITECTURE.md, "Backtest semantics"):

* a decision made on bar t's close fills at bar t+1's open, plus half the spread and
  the slippage against the trader; a decision on the last bar is dropped;
* commission per lot per side; swap per lot per UTC midnight the position is held;
* stop-loss / take-profit distances are measured from the entry fill and checked on the
  high/low of every bar *after* the entry bar; a bar opening beyond a level fills at
  its open; a bar touching both is assumed to hit the stop first; every exit also pays
  half spread + slippage;
* an opening order is rejected when its margin (units * price / leverage, at the
  decision bar's close) exceeds the account equity after the positions it replaces;
* positions still open after the last bar are closed at its close ("end").

The loop never calls the strategy per bar: ``strategy.prepare()`` returns per-bar
signal arrays (``BarSignals``) computed with the same arithmetic as ``decide()``, and
fills go through the same functions as ``BacktraderSimulationBroker`` — so
``engine.backtest.stepwise.run_stepwise`` (what the actor runtime does, one bar at a
time) gives identical trades. Strategies without ``prepare`` run stepwise.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
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
from engine.backtest.stepwise import run_stepwise
from engine.backtest.trade_log import TradeLog
from engine.brokers._sim_costs import (
    NS_PER_DAY,
    CostModel,
    commission,
    entry_fill,
    exit_fill,
    gross_pnl,
    required_margin,
    stop_exit,
    stop_levels,
    swap,
)
from engine.data.market_data import MarketData
from engine.errors import ConfigError
from engine.plugins.base import StrategyPlugin
from engine.prediction.types import PrecomputedPredictions
from engine.strategies.signals import FLAT, BarSignals

logger = logging.getLogger(__name__)


def run_backtest(
    data: MarketData,
    strategy: str | StrategyPlugin,
    strategy_params: Mapping[str, Any] | None = None,
    broker_params: Mapping[str, Any] | None = None,
    *,
    predictions: PrecomputedPredictions | None = None,
) -> BacktestResult:
    """Backtest ``strategy`` over ``data`` with a simulated account (see module doc).

    ``broker_params`` are the simulation broker's (``DEFAULT_SIM_PARAMS`` keys);
    ``predictions`` are required by strategies with ``needs_predictions``. Raises
    ``ConfigError`` for bad parameters, ``DataError`` for unusable bars and
    ``StrategyError`` when the strategy's signals do not fit the data.
    """
    strat = resolve_strategy(strategy, strategy_params)
    params, costs = broker_settings(broker_params)
    check_ohlc(data)
    name = plugin_name(type(strat))
    if strat.needs_predictions and predictions is None:
        raise ConfigError(
            f"strategy {name!r} needs predictions: pass predictions= (e.g. "
            "CsvPredictionProvider(...).precompute(data))"
        )
    signals = strat.prepare(data, predictions)
    if signals is None:
        logger.info("strategy %s has no prepare(); backtesting %s bar by bar", name, data.symbol)
        return run_stepwise(data, strat, None, broker_params, predictions=predictions)
    signals.validate(len(data), name)
    return _fast_loop(data, strat, name, signals, params, costs)


def _fast_loop(
    data: MarketData,
    strat: StrategyPlugin,
    name: str,
    signals: BarSignals,
    params: dict[str, Any],
    costs: CostModel,
) -> BacktestResult:
    n = len(data)
    # Only the columns scanned bar by bar (for stops) become Python lists; everything
    # else is read at signal events, gathered into short per-event lists up front.
    days_arr = data.timestamps // NS_PER_DAY
    events_arr = np.flatnonzero(signals.action)
    nxt = np.minimum(events_arr + 1, n - 1)
    events = events_arr.tolist()
    ev_code = signals.action[events_arr].tolist()
    ev_qty = signals.quantity[events_arr].tolist()
    ev_close = data.close[events_arr].tolist()
    ev_day = days_arr[events_arr].tolist()
    ev_next_open = data.open[nxt].tolist()
    ev_next_day = days_arr[nxt].tolist()
    nan = float("nan")
    ev_sl = signals.sl_distance[events_arr].tolist() if signals.sl_distance is not None else [nan] * len(events)
    ev_tp = signals.tp_distance[events_arr].tolist() if signals.tp_distance is not None else [nan] * len(events)
    has_stops = signals.sl_distance is not None or signals.tp_distance is not None
    opens, days = data.open, days_arr
    h = data.high.tolist() if has_stops else []
    l = data.low.tolist() if has_stops else []
    adj = costs.adj
    last_close = float(data.close[n - 1])

    cash = costs.cash
    side = 0  # +1 long, -1 short, 0 flat
    units = entry = 0.0
    entry_bar = entry_day = 0
    entry_comm = 0.0
    sl = tp = 0.0
    lo_trig, hi_trig = -math.inf, math.inf
    rejected = 0
    # State after each change: (bar, cash, signed units, entry price, entry day); the equity
    # curve is rebuilt from these after the loop instead of being marked every bar.
    ch_bar: list[int] = [0]
    ch_cash: list[float] = [cash]
    ch_units: list[float] = [0.0]
    ch_entry: list[float] = [0.0]
    ch_day: list[int] = [0]
    # Closed trades: (side, units, entry bar, entry price, exit bar, exit price, pnl, comm, swap, reason)
    closed: list[tuple] = []

    def close_position(bar: int, bar_day: int, ref: float, reason: str) -> None:
        nonlocal cash, side
        px = exit_fill(ref, side, adj)
        comm = commission(units, costs)
        swp = swap(units, entry_day, bar_day, costs)
        gross = gross_pnl(side, units, entry, px)
        cash = cash + gross - comm - swp
        closed.append(
            (side, units, entry_bar, entry, bar, px, gross - entry_comm - comm - swp, entry_comm + comm, swp, reason)
        )
        side = 0
        ch_bar.append(bar)
        ch_cash.append(cash)
        ch_units.append(0.0)
        ch_entry.append(0.0)
        ch_day.append(0)

    def scan_stops(first: int, stop: int) -> None:
        """Close the position on the first bar in [first, stop) that reaches a level."""
        for j in range(first, stop):
            if l[j] <= lo_trig or h[j] >= hi_trig:
                hit = stop_exit(side, sl, tp, float(opens[j]), h[j], l[j])
                if hit is not None:
                    close_position(j, int(days[j]), hit[0], hit[1])
                    return

    cur = 1  # first bar whose stops have not been checked yet
    for e, k in enumerate(events):
        if side and has_stops:
            # Stops on bars after the entry bar, up to and including the decision bar k.
            scan_stops(cur if cur > entry_bar else entry_bar + 1, k + 1)
        cur = k + 1
        s = ev_code[e]
        if s == FLAT:
            if side and k + 1 < n:
                close_position(k + 1, ev_next_day[e], ev_next_open[e], "signal")
            continue
        if s == side:
            continue
        # Reversal or fresh entry: margin is checked at the decision bar's close, against
        # equity after the position being replaced (its margin is freed by the close).
        want = ev_qty[e]
        equity = cash
        if side:
            equity = cash + gross_pnl(side, units, entry, ev_close[e]) - swap(units, entry_day, ev_day[e], costs)
        opens_ok = required_margin(want, ev_close[e], costs) <= equity
        if not opens_ok:
            rejected += 1
        if k + 1 >= n:
            continue  # the decision on the last bar has no next open to fill at
        if side:
            close_position(k + 1, ev_next_day[e], ev_next_open[e], "signal")
        if not opens_ok:
            continue
        side = 1 if s > 0 else -1
        units = want
        entry = entry_fill(ev_next_open[e], side, adj)
        entry_bar = k + 1
        entry_day = ev_next_day[e]
        entry_comm = commission(units, costs)
        cash = cash - entry_comm
        if has_stops:
            sl, tp = stop_levels(side, entry, ev_sl[e], ev_tp[e])
            lo_trig, hi_trig = (sl, tp) if side > 0 else (tp, sl)
        ch_bar.append(entry_bar)
        ch_cash.append(cash)
        ch_units.append(side * units)
        ch_entry.append(entry)
        ch_day.append(entry_day)

    if side and has_stops:
        scan_stops(cur if cur > entry_bar else entry_bar + 1, n)
    if side:
        close_position(n - 1, int(days[n - 1]), last_close, "end")

    equity, exposure = _equity_curve(data.close, days_arr, costs, ch_bar, ch_cash, ch_units, ch_entry, ch_day)
    if closed and closed[-1][9] == "end":
        # The end close happens at the last bar's close: book it in the final value, and
        # count that bar as exposed (the position was held through it).
        equity[-1] = cash
        exposure += 1
    log = TradeLog.from_rows(data.symbol, data.timestamps, closed)
    cost_totals = cost_breakdown(log, costs)
    stats = compute_stats(equity, data.timestamps, log.pnl, costs.cash, cost_totals, exposure)
    stats["rejected_orders"] = rejected
    return BacktestResult(
        symbol=data.symbol,
        strategy=name,
        strategy_params=dict(strat.params),
        broker_params=params,
        timestamps=data.timestamps,
        equity=equity,
        trade_log=log,
        stats=stats,
        costs=cost_totals,
        initial_cash=costs.cash,
        rejected_orders=rejected,
    )


def _equity_curve(
    close: np.ndarray,
    days: np.ndarray,
    costs: CostModel,
    ch_bar: list[int],
    ch_cash: list[float],
    ch_units: list[float],
    ch_entry: list[float],
    ch_day: list[int],
) -> tuple[np.ndarray, int]:
    """Equity at every close from the account's state changes; also the exposed-bar count.

    Same arithmetic as ``BacktraderSimulationBroker.equity``:
    cash + signed_units * (close - entry) - units * swap_per_lot_day * days_held / lot_size.
    """
    n = close.size
    idx = np.searchsorted(np.asarray(ch_bar), np.arange(n), side="right") - 1
    cash = np.asarray(ch_cash)[idx]
    signed = np.asarray(ch_units)[idx]
    entry = np.asarray(ch_entry)[idx]
    entry_day = np.asarray(ch_day, dtype=np.int64)[idx]
    held = days - entry_day
    swap_accrued = np.abs(signed) * costs.swap_per_lot_day * held / costs.lot_size
    equity = cash + signed * (close - entry) - swap_accrued
    return equity, int(np.count_nonzero(signed))


__all__ = ["BacktestResult", "run_backtest"]
