"""Fan a backtest plan out as Ray tasks and gather the results as they finish.

Shape of the work on the cluster:

* one **loader task per CSV**, pinned to the driver's node (where the files are): it
  parses the file once and returns the columnar arrays, which stay in the object store;
* one **backtest task per (CSV, parameter combination)**, placed anywhere: its data
  argument is the loader's ``ObjectRef``, so Ray ships the arrays to each node at most
  once and every task on that node reads them zero-copy from shared memory;
* the driver only submits, waits (``ray.wait``), and hands each finished
  :class:`RunOutcome` to a callback that writes the run's files and keeps a summary row.

Cancellation (Ctrl-C) is cooperative: the caller sets ``cancel_event`` (the command
installs a SIGINT handler that does), the loop ``ray.cancel``s everything pending and
returns what finished, with the rest marked cancelled.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import RayError, TaskCancelledError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.backtests.execution import execute_run, load_data
from actors.backtests.outcome import RunOutcome, RunStatus
from engine.backtest.plan import BacktestPlan, RunSpec
from actors.errors import public_reason_of

logger = logging.getLogger(__name__)

WAIT_SLICE_S = 0.2  # how often the gather loop looks at the cancel flag
WAIT_WINDOW = 2000  # refs passed to one ray.wait
CANCELLED_REASON = "cancelled (interrupted)"


@ray.remote(num_cpus=1)
def _load_task(path: str, datetime_column: str, symbol: str | None) -> Any:
    return load_data(path, datetime_column=datetime_column, symbol=symbol)


@ray.remote(num_cpus=1)
def _backtest_task(spec: RunSpec, data: Any, render_png: bool, keep_trades: bool = False) -> RunOutcome:
    return execute_run(spec, data, render_png=render_png, keep_trades=keep_trades)


@dataclass(slots=True)
class BatchProgress:
    """Counts the gather loop reports after each finished run."""

    total: int
    done: int = 0
    failed: int = 0
    cancelled: int = 0


def _failure_reason(spec: RunSpec, exc: BaseException) -> str:
    """A one-line reason for a task that raised instead of returning an outcome."""
    return f"{spec.file_name}: {public_reason_of(exc, what='backtest task', generic='unexpected error')}"


def _unfinished(spec: RunSpec, status: RunStatus, reason: str) -> RunOutcome:
    return RunOutcome(
        index=spec.index,
        path=spec.path,
        label=spec.label,
        grid_params=spec.grid_params,
        strategy_params=spec.strategy_params,
        broker_params=spec.broker_params,
        status=status,
        error=reason,
    )


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:  # missing or unreadable: its loader fails at once, with the reason
        return 0


def largest_files_first(runs: Sequence[RunSpec]) -> list[RunSpec]:
    """``runs`` reordered so the biggest CSVs' runs are submitted first (a run's cost
    grows with its bars); runs of equal-sized files keep the plan's order.

    Ray starts tasks roughly in submission order, so this is longest-processing-time-
    first scheduling: the last tasks to start are the short ones, and cores do not sit
    idle at the end of a batch waiting for one long run that started late. Results are
    keyed by run index, so the order changes nothing else.
    """
    sizes = {path: _file_size(path) for path in dict.fromkeys(spec.path for spec in runs)}
    return sorted(runs, key=lambda spec: -sizes[spec.path])  # sorted() is stable


def submit_plan(
    runs: Sequence[RunSpec], plan: BacktestPlan, *, render_png: bool = True,
    keep_trades: bool = False,
) -> dict[ray.ObjectRef, RunSpec]:
    """Start the loader tasks and one backtest task per run, largest files first;
    return ref -> run.

    The driver drops its references to the loaded data right after submitting: each
    pending task holds its argument alive, so a file's arrays leave the object store
    as soon as its last run finishes.
    """
    runs = largest_files_first(runs)
    driver_node = ray.get_runtime_context().get_node_id()
    near_files = NodeAffinitySchedulingStrategy(node_id=driver_node, soft=True)
    loads: dict[str, ray.ObjectRef] = {}
    for path in dict.fromkeys(spec.path for spec in runs):
        loads[path] = _load_task.options(scheduling_strategy=near_files).remote(
            path, plan.datetime_column, plan.symbol
        )
    submitted = {
        _backtest_task.remote(spec, loads[spec.path], render_png, keep_trades): spec
        for spec in runs
    }
    loads.clear()
    return submitted


def gather(
    submitted: dict[ray.ObjectRef, RunSpec],
    *,
    on_outcome: Callable[[RunOutcome], None],
    on_progress: Callable[[BatchProgress], None] | None = None,
    cancel_event: threading.Event | None = None,
) -> bool:
    """Wait for every task, calling ``on_outcome`` once per run in completion order.

    Consumes ``submitted``: each ref is removed as its result is taken, so a finished
    run's result leaves the object store at once instead of staying pinned by the
    driver until the whole batch ends.

    Returns True when the batch was cancelled (the remaining runs were reported as
    cancelled and their tasks ``ray.cancel``-ed), False when everything finished.
    """
    pending = submitted
    progress = BatchProgress(total=len(submitted))

    def report(outcome: RunOutcome) -> None:
        progress.done += outcome.status is not RunStatus.CANCELLED
        progress.failed += outcome.status is RunStatus.FAILED
        progress.cancelled += outcome.status is RunStatus.CANCELLED
        on_outcome(outcome)
        if on_progress is not None:
            on_progress(progress)

    def take(ref: ray.ObjectRef) -> None:
        spec = pending.pop(ref)
        try:
            outcome = ray.get(ref)
        except TaskCancelledError:  # only our own cancel does this
            outcome = _unfinished(spec, RunStatus.CANCELLED, CANCELLED_REASON)
        except RayError as exc:  # task raised, worker died, object lost
            logger.error("backtest %s failed in Ray: %s", spec.label, exc)
            outcome = _unfinished(spec, RunStatus.FAILED, _failure_reason(spec, exc))
        report(outcome)

    while pending:
        if cancel_event is not None and cancel_event.is_set():
            # Runs that finished before the cancel still count as finished.
            refs = list(pending)
            done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            for ref in done:
                take(ref)
            logger.warning("cancelling %d unfinished backtests", len(pending))
            for ref in pending:
                ray.cancel(ref, force=False)
            for spec in sorted(pending.values(), key=lambda s: s.index):
                report(_unfinished(spec, RunStatus.CANCELLED, CANCELLED_REASON))
            pending.clear()
            return True
        # Wait on the oldest WAIT_WINDOW refs only (tasks finish roughly in submission
        # order), so each wait costs O(window), not O(batch), on huge batches.
        window = list(itertools.islice(pending, WAIT_WINDOW))
        ready, rest = ray.wait(window, num_returns=1, timeout=WAIT_SLICE_S)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        for ref in ready:
            take(ref)
    return False
