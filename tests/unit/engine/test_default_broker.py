"""default_broker: immediate Decimal fills, idempotency, fault injection only when asked."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from engine.brokers.default_broker import DefaultBroker
from engine.errors import ConfigError, TemporaryError
from engine.types import OrderStatus

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)


def broker(**params: object) -> DefaultBroker:
    return DefaultBroker(params, clock=lambda: T0)


def test_open_and_close_at_given_prices_with_exact_decimal_pnl() -> None:
    b = broker(commission_per_order=0.1)
    opened = b.execute_order("open", {"side": "sell", "quantity": 3, "price": 0.3, "client_order_id": "o1"})
    assert opened.success and opened.status == OrderStatus.OPEN
    assert opened.entry_price == Decimal("0.3") and opened.timestamp == T0
    closed = b.execute_order("close", {"position_id": opened.position_id, "price": "0.1", "client_order_id": "c1"})
    # (0.1 - 0.3) x 3 x -1 = 0.6, minus 0.1 commission on each side: exactly 0.4, no float drift.
    assert closed.pnl == Decimal("0.4") and closed.close_price == Decimal("0.1")
    assert b.account_summary()["balance"] == Decimal("10000.4")
    assert b.get_open_orders() == [] and b.closed_positions()[0].realized_pnl == Decimal("0.4")


def test_fills_at_the_last_price_fed_and_uses_bar_time() -> None:
    b = broker()
    assert not b.execute_order("open", {"side": "buy", "quantity": 1}).success  # no price yet
    bar_time = datetime(2024, 5, 6, 7, 0, tzinfo=timezone.utc)
    b.on_bar(0, bar_time, 1.2, 1.3, 1.1, 1.25)
    opened = b.execute_order("open", {"side": "buy", "quantity": 2})
    assert opened.entry_price == Decimal("1.25") and opened.timestamp == bar_time
    b.set_price("1.5")
    (view,) = b.get_open_orders()
    assert view.unrealized_pnl == Decimal("0.50")


def test_repeated_client_order_id_returns_the_first_result() -> None:
    b = broker()
    first = b.execute_order("open", {"side": "buy", "quantity": 1, "price": 1, "client_order_id": "same"})
    assert b.execute_order("open", {"side": "buy", "quantity": 1, "price": 2, "client_order_id": "same"}) == first
    assert len(b.get_open_orders()) == 1


def test_no_faults_unless_configured() -> None:
    b = broker()
    results = [b.execute_order("open", {"side": "buy", "quantity": 1, "price": 1}) for _ in range(200)]
    assert all(r.success for r in results)


def test_fail_every_n_rejects_every_nth_order() -> None:
    b = broker(fail_every_n=3)
    ok = [b.execute_order("open", {"side": "buy", "quantity": 1, "price": 1, "client_order_id": str(i)}).success
          for i in range(9)]
    assert ok == [True, True, False] * 3
    again = b.execute_order("open", {"side": "buy", "quantity": 1, "price": 1, "client_order_id": "2"})
    assert not again.success and "injected fault on order #3" in again.reason  # a rejection is final


def test_fail_probability_is_reproducible_with_a_seed() -> None:
    def pattern(seed: int) -> list[bool]:
        b = broker(fail_probability=0.3, fail_seed=seed)
        return [b.execute_order("open", {"side": "buy", "quantity": 1, "price": 1}).success for _ in range(100)]

    assert pattern(1) == pattern(1)
    assert pattern(1) != pattern(2)
    assert 15 <= pattern(1).count(False) <= 45


def test_raise_mode_raises_a_temporary_error_and_a_retry_executes_once() -> None:
    b = broker(fail_every_n=2, fail_mode="raise")
    assert b.execute_order("open", {"side": "buy", "quantity": 1, "price": 1, "client_order_id": "a"}).success
    with pytest.raises(TemporaryError, match="injected fault on order #2"):
        b.execute_order("open", {"side": "buy", "quantity": 1, "price": 1, "client_order_id": "b"})
    retried = b.execute_order("open", {"side": "buy", "quantity": 1, "price": 1, "client_order_id": "b"})
    assert retried.success
    assert b.execute_order("open", {"side": "buy", "quantity": 1, "price": 1, "client_order_id": "b"}) == retried
    assert len(b.get_open_orders()) == 2


def test_modify_sets_levels_and_bad_orders_name_the_parameter() -> None:
    b = broker()
    pid = b.execute_order("open", {"side": "buy", "quantity": 1, "price": 1}).position_id
    assert b.execute_order("modify", {"position_id": pid, "sl": "0.9", "tp": 1.2}).success
    (view,) = b.get_open_orders()
    assert (view.sl, view.tp) == (Decimal("0.9"), Decimal("1.2"))
    assert "parameters.quantity" in b.execute_order("open", {"side": "buy", "quantity": 0, "price": 1}).reason
    assert "'P77' is not open" in b.execute_order("close", {"position_id": "P77"}).reason


@pytest.mark.parametrize(
    ("params", "message"),
    [({"fail_mode": "explode"}, "'fail_mode' must be one of"), ({"fail_probability": 2}, "within \\[0, 1\\]"),
     ({"fail_every_n": -1}, "'fail_every_n' must be >= 0")],
)
def test_bad_configuration_names_the_key(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DefaultBroker(params)
