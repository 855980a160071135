"""Validation of the merged config: wrong types and unknown keys, with their messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import build_config, merge_pass1, merge_pass2, parse_cli_pairs, validate_config
from engine.config.schema import suggest
from engine.errors import ConfigError, PluginError
from tests.unit.foundation.conftest import TINY_CONFIG


def _cli(*tokens: str):
    return validate_config(merge_pass1(cli_values=parse_cli_pairs(list(tokens))))


def test_wrong_type_from_cli_names_key_type_value_and_source() -> None:
    with pytest.raises(ConfigError) as err:
        _cli("--api_port", "abc")
    assert str(err.value) == (
        "config key 'api_port' expects int in 0..65535, got 'abc' (str) "
        "from command line (--api_port)"
    )


def test_wrong_type_from_file_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text('{\n  "mode": "simulation",\n  "global_latency": "fast"\n}\n')
    with pytest.raises(ConfigError) as err:
        build_config(path, require_loadable=False)
    assert str(err.value) == (
        f"config key 'global_latency' expects float > 0 (seconds), got 'fast' (str) "
        f"from file {path}:3"
    )


def test_string_in_a_file_is_not_silently_an_int(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text('{"api_port": "8000"}')
    with pytest.raises(ConfigError, match=r"'api_port' expects int in 0\.\.65535, got '8000' \(str\) from file"):
        build_config(path, require_loadable=False)


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        (["--api_port", "70000"], "expects int in 0..65535, got 70000 (int)"),
        (["--global_latency", "0"], "expects float > 0 (seconds), got 0 (int)"),
        (["--mode", "paper"], "expects one of 'simulation', 'live', got 'paper' (str)"),
        (["--log_level", "LOUD"], "expects one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'LOUD'"),
        (["--cors_origins", "http://a"], "expects list of str (JSON, e.g. [\"http://host\"]), got 'http://a'"),
        (["--persistence_batch_size", "true"], "expects int >= 1, got True (bool)"),
        (["--prediction_provider_url", "localhost:8001"], "expects an http(s):// URL (str)"),
        (["--strategy_plugin", ""], "expects a plugin name (non-empty str), got '' (str)"),
    ],
)
def test_each_constraint_is_enforced(tokens: list[str], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        _cli(*tokens)
    assert expected in str(err.value)
    assert f"from command line ({tokens[0]})" in str(err.value)


def test_values_are_normalised_to_their_declared_type() -> None:
    config = _cli("--global_latency", "2", "--log_level", "debug", "--cors_origins", '["http://a"]')
    assert config["global_latency"] == 2.0 and isinstance(config["global_latency"], float)
    assert config["log_level"] == "DEBUG"
    assert config["cors_origins"] == ["http://a"]
    assert config.source("global_latency").kind == "cli"  # provenance survives


def test_text_key_gets_the_cli_text_even_when_it_looks_like_a_number() -> None:
    config = _cli("--jwt_secret", "12345", "--ray_address", "null", "--api_host", "10")
    assert config["jwt_secret"] == "12345"
    assert config["api_host"] == "10"
    assert config["ray_address"] is None


def test_secret_values_are_never_shown_in_messages() -> None:
    with pytest.raises(ConfigError) as err:
        validate_config(merge_pass1({"jwt_secret": ["s3cr3t-value"]}, file_path="f.json"))
    assert "s3cr3t" not in str(err.value)
    assert "config key 'jwt_secret' expects str or null, got <hidden> (list) from file f.json" in str(
        err.value
    )


def test_unknown_key_is_refused_with_did_you_mean() -> None:
    with pytest.raises(ConfigError) as err:
        _cli("--api_prot", "8080")
    assert str(err.value) == (
        "unknown config key 'api_prot' from command line (--api_prot): "
        "did you mean 'api_port' or 'api_host'?"
    )


def test_unknown_key_without_close_match_says_where_keys_come_from() -> None:
    with pytest.raises(ConfigError) as err:
        _cli("--zzz_qqq", "1")
    assert str(err.value) == (
        "unknown config key 'zzz_qqq' from command line (--zzz_qqq): it is neither a global key "
        "(`lts plugins --globals`) nor a parameter of the configured plugins (default_aaa, "
        "default_core, default_pipeline, default_strategy, default_broker, default_portfolio; "
        "`lts plugins`)"
    )


def test_typo_in_a_plugin_parameter_is_caught_after_pass2(tiny_config_file: Path) -> None:
    with pytest.raises(ConfigError) as err:
        build_config(tiny_config_file, ["--fats", "5"])
    assert str(err.value) == (
        "unknown config key 'fats' from command line (--fats): did you mean 'fast'?"
    )


def test_plugin_parameter_is_unknown_when_its_plugin_is_not_configured(tiny_plugins: dict) -> None:
    # other_only belongs to other_strategy, but tiny_strategy is the configured strategy.
    config = merge_pass1({**TINY_CONFIG, "other_only": "y"}, file_path="f.json")
    from tests.unit.foundation.sample_plugins import TinyStrategy

    with pytest.raises(ConfigError, match=r"unknown config key 'other_only' from file f\.json"):
        validate_config(merge_pass2(config, {"strategy": TinyStrategy}))


def test_plugin_parameter_types_come_from_their_defaults(tiny_config_file: Path) -> None:
    with pytest.raises(ConfigError) as err:
        build_config(
            tiny_config_file,
            ["--fast", "1.5", "--enabled", "yes", "--ratio", "x", "--weights", '{"a": 1}'],
        )
    clauses = str(err.value).split("; ")
    assert clauses == [
        "config key 'fast' expects int, got 1.5 (float) from command line (--fast)",
        "config key 'enabled' expects bool (true/false), got 'yes' (str) "
        "from command line (--enabled)",
        "config key 'ratio' expects float, got 'x' (str) from command line (--ratio)",
        "config key 'weights' expects list (JSON array), got {'a': 1} (dict) "
        "from command line (--weights)",
    ]


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(ConfigError) as err:
        _cli("--api_port", "x", "--modee", "live")
    text = str(err.value)
    assert "config key 'api_port' expects int" in text
    assert "unknown config key 'modee' from command line (--modee): did you mean 'mode'?" in text


def test_plugin_name_must_be_a_string_before_lookup(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"strategy_plugin": 7}))
    with pytest.raises(ConfigError, match=r"'strategy_plugin' expects a plugin name \(non-empty str\), got 7 \(int\) from file"):
        build_config(path)


def test_unknown_plugin_name_names_key_source_and_alternatives(tiny_plugins: dict) -> None:
    with pytest.raises(PluginError) as err:
        build_config(None, ["--broker_plugin", "tiny_brokr"], require_loadable=False)
    message = str(err.value)
    assert message.startswith(
        "broker_plugin='tiny_brokr' (from command line (--broker_plugin)): "
        "unknown broker plugin 'tiny_brokr' (available in lts.broker: "
    )
    assert "tiny_broker" in message


def test_suggest_offers_nothing_for_unrelated_names() -> None:
    assert suggest("qwerty", ["api_port"]) == ""
    assert suggest("api_prot", ["api_port"]) == " did you mean 'api_port'?"
