"""``StrategyActor``: hosts one strategy plugin instance for assets that opt in
(``strategy_actors: true``). Named ``strategy:{plugin}:{config hash}`` so assets with the
same strategy and config share one actor. Most assets keep the strategy inside their own
actor instead (no hop per decision, see ``actors.asset_actor``)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from actors import naming
from actors.remote import hot_path, make_remote
from actors.runtime_settings import RuntimeSettings
from engine.data.market_data import MarketSnapshot
from engine.types import AssetContext, Decision

logger = logging.getLogger(__name__)


class StrategyActor:
    """One strategy plugin instance behind an actor."""

    RAY_OPTIONS: dict[str, Any] = {"num_cpus": 0, "max_restarts": -1, "max_task_retries": 1}

    def __init__(self, plugin_name: str, params: Mapping[str, Any]) -> None:
        from engine.plugins.loader import create_plugin

        self._strategy = create_plugin("strategy", plugin_name, dict(params))

    def needs_predictions(self) -> bool:
        return bool(getattr(self._strategy, "needs_predictions", False))

    @hot_path
    def decide(self, asset: AssetContext, snapshot: MarketSnapshot) -> Decision:
        return self._strategy.decide(asset, snapshot)


class _ActorStrategyPort:
    """``DecisionPort`` over a strategy actor (one hop per decision, with a timeout)."""

    def __init__(self, handle: Any, needs_predictions: bool, timeout_s: float) -> None:
        self._handle = handle
        self.needs_predictions = needs_predictions
        self._timeout_s = timeout_s

    async def decide(self, asset: AssetContext, snapshot: MarketSnapshot) -> Decision:
        import asyncio

        return await asyncio.wait_for(self._handle.decide.remote(asset, snapshot), self._timeout_s)


async def strategy_port(plugin_name: str, params: Mapping[str, Any], settings: RuntimeSettings) -> _ActorStrategyPort:
    """The shared strategy actor for (plugin, params), created if missing."""
    import asyncio

    digest = hashlib.sha1(json.dumps(dict(params), sort_keys=True, default=str).encode()).hexdigest()[:10]
    name = naming.strategy(f"{plugin_name}:{digest}")
    # Detached: shared by assets of several supervisors, so no single asset may own it;
    # the runtime kills every ``strategy:*`` actor on shutdown.
    handle = make_remote(StrategyActor).options(
        name=name, namespace=settings.namespace, get_if_exists=True, lifetime="detached"
    ).remote(plugin_name, dict(params))
    timeout = settings.step_timeout_s
    needs = await asyncio.wait_for(handle.needs_predictions.remote(), timeout)
    return _ActorStrategyPort(handle, needs, timeout)


__all__ = ["StrategyActor", "strategy_port"]
