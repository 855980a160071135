"""Benchmark: ``load_csv`` on a 1,000,000-bar OHLC CSV vs plain pandas ``read_csv``.

Generates a random-walk hourly EURUSD-like file (``DATE_TIME,OPEN,LOW,HIGH,CLOSE``, LOW
before HIGH as in the real data) in a temp dir, then times, in this same run:

* pandas ``read_csv`` with the default C engine (parse only, no validation),
* pandas ``read_csv`` with ``engine="pyarrow"`` (parse only, no validation),
* ``engine.data.load_csv`` (parse + UTC timestamps + every validation check),

each the best of ``--repeat`` runs, and prints the figures and ratios.

    .venv/bin/python bench/bench_csv_load.py [--bars 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from engine.data.csv_loader import load_csv


def write_bars(path: Path, bars: int, seed: int = 7) -> None:
    """A valid random-walk OHLC file of ``bars`` hourly bars."""
    rng = np.random.default_rng(seed)
    close = 1.1 + np.cumsum(rng.normal(0.0, 0.0008, bars))
    open_ = np.concatenate(([close[0]], close[:-1]))
    spread = np.abs(rng.normal(0.0, 0.0006, (2, bars)))
    high = np.maximum(open_, close) + spread[0]
    low = np.minimum(open_, close) - spread[1]
    stamps = np.datetime64("2000-01-03T00:00:00", "s") + np.arange(bars) * np.timedelta64(1, "h")
    table = pa.table(
        {
            "DATE_TIME": pa.array(stamps, type=pa.timestamp("s")),  # written "YYYY-MM-DD hh:mm:ss"
            "OPEN": np.round(open_, 5),
            "LOW": np.round(low, 5),
            "HIGH": np.round(high, 5),
            "CLOSE": np.round(close, 5),
        }
    )
    pa_csv.write_csv(table, path, pa_csv.WriteOptions(quoting_style="none"))


def best_of(repeat: int, func: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bars.csv"
        start = time.perf_counter()
        write_bars(path, args.bars)
        size_mb = path.stat().st_size / 1e6
        print(f"generated {args.bars:,} bars ({size_mb:.1f} MB) in {time.perf_counter() - start:.1f} s")

        data = load_csv(path)  # warm-up, and a check that the file is what we think
        assert len(data) == args.bars and data.meta["dropped_rows"] == 0

        c_engine = best_of(args.repeat, lambda: pd.read_csv(path))
        pyarrow_engine = best_of(args.repeat, lambda: pd.read_csv(path, engine="pyarrow"))
        ours = best_of(args.repeat, lambda: load_csv(path))

    print(f"best of {args.repeat} runs, {args.bars:,} bars:")
    print(f"  pandas read_csv, C engine (no validation):       {c_engine:7.3f} s")
    print(f"  pandas read_csv, pyarrow engine (no validation): {pyarrow_engine:7.3f} s")
    print(f"  lts load_csv (parse + UTC + full validation):    {ours:7.3f} s")
    print(f"  load_csv / pandas C engine       = {ours / c_engine:5.2f}x")
    print(f"  load_csv / pandas pyarrow engine = {ours / pyarrow_engine:5.2f}x")
    print(f"  load_csv throughput: {args.bars / ours / 1e6:.2f} M bars/s")


if __name__ == "__main__":
    main()
