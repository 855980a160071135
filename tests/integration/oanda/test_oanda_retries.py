"""INT-06 against the stub: backoff on 429/5xx/timeouts, no retry on 400/401/403/404, and
lookups by client id after ambiguous failures so an order is never placed twice."""

from __future__ import annotations

import logging
import time

import pytest

from engine.errors import BrokerError, NotFound, TemporaryError
from engine.types import OrderStatus


def _open(broker, cid="cid-r"):
    return broker.open_order({"symbol": "EURUSD", "side": "buy", "quantity": 1000, "client_order_id": cid})


def test_storm_of_429_503_and_timeouts_on_a_read_then_success(oanda_stub, caplog):
    oanda_stub.state.slow_s = 0.8
    oanda_stub.state.script("summary", 429, 503, "stall", 502, 429)
    broker = oanda_stub.broker(timeout_s=0.3, max_retries=6)

    with caplog.at_level(logging.WARNING, logger="engine.brokers._oanda_transport"):
        summary = broker.account_summary()

    assert summary["account_id"] == oanda_stub.account_id
    assert oanda_stub.state.count("summary") == 6  # five failures, then the answer
    retry_lines = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retry_lines) == 5
    assert "HTTP 429" in retry_lines[0].getMessage() and "timed out" in retry_lines[2].getMessage()


def test_backoff_sleeps_stay_under_the_exponential_caps(oanda_stub, caplog):
    # full jitter: sleep n is uniform in [0, min(backoff * 2**(n-1), backoff_max)]
    oanda_stub.state.script("pricing", 503, 503, 503, 503)
    broker = oanda_stub.broker(backoff=0.01, backoff_max=0.05, max_retries=4)
    with caplog.at_level(logging.WARNING, logger="engine.brokers._oanda_transport"):
        broker.get_price("EURUSD")
    lines = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    sleeps = [float(line.rsplit("retrying in ", 1)[1].rstrip("s")) for line in lines]
    assert len(sleeps) == 4 and oanda_stub.state.count("pricing") == 5
    caps = [min(0.01 * 2 ** n, 0.05) for n in range(4)]
    assert all(0 <= s <= cap + 0.0005 for s, cap in zip(sleeps, caps)), (sleeps, caps)


def test_storm_on_order_create_ends_with_exactly_one_order(oanda_stub):
    oanda_stub.state.script("order_create", 429, 503, 429)
    broker = oanda_stub.broker()

    result = _open(broker)

    assert result.success and result.status is OrderStatus.OPEN
    assert len(oanda_stub.state.orders_for_client_id("cid-r")) == 1
    # after the 503 (ambiguous) the broker looked the order up before resending
    assert oanda_stub.state.count("order_get") == 1


def test_retries_run_out_with_a_clear_temporary_error(oanda_stub):
    oanda_stub.state.script("open_trades", *([503] * 10))
    broker = oanda_stub.broker(max_retries=2)
    with pytest.raises(TemporaryError, match=r"list open trades failed with HTTP 503.*gave up after 3 attempts"):
        broker.get_open_orders()
    assert oanda_stub.state.count("open_trades") == 3


@pytest.mark.parametrize("status", [400, 404])
def test_400_and_404_on_an_order_are_rejections_without_retry(oanda_stub, status):
    oanda_stub.state.script("order_create", status, 503)
    broker = oanda_stub.broker()
    result = _open(broker)
    assert not result.success and result.status is OrderStatus.REJECTED
    assert f"HTTP {status}" in (result.reason or "")
    assert oanda_stub.state.count("order_create") == 1
    assert oanda_stub.state.orders_for_client_id("cid-r") == []


def test_401_is_a_broker_error_at_once(oanda_stub):
    broker = oanda_stub.broker(access_token="not-the-right-token")
    with pytest.raises(BrokerError, match="HTTP 401.*access_token.*OANDA_ACCESS_TOKEN"):
        broker.account_summary()
    with pytest.raises(BrokerError, match="HTTP 401"):
        _open(broker)
    assert oanda_stub.state.count("summary") == 1 and oanda_stub.state.count("order_create") == 1


def test_403_wrong_account_is_a_broker_error_at_once(oanda_stub):
    broker = oanda_stub.broker(account_id="101-000-0000000-999")
    with pytest.raises(BrokerError, match="HTTP 403.*account_id"):
        broker.get_open_orders()
    assert len(oanda_stub.state.requests) == 1


def test_404_on_a_read_is_not_found_without_retry(oanda_stub):
    oanda_stub.state.script("pricing", 404)
    broker = oanda_stub.broker()
    with pytest.raises(NotFound, match="HTTP 404"):
        broker.get_price("EURUSD")
    assert oanda_stub.state.count("pricing") == 1


