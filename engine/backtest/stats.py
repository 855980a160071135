"""Backtest statistics from an equity curve and a list of closed trades.

Conventions: returns are fractions (0.05 = 5 %); Sharpe and Sortino use per-bar
simple returns of the equity curve, a zero risk-free rate, and are annualised with
the number of bars per year observed in the data (bars / elapsed years), so hourly
FX (~6,200 bars a year) and daily stocks (~252) are both scaled correctly. Undefined
values (e.g. a profit factor without losing trades, a Sharpe ratio of a flat curve)
are NaN or +inf as documented per key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from engine.backtest.rounding import round_money, round_ratio

NS_PER_YEAR = 365.25 * 86_400 * 1e9

STAT_KEYS: tuple[str, ...] = (
    "initial_equity",
    "final_equity",
    "net_profit",
    "total_return",
    "annualized_return",
    "sharpe",
    "sortino",
    "max_drawdown",
    "max_drawdown_duration_bars",
    "max_drawdown_duration_days",
    "win_rate",
    "profit_factor",
    "expectancy",
    "exposure",
    "trades",
    "bars",
    "commission_paid",
    "swap_paid",
    "spread_paid",
    "slippage_paid",
    "total_costs",
)
"""Every key ``compute_stats`` returns, in a stable order for reports."""

MONEY_STATS: frozenset[str] = frozenset({
    "initial_equity", "final_equity", "net_profit", "expectancy", "commission_paid",
    "swap_paid", "spread_paid", "slippage_paid", "total_costs",
})
"""Statistics in the account currency (rounded as money, see ``engine.backtest.rounding``)."""

COUNT_STATS: frozenset[str] = frozenset({
    "trades", "bars", "max_drawdown_duration_bars", "rejected_orders",
})
"""Statistics that count something (integers)."""


def reported_stat(key: str, value: float) -> float | int:
    """One statistic as it is reported: counts as ``int``, money rounded to 8 decimal
    places, every other figure to 12 significant digits; NaN and infinities unchanged."""
    if key in COUNT_STATS and math.isfinite(value):
        return int(value)
    if key in MONEY_STATS:
        return round_money(value)
    return round_ratio(value)


def max_drawdown(equity: np.ndarray) -> tuple[float, int, int, int]:
    """(depth as a fraction of the running peak, duration in bars, start bar, end bar).

    The duration is the longest stretch from a peak until equity is back at that peak
    (or the end of the data when it never recovers); the depth is the deepest drop.
    """
    if equity.size == 0:
        return 0.0, 0, 0, 0
    peaks = np.maximum.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peaks > 0, 1.0 - equity / peaks, 0.0)
    depth = float(dd.max())
    underwater = equity < peaks
    if not underwater.any():
        return depth, 0, 0, 0
    # Runs of consecutive underwater bars; a run's duration counts from the peak bar before it.
    padded = np.concatenate(([False], underwater, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    starts, stops = edges[::2], edges[1::2]  # underwater in [start, stop)
    lengths = stops - starts
    k = int(lengths.argmax())
    start = int(starts[k]) - 1  # the peak bar
    end = int(stops[k]) if stops[k] < equity.size else equity.size - 1
    return depth, end - start, max(start, 0), end


def compute_stats(
    equity: np.ndarray,
    timestamps: np.ndarray,
    trade_pnl: np.ndarray,
    initial_cash: float,
    costs: Mapping[str, float],
    exposure_bars: int,
) -> dict[str, float]:
    """All statistics of one backtest (keys: ``STAT_KEYS``) from the equity at every
    close and the net P&L of each closed trade, rounded as reported (``reported_stat``).

    ``exposure_bars`` is the number of bars that ended with a position open.
    """
    n = int(equity.size)
    final = float(equity[-1]) if n else initial_cash
    total_return = final / initial_cash - 1.0
    elapsed_ns = float(timestamps[-1] - timestamps[0]) if n > 1 else 0.0
    years = elapsed_ns / NS_PER_YEAR
    if years > 0 and final > 0:
        annualized = (final / initial_cash) ** (1.0 / years) - 1.0
    elif years > 0:
        annualized = -1.0
    else:
        annualized = math.nan

    sharpe = sortino = math.nan
    if n > 2 and years > 0:
        prev = np.concatenate(([initial_cash], equity[:-1]))
        with np.errstate(divide="ignore", invalid="ignore"):
            rets = np.where(prev != 0, equity / prev - 1.0, 0.0)
        bars_per_year = n / years
        mean = float(rets.mean())
        std = float(rets.std(ddof=1))
        if std > 0:
            sharpe = mean / std * math.sqrt(bars_per_year)
        downside = float(np.sqrt(np.mean(np.minimum(rets, 0.0) ** 2)))
        if downside > 0:
            sortino = mean / downside * math.sqrt(bars_per_year)

    depth, dd_bars, dd_start, dd_end = max_drawdown(equity)
    dd_days = float(timestamps[dd_end] - timestamps[dd_start]) / 86_400e9 if dd_bars else 0.0

    pnls = np.asarray(trade_pnl, dtype=np.float64)
    wins = pnls[pnls > 0]
    losses = pnls[pnls < 0]
    gross_profit = float(wins.sum())
    gross_loss = float(-losses.sum())
    if pnls.size == 0:
        win_rate = profit_factor = expectancy = math.nan
    else:
        win_rate = wins.size / pnls.size
        expectancy = float(pnls.mean())
        if gross_loss > 0:
            profit_factor = gross_profit / gross_loss
        else:
            profit_factor = math.inf if gross_profit > 0 else math.nan

    commission_paid = float(costs.get("commission", 0.0))
    swap_paid = float(costs.get("swap", 0.0))
    spread_paid = float(costs.get("spread", 0.0))
    slippage_paid = float(costs.get("slippage", 0.0))
    raw = {
        "initial_equity": float(initial_cash),
        "final_equity": final,
        "net_profit": final - initial_cash,
        "total_return": total_return,
        "annualized_return": annualized,
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown": depth,
        "max_drawdown_duration_bars": float(dd_bars),
        "max_drawdown_duration_days": dd_days,
        "win_rate": win_rate,
        "profit_factor": profit_factor,
        "expectancy": expectancy,
        "exposure": exposure_bars / n if n else 0.0,
        "trades": float(pnls.size),
        "bars": float(n),
        "commission_paid": commission_paid,
        "swap_paid": swap_paid,
        "spread_paid": spread_paid,
        "slippage_paid": slippage_paid,
        "total_costs": commission_paid + swap_paid + spread_paid + slippage_paid,
    }
    # Rounded here, once: every report, the database and the API read these values.
    return {key: reported_stat(key, value) for key, value in raw.items()}
