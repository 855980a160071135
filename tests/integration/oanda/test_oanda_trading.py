"""OandaBroker against the stateful OANDA v20 stub: the trading round trip and the reads."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.types import OrderStatus, Side


@pytest.fixture
def broker(oanda_stub):
    b = oanda_stub.broker()
    yield b
    b.close()


def _open(broker, cid="cid-1", **extra):
    params = {"symbol": "EURUSD", "side": "buy", "quantity": 1000, "client_order_id": cid}
    params.update(extra)
    return broker.execute_order("open", params)


def test_open_sends_a_market_order_with_sl_tp_and_client_extensions(broker, oanda_stub):
    result = _open(broker, sl=1.09, tp="1.12")

    assert result.success and result.status is OrderStatus.OPEN
    assert result.entry_price == Decimal("1.10020")  # the stub's ask: a buy fills at ask
    assert isinstance(result.entry_price, Decimal) and result.quantity == Decimal("1000")
    assert result.timestamp is not None and result.timestamp.tzinfo is not None
    [order] = oanda_stub.state.orders_for_client_id("cid-1")
    assert order["instrument"] == "EUR_USD" and order["units"] == "1000"
    assert order["type"] == "MARKET" and order["timeInForce"] == "FOK"
    assert order["stopLossOnFill"]["price"] == "1.09000"
    assert order["takeProfitOnFill"]["price"] == "1.12000"
    assert order["clientExtensions"]["id"] == "cid-1" and order["clientExtensions"]["tag"] == "lts"
    assert order["tradeClientExtensions"]["id"] == "cid-1"
    assert result.order_id == order["id"] and result.position_id == order["tradeOpenedID"]


def test_sell_units_are_negative_and_fill_at_bid(broker, oanda_stub):
    result = _open(broker, side="sell", quantity=2500)
    [order] = oanda_stub.state.orders_for_client_id("cid-1")
    assert order["units"] == "-2500"
    assert result.side is Side.SELL and result.entry_price == Decimal("1.10000")


def test_units_per_quantity_turns_lots_into_units(oanda_stub):
    broker = oanda_stub.broker(units_per_quantity=100000)
    result = _open(broker, quantity="0.01")
    assert oanda_stub.state.orders_for_client_id("cid-1")[0]["units"] == "1000"
    assert result.quantity == Decimal("0.01")


def test_repeated_client_order_id_returns_the_first_result_without_a_request(broker, oanda_stub):
    first = _open(broker)
    creates = oanda_stub.state.count("order_create")
    second = _open(broker, quantity=5000)
    assert second == first
    assert oanda_stub.state.count("order_create") == creates
    assert len(oanda_stub.state.orders_for_client_id("cid-1")) == 1


def test_open_trades_reflect_sl_tp_and_unrealized_pnl(broker, oanda_stub):
    opened = _open(broker, sl=1.09, tp=1.12)
    oanda_stub.state.set_price("EUR_USD", "1.10120", "1.10140")

    [position] = broker.get_open_orders()

    assert position.position_id == opened.position_id
    assert position.symbol == "EURUSD" and position.side is Side.BUY and position.is_open
    assert position.entry_price == Decimal("1.10020")
    assert position.sl == Decimal("1.09000") and position.tp == Decimal("1.12000")
    # (bid 1.10120 - entry 1.10020) * 1000 units
    assert position.unrealized_pnl == Decimal("1.0000")


def test_modify_sets_and_removes_stop_loss_and_take_profit(broker, oanda_stub):
    opened = _open(broker, sl=1.09, tp=1.12)

    result = broker.execute_order("modify", {"position_id": opened.position_id, "sl": 1.095, "tp": 1.13})
    assert result.success
    [position] = broker.get_open_orders()
    assert position.sl == Decimal("1.09500") and position.tp == Decimal("1.13000")

    broker.modify_order({"position_id": opened.position_id, "tp": None})
    [position] = broker.get_open_orders()
    assert position.tp is None and position.sl == Decimal("1.09500")


def test_modify_of_an_unknown_trade_is_rejected(broker):
    result = broker.modify_order({"position_id": "999999", "sl": 1.0})
    assert not result.success and result.status is OrderStatus.REJECTED
    assert "999999" in (result.reason or "")


def test_close_realises_pnl_at_the_bid_and_updates_the_account(broker, oanda_stub):
    opened = _open(broker)
    oanda_stub.state.set_price("EUR_USD", "1.10520", "1.10540")

    closed = broker.execute_order("close", {"position_id": opened.position_id, "client_order_id": "close-1"})

    assert closed.success and closed.status is OrderStatus.FILLED
    assert closed.close_price == Decimal("1.10520")
    assert closed.pnl == Decimal("5.0000")  # (1.10520 - 1.10020) * 1000
    assert broker.get_open_orders() == []
    summary = broker.account_summary()
    assert summary["balance"] == Decimal("100005.0000")
    assert summary["open_trade_count"] == 0 and summary["currency"] == "USD"
    [history] = broker.get_trade_history()
    assert history.position_id == opened.position_id and not history.is_open
    assert history.realized_pnl == Decimal("5.0000") and history.current_price == Decimal("1.10520")


def test_partial_close_reduces_the_trade(broker, oanda_stub):
    opened = _open(broker, quantity=3000)
    closed = broker.close_order({"position_id": opened.position_id, "quantity": 1000})
    assert closed.success and closed.quantity == Decimal("1000")
    [position] = broker.get_open_orders()
    assert position.quantity == Decimal("2000")


def test_closing_an_already_closed_trade_reports_the_existing_close(broker, oanda_stub):
    opened = _open(broker)
    first = broker.close_order({"position_id": opened.position_id})
    again = broker.close_order({"position_id": opened.position_id})
    assert again.success and again.reason == "already closed"
    assert again.close_price == first.close_price and again.pnl == first.pnl
    assert oanda_stub.state.count("trade_close") == 2  # the second was refused by OANDA


def test_close_of_an_unknown_trade_is_rejected(broker):
    result = broker.close_order({"position_id": "424242"})
    assert not result.success and result.status is OrderStatus.REJECTED
    assert "NO_SUCH_TRADE" in (result.reason or "")


def test_account_summary_and_pricing_are_decimals(broker, oanda_stub):
    _open(broker)
    summary = broker.account_summary()
    assert summary["account_id"] == oanda_stub.account_id
    assert summary["open_trade_count"] == 1
    assert all(isinstance(summary[k], Decimal) for k in ("balance", "NAV", "marginUsed", "marginAvailable"))
    assert summary["NAV"] == summary["balance"] + summary["unrealizedPL"]

    quote = broker.get_price("USD/JPY")
    assert quote["bid"] == Decimal("150.000") and quote["ask"] == Decimal("150.020")
    assert quote["mid"] == Decimal("150.010") and quote["symbol"] == "USDJPY"


def test_transactions_since_an_id_list_the_fill(broker, oanda_stub):
    opened = _open(broker)
    txs = broker.get_transactions(0)
    fills = [t for t in txs if t["type"] == "ORDER_FILL"]
    assert [f["tradeOpened"]["tradeID"] for f in fills] == [opened.position_id]
    assert broker.get_transactions(txs[-1]["id"]) == []


def test_oanda_cancelling_for_margin_is_a_rejection_not_an_error(broker, oanda_stub):
    result = _open(broker, quantity=500_000_000)
    assert not result.success and result.status is OrderStatus.REJECTED
    assert "INSUFFICIENT_MARGIN" in (result.reason or "")
    assert broker.get_open_orders() == []


def test_stop_loss_on_the_wrong_side_is_cancelled_by_oanda(broker):
    result = _open(broker, sl=1.2)  # a buy's stop above the fill price
    assert not result.success and "STOP_LOSS_ON_FILL_LOSS" in (result.reason or "")


def test_jpy_prices_are_sent_with_three_decimals(broker, oanda_stub):
    result = _open(broker, symbol="USDJPY", sl=149.12345)
    assert result.success
    order = oanda_stub.state.orders_for_client_id("cid-1")[0]
    assert order["stopLossOnFill"]["price"] == "149.123"


def test_execute_order_rejects_unknown_actions_and_bad_parameters(broker):
    from engine.errors import DomainError

    with pytest.raises(DomainError, match="unknown action 'flip'"):
        broker.execute_order("flip", {})
    with pytest.raises(DomainError, match="side must be 'buy' or 'sell'"):
        _open(broker, side="long")
    with pytest.raises(DomainError, match="quantity"):
        _open(broker, quantity=-1)
    with pytest.raises(DomainError, match="position_id"):
        broker.execute_order("close", {})
    with pytest.raises(DomainError, match="cannot map symbol 'GOLD'"):
        _open(broker, symbol="GOLD")


def test_sl_tp_distances_from_strategies_are_measured_from_the_fill(broker, oanda_stub):
    result = _open(broker, sl_distance=0.001, tp_distance="0.0025")
    order = oanda_stub.state.orders_for_client_id("cid-1")[0]
    assert order["stopLossOnFill"]["distance"] == "0.00100"
    [position] = broker.get_open_orders()
    assert position.entry_price == Decimal("1.10020")
    assert position.sl == Decimal("1.09920") and position.tp == Decimal("1.10270")
    assert result.success


def test_a_level_and_a_distance_for_the_same_exit_is_refused(broker, oanda_stub):
    from engine.errors import DomainError

    with pytest.raises(DomainError, match="sl or sl_distance, not both"):
        _open(broker, sl=1.09, sl_distance=0.001)
    assert oanda_stub.state.count("order_create") == 0


def test_a_sell_stop_below_the_fill_is_cancelled_by_oanda(broker):
    result = _open(broker, side="sell", sl=1.09)
    assert not result.success and "STOP_LOSS_ON_FILL_LOSS" in (result.reason or "")
    assert _open(broker, cid="cid-2", side="sell", sl=1.11).success
