"""backtrader_simulation_broker driven bar by bar, as the actor runtime drives it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.brokers.simulation_broker import BacktraderSimulationBroker
from engine.errors import ConfigError, DataError
from engine.plugins.loader import create_plugin
from engine.types import OrderStatus
from tests.unit.engine._factories import HOUR_NS, START_NS

ADJ = 0.0002  # half spread + slippage with the seed's defaults


def feed(broker: BacktraderSimulationBroker, i: int, o: float, h: float | None = None,
         l: float | None = None, c: float | None = None) -> list:
    h = o + 0.0005 if h is None else h
    l = o - 0.0005 if l is None else l
    c = o if c is None else c
    return broker.on_bar(i, START_NS + i * HOUR_NS, o, h, l, c)


def test_defaults_are_the_seeds_and_loadable_by_name() -> None:
    broker = create_plugin("broker", "backtrader_simulation_broker", {"leverage": 50})
    assert isinstance(broker, BacktraderSimulationBroker)
    p = broker.params
    assert (p["initial_cash"], p["spread_pips"], p["commission_per_lot"], p["slippage_pips"]) == (10_000.0, 2.0, 7.0, 1.0)
    assert (p["swap_per_lot_per_day"], p["pip_size"], p["lot_size"], p["leverage"]) == (10.0, 0.0001, 100_000.0, 50)


def test_order_queues_then_fills_at_the_next_open() -> None:
    broker = BacktraderSimulationBroker()
    feed(broker, 0, 1.1000)
    queued = broker.execute_order("open", {"side": "buy", "quantity": 100_000, "client_order_id": "a-1"})
    assert queued.success and queued.status == OrderStatus.PENDING and queued.entry_price is None
    assert [p.side for p in broker.positions_for_strategy()] == ["buy"]  # strategies see it already
    assert broker.get_open_orders() == []
    fills = feed(broker, 1, 1.1010)
    (fill,) = fills
    assert fill.status == OrderStatus.OPEN and fill.client_order_id == "a-1"
    assert fill.entry_price == Decimal("1.1012") and fill.commission == Decimal("7")
    closing = broker.execute_order("close", {"position_id": fill.position_id, "client_order_id": "a-2"})
    assert closing.status == OrderStatus.PENDING
    assert broker.positions_for_strategy() == ()  # a queued close hides the position
    (closed,) = feed(broker, 2, 1.1030)
    assert closed.status == OrderStatus.FILLED and closed.close_price == Decimal("1.1028")
    assert closed.pnl == Decimal("146")  # 1 lot x 16 pips - 2 x 7 commission, no float noise
    (trade,) = broker.trade_history()
    assert trade.exit_reason == "signal" and trade.pnl == pytest.approx(146.0)
    assert broker.account_summary()["balance"] == Decimal("10146")


def test_repeated_client_order_id_returns_the_first_result() -> None:
    broker = BacktraderSimulationBroker()
    feed(broker, 0, 1.1)
    first = broker.execute_order("open", {"side": "sell", "quantity": 1_000, "client_order_id": "x"})
    again = broker.execute_order("open", {"side": "sell", "quantity": 1_000, "client_order_id": "x"})
    assert again == first
    feed(broker, 1, 1.1)
    assert len(broker.get_open_orders()) == 1


def test_margin_check_rejects_with_the_reason() -> None:
    broker = BacktraderSimulationBroker()
    feed(broker, 0, 1.1)
    result = broker.execute_order("open", {"side": "buy", "quantity": 1_000_000, "client_order_id": "big"})
    assert not result.success and result.status == OrderStatus.REJECTED
    assert "insufficient margin" in result.reason and "11000.00" in result.reason
    # A queued open uses margin too: two 500k orders (5,500 each) do not both fit in 10,000.
    assert broker.execute_order("open", {"side": "buy", "quantity": 500_000}).success
    assert not broker.execute_order("open", {"side": "buy", "quantity": 500_000}).success
    assert broker.rejected_orders == 2


@pytest.mark.parametrize(
    ("action", "params", "reason"),
    [
        ("open", {"quantity": 1}, "parameters.side is missing"),
        ("open", {"side": "up", "quantity": 1}, "parameters.side must be 'buy' or 'sell'"),
        ("open", {"side": "buy", "quantity": -3}, "parameters.quantity must be a finite number > 0"),
        ("open", {"side": "buy"}, "parameters.quantity is missing"),
        ("close", {"position_id": "P404"}, "position 'P404' is not open"),
        ("close", {}, "parameters.position_id is missing"),
        ("teleport", {}, "unknown action 'teleport'"),
    ],
)
def test_bad_orders_are_rejected_naming_the_parameter(action: str, params: dict, reason: str) -> None:
    broker = BacktraderSimulationBroker()
    feed(broker, 0, 1.1)
    result = broker.execute_order(action, params)
    assert not result.success and reason in result.reason


def test_orders_before_any_price_are_rejected() -> None:
    result = BacktraderSimulationBroker().execute_order("open", {"side": "buy", "quantity": 1})
    assert not result.success and "on_bar" in result.reason


def test_stop_and_target_from_distances_and_modify() -> None:
    broker = BacktraderSimulationBroker({"spread_pips": 0, "slippage_pips": 0})
    feed(broker, 0, 1.1000)
    broker.execute_order("open", {"side": "buy", "quantity": 10_000, "sl_distance": 0.0020, "tp_distance": 0.0040})
    (fill,) = feed(broker, 1, 1.1000, l=1.0900)  # the entry bar's low is ignored
    (view,) = broker.get_open_orders()
    assert (view.sl, view.tp) == (Decimal("1.098"), Decimal("1.104"))
    assert broker.modify_order({"position_id": fill.position_id, "tp": 1.1010}).success
    (closed,) = feed(broker, 2, 1.1005, h=1.1015)
    assert closed.reason == "tp" and closed.close_price == Decimal("1.101")


def test_fill_on_current_fills_at_once_at_the_close() -> None:
    broker = BacktraderSimulationBroker({"fill_on": "current"})
    feed(broker, 0, 1.1000, c=1.1003)
    opened = broker.execute_order("open", {"side": "buy", "quantity": 10_000})
    assert opened.status == OrderStatus.OPEN and opened.entry_price == Decimal("1.1005")
    closed = broker.execute_order("close", {"position_id": opened.position_id})
    assert closed.status == OrderStatus.FILLED and closed.close_price == Decimal("1.1001")
    assert closed.pnl == Decimal("-5.4")  # 0.1 lot x -4 pips - 2 x 0.7 commission


def test_account_summary_current_price_and_swap() -> None:
    broker = BacktraderSimulationBroker()
    assert broker.current_price() is None
    broker.on_bar(0, START_NS, 1.1, 1.1, 1.1, 1.1)
    broker.execute_order("open", {"side": "buy", "quantity": 100_000})
    broker.on_bar(1, START_NS + 1 * HOUR_NS, 1.1, 1.1, 1.1, 1.1)
    broker.on_bar(2, START_NS + 30 * HOUR_NS, 1.1, 1.1, 1.1, 1.1)  # next day
    summary = broker.account_summary()
    assert broker.current_price() == Decimal("1.1")
    assert summary["open_positions"] == 1 and summary["margin_used"] == Decimal("1100")
    # equity = cash - entry commission + P&L at 1.1 after paying 2 pips - one day of swap
    assert float(summary["equity"]) == pytest.approx(10_000 - 7 - 100_000 * 0.0002 - 10)
    (trade_result,) = broker.close_all()
    assert trade_result.swap == Decimal("10.0") and trade_result.reason == "end"


def test_bars_must_be_valid_and_in_order() -> None:
    broker = BacktraderSimulationBroker()
    with pytest.raises(DataError, match="bar 0.*low <= open"):
        broker.on_bar(0, START_NS, 1.1, 1.0, 1.2, 1.1)
    broker.on_bar(0, START_NS, 1.1, 1.2, 1.0, 1.1)
    with pytest.raises(DataError, match="does not come after"):
        broker.on_bar(1, START_NS, 1.1, 1.2, 1.0, 1.1)


@pytest.mark.parametrize(
    ("params", "message"),
    [({"spread_pips": -1}, "'spread_pips' must be >= 0"), ({"lot_size": "big"}, "'lot_size' must be a number"),
     ({"fill_on": "later"}, "'fill_on' must be one of")],
)
def test_bad_configuration_names_the_key(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BacktraderSimulationBroker(params)
