"""Benchmark of the single-CSV backtest (``engine.backtest.run_backtest``).

Prints bars/s for, on the same 1,000,000-bar series:

* ``sma_cross`` 10/30 with the seed's costs and SL/TP (20 / 40 pips), and without SL/TP;
* ``prediction_strategy`` in CSV mode (perfect predictions from ``CsvPredictionProvider``),
  with and without the provider's precompute time;
* in the same run, references: a plain Python loop over lists doing the SMA reversal
  bookkeeping, and backtrader running the SMA 10/30 reversal and the prediction rule on
  a 100,000-bar prefix (backtrader is ~100x slower); ratios are against those;
* peak resident memory of the process (``ru_maxrss``).

Run: ``.venv/bin/python bench/bench_backtest.py [--bars N] [--bt-bars N] [--repeat N]``.
Figures are noisy on a shared machine: each timing is the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from engine.backtest.runner import run_backtest
from engine.data.market_data import MarketData
from engine.prediction.csv_provider import CsvPredictionProvider
from engine.strategies.sma_cross import SmaCrossStrategy

HOUR_NS = 3_600_000_000_000
BIG_ACCOUNT = {"initial_cash": 10_000_000.0}  # so a long random walk never runs out of margin


def synthetic(n: int, seed: int = 42) -> MarketData:
    """A reproducible hourly EURUSD-like series: a random walk of 8 pips per hour with
    its 2,000-bar moving average taken out (so a million bars stay near 1.10 while the
    short-term moves that trigger crossovers and stops are kept)."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(0.0, 0.0008, n))
    csum = np.concatenate(([0.0], np.cumsum(walk)))
    window = np.minimum(np.arange(1, n + 1), 2_000)
    trend = (csum[1:] - csum[np.arange(n) + 1 - window]) / window
    close = 1.1 + walk - trend
    open_ = np.concatenate(([1.1], close[:-1])) + rng.normal(0.0, 0.0001, n)
    high = np.maximum(open_, close) + np.abs(rng.normal(0.0, 0.0004, n))
    low = np.minimum(open_, close) - np.abs(rng.normal(0.0, 0.0004, n))
    ts = 1_262_304_000_000_000_000 + np.arange(n, dtype=np.int64) * HOUR_NS
    return MarketData("EURUSD", ts, open_, high, low, close)


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(best wall seconds, best CPU seconds of this process, last result). CPU time is
    the steadier figure when other jobs share the cores."""
    wall = cpu = float("inf")
    out = None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall = min(wall, time.perf_counter() - w0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu, out


def plain_loop_reference(data: MarketData) -> int:
    """SMA 10/30 reversal in one plain Python loop over lists: rolling sums, crossing
    test and fills at the next open, no objects (the issue's "~2M bars/s" reference)."""
    closes, opens = data.close.tolist(), data.open.tolist()
    fast_sum = slow_sum = 0.0
    prev_diff = None
    side, entry, cash, trades = 0, 0.0, 0.0, 0
    pending = 0
    for i in range(len(closes)):
        if pending:
            px = opens[i]
            if side:
                cash += side * (px - entry)
                trades += 1
            side, entry, pending = pending, px, 0
        c = closes[i]
        fast_sum += c
        slow_sum += c
        if i >= 10:
            fast_sum -= closes[i - 10]
        if i >= 30:
            slow_sum -= closes[i - 30]
        if i >= 29:
            diff = fast_sum / 10 - slow_sum / 30
            if prev_diff is not None:
                if diff > 0 >= prev_diff and side <= 0:
                    pending = 1
                elif diff < 0 <= prev_diff and side >= 0:
                    pending = -1
            prev_diff = diff
    return trades + (1 if side else 0)


def backtrader_sma(data: MarketData) -> int:
    import backtrader as bt

    class SmaCross(bt.Strategy):
        def __init__(self) -> None:
            self.fast = bt.ind.SMA(self.data.close, period=10)
            self.slow = bt.ind.SMA(self.data.close, period=30)
            self.orders = 0

        def next(self) -> None:
            if len(self) < 31:
                return
            if self.fast[0] > self.slow[0] and self.fast[-1] <= self.slow[-1] and self.position.size <= 0:
                self.order_target_size(target=10_000)
                self.orders += 1
            elif self.fast[0] < self.slow[0] and self.fast[-1] >= self.slow[-1] and self.position.size >= 0:
                self.order_target_size(target=-10_000)
                self.orders += 1

    return _run_cerebro(data, SmaCross)


def backtrader_prediction(data: MarketData, short: np.ndarray, long: np.ndarray) -> int:
    """The prediction rule (defaults: 0.6/0.4 weights, 3 predictions, thresholds 0.7 /
    min move 0.0005 / full move 0.002, alignment, 10,000 units in 1,000 steps) per bar."""
    import backtrader as bt

    s_mean = ((short[:, 0] + short[:, 1]) + short[:, 2]) / 3
    l_mean = ((long[:, 0] + long[:, 1]) + long[:, 2]) / 3
    s_list, l_list = s_mean.tolist(), l_mean.tolist()

    class Pred(bt.Strategy):
        def __init__(self) -> None:
            self.orders = 0

        def next(self) -> None:
            i = len(self) - 1
            price = self.data.close[0]
            st, lt = (s_list[i] - price) / price, (l_list[i] - price) / price
            signal = 0.6 * st + 0.4 * lt
            if signal != signal or abs(signal) < 0.0005 or (st > 0) != (lt > 0):
                return
            confidence = min(abs(signal) / 0.002, 1.0)
            if confidence < 0.7:
                return
            size = int(10_000 * confidence / 1_000 + 1e-9) * 1_000
            want = size if signal > 0 else -size
            if (want > 0 and self.position.size <= 0) or (want < 0 and self.position.size >= 0):
                self.order_target_size(target=want)
                self.orders += 1

    return _run_cerebro(data, Pred)


def _run_cerebro(data: MarketData, strategy: type) -> int:
    import backtrader as bt

    cerebro = bt.Cerebro(stdstats=False)
    feed = bt.feeds.PandasData(dataname=data.to_frame().tz_localize(None),
                               timeframe=bt.TimeFrame.Minutes, compression=60)
    cerebro.adddata(feed)
    cerebro.addstrategy(strategy)
    cerebro.broker.setcash(BIG_ACCOUNT["initial_cash"])
    cerebro.broker.setcommission(commission=0.0, leverage=100.0)
    strat = cerebro.run()[0]
    return int(strat.orders)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--bt-bars", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n, nb = args.bars, min(args.bt_bars, args.bars)

    data = synthetic(n)
    prefix = data.slice(0, nb)
    print(f"series: {n:,} synthetic hourly bars; backtrader on the first {nb:,}")

    rows: list[tuple[str, float, float, int, str]] = []
    w, c, trades = best_of(args.repeat, lambda: plain_loop_reference(data))
    ref = (n / w, n / c)
    rows.append(("reference: plain Python loop, SMA reversal", *ref, trades, ""))

    sma_stops = {"fast": 10, "slow": 30, "stop_loss": 20, "take_profit": 40}
    w, c, res = best_of(args.repeat, lambda: run_backtest(data, "sma_cross", sma_stops, BIG_ACCOUNT))
    sma = (n / w, n / c)
    exits = np.bincount(res.trade_log.exit_reason, minlength=4)
    rows.append(("lts sma_cross 10/30, costs + SL/TP 20/40 pips", *sma, len(res.trade_log),
                 f"(exits: {exits[0]:,} signal, {exits[1]:,} sl, {exits[2]:,} tp)"))
    t_trades, _, _ = best_of(1, lambda: res.trade_log.trades())
    w, c, res_plain = best_of(args.repeat, lambda: run_backtest(data, "sma_cross", {"fast": 10, "slow": 30}, BIG_ACCOUNT))
    sma_plain = (n / w, n / c)
    rows.append(("lts sma_cross 10/30, costs, no SL/TP", *sma_plain, len(res_plain.trade_log), ""))

    w, c, bt_orders = best_of(1, lambda: backtrader_sma(prefix))
    bt_sma = (nb / w, nb / c)
    rows.append(("backtrader SMA 10/30 reversal (prefix)", *bt_sma, bt_orders, "orders"))

    provider = CsvPredictionProvider(data)
    w_pre, c_pre, pred = best_of(args.repeat, provider.precompute)
    w, c, pres = best_of(args.repeat, lambda: run_backtest(data, "prediction_strategy", None, BIG_ACCOUNT, predictions=pred))
    pred_only = (n / w, n / c)
    pred_total = (n / (w + w_pre), n / (c + c_pre))
    rows.append(("lts prediction_strategy (CSV), backtest only", *pred_only, len(pres.trade_log), ""))
    rows.append(("lts prediction_strategy (CSV), + precompute", *pred_total, len(pres.trade_log), ""))
    w, c, bt_orders = best_of(1, lambda: backtrader_prediction(prefix, pred.short_term[:nb], pred.long_term[:nb]))
    bt_pred = (nb / w, nb / c)
    rows.append(("backtrader prediction rule (prefix)", *bt_pred, bt_orders, "orders"))

    print(f"\n{'run':<48}{'bars/s wall':>14}{'bars/s CPU':>14}{'trades':>10}")
    for name, wall_rate, cpu_rate, count, note in rows:
        print(f"{name:<48}{wall_rate:>14,.0f}{cpu_rate:>14,.0f}{count:>10,} {note}")
    print("\nratios (wall / CPU)")
    for label, a, b in [
        ("sma_cross + SL/TP vs backtrader SMA (target >= 75x)", sma, bt_sma),
        ("sma_cross no SL/TP vs backtrader SMA", sma_plain, bt_sma),
        ("sma_cross + SL/TP vs plain Python loop", sma, ref),
        ("prediction incl. precompute vs backtrader", pred_total, bt_pred),
        ("prediction backtest only vs backtrader", pred_only, bt_pred),
    ]:
        print(f"  {label:<54}{a[0] / b[0]:8.1f}x {a[1] / b[1]:8.1f}x")
    print(f"\ntargets (CPU bars/s): sma_cross + SL/TP >= 1,000,000 -> {'met' if sma[1] >= 1e6 else 'NOT met'}; "
          f"prediction_strategy incl. precompute >= 500,000 -> {'met' if pred_total[1] >= 5e5 else 'NOT met'}")
    print(f"building {len(res.trade_log):,} Trade objects on demand: {t_trades:.3f} s (not in the bars/s above)")
    tracemalloc.start()
    run_backtest(data, "sma_cross", sma_stops, BIG_ACCOUNT)
    sma_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.reset_peak()
    run_backtest(data, "prediction_strategy", None, BIG_ACCOUNT, predictions=pred)
    pred_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    print(f"peak memory allocated by one run_backtest (tracemalloc): sma_cross {sma_peak:,.0f} MB, "
          f"prediction_strategy {pred_peak:,.0f} MB (plus the inputs: {data.close.nbytes * 5 / 2**20:,.0f} MB "
          f"of bars, {pred.short_term.nbytes * 4 / 2**20:,.0f} MB of predictions)")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak_mb:,.0f} MB (target < 1024 MB)")


if __name__ == "__main__":
    main()
