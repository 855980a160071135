"""The heartbeat (``actors.heartbeat.Heartbeat``) without a cluster: plain Python children
behind the ``ChildHandle`` seam, the portfolio and its assets in a real SQLite database.

A paced heartbeat steps every running asset once per cycle within the window of calls in
flight; an asset whose strategy raises is counted and audited while its siblings go on
(INT-04); a step past ``step_timeout_s`` is counted as a timeout and its asset gets no new
step until it has answered (no pile-up)."""

from __future__ import annotations

import asyncio
from typing import Any

from actors.heartbeat import Heartbeat
from actors.restart_policy import RestartPolicy
from actors.runtime_settings import RuntimeSettings
from actors.step_stats import StepStats
from actors.store_proxy import StoreProxy
from actors.supervision import Supervision
from persistence.records import AssetCreate, AuditContext, PageRequest
from tests.fixtures.db_fixtures import seed_owner_portfolio
from tests.unit.runtime.test_supervision import FakeChild, FakeChildren


class SteppingChild(FakeChild):
    """A child whose steps take ``delay_s``, fail (``fail``), or hang until released."""

    def __init__(self, asset_id: int, world: dict[str, Any]) -> None:
        super().__init__(asset_id)
        self.world = world
        self.steps_served = 0

    async def step(self, capital: str | None = None, settle: bool = False) -> dict[str, Any]:
        world = self.world
        world["in_flight"] += 1
        world["max_in_flight"] = max(world["max_in_flight"], world["in_flight"])
        try:
            if self.asset_id == world.get("hanging"):
                await world["release"].wait()
            await asyncio.sleep(0.005)
            self.steps_served += 1
            if self.asset_id == world.get("failing"):
                return {"asset_id": self.asset_id, "ok": False, "action": "none", "error_kind": "strategy",
                        "reason": "RuntimeError: boom"}
            return {"asset_id": self.asset_id, "ok": True, "action": "hold", "equity": "100", "open_positions": 0}
        finally:
            world["in_flight"] -= 1


class SteppingChildren(FakeChildren):
    def __init__(self, world: dict[str, Any]) -> None:
        super().__init__()
        self.world = world

    def spawn(self, asset_id: int) -> FakeChild:
        child = SteppingChild(asset_id, self.world)
        self.spawned.append(child)
        return child


def _seed(store: Any, n: int) -> tuple[int, list[int]]:
    seeded = seed_owner_portfolio(store)
    system = AuditContext.system()
    ids = [seeded.asset_id] + [store.create_asset(system, seeded.portfolio_id, AssetCreate(symbol=f"S{i}")).id
                               for i in range(n - 1)]
    for asset_id in ids:
        store.activate_asset(system, asset_id)
    store.activate_portfolio(system, seeded.portfolio_id)
    return seeded.portfolio_id, ids


def _heartbeat(portfolio_id: int, db_url: str, world: dict[str, Any], window: int,
               timeout_s: float = 5.0) -> tuple[Heartbeat, SteppingChildren]:
    settings = RuntimeSettings.from_config({"database_url": db_url, "persistence": "local", "global_latency": 0.02,
                                            "step_timeout_s": timeout_s, "paced_catch_up": False,
                                            "mode": "simulation"})
    factory = SteppingChildren(world)
    supervision = Supervision(portfolio_id, store=StoreProxy.from_settings(settings), factory=factory,
                              policy=RestartPolicy(), stopping=asyncio.Event(), run_id="r", run_started_at=0.0)
    stats = StepStats(portfolio_id, supervision)
    return Heartbeat(portfolio_id, settings, supervision, stats, factory, window), factory


async def _until(condition: Any, what: str, timeout_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def _stop(heartbeat: Heartbeat, task: "asyncio.Task[None]") -> None:
    heartbeat.stopping.set()
    heartbeat.wake.set()
    await asyncio.wait_for(task, 10)


def test_paced_cycles_step_every_asset_within_the_window_and_isolate_a_failing_one(sqlite_store: Any,
                                                                                  sqlite_db_url: str) -> None:
    portfolio_id, ids = _seed(sqlite_store, 4)
    world: dict[str, Any] = {"in_flight": 0, "max_in_flight": 0, "failing": ids[1]}

    async def scenario() -> tuple[Heartbeat, SteppingChildren]:
        heartbeat, factory = _heartbeat(portfolio_id, sqlite_db_url, world, window=2)
        task = asyncio.ensure_future(heartbeat.run())
        await _until(lambda: len(factory.spawned) == 4 and all(c.steps_served >= 5 for c in factory.spawned),
                     "five steps of every asset")
        await _stop(heartbeat, task)
        return heartbeat, factory

    heartbeat, factory = asyncio.run(scenario())
    assert world["max_in_flight"] == 2  # the window held (and was used)
    counts = heartbeat.stats.summary()
    served = {c.asset_id: c.steps_served for c in factory.spawned}
    assert counts["failed_strategy"] == served[ids[1]]
    assert counts["steps_ok"] == sum(n for a, n in served.items() if a != ids[1])
    children = heartbeat.supervision.children
    assert children[ids[1]].last_error == "strategy: RuntimeError: boom"
    assert all(children[a].last_error is None for a in ids if a != ids[1])
    audits = sqlite_store.list_audit_logs(action="asset.step_failed", page=PageRequest(limit=50)).items
    assert [a.target_id for a in audits] == [str(ids[1])]  # once, not once per step


def test_a_step_past_the_timeout_is_counted_and_its_asset_waits_for_it(sqlite_store: Any,
                                                                       sqlite_db_url: str) -> None:
    portfolio_id, ids = _seed(sqlite_store, 2)
    world: dict[str, Any] = {"in_flight": 0, "max_in_flight": 0, "hanging": ids[0]}

    async def scenario() -> tuple[Heartbeat, SteppingChildren, int]:
        world["release"] = asyncio.Event()
        heartbeat, factory = _heartbeat(portfolio_id, sqlite_db_url, world, window=0, timeout_s=0.2)
        task = asyncio.ensure_future(heartbeat.run())
        await _until(lambda: heartbeat.stats.counts["failed_timeout"] == 1, "the timeout counted")
        sibling = next(c for c in factory.spawned if c.asset_id == ids[1])
        before = sibling.steps_served
        await _until(lambda: sibling.steps_served >= before + 20, "the sibling stepping on")
        timeouts = heartbeat.stats.counts["failed_timeout"]
        world["release"].set()  # the hung step answers; its asset steps again
        hung = next(c for c in factory.spawned if c.asset_id == ids[0])
        await _until(lambda: hung.steps_served >= 3, "the released asset stepping again")
        await _stop(heartbeat, task)
        return heartbeat, factory, timeouts

    heartbeat, factory, timeouts = asyncio.run(scenario())
    assert timeouts == 1  # no new step was sent to it while the first one hung
    assert heartbeat.supervision.children[ids[0]].last_error.startswith("timeout: step took longer")
