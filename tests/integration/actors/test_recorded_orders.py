"""``BrokerActor.execute_recorded``: the broker actor commits an order's intent (after the
asset's queued result writes) through the persistence actor before its broker plugin sees
the order; an intent that is not recorded never becomes an order. And the engine's
actor processes read through the persistence actor (``PersistenceActor.read``), never
a Store of their own. Real Ray, real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import ray

from tests.integration.actors.engine_helpers import engine_config, seed_portfolio

pytestmark = [pytest.mark.ray]


def _intent(cid: str, portfolio_id: int, asset_id: int):  # type: ignore[no-untyped-def]
    from persistence.records import AuditContext
    from persistence.records import OrderIntent as IntentSpec
    from persistence.store.writes import WriteRequest

    spec = IntentSpec(client_order_id=cid, portfolio_id=portfolio_id, asset_id=asset_id, side="buy",
                      quantity=Decimal("1000"), action="open", details={})
    return WriteRequest(op="record_order_intent", ctx=AuditContext.system(request_id=f"intent:{cid}"), args=(spec,))


def _order(cid: str) -> dict:
    return {"client_order_id": cid, "side": "buy", "quantity": "1000", "symbol": "EURUSD", "price": "1.10500"}


def test_intent_is_committed_before_the_order_and_a_refused_one_is_never_sent(
        ray_session, store, db_url: str, tmp_path: Path) -> None:
    from actors.runtime import EngineRuntime
    from persistence.records import AuditContext, OrderFill
    from persistence.store.writes import WriteRequest

    portfolio_id, (asset_id,) = seed_portfolio(store, [{"symbol": "EURUSD", "strategy_plugin": "default_strategy",
                                                         "broker_plugin": "default_broker"}])
    runtime = EngineRuntime(engine_config(db_url, tmp_path))
    runtime.start(activate=False)
    try:
        broker = runtime.broker
        key = f"test:{uuid.uuid4().hex[:8]}"
        ray.get(broker.open_account.remote(key, "default_broker", {}), timeout=30)

        # 1. A recorded intent, then the order: pending in the database, open at the broker.
        outcomes, result, error = ray.get(broker.execute_recorded.remote(
            key, "open", _order("c-1"), None, [_intent("c-1", portfolio_id, asset_id)]), timeout=30)
        assert error is None and [o.ok for o in outcomes] == [True]
        assert result.client_order_id == "c-1" and result.status.value == "open"
        assert store.get_order_by_client_id("c-1").status.value == "pending"  # the result is the asset's to write

        # 2. The asset's queued result write rides ahead of the next intent, in order.
        fill = WriteRequest(op="mark_order_open", ctx=AuditContext.system(request_id="open:c-1"),
                            args=("c-1", OrderFill(broker_order_id=result.order_id, filled_price=result.entry_price)))
        outcomes, result, error = ray.get(broker.execute_recorded.remote(
            key, "open", _order("c-2"), None, [fill, _intent("c-2", portfolio_id, asset_id)]), timeout=30)
        assert error is None and [o.ok for o in outcomes] == [True, True] and result.status.value == "open"
        assert store.get_order_by_client_id("c-1").status.value == "open"
        assert store.get_order_by_client_id("c-2").status.value == "pending"

        # 3. An intent the store refuses (an asset that does not exist): no order at all.
        outcomes, result, error = ray.get(broker.execute_recorded.remote(
            key, "open", _order("c-3"), None, [_intent("c-3", portfolio_id, asset_id + 999)]), timeout=30)
        assert result is None and error is None and not outcomes[-1].ok and outcomes[-1].error
        sent = {r.client_order_id for r in ray.get(broker.records.remote(key), timeout=30)[key]["orders"]}
        assert sent == {"c-1", "c-2"}

        # 4. Reads through the persistence actor: the engine's reads only, errors as the Store's.
        from engine.errors import DomainError, NotFound

        persistence = runtime.persistence
        assert ray.get(persistence.read.remote("get_order_by_client_id", ("c-2",)), timeout=30).status.value == "pending"
        with pytest.raises(NotFound):
            ray.get(persistence.read.remote("get_asset", (asset_id + 999,)), timeout=30)
        with pytest.raises(DomainError, match="get_credentials"):
            ray.get(persistence.read.remote("get_credentials", ("admin",)), timeout=30)
    finally:
        runtime.stop()


def test_asset_actor_code_does_not_load_sqlalchemy() -> None:
    # What an asset actor imports and uses (steps, journal writes, records, plugins): no
    # SQLAlchemy and no pandas, which a restarted asset would otherwise load again.
    code = (
        "import sys\n"
        "import actors.asset_actor, actors.ports, actors.store_proxy, actors.persistence_actor, actors.write_pipe\n"
        "from persistence.store import WriteRequest\n"
        "from persistence.records import AuditContext, OrderFill, OrderIntent, PageRequest, PositionOpen\n"
        "from engine.plugins.loader import create_plugin\n"
        "create_plugin('strategy', 'default_strategy', {}); create_plugin('pipeline', 'default_pipeline', {})\n"
        "print(sorted(m for m in ('sqlalchemy', 'pandas') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
