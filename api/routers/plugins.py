"""``/api/plugins``: every installed plugin per group, with its parameters and defaults."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter

from api.deps import CurrentUser
from api.routers import ERROR_RESPONSES
from api.schemas.system import PluginGroupPublic, PluginPublic
from engine.plugins.loader import describe_plugins

router = APIRouter(prefix="/api/plugins", tags=["plugins"], responses=ERROR_RESPONSES)


def _json_safe(params: dict[str, Any]) -> dict[str, Any]:
    """Plugin defaults as JSON (a default JSON cannot hold is shown as its text)."""
    return json.loads(json.dumps(params, default=str))


@router.get("", response_model=list[PluginGroupPublic])
def list_plugins(caller: CurrentUser) -> list[PluginGroupPublic]:
    """What can go in an asset's ``strategy_plugin`` / ``broker_plugin`` / ... and which
    parameters each plugin's config accepts."""
    groups = describe_plugins()
    return [
        PluginGroupPublic(
            group=group,
            plugins=[
                PluginPublic(
                    group=info.group, name=info.name, entry_point=info.entry_point,
                    description=info.description, params=_json_safe(info.params), error=info.error,
                )
                for info in infos
            ],
        )
        for group, infos in groups.items()
    ]
