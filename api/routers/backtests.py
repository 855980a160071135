"""Backtests over the REST API: submit, list, status + results, report download.

    POST /api/backtests               submit (202): files under the configured data_dir
    GET  /api/backtests               own runs (admins: all), newest first, paginated
    GET  /api/backtests/{id}          status, progress and every run's result
    GET  /api/backtests/{id}/report   the run's self-contained report.html

Files are named relative to the server's ``data_dir`` (globs allowed); anything that
resolves outside it — ``..``, an absolute path elsewhere, a symlink pointing out — is
refused with 422 naming the entry, before anything is recorded or run. The check is the
one policy for user-named paths, ``engine.user_paths.UserPathPolicy``.

The gateway does not import Ray: the batch runs through the engine handle's
``submit_backtest`` (``api.engine_handle.EngineHandle``; the actor runtime delegates it
to its backtest launcher). Without an engine the answer is 503.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path as PathParam, status
from fastapi.responses import FileResponse
from pydantic import Field

from api.deps import CurrentUser, PageDep, ServicesDep
from api.engine_handle import EngineHandle
from api.errors import Conflict, EngineUnavailable, InvalidInput
from api.routers import ERROR_RESPONSES
from api.schemas.common import BoundedJson, JsonObject, Page, PublicModel, PublicText, RequestModel
from engine.backtest.planning import plan_from_params
from engine.errors import NotFound
from engine.user_paths import UserPathPolicy
from persistence.records import BacktestRunRecord, Viewer

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/backtests", tags=["backtests"], responses=ERROR_RESPONSES)

MAX_FILES = 1000
MAX_RUNS_PER_REQUEST = 10_000
RunId = Annotated[int, PathParam(ge=1, lt=2**63)]
RankBy = Literal["total_return", "annualized_return", "sharpe", "sortino", "max_drawdown",
                 "win_rate", "profit_factor"]


# ---------------------------------------------------------------------------- schemas


class BacktestCreate(RequestModel):
    """A batch: files (relative to the server's data directory) x parameter grid."""

    files: list[Annotated[str, Field(min_length=1, max_length=1024)]] = Field(
        min_length=1, max_length=MAX_FILES,
        description="CSV paths or glob patterns relative to the server's data_dir")
    strategy: str = Field(min_length=1, max_length=64, description="strategy plugin name")
    # Bounded free-form JSON (depth, size, finite numbers: ``api.schemas.common``).
    params: JsonObject = Field(default_factory=dict,
                               description="strategy/broker parameters for every run")
    grid: Annotated[dict[str, list[Any]], BoundedJson] = Field(
        default_factory=dict, description="parameter -> values; one run per combination")
    rank_by: RankBy = "total_return"
    datetime_column: str = Field(default="DATE_TIME", min_length=1, max_length=64)


class BacktestRunPublic(PublicModel):
    id: int
    owner_id: int | None
    status: str
    strategy_plugin: str
    params: dict[str, Any]
    data_files: list[str]
    total_jobs: int
    completed_jobs: int
    error: PublicText | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    report_url: str | None


class BacktestResultPublic(PublicModel):
    id: int
    data_file: str
    params: dict[str, Any]
    stats: dict[str, Any]
    trades_count: int
    error: PublicText | None


class BacktestRunDetail(BacktestRunPublic):
    results: list[BacktestResultPublic]


# ---------------------------------------------------------------------------- helpers

FINISHED = ("completed", "failed", "cancelled")


def _shown(path: str | None, policy: UserPathPolicy) -> str | None:
    """A stored absolute path shown relative to ``data_dir`` (server paths stay private)."""
    return None if path is None else policy.shown(path)


def _run_public(run: BacktestRunRecord, policy: UserPathPolicy) -> dict[str, Any]:
    has_report = run.status in FINISHED and run.output_dir is not None
    return {
        "id": run.id,
        "owner_id": run.owner_id,
        "status": str(run.status),
        "strategy_plugin": run.strategy_plugin,
        "params": {k: v for k, v in run.params.items() if k != "files"},
        "data_files": [_shown(p, policy) for p in run.data_paths],
        "total_jobs": run.total_jobs,
        "completed_jobs": run.completed_jobs,
        "error": run.error,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "report_url": f"/api/backtests/{run.id}/report" if has_report else None,
    }


def _policy(services: Any) -> UserPathPolicy:
    return UserPathPolicy.for_config(services.config)


def _backtest_root(services: Any) -> Path:
    """The configured ``backtest_dir``, resolved: reports are served only from under it."""
    return services.settings.backtest_dir


def _report_file(output_dir: str | None, base: Path) -> Path | None:
    """``output_dir/report.html`` when it is a file inside ``base``, else None."""
    if not output_dir:
        return None
    try:
        report = (Path(output_dir) / "report.html").resolve()
        inside = report.is_relative_to(base) and report != base and report.is_file()
    except (OSError, RuntimeError):  # unreadable, or a symlink loop (Python 3.11)
        return None
    return report if inside else None


def _viewer(caller: Any) -> Viewer:
    return Viewer(user_id=caller.id, is_admin=caller.is_admin)


def _submitter(services: Any) -> EngineHandle:
    engine: EngineHandle | None = services.engine
    if engine is None:
        raise EngineUnavailable(
            "backtests run on the engine's Ray cluster: start the server with 'lts run' "
            "(or use the 'lts backtest' command)")
    return engine


# ---------------------------------------------------------------------------- routes


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=BacktestRunPublic,
             summary="Submit a batch of backtests")
