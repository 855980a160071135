"""Plugin contracts (``base``) and the entry-point loader (``loader``)."""

from engine.plugins.base import (
    GROUP_BASES,
    GROUPS,
    AAAPlugin,
    BrokerPlugin,
    CorePlugin,
    PipelinePlugin,
    Plugin,
    PortfolioPlugin,
    StrategyPlugin,
)
from engine.plugins.loader import (
    PluginInfo,
    available_plugins,
    config_key,
    create_plugin,
    describe_plugins,
    load_configured_plugins,
    load_plugin,
)

__all__ = [
    "GROUPS",
    "GROUP_BASES",
    "AAAPlugin",
    "BrokerPlugin",
    "CorePlugin",
    "PipelinePlugin",
    "Plugin",
    "PluginInfo",
    "PortfolioPlugin",
    "StrategyPlugin",
    "available_plugins",
    "config_key",
    "create_plugin",
    "describe_plugins",
    "load_configured_plugins",
    "load_plugin",
]
