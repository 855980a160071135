"""Tiny plugins the foundation tests register as entry points (through a throw-away
distribution on ``sys.path``, see ``conftest.py``): one working plugin per group, and
classes that break their group's contract in each way the loader must refuse."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from engine.data.market_data import MarketSnapshot
from engine.plugins.base import (
    AAAPlugin,
    BrokerPlugin,
    CorePlugin,
    PipelinePlugin,
    PortfolioPlugin,
    StrategyPlugin,
)
from engine.types import AssetContext, Decision, OrderResult, PositionView


class TinyAAA(AAAPlugin):
    """Test AAA plugin."""

    plugin_params = {"tiny_aaa_rounds": 4}

    def hash_password(self, password: str) -> str:
        return password[::-1]

    def verify_password(self, password: str, password_hash: str) -> bool:
        return password[::-1] == password_hash

    def create_tokens(self, subject: str, **claims: Any) -> dict[str, Any]:
        return {"access": subject}

    def decode_token(self, token: str, expected_type: str = "access") -> dict[str, Any]:
        return {"sub": token}


class TinyCore(CorePlugin):
    """Test core plugin."""

    def build_app(self, config: Mapping[str, Any], **services: Any) -> Any:
        return object()


class TinyPipeline(PipelinePlugin):
    """Test pipeline plugin."""

    def run_step(self, *args: Any, **kwargs: Any) -> Any:
        return None


class TinyStrategy(StrategyPlugin):
    """Test strategy: buys above ``level``."""

    plugin_params = {
        "fast": 3,
        "slow": 7,
        "ratio": 0.5,
        "label": "tiny",
        "enabled": True,
        "weights": [1, 2],
        # Also a global key: the global default must win over this one (pass 2).
        "api_port": 1111,
    }
    plugin_debug_vars = ["fast", "label"]

    def decide(self, asset_data: AssetContext, market_data: MarketSnapshot) -> Decision:
        return Decision.hold("tiny")


class OtherStrategy(StrategyPlugin):
    """Second test strategy, declaring ``fast`` with another default."""

    plugin_params = {"fast": 99, "other_only": "x"}

    def decide(self, asset_data: AssetContext, market_data: MarketSnapshot) -> Decision:
        return Decision.hold()


class TinyBroker(BrokerPlugin):
    """Test broker."""

    plugin_params = {"tiny_fee": 0.25}

    def execute_order(self, action: str, parameters: Mapping[str, Any]) -> OrderResult:
        return OrderResult(success=False, reason="test")

    def open_order(self, parameters: Mapping[str, Any]) -> OrderResult:
        return self.execute_order("open", parameters)

    def close_order(self, parameters: Mapping[str, Any]) -> OrderResult:
        return self.execute_order("close", parameters)

    def modify_order(self, parameters: Mapping[str, Any]) -> OrderResult:
        return self.execute_order("modify", parameters)

    def get_open_orders(self) -> list[PositionView]:
        return []


class TinyPortfolio(PortfolioPlugin):
    """Test portfolio plugin."""

    def allocate(
        self, portfolio: Mapping[str, Any], assets: Sequence[Mapping[str, Any]]
    ) -> dict[Any, Decimal]:
        return {}


# --- contract breakers ------------------------------------------------------------


class NotAPlugin:
    """Has ``decide`` but is no StrategyPlugin."""

    plugin_params: dict[str, Any] = {}

    def decide(self, asset_data: Any, market_data: Any) -> Decision:
        return Decision.hold()


class HalfBroker(BrokerPlugin):
    """Implements only ``execute_order``: the other four stay abstract."""

    def execute_order(self, action: str, parameters: Mapping[str, Any]) -> OrderResult:
        return OrderResult(success=False)


class NullDecideStrategy(StrategyPlugin):
    """Overrides ``decide`` with a non-callable: the method is missing."""

    decide = None  # type: ignore[assignment]


class BadParamsStrategy(TinyStrategy):
    """``plugin_params`` is not a dict of name -> default."""

    plugin_params = ["fast", "slow"]  # type: ignore[assignment]


def not_a_class() -> None:
    """A function registered where a class is expected."""
