"""Plugin contracts: one base class for all plugins and one base per entry-point group.

A plugin declares its parameters with defaults in ``plugin_params`` (pass 2 of the
config merge puts them under the file and CLI layers) and the names worth showing in
debug output in ``plugin_debug_vars``. Each group base lists in ``REQUIRED_METHODS``
what a class must implement; the loader refuses a class that misses any of them.

A user's per-asset config is untrusted, so a plugin also declares which parameters hold
what the operator must control: URLs the server will call (``plugin_url_params``,
checked against ``outbound_hosts``: ``engine.outbound``), files (``plugin_path_params``,
inside ``data_dir``: ``engine.user_paths``), credentials (``plugin_secret_params``:
write-only over the API, encrypted at rest: ``engine.credentials``), and the parameters
the operator's own environment may fill (``plugin_operator_env``). The runtime hands a
plugin the operator's rules with :meth:`Plugin.use_operator_policies`.
"""

from __future__ import annotations

import copy
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from engine.data.market_data import MarketData, MarketSnapshot
from engine.types import AssetContext, Decision, OrderResult, PositionView

if TYPE_CHECKING:  # engine.outbound reads the config defaults, whose package imports this module
    from engine.outbound import OutboundPolicy

GROUPS: tuple[str, ...] = ("aaa", "core", "pipeline", "strategy", "broker", "portfolio")
"""Short names of the six plugin groups; the entry-point group is ``lts.<name>``."""


class Plugin:
    """Base of every LTS plugin.

    ``plugin_params``: parameter name -> default value (the defaults' types are the
    parameters' types when the merged config is validated).
    ``plugin_debug_vars``: names of ``params`` entries reported by ``get_debug_info``.
    """

    group: ClassVar[str] = ""
    plugin_params: ClassVar[dict[str, Any]] = {}
    plugin_debug_vars: ClassVar[list[str]] = []
    REQUIRED_METHODS: ClassVar[tuple[str, ...]] = ()
    # Parameter kinds (see the module docstring): names of ``plugin_params`` entries.
    plugin_url_params: ClassVar[tuple[str, ...]] = ()
    plugin_path_params: ClassVar[tuple[str, ...]] = ()
    plugin_secret_params: ClassVar[tuple[str, ...]] = ()
    # param -> environment variable holding the operator's own value (e.g. a broker token).
    plugin_operator_env: ClassVar[dict[str, str]] = {}

    # The operator's rules, set by the runtime (never from a config). Until then: the
    # default allow-list, no user paths, and the operator's environment (operator code).
    _outbound: OutboundPolicy | None = None
    _user_paths: Any = None  # engine.user_paths.UserPathPolicy
    _operator_env: bool = True

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.params: dict[str, Any] = copy.deepcopy(dict(self.plugin_params))
        if config:
            self.set_params(**config)

    def set_params(self, **kwargs: Any) -> None:
        """Update the plugin's parameters; keys this plugin does not declare are ignored
        (the merged config carries every plugin's keys and the global ones)."""
        for key, value in kwargs.items():
            if key in self.plugin_params:
                self.params[key] = value

    def use_operator_policies(
        self, *, outbound: OutboundPolicy | None = None, user_paths: Any = None, operator_env: bool = True
    ) -> None:
        """Enforce the operator's rules: ``outbound`` (the hosts this plugin may call),
        ``user_paths`` (a ``UserPathPolicy`` for its path params) and ``operator_env``
        (False: never read the operator's environment; the runtime passed explicitly
        every credential this plugin may use)."""
        self._outbound = outbound
        self._user_paths = user_paths
        self._operator_env = operator_env

    @classmethod
    def check_untrusted_params(
        cls, params: Mapping[str, Any], *, outbound: OutboundPolicy, user_paths: Any, field: str
    ) -> None:
        """Check the URL and path params of an untrusted config (``field.key`` in the
        message): each URL against ``outbound``, each path with ``user_paths`` (a
        ``UserPathPolicy``). Raises the policy's ``ConfigError``."""
        for key in cls.plugin_url_params:
            if params.get(key) is not None:
                outbound.check_url(params[key], f"{field}.{key}")
        for key in cls.plugin_path_params:
            if params.get(key) is not None:
                user_paths.resolve_file(params[key], f"{field}.{key}")

    @property
    def outbound(self) -> OutboundPolicy:
        """The hosts this plugin may call (fail-closed: the default allow-list)."""
        from engine.outbound import default_policy

        return self._outbound if self._outbound is not None else default_policy()

    def operator_value(self, name: str) -> Any:
        """Parameter ``name``, or when it is unset the operator's environment variable
        for it (``plugin_operator_env``), unless the runtime ruled the environment out."""
        value = self.params.get(name)
        if value is None and self._operator_env and name in self.plugin_operator_env:
            value = os.environ.get(self.plugin_operator_env[name]) or None
        return value

    def user_path(self, name: str) -> Any:
        """Path parameter ``name`` (a ``Path``, or None when unset), resolved inside
        ``data_dir`` when the runtime gave a path policy (operator code: as given)."""
        value = self.params.get(name)
        if value is None or self._user_paths is None:
            return value
        return self._user_paths.resolve_file(value, f"{self.group}_config.{name}")

    def get_debug_info(self) -> dict[str, Any]:
        """The values of ``plugin_debug_vars``."""
        return {name: self.params.get(name) for name in self.plugin_debug_vars}

    def add_debug_info(self, debug_info: dict[str, Any]) -> None:
        """Merge this plugin's debug info into ``debug_info`` (in place)."""
        debug_info.update(self.get_debug_info())


