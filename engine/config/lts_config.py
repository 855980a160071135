"""``LTSConfig``: the merged configuration, a read-only ``Mapping[str, Any]`` that also
remembers where each value came from (``config.source(key)``).

It is a plain picklable object, so it crosses Ray actor boundaries as is.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

SourceKind = Literal["default", "plugin", "file", "cli", "override"]


@dataclass(frozen=True, slots=True)
class ConfigSource:
    """Where one config value came from.

    ``kind``: ``"default"`` (DEFAULT_VALUES), ``"plugin"`` (a plugin's ``plugin_params``,
    pass 2), ``"file"`` (``--load_config``), ``"cli"`` (a ``--key value`` pair) or
    ``"override"`` (set by code, e.g. a test or ``LTSConfig.from_values``).
    ``detail``: the file path (with ``:line`` where known), the CLI option, or the plugin.
    ``raw``: for CLI values, the text as typed (a key declared ``str`` gets this text
    back even when it looked like a number).
    """

    kind: SourceKind
    detail: str = ""
    raw: str | None = None

    def __str__(self) -> str:
        if self.kind == "default":
            return "default"
        if self.kind == "plugin":
            return f"plugin {self.detail} defaults"
        if self.kind == "file":
            return f"file {self.detail}"
        if self.kind == "cli":
            return f"command line ({self.detail})"
        return f"override ({self.detail})" if self.detail else "override"


DEFAULT_SOURCE = ConfigSource("default")


class LTSConfig(Mapping[str, Any]):
    """Merged, read-only config values: ``config["api_port"]``, ``config.source("api_port")``.

    ``defaults`` holds the lowest-layer value of each key (DEFAULT_VALUES and plugin
    parameters), which ``--save_config`` compares against. Mutable values (lists,
    dicts) are handed out as copies, so no caller can change the config in place.
    """

    __slots__ = ("_values", "_sources", "_defaults")

    def __init__(
        self,
        values: Mapping[str, Any],
        sources: Mapping[str, ConfigSource] | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        self._values: dict[str, Any] = copy.deepcopy(dict(values))
        sources = dict(sources or {})
        self._sources: dict[str, ConfigSource] = {
            key: sources.get(key, DEFAULT_SOURCE) for key in self._values
        }
        self._defaults: dict[str, Any] = copy.deepcopy(dict(defaults or {}))

    @classmethod
    def from_values(cls, values: Mapping[str, Any] | None = None, **overrides: Any) -> "LTSConfig":
        """DEFAULT_VALUES with ``values`` / ``overrides`` on top (source ``override``).

        Not validated: meant for tests and for code that builds a config itself; run
        ``engine.config.validate_config`` on it where user input is involved.
        """
        from engine.config.defaults import DEFAULT_VALUES

        merged = dict(DEFAULT_VALUES)
        sources: dict[str, ConfigSource] = {}
        for key, value in {**(values or {}), **overrides}.items():
            merged[key] = value
            sources[key] = ConfigSource("override")
        return cls(merged, sources, DEFAULT_VALUES)

    # Mapping protocol -------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        value = self._values[key]
        if isinstance(value, (list, dict, set)):
            return copy.deepcopy(value)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    # Provenance --------------------------------------------------------------------
    def source(self, key: str) -> ConfigSource:
        """Where ``key``'s value came from; ``KeyError`` for an unknown key."""
        if key not in self._values:
            raise KeyError(key)
        return self._sources[key]

    def sources(self) -> dict[str, ConfigSource]:
        """Key -> source for every key."""
        return dict(self._sources)

    def default(self, key: str, fallback: Any = None) -> Any:
        """The lowest-layer (default or plugin) value of ``key``."""
        return copy.deepcopy(self._defaults.get(key, fallback))

    def defaults(self) -> dict[str, Any]:
        """Key -> lowest-layer value, for every key that has one."""
        return copy.deepcopy(self._defaults)

    def to_dict(self) -> dict[str, Any]:
        """A plain (deep-copied) dict of all values."""
        return copy.deepcopy(self._values)

    def differing_from_defaults(self) -> dict[str, Any]:
        """Values set by a file, the CLI or code that differ from their default
        (what ``--save_config`` writes)."""
        return {
            key: copy.deepcopy(value)
            for key, value in self._values.items()
            if self._sources[key].kind in ("file", "cli", "override")
            and (key not in self._defaults or self._defaults[key] != value)
        }

    def replace(self, source: ConfigSource | None = None, **changes: Any) -> "LTSConfig":
        """A copy with ``changes`` applied (source ``override`` unless given)."""
        values = dict(self._values)
        sources = dict(self._sources)
        for key, value in changes.items():
            values[key] = value
            sources[key] = source or ConfigSource("override")
        return LTSConfig(values, sources, self._defaults)

    def __repr__(self) -> str:
        return f"LTSConfig({len(self._values)} keys)"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LTSConfig):
            return self._values == other._values
        return NotImplemented if not isinstance(other, Mapping) else dict(self) == dict(other)

    __hash__ = None  # type: ignore[assignment]  # mutable-valued mapping
