"""Pure OANDA conversions, checked against the example responses oandapyV20 ships."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from oandapyV20.endpoints.responses import trades as trade_examples

from engine.brokers import _oanda_mapping as m
from engine.errors import DomainError
from engine.types import OrderStatus, Side


@pytest.mark.parametrize(
    ("symbol", "instrument"),
    [("EURUSD", "EUR_USD"), ("eur/usd", "EUR_USD"), ("EUR_USD", "EUR_USD"), ("USD-JPY", "USD_JPY"), ("DE30_EUR", "DE30_EUR")],
)
def test_symbols_map_to_instruments(symbol, instrument):
    assert m.to_instrument(symbol) == instrument
    assert m.to_symbol(instrument) == instrument.replace("_", "")


@pytest.mark.parametrize("bad", ["GOLD", "EURUSDX", "", "EUR_"])
def test_unmappable_symbols_say_what_to_use(bad):
    with pytest.raises(DomainError, match="six-letter pair"):
        m.to_instrument(bad)


def test_prices_are_rounded_to_oanda_precision_without_float_drift():
    assert m.format_price(0.1 + 0.2, "EUR_USD", "sl") == "0.30000"
    assert m.format_price("1.234565", "EUR_USD", "tp") == "1.23456"  # half-even
    assert m.format_price(Decimal("151.23456"), "USD_JPY", "sl") == "151.235"
    with pytest.raises(DomainError, match="sl must be a positive price"):
        m.format_price(-1, "EUR_USD", "sl")
    with pytest.raises(DomainError, match="tp must be a number"):
        m.format_price("abc", "EUR_USD", "tp")


def test_units_are_signed_whole_numbers():
    assert m.to_units(1000, Side.BUY, Decimal(1)) == "1000"
    assert m.to_units("0.5", Side.SELL, Decimal(100000)) == "-50000"
    with pytest.raises(DomainError, match="whole units"):
        m.to_units("0.5", Side.BUY, Decimal(1))
    with pytest.raises(DomainError, match="quantity must be positive"):
        m.to_units(0, Side.BUY, Decimal(1))


def test_oanda_nanosecond_times_become_aware_utc():
    assert m.parse_time("2016-10-28T14:28:05.231759081Z") == datetime(
        2016, 10, 28, 14, 28, 5, 231759, tzinfo=timezone.utc
    )
    assert m.parse_time("2016-10-28T14:28:05Z") == datetime(2016, 10, 28, 14, 28, 5, tzinfo=timezone.utc)
    assert m.parse_time(None) is None


def test_open_trade_example_becomes_a_position_view():
    example = trade_examples.responses["_v3_accounts_accountID_trades"]["response"]["trades"][1]
    view = m.position_from_trade(example, Decimal(1))
    assert view.position_id == "2313" and view.symbol == "EURUSD"
    assert view.side is Side.BUY and view.quantity == Decimal("100")
    assert view.entry_price == Decimal("1.09448") and view.unrealized_pnl == Decimal("-0.0933")
    assert view.is_open and view.opened_at is not None and view.opened_at.tzinfo is not None


def test_trade_close_example_becomes_a_close_result():
    response = copy.deepcopy(trade_examples.responses["_v3_account_accountID_trades_close"]["response"])
    result = m.close_result_from_fill("c-1", "2313", response, Decimal(1))
    assert result.success and result.status is OrderStatus.FILLED
    assert result.close_price == Decimal("1.09289") and result.pnl == Decimal("-0.1455")
    assert result.quantity == Decimal("100") and result.side is Side.SELL
    assert result.client_order_id == "c-1"


def test_a_cancelled_close_is_a_rejection():
    result = m.close_result_from_fill(None, "1", {"orderCancelTransaction": {"reason": "MARKET_HALTED"}}, Decimal(1))
    assert not result.success and "MARKET_HALTED" in (result.reason or "")


def test_a_fill_becomes_an_open_result_in_lots():
    fill = {
        "units": "-250000", "price": "1.10000", "time": "2020-01-02T03:04:05.000000001Z",
        "commission": "1.5000", "tradeOpened": {"tradeID": "77", "units": "-250000", "price": "1.10001"},
    }
    result = m.open_result_from_fill("c", "76", fill, Decimal(100000))
    assert result.position_id == "77" and result.order_id == "76"
    assert result.side is Side.SELL and result.quantity == Decimal("2.5")
    assert result.entry_price == Decimal("1.10001") and result.commission == Decimal("1.5000")