class AAAPlugin(Plugin, ABC):
    """Authentication, authorisation and accounting: passwords, tokens, roles."""

    group = "aaa"
    REQUIRED_METHODS = ("hash_password", "verify_password", "create_tokens", "decode_token")

    @abstractmethod
    def hash_password(self, password: str) -> str: ...

    @abstractmethod
    def verify_password(self, password: str, password_hash: str) -> bool: ...

    @abstractmethod
    def create_tokens(self, subject: str, **claims: Any) -> dict[str, Any]:
        """Access + refresh tokens for ``subject``."""

    @abstractmethod
    def decode_token(self, token: str, expected_type: str = "access") -> dict[str, Any]:
        """Validated claims, or raise."""


class CorePlugin(Plugin, ABC):
    """Builds the web application (the FastAPI gateway)."""

    group = "core"
    REQUIRED_METHODS = ("build_app",)

    @abstractmethod
    def build_app(self, config: Mapping[str, Any], **services: Any) -> Any:
        """Return an ASGI application."""


class PipelinePlugin(Plugin, ABC):
    """The per-asset step: market data -> predictions -> decide -> execute -> record."""

    group = "pipeline"
    REQUIRED_METHODS = ("run_step",)

    @abstractmethod
    def run_step(self, *args: Any, **kwargs: Any) -> Any: ...


class StrategyPlugin(Plugin, ABC):
    """Decides what to do with one asset at one bar.

    ``decide`` sees data up to the current bar only. Strategies that need the
    prediction provider set ``needs_predictions = True``; the pipeline then fills
    ``market_data.predictions``.
    """

    group = "strategy"
    REQUIRED_METHODS = ("decide",)
    needs_predictions: ClassVar[bool] = False

    @abstractmethod
    def decide(self, asset_data: AssetContext, market_data: MarketSnapshot) -> Decision: ...

    def prepare(self, data: MarketData, predictions: Any | None = None) -> Any | None:
        """Optional vectorised precompute for fast backtests.

        Return an ``engine.strategies.signals.BarSignals`` holding, for every bar, what
        ``decide`` would want at that bar's close (computed with the same arithmetic, so
        the fast loop and a bar-by-bar run agree), or ``None`` (the default) to make the
        backtest call ``decide`` bar by bar instead.
        """
        return None


class BrokerPlugin(Plugin, ABC):
    """Executes orders. ``execute_order(action, parameters)`` is the seed's entry point:

    open  -> ``{success, order_id, entry_price}``; close -> ``{success, close_price, pnl}``.
    A repeated ``client_order_id`` must return the first result, never a second order.
    """

    group = "broker"
    REQUIRED_METHODS = (
        "execute_order",
        "open_order",
        "close_order",
        "modify_order",
        "get_open_orders",
    )

    @abstractmethod
    def execute_order(self, action: str, parameters: Mapping[str, Any]) -> OrderResult: ...

    @abstractmethod
    def open_order(self, parameters: Mapping[str, Any]) -> OrderResult: ...

    @abstractmethod
    def close_order(self, parameters: Mapping[str, Any]) -> OrderResult: ...

    @abstractmethod
    def modify_order(self, parameters: Mapping[str, Any]) -> OrderResult: ...

    @abstractmethod
    def get_open_orders(self) -> list[PositionView]: ...


class PortfolioPlugin(Plugin, ABC):
    """Allocates a portfolio's capital across its assets."""

    group = "portfolio"
    REQUIRED_METHODS = ("allocate",)

    @abstractmethod
    def allocate(
        self, portfolio: Mapping[str, Any], assets: Sequence[Mapping[str, Any]]
    ) -> dict[Any, Decimal]:
        """Return asset id -> allocated capital."""


GROUP_BASES: dict[str, type[Plugin]] = {
    "aaa": AAAPlugin,
    "core": CorePlugin,
    "pipeline": PipelinePlugin,
    "strategy": StrategyPlugin,
    "broker": BrokerPlugin,
    "portfolio": PortfolioPlugin,
}
