"""``RuntimeSettings``: built once from the merged config, typed and frozen; a bad value is
refused naming its key, before any actor starts."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from actors.runtime_settings import RuntimeSettings
from engine.config import build_config
from engine.errors import ConfigError


def test_built_from_the_merged_config_with_its_defaults() -> None:
    config = build_config("default", {}).config
    settings = RuntimeSettings.from_config(config)
    assert settings.database_url == config["database_url"]
    assert settings.step_timeout_s == float(config["step_timeout_s"])
    assert settings.bars_per_call == config["simulation_bars_per_call"]
    assert settings.max_asset_restarts == config["max_asset_restarts"]
    assert settings.namespace == "lts"
    assert settings.simulation is (config["mode"] == "simulation")


def test_frozen_and_picklable_for_ray() -> None:
    settings = RuntimeSettings.from_config({"step_timeout_s": 3.0, "data_dir": "d"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.step_timeout_s = 1.0  # type: ignore[misc]
    again = pickle.loads(pickle.dumps(settings))
    assert again == settings and again.engine_config()["data_dir"] == "d"


def test_engine_config_is_a_fresh_copy_without_runtime_keys() -> None:
    settings = RuntimeSettings.from_config({"outbound_hosts": ["a.example"], "step_timeout_s": 2.0,
                                            "prediction_api_key": "k"})
    config = settings.engine_config()
    config["outbound_hosts"] = []
    assert settings.engine_config()["outbound_hosts"] == ["a.example"]
    assert "step_timeout_s" not in config
    assert "k" not in repr(settings)  # a secret never reaches a log line through the settings


@pytest.mark.parametrize(("key", "value"), [
    ("step_timeout_s", 0), ("step_timeout_s", "10"), ("max_asset_restarts", -1), ("max_asset_restarts", 1.5),
    ("restart_window_s", 0), ("simulation_bars_per_call", 0), ("simulation_call_budget_ms", True),
    ("persistence_batch_size", 0), ("global_latency", -1),
])
def test_a_bad_value_names_its_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key):
        RuntimeSettings.from_config({key: value})