@pytest.mark.parametrize("fault", ["drop", "process_then_500", "slow"])
def test_ambiguous_failure_after_the_fill_is_looked_up_never_resent(oanda_stub, fault):
    oanda_stub.state.slow_s = 0.8
    oanda_stub.state.script("order_create", fault)
    broker = oanda_stub.broker(timeout_s=0.3)

    result = _open(broker)

    [order] = oanda_stub.state.orders_for_client_id("cid-r")  # exactly one order at OANDA
    assert order["state"] == "FILLED"
    assert oanda_stub.state.count("order_create") == 1
    assert oanda_stub.state.count("order_get") == 1
    assert result.success and result.position_id == order["tradeOpenedID"]
    assert result.order_id == order["id"]
    assert result.entry_price == oanda_stub.state.prices["EUR_USD"][1]


def test_ambiguous_failure_before_oanda_saw_the_order_resends_once(oanda_stub):
    # a 502 from a proxy in front of OANDA: nothing was placed, so the lookup finds nothing
    oanda_stub.state.script("order_create", 502)
    broker = oanda_stub.broker()
    result = _open(broker)
    assert result.success
    assert len(oanda_stub.state.orders_for_client_id("cid-r")) == 1
    assert oanda_stub.state.count("order_create") == 2 and oanda_stub.state.count("order_get") == 1


def test_a_stalled_request_that_lands_after_the_timeout_is_found_not_duplicated(oanda_stub):
    # the server holds the request past the client's timeout and only then places it
    oanda_stub.state.slow_s = 0.45
    oanda_stub.state.script("order_create", "stall")
    broker = oanda_stub.broker(timeout_s=0.3)
    started = time.monotonic()
    result = _open(broker)
    time.sleep(max(0.0, started + 0.6 - time.monotonic()))  # let the stalled request land
    assert result.success
    [order] = oanda_stub.state.orders_for_client_id("cid-r")
    assert result.position_id == order["tradeOpenedID"]


def test_an_order_still_pending_at_oanda_is_waited_for(oanda_stub):
    # the order stays PENDING for 0.7 s: the client times out, the lookup sees PENDING,
    # waits, and reports the fill; a resend would have been refused by OANDA anyway
    oanda_stub.state.fill_delay_s = 0.7
    broker = oanda_stub.broker(timeout_s=0.3, backoff=0.1, backoff_max=0.3, max_retries=8)
    result = _open(broker)
    [order] = oanda_stub.state.orders_for_client_id("cid-r")
    assert result.success and result.position_id == order["tradeOpenedID"]
    assert oanda_stub.state.count("order_create") == 1


def test_unknown_state_after_exhausted_retries_is_resolved_on_the_next_call(oanda_stub):
    oanda_stub.state.script("order_create", "process_then_500")
    oanda_stub.state.script("order_get", 503, 503, 503)
    broker = oanda_stub.broker(max_retries=2)

    with pytest.raises(TemporaryError, match="state at OANDA is unknown.*find_order"):
        _open(broker)

    # same client id again: the broker looks up first and finds the filled order
    result = _open(broker)
    assert result.success
    assert len(oanda_stub.state.orders_for_client_id("cid-r")) == 1
    assert oanda_stub.state.count("order_create") == 1


def test_find_order_reconciles_after_a_restart(oanda_stub):
    first = oanda_stub.broker()
    placed = _open(first)
    restarted = oanda_stub.broker()  # no memory of the first instance

    found = restarted.find_order("cid-r")

    assert found is not None and found.position_id == placed.position_id
    assert found.entry_price == placed.entry_price
    assert restarted.find_order("never-sent") is None


def test_ambiguous_close_is_looked_up_not_repeated(oanda_stub):
    broker = oanda_stub.broker()
    opened = _open(broker)
    oanda_stub.state.set_price("EUR_USD", "1.10220", "1.10240")
    oanda_stub.state.script("trade_close", "drop")

    closed = broker.close_order({"position_id": opened.position_id})

    assert closed.success and closed.pnl == pytest.approx(2) and closed.close_price is not None
    assert oanda_stub.state.count("trade_close") == 1
    assert oanda_stub.state.balance == 100000 + 2  # closed once, not twice


def test_ambiguous_partial_close_is_found_in_the_transactions(oanda_stub):
    broker = oanda_stub.broker()
    opened = broker.open_order({"symbol": "EURUSD", "side": "buy", "quantity": 3000, "client_order_id": "p"})
    oanda_stub.state.script("trade_close", "process_then_500")

    closed = broker.close_order({"position_id": opened.position_id, "quantity": 1000})

    assert closed.success and closed.quantity == 1000
    [position] = broker.get_open_orders()
    assert position.quantity == 2000  # reduced once, not twice
    assert oanda_stub.state.count("trade_close") == 1


def test_no_connection_at_all_is_a_temporary_error(oanda_stub):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    broker = oanda_stub.broker(f"127.0.0.1:{port}", api_url=f"http://127.0.0.1:{port}", max_retries=1)
    with pytest.raises(TemporaryError, match="lost its connection.*gave up after 2 attempts"):
        broker.get_open_orders()
