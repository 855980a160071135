"""DefaultPortfolio: equal weight unless weighted, Decimal, never more than total_capital."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.errors import ConfigError
from engine.portfolio.default_portfolio import DefaultPortfolio


def test_equal_weight_across_active_assets_only() -> None:
    plugin = DefaultPortfolio()
    assets = [
        {"id": 1, "symbol": "EURUSD", "is_active": True},
        {"id": 2, "symbol": "GOOG", "is_active": False},
        {"id": 3, "symbol": "GBPUSD", "is_active": True},
        {"id": 4, "symbol": "USDJPY", "is_active": True},
    ]
    allocation = plugin.allocate({"id": 9, "total_capital": "10000"}, assets)
    assert set(allocation) == {1, 3, 4}
    assert all(isinstance(v, Decimal) for v in allocation.values())
    # 10000 / 3 rounded down to cents: the sum never exceeds the capital.
    assert allocation[1] == Decimal("3333.33")
    assert sum(allocation.values()) <= Decimal("10000")


def test_configured_weights_by_symbol_and_per_asset() -> None:
    plugin = DefaultPortfolio({"weights": {"EURUSD": 3}})
    assets = [
        {"id": 1, "symbol": "EURUSD"},
        {"id": 2, "symbol": "GOOG", "allocation": {"weight": "1"}},
    ]
    allocation = plugin.allocate({"id": 1, "total_capital": 1000.10}, assets)
    assert allocation == {1: Decimal("750.07"), 2: Decimal("250.02")}


def test_float_capital_has_no_binary_drift() -> None:
    allocation = DefaultPortfolio().allocate({"id": 1, "total_capital": 0.3}, [{"id": "a"}])
    assert allocation == {"a": Decimal("0.30")}


def test_no_active_assets_gives_empty_allocation() -> None:
    assert DefaultPortfolio().allocate({"id": 1, "total_capital": 5}, []) == {}


@pytest.mark.parametrize(
    ("portfolio", "assets", "message"),
    [
        ({"id": 7, "total_capital": "-1"}, [{"id": 1}], "portfolio 7: total_capital must be >= 0"),
        ({"id": 7}, [{"id": 1}], "portfolio 7 total_capital: missing"),
        ({"id": 7, "total_capital": "lots"}, [{"id": 1}], "portfolio 7 total_capital: expected a number"),
        ({"id": 7, "total_capital": 10}, [{"id": 5, "weight": -2}], "asset 5: weight must be >= 0"),
        ({"id": 7, "total_capital": 10}, [{"id": 5, "weight": "x"}], "asset 5 weight: expected a number"),
    ],
)
def test_bad_input_names_what_is_wrong(portfolio, assets, message) -> None:
    with pytest.raises(ConfigError, match=message):
        DefaultPortfolio().allocate(portfolio, assets)
