"""Performance accounting of the backtrader broker: equity per bar and round-trip trades.

Trades are counted the way backtrader's ``TradeAnalyzer`` counts them: a trade on one
data feed runs from a flat position back to flat; its net P/L is the realised P/L of the
orders that reduced it minus every commission paid on it (opening orders included).
A position that flips sign in one order closes the trade and opens a new one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class _OpenTrade:
    pnl: float = 0.0
    commission: float = 0.0


@dataclass(slots=True)
class ClosedTrade:
    """One finished round trip on one data feed (backtrader numbers are floats)."""

    data_name: str
    pnl: float  # gross realised P/L
    commission: float

    @property
    def net(self) -> float:
        return self.pnl - self.commission


@dataclass
class Accounting:
    """Collects the equity curve and closed trades while cerebro runs."""

    equity: list[float] = field(default_factory=list)
    trades: list[ClosedTrade] = field(default_factory=list)
    _open: dict[str, _OpenTrade] = field(default_factory=dict)

    def reset(self) -> None:
        self.equity.clear()
        self.trades.clear()
        self._open.clear()

    def on_bar(self, value: float) -> None:
        self.equity.append(float(value))

    def on_execution(self, data_name: str, size_before: float, size_after: float, pnl: float, commission: float) -> None:
        """One executed order on ``data_name`` that moved the position from before to after."""
        trade = self._open.setdefault(data_name, _OpenTrade())
        trade.pnl += pnl
        trade.commission += commission
        flipped = size_before * size_after < 0
        if size_after == 0 or flipped:
            self.trades.append(ClosedTrade(data_name, trade.pnl, trade.commission))
            del self._open[data_name]
            if flipped:
                self._open[data_name] = _OpenTrade()

    def metrics(self, start_value: float) -> dict[str, Any]:
        """Returns, drawdown, trades and win rate of the run so far."""
        final = self.equity[-1] if self.equity else start_value
        peak, max_dd, max_dd_money = start_value, 0.0, 0.0
        for value in self.equity:
            peak = max(peak, value)
            if peak > 0:
                max_dd = max(max_dd, (peak - value) / peak)
            max_dd_money = max(max_dd_money, peak - value)
        returns = [
            b / a - 1.0 for a, b in zip([start_value, *self.equity[:-1]], self.equity) if a
        ]
        mean = sum(returns) / len(returns) if returns else 0.0
        var = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1) if len(returns) > 1 else 0.0
        wins = [t for t in self.trades if t.net > 0]
        losses = [t for t in self.trades if t.net <= 0]
        gross_win = sum(t.net for t in wins)
        gross_loss = -sum(t.net for t in losses)
        return {
            "bars": len(self.equity),
            "start_value": start_value,
            "final_value": final,
            "total_return": final / start_value - 1.0 if start_value else 0.0,
            "max_drawdown": max_dd,
            "max_drawdown_money": max_dd_money,
            "per_bar_return_mean": mean,
            "per_bar_return_std": math.sqrt(var),
            "trades": len(self.trades),
            "wins": len(wins),
            "losses": len(losses),
            "win_rate": len(wins) / len(self.trades) if self.trades else 0.0,
            "net_pnl": sum(t.net for t in self.trades),
            "commission": sum(t.commission for t in self.trades),
            "profit_factor": gross_win / gross_loss if gross_loss else (math.inf if gross_win else 0.0),
            "open_trades": len(self._open),
        }
