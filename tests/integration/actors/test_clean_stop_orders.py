"""A clean stop leaves no order ``pending`` that the broker never received.

In simulation a decision on bar t fills at bar t+1's open: the broker accepts the order
and queues it, and the database keeps it ``pending`` until the fill. A stop between two
bars therefore leaves each asset's newest order(s) pending. This test pins down what
those are: orders the broker actor holds, queued (the step records the intent, calls the
broker and records its answer under the asset actor's lock, and the stop waits for that
step), never intents whose broker call was not made. And they must stay pending, not be
cancelled at the stop: when the portfolio is activated again while the broker actor
still runs, they fill on the next bar exactly as the broker queued them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import ray

from actors import naming
from tests.integration.actors.engine_helpers import engine_config, running_engine, seed_portfolio, wait_for, write_ohlc_csv

pytestmark = [pytest.mark.ray, pytest.mark.slow]

MAX_STOPS = 8  # stops until one fell between a decision and its fill


def _orders(store: Any, portfolio_id: int) -> dict[str, Any]:
    from persistence.records import PageRequest

    return {o.client_order_id: o for o in store.list_orders(portfolio_id=portfolio_id, page=PageRequest(limit=500)).items}


def _status(order: Any) -> str:
    return str(getattr(order.status, "value", order.status))


def test_clean_stop_leaves_only_orders_the_broker_queued(ray_session, sqlite_store, sqlite_db_url, tmp_path: Path,
                                                         backtesting_data_dir: Path):
    write_ohlc_csv(backtesting_data_dir / "EURUSD.csv", tmp_path / "a.csv", slice(0, 5000))
    # A fast crossing trades (and reverses) every few bars; paced so the data lasts.
    specs = [{"symbol": f"S{i}", "strategy_plugin": "sma_cross",
              "strategy_config": {"fast": 2, "slow": 4, "quantity": 1000.0},
              "broker_plugin": "backtrader_simulation_broker", "data_source": {"path": "a.csv"}} for i in range(2)]
    portfolio_id, asset_ids = seed_portfolio(sqlite_store, specs, latency=0.05)
    config = engine_config(sqlite_db_url, tmp_path)
    with running_engine(config) as runtime:
        broker = ray.get_actor(naming.BROKER, namespace=config["ray_namespace"])
        queued: dict[str, Any] = {}
        for _ in range(MAX_STOPS):
            settled = sum(_status(o) != "pending" for o in _orders(sqlite_store, portfolio_id).values())
            runtime.activate_portfolio(portfolio_id)

            def traded_and_waiting() -> bool:
                # A few more orders settled, and a decision waiting for its fill right now:
                # stopping at once gives the stop a good chance to fall in that window (one
                # bar, 50 ms) instead of leaving it to chance (how fast the machine steps).
                statuses = [_status(o) for o in _orders(sqlite_store, portfolio_id).values()]
                return sum(s != "pending" for s in statuses) >= settled + 4 and "pending" in statuses

            wait_for(traded_and_waiting, 90, interval_s=0.02, what="a few more orders and one waiting for its fill")
            runtime.deactivate_portfolio(portfolio_id)  # the clean stop (also the first step of runtime.stop)

            orders = _orders(sqlite_store, portfolio_id)
            pending = {cid: o for cid, o in orders.items() if _status(o) == "pending"}
            accounts = ray.get(broker.records.remote(), timeout=10)
            by_asset = {int(key.rsplit(":asset", 1)[1]): records for key, records in accounts.items()}
            for cid, order in pending.items():
                records = by_asset[order.asset_id]
                sent = {r.client_order_id: r for r in records["orders"]}
                settled_at_broker = {r.client_order_id for r in records["events"]}
                # Sent, accepted and queued at the broker; not yet filled there either.
                assert cid in sent, f"{cid} is pending but the broker never received it"
                assert str(sent[cid].status) == "pending" and cid not in settled_at_broker, (cid, sent[cid])
                # Only the orders of their asset's newest decision bar can wait for a fill.
                bars = [(o.details or {}).get("bar_time") for o in orders.values() if o.asset_id == order.asset_id]
                assert (order.details or {}).get("bar_time") == max(bars), cid
            queued.update(pending)
            if queued:
                break
        assert queued, f"no stop in {MAX_STOPS} fell between a decision and its fill"

        # Activated again with the broker actor still running: the queued orders fill at
        # the next bar's open, as the broker queued them (cancelling them at the stop would
        # have left the broker holding positions the database says were never taken).
        runtime.activate_portfolio(portfolio_id)
        wait_for(lambda: all(_status(_orders(sqlite_store, portfolio_id)[cid]) != "pending" for cid in queued), 60,
                 what="the queued orders to fill")
        runtime.deactivate_portfolio(portfolio_id)
        after = _orders(sqlite_store, portfolio_id)
        assert {cid: _status(after[cid]) for cid in queued} == {
            cid: ("open" if str(getattr(o.action, "value", o.action)) == "open" else "filled") for cid, o in queued.items()}
        assert set(asset_ids) >= {o.asset_id for o in queued.values()}
