"""The gateway reads its config keys once, into a frozen ``GatewaySettings``; a bad value
is refused there naming the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from api.settings import GatewaySettings
from engine.errors import ConfigError


def test_backtest_dir_log_level_and_aaa_plugin_are_typed_once(tmp_path: Path) -> None:
    settings = GatewaySettings.from_config({"backtest_dir": str(tmp_path / "runs" / ".." / "out"),
                                            "log_level": "WARNING"})
    assert settings.backtest_dir == (tmp_path / "out").resolve()
    assert settings.log_level == "warning"
    assert settings.aaa_plugin == "default_aaa"
    # A path the driver already resolved (a Path object) is taken as it is.
    assert GatewaySettings.from_config({"backtest_dir": tmp_path / "x"}).backtest_dir == (tmp_path / "x").resolve()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.log_level = "debug"  # type: ignore[misc]


@pytest.mark.parametrize("key", ["backtest_dir", "log_level"])
def test_an_empty_or_non_text_value_is_refused_naming_the_key(key: str) -> None:
    for bad in ("", 5):
        with pytest.raises(ConfigError, match=f"config key '{key}'"):
            GatewaySettings.from_config({key: bad})
