"""Every shipped config in configs/ passes the config validation, and lts run's settings
carry what the actors need."""

from __future__ import annotations

import pytest

from actors.runtime import actor_settings
from engine.config import build_config
from engine.config.files import bundled_configs

NAMES = ["default", "simulation", "prediction_csv", "prediction_api", "oanda_practice", "cluster"]


def test_all_configs_are_shipped() -> None:
    assert set(NAMES) <= set(bundled_configs())


@pytest.mark.parametrize("name", NAMES)
def test_config_validates(name: str) -> None:
    config = build_config(name, {}).config
    assert config.source("mode").kind != "" and config["mode"] in ("simulation", "live")
    settings = actor_settings(config)
    assert settings.database_url == config["database_url"]
    assert settings.global_latency > 0
