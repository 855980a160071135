"""The default portfolio plugin: split a portfolio's capital across its active assets.

Equal weight unless weights are configured, either per asset (an asset's ``weight``, or
``weight`` inside its ``allocation`` config) or in this plugin's ``weights`` parameter
(keyed by asset id or symbol). Amounts are ``Decimal`` rounded *down* to ``quantum`` so the
allocations never add up to more than the portfolio's ``total_capital``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from engine.errors import ConfigError
from engine.plugins.base import PortfolioPlugin
from engine.types import to_decimal

logger = logging.getLogger(__name__)


def _field(obj: Any, name: str, default: Any = None) -> Any:
    """Read ``name`` from a mapping or an object (Store records are either)."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


class DefaultPortfolio(PortfolioPlugin):
    """Equal-weight (or configured-weight) allocation of ``total_capital``."""

    plugin_params = {
        "weights": {},  # asset id or symbol -> relative weight; empty = equal weight
        "quantum": "0.01",  # allocations are rounded down to this step
    }
    plugin_debug_vars = ["weights", "quantum"]

    def allocate(
        self, portfolio: Mapping[str, Any], assets: Sequence[Mapping[str, Any]]
    ) -> dict[Any, Decimal]:
        """Return asset id -> allocated capital for the *active* assets of ``portfolio``.

        Raises ``ConfigError`` naming the asset and the key when a weight is negative or
        not a number, or when the portfolio's ``total_capital`` is missing or negative.
        """
        portfolio_id = _field(portfolio, "id")
        total = self._decimal(_field(portfolio, "total_capital"), f"portfolio {portfolio_id} total_capital")
        if total < 0:
            raise ConfigError(f"portfolio {portfolio_id}: total_capital must be >= 0, got {total}")
        quantum = self._decimal(self.params.get("quantum", "0.01"), "portfolio plugin parameter 'quantum'")
        if quantum <= 0:
            raise ConfigError(f"portfolio plugin parameter 'quantum' must be > 0, got {quantum}")

        active = [a for a in assets if _field(a, "is_active", _field(a, "active", True))]
        if not active:
            return {}
        weights = [self._weight_of(asset) for asset in active]
        weight_sum = sum(weights, Decimal(0))
        if weight_sum == 0:
            # Every weight zero (or none configured): equal split.
            weights = [Decimal(1)] * len(active)
            weight_sum = Decimal(len(active))
        allocation: dict[Any, Decimal] = {}
        for asset, weight in zip(active, weights):
            share = (total * weight / weight_sum).quantize(quantum, rounding=ROUND_DOWN)
            allocation[_field(asset, "id")] = share
        logger.debug("portfolio %s: allocated %s across %d assets", portfolio_id, total, len(active))
        return allocation

    def _weight_of(self, asset: Mapping[str, Any]) -> Decimal:
        asset_id = _field(asset, "id")
        configured: Mapping[str, Any] = self.params.get("weights") or {}
        raw: Any = None
        for key in (asset_id, str(asset_id), _field(asset, "symbol")):
            if key is not None and key in configured:
                raw = configured[key]
                break
        if raw is None:
            raw = _field(asset, "weight")
        if raw is None:
            allocation_cfg = _field(asset, "allocation") or _field(asset, "allocation_config") or {}
            if isinstance(allocation_cfg, Mapping):
                raw = allocation_cfg.get("weight")
        if raw is None:
            return Decimal(1)
        weight = self._decimal(raw, f"asset {asset_id} weight")
        if weight < 0:
            raise ConfigError(f"asset {asset_id}: weight must be >= 0, got {weight}")
        return weight

    @staticmethod
    def _decimal(value: Any, where: str) -> Decimal:
        try:
            result = to_decimal(value)
        except (ValueError, InvalidOperation) as exc:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from exc
        if result is None:
            raise ConfigError(f"{where}: missing (expected a number)")
        if not result.is_finite():
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return result
