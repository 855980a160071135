"""Run a whole :class:`BacktestPlan` on Ray and write its reports: the one entry point the
CLI command, the REST API's background runner and the tests share.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from actors.backtests.orchestrator import BatchProgress, gather, submit_plan
from actors.backtests.outcome import RunOutcome, RunStatus, SummaryRow
from actors.backtests.progress import ProgressBar
from actors.backtests.report import ReportWriter
from engine.backtest.plan import BacktestPlan

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_INTERRUPTED = 130  # the shell convention for "ended by SIGINT"


class BatchRecorder(Protocol):
    """Where a batch's progress and results are stored (the database, through the Store)."""

    def started(self, plan: BacktestPlan, total: int, out_dir: Path) -> None: ...

    def run_finished(self, row: SummaryRow) -> None: ...

    def finished(self, counts: dict[str, int], *, interrupted: bool, report: Path | None) -> None: ...

    def fail(self, reason: str) -> None: ...


@dataclass(slots=True)
class BatchResult:
    """What a finished (or interrupted) batch produced."""

    ranked: list[SummaryRow]
    counts: dict[str, int]
    interrupted: bool
    paths: dict[str, Path]
    out_dir: Path
    outcomes: dict[int, RunOutcome] = field(default_factory=dict)  # only with keep_outcomes

    @property
    def exit_code(self) -> int:
        """0: every run succeeded; 1: some failed; 130: interrupted by the user."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_OK if self.counts.get("ok", 0) == self.counts.get("total", 0) else EXIT_SOME_FAILED


def run_batch(
    plan: BacktestPlan,
    out_dir: Path,
    *,
    rank_by: str = "total_return",
    progress_stream: TextIO | None = None,
    cancel_event: threading.Event | None = None,
    recorder: BatchRecorder | None = None,
    keep_outcomes: bool = False,
    render_png: bool = True,
    on_progress: Callable[[BatchProgress], None] | None = None,
) -> BatchResult:
    """Run every (file, combination) of ``plan`` as a Ray task on the connected cluster,
    write the per-run files as runs finish and the summaries at the end.

    Ray must already be initialised (the command connects; tests share their session).
    ``keep_outcomes`` keeps every run's full outcome (trades included) in memory: for
    tests and small batches only.
    """
    runs = plan.runs()
    writer = ReportWriter(out_dir, rank_by=rank_by)
    bar = ProgressBar(len(runs), progress_stream) if progress_stream is not None else None
    kept: dict[int, RunOutcome] = {}
    if recorder is not None:
        recorder.started(plan, len(runs), writer.out_dir)

    def on_outcome(outcome: RunOutcome) -> None:
        row = writer.add(outcome)
        if outcome.status is RunStatus.FAILED:
            # DEBUG: the table and the summary carry the reason; a log line per failed
            # run would tear the progress bar apart on a terminal.
            logger.debug("backtest %s failed: %s", outcome.label, outcome.error)
        if keep_outcomes:
            kept[outcome.index] = outcome
        if recorder is not None:
            try:
                recorder.run_finished(row)
            except Exception:  # storing must not lose the batch: the files are written
                logger.exception("could not store the result of backtest %s", outcome.label)

    def progress(state: BatchProgress) -> None:
        if bar is not None:
            bar.update(state.done, state.failed)
        if on_progress is not None:
            on_progress(state)

    logger.debug("starting %d backtests of strategy %s over %d files",
                len(runs), plan.strategy, len(plan.files))
    try:
        # gather consumes the dict of refs: results are released as they are taken.
        interrupted = gather(submit_plan(runs, plan, render_png=render_png,
                                         keep_trades=keep_outcomes),
                             on_outcome=on_outcome, on_progress=progress,
                             cancel_event=cancel_event)
    except BaseException as exc:  # Ray failed under us, or a second Ctrl-C aborted
        if recorder is not None:
            try:
                recorder.fail(f"the batch stopped: {type(exc).__name__}: {exc}")
            except Exception:
                logger.exception("could not record the failed batch")
        raise
    if bar is not None:
        bar.finish("interrupted: unfinished runs were cancelled" if interrupted else "")
    paths = writer.finish(plan.to_json(), interrupted=interrupted)
    counts = writer.counts()
    if recorder is not None:
        try:
            recorder.finished(counts, interrupted=interrupted, report=paths.get("report_html"))
        except Exception:
            logger.exception("could not store the end of the backtest batch")
    return BatchResult(
        ranked=writer.ranked(),
        counts=counts,
        interrupted=interrupted,
        paths=paths,
        out_dir=writer.out_dir,
        outcomes=kept,
    )


def connect_ray(
    address: str | None,
    *,
    namespace: str = "lts",
    num_cpus: int | None = None,
    ship_code: bool = False,
) -> bool:
    """Make sure this process is connected to Ray; return True when this call started
    (and the caller must shut down) the connection.

    ``address=None`` starts a local cluster with ``num_cpus`` (default: the machine's
    cores); ``"auto"`` or ``"HOST:PORT"`` joins a running cluster (``ray start``).
    ``ship_code`` uploads this package's code to the cluster (``runtime_env``
    ``py_modules``) for nodes where LTS is not installed.
    """
    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {
        "namespace": namespace,
        "log_to_driver": True,
        "configure_logging": False,
    }
    if address:
        kwargs["address"] = address
    else:
        kwargs["num_cpus"] = num_cpus
        kwargs["include_dashboard"] = False
    if ship_code:
        import actors
        import engine

        kwargs["runtime_env"] = {
            "py_modules": [str(Path(engine.__file__).parent), str(Path(actors.__file__).parent)]
        }
    try:
        ray.init(**kwargs)
    except ConnectionError as exc:
        import os

        from engine.errors import ConfigError

        hint = ""
        if "RAY_AUTH_MODE" not in os.environ:
            # Ray >= 2.5x clusters started with `ray start` use token authentication when
            # a token exists; a joining driver only sends it in token mode.
            hint = ("; if the cluster uses token authentication, run with RAY_AUTH_MODE=token "
                    "(token in ~/.ray/auth_token or RAY_AUTH_TOKEN)")
        raise ConfigError(f"cannot join the Ray cluster at {address!r}: {exc}{hint}") from exc
    return True
