"""Trading: one step for one asset now (through the engine), orders and positions."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from api.deps import CurrentUser, PageDep, ServicesDep, require_engine
from api.routers import ERROR_RESPONSES
from api.schemas.common import Page
from api.schemas.trading import ExecuteRequest, ExecuteResult, OrderPublic, PositionPublic
from persistence.enums import OrderStatus

logger = logging.getLogger(__name__)

router = APIRouter(tags=["trading"], responses=ERROR_RESPONSES)

Id = Annotated[int, Path(ge=1, lt=2**63)]
FilterId = Annotated[int | None, Query(ge=1, lt=2**63)]


def _order_from_result(result: dict[str, Any], services: Any, viewer: Any) -> OrderPublic | None:
    """The order a step produced, read back from the database when the engine names it."""
    order = result.get("order")
    client_id = result.get("client_order_id")
    if isinstance(order, dict):
        client_id = order.get("client_order_id", client_id)
    if isinstance(client_id, str):
        record = services.store.get_order_by_client_id(client_id, viewer=viewer)
        if record is not None:
            return OrderPublic.model_validate(record)
    if isinstance(order, dict):
        try:
            return OrderPublic.model_validate(order)
        except ValueError:
            logger.warning("engine returned an order the API cannot describe: keys %s", sorted(order))
    return None


@router.post("/api/trading/execute", response_model=ExecuteResult)
def execute(body: ExecuteRequest, caller: CurrentUser, services: ServicesDep) -> ExecuteResult:
    """Run one pipeline step for one of the caller's assets now: the resulting order, or
    why the strategy held. 503 when no engine runs in this process."""
    viewer = caller.ctx().viewer()
    asset = services.store.get_asset(body.asset_id, viewer=viewer)  # 404 when not the caller's
    engine = require_engine(services)  # after the input and ownership checks
    result = engine.execute_step(asset.id)
    action = str(result.get("action", "hold"))
    reason = result.get("reason")
    order = _order_from_result(result, services, viewer)
    services.writer.audit(
        caller.ctx(),
        "trading.execute",
        target_type="asset",
        target_id=asset.id,
        details={"action": action, "client_order_id": order.client_order_id if order else None, "reason": reason},
    )
    details = {k: v for k, v in result.items() if k not in ("action", "order", "reason")}
    return ExecuteResult(
        asset_id=asset.id, action=action, order=order, reason=None if reason is None else str(reason),
        details=_jsonable(details),
    )


def _jsonable(value: Any) -> Any:
    """Engine step details as JSON-safe data (unknown objects become their text)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


@router.get("/api/orders", response_model=Page[OrderPublic])
async def list_orders(
    caller: CurrentUser,
    services: ServicesDep,
    page: PageDep,
    portfolio_id: FilterId = None,
    asset_id: FilterId = None,
    status: Annotated[list[OrderStatus] | None, Query(description="one or more statuses")] = None,
    since: Annotated[datetime | None, Query(description="created at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="created before (ISO 8601)")] = None,
) -> Page[OrderPublic]:
    """The caller's orders (admins: everyone's), newest first."""
    result = await services.read(
        services.store.list_orders,
        viewer=caller.ctx().viewer(), portfolio_id=portfolio_id, asset_id=asset_id,
        status=status or None, since=since, until=until, page=page.to_request(),
    )
    return page.respond(Page[OrderPublic], result.total,
                        [OrderPublic.model_validate(o) for o in result.items])


@router.get("/api/orders/{order_id}", response_model=OrderPublic)
async def get_order(order_id: Id, caller: CurrentUser, services: ServicesDep) -> OrderPublic:
    return OrderPublic.model_validate(await services.read(services.store.get_order, order_id, viewer=caller.ctx().viewer()))


@router.get("/api/positions", response_model=Page[PositionPublic])
async def list_positions(
    caller: CurrentUser,
    services: ServicesDep,
    page: PageDep,
    portfolio_id: FilterId = None,
    asset_id: FilterId = None,
    is_open: Annotated[bool | None, Query()] = None,
    since: Annotated[datetime | None, Query(description="opened at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="opened before (ISO 8601)")] = None,
) -> Page[PositionPublic]:
    """The caller's positions (admins: everyone's), newest first."""
    result = await services.read(
        services.store.list_positions,
        viewer=caller.ctx().viewer(), portfolio_id=portfolio_id, asset_id=asset_id,
        is_open=is_open, since=since, until=until, page=page.to_request(),
    )
    return page.respond(Page[PositionPublic], result.total,
                        [PositionPublic.model_validate(p) for p in result.items])


@router.get("/api/positions/{position_id}", response_model=PositionPublic)
async def get_position(position_id: Id, caller: CurrentUser, services: ServicesDep) -> PositionPublic:
    record = await services.read(services.store.get_position, position_id, viewer=caller.ctx().viewer())
    return PositionPublic.model_validate(record)
