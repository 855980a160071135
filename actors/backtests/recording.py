"""Store a batch in the database through the Store: one ``backtest_runs`` row for the
batch (status, progress, output folder) and one ``backtest_results`` row per run.

Every write goes through the Store, so each carries its audit row (INT-08). Progress
updates (``completed_jobs``) are throttled: a result row per run is necessary, a status
write per run is not.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from actors.backtests.outcome import RunStatus, SummaryRow, json_number
from engine.backtest.plan import BacktestPlan
from engine.errors import ConfigError
from engine.public_text import one_line, public_text

logger = logging.getLogger(__name__)

PROGRESS_EVERY_S = 1.0  # at most one completed_jobs update per second (plus the last)


def result_spec(row: SummaryRow, out_dir: Path, data_dir: str | None = None) -> dict[str, Any]:
    """The ``backtest_results`` row of one run (paths absolute, stats JSON-safe). Its
    ``error`` is what clients see: one line, files under ``data_dir`` named relative to it
    (``engine.public_text``)."""

    def path_of(kind: str) -> str | None:
        rel = row.files.get(kind)
        return str((out_dir / rel).resolve()) if rel else None

    return {
        "data_path": row.path,
        "params": {
            "index": row.index,
            "grid": row.grid_params,
            "strategy": row.strategy_params,
            "broker": row.broker_params,
        },
        "stats": {key: json_number(value) for key, value in row.stats.items()},
        "trades_count": int(row.metric("trades") or 0),
        "trades_path": path_of("trades_csv"),
        "plot_path": path_of("equity_png"),
        "error": None if row.status is RunStatus.OK else _public(row.error or row.status.value, data_dir),
    }


def _public(text: str, data_dir: str | None) -> str:
    """An error as clients see it. A batch of the API reads files under ``data_dir`` only;
    one of ``lts backtest`` (no ``data_dir`` here) names the operator's own files, so its
    paths stay, but still on one short line."""
    return public_text(text, data_dir=data_dir) if data_dir else one_line(text)


class StoreRecorder:
    """Records one batch through a Store (``persistence.Store`` or the engine's store,
    which sends writes through the persistence actor). ``data_dir``: where an API batch's
    files are (its errors name them relative to it)."""

    def __init__(self, store: Any, ctx: Any, *, run_id: int | None = None,
                 owns_store: bool = False, data_dir: str | None = None) -> None:
        self.store = store
        self.ctx = ctx
        self.run_id = run_id
        self.data_dir = data_dir
        self._owns_store = owns_store
        self._out_dir = Path(".")
        self._completed = 0
        self._last_progress = 0.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "StoreRecorder":
        """A recorder on the configured database, acting as the system (the CLI user).

        A database without the schema gets it first (as ``lts run`` does), so a first
        ``lts backtest`` on a fresh machine records into the default SQLite file; an
        unreachable database is refused, in one line, before anything runs."""
        from persistence.records import AuditContext
        from persistence.schema import create_schema, make_sqlite_folder, missing_tables
        from persistence.store import Store

        url = str(config["database_url"])
        store: Store | None = None
        try:
            make_sqlite_folder(url)
            store = Store.from_url(url)
            missing = missing_tables(store.engine)
            if missing:
                create_schema(store.engine)
                logger.info("created the database schema at %s (%d tables)", url, len(missing))
        except Exception as exc:  # unreachable server, bad URL, unwritable folder: one line
            if store is not None:
                store.close()
            raise ConfigError(f"database_url {url!r}: cannot open the database or create its tables ({exc}); "
                              "fix it or pass --no_db") from exc
        return cls(store, AuditContext.system(), owns_store=True)

    def write_ctx(self) -> Any:
        """The audit context for one write, with its own idempotency key (the Store
        applies a key once: reusing the caller's key would turn every write after the
        first into a no-op)."""
        return self.ctx.with_request_id(uuid.uuid4().hex)

    def started(self, plan: BacktestPlan, total: int, out_dir: Path) -> None:
        self._out_dir = Path(out_dir)
        if self.run_id is None:
            record = self.store.create_backtest_run(self.write_ctx(), {
                "strategy_plugin": plan.strategy,
                "params": plan.to_json(),
                "data_paths": list(plan.files),
                "output_dir": str(self._out_dir.resolve()),
                "total_jobs": total,
            })
            self.run_id = record.id
        self.store.update_backtest_run(self.write_ctx(), self.run_id, status="running",
                                       total_jobs=total, output_dir=str(self._out_dir.resolve()))
        logger.info("backtest run %s: %d jobs started", self.run_id, total)

    def run_finished(self, row: SummaryRow) -> None:
        self.store.record_backtest_result(self.write_ctx(), self.run_id, result_spec(row, self._out_dir, self.data_dir))
        self._completed += 1
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_EVERY_S:
            self._last_progress = now
            self.store.update_backtest_run(self.write_ctx(), self.run_id, completed_jobs=self._completed)

    def finished(self, counts: dict[str, int], *, interrupted: bool, report: Path | None) -> None:
        """Final status: cancelled when interrupted, failed when no run succeeded,
        otherwise completed (failed runs are counted in ``error``)."""
        if interrupted:
            status = "cancelled"
        elif counts.get("ok", 0) == 0 and counts.get("total", 0) > 0:
            status = "failed"
        else:
            status = "completed"
        bad = counts.get("failed", 0)
        error = None
        if bad or counts.get("cancelled", 0):
            error = (f"{bad} of {counts.get('total', 0)} runs failed, "
                     f"{counts.get('cancelled', 0)} cancelled")
        try:
            self.store.update_backtest_run(self.write_ctx(), self.run_id, status=status,
                                           completed_jobs=self._completed, error=error)
            logger.info("backtest run %s: %s (%s)", self.run_id, status, counts)
        finally:
            self.close()

    def fail(self, reason: str) -> None:
        """Mark the run failed before or outside the batch (e.g. Ray unavailable)."""
        try:
            if self.run_id is not None:
                self.store.update_backtest_run(self.write_ctx(), self.run_id, status="failed",
                                               error=_public(reason, self.data_dir))
        finally:
            self.close()

    def close(self) -> None:
        if self._owns_store:
            self._owns_store = False
            self.store.close()
