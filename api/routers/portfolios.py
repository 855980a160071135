"""``/api/portfolios``: a user's portfolios (admins see all); activation starts the
portfolio's supervisor in the engine, deactivation stops it after its in-flight step."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from api.deps import CurrentUser, PageDep, ServicesDep
from api.errors import EngineUnavailable
from api.plugin_config import validate_plugin_config
from api.routers import ERROR_RESPONSES
from api.schemas.common import Message, Page
from api.schemas.portfolios import PortfolioCreate, PortfolioPublic, PortfolioUpdate
from engine.errors import TemporaryError
from persistence.records import PortfolioCreate as PortfolioSpec
from persistence.records import PortfolioUpdate as PortfolioChanges

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/portfolios", tags=["portfolios"], responses=ERROR_RESPONSES)

PortfolioId = Annotated[int, Path(ge=1, lt=2**63)]


def _viewer(caller: CurrentUser):  # noqa: ANN202 - persistence.records.Viewer | None
    return caller.ctx().viewer()


@router.get("", response_model=Page[PortfolioPublic])
async def list_portfolios(
    caller: CurrentUser,
    services: ServicesDep,
    page: PageDep,
    is_active: Annotated[bool | None, Query()] = None,
    owner_id: Annotated[int | None, Query(ge=1, lt=2**63, description="admins: one owner's")] = None,
) -> Page[PortfolioPublic]:
    """The caller's portfolios (an admin sees everyone's, optionally one owner's)."""
    result = await services.read(
        services.store.list_portfolios,
        viewer=_viewer(caller), owner_id=owner_id, is_active=is_active, page=page.to_request(),
    )
    return page.respond(Page[PortfolioPublic], result.total,
                        [PortfolioPublic.model_validate(p) for p in result.items])


@router.post("", response_model=PortfolioPublic, status_code=status.HTTP_201_CREATED)
def create_portfolio(body: PortfolioCreate, caller: CurrentUser, services: ServicesDep) -> PortfolioPublic:
    """A new (inactive) portfolio owned by the caller."""
    validate_plugin_config("portfolio", body.portfolio_plugin, body.portfolio_config, field="portfolio_config")
    record = services.writer.create_portfolio(caller.ctx(), PortfolioSpec(**body.model_dump()))
    return PortfolioPublic.model_validate(record)


@router.get("/{portfolio_id}", response_model=PortfolioPublic)
async def get_portfolio(portfolio_id: PortfolioId, caller: CurrentUser, services: ServicesDep) -> PortfolioPublic:
    record = await services.read(services.store.get_portfolio, portfolio_id, viewer=_viewer(caller))
    return PortfolioPublic.model_validate(record)


@router.put("/{portfolio_id}", response_model=PortfolioPublic)
def update_portfolio(
    portfolio_id: PortfolioId, body: PortfolioUpdate, caller: CurrentUser, services: ServicesDep
) -> PortfolioPublic:
    """Change the fields given (others keep their value)."""
    current = services.store.get_portfolio(portfolio_id, viewer=_viewer(caller))
    plugin = body.portfolio_plugin or current.portfolio_plugin
    if body.portfolio_plugin is not None or body.portfolio_config is not None:
        config = body.portfolio_config if body.portfolio_config is not None else current.portfolio_config
        validate_plugin_config("portfolio", plugin, config, field="portfolio_config")
    changes = PortfolioChanges(**body.model_dump(exclude_unset=True))
    return PortfolioPublic.model_validate(services.writer.update_portfolio(caller.ctx(), portfolio_id, changes))


@router.delete("/{portfolio_id}", response_model=Message)
def delete_portfolio(portfolio_id: PortfolioId, caller: CurrentUser, services: ServicesDep) -> Message:
    """Delete an inactive portfolio with its assets, orders and positions."""
    services.writer.delete_portfolio(caller.ctx(), portfolio_id)
    return Message(message=f"portfolio {portfolio_id} deleted")


@router.post("/{portfolio_id}/activate", response_model=PortfolioPublic)
def activate_portfolio(portfolio_id: PortfolioId, caller: CurrentUser, services: ServicesDep) -> PortfolioPublic:
    """Mark the portfolio active and, when the engine runs, start its supervisor (which
    trades its active assets on the portfolio's heartbeat)."""
    record = services.writer.activate_portfolio(caller.ctx(), portfolio_id)
    if services.engine is not None:
        try:
            services.engine.activate_portfolio(portfolio_id)
        except TemporaryError as exc:
            # Keep the database truthful: the supervisor did not start.
            services.writer.deactivate_portfolio(caller.ctx(), portfolio_id)
            raise EngineUnavailable(f"portfolio {portfolio_id} could not be started: {exc}") from None
    return PortfolioPublic.model_validate(record)


@router.post("/{portfolio_id}/deactivate", response_model=PortfolioPublic)
def deactivate_portfolio(portfolio_id: PortfolioId, caller: CurrentUser, services: ServicesDep) -> PortfolioPublic:
    """Stop the portfolio's supervisor after its in-flight step and mark it inactive."""
    services.store.get_portfolio(portfolio_id, viewer=_viewer(caller))  # 404 before touching the engine
    if services.engine is not None:
        try:
            services.engine.deactivate_portfolio(portfolio_id)
        except TemporaryError as exc:
            raise EngineUnavailable(f"portfolio {portfolio_id} could not be stopped: {exc}") from None
    return PortfolioPublic.model_validate(services.writer.deactivate_portfolio(caller.ctx(), portfolio_id))