def submit_backtest(body: BacktestCreate, caller: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    policy = _policy(services)
    files = policy.resolve_files(body.files, "files")
    plan = plan_from_params(strategy=body.strategy, files=files, set_params=body.params,
                            grid=body.grid, datetime_column=body.datetime_column)
    total = len(files)
    for values in plan.grid.values():
        total *= len(values)
    if total > MAX_RUNS_PER_REQUEST:
        raise InvalidInput(f"the batch has {total} runs; at most {MAX_RUNS_PER_REQUEST} per request")
    submitter = _submitter(services)

    run = services.writer.create_backtest_run(caller.ctx(), {
        "strategy_plugin": plan.strategy,
        "params": {**plan.to_json(), "rank_by": body.rank_by},
        "data_paths": [str(f) for f in files],
        "total_jobs": total,
    })
    out_dir = _backtest_root(services) / f"run-{run.id}"
    try:
        submitter.submit_backtest(run_id=run.id, plan=plan, out_dir=str(out_dir),
                                  ctx=caller.ctx(), rank_by=body.rank_by)
    except Exception as exc:
        logger.exception("backtest run %s could not be submitted", run.id)
        services.writer.update_backtest_run(caller.ctx(), run.id, status="failed",
                                            error=f"could not be submitted: {type(exc).__name__}")
        raise EngineUnavailable("the engine could not start the backtest; try again later") from exc
    logger.info("user %s submitted backtest run %s (%d runs)", caller.id, run.id, total)
    return _run_public(services.store.get_backtest_run(run.id), policy)


@router.get("", response_model=Page[BacktestRunPublic], summary="List backtest runs")
def list_backtests(caller: CurrentUser, services: ServicesDep, page: PageDep) -> Page[BacktestRunPublic]:
    result = services.store.list_backtest_runs(viewer=_viewer(caller), page=page.to_request())
    policy = _policy(services)
    return page.respond(Page[BacktestRunPublic], result.total,
                        (BacktestRunPublic.model_validate(_run_public(run, policy)) for run in result.items))


@router.get("/{run_id}", response_model=BacktestRunDetail, summary="A run's status and results")
def get_backtest(run_id: RunId, caller: CurrentUser,
                 services: ServicesDep) -> dict[str, Any]:
    viewer = _viewer(caller)
    run = services.store.get_backtest_run(run_id, viewer=viewer)
    policy = _policy(services)
    results = services.store.list_backtest_results(run_id, viewer=viewer)
    body = _run_public(run, policy)
    body["results"] = [
        {
            "id": r.id,
            "data_file": _shown(r.data_path, policy),
            "params": r.params,
            "stats": r.stats,
            "trades_count": r.trades_count,
            "error": r.error,
        }
        for r in results
    ]
    return body


@router.get("/{run_id}/report", response_class=FileResponse, summary="Download the HTML report",
            responses={200: {"content": {"text/html": {}}}})
def get_backtest_report(run_id: RunId, caller: CurrentUser,
                        services: ServicesDep) -> FileResponse:
    run = services.store.get_backtest_run(run_id, viewer=_viewer(caller))
    if run.status not in FINISHED:
        raise Conflict(f"backtest run {run_id} is {run.status}: the report is written when it ends")
    # The folder comes from our own database row; still, only serve the run's own
    # report.html under the configured backtest_dir (symlinks followed), never a file
    # that a link or an edited row points elsewhere (data_dir, the state_dir's secret).
    base = _backtest_root(services)
    report = _report_file(run.output_dir, base)
    if report is None:
        raise NotFound(f"backtest run {run_id} has no report")
    return FileResponse(report, media_type="text/html",
                        filename=f"backtest-{run_id}-report.html")
