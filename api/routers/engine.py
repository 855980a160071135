"""``/api/engine/status``: supervisors, asset actors, restarts (503 without an engine)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import CurrentUser, EngineDep, ServicesDep
from api.routers import ERROR_RESPONSES
from api.schemas.system import EngineStatus
from persistence.paging import every_item

router = APIRouter(prefix="/api/engine", tags=["engine"], responses=ERROR_RESPONSES)


def _visible(entries: Any, portfolio_ids: set[int]) -> Any:
    """Only entries about the caller's portfolios (entries without a portfolio id are
    engine-wide and shown to admins only)."""
    if not isinstance(entries, list):
        return entries
    return [e for e in entries if isinstance(e, dict) and e.get("portfolio_id") in portfolio_ids]


@router.get("/status", response_model=EngineStatus)
def engine_status(caller: CurrentUser, services: ServicesDep, engine: EngineDep) -> EngineStatus:
    """The engine's own report. A non-admin sees only their portfolios' supervisors and assets."""
    report = dict(engine.status())
    running = bool(report.pop("running", True))
    if not caller.is_admin:
        viewer = caller.ctx().viewer()
        owned = {p.id for p in every_item(lambda page: services.store.list_portfolios(viewer=viewer, page=page))}
        report = {
            key: _visible(value, owned)
            for key, value in report.items()
            if isinstance(value, list)
        }
    return EngineStatus(running=running, details=report)
