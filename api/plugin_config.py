"""Checks a user's per-asset plugin config against the plugin's declared ``plugin_params``.

The plugin is found through the plugin loader (an unknown name lists the installed
ones); each key must be one the plugin declares ("did you mean ...?" for near misses)
and each value must have the type of the declared default. A default of ``None``
accepts any JSON value.

Then the parameters the plugin declares as operator-controlled (``engine.plugins.base``):
a URL must be on the operator's allow-list (``engine.outbound``), a path must name a file
inside ``data_dir`` (``engine.user_paths``), a secret must be a string (it is split off
and stored encrypted: :func:`split_broker_secrets`, ``engine.credentials``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.credentials import check_secret_value, shown_config, split_secrets
from engine.errors import ConfigError, PluginError
from engine.outbound import OutboundPolicy
from engine.plugins.base import Plugin
from engine.plugins.loader import load_plugin
from engine.suggestions import did_you_mean
from engine.user_paths import UserPathPolicy

_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "an object"}


@dataclass(frozen=True, slots=True)
class PluginSpec:
    """What the checks need of a plugin class: its parameters and their kinds."""

    cls: type[Plugin]
    params: dict[str, Any]
    urls: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()


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
def plugin_spec(group: str, name: str) -> PluginSpec:
    """A plugin's declared parameters and their kinds. Cached: scanning entry points
    costs milliseconds and the installed plugins do not change while the gateway runs
    (failures are not cached)."""
    cls = load_plugin(group, name)
    return PluginSpec(
        cls,
        dict(cls.plugin_params),
        tuple(getattr(cls, "plugin_url_params", ())),
        tuple(getattr(cls, "plugin_path_params", ())),
        tuple(getattr(cls, "plugin_secret_params", ())),
    )


def validate_plugin_config(
    group: str,
    name: str,
    params: Mapping[str, Any],
    *,
    field: str = "params",
    config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return ``params`` as a plain dict when plugin ``name`` of ``group`` accepts them.

    ``config``: the operator's merged config (``outbound_hosts``, ``data_dir``; their
    defaults when None). Raises :class:`ConfigError` naming the offending ``field.key``
    (or :class:`PluginError` when the plugin does not exist or cannot be imported)."""
    spec = plugin_spec(group, name)  # PluginError lists the available names
    declared = spec.params
    problems: list[str] = []
    for key, value in params.items():
        if key not in declared:
            hint = did_you_mean(key, declared)
            suffix = f" ({hint})" if hint else ""
            known = ", ".join(sorted(declared)) or "none"
            problems.append(f"{field}.{key}: {group} plugin {name!r} has no parameter {key!r}{suffix}; its parameters: {known}")
        elif key in spec.secrets:
            if group != "broker":  # only broker credentials have a place to be kept encrypted
                problems.append(f"{field}.{key}: credentials of {group} plugins cannot be stored")
            else:
                try:
                    check_secret_value(value, f"{field}.{key}")
                except ConfigError as exc:
                    problems.append(str(exc))
        elif not _type_ok(declared[key], value):
            problems.append(
                f"{field}.{key}: must be {_type_name(declared[key])} like the default "
                f"{declared[key]!r}, got {type(value).__name__}"
            )
    if problems:
        raise ConfigError("; ".join(problems))
    if any(params.get(key) is not None for key in spec.urls + spec.paths):
        spec.cls.check_untrusted_params(params, outbound=OutboundPolicy.from_config(config),
                                        user_paths=UserPathPolicy.for_config(config or {}), field=field)
    return dict(params)


def split_broker_secrets(
    name: str, params: Mapping[str, Any], stored: Mapping[str, str] | None, *, field: str = "broker_config"
) -> tuple[dict[str, Any], dict[str, str]]:
    """``(broker config without its secrets, encrypted secrets to store)`` for broker
    plugin ``name``; see ``engine.credentials.split_secrets`` (left out keeps, null
    removes, a string replaces). Call after :func:`validate_plugin_config`."""
    return split_secrets(plugin_spec("broker", name).secrets, params, stored, field_name=field)


def public_broker_config(name: str, params: Mapping[str, Any], stored: Mapping[str, str] | None) -> dict[str, Any]:
    """A broker config as a client may see it: secrets as the placeholder. A plugin that
    is no longer installed hides every key that looks like a credential."""
    try:
        secrets = plugin_spec("broker", name).secrets
    except PluginError:
        from engine.config import is_secret_key

        secrets = tuple(key for key in params if is_secret_key(key))
    return shown_config(secrets, params, stored)


__all__ = ["validate_plugin_config", "split_broker_secrets", "public_broker_config", "plugin_spec",
           "ConfigError", "PluginError"]
