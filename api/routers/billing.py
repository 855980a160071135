"""Billing: ``/api/billing/me`` (the caller's records) and ``/api/billing`` (admin: all)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import AdminUser, CurrentUser, PageDep, ServicesDep
from api.routers import ERROR_RESPONSES
from api.schemas.common import Page
from api.schemas.system import BillingRecordPublic

router = APIRouter(prefix="/api/billing", tags=["billing"], responses=ERROR_RESPONSES)

Since = Annotated[datetime | None, Query()]


def _page(result, page) -> Page[BillingRecordPublic]:  # noqa: ANN001
    return page.respond(Page[BillingRecordPublic], result.total,
                        [BillingRecordPublic.model_validate(b) for b in result.items])


@router.get("/me", response_model=Page[BillingRecordPublic])
async def my_billing(caller: CurrentUser, services: ServicesDep, page: PageDep, since: Since = None, until: Since = None) -> Page[BillingRecordPublic]:
    """The caller's billing records, newest first."""
    result = await services.read(
        services.store.list_billing, user_id=caller.id, since=since, until=until, page=page.to_request()
    )
    return _page(result, page)


@router.get("", response_model=Page[BillingRecordPublic])
async def all_billing(
    admin: AdminUser,
    services: ServicesDep,
    page: PageDep,
    user_id: Annotated[int | None, Query(ge=1, lt=2**63)] = None,
    since: Since = None,
    until: Since = None,
) -> Page[BillingRecordPublic]:
    """Every user's billing records (admin only), optionally one user's."""
    result = await services.read(
        services.store.list_billing, user_id=user_id, since=since, until=until, page=page.to_request()
    )
    return _page(result, page)
