"""The seed's user journey (§1.6) end to end WITH THE ENGINE RUNNING (issue 6, first
must-hold), on SQLite and PostgreSQL.

Real components only: the actor runtime on the shared Ray session (persistence actor
writing to a real database, broker and prediction actors, a portfolio supervisor and its
asset actor), a real uvicorn gateway on loopback wired to the runtime's ``EngineClient``,
real EURUSD bars (the ``backtesting`` package's CSV), and httpx over TCP:

register -> login -> Bearer token -> create portfolio -> add an asset (simulation over
the CSV) -> activate -> the heartbeat trades -> ``POST /api/trading/execute`` steps the
asset through the actors (each result checked against the strategy's own signal at that
bar) -> orders and positions over the API equal the broker actor's records -> engine
status shows the supervisor and the asset actor -> a strategy config change on the
running asset takes effect on its next step -> deactivate stops the supervisor after its
in-flight step and no order follows -> every state-changing 2xx left exactly one audit
row -> no actor of the engine is left behind.

Also: the engine client's calls give the gateway its documented errors (404/409/503),
never a raw Ray exception, for every way an actor call can fail.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import ray

from actors import naming
from engine.data.csv_loader import load_csv
from engine.data.market_data import MarketData
from engine.plugins.loader import create_plugin
from engine.strategies.signals import HOLD, LONG
from persistence.records import MAX_PAGE_SIZE, PageRequest
from tests.integration.actors.engine_helpers import engine_config, wait_for, write_ohlc_csv
from tests.integration.api.conftest import PASSWORD, bearer
from tests.integration.api.e2e_support import Journey, LiveEngine, engine_and_gateway, fetch_all, named_actors

pytestmark = pytest.mark.ray

# Short SMAs so the walk crosses often (an order every few bars); the change switches
# windows and doubles the quantity, so a step under the new config is recognisable.
STRATEGY = {"fast": 3, "slow": 8, "quantity": 10000.0}
CHANGED = {"fast": 4, "slow": 12, "quantity": 20000.0}
HEARTBEAT_S = 0.1  # the portfolio's latency: ten heartbeat steps a second
BARS = slice(0, 3000)  # far more than the test walks: the asset never runs out of data
MAX_EXECUTES = 80  # steps through POST /api/trading/execute per phase, at most


def q8(value: Any) -> Decimal:
    """Money as the database stores it (8 decimal places)."""
    return Decimal(str(value)).quantize(Decimal("1e-8"))


def bar_ns_of(client_order_id: str) -> int:
    """The bar time (ns) in a client order id ``{asset}-{bar ns}-{what}``."""
    return int(client_order_id.split("-")[1])


class Signals:
    """What the strategy itself says at a bar, for one config (the engine's expected answer)."""

    def __init__(self, config: dict[str, Any], data: MarketData) -> None:
        self.strategy = create_plugin("strategy", "sma_cross", config)
        self.slow = int(config["slow"])
        self.data = data

    def at(self, index: int) -> int:
        return int(self.strategy.signal_at(self.data, index))

    def check(self, step: dict[str, Any]) -> None:
        """A step result from ``POST /api/trading/execute`` agrees with the signal at its bar."""
        index = step["details"]["index"]
        code = self.at(index)
        where = f"bar {index} ({step['details']['bar_time']}): {step}"
        if code == HOLD:
            assert step["action"] == "hold" and step["order"] is None, where
            expected = "no crossover" if index >= self.slow else f"warming up: need {self.slow + 1} bars"
            assert step["reason"].startswith(expected), where
            return
        if step["action"] == "hold":  # a cross towards the side already held (after a config change)
            assert step["reason"] == f"already {'long' if code == LONG else 'short'}", where
            return
        assert step["action"] in ("open", "close"), where
        order = step["order"]
        assert order is not None and order["asset_id"] == step["asset_id"], where
        # The order is this step's: its client order id names this bar.
        assert bar_ns_of(order["client_order_id"]) == int(self.data.timestamps[index]), where
        assert order["status"] in ("open", "filled"), where


def execute_until_trade(journey: Journey, asset_id: int, signals: Signals) -> list[dict[str, Any]]:
    """Step the asset through the API until a step trades (and at least one held)."""
    steps: list[dict[str, Any]] = []
    for _ in range(MAX_EXECUTES):
        step = journey.change("POST", "/api/trading/execute", json={"asset_id": asset_id},
                              action="trading.execute", target_type="asset", target_id=asset_id)
        signals.check(step)
        steps.append(step)
        actions = {s["action"] for s in steps}
        if actions & {"open", "close"} and "hold" in actions:
            return steps
    raise AssertionError(f"no trade and hold within {MAX_EXECUTES} executed steps: {[s['action'] for s in steps]}")


def broker_orders(live: LiveEngine, asset_id: int) -> dict[str, Any]:
    """The broker actor's results for the asset's simulation account, by client order id."""
    broker = ray.get_actor(naming.BROKER, namespace=live.namespace)
    records = ray.get(broker.records.remote(), timeout=10)
    mine = [acc for key, acc in records.items() if key.endswith(f":asset{asset_id}")]
    assert len(mine) == 1, sorted(records)
    return {r.client_order_id: r for r in mine[0]["orders"]}


def actor_alive(name: str, namespace: str) -> bool:
    try:
        handle = ray.get_actor(name, namespace=namespace)
    except ValueError:
        return False
    try:
        ray.get(handle.__ray_ready__.remote(), timeout=2)
    except Exception:
        return False
    return True


def test_seed_flow_with_the_engine_running(ray_session, db_url: str, tmp_path: Path, backtesting_data_dir: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    csv_path = write_ohlc_csv(backtesting_data_dir / "EURUSD.csv", data_dir / "eurusd.csv", BARS)
    data = load_csv(csv_path, symbol="EURUSD")
    before, after = Signals(STRATEGY, data), Signals(CHANGED, data)
    config = engine_config(db_url, data_dir)

    with engine_and_gateway(config) as live:
        namespace = live.namespace
        http = live.journey
        assert live.base_url.startswith("http://127.0.0.1:")

        # ---- register -> login -> Bearer token
        user = http.change("POST", "/api/auth/register", expect=201, action="user.create", target_type="user",
                           json={"username": "trader", "password": PASSWORD, "email": "trader@example.com"})
        tokens = http.change("POST", "/api/auth/login", json={"username": "trader", "password": PASSWORD},
                             action="auth.login", target_type="user", target_id=user["id"])
        http.headers = bearer(tokens["access_token"])
        assert http.get("/api/users/me").json()["id"] == user["id"]

        # ---- portfolio and an asset walking the CSV in simulation mode
        portfolio = http.change("POST", "/api/portfolios", expect=201, action="portfolio.create",
                                target_type="portfolio",
                                json={"name": "e2e", "total_capital": "10000", "latency": HEARTBEAT_S})
        pid = portfolio["id"]
        asset = http.change("POST", f"/api/portfolios/{pid}/assets", expect=201, action="asset.create",
                            target_type="asset", json={
                                "symbol": "EURUSD", "strategy_plugin": "sma_cross", "strategy_config": STRATEGY,
                                "broker_plugin": "default_broker", "data_source": {"path": csv_path.name},
                                "allocated_capital": "10000"})
        aid = asset["id"]
        http.change("POST", f"/api/assets/{aid}/activate", action="asset.activate", target_type="asset", target_id=aid)
        assert not actor_alive(naming.portfolio_supervisor(pid), namespace)
        active = http.change("POST", f"/api/portfolios/{pid}/activate", action="portfolio.activate",
                             target_type="portfolio", target_id=pid)
        assert active["is_active"] is True

        # ---- the supervisor started and its heartbeat trades
        assert actor_alive(naming.portfolio_supervisor(pid), namespace)
        try:
            wait_for(lambda: http.get("/api/orders", portfolio_id=pid).json()["total"] > 0, 60,
                     what="the heartbeat's first order")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; engine status: {http.get('/api/engine/status').json()}") from None

        # ---- engine status: the supervisor and its asset actor, as the owner sees them
        status = http.get("/api/engine/status")
        assert status.status_code == 200, status.text
        report = status.json()
        assert report["running"] is True
        (supervisor,) = report["details"]["supervisors"]
        assert supervisor["portfolio_id"] == pid and supervisor["running"] is True and supervisor["cycles"] > 0
        (asset_status,) = report["details"]["assets"]
        assert (asset_status["asset_id"], asset_status["state"], asset_status["restarts"]) == (aid, "running", 0)
        # The owner is told states and counts, never where the engine's processes run; the
        # engine's own report (what an admin sees) names the asset actor's real process.
        assert "pid" not in asset_status and "pid" not in supervisor, report
        from actors.engine_client import EngineClient

        raw_assets = [a for s in EngineClient(live.runtime).status()["supervisors"] for a in s["assets"]]
        asset_actor = ray.get_actor(naming.asset(aid), namespace=namespace)
        assert [ray.get(asset_actor.pid.remote(), timeout=5)] == [a["pid"] for a in raw_assets if a["asset_id"] == aid]

        # ---- one step at a time through the actors: the order it made, or why it held
        first_steps = execute_until_trade(http, aid, before)
        traded = next(s for s in first_steps if s["order"] is not None)
        stored = http.get(f"/api/orders/{traded['order']['id']}")
        assert stored.status_code == 200 and stored.json() == traded["order"]

        # ---- an inactive asset of the running portfolio is refused by its supervisor (409)
        idle = http.change("POST", f"/api/portfolios/{pid}/assets", expect=201, action="asset.create",
                           target_type="asset", json={"symbol": "EURUSD2", "data_source": {"path": csv_path.name}})
        refused = http.client.post("/api/trading/execute", headers=http.headers, json={"asset_id": idle["id"]})
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["message"] == f"asset {idle['id']} is not running in portfolio {pid}"

        # ---- the strategy config changes while the asset runs: its next step uses it
        changed = http.change("PATCH", f"/api/assets/{aid}/strategy", json={"config": CHANGED},
                              action="asset.strategy_change", target_type="asset", target_id=aid)
        assert changed["strategy_config"] == CHANGED
        # The last bar stepped so far: ours, or the heartbeat's (engine status shows the
        # heartbeat's last step; steps through execute are not in it).
        last_old_bar = max(s["details"]["index"] for s in first_steps)
        (stepped,) = http.get("/api/engine/status").json()["details"]["assets"]
        reached = max(last_old_bar, stepped["last_step"]["index"])
        second_steps = execute_until_trade(http, aid, after)
        first_new_bar = second_steps[0]["details"]["index"]
        # The next step moves on from where the asset was: a reload never re-runs a bar
        # that was already decided under the old config.
        assert first_new_bar > reached, (reached, [(x["details"]["index"], x["action"]) for x in second_steps])
        # Keep stepping until the new config opened a position (its quantity shows it).
        while not any(s["action"] == "open" for s in second_steps):
            assert len(second_steps) < 3 * MAX_EXECUTES, "the changed config never opened a position"
            step = http.change("POST", "/api/trading/execute", json={"asset_id": aid},
                               action="trading.execute", target_type="asset", target_id=aid)
            after.check(step)
            second_steps.append(step)
        for step in second_steps:
            if step["action"] == "open":
                assert Decimal(step["order"]["quantity"]) == q8(CHANGED["quantity"]), step

        # ---- deactivate: the supervisor stops after its in-flight step, nothing trades on
        inactive = http.change("POST", f"/api/portfolios/{pid}/deactivate", action="portfolio.deactivate",
                               target_type="portfolio", target_id=pid)
        assert inactive["is_active"] is False
        wait_for(lambda: not actor_alive(naming.portfolio_supervisor(pid), namespace), 10,
                 what="the supervisor to be gone")
        wait_for(lambda: not actor_alive(naming.asset(aid), namespace), 10, what="the asset actor to be gone")
        assert http.get("/api/engine/status").json()["details"]["supervisors"] == []
        orders = fetch_all(http, "/api/orders", portfolio_id=pid)
        broker = broker_orders(live, aid)
        time.sleep(10 * HEARTBEAT_S)  # ten heartbeats' worth: a live supervisor would have stepped
        assert fetch_all(http, "/api/orders", portfolio_id=pid) == orders
        assert broker_orders(live, aid).keys() == broker.keys()
        refused = http.client.post("/api/trading/execute", headers=http.headers, json={"asset_id": aid})
        assert refused.status_code == 409 and "not running" in refused.json()["error"]["message"], refused.text

        # ---- what the API shows is what the broker did, one to one
        positions = fetch_all(http, "/api/positions", portfolio_id=pid)
        check_orders_match_broker(orders, positions, broker)
        check_config_change_boundary(orders, data, last_old_bar, first_new_bar)
        executed = [s["order"]["client_order_id"] for s in first_steps + second_steps if s["order"]]
        assert set(executed) <= {o["client_order_id"] for o in orders}
        assert len(orders) > len(executed)  # the heartbeat traded too, not only our steps

        # ---- INT-08: every state-changing 2xx left exactly one audit row, nothing else did
        audit = live.store.list_audit_logs(page=PageRequest(limit=MAX_PAGE_SIZE))
        assert audit.total < MAX_PAGE_SIZE, audit.total
        rows = sorted(audit.items, key=lambda r: r.id)
        from_client = [r for r in rows if r.ip == "127.0.0.1"]
        assert [(r.action, r.target_type, r.target_id) for r in from_client] == \
            [(c.action, c.target_type, c.target_id) for c in http.changes]
        assert all(r.user_id == user["id"] for r in from_client if r.action != "user.create")
        # The engine's own rows are the system's, not the user's (the asset actor's start).
        engine_rows = [r for r in rows if r.ip is None]
        assert any(r.action == "asset.started" and r.target_id == str(aid) for r in engine_rows)
        assert all(r.user_id is None for r in engine_rows)

    # ---- nothing of this engine is left on the shared cluster
    wait_for(lambda: named_actors(namespace) == [], 15, what=f"the named actors of {namespace} to be gone")


def check_orders_match_broker(orders: list[dict[str, Any]], positions: list[dict[str, Any]],
                              broker: dict[str, Any]) -> None:
    """The orders and positions the API serves equal the broker actor's records."""
    assert {o["client_order_id"] for o in orders} == set(broker)
    assert not [o for o in orders if o["status"] == "pending"]  # no step was cut short
    by_position: dict[int, list[dict[str, Any]]] = {}
    for order in orders:
        result = broker[order["client_order_id"]]
        assert order["status"] == result.status.value, (order, result)
        assert order["broker_order_id"] == result.order_id, (order, result)
        price = result.entry_price if order["action"] == "open" else result.close_price
        assert Decimal(order["filled_price"]) == q8(price), (order, result)
        assert order["position_id"] is not None, order
        by_position.setdefault(order["position_id"], []).append(order)
    assert set(by_position) == {p["id"] for p in positions}
    opened = 0
    for position in positions:
        mine = {o["action"]: o for o in by_position[position["id"]]}
        entry = broker[mine["open"]["client_order_id"]]
        assert Decimal(position["entry_price"]) == q8(entry.entry_price), position
        assert Decimal(position["quantity"]) == q8(entry.quantity), position
        if position["is_open"]:
            opened += 1
            assert "close" not in mine, position
            continue
        close = broker[mine["close"]["client_order_id"]]
        assert Decimal(position["close_price"]) == q8(close.close_price), position
        assert Decimal(position["realized_pnl"]) == q8(close.pnl), position
    assert opened <= 1  # sma_cross with max_positions 1: at most the last reversal is open
    assert len(positions) - opened >= 1  # and it closed at least one trade


def check_config_change_boundary(orders: list[dict[str, Any]], data: MarketData,
                                 last_old_bar: int, first_new_bar: int) -> None:
    """Opens made at bars up to the last step under the old config carry its quantity;
    opens from the first step under the new config on carry the new one."""
    old_end = int(data.timestamps[last_old_bar])
    new_start = int(data.timestamps[first_new_bar])
    opens = [o for o in orders if o["action"] == "open"]
    olds = [o for o in opens if bar_ns_of(o["client_order_id"]) <= old_end]
    news = [o for o in opens if bar_ns_of(o["client_order_id"]) >= new_start]
    assert olds and news
    assert {Decimal(o["quantity"]) for o in olds} == {q8(STRATEGY["quantity"])}
    assert {Decimal(o["quantity"]) for o in news} == {q8(CHANGED["quantity"])}


@ray.remote(num_cpus=0)
class _Failing:
    """A real actor that fails the ways an engine actor can, for the client's error contract."""

    async def fail(self, kind: str) -> None:
        import asyncio

        from engine.errors import DomainError, NotFound

        if kind == "not_found":
            raise NotFound("asset 7 not found")
        if kind == "conflict":
            raise DomainError("asset 7 is not running in portfolio 3")
        if kind == "inner_timeout":  # like supervisor.reload_asset waiting on a busy asset
            await asyncio.wait_for(asyncio.sleep(10), 0.01)
        raise RuntimeError("a bug inside the engine")

    async def slow(self) -> None:
        import asyncio

        await asyncio.sleep(30)


def _wait_until_dead(actor: Any, within_s: float = 30.0) -> None:
    from ray.exceptions import RayActorError, RayTaskError

    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            ray.get(actor.fail.remote("not_found"), timeout=10)
        except RayActorError:
            return
        except RayTaskError:  # still alive: it answered with its error
            time.sleep(0.05)
    raise AssertionError(f"actor still alive {within_s:g} s after ray.kill")


def test_engine_errors_reach_the_gateway_as_its_error_contract(ray_session) -> None:
    """``EngineClient``'s calls give the gateway ``api.engine_handle``'s errors (404, 409,
    503), never a raw Ray exception (a 500)."""
    from actors.engine_client import get_for_gateway
    from engine.errors import DomainError, NotFound, TemporaryError

    actor = _Failing.remote()
    with pytest.raises(NotFound, match="^asset 7 not found$"):
        get_for_gateway(actor.fail.remote("not_found"), "lookup", 10)
    with pytest.raises(DomainError, match="^asset 7 is not running in portfolio 3$"):
        get_for_gateway(actor.fail.remote("conflict"), "step", 10)
    with pytest.raises(TemporaryError, match="^reload: timed out inside the engine$"):
        get_for_gateway(actor.fail.remote("inner_timeout"), "reload", 10)
    with pytest.raises(TemporaryError, match=r"^step: failed inside the engine \(RuntimeError\)$"):
        get_for_gateway(actor.fail.remote("bug"), "step", 10)
    with pytest.raises(TemporaryError, match="^status: no answer within 0.2 s$"):
        get_for_gateway(actor.slow.remote(), "status", 0.2)
    ray.kill(actor, no_restart=True)
    _wait_until_dead(actor)  # ray.kill is asynchronous: a call sent at once may still run
    with pytest.raises(TemporaryError, match="^step: actor unavailable$"):
        get_for_gateway(actor.fail.remote("conflict"), "step", 10)
