"""Indicators computed the same way over a whole series and over a short window.

Only elementwise float operations in a fixed order are used, so the value for bar i
is bit-identical whether it is computed in ``prepare()`` over a million bars or in
``decide()`` over the last few — the fast backtest and a bar-by-bar run agree exactly.
"""

from __future__ import annotations

import numpy as np


def sma(values: np.ndarray, window: int) -> np.ndarray:
    """Simple moving average; NaN for the first ``window - 1`` bars.

    Each window is summed left to right (``((v0 + v1) + v2) + ...``) with one vector
    add per lag, which costs ``window`` passes but never depends on the series length.
    """
    n = int(values.size)
    out = np.full(n, np.nan)
    if n < window:
        return out
    m = n - window + 1
    acc = np.array(values[0:m], dtype=np.float64, copy=True)
    for k in range(1, window):
        acc += values[k : k + m]
    out[window - 1 :] = acc / window
    return out


def crossings(fast: np.ndarray, slow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(up, down) boolean arrays: bar i has ``fast`` crossing above / below ``slow``.

    Up at i means fast[i] > slow[i] and fast[i-1] <= slow[i-1] (down mirrored); a bar
    with any NaN input never crosses, and bar 0 never does.
    """
    up = np.zeros(fast.size, dtype=bool)
    down = np.zeros(fast.size, dtype=bool)
    if fast.size > 1:
        up[1:] = (fast[1:] > slow[1:]) & (fast[:-1] <= slow[:-1])
        down[1:] = (fast[1:] < slow[1:]) & (fast[:-1] >= slow[:-1])
    return up, down
