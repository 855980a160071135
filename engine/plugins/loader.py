"""Find, import and check plugins registered as entry points (seed INT-01).

Each of the six groups (``GROUPS`` in ``engine.plugins.base``) is the entry-point group
``lts.<group>``. Any installed distribution may register plugins there, so a third-party
package is picked up with no change to this repository.

Loading fails with a ``PluginError`` whose message says what to do:

* an unknown name lists the names available in that group;
* a plugin that raises on import names the plugin, its entry point ``module:attr`` and
  the underlying error;
* an object that is not a subclass of the group's base, or that leaves any of the
  group's ``REQUIRED_METHODS`` missing or abstract, is refused.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, distributions
from typing import Any

from engine.errors import PluginError
from engine.plugins.base import GROUP_BASES, GROUPS, Plugin

logger = logging.getLogger(__name__)

ENTRY_POINT_PREFIX = "lts."

# Scanning every installed distribution's metadata is slow (bench/RESULTS.md), and a
# backtest task would otherwise pay it on every run. What each folder on sys.path holds is
# kept, keyed by that folder's mtime: installing or removing a distribution adds or
# removes a ``.dist-info`` folder, which changes the mtime, and the folder is read again.
# A folder changed in the last seconds is not cached at all: file systems stamp mtimes
# with a coarse clock, so a second change within the same tick could keep the same mtime.
# A busy folder (a temp dir on the path) is then just re-listed, which is cheap;
# site-packages, where the distributions are, settles.
_folder_cache: dict[str, tuple[int, list[tuple[str, tuple[EntryPoint, ...]]]]] = {}
_SETTLED_S = 2.0


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _plugins_in_folder(entry: str) -> list[tuple[str, tuple[EntryPoint, ...]]]:
    """(normalized distribution name, its ``lts.*`` entry points) for every distribution
    in one sys.path folder, in the order importlib finds them."""
    try:
        mtime: int | None = os.stat(entry or ".").st_mtime_ns
    except OSError:
        mtime = None
    cached = _folder_cache.get(entry)
    if mtime is not None and cached is not None and cached[0] == mtime:
        return cached[1]
    found = [
        (
            _normalized(dist.metadata["Name"] or ""),
            tuple(ep for ep in dist.entry_points if ep.group.startswith(ENTRY_POINT_PREFIX)),
        )
        for dist in distributions(path=[entry])
    ]
    if mtime is not None and time.time_ns() - mtime > _SETTLED_S * 1e9:
        _folder_cache[entry] = (mtime, found)
    return found


def _entry_points(ep_group: str) -> list[EntryPoint]:
    """``importlib.metadata.entry_points(group=ep_group)``, from the per-folder cache: the
    first distribution of a name on sys.path wins, as importlib has it."""
    seen: set[str] = set()
    result: list[EntryPoint] = []
    for entry in sys.path:
        for name, eps in _plugins_in_folder(entry):
            if name in seen:
                continue
            seen.add(name)
            result.extend(ep for ep in eps if ep.group == ep_group)
    return result


def normalize_group(group: str) -> str:
    """``"strategy"`` or ``"lts.strategy"`` -> ``"strategy"``; anything else is refused."""
    short = group[len(ENTRY_POINT_PREFIX) :] if group.startswith(ENTRY_POINT_PREFIX) else group
    if short not in GROUP_BASES:
        raise PluginError(f"unknown plugin group {group!r}; the groups are: {', '.join(GROUPS)}")
    return short


def entry_point_group(group: str) -> str:
    """The entry-point group name for a plugin group: ``"strategy"`` -> ``"lts.strategy"``."""
    return ENTRY_POINT_PREFIX + normalize_group(group)


def config_key(group: str) -> str:
    """The global config key naming the configured plugin of ``group``: ``strategy_plugin``."""
    return f"{normalize_group(group)}_plugin"


def available_plugins(group: str) -> dict[str, EntryPoint]:
    """Plugin name -> entry point for every installed plugin of ``group``, sorted by name.

    When two distributions register the same name, the first one found wins and a
    warning names both (the other cannot be selected by name).
    """
    ep_group = entry_point_group(group)
    found: dict[str, EntryPoint] = {}
    for ep in _entry_points(ep_group):
        if ep.name in found:
            if found[ep.name].value != ep.value:
                logger.warning(
                    "plugin %r is registered twice in %s: using %s, ignoring %s",
                    ep.name,
                    ep_group,
                    found[ep.name].value,
                    ep.value,
                )
            continue
        found[ep.name] = ep
    return dict(sorted(found.items()))


def _find_entry_point(group: str, name: str) -> EntryPoint:
    plugins = available_plugins(group)
    if name in plugins:
        return plugins[name]
    names = ", ".join(plugins) if plugins else "(none installed)"
    raise PluginError(
        f"unknown {normalize_group(group)} plugin {name!r} "
        f"(available in {entry_point_group(group)}: {names})"
    )


def check_plugin_class(group: str, obj: Any, *, label: str = "") -> type[Plugin]:
    """Refuse ``obj`` unless it is a class implementing ``group``'s contract.

    ``label`` (e.g. ``"'x' (entry point m:C)"``) is put in front of the message so the
    user knows which plugin is meant. Returns ``obj`` typed as a plugin class.
    """
    short = normalize_group(group)
    base = GROUP_BASES[short]
    who = label or repr(getattr(obj, "__qualname__", obj))
    if not inspect.isclass(obj):
        raise PluginError(
            f"{short} plugin {who} is not a class but a {type(obj).__name__}; "
            f"it must be a subclass of {base.__module__}.{base.__qualname__}"
        )
    if not issubclass(obj, base):
        raise PluginError(
            f"{short} plugin {who} ({obj.__module__}.{obj.__qualname__}) is not a subclass of "
            f"{base.__module__}.{base.__qualname__}"
        )
    required = tuple(dict.fromkeys((*base.REQUIRED_METHODS, *obj.REQUIRED_METHODS)))
    missing = [m for m in required if not callable(getattr(obj, m, None))]
    abstract = [
        m
        for m in required
        if m not in missing and getattr(getattr(obj, m), "__isabstractmethod__", False)
    ]
    # Abstract methods beyond REQUIRED_METHODS would make instantiation fail later.
    abstract += sorted(m for m in getattr(obj, "__abstractmethods__", ()) if m not in abstract)
    if missing or abstract:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if abstract:
            parts.append(f"not implemented (abstract): {', '.join(abstract)}")
        raise PluginError(
            f"{short} plugin {who} does not implement the {short} contract: {'; '.join(parts)}"
        )
    params = getattr(obj, "plugin_params", None)
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise PluginError(
            f"{short} plugin {who}: plugin_params must be a dict of parameter name -> default"
        )
    return obj


def load_plugin(group: str, name: str) -> type[Plugin]:
    """Import and check the plugin class registered as ``name`` in ``group``."""
    short = normalize_group(group)
    ep = _find_entry_point(short, name)
    label = f"{name!r} (entry point {ep.value})"
    try:
        obj = ep.load()
    except Exception as exc:  # any import-time failure of third-party code
        logger.debug("importing %s plugin %s failed", short, label, exc_info=True)
        raise PluginError(
            f"{short} plugin {label} failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    return check_plugin_class(short, obj, label=label)


def create_plugin(group: str, name: str, params: Mapping[str, Any] | None = None) -> Plugin:
    """Load plugin ``name`` of ``group`` and instantiate it with ``params``.

    ``params`` may be the whole merged config: a plugin keeps only the keys it declares.
    """
    cls = load_plugin(group, name)
    label = f"{normalize_group(group)} plugin {name!r}"
    try:
        return cls(dict(params) if params is not None else None)
    except Exception as exc:
        raise PluginError(f"{label} failed to start: {type(exc).__name__}: {exc}") from exc


def load_configured_plugins(config: Mapping[str, Any]) -> dict[str, type[Plugin]]:
    """Load the plugin named by each ``<group>_plugin`` key of ``config``.

    Returns group -> class for the groups whose key is set. All groups are tried and
    every failure is reported together in one ``PluginError`` (one line per plugin,
    joined with ``; ``), so a user fixes them in one go.
    """
    loaded: dict[str, type[Plugin]] = {}
    errors: list[str] = []
    for group in GROUPS:
        key = config_key(group)
        name = config.get(key)
        if name is None:
            continue
        if not isinstance(name, str) or not name:
            errors.append(f"config key {key!r} must name a plugin, got {name!r}")
            continue
        try:
            loaded[group] = load_plugin(group, name)
        except PluginError as exc:
            errors.append(f"{key}: {exc}")
    if errors:
        raise PluginError("; ".join(errors))
    return loaded


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """What ``lts plugins`` and ``GET /api/plugins`` show about one installed plugin."""

    group: str
    name: str
    entry_point: str  # "module:attr"
    distribution: str | None
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    error: str | None = None  # why it cannot be loaded, None when it loads

    @property
    def ok(self) -> bool:
        return self.error is None


def describe_plugins(groups: tuple[str, ...] = GROUPS) -> dict[str, list[PluginInfo]]:
    """Every installed plugin of each group, loaded and checked; failures are captured
    in ``PluginInfo.error`` rather than raised, so one broken plugin hides nothing else."""
    result: dict[str, list[PluginInfo]] = {}
    for group in groups:
        infos: list[PluginInfo] = []
        for name, ep in available_plugins(group).items():
            dist = ep.dist.name if getattr(ep, "dist", None) is not None else None
            try:
                cls = load_plugin(group, name)
            except PluginError as exc:
                infos.append(PluginInfo(group, name, ep.value, dist, error=str(exc)))
                continue
            doc = inspect.getdoc(cls) or ""
            infos.append(
                PluginInfo(
                    group,
                    name,
                    ep.value,
                    dist,
                    params=dict(cls.plugin_params),
                    description=doc.splitlines()[0] if doc else "",
                )
            )
        result[normalize_group(group)] = infos
    return result
