"""Figures leave the engine without float noise: money, prices, ratios, counts."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest

from engine.backtest.rounding import (
    round_money,
    round_money_array,
    round_price,
    round_price_array,
    round_ratio,
    round_significant,
    round_significant_array,
)
from engine.backtest.stats import COUNT_STATS, MONEY_STATS, compute_stats


def significant_digits(value: float) -> int:
    """Significant digits of the shortest text that reads back as ``value``."""
    digits = Decimal(repr(value)).normalize().as_tuple().digits
    return len(digits)


def decimal_places(value: float) -> int:
    return max(0, -Decimal(repr(value)).normalize().as_tuple().exponent)  # type: ignore[operator]


@pytest.mark.parametrize(("noisy", "clean", "kind"), [
    (59.19999999999909, 59.2, "money"),          # a P&L from a price difference
    (11189.79999999994, 11189.8, "money"),       # an equity after 231 trades
    (256.20000000000005, 256.2, "money"),        # a sum of commissions
    (-33.3999999999987, -33.4, "money"),
    (1.4362599999999999, 1.43626, "price"),     # a close plus half a spread
    (1.4334800000000001, 1.43348, "price"),
    (3330.0000000000005, 3330.0, "price"),       # a quantity from a sizing rule
    (0.11897999999999387, 0.11898, "ratio"),     # a return computed from the equity
])
def test_noise_in_the_last_digits_is_rounded_off(noisy: float, clean: float, kind: str) -> None:
    rounder = {"money": round_money, "price": round_price, "ratio": round_ratio}[kind]
    assert rounder(noisy) == clean
    assert repr(rounder(noisy)) == repr(clean)


def test_money_keeps_eight_decimals_and_at_most_fifteen_digits() -> None:
    assert round_money(0.123456789123) == 0.12345679
    assert round_money(1.005e-9) == 0.0
    big = round_money(123456789.12345679)  # 17 digits: more than a float holds
    assert significant_digits(big) <= 15 and abs(big - 123456789.12345679) <= 5e-7


@pytest.mark.parametrize("special", [math.inf, -math.inf, 0.0, -0.0])
def test_infinities_and_zero_pass_through(special: float) -> None:
    for rounder in (round_money, round_price, round_ratio):
        assert rounder(special) == special
    assert round_money_array(np.array([special]))[0] == special
    assert round_price_array(np.array([special]))[0] == special


def test_nan_passes_through() -> None:
    assert math.isnan(round_money(math.nan)) and math.isnan(round_ratio(math.nan))
    assert np.isnan(round_price_array(np.array([math.nan]))).all()
    assert np.isnan(round_money_array(np.array([math.nan]))).all()


@pytest.mark.parametrize("digits", [12, 15])
def test_array_rounding_is_within_half_a_unit_and_idempotent(digits: int) -> None:
    rng = np.random.default_rng(7)
    values = rng.uniform(-1, 1, 20_000) * 10.0 ** rng.integers(-9, 13, 20_000)
    rounded = round_significant_array(values, digits)
    for x, r in zip(values.tolist(), rounded.tolist()):
        unit = 10.0 ** (math.floor(math.log10(abs(x))) - digits + 1)
        assert abs(r - x) <= 0.5 * unit + 2 * math.ulp(x), (x, r)  # the decimal, then the nearest float
        assert significant_digits(r) <= digits, (x, r)
    assert np.array_equal(round_significant_array(rounded, digits), rounded)
    # The scalar form rounds the exact binary value; away from ties both agree.
    agree = sum(a == round_significant(x, digits) for x, a in zip(values.tolist(), rounded.tolist()))
    assert agree >= 0.95 * values.size


def test_array_and_scalar_agree_on_the_values_a_backtest_makes() -> None:
    """Prices with at most 6 decimals, their differences times sizes, minus costs: the
    noise is far from a tie, so both forms give the same floats."""
    rng = np.random.default_rng(11)
    entry = rng.integers(90_000, 160_000, 5_000) / 1e5
    exit_ = entry + rng.integers(-900, 900, 5_000) / 1e5 + 0.00007
    pnl = (exit_ - entry) * 10_000 - 1.4
    assert round_price_array(exit_).tolist() == [round_price(v) for v in exit_.tolist()]
    assert round_money_array(pnl).tolist() == [round_money(v) for v in pnl.tolist()]
    assert all(decimal_places(v) <= 8 for v in round_money_array(pnl).tolist())
    noisy = sum(significant_digits(v) > 15 for v in pnl.tolist())
    assert noisy > 1000  # the raw values really carried the noise this removes


def test_compute_stats_reports_counts_as_integers_and_money_without_noise() -> None:
    rng = np.random.default_rng(3)
    pnl = np.round(rng.normal(0, 40, 300), 1) + 1e-13 * rng.normal(size=300)
    equity = 10_000.0 + np.cumsum(np.repeat(pnl, 10))
    times = np.arange(equity.size, dtype=np.int64) * 3_600_000_000_000
    costs = {"commission": 0.1 + 0.2 + 0.4, "swap": 1.1 * 3, "spread": 0.7 * 3, "slippage": 0.0}
    stats = compute_stats(equity, times, pnl, 10_000.0, costs, exposure_bars=1_500)
    for key in COUNT_STATS & stats.keys():
        assert type(stats[key]) is int, key
    assert stats["trades"] == 300 and stats["bars"] == 3_000
    for key in MONEY_STATS:
        assert decimal_places(stats[key]) <= 8 and significant_digits(stats[key]) <= 15, key
    assert stats["commission_paid"] == 0.7 and stats["swap_paid"] == 3.3
    assert stats["total_costs"] == 6.1
    for key, value in stats.items():
        if isinstance(value, float) and math.isfinite(value) and key not in MONEY_STATS:
            assert significant_digits(value) <= 12, key
    assert stats["final_equity"] == pytest.approx(float(equity[-1]), abs=5e-9)


def test_numpy_scalars_are_rounded_like_python_floats() -> None:
    for value in (59.19999999999909, 1.0699470414898493e-09, 0.11897999999999387):
        assert round_money(np.float64(value)) == round_money(value)
        assert round_ratio(np.float64(value)) == round_ratio(value)
        assert type(round_money(np.float64(value))) is float
