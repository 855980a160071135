"""``lts plugins``: every plugin group, its installed plugins, their parameters and defaults
(``--globals``: the global config keys instead).

A plugin that fails to load is listed with the reason; the other plugins and groups are
still shown. ``*`` marks the plugin the current config selects for its group.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from engine.config import DEFAULT_VALUES, LTSConfig, is_secret_key
from engine.plugins.base import GROUPS
from engine.plugins.loader import PluginInfo, config_key, describe_plugins, entry_point_group

# Listing broken plugins is this command's job, so it must run when one is broken.
REQUIRE_LOADABLE_PLUGINS = False


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``lts plugins``."""
    parser.add_argument("--group", choices=GROUPS, help="show only this group")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument(
        "--globals",
        action="store_true",
        help="list the global config keys instead: default, current value and its source",
    )


def _as_json(value: Any) -> str:
    return json.dumps(value, default=str)


def render_text(catalog: dict[str, list[PluginInfo]], config: LTSConfig) -> str:
    """The human-readable listing."""
    out: list[str] = []
    for group, infos in catalog.items():
        key = config_key(group)
        out.append(f"{entry_point_group(group)}  ({key} = {config.get(key)})")
        if not infos:
            out.append("    (no plugins installed)")
        for info in infos:
            mark = "*" if config.get(key) == info.name else " "
            dist = f"  [{info.distribution}]" if info.distribution else ""
            out.append(f"  {mark} {info.name}  {info.entry_point}{dist}")
            if info.error:
                out.append(f"      FAILED TO LOAD: {info.error}")
                continue
            if info.description:
                out.append(f"      {info.description}")
            if not info.params:
                out.append("      (no parameters)")
            for param, default in info.params.items():
                out.append(f"      --{param} {_as_json(default)}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def render_json(catalog: dict[str, list[PluginInfo]], config: LTSConfig) -> str:
    """The listing as JSON: group -> list of plugins."""
    data = {
        group: [
            {
                "name": info.name,
                "entry_point": info.entry_point,
                "distribution": info.distribution,
                "configured": config.get(config_key(group)) == info.name,
                "params": info.params,
                "description": info.description,
                "error": info.error,
            }
            for info in infos
        ]
        for group, infos in catalog.items()
    }
    return json.dumps(data, indent=2, default=str) + "\n"


def render_globals(config: LTSConfig) -> str:
    """Every global key with its default, and its current value and source where they
    differ (secret values are never shown)."""
    out = ["global config keys (--key value):"]
    for key, default in DEFAULT_VALUES.items():
        line = f"  --{key} {_as_json(default)}"
        if config.source(key).kind != "default":
            value = "<hidden>" if is_secret_key(key) else _as_json(config[key])
            line += f"    (now {value}, from {config.source(key)})"
        out.append(line)
    return "\n".join(out) + "\n"


def run(config: LTSConfig, args: argparse.Namespace) -> int:
    """Print the listing; exit code 0 (load failures are part of the listing)."""
    if args.globals:
        print(render_globals(config), end="")
        return 0
    groups = (args.group,) if args.group else GROUPS
    catalog = describe_plugins(groups)
    render = render_json if args.json else render_text
    print(render(catalog, config), end="")
    return 0
