"""Checks a user's per-asset plugin config against the plugin's declared ``plugin_params``.

The plugin is found through the plugin loader (an unknown name lists the installed
ones); each key must be one the plugin declares ("did you mean ...?" for near misses)
and each value must have the type of the declared default. A default of ``None``
accepts any JSON value.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Mapping
from typing import Any

from engine.errors import ConfigError, PluginError
from engine.plugins.loader import load_plugin

_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "an object"}


def _type_ok(default: Any, value: Any) -> bool:
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (list, tuple)):
        return isinstance(value, list)
    if isinstance(default, Mapping):
        return isinstance(value, Mapping)
    return True  # a default of another type: accept, the plugin checks it


def _type_name(default: Any) -> str:
    for cls, name in _TYPE_NAMES.items():
        if isinstance(default, cls):
            return name
    return type(default).__name__


@functools.lru_cache(maxsize=256)
def _plugin_params(group: str, name: str) -> dict[str, Any]:
    """A plugin's declared parameters. Cached: scanning entry points costs milliseconds
    and the installed plugins do not change while the gateway runs (failures are not
    cached)."""
    return dict(load_plugin(group, name).plugin_params)


def validate_plugin_config(group: str, name: str, params: Mapping[str, Any], *, field: str = "params") -> dict[str, Any]:
    """Return ``params`` as a plain dict when plugin ``name`` of ``group`` accepts them.

    Raises :class:`ConfigError` naming the offending ``field.key`` (or
    :class:`PluginError` when the plugin does not exist or cannot be imported)."""
    declared = _plugin_params(group, name)  # PluginError lists the available names
    problems: list[str] = []
    for key, value in params.items():
        if key not in declared:
            hint = difflib.get_close_matches(key, declared, n=1)
            did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
            known = ", ".join(sorted(declared)) or "none"
            problems.append(f"{field}.{key}: {group} plugin {name!r} has no parameter {key!r}{did_you_mean}; its parameters: {known}")
        elif not _type_ok(declared[key], value):
            problems.append(
                f"{field}.{key}: must be {_type_name(declared[key])} like the default "
                f"{declared[key]!r}, got {type(value).__name__}"
            )
    if problems:
        raise ConfigError("; ".join(problems))
    return dict(params)


__all__ = ["validate_plugin_config", "ConfigError", "PluginError"]
