"""The supervisor's state machine (``actors.supervision.Supervision``) without a cluster.

The children are plain Python objects implementing ``actors.children.ChildHandle`` (the
seam the supervisor talks to its asset actors through); the records go to a real SQLite
database through the real ``StoreProxy`` (local writes), so the restart audit rows, the
errored asset and a restarted supervisor's history are the ones the engine writes.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from actors.children import ChildDied, NameTaken
from actors.restart_policy import RestartPolicy
from actors.store_proxy import StoreProxy
from actors.supervision import RESTART_AUDIT_ACTION, Supervision
from engine.errors import DataError
from persistence.records import PageRequest
from tests.fixtures.db_fixtures import seed_owner_portfolio

_pids = itertools.count(1000)


class FakeChild:
    """An asset actor as the supervisor sees it: it starts, steps, dies when told to."""

    def __init__(self, asset_id: int, start: Callable[[], Any] | None = None) -> None:
        self.asset_id = asset_id
        self.pid = next(_pids)
        self._start = start
        self._dead = asyncio.Event()
        self.started = self.stopped = self.killed = False
        self.reattached = 0

    def die(self) -> None:
        """``kill -9`` of the actor's process."""
        self._dead.set()

    async def start(self, shared_data: dict[str, Any] | None) -> dict[str, Any]:
        if self._start is not None:
            await self._start()
        self.started = True
        return {"pid": self.pid, "finished": False}

    async def step(self, capital: str | None = None, settle: bool = False) -> dict[str, Any]:
        if self._dead.is_set():
            raise ChildDied("gone")
        return {"asset_id": self.asset_id, "ok": True, "action": "hold"}

    async def steps(self, max_bars: int, budget_ms: float, capital: str | None = None) -> dict[str, Any]:
        return {"bars": 0, "last": await self.step(capital)}

    async def watch(self) -> None:
        await self._dead.wait()
        raise ChildDied("gone")

    async def reload(self) -> None:
        return None

    async def reattach_broker(self) -> dict[str, Any]:
        if self._dead.is_set():
            raise ChildDied("gone")
        self.reattached += 1
        return {}

    async def stop(self) -> bool:
        self.stopped = True
        return True

    def kill(self) -> None:
        self.killed = True
        self._dead.set()


class FakeChildren:
    """``ChildFactory``: every spawn a new ``FakeChild``; ``start`` scripts their starts,
    ``taken`` makes the first spawns find the name still held."""

    def __init__(self, start: Callable[[], Any] | None = None, taken: int = 0) -> None:
        self.spawned: list[FakeChild] = []
        self._start = start
        self._taken = taken

    def spawn(self, asset_id: int) -> FakeChild:
        if self._taken:
            self._taken -= 1
            raise NameTaken(f"asset:{asset_id}")
        child = FakeChild(asset_id, self._start)
        self.spawned.append(child)
        return child

    def share(self, data: Any) -> Any:
        return data


@pytest.fixture
def world(sqlite_store: Any, sqlite_db_url: str) -> dict[str, Any]:
    seeded = seed_owner_portfolio(sqlite_store)
    return {"store": sqlite_store, "proxy": StoreProxy(sqlite_db_url, local_writes=True),
            "portfolio_id": seeded.portfolio_id, "asset_id": seeded.asset_id}


def _supervision(world: dict[str, Any], factory: FakeChildren, *, run_id: str = "run-1",
                 policy: RestartPolicy | None = None, start_timeout_s: float = 5.0) -> Supervision:
    return Supervision(world["portfolio_id"], store=world["proxy"], factory=factory,
                       policy=policy or RestartPolicy(max_restarts=2, window_s=60, backoff_start_s=0.01,
                                                      backoff_max_s=0.02),
                       stopping=asyncio.Event(), run_id=run_id, run_started_at=0.0, start_timeout_s=start_timeout_s,
                       call_timeout_s=1.0)


async def _until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def _restart_rows(store: Any, asset_id: int) -> list[Any]:
    rows = store.list_audit_logs(action=RESTART_AUDIT_ACTION, page=PageRequest(limit=100)).items
    return [r for r in rows if str(r.target_id) == str(asset_id)]


def test_a_dead_child_is_restarted_with_a_new_actor_and_the_restart_audited(world: dict[str, Any]) -> None:
    async def scenario() -> None:
        factory = FakeChildren()
        supervision = _supervision(world, factory)
        running: list[int] = []
        supervision.on_running = lambda child: running.append(child.asset_id)
        await supervision.start(world["asset_id"])
        child = supervision.children[world["asset_id"]]
        assert child.state == "running" and child.pid == factory.spawned[0].pid
        factory.spawned[0].die()
        await _until(lambda: len(factory.spawned) == 2 and child.state == "running", "the restart")
        assert factory.spawned[0].killed  # its name freed at once
        assert child.restarts == 1 and child.pid == factory.spawned[1].pid
        assert running == [world["asset_id"]] * 2  # the heartbeat was told both times
        await supervision.settle_background()

    asyncio.run(scenario())
    rows = _restart_rows(world["store"], world["asset_id"])
    assert [(r.details["run"], r.details["restart"]) for r in rows] == [("run-1", 1)]


