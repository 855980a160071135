"""Backtest statistics on hand-checkable equity curves and trade lists."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.backtest.stats import STAT_KEYS, compute_stats, max_drawdown

DAY = 86_400 * 10**9


def stats(equity: list[float], pnls: list[float], *, step: int = DAY, exposure: int = 0, **costs: float) -> dict:
    eq = np.array(equity, dtype=float)
    ts = np.arange(eq.size, dtype=np.int64) * step
    return compute_stats(eq, ts, np.array(pnls, dtype=float), 100.0, costs, exposure)


def test_drawdown_depth_and_duration() -> None:
    depth, bars, start, end = max_drawdown(np.array([100, 120, 90, 100, 130, 125.0]))
    assert depth == pytest.approx(0.25)  # 120 -> 90
    assert (bars, start, end) == (3, 1, 4)  # from the peak at bar 1 until recovery at bar 4
    # Never recovering: the duration runs to the last bar.
    assert max_drawdown(np.array([100, 80, 90.0]))[1:] == (2, 0, 2)
    assert max_drawdown(np.array([100, 110, 120.0])) == (0.0, 0, 0, 0)


def test_trade_statistics() -> None:
    s = stats([100, 110, 105, 115], [10, -5, 10, -5, 0], exposure=2, commission=1.5, spread=0.5)
    assert s["trades"] == 5
    assert s["win_rate"] == pytest.approx(2 / 5)
    assert s["profit_factor"] == pytest.approx(20 / 10)
    assert s["expectancy"] == pytest.approx(10 / 5)
    assert s["exposure"] == pytest.approx(0.5)
    assert s["total_return"] == pytest.approx(0.15)
    assert (s["commission_paid"], s["spread_paid"], s["total_costs"]) == (1.5, 0.5, 2.0)
    assert set(STAT_KEYS) <= set(s)


def test_annualised_return_sharpe_and_sortino() -> None:
    # 366 daily bars spanning 365 days, doubling: +100 % a (365/365.25) year.
    eq = list(100 * 2 ** (np.arange(366) / 365))
    s = stats(eq, [])
    assert s["annualized_return"] == pytest.approx(2 ** (365.25 / 365) - 1, rel=1e-9)
    # No losing bar: the downside deviation is 0 and the Sortino ratio undefined (NaN, not inf).
    assert math.isnan(s["sortino"]) and s["sharpe"] > 0
    rets = np.array([0.01, -0.02, 0.015, 0.005, -0.01])
    curve = list(100 * np.cumprod(1 + rets))
    s = stats(curve, [])
    per_year = len(curve) / ((len(curve) - 1) / 365.25)
    assert s["sharpe"] == pytest.approx(rets.mean() / rets.std(ddof=1) * math.sqrt(per_year))
    downside = math.sqrt(np.mean(np.minimum(rets, 0) ** 2))
    assert s["sortino"] == pytest.approx(rets.mean() / downside * math.sqrt(per_year))


def test_undefined_values_without_trades_or_losses() -> None:
    assert math.isnan(stats([100, 100], [])["win_rate"])
    assert stats([100, 110], [10])["profit_factor"] == math.inf
