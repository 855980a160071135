"""``default_core``: the core plugin, whose ``build_app`` returns the FastAPI gateway."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.plugins.base import CorePlugin


class DefaultCore(CorePlugin):
    """Builds the LTS REST gateway (``api.app.create_app``)."""

    plugin_params: dict[str, Any] = {}
    plugin_debug_vars: list[str] = []

    def build_app(self, config: Mapping[str, Any], **services: Any) -> Any:
        """The ASGI app. ``services``: ``store``, ``engine`` (an ``EngineHandle``) and
        ``aaa`` (an AAA plugin instance), each optional (see ``create_app``)."""
        from api.app import create_app  # FastAPI is imported only when an app is built

        unknown = set(services) - {"store", "engine", "aaa"}
        if unknown:
            raise TypeError(f"build_app: unknown services {sorted(unknown)}; use store, engine, aaa")
        return create_app(config, **services)
