"""``StepStats``: a failed step is counted every time and audited once per kind until the
asset steps cleanly again; the heartbeat's health is counted for the status, never written
as a statistics row. And the supervisor's calls are at most once from Ray's side."""

from __future__ import annotations

import asyncio
from typing import Any

from actors.restart_policy import RestartPolicy, RestartTracker
from actors.step_stats import StepStats
from actors.store_proxy import StoreProxy
from actors.supervision import Child, Supervision
from actors.supervisor import PortfolioSupervisor
from persistence.records import PageRequest
from tests.fixtures.db_fixtures import seed_owner_portfolio
from tests.unit.runtime.test_supervision import FakeChildren


def _summary(outcome: str, reason: str | None = None, bars: int = 1) -> dict[str, Any]:
    ok = outcome == "ok"
    last = {"ok": ok, "action": "hold", **({} if ok else {"error_kind": outcome, "reason": reason})}
    return {"bars": bars, "last": last, "took_ms": [1.0] * bars, "order_took_ms": [], "outcomes": {outcome: bars},
            "actions": {"hold": bars}, "orders": {}, "ok_actions": {"hold": bars} if ok else {}, "ok_orders": {},
            "reasons": {} if ok else {outcome: reason}}


def test_failures_are_counted_always_and_audited_once_per_kind(sqlite_store: Any, sqlite_db_url: str) -> None:
    seeded = seed_owner_portfolio(sqlite_store)
    supervision = Supervision(seeded.portfolio_id, store=StoreProxy(sqlite_db_url, local_writes=True),
                              factory=FakeChildren(), policy=RestartPolicy(), stopping=asyncio.Event(),
                              run_id="r", run_started_at=0.0)
    stats = StepStats(seeded.portfolio_id, supervision)
    child = supervision.children[seeded.asset_id] = Child(seeded.asset_id, RestartTracker(RestartPolicy()))

    async def scenario() -> None:
        await stats.count(child, _summary("strategy", "ValueError: boom", bars=3))
        await stats.count(child, _summary("strategy", "ValueError: boom"))
        await stats.count(child, _summary("broker", "broker down"))
        await stats.count(child, _summary("ok", bars=2))
        await stats.count(child, _summary("strategy", "ValueError: boom"))  # audited again after a clean step

    asyncio.run(scenario())
    rows = sqlite_store.list_audit_logs(action="asset.step_failed", page=PageRequest(limit=50)).items
    assert sorted(r.details["kind"] for r in rows) == ["broker", "strategy", "strategy"]
    summary = stats.summary()
    assert (summary["steps_failed"], summary["failed_strategy"], summary["steps_ok"]) == (6, 5, 2)
    assert stats.steps_total == 8 and child.failures == 6
    assert sqlite_store.list_statistics(portfolio_id=seeded.portfolio_id, page=PageRequest(limit=10)).items == []


def test_supervisor_calls_are_never_retried_by_ray() -> None:
    # A step asked for through the API must not run twice because Ray resent it.
    assert PortfolioSupervisor.RAY_OPTIONS["max_task_retries"] == 0