def test_past_the_limit_the_asset_is_errored_in_the_database_and_not_restarted(world: dict[str, Any]) -> None:
    async def scenario() -> Supervision:
        factory = FakeChildren()
        supervision = _supervision(world, factory)
        await supervision.start(world["asset_id"])
        child = supervision.children[world["asset_id"]]
        for n in range(3):  # the limit is 2 restarts within the window
            await _until(lambda: child.state in ("running", "errored"), "a running child")
            factory.spawned[-1].die()
            await _until(lambda: len(factory.spawned) == n + 2 or child.state == "errored", f"death {n + 1} handled")
        await _until(lambda: child.state == "errored", "giving up")
        assert len(factory.spawned) == 3 and child.restarts == 2
        assert child.last_error == "died more than 2 times within 60 s"
        await supervision.settle_background()
        return supervision

    supervision = asyncio.run(scenario())
    assert supervision.errored == 1
    asset = world["store"].get_asset(world["asset_id"])
    assert str(getattr(asset.status, "value", asset.status)) == "errored"
    assert asset.status_reason == "died more than 2 times within 60 s"
    assert len(_restart_rows(world["store"], world["asset_id"])) == 2


def test_a_start_that_fails_is_errored_at_once_without_a_restart(world: dict[str, Any]) -> None:
    async def bad_data() -> None:
        raise DataError("asset 1: data file prices.csv does not exist (data_source.path)")

    async def scenario() -> None:
        factory = FakeChildren(start=bad_data)
        supervision = _supervision(world, factory)
        await supervision.start(world["asset_id"])
        child = supervision.children[world["asset_id"]]
        assert child.state == "errored" and child.restarts == 0
        assert child.last_error is not None and "does not exist" in child.last_error
        assert len(factory.spawned) == 1 and factory.spawned[0].killed

    asyncio.run(scenario())
    assert world["store"].get_asset(world["asset_id"]).status_reason.startswith("start failed")


def test_a_start_that_hangs_counts_as_a_restart(world: dict[str, Any]) -> None:
    hangs = [True]

    async def first_hangs() -> None:
        if hangs.pop(0) if hangs else False:
            await asyncio.Event().wait()

    async def scenario() -> None:
        factory = FakeChildren(start=first_hangs)
        supervision = _supervision(world, factory, start_timeout_s=0.2)
        await supervision.start(world["asset_id"])
        child = supervision.children[world["asset_id"]]
        await _until(lambda: child.state == "running", "the second start")
        assert child.restarts == 1 and len(factory.spawned) == 2 and factory.spawned[0].killed
        await supervision.settle_background()

    asyncio.run(scenario())


def test_a_name_still_held_is_waited_for(world: dict[str, Any]) -> None:
    async def scenario() -> None:
        factory = FakeChildren(taken=3)
        supervision = _supervision(world, factory)
        await supervision.start(world["asset_id"])
        assert supervision.children[world["asset_id"]].state == "running"

    asyncio.run(scenario())


def test_a_restarted_supervisor_goes_on_from_the_recorded_restarts(world: dict[str, Any]) -> None:
    async def first_run() -> None:
        factory = FakeChildren()
        supervision = _supervision(world, factory, run_id="run-7")
        await supervision.start(world["asset_id"])
        child = supervision.children[world["asset_id"]]
        for n in range(2):
            factory.spawned[-1].die()
            await _until(lambda: len(factory.spawned) == n + 2 and child.state == "running", "a restart")
        await supervision.settle_background()

    async def second_run(run_id: str) -> tuple[int, str]:
        # The supervisor's process died; Ray re-ran its constructor with the same run.
        factory = FakeChildren()
        supervision = _supervision(world, factory, run_id=run_id)
        await supervision.load_history()
        await supervision.start(world["asset_id"])
        child = supervision.children[world["asset_id"]]
        supervision.forget_history()
        restarts = child.restarts
        factory.spawned[-1].die()  # a third death within the window: past the limit of 2
        await _until(lambda: child.state in ("errored", "running") and len(factory.spawned) >= 1
                     and (child.state == "errored" or len(factory.spawned) == 2), "the death handled")
        await supervision.settle_background()
        return restarts, child.state

    asyncio.run(first_run())
    assert asyncio.run(second_run("run-7")) == (2, "errored")


def test_another_runs_history_is_not_carried_over(world: dict[str, Any]) -> None:
    async def scenario() -> int:
        factory = FakeChildren()
        supervision = _supervision(world, factory, run_id="run-a")
        await supervision.start(world["asset_id"])
        factory.spawned[-1].die()
        child = supervision.children[world["asset_id"]]
        await _until(lambda: len(factory.spawned) == 2 and child.state == "running", "a restart")
        await supervision.settle_background()
        other = _supervision(world, FakeChildren(), run_id="run-b")
        await other.load_history()
        await other.start(world["asset_id"])
        return other.children[world["asset_id"]].restarts

    assert asyncio.run(scenario()) == 0


def test_stopping_stops_every_child_and_a_death_then_is_not_restarted(world: dict[str, Any]) -> None:
    async def scenario() -> None:
        factory = FakeChildren()
        supervision = _supervision(world, factory)
        await supervision.start(world["asset_id"])
        supervision.stopping.set()
        await supervision.stop_all()
        child = supervision.children[world["asset_id"]]
        assert child.state == "stopped" and factory.spawned[0].stopped and factory.spawned[0].killed
        await asyncio.sleep(0.1)
        assert len(factory.spawned) == 1 and child.restarts == 0

    asyncio.run(scenario())


def test_a_broker_restart_reattaches_live_children_only(world: dict[str, Any]) -> None:
    async def scenario() -> None:
        factory = FakeChildren()
        supervision = _supervision(world, factory)
        await supervision.start(world["asset_id"])
        await supervision.reattach_all()
        assert factory.spawned[0].reattached == 1
        supervision.children[world["asset_id"]].state = "restarting"
        await supervision.reattach_all()
        assert factory.spawned[0].reattached == 1  # a (re)starting asset restores its own account

    asyncio.run(scenario())
