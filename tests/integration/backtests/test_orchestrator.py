"""The gather loop turns tasks that raise or die into failed rows, not crashes."""

from __future__ import annotations

import os
from typing import Any

import pytest

from actors.backtests.orchestrator import gather
from actors.backtests.outcome import RunOutcome, RunStatus
from engine.backtest.plan import RunSpec

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
    # One line, no remote traceback; a bug's own message stays in the server log.
    assert by_index[0].error == "f0.csv: unexpected error (ValueError)"
    assert by_index[1].status is RunStatus.FAILED
    assert by_index[1].error == "f1.csv: backtest task: worker process crashed"
    assert by_index[2].status is RunStatus.OK
    assert progress[-1] == (3, 2)


def test_submit_plan_starts_the_largest_files_runs_first(ray_session: Any, tmp_path: Any) -> None:
    """Longest-processing-time first: the biggest CSV's loader and runs are submitted
    before the smaller ones', so a batch does not end waiting on one long run that
    started last; every run is still there and comes back under its own index."""
    from actors.backtests.orchestrator import submit_plan
    from engine.backtest.planning import build_plan

    import numpy as np
    import pandas as pd

    def write(name: str, bars: int) -> Any:
        times = pd.date_range("2024-01-01", periods=bars, freq="h")
        close = 1.1 + np.cumsum(np.random.default_rng(bars).normal(0, 0.001, bars))
        frame = pd.DataFrame({"DATE_TIME": times.strftime("%Y-%m-%d %H:%M:%S"), "OPEN": close,
                              "HIGH": close + 0.001, "LOW": close - 0.001, "CLOSE": close})
        path = tmp_path / name
        frame.to_csv(path, index=False)
        return path

    small, big, middle = write("small.csv", 200), write("big.csv", 900), write("middle.csv", 500)
    plan = build_plan(strategy="sma_cross", files=[small, big, middle], grid_items=["fast=3,5"],
                      set_items=["slow=12"])
    submitted = submit_plan(plan.runs(), plan, render_png=False)
    order = [spec for spec in submitted.values()]  # insertion order = submission order
    assert [s.file_name for s in order] == ["big.csv"] * 2 + ["middle.csv"] * 2 + ["small.csv"] * 2
    assert [s.grid_params["fast"] for s in order] == [3, 5] * 3
    seen: list[RunOutcome] = []
    gather(submitted, on_outcome=seen.append)
    assert sorted(o.index for o in seen) == list(range(6))
    assert all(o.status is RunStatus.OK for o in seen)
    assert {o.index: o.bars for o in seen} == {s.index: {"small.csv": 200, "big.csv": 900,
                                                        "middle.csv": 500}[s.file_name] for s in order}
