"""The gather loop turns tasks that raise or die into failed rows, not crashes."""

from __future__ import annotations

import os
from typing import Any

import pytest

from actors.backtests.orchestrator import gather
from actors.backtests.outcome import RunOutcome, RunStatus
from actors.backtests.spec import RunSpec

pytestmark = pytest.mark.ray


def _spec(index: int) -> RunSpec:
    return RunSpec(index=index, path=f"/data/f{index}.csv", strategy="sma_cross",
                   strategy_params={}, broker_params={}, grid_params={"fast": index})


def test_raising_and_dying_tasks_become_failed_runs(ray_session: Any) -> None:
    ray = ray_session

    @ray.remote(max_retries=0)
    def raises() -> None:
        raise ValueError("boom in a strategy")

    @ray.remote(max_retries=0)
    def dies() -> None:
        os._exit(3)  # the worker process disappears mid-task

    @ray.remote
    def succeeds(spec: RunSpec) -> RunOutcome:
        return RunOutcome(index=spec.index, path=spec.path, label=spec.label,
                          grid_params=spec.grid_params, strategy_params={}, broker_params={},
                          status=RunStatus.OK, stats={"total_return": 0.1})

    specs = [_spec(i) for i in range(3)]
    submitted = {raises.remote(): specs[0], dies.remote(): specs[1], succeeds.remote(specs[2]): specs[2]}
    seen: list[RunOutcome] = []
    progress: list[tuple[int, int]] = []
    interrupted = gather(submitted, on_outcome=seen.append,
                         on_progress=lambda p: progress.append((p.done, p.failed)))
    assert interrupted is False and submitted == {}  # consumed
    by_index = {o.index: o for o in seen}
    assert by_index[0].status is RunStatus.FAILED
    assert by_index[0].error == "f0.csv: unexpected ValueError: boom in a strategy"
    assert by_index[1].status is RunStatus.FAILED
    assert by_index[1].error.startswith("f1.csv: WorkerCrashedError: ")
    assert "\n" not in by_index[1].error
    assert by_index[2].status is RunStatus.OK
    assert progress[-1] == (3, 2)
