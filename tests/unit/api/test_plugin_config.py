"""Per-asset plugin configs are checked against the plugin's declared parameters."""

from __future__ import annotations

import pytest

from api.plugin_config import validate_plugin_config
from engine.errors import ConfigError, PluginError
from engine.plugins.loader import load_plugin


def test_valid_config_passes_unchanged() -> None:
    params = load_plugin("strategy", "sma_cross").plugin_params
    some = {key: value for key, value in list(params.items())[:2]}
    assert validate_plugin_config("strategy", "sma_cross", some) == some
    assert validate_plugin_config("strategy", "sma_cross", {}) == {}


def test_unknown_key_suggests_the_near_miss() -> None:
    with pytest.raises(ConfigError) as info:
        validate_plugin_config("strategy", "sma_cross", {"fsat": 3}, field="strategy_config")
    message = str(info.value)
    assert "strategy_config.fsat" in message and "did you mean 'fast'?" in message


def test_wrong_type_names_key_and_expected_type() -> None:
    default = load_plugin("strategy", "sma_cross").plugin_params["fast"]
    assert isinstance(default, int)
    with pytest.raises(ConfigError, match=r"config.fast: must be an integer"):
        validate_plugin_config("strategy", "sma_cross", {"fast": "10"}, field="config")
    with pytest.raises(ConfigError, match="an integer"):
        validate_plugin_config("strategy", "sma_cross", {"fast": True})


def test_unknown_plugin_lists_the_installed_ones() -> None:
    with pytest.raises(PluginError, match="sma_cross"):
        validate_plugin_config("strategy", "no_such_strategy", {})
