"""``GET /health``: is the gateway up, can it read the database, is an engine attached."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ServicesDep
from api.errors import error_body
from api.schemas.common import ErrorBody
from api.schemas.system import Health

logger = logging.getLogger(__name__)

router = APIRouter(tags=["system"])


@router.get("/health", response_model=Health, responses={503: {"model": ErrorBody, "description": "database unreachable"}})
async def health(services: ServicesDep) -> Health | JSONResponse:
    """Unauthenticated liveness and readiness (never rate limited)."""
    engine = "running" if services.engine is not None else "absent"
    try:
        await services.read(services.store.get_config, "__health__")
    except Exception as exc:  # any database failure means "not ready"
        logger.warning("health: database check failed: %s", type(exc).__name__)
        return JSONResponse(error_body("database_unavailable", "database unreachable", {"engine": engine}), status_code=503)
    return Health(status="ok", database="ok", engine=engine)
