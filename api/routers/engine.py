"""``/api/engine/status``: supervisors, asset actors, restarts (503 without an engine)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import CurrentUser, EngineDep, ServicesDep
from api.routers import ERROR_RESPONSES
from api.schemas.system import EngineStatus
from persistence.paging import every_item

router = APIRouter(prefix="/api/engine", tags=["engine"], responses=ERROR_RESPONSES)


# Where the engine's processes run is the operator's business: a user's view names
# states, counts and reasons, never a process id or a node.
_INTERNAL_KEYS = frozenset({"pid", "node_id", "node_ip", "actor_id", "worker_id", "address"})


def _without_internals(entry: Any) -> Any:
    if isinstance(entry, dict):
        return {k: _without_internals(v) for k, v in entry.items() if k not in _INTERNAL_KEYS}
    if isinstance(entry, list):
        return [_without_internals(v) for v in entry]
    return entry


def _visible(entries: Any, portfolio_ids: set[int]) -> Any:
    """Only entries about the caller's portfolios (entries without a portfolio id are
    engine-wide and shown to admins only), without process internals."""
    if not isinstance(entries, list):
        return entries
    return [_without_internals(e) for e in entries if isinstance(e, dict) and e.get("portfolio_id") in portfolio_ids]


@router.get("/status", response_model=EngineStatus)
def engine_status(caller: CurrentUser, services: ServicesDep, engine: EngineDep) -> EngineStatus:
    """The engine's own report. A non-admin sees only their portfolios' supervisors and assets,
    without process ids or nodes (admins see those too)."""
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
