"""One call from user input to a validated ``LTSConfig``: file + CLI pairs -> pass 1 ->
load the configured plugins -> pass 2 -> validation. The CLI and any other entry point
(tests, the actor runtime) build their config through ``build_config``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.config.cli_args import CliValue, parse_cli_pairs
from engine.config.defaults import PLUGIN_KEYS
from engine.config.files import read_config_file
from engine.config.lts_config import LTSConfig
from engine.config.merge import merge_pass1, merge_pass2
from engine.config.schema import validate_config
from engine.errors import ConfigError, PluginError
from engine.plugins.base import GROUPS, Plugin
from engine.plugins.loader import available_plugins, config_key, load_plugin

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BuiltConfig:
    """The validated config, the plugin classes its pass 2 used, and the plugins that
    could not be loaded (only when ``require_loadable=False``)."""

    config: LTSConfig
    plugins: dict[str, type[Plugin]] = field(default_factory=dict)
    load_errors: dict[str, str] = field(default_factory=dict)


def _load_plugins(
    config: LTSConfig,
    extra_plugins: Sequence[tuple[str, str]],
    require_loadable: bool,
) -> tuple[list[tuple[str, str, type[Plugin]]], dict[str, type[Plugin]], dict[str, str]]:
    wanted = [(group, config[config_key(group)]) for group in GROUPS]
    wanted += [pair for pair in extra_plugins if pair not in wanted]
    entries: list[tuple[str, str, type[Plugin]]] = []
    configured: dict[str, type[Plugin]] = {}
    errors: list[str] = []
    tolerated: dict[str, str] = {}
    for group, name in wanted:
        label = f"{config_key(group)}={name!r} (from {config.source(config_key(group))})"
        if (group, name) in extra_plugins and name != config[config_key(group)]:
            label = f"{group} plugin {name!r}"
        try:
            cls = load_plugin(group, name)
        except PluginError as exc:
            if require_loadable or name not in available_plugins(group):
                errors.append(f"{label}: {exc}")
            else:
                tolerated[f"{group}:{name}"] = str(exc)
                logger.info("tolerated: %s", exc)
            continue
        entries.append((group, name, cls))
        if name == config[config_key(group)]:
            configured[group] = cls
    if errors:
        raise PluginError("; ".join(errors))
    return entries, configured, tolerated


def build_config(
    config_file: str | Path | None = None,
    cli_args: Sequence[str] | Mapping[str, CliValue] = (),
    *,
    require_loadable: bool = True,
    extra_plugins: Sequence[tuple[str, str]] = (),
) -> BuiltConfig:
    """Merge, load plugins and validate.

    ``config_file``: path or bundled name (``--load_config``). ``cli_args``: the unknown
    ``--key value`` tokens (or already parsed pairs). ``require_loadable=False`` accepts
    configured plugins that exist but fail to import (``lts plugins`` shows them);
    unknown names are refused either way. ``extra_plugins``: more ``(group, name)``
    pairs whose parameters join pass 2 (e.g. a backtest's ``--strategy``).
    Raises ``ConfigError`` / ``PluginError`` with a message for the user.
    """
    file_values: dict = {}
    file_lines: dict[str, int] = {}
    file_path = ""
    if config_file is not None:
        path, file_values, file_lines = read_config_file(config_file)
        file_path = str(path)
    cli = parse_cli_pairs(cli_args) if not isinstance(cli_args, Mapping) else dict(cli_args)
    config = merge_pass1(file_values, cli, file_path=file_path, file_lines=file_lines)
    # The plugin names must be valid strings before they are looked up.
    config = validate_config(config, keys=PLUGIN_KEYS)
    entries, configured, tolerated = _load_plugins(config, extra_plugins, require_loadable)
    config = merge_pass2(config, entries)
    try:
        validated = validate_config(config)
    except ConfigError as exc:
        if not tolerated:
            raise
        # Parameters of a plugin that could not load are unknown: say why.
        raise ConfigError(
            f"{exc} (note: {', '.join(tolerated)} could not be loaded, so its parameters "
            f"are not known)"
        ) from exc
    return BuiltConfig(validated, configured, tolerated)
