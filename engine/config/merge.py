"""The 2-pass config merge (seed §1.2, INT-02).

Pass 1, before plugins are loaded: ``DEFAULT_VALUES < config file < CLI pairs``.
Pass 2, after the configured plugins are loaded: each plugin's ``plugin_params`` join
as the lowest layer, so a plugin parameter given in the file or on the CLI keeps that
value (and reaches the plugin), and one given nowhere takes the plugin's default.
When a plugin parameter has the name of a global key, the global default wins; when
two plugins declare the same parameter, the first in group order gives the default.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from engine.config.cli_args import CliValue
from engine.config.defaults import DEFAULT_VALUES
from engine.config.lts_config import ConfigSource, LTSConfig
from engine.plugins.base import GROUPS, Plugin

logger = logging.getLogger(__name__)


def merge_pass1(
    file_values: Mapping[str, Any] | None = None,
    cli_values: Mapping[str, CliValue] | None = None,
    *,
    file_path: str = "",
    file_lines: Mapping[str, int] | None = None,
    defaults: Mapping[str, Any] = DEFAULT_VALUES,
) -> LTSConfig:
    """``defaults < file_values < cli_values``, each value tagged with its source.

    ``file_lines`` (key -> line in the file) makes sources read ``file run.json:3``.
    """
    values: dict[str, Any] = dict(defaults)
    sources: dict[str, ConfigSource] = {key: ConfigSource("default") for key in defaults}
    lines = file_lines or {}
    for key, value in (file_values or {}).items():
        values[key] = value
        where = f"{file_path}:{lines[key]}" if key in lines else file_path
        sources[key] = ConfigSource("file", where)
    for key, cli in (cli_values or {}).items():
        values[key] = cli.value
        sources[key] = ConfigSource("cli", cli.option, cli.raw)
    return LTSConfig(values, sources, defaults)


def merge_pass2(
    config: LTSConfig, plugins: Mapping[str, type[Plugin]] | list[tuple[str, str, type[Plugin]]]
) -> LTSConfig:
    """Add the loaded plugins' ``plugin_params`` below every other layer.

    ``plugins``: group -> plugin class (as from ``load_configured_plugins``), or a list
    of ``(group, name, class)`` when more than one plugin of a group is involved.
    """
    if isinstance(plugins, Mapping):
        entries = [
            (group, str(config.get(f"{group}_plugin", "")), plugins[group])
            for group in GROUPS
            if group in plugins
        ]
    else:
        entries = list(plugins)
    values = config.to_dict()
    sources = config.sources()
    defaults = config.defaults()
    for group, name, cls in entries:
        label = f"{group}:{name}" if name else f"{group}:{cls.__qualname__}"
        for key, default in cls.plugin_params.items():
            if key in defaults:
                if defaults[key] != default:
                    logger.debug(
                        "%s parameter %r: default %r is shadowed by %r from a lower layer",
                        label,
                        key,
                        default,
                        defaults[key],
                    )
                continue
            defaults[key] = default
            if key not in values:
                values[key] = default
                sources[key] = ConfigSource("plugin", label)
    return LTSConfig(values, sources, defaults)
