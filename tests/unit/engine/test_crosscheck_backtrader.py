"""Cross-check: sma_cross (10/30, always in the market, zero costs, fills at the next
open) must give the same trades and final equity as a real backtrader Cerebro set up
the same way, on the real hourly EURUSD and daily GOOG files the ``backtesting``
package ships."""

from __future__ import annotations

import backtrader as bt
import numpy as np
import pytest

from engine.backtest.runner import run_backtest
from engine.data.market_data import MarketData

ZERO_COSTS = {"spread_pips": 0, "slippage_pips": 0, "commission_per_lot": 0, "swap_per_lot_per_day": 0}
CASH = 10_000.0


class _SmaCross(bt.Strategy):
    """Reverses on each crossover of SMA(fast) and SMA(slow): the rule sma_cross documents
    (up: fast > slow now and fast <= slow on the bar before; down mirrored)."""

    params = (("fast", 10), ("slow", 30), ("size", 1.0))

    def __init__(self) -> None:
        self.fast = bt.ind.SMA(self.data.close, period=self.p.fast)
        self.slow = bt.ind.SMA(self.data.close, period=self.p.slow)
        self.fills: list[tuple[object, float]] = []  # (bar time, fill price) of executed orders

    def next(self) -> None:
        if len(self) < self.p.slow + 1:  # the previous bar's slow SMA must exist
            return
        up = self.fast[0] > self.slow[0] and self.fast[-1] <= self.slow[-1]
        down = self.fast[0] < self.slow[0] and self.fast[-1] >= self.slow[-1]
        if up and self.position.size <= 0:
            self.order_target_size(target=self.p.size)
        elif down and self.position.size >= 0:
            self.order_target_size(target=-self.p.size)

    def notify_order(self, order: bt.Order) -> None:
        if order.status == order.Completed:
            self.fills.append((self.data.datetime.datetime(0), order.executed.price))


def _backtrader(data: MarketData, size: float) -> tuple[list[tuple[object, float]], float]:
    """(executed orders as (time, price), final value at the last close). Every order
    opens one position (a reversal also closes the previous one), and the position
    left at the end is valued at the last close, so orders == LTS round trips."""
    cerebro = bt.Cerebro(stdstats=False)
    seconds = int(np.median(np.diff(data.timestamps)) // 1_000_000_000)
    # Intraday bars must be declared as such, or backtrader treats them as daily bars.
    timeframe = (bt.TimeFrame.Days, 1) if seconds >= 86_400 else (bt.TimeFrame.Minutes, max(seconds // 60, 1))
    feed = bt.feeds.PandasData(
        dataname=data.to_frame().tz_localize(None), timeframe=timeframe[0], compression=timeframe[1]
    )
    cerebro.adddata(feed)
    cerebro.addstrategy(_SmaCross, size=size)
    cerebro.broker.setcash(CASH)
    cerebro.broker.set_coc(False)  # no cheat-on-close
    cerebro.broker.set_coo(False)  # no cheat-on-open: market orders fill at the next open
    cerebro.broker.setcommission(commission=0.0, leverage=100.0)  # as the LTS account
    strat = cerebro.run()[0]
    return strat.fills, cerebro.broker.getvalue()


@pytest.mark.parametrize(
    ("dataset", "size"),
    [("eurusd_data", 10_000.0), ("goog_data", 10.0)],
)
def test_sma_cross_matches_backtrader(request: pytest.FixtureRequest, dataset: str, size: float) -> None:
    data: MarketData = request.getfixturevalue(dataset)
    ours = run_backtest(
        data, "sma_cross", {"fast": 10, "slow": 30, "quantity": size}, {**ZERO_COSTS, "initial_cash": CASH}
    )
    bt_fills, bt_value = _backtrader(data, size)

    assert ours.rejected_orders == 0
    assert len(ours.trades) == len(bt_fills)
    # Same entry bars and prices (backtrader reports naive UTC times).
    assert [(t.entry_time.replace(tzinfo=None), t.entry_price) for t in ours.trades] == [
        (when, pytest.approx(price, rel=1e-12)) for when, price in bt_fills
    ]
    assert len(ours.trades) > 20  # a real test: the strategy traded many times
    assert ours.final_equity == pytest.approx(bt_value, rel=1e-6)
    # The net profit itself agrees (stricter than the equity, which includes the cash).
    assert ours.final_equity - CASH == pytest.approx(bt_value - CASH, rel=1e-6, abs=1e-6)
