"""Foundation test helpers: register entry points the way an installed distribution does.

``plugin_dist(entry_points)`` writes a ``*.dist-info`` folder (METADATA +
``entry_points.txt``) into a tmp dir and puts that dir on ``sys.path``, so
``importlib.metadata`` discovers the entry points exactly as for a pip-installed package.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

SAMPLES = "tests.unit.foundation.sample_plugins"

TINY_PLUGINS: dict[str, dict[str, str]] = {
    "lts.aaa": {"tiny_aaa": f"{SAMPLES}:TinyAAA"},
    "lts.core": {"tiny_core": f"{SAMPLES}:TinyCore"},
    "lts.pipeline": {"tiny_pipeline": f"{SAMPLES}:TinyPipeline"},
    "lts.strategy": {
        "tiny_strategy": f"{SAMPLES}:TinyStrategy",
        "other_strategy": f"{SAMPLES}:OtherStrategy",
    },
    "lts.broker": {"tiny_broker": f"{SAMPLES}:TinyBroker"},
    "lts.portfolio": {"tiny_portfolio": f"{SAMPLES}:TinyPortfolio"},
}
"""One working test plugin per group (two strategies)."""

TINY_CONFIG: dict[str, str] = {
    "aaa_plugin": "tiny_aaa",
    "core_plugin": "tiny_core",
    "pipeline_plugin": "tiny_pipeline",
    "strategy_plugin": "tiny_strategy",
    "broker_plugin": "tiny_broker",
    "portfolio_plugin": "tiny_portfolio",
}
"""Config values selecting the tiny plugins for every group."""


def write_distribution(
    root: Path, name: str, entry_points: Mapping[str, Mapping[str, str]]
) -> Path:
    """Write ``<root>/<name>-1.0.dist-info`` declaring ``entry_points``; returns ``root``."""
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines: list[str] = []
    for group, plugins in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{plugin} = {target}" for plugin, target in plugins.items()]
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines))
    return root


@pytest.fixture
def plugin_dist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[Mapping[str, Mapping[str, str]]], Path]:
    """``plugin_dist(entry_points, name="lts-test-plugins")``: install a throw-away
    distribution declaring ``entry_points`` for the duration of the test."""
    count = 0

    def install(entry_points: Mapping[str, Mapping[str, str]], name: str = "lts-test-plugins") -> Path:
        nonlocal count
        count += 1
        root = write_distribution(tmp_path / f"site{count}", name, entry_points)
        monkeypatch.syspath_prepend(str(root))
        importlib.invalidate_caches()
        return root

    return install


@pytest.fixture
def tiny_plugins(plugin_dist: Callable[..., Path]) -> dict[str, dict[str, str]]:
    """The tiny plugins installed; returns their entry points."""
    plugin_dist(TINY_PLUGINS)
    return TINY_PLUGINS


@pytest.fixture
def tiny_config_file(tmp_path: Path, tiny_plugins: dict) -> Path:
    """A config file selecting the tiny plugin of every group."""
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY_CONFIG, indent=2))
    return path
