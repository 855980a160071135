"""Batches submitted through the REST API, run in background threads of the process
that is the Ray driver (the one ``lts run`` starts, hosting the gateway).

The gateway never imports Ray: it calls ``submit_backtest`` on the engine handle, which
delegates here. A thread per batch only submits tasks and waits on them; the work runs
in Ray workers. At most ``max_parallel_batches`` batches gather at once; later ones
queue (their database status stays ``queued`` until they start).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from actors.backtests.batch import run_batch
from actors.backtests.recording import StoreRecorder
from engine.backtest.plan import BacktestPlan
from actors.errors import public_reason_of

logger = logging.getLogger(__name__)


class BacktestLauncher:
    """Runs API-submitted batches; writes their progress and results through ``store``."""

    def __init__(self, store: Any, *, max_parallel_batches: int = 2, data_dir: str | None = None) -> None:
        self._store = store
        self._data_dir = data_dir  # the API's batches read files under it only
        self._executor = ThreadPoolExecutor(max_workers=max_parallel_batches,
                                            thread_name_prefix="lts-backtest")
        self._cancels: dict[int, threading.Event] = {}
        self._lock = threading.Lock()

    def submit_backtest(self, *, run_id: int, plan: BacktestPlan, out_dir: str,
                        ctx: Any, rank_by: str = "total_return") -> None:
        """Queue the batch of the ``backtest_runs`` row ``run_id`` (already created by
        the caller, status ``queued``); returns at once."""
        event = threading.Event()
        with self._lock:
            self._cancels[run_id] = event
        self._executor.submit(self._run, run_id, plan, Path(out_dir), ctx, rank_by, event)

    def cancel_backtest(self, run_id: int) -> bool:
        """Ask a queued or running batch to stop; False when it is not (or no longer) here."""
        with self._lock:
            event = self._cancels.get(run_id)
        if event is None:
            return False
        event.set()
        return True

    def _run(self, run_id: int, plan: BacktestPlan, out_dir: Path, ctx: Any, rank_by: str,
             cancel: threading.Event) -> None:
        recorder = StoreRecorder(self._store, ctx, run_id=run_id, data_dir=self._data_dir)
        try:
            if cancel.is_set():
                self._store.update_backtest_run(recorder.write_ctx(), run_id, status="cancelled",
                                                error="cancelled before it started")
                return
            result = run_batch(plan, out_dir, rank_by=rank_by, cancel_event=cancel,
                               recorder=recorder)
            logger.info("backtest run %s finished: %s", run_id, result.counts)
        except Exception as exc:  # the batch could not run at all: say so in its row
            logger.exception("backtest run %s could not run", run_id)
            try:
                recorder.fail(f"the batch could not run: {public_reason_of(exc, what='backtest batch')}")
            except Exception:
                logger.exception("backtest run %s: could not record the failure", run_id)
        finally:
            with self._lock:
                self._cancels.pop(run_id, None)

    def shutdown(self, *, wait: bool = True) -> None:
        """Cancel every batch (what finished is still reported) and stop the threads."""
        with self._lock:
            events = list(self._cancels.values())
        for event in events:
            event.set()
        self._executor.shutdown(wait=wait, cancel_futures=False)
