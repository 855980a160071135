"""Killing the singletons' neighbours: ``kill -9`` the broker actor (twice) and then the
portfolio supervisor while four assets trade (two on the default broker, two on the
bar-driven simulation broker whose queued fills, stops and end-of-data closes are broker
events).

After a broker kill Ray restarts the process without its in-memory accounts; the
supervisor notices, every asset re-attaches and the broker rebuilds each account from the
database (deterministic replay). After the supervisor kill Ray restarts it and it rebuilds
its asset actors, which resume from the broker's accounts. Afterwards the database's
orders equal the broker's one to one: every order the broker executed is in the database
with the broker's final status and price, every order in the database reached the broker
except the intents reconciliation cancelled (which the broker refuses), no client order id
twice, no order left pending, and the open positions are the broker's."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import ray

from actors import naming
from engine.pipeline.default_pipeline import RECONCILE_CANCEL_REASON
from tests.integration.actors.engine_helpers import (
    all_orders,
    answer_or_none,
    engine_config,
    running_engine,
    seed_portfolio,
    wait_for,
    write_ohlc_csv,
)

pytestmark = [pytest.mark.ray, pytest.mark.slow]

BARS = 300


def _latest(records: dict[str, list[Any]]) -> dict[str, Any]:
    """Each client order id's latest state at the broker (a queued order's fill or
    cancellation is a later event than the first answer)."""
    latest = {r.client_order_id: r for r in records["orders"]}
    for event in records["events"]:
        if event.client_order_id in latest:
            latest[event.client_order_id] = event
    return latest


def test_kill_broker_and_supervisor_while_trading(ray_session, sqlite_store, sqlite_db_url, tmp_path: Path,
                                                  backtesting_data_dir: Path):
    from persistence.records import PageRequest

    eur = backtesting_data_dir / "EURUSD.csv"
    specs = []
    for i, broker in enumerate(["default_broker", "default_broker", "backtrader_simulation_broker",
                                "backtrader_simulation_broker"]):
        write_ohlc_csv(eur, tmp_path / f"d{i}.csv", slice(i * 1000, i * 1000 + BARS))
        specs.append({"symbol": f"S{i}", "strategy_plugin": "default_strategy",
                      "strategy_config": {"lookback": 3, "quantity": 1000.0}, "broker_plugin": broker,
                      "data_source": {"path": f"d{i}.csv"}})
    portfolio_id, asset_ids = seed_portfolio(sqlite_store, specs, latency=0.01)
    config = engine_config(sqlite_db_url, tmp_path, global_latency=0.01)
    namespace = config["ray_namespace"]

    def order_count() -> int:
        return sqlite_store.list_orders(portfolio_id=portfolio_id, page=PageRequest(limit=1)).total

    with running_engine(config) as runtime:
        def supervisor() -> dict:
            (status,) = runtime.status()["supervisors"]
            return status

        def states() -> list[str]:
            return [a["state"] for a in supervisor().get("assets", [])]

        wait_for(lambda: states() == ["running"] * 4 and order_count() > 20, 60, what="four assets trading")
        broker = ray.get_actor(naming.BROKER, namespace=namespace)
        for kill in (1, 2):
            pid = ray.get(broker.pid.remote(), timeout=30)
            before = order_count()
            assert "running" in states(), "the kill must land mid-run"
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: supervisor().get("broker_restarts_seen") == kill, 90, what=f"broker kill {kill} noticed")
            # Every account is back in the new incarnation, and trading goes on through it.
            # A fresh account knows no orders: these are replayed from the database (each
            # asset opens its account, then restores it, before it steps again). While Ray
            # restarts the broker its calls fail (ActorUnavailableError): the wait polls on.
            wait_for(lambda: len(r := answer_or_none(broker.records.remote) or {}) == 4
                     and all(account["orders"] for account in r.values()), 90,
                     what=f"the four accounts restored after kill {kill}")
            assert answer_or_none(broker.pid.remote) not in (None, pid)
            wait_for(lambda: order_count() > before + 5 or "running" not in states(), 60,
                     what=f"orders after broker kill {kill}")

        old = supervisor()
        assert "running" in states(), "the supervisor kill must land mid-run"
        os.kill(old["pid"], signal.SIGKILL)
        killed_at = time.monotonic()
        back = wait_for(lambda: (s := supervisor()).get("pid") not in (None, old["pid"]) and s.get("restarted")
                        and len(s["assets"]) == 4 and all(a["state"] in ("running", "finished") for a in s["assets"])
                        and s, 60, what="the supervisor and its four assets back")
        recovered_s = time.monotonic() - killed_at
        assert {a["pid"] for a in back["assets"]}.isdisjoint({a["pid"] for a in old["assets"]})
        wait_for(lambda: states() == ["finished"] * 4, 120, what="all assets to finish their data")
        runtime.deactivate_portfolio(portfolio_id)
        records = ray.get(broker.records.remote(), timeout=30)
        open_at_broker = {key: ray.get(broker.open_positions.remote(key), timeout=30) for key in records}

    assert recovered_s < 60
    by_asset = {int(key.rsplit(":asset", 1)[1]): key for key in records}
    assert set(by_asset) == set(asset_ids)
    for asset_id, key in by_asset.items():
        orders = all_orders(sqlite_store, asset_id)
        latest = _latest(records[key])
        refused = {o.client_order_id for o in orders
                   if o.status.value == "cancelled" and o.reason == RECONCILE_CANCEL_REASON}
        sent = {o.client_order_id: o for o in orders if o.client_order_id not in refused}
        # One to one: same ids, no duplicates, nothing pending, same final status and price.
        assert len(orders) == len({o.client_order_id for o in orders})
        assert set(sent) == set(latest), f"asset {asset_id}"
        assert not [o for o in orders if o.status.value == "pending"]
        for cid, order in sent.items():
            result = latest[cid]
            assert order.status.value == result.status.value, (cid, order.status, result)
            if order.filled_price is not None:
                price = result.close_price if result.close_price is not None else result.entry_price
                assert order.filled_price == price.quantize(Decimal("1e-8")), (cid, order.filled_price, price)
        # Open positions: exactly the broker's (the simulation broker closed its own at the
        # end, the default broker keeps them), each with its opening order.
        positions = sqlite_store.list_positions(asset_id=asset_id, is_open=True, page=PageRequest(limit=500)).items
        assert {p.broker_position_id for p in positions} == {v.position_id for v in open_at_broker[key]}
        if "simulation" in key:
            assert not positions
        assert all(p.opening_order_id is not None for p in positions)
        assert len(sent) > 20
    audits = sqlite_store.list_audit_logs(action="asset.started", page=PageRequest(limit=200)).items
    started = Counter(int(a.target_id) for a in audits if int(a.target_id) in asset_ids)
    # Each asset started, re-attached after both broker kills, and started again after the
    # supervisor kill.
    assert all(started[a] >= 4 for a in asset_ids), started
