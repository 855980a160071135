"""What both backtest loops share: the result type, and turning a request (strategy,
parameters, data) into checked inputs. ``engine.backtest.runner`` (the vectorised loop)
and ``engine.backtest.stepwise`` (bar by bar, as the actor runtime steps) both build on
this module, so neither imports the other's internals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.backtest.trade_log import TradeLog
from engine.brokers._sim_costs import DEFAULT_SIM_PARAMS, CostModel
from engine.data.market_data import MarketData
from engine.errors import ConfigError, DataError
from engine.plugins.base import StrategyPlugin
from engine.types import Trade


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
    # The simulation broker's own plugin params may be passed through as they are: its
    # symbol comes from the data, and a backtest always fills at the next open.
    given.pop("symbol", None)
    fill_on = given.pop("fill_on", "next_open")
    if fill_on != "next_open":
        raise ConfigError(f"broker_params: a backtest fills at the next open; 'fill_on' {fill_on!r} is not supported")
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
