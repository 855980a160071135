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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.backtest.stats import compute_stats
from engine.backtest.trade_log import TradeLog
from engine.brokers._sim_costs import (
    DEFAULT_SIM_PARAMS,
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
from engine.errors import ConfigError, DataError
from engine.plugins.base import StrategyPlugin
from engine.prediction.types import PrecomputedPredictions
from engine.strategies.signals import FLAT, BarSignals
from engine.types import Trade

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """Everything one backtest produced.

    ``equity[i]`` is the account equity at bar ``i``'s close (cash + open P&L at the
    close - swap accrued so far); ``timestamps`` are the bars' int64 ns UTC times.
    ``trade_log`` holds the closed trades as columns (``trades`` gives ``Trade`` objects).
    ``costs`` maps kind (commission, swap, spread, slippage) to the amount paid.
    """

    symbol: str
    strategy: str
    strategy_params: dict[str, Any]
    broker_params: dict[str, Any]
    timestamps: np.ndarray
    equity: np.ndarray
    trade_log: TradeLog
    stats: dict[str, float]
    costs: dict[str, float]
    initial_cash: float
    rejected_orders: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def trades(self) -> list[Trade]:
        """Closed trades as domain objects (built from ``trade_log`` on first access)."""
        return self.trade_log.trades()

    @property
    def final_equity(self) -> float:
        return float(self.equity[-1]) if self.equity.size else self.initial_cash


def resolve_strategy(
    strategy: str | StrategyPlugin, strategy_params: Mapping[str, Any] | None
) -> StrategyPlugin:
    """A ready strategy instance from a plugin name or an instance (params applied).

    Unknown parameter names are refused with the list of valid ones: a typo in a grid
    search must not silently run the defaults.
    """
    if isinstance(strategy, StrategyPlugin):
        instance = strategy
        cls: type[StrategyPlugin] = type(strategy)
    elif isinstance(strategy, str):
        from engine.plugins.loader import load_plugin

        cls = load_plugin("strategy", strategy)  # type: ignore[assignment]
        instance = None  # type: ignore[assignment]
    else:
        raise ConfigError(
            f"strategy must be a plugin name or a StrategyPlugin instance, got {type(strategy).__name__}"
        )
    params = dict(strategy_params or {})
    unknown = sorted(set(params) - set(cls.plugin_params))
    if unknown:
        raise ConfigError(
            f"strategy {plugin_name(cls)!r}: unknown parameter(s) {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(cls.plugin_params)) or '(none)'}"
        )
    if instance is None:
        instance = cls(params)
    elif params:
        instance.set_params(**params)
    return instance


def plugin_name(cls: type) -> str:
    """The name a plugin class is known by (its ``name`` attribute, else the class name)."""
    return str(getattr(cls, "name", "") or cls.__name__)


def broker_settings(broker_params: Mapping[str, Any] | None) -> tuple[dict[str, Any], CostModel]:
    """Merged simulation-broker parameters (defaults < given) and their cost model."""
    params = dict(DEFAULT_SIM_PARAMS)
    given = dict(broker_params or {})
    unknown = sorted(set(given) - set(DEFAULT_SIM_PARAMS))
    if unknown:
        raise ConfigError(
            f"broker_params: unknown parameter(s) {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(DEFAULT_SIM_PARAMS))}"
        )
    params.update(given)
    return params, CostModel.from_params(params, where="broker_params")


def check_ohlc(data: MarketData) -> None:
    """Refuse data the fill rules cannot work with, naming the first bad bar."""
    n = len(data)
    if n == 0:
        raise DataError(f"{data.source or data.symbol}: no bars to backtest")
    cols = (data.open, data.high, data.low, data.close)
    if any(col.shape != (n,) for col in cols) or data.timestamps.shape != (n,):
        raise DataError(f"{data.source or data.symbol}: OHLC columns and timestamps differ in length")
    finite = np.isfinite(data.open) & np.isfinite(data.high) & np.isfinite(data.low) & np.isfinite(data.close)
    ok = finite & (data.low <= np.minimum(data.open, data.close)) & (
        data.high >= np.maximum(data.open, data.close)
    )
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise DataError(
            f"{data.source or data.symbol}: bar {i} ({data.time_at(i).isoformat()}) has "
            f"open={data.open[i]!r} high={data.high[i]!r} low={data.low[i]!r} close={data.close[i]!r}; "
            "need finite prices with low <= open, close <= high"
        )
    if n > 1 and not np.all(np.diff(data.timestamps) > 0):
        i = int(np.flatnonzero(np.diff(data.timestamps) <= 0)[0]) + 1
        raise DataError(
            f"{data.source or data.symbol}: timestamps must increase strictly; bar {i} "
            f"({data.time_at(i).isoformat()}) is not after the bar before it"
        )


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
        from engine.backtest.stepwise import run_stepwise

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
    o = data.open.tolist()
    h = data.high.tolist()
    l = data.low.tolist()
    c = data.close.tolist()
    days_arr = data.timestamps // NS_PER_DAY
    day = days_arr.tolist()
    act = signals.action.tolist()
    qty = signals.quantity.tolist()
    sl_d = signals.sl_distance.tolist() if signals.sl_distance is not None else None
    tp_d = signals.tp_distance.tolist() if signals.tp_distance is not None else None
    has_stops = sl_d is not None or tp_d is not None
    nan = float("nan")
    adj = costs.adj

    cash = costs.cash
    side = 0  # +1 long, -1 short, 0 flat
    units = entry = 0.0
    entry_bar = entry_day = 0
    entry_comm = 0.0
    sl = tp = 0.0
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

    def close_position(bar: int, ref: float, reason: str) -> None:
        nonlocal cash, side
        px = exit_fill(ref, side, adj)
        comm = commission(units, costs)
        swp = swap(units, entry_day, day[bar], costs)
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

    events = np.flatnonzero(signals.action).tolist()
    cur = 1  # first bar whose stops have not been checked yet
    for k in events:
        if side and has_stops:
            # Stops on bars after the entry bar, up to and including the decision bar k.
            j = cur if cur > entry_bar else entry_bar + 1
            while j <= k:
                if l[j] <= lo_trig or h[j] >= hi_trig:
                    hit = stop_exit(side, sl, tp, o[j], h[j], l[j])
                    if hit is not None:
                        close_position(j, hit[0], hit[1])
                        break
                j += 1
        cur = k + 1
        s = act[k]
        if s == FLAT:
            if not side or k + 1 >= n:
                continue
            close_position(k + 1, o[k + 1], "signal")
            continue
        if s == side:
            continue
        # Reversal or fresh entry: margin is checked at the decision bar's close, against
        # equity after the position being replaced (its margin is freed by the close).
        want = qty[k]
        equity = cash
        if side:
            equity = cash + gross_pnl(side, units, entry, c[k]) - swap(units, entry_day, day[k], costs)
        opens = required_margin(want, c[k], costs) <= equity
        if not opens:
            rejected += 1
        if k + 1 >= n:
            continue  # the decision on the last bar has no next open to fill at
        if side:
            close_position(k + 1, o[k + 1], "signal")
        if not opens:
            continue
        side = 1 if s > 0 else -1
        units = want
        entry = entry_fill(o[k + 1], side, adj)
        entry_bar = k + 1
        entry_day = day[entry_bar]
        entry_comm = commission(units, costs)
        cash = cash - entry_comm
        if has_stops:
            sl, tp = stop_levels(
                side,
                entry,
                sl_d[k] if sl_d is not None else nan,
                tp_d[k] if tp_d is not None else nan,
            )
            lo_trig, hi_trig = (sl, tp) if side > 0 else (tp, sl)
        ch_bar.append(entry_bar)
        ch_cash.append(cash)
        ch_units.append(side * units)
        ch_entry.append(entry)
        ch_day.append(entry_day)

    if side and has_stops:
        j = cur if cur > entry_bar else entry_bar + 1
        while j < n:
            if l[j] <= lo_trig or h[j] >= hi_trig:
                hit = stop_exit(side, sl, tp, o[j], h[j], l[j])
                if hit is not None:
                    close_position(j, hit[0], hit[1])
                    break
            j += 1
    if side:
        close_position(n - 1, c[n - 1], "end")

    equity, exposure = _equity_curve(data.close, days_arr, costs, ch_bar, ch_cash, ch_units, ch_entry, ch_day)
    if closed and closed[-1][9] == "end":
        # The end close happens at the last bar's close: book it in the final value, and
        # count that bar as exposed (the position was held through it).
        equity[-1] = cash
        exposure += 1
    log = TradeLog.from_rows(data.symbol, data.timestamps, closed)
    cost_totals = cost_breakdown(log, costs)
    stats = compute_stats(equity, data.timestamps, log.pnl, costs.cash, cost_totals, exposure)
    stats["rejected_orders"] = float(rejected)
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


def cost_breakdown(log: TradeLog, costs: CostModel) -> dict[str, float]:
    """Costs paid by kind. Every round trip has two fills, each paying half the spread
    and the slippage on its units."""
    units = float(log.quantity.sum())
    return {
        "commission": float(log.commission.sum()),
        "swap": float(log.swap.sum()),
        "spread": 2.0 * units * costs.half_spread,
        "slippage": 2.0 * units * costs.slippage,
    }
