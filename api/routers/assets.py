"""Assets: ``/api/portfolios/{id}/assets`` and ``/api/assets/{id}``.

Plugin configs are validated against the plugin's ``plugin_params`` before they are
stored; a change to a running asset reaches it through the engine's ``reload_asset``
and takes effect on its next step.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status

from api.deps import Caller, CurrentUser, PageDep, Services, ServicesDep
from api.plugin_config import split_broker_secrets, validate_plugin_config
from api.routers import ERROR_RESPONSES
from api.schemas.assets import DATA_FILE_KEYS, AllocationUpdate, AssetCreate, AssetPublic, AssetUpdate, PluginConfigUpdate
from api.schemas.common import Message, Page
from engine.errors import LTSError
from engine.user_paths import UserPathPolicy
from persistence.enums import AssetStatus
from persistence.records import AssetCreate as AssetSpec
from persistence.records import AssetUpdate as AssetChanges

logger = logging.getLogger(__name__)

router = APIRouter(tags=["assets"], responses=ERROR_RESPONSES)

Id = Annotated[int, Path(ge=1, lt=2**63)]


def _notify_engine(services: Services, asset_id: int) -> None:
    """Tell a running engine the asset changed. The database already holds the change,
    so a failure here is logged, not returned: the asset reads its config on (re)start."""
    if services.engine is None:
        return
    try:
        services.engine.reload_asset(asset_id)
    except LTSError as exc:
        logger.warning("asset %s: engine reload failed (%s); the change applies on its next start", asset_id, exc)


def _check_data_source(services: Services, source: dict[str, Any]) -> None:
    """The file a data source names must be a file inside ``data_dir`` (the one path
    policy: ``..``, absolute paths elsewhere and symlinks out are a 422 naming the key)."""
    policy = UserPathPolicy.for_config(services.config)
    for key in DATA_FILE_KEYS:
        if key in source:
            policy.resolve_file(source[key], f"data_source.{key}")


def _public(record: Any) -> AssetPublic:
    return AssetPublic.model_validate(record)


@router.get("/api/portfolios/{portfolio_id}/assets", response_model=Page[AssetPublic])
async def list_assets(
    portfolio_id: Id,
    caller: CurrentUser,
    services: ServicesDep,
    page: PageDep,
    is_active: Annotated[bool | None, Query()] = None,
    status_: Annotated[AssetStatus | None, Query(alias="status")] = None,
) -> Page[AssetPublic]:
    viewer = caller.ctx().viewer()
    await services.read(services.store.get_portfolio, portfolio_id, viewer=viewer)  # 404 when not visible
    result = await services.read(
        services.store.list_assets,
        viewer=viewer, portfolio_id=portfolio_id, is_active=is_active, status=status_, page=page.to_request(),
    )
    return page.respond(Page[AssetPublic], result.total, [_public(a) for a in result.items])


@router.post("/api/portfolios/{portfolio_id}/assets", response_model=AssetPublic, status_code=status.HTTP_201_CREATED)
def create_asset(portfolio_id: Id, body: AssetCreate, caller: CurrentUser, services: ServicesDep) -> AssetPublic:
    """Add an (inactive) asset with its strategy / broker / pipeline plugins and configs."""
    services.store.get_portfolio(portfolio_id, viewer=caller.ctx().viewer())
    for kind in ("strategy", "broker", "pipeline"):
        validate_plugin_config(kind, getattr(body, f"{kind}_plugin"), getattr(body, f"{kind}_config"),
                               field=f"{kind}_config", config=services.config)
    spec = body.model_dump()
    # the user's own credentials leave the plain config here, encrypted (write-only)
    spec["broker_config"], spec["broker_secrets"] = split_broker_secrets(body.broker_plugin, spec["broker_config"], None)
    _check_data_source(services, spec["data_source"])
    record = services.writer.create_asset(caller.ctx(), portfolio_id, AssetSpec(**spec))
    return _public(record)


@router.get("/api/assets/{asset_id}", response_model=AssetPublic)
async def get_asset(asset_id: Id, caller: CurrentUser, services: ServicesDep) -> AssetPublic:
    return _public(await services.read(services.store.get_asset, asset_id, viewer=caller.ctx().viewer()))


@router.put("/api/assets/{asset_id}", response_model=AssetPublic)
def update_asset(asset_id: Id, body: AssetUpdate, caller: CurrentUser, services: ServicesDep) -> AssetPublic:
    """Change symbol, position limit or data source (fields left out keep their value)."""
    changes = body.model_dump(exclude_unset=True)
    if changes.get("data_source") is not None:
        services.store.get_asset(asset_id, viewer=caller.ctx().viewer())  # 404 before 422 for others' assets
        _check_data_source(services, changes["data_source"])
    record = services.writer.update_asset(caller.ctx(), asset_id, AssetChanges(**changes))
    _notify_engine(services, asset_id)
    return _public(record)


@router.delete("/api/assets/{asset_id}", response_model=Message)
def delete_asset(asset_id: Id, caller: CurrentUser, services: ServicesDep) -> Message:
    """Remove an inactive asset with its orders and positions."""
    services.writer.delete_asset(caller.ctx(), asset_id)
    return Message(message=f"asset {asset_id} deleted")


def _set_plugin(kind: str, asset_id: int, body: PluginConfigUpdate, caller: Caller, services: Services) -> AssetPublic:
    current = services.store.get_asset(asset_id, viewer=caller.ctx().viewer())
    plugin = body.plugin or getattr(current, f"{kind}_plugin")
    validate_plugin_config(kind, plugin, body.config, field=f"{kind}_config", config=services.config)
    setter = getattr(services.writer, f"set_asset_{kind}")
    if kind == "broker":
        # Secrets left out (or sent back as the placeholder) keep the stored ones; null
        # removes one. Another plugin keeps only the credentials it declares.
        config, secrets = split_broker_secrets(plugin, body.config, current.broker_secrets)
        record = setter(caller.ctx(), asset_id, plugin=body.plugin, config=config, secrets=secrets)
    else:
        record = setter(caller.ctx(), asset_id, plugin=body.plugin, config=dict(body.config))
    _notify_engine(services, asset_id)
    return _public(record)


@router.patch("/api/assets/{asset_id}/strategy", response_model=AssetPublic)
def set_strategy(asset_id: Id, body: PluginConfigUpdate, caller: CurrentUser, services: ServicesDep) -> AssetPublic:
    """Switch the strategy plugin and/or replace its config (checked against its parameters)."""
    return _set_plugin("strategy", asset_id, body, caller, services)


@router.patch("/api/assets/{asset_id}/broker", response_model=AssetPublic)
def set_broker(asset_id: Id, body: PluginConfigUpdate, caller: CurrentUser, services: ServicesDep) -> AssetPublic:
    """Switch the broker plugin and/or replace its config (checked against its parameters)."""
    return _set_plugin("broker", asset_id, body, caller, services)


@router.patch("/api/assets/{asset_id}/pipeline", response_model=AssetPublic)
def set_pipeline(asset_id: Id, body: PluginConfigUpdate, caller: CurrentUser, services: ServicesDep) -> AssetPublic:
    """Switch the pipeline plugin and/or replace its config (checked against its parameters)."""
    return _set_plugin("pipeline", asset_id, body, caller, services)


@router.patch("/api/assets/{asset_id}/allocation", response_model=AssetPublic)
def set_allocation(asset_id: Id, body: AllocationUpdate, caller: CurrentUser, services: ServicesDep) -> AssetPublic:
    """Set the capital this asset trades with."""
    record = services.writer.set_asset_allocation(caller.ctx(), asset_id, allocated_capital=body.allocated_capital)
    _notify_engine(services, asset_id)
    return _public(record)


@router.post("/api/assets/{asset_id}/activate", response_model=AssetPublic)
def activate_asset(asset_id: Id, caller: CurrentUser, services: ServicesDep) -> AssetPublic:
    """Activate the asset (and clear an errored state); an active portfolio starts trading it."""
    record = services.writer.activate_asset(caller.ctx(), asset_id)
    _notify_engine(services, asset_id)
    return _public(record)


@router.post("/api/assets/{asset_id}/deactivate", response_model=AssetPublic)
def deactivate_asset(asset_id: Id, caller: CurrentUser, services: ServicesDep) -> AssetPublic:
    record = services.writer.deactivate_asset(caller.ctx(), asset_id)
    _notify_engine(services, asset_id)
    return _public(record)
