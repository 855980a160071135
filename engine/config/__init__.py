"""Configuration: ``DEFAULT_VALUES``, the 2-pass merge, validation and the ``LTSConfig`` type.

Typical use (what the ``lts`` CLI does)::

    built = build_config("simulation", ["--api_port", "8080"])
    config = built.config          # LTSConfig, validated
    config["api_port"], config.source("api_port")
"""

from engine.config.builder import BuiltConfig, build_config
from engine.config.cli_args import CliValue, parse_cli_pairs, parse_cli_value
from engine.config.defaults import DEFAULT_VALUES, PLUGIN_KEYS
from engine.config.files import read_config_file, resolve_config_path, save_config
from engine.config.lts_config import ConfigSource, LTSConfig
from engine.config.merge import merge_pass1, merge_pass2
from engine.config.schema import GLOBAL_TYPES, is_secret_key, validate_config

__all__ = [
    "DEFAULT_VALUES",
    "GLOBAL_TYPES",
    "PLUGIN_KEYS",
    "BuiltConfig",
    "CliValue",
    "ConfigSource",
    "LTSConfig",
    "build_config",
    "is_secret_key",
    "merge_pass1",
    "merge_pass2",
    "parse_cli_pairs",
    "parse_cli_value",
    "read_config_file",
    "resolve_config_path",
    "save_config",
    "validate_config",
]
