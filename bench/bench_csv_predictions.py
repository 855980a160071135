"""Benchmark: CSV-mode perfect predictions for a whole series (``CsvPredictionProvider.precompute``).

Prints bars/s of the vectorised precompute on a 1,000,000-bar hourly series (with
weekend gaps, so the "first bar at or after t + h days" rule is exercised), beside a
reference measured in the same run: the per-bar ``get_predictions`` lookup (what a
backtest would pay without precompute), on a slice and extrapolated. Also prints
peak traced memory and checks that both paths agree on the slice.

    .venv/bin/python bench/bench_csv_predictions.py [--bars 1000000] [--csv FILE]

``--csv`` benchmarks a real OHLC file instead (e.g. a local EURUSD H1 export).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from engine.data.market_data import MarketData
from engine.prediction import CsvPredictionProvider

HOUR_NS = 3_600 * 1_000_000_000


def synthetic_hourly(bars: int, seed: int = 7) -> MarketData:
    """A random-walk hourly series that skips Saturdays and Sundays (like FX data)."""
    start = np.datetime64("2000-01-03T00:00", "ns").astype(np.int64)  # a Monday
    # Generate enough hours, drop weekend ones, keep the first ``bars``.
    hours = start + np.arange(int(bars * 7 / 5) + 200, dtype=np.int64) * HOUR_NS
    weekday = ((hours // (24 * HOUR_NS)) + 3) % 7  # 1970-01-01 was a Thursday -> 0 = Monday
    ts = hours[weekday < 5][:bars]
    rng = np.random.default_rng(seed)
    close = 1.2 + np.cumsum(rng.normal(0.0, 0.0005, bars))
    return MarketData(symbol="SYNTH", timestamps=ts, open=close, high=close + 0.0003, low=close - 0.0003, close=close)


def main() -> None:
    parser = argparse.ArgumentParser(description="CSV prediction precompute benchmark")
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--csv", help="benchmark this OHLC CSV instead of synthetic data")
    parser.add_argument("--reference-bars", type=int, default=20_000, help="bars for the per-bar reference")
    args = parser.parse_args()

    if args.csv:
        from engine.data.csv_loader import load_csv

        data = load_csv(args.csv)
    else:
        data = synthetic_hourly(args.bars)
    provider = CsvPredictionProvider(data)
    n = len(data)

    provider.precompute()  # warm-up (numpy page faults, imports)
    tracemalloc.start()
    started = time.perf_counter()
    pre = provider.precompute()
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    m = min(args.reference_bars, n)
    started = time.perf_counter()
    lookups = [provider.get_predictions(data.symbol, data.time_at(i)) for i in range(m)]
    ref_elapsed = time.perf_counter() - started

    for i, got in enumerate(lookups):
        short = np.array([np.nan if v is None else v for v in got.short_term])
        long = np.array([np.nan if v is None else v for v in got.long_term])
        np.testing.assert_array_equal(pre.short_term[i], short)
        np.testing.assert_array_equal(pre.long_term[i], long)

    rate = n / elapsed
    ref_rate = m / ref_elapsed
    print(f"series: {n:,} bars ({'file ' + args.csv if args.csv else 'synthetic hourly, weekends skipped'})")
    print(f"precompute (vectorised):       {elapsed * 1000:8.1f} ms  -> {rate:14,.0f} bars/s")
    print(f"per-bar get_predictions (ref): {ref_elapsed * 1000:8.1f} ms for {m:,} bars -> {ref_rate:10,.0f} bars/s")
    print(f"ratio precompute / per-bar:    {rate / ref_rate:8.0f}x")
    print(f"peak traced memory in precompute: {peak / 2**20:.1f} MiB")
    print(f"agreement on first {m:,} bars: OK")


if __name__ == "__main__":
    main()
