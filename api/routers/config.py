"""``/api/config`` (admin): the gateway's merged configuration, secrets hidden."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter

from api.deps import AdminUser, ServicesDep
from api.routers import ERROR_RESPONSES
from api.schemas.system import ConfigEntryPublic, ConfigPublic
from engine.config import is_secret_key

router = APIRouter(prefix="/api/config", tags=["config"], responses=ERROR_RESPONSES)

HIDDEN = "<hidden>"
_URL_PASSWORD = re.compile(r"(://[^:/@]+:)[^@]*@")


def _shown(key: str, value: Any) -> Any:
    if value is None:
        return None
    if is_secret_key(key):
        return HIDDEN
    if isinstance(value, str) and "://" in value:
        return _URL_PASSWORD.sub(rf"\1{HIDDEN}@", value)  # database_url with a password
    return value


def _source(config: Any, key: str) -> str:
    source = getattr(config, "source", None)
    if callable(source):
        try:
            return str(source(key))
        except Exception:  # a plain dict config, or a key without recorded source
            return "unknown"
    return "unknown"


@router.get("", response_model=ConfigPublic)
async def get_config(admin: AdminUser, services: ServicesDep) -> ConfigPublic:
    """Every config value with where it came from (admin only); secrets are hidden."""
    config = services.config
    entries = [
        ConfigEntryPublic(key=key, value=_shown(key, config[key]), source=_source(config, key))
        for key in sorted(config)
    ]
    return ConfigPublic(values=entries)
