"""``/api/statistics``: trading statistics per portfolio and per asset, computed from the
ledger (``persistence.store.trading_stats``); ``/api/statistics/records``: the rows the
engine records itself (per portfolio / asset, e.g. a supervisor's summary when it stops).

Both answer only for the caller's own portfolios (admins: all)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import CurrentUser, PageDep, ServicesDep
from api.routers import ERROR_RESPONSES
from api.schemas.common import Page
from api.schemas.system import PortfolioTradingStatisticsPublic, StatisticPublic

router = APIRouter(prefix="/api/statistics", tags=["statistics"], responses=ERROR_RESPONSES)


@router.get("", response_model=Page[PortfolioTradingStatisticsPublic])
async def trading_statistics(
    caller: CurrentUser,
    services: ServicesDep,
    page: PageDep,
    portfolio_id: Annotated[int | None, Query(ge=1, lt=2**63)] = None,
    asset_id: Annotated[int | None, Query(ge=1, lt=2**63, description="only this asset (and its portfolio)")] = None,
) -> Page[PortfolioTradingStatisticsPublic]:
    """Equity, realized and unrealized P&L, max drawdown, trades and win rate of each of
    the caller's portfolios (admins: all) and of each of its assets, from the orders and
    positions recorded so far. A page of portfolios, in id order."""
    result = await services.read(
        services.store.trading_statistics,
        viewer=caller.ctx().viewer(), portfolio_id=portfolio_id, asset_id=asset_id, page=page.to_request(),
    )
    return page.respond(Page[PortfolioTradingStatisticsPublic], result.total,
                        [PortfolioTradingStatisticsPublic.model_validate(s) for s in result.items])


@router.get("/records", response_model=Page[StatisticPublic])
async def list_statistic_records(
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
    """Statistic rows the engine recorded for the caller's portfolios (admins: all,
    including engine-wide ones), newest first."""
    result = await services.read(
        services.store.list_statistics,
        viewer=caller.ctx().viewer(), portfolio_id=portfolio_id, asset_id=asset_id,
        kind=kind, name=name, since=since, until=until, page=page.to_request(),
    )
    return page.respond(Page[StatisticPublic], result.total,
                        [StatisticPublic.model_validate(s) for s in result.items])
