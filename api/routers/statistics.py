"""``/api/statistics``: figures the engine records per portfolio / asset / cycle."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import CurrentUser, PageDep, ServicesDep
from api.routers import ERROR_RESPONSES
from api.schemas.common import Page
from api.schemas.system import StatisticPublic

router = APIRouter(prefix="/api/statistics", tags=["statistics"], responses=ERROR_RESPONSES)


@router.get("", response_model=Page[StatisticPublic])
async def list_statistics(
    caller: CurrentUser,
    services: ServicesDep,
    page: PageDep,
    portfolio_id: Annotated[int | None, Query(ge=1, lt=2**63)] = None,
    asset_id: Annotated[int | None, Query(ge=1, lt=2**63)] = None,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    name: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
) -> Page[StatisticPublic]:
    """Statistics of the caller's portfolios (admins: all, including engine-wide ones)."""
    result = await services.read(
        services.store.list_statistics,
        viewer=caller.ctx().viewer(), portfolio_id=portfolio_id, asset_id=asset_id,
        kind=kind, name=name, since=since, until=until, page=page.to_request(),
    )
    return Page[StatisticPublic](
        items=[StatisticPublic.model_validate(s) for s in result.items],
        total=result.total, page=page.page, page_size=page.page_size,
    )
