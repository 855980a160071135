"""Live mode: a wall-clock heartbeat with the broker's prices. An asset on the OANDA broker,
pointed at the real loopback OANDA v20 stub, gets the stub's price every heartbeat (a new
bar stamped with the wall clock), decides on it, and when the price jumps its order lands
at the stub once and in the database with the stub's fill."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from tests.integration.actors.engine_helpers import engine_config, running_engine, seed_portfolio, wait_for

pytestmark = pytest.mark.ray

HEARTBEAT_S = 0.25


def test_live_asset_trades_on_the_brokers_prices(ray_session, sqlite_store, sqlite_db_url, tmp_path: Path, oanda_stub):
    from persistence.records import PageRequest

    # Momentum over one bar: holds while the price is flat, buys when it steps up.
    portfolio_id, (asset_id,) = seed_portfolio(sqlite_store, [{
        "symbol": "EURUSD", "strategy_plugin": "default_strategy",
        "strategy_config": {"lookback": 1, "quantity": 1000.0},
        "broker_plugin": "oanda_broker", "broker_config": oanda_stub.broker_config()}], latency=HEARTBEAT_S)
    config = engine_config(sqlite_db_url, tmp_path, mode="live", global_latency=HEARTBEAT_S,
                           **oanda_stub.operator_config())  # the operator allows the loopback stub
    started = datetime.now(timezone.utc)
    with running_engine(config) as runtime:
        def asset() -> dict:
            assets = runtime.status()["assets"]
            return assets[0] if assets else {"last_step": None}

        # Flat prices: the strategy warms up and holds (no order reaches the stub).
        first = wait_for(lambda: (a := asset())["last_step"] and a["last_step"]["index"] >= 3 and a, 60,
                         what="a few live heartbeats")
        assert first["state"] == "running" and first["failures"] == 0, first["last_error"]
        assert first["last_step"]["action"] == "hold" and oanda_stub.state.count("order_create") == 0
        priced_before = oanda_stub.state.count("pricing")
        oanda_stub.state.set_price("EUR_USD", "1.10500", "1.10520")
        jumped_at = time.monotonic()
        orders = wait_for(lambda: sqlite_store.list_orders(asset_id=asset_id, page=PageRequest(limit=10)).items
                          and [o for o in sqlite_store.list_orders(asset_id=asset_id, page=PageRequest(limit=10)).items
                               if o.status.value != "pending"], 30, what="the order to be recorded")
        reacted_s = time.monotonic() - jumped_at
        time.sleep(3 * HEARTBEAT_S)  # a few more heartbeats: already long, nothing more is sent
        steps = asset()["last_step"]
        priced_after = oanda_stub.state.count("pricing")
    finished = datetime.now(timezone.utc)

    # Exactly one order, at the stub and in the database, with the stub's fill (the ask).
    (order,) = orders
    at_stub = oanda_stub.state.orders_for_client_id(order.client_order_id)
    assert len(at_stub) == 1 and at_stub[0]["state"] == "FILLED"
    assert oanda_stub.state.count("order_create") == 1
    assert (order.action, order.side.value, order.status.value) == ("open", "buy", "open")
    assert order.filled_price == Decimal("1.10520") and order.broker_order_id == at_stub[0]["id"]
    (position,) = sqlite_store.list_positions(asset_id=asset_id, is_open=True, page=PageRequest(limit=10)).items
    assert position.broker_position_id == at_stub[0]["tradeOpenedID"]
    assert position.entry_price == Decimal("1.10520") and position.quantity == Decimal("1000")
    # The decision was made on a wall-clock bar carrying the broker's new price.
    bar_time = datetime.fromisoformat(order.details["bar_time"])
    assert started <= bar_time <= finished
    assert order.details["params"]["reason"] == "momentum turned up"
    assert reacted_s < 10 * HEARTBEAT_S + 5
    # Every heartbeat asked the broker for its price; after the order the asset holds.
    assert priced_after - priced_before >= 3
    assert steps["action"] == "hold" and steps["open_positions"] == 1
