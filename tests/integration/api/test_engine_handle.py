"""The gateway's side of the ``EngineHandle`` contract, over a real database.

The actor runtime's handle is exercised by the runtime's own tests (the seed flow with a
trading step); here a small in-process engine that satisfies the same Protocol records
what the gateway asks of it, so we can check the order of effects: the database first
on activate, the engine first on deactivate, a failed start rolled back, writes sent
through ``engine.store``, reloads after config changes, ``execute`` answered from the
database, and engine status filtered to what the caller owns.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from api.app import create_app
from api.engine_handle import EngineHandle
from engine.errors import TemporaryError
from persistence.records import AuditContext, OrderIntent
from persistence.store import Store
from tests.integration.api.conftest import Gateway, _SyncASGIClient, base_config, make_aaa, seed_trading


class CountingStore:
    """What the runtime injects as ``engine.store``: the Store's interface, here counting
    the writes that reach it before passing them to the real Store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.writes: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if callable(attr):
            def counted(*args: Any, **kwargs: Any) -> Any:
                self.writes.append(name)
                return attr(*args, **kwargs)
            return counted
        return attr


class InProcessEngine:
    """Satisfies ``EngineHandle``; records calls and the database state each call saw."""

    def __init__(self, store: Store) -> None:
        self.store = CountingStore(store)
        self._db = store
        self.calls: list[tuple[str, int, Any]] = []
        self.fail_next_activate = False

    def activate_portfolio(self, portfolio_id: int) -> None:
        if self.fail_next_activate:
            self.fail_next_activate = False
            raise TemporaryError("supervisor did not start within 10 s")
        self.calls.append(("activate", portfolio_id, self._db.get_portfolio(portfolio_id).is_active))

    def deactivate_portfolio(self, portfolio_id: int) -> None:
        self.calls.append(("deactivate", portfolio_id, self._db.get_portfolio(portfolio_id).is_active))

    def reload_asset(self, asset_id: int) -> None:
        asset = self._db.get_asset(asset_id)
        self.calls.append(("reload", asset_id, (asset.strategy_plugin, asset.strategy_config, asset.is_active)))

    def execute_step(self, asset_id: int) -> dict[str, Any]:
        asset = self._db.get_asset(asset_id)
        client_id = f"step-{asset_id}-{len(self.calls)}"
        self._db.record_order_intent(
            AuditContext.system(),
            OrderIntent(client_order_id=client_id, portfolio_id=asset.portfolio_id, asset_id=asset_id, side="buy", quantity=Decimal("10")),
        )
        self.calls.append(("execute", asset_id, client_id))
        return {"action": "open", "order": {"client_order_id": client_id}, "reason": None, "bar_time": "2020-01-01T00:00:00Z"}

    def status(self) -> dict[str, Any]:
        portfolios = [p.id for p in self._db.list_portfolios().items]
        return {
            "running": True,
            "supervisors": [{"portfolio_id": pid, "state": "running", "restarts": 0} for pid in portfolios],
            "assets": [{"asset_id": a.id, "portfolio_id": a.portfolio_id, "state": "idle"} for a in self._db.list_assets().items],
            "cluster": {"nodes": 1},
        }

    def submit_backtest(self, *, run_id: int, plan: Any, out_dir: str, ctx: Any,
                        rank_by: str = "total_return") -> None:
        self.calls.append(("backtest", run_id, plan.strategy))


@pytest.fixture
def engine_gateway(sqlite_db_url: str) -> Iterator[tuple[Gateway, InProcessEngine]]:
    store = Store.from_url(sqlite_db_url)
    engine = InProcessEngine(store)
    assert isinstance(engine, EngineHandle)
    aaa = make_aaa()
    app = create_app(base_config(sqlite_db_url), store=store, engine=engine, aaa=aaa)
    client = _SyncASGIClient(app)
    try:
        yield Gateway(store=store, aaa=aaa, client=client, base_url="http://gateway"), engine
    finally:
        client.close()
        store.close()


