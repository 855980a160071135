"""The 2-pass merge: every precedence, with sources (seed §1.2, INT-02)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from engine.config import (
    DEFAULT_VALUES,
    ConfigSource,
    LTSConfig,
    build_config,
    merge_pass1,
    merge_pass2,
    parse_cli_pairs,
)
from engine.plugins import create_plugin
from tests.unit.foundation.conftest import TINY_CONFIG


SHARED_DEFAULTS = {
    "aaa_plugin": "default_aaa",
    "core_plugin": "default_core",
    "pipeline_plugin": "default_pipeline",
    "strategy_plugin": "default_strategy",
    "broker_plugin": "default_broker",
    "portfolio_plugin": "default_portfolio",
    "api_host": "127.0.0.1",
    "api_port": 8000,
    "database_url": "sqlite:///./lts.db",
    "global_latency": 1.0,
    "mode": "simulation",
    "ray_address": None,
    "ray_namespace": "lts",
    "log_level": "INFO",
    "data_dir": "./data",
    "prediction_provider_url": "http://127.0.0.1:8001",
    "prediction_api_key": None,
    "prediction_timeout_s": 10.0,
    "jwt_secret": None,
    "access_token_minutes": 30,
    "refresh_token_days": 7,
    "cors_origins": [],
    "rate_limit_per_minute": 60,
    "max_body_bytes": 1048576,
    "persistence_batch_size": 100,
    "persistence_batch_delay_ms": 0,
    "max_asset_restarts": 5,
    "restart_window_s": 60.0,
    "step_timeout_s": 10.0,
}
"""The global keys every area relies on (other areas may add more)."""


def test_default_values_hold_every_shared_global_key() -> None:
    assert {key: DEFAULT_VALUES.get(key, "MISSING") for key in SHARED_DEFAULTS} == SHARED_DEFAULTS


def test_every_default_value_passes_validation() -> None:
    from engine.config import validate_config

    assert dict(validate_config(merge_pass1())) == DEFAULT_VALUES


def test_pass1_defaults_only() -> None:
    config = merge_pass1()
    assert dict(config) == DEFAULT_VALUES
    assert config.source("api_port") == ConfigSource("default")
    assert str(config.source("api_port")) == "default"


def test_pass1_file_overrides_defaults() -> None:
    config = merge_pass1({"api_port": 9000}, file_path="run.json", file_lines={"api_port": 3})
    assert config["api_port"] == 9000
    assert config["api_host"] == DEFAULT_VALUES["api_host"]
    assert config.source("api_port") == ConfigSource("file", "run.json:3")
    assert str(config.source("api_port")) == "file run.json:3"


def test_pass1_cli_overrides_file_and_defaults() -> None:
    cli = parse_cli_pairs(["--api_port", "9100", "--mode", "live"])
    config = merge_pass1({"api_port": 9000, "api_host": "0.0.0.0"}, cli, file_path="run.json")
    assert config["api_port"] == 9100  # CLI beats file
    assert config["api_host"] == "0.0.0.0"  # file beats default
    assert config["mode"] == "live"  # CLI beats default
    assert config.source("api_port") == ConfigSource("cli", "--api_port", "9100")
    assert str(config.source("api_port")) == "command line (--api_port)"
    assert config.source("api_host").kind == "file"
    assert config.source("global_latency").kind == "default"


def _tiny_classes():
    from tests.unit.foundation import sample_plugins as sp

    return {
        "aaa": sp.TinyAAA,
        "core": sp.TinyCore,
        "pipeline": sp.TinyPipeline,
        "strategy": sp.TinyStrategy,
        "broker": sp.TinyBroker,
        "portfolio": sp.TinyPortfolio,
    }


def test_pass2_plugin_params_are_the_lowest_layer() -> None:
    cli = parse_cli_pairs(["--slow", "21"])
    config = merge_pass1({"fast": 4, **TINY_CONFIG}, cli, file_path="f.json")
    config = merge_pass2(config, _tiny_classes())
    assert config["fast"] == 4 and config.source("fast").kind == "file"  # file beats plugin
    assert config["slow"] == 21 and config.source("slow").kind == "cli"  # CLI beats plugin
    assert config["ratio"] == 0.5  # plugin default fills the gap
    assert config.source("ratio") == ConfigSource("plugin", "strategy:tiny_strategy")
    assert str(config.source("ratio")) == "plugin strategy:tiny_strategy defaults"
    assert config["tiny_fee"] == 0.25 and config.source("tiny_fee").detail == "broker:tiny_broker"
    # A plugin param named like a global key sits below the global default.
    assert config["api_port"] == DEFAULT_VALUES["api_port"]
    assert config.source("api_port").kind == "default"
    assert config.default("fast") == 3 and config.default("api_port") == 8000


def test_pass2_first_plugin_in_group_order_gives_a_shared_default() -> None:
    from tests.unit.foundation.sample_plugins import OtherStrategy, TinyStrategy

    config = merge_pass2(
        merge_pass1(),
        [("strategy", "other_strategy", OtherStrategy), ("strategy", "tiny_strategy", TinyStrategy)],
    )
    assert config["fast"] == 99
    assert config["other_only"] == "x" and config["slow"] == 7


def test_unknown_cli_arg_reaches_the_plugin(tiny_config_file: Path) -> None:
    built = build_config(tiny_config_file, ["--fast", "12", "--label", "from-cli"])
    config = built.config
    assert config["fast"] == 12 and config.source("fast").kind == "cli"
    plugin = create_plugin("strategy", config["strategy_plugin"], config)
    assert plugin.params["fast"] == 12
    assert plugin.params["label"] == "from-cli"
    assert plugin.params["slow"] == 7


def test_file_value_reaches_the_plugin_and_cli_beats_it(tmp_path: Path, tiny_plugins: dict) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({**TINY_CONFIG, "fast": 5, "slow": 40}))
    config = build_config(path, ["--slow", "50"]).config
    plugin = create_plugin("strategy", "tiny_strategy", config)
    assert (plugin.params["fast"], plugin.params["slow"]) == (5, 50)
    assert config.source("fast") == ConfigSource("file", f"{path}:1")


def test_extra_plugins_join_pass2(tiny_config_file: Path) -> None:
    built = build_config(
        tiny_config_file, ["--other_only", "y"], extra_plugins=[("strategy", "other_strategy")]
    )
    assert built.config["other_only"] == "y"
    assert built.config["fast"] == 3  # the configured strategy comes first
    assert set(built.plugins) == {"aaa", "core", "pipeline", "strategy", "broker", "portfolio"}


def test_lts_config_is_read_only_and_picklable() -> None:
    config = LTSConfig.from_values(cors_origins=["http://a"])
    with pytest.raises(TypeError):
        config["api_port"] = 1  # type: ignore[index]
    origins = config["cors_origins"]
    origins.append("http://evil")
    assert config["cors_origins"] == ["http://a"]
    clone = pickle.loads(pickle.dumps(config))
    assert clone == config and clone.source("cors_origins").kind == "override"
    assert config.replace(api_port=1)["api_port"] == 1 and config["api_port"] == 8000
    with pytest.raises(KeyError):
        config.source("nope")


def test_differing_from_defaults_ignores_values_equal_to_their_default() -> None:
    cli = parse_cli_pairs(["--api_port", "8000", "--mode", "live"])
    config = merge_pass1({"api_host": "0.0.0.0"}, cli, file_path="f.json")
    assert config.differing_from_defaults() == {"api_host": "0.0.0.0", "mode": "live"}
