"""Figures as they leave the engine, with float arithmetic's last-digit noise rounded off.

The simulation runs in float64 for speed. Sums and differences of prices and costs pick
up noise in the 15th to 17th significant digit: a P&L of 59.2 comes out as
59.19999999999909, an entry price of 1.43626 as 1.4362599999999999. Reports, the
database and the API show these values, and a user reads that noise as money that
drifted, so every figure is rounded once, where it is written out:

- money in the account currency (P&L, costs, equity): 8 decimal places, far below any
  currency's minor unit, and never more than 15 significant digits;
- prices and quantities: 15 significant digits, the precision a float64 holds for any
  decimal number;
- ratios (returns, Sharpe, win rate, durations in days, ...): 12 significant digits;
- counts: integers.

Rounding moves a value by at most half a unit of the last digit kept, and rounding a
rounded value again changes nothing. The scalar functions (statistics) round the exact
binary value; the array functions (trade columns, thousands of values a run) scale by
a power of ten first, so for a value within a hair of a tie the two may differ by one
unit in the last digit kept. NaN and infinities pass through unchanged.
"""

from __future__ import annotations

import math

import numpy as np

MONEY_DECIMALS = 8
PRICE_DIGITS = 15
RATIO_DIGITS = 12


def round_significant(value: float, digits: int) -> float:
    """``value`` rounded to ``digits`` significant digits (correctly rounded)."""
    value = float(value)
    if not math.isfinite(value) or value == 0.0:
        return value
    return float(f"{value:.{digits}g}")


def round_money(value: float) -> float:
    """An amount of money: 8 decimal places, at most 15 significant digits."""
    value = float(value)  # ``round`` on a numpy scalar is not correctly rounded
    if not math.isfinite(value):
        return value
    return round_significant(round(value, MONEY_DECIMALS), PRICE_DIGITS)


def round_price(value: float) -> float:
    """A price or a quantity: 15 significant digits."""
    return round_significant(value, PRICE_DIGITS)


def round_ratio(value: float) -> float:
    """A dimensionless figure (a return, a ratio, a fraction of time): 12 significant digits."""
    return round_significant(value, RATIO_DIGITS)


def _round_decimals_array(values: np.ndarray, decimals: np.ndarray) -> np.ndarray:
    """``values`` rounded to ``decimals`` places (per element; may be negative).

    Multiplying or dividing by an exact power of ten (10**k is exact for k <= 22) keeps
    the result the float nearest to the rounded decimal, as ``round`` gives it."""
    out = values.copy()
    up = (decimals >= 0) & (decimals <= 22)
    down = (decimals < 0) & (decimals >= -22)
    scale = 10.0 ** np.abs(decimals)
    out[up] = np.rint(values[up] * scale[up]) / scale[up]
    out[down] = np.rint(values[down] / scale[down]) * scale[down]
    rest = np.flatnonzero(~(up | down))  # beyond 10**22 (values below about 1e-8): rare
    if rest.size:
        # Python floats: ``round`` on a numpy scalar is not correctly rounded.
        out[rest] = [round(v, d) for v, d in zip(values[rest].tolist(), decimals[rest].tolist())]
    return out


def round_significant_array(values: np.ndarray, digits: int) -> np.ndarray:
    """The array form of :func:`round_significant` (a new float64 array)."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values) & (values != 0.0)
    magnitude = np.zeros(values.shape, dtype=np.int64)
    magnitude[finite] = np.floor(np.log10(np.abs(values[finite]))).astype(np.int64)
    decimals = np.where(finite, digits - 1 - magnitude, 0)
    return _round_decimals_array(values, decimals)


def round_money_array(values: np.ndarray) -> np.ndarray:
    """The array form of :func:`round_money`."""
    values = np.asarray(values, dtype=np.float64)
    fixed = _round_decimals_array(values, np.full(values.shape, MONEY_DECIMALS, dtype=np.int64))
    return round_significant_array(fixed, PRICE_DIGITS)


def round_price_array(values: np.ndarray) -> np.ndarray:
    """The array form of :func:`round_price`."""
    return round_significant_array(values, PRICE_DIGITS)