def test_activation_order_and_rollback(engine_gateway: tuple[Gateway, InProcessEngine]) -> None:
    gateway, engine = engine_gateway
    gateway.make_user("ann")
    ann = gateway.login("ann")
    data = seed_trading(gateway, ann, "engine")
    client = gateway.client
    assert client.get("/health").json()["engine"] == "running"

    assert client.post(f"/api/portfolios/{data.portfolio_id}/activate", headers=ann.headers).status_code == 200
    assert engine.calls[-1] == ("activate", data.portfolio_id, True)  # DB said active before the start
    assert client.post(f"/api/portfolios/{data.portfolio_id}/deactivate", headers=ann.headers).status_code == 200
    assert engine.calls[-1] == ("deactivate", data.portfolio_id, True)  # stopped before the DB says inactive
    assert gateway.store.get_portfolio(data.portfolio_id).is_active is False

    engine.fail_next_activate = True
    resp = client.post(f"/api/portfolios/{data.portfolio_id}/activate", headers=ann.headers)
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "engine_unavailable"
    assert "did not start" in resp.json()["error"]["message"]
    assert gateway.store.get_portfolio(data.portfolio_id).is_active is False  # rolled back
    # The gateway's writes all went through the engine's store (the persistence actor).
    assert engine.store.writes.count("activate_portfolio") == 2
    assert engine.store.writes.count("deactivate_portfolio") == 2


def test_config_changes_reach_the_running_asset(engine_gateway: tuple[Gateway, InProcessEngine]) -> None:
    gateway, engine = engine_gateway
    gateway.make_user("ben")
    ben = gateway.login("ben")
    data = seed_trading(gateway, ben, "reload")
    resp = gateway.client.patch(
        f"/api/assets/{data.asset_id}/strategy", headers=ben.headers, json={"plugin": "sma_cross", "config": {"fast": 7}}
    )
    assert resp.status_code == 200
    assert engine.calls[-1] == ("reload", data.asset_id, ("sma_cross", {"fast": 7}, False))
    gateway.client.post(f"/api/assets/{data.asset_id}/activate", headers=ben.headers)
    assert engine.calls[-1] == ("reload", data.asset_id, ("sma_cross", {"fast": 7}, True))


def test_execute_returns_the_recorded_order(engine_gateway: tuple[Gateway, InProcessEngine]) -> None:
    gateway, engine = engine_gateway
    for name in ("cat", "dan"):
        gateway.make_user(name)
    cat, dan = gateway.login("cat"), gateway.login("dan")
    mine, theirs = seed_trading(gateway, cat, "exec-cat"), seed_trading(gateway, dan, "exec-dan")

    resp = gateway.client.post("/api/trading/execute", headers=cat.headers, json={"asset_id": mine.asset_id})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["action"] == "open" and body["asset_id"] == mine.asset_id
    assert body["order"]["client_order_id"] == engine.calls[-1][2]
    assert body["order"]["quantity"] == "10.00000000" and body["order"]["status"] == "pending"
    assert body["details"] == {"bar_time": "2020-01-01T00:00:00Z"}
    row = gateway.store.list_audit_logs(action="trading.execute").items[0]
    assert (row.user_id, row.target_id) == (cat.user_id, str(mine.asset_id))

    calls = len(engine.calls)
    other = gateway.client.post("/api/trading/execute", headers=cat.headers, json={"asset_id": theirs.asset_id})
    assert other.status_code == 404 and len(engine.calls) == calls  # the engine never saw it


def test_engine_status_is_filtered_for_users(engine_gateway: tuple[Gateway, InProcessEngine]) -> None:
    gateway, _engine = engine_gateway
    gateway.make_user("eve")
    gateway.make_user("boss", role="admin")
    gateway.make_user("fred")
    eve, boss, fred = gateway.login("eve"), gateway.login("boss"), gateway.login("fred")
    mine = seed_trading(gateway, eve, "status-eve")
    seed_trading(gateway, fred, "status-fred")

    own = gateway.client.get("/api/engine/status", headers=eve.headers).json()
    assert own["running"] is True
    assert [s["portfolio_id"] for s in own["details"]["supervisors"]] == [mine.portfolio_id]
    assert [a["asset_id"] for a in own["details"]["assets"]] == [mine.asset_id]
    assert "cluster" not in own["details"]  # engine-wide facts are for admins
    everything = gateway.client.get("/api/engine/status", headers=boss.headers).json()
    assert len(everything["details"]["supervisors"]) == 2 and everything["details"]["cluster"] == {"nodes": 1}
