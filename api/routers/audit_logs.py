"""``/api/audit-logs`` (admin): who changed what, when, from where."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import AdminUser, PageDep, ServicesDep
from api.routers import ERROR_RESPONSES
from api.schemas.common import Page
from api.schemas.system import AuditLogPublic

router = APIRouter(prefix="/api/audit-logs", tags=["audit"], responses=ERROR_RESPONSES)


@router.get("", response_model=Page[AuditLogPublic])
async def list_audit_logs(
    admin: AdminUser,
    services: ServicesDep,
    page: PageDep,
    user_id: Annotated[int | None, Query(ge=1, lt=2**63)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    target_type: Annotated[str | None, Query(max_length=32)] = None,
    target_id: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
) -> Page[AuditLogPublic]:
    """Audit rows, newest first (admin only)."""
    result = await services.read(
        services.store.list_audit_logs,
        user_id=user_id, action=action, target_type=target_type, target_id=target_id,
        since=since, until=until, page=page.to_request(),
    )
    return page.respond(Page[AuditLogPublic], result.total,
                        [AuditLogPublic.model_validate(a) for a in result.items])
