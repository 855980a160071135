"""A third-party plugin package, pip-installed in the test run, is picked up through its
entry point with no change to this repository (issue 2, INT-01).

``tests/fixtures/thirdparty_plugin`` is a separate distribution (its own pyproject,
declaring ``hello_strategy`` in ``lts.strategy``). The test builds and installs it with
pip into a temporary target dir and runs the real ``lts`` console script with that dir on
``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import build_config
from engine.data.market_data import MarketData, MarketSnapshot
from engine.plugins import create_plugin
from engine.types import Action, AssetContext

PACKAGE_SRC = Path(__file__).resolve().parents[2] / "fixtures" / "thirdparty_plugin"


def lts_command() -> list[str]:
    script = Path(sys.executable).parent / "lts"
    return [str(script)] if script.exists() else [sys.executable, "-m", "actors.cli"]


@pytest.fixture(scope="module")
def installed_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin package pip-installed into its own target dir."""
    work = tmp_path_factory.mktemp("thirdparty")
    source = work / "src"
    shutil.copytree(PACKAGE_SRC, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = work / "site"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (site / "lts_hello_plugin" / "strategy.py").is_file()
    assert list(site.glob("lts_hello_plugin-1.0.0.dist-info/entry_points.txt"))
    return site


def run_lts(*args: str, site: Path | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if site is not None:
        env["PYTHONPATH"] = str(site)
    return subprocess.run(
        [*lts_command(), *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_lts_plugins_lists_the_installed_third_party_plugin(installed_site: Path) -> None:
    result = run_lts(
        "plugins", "--group", "strategy", "--json",
        "--strategy_plugin", "hello_strategy", "--threshold", "2.5",
        site=installed_site,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)["strategy"]}
    hello = plugins["hello_strategy"]
    assert hello["entry_point"] == "lts_hello_plugin.strategy:HelloStrategy"
    assert hello["distribution"] == "lts-hello-plugin"
    assert hello["configured"] is True and hello["error"] is None
    assert hello["params"] == {"threshold": 1.0, "quantity": 1000.0, "greeting": "hello"}
    assert "sma_cross" in plugins  # the repository's own plugins are still there


def test_its_parameters_are_validated_like_any_plugin(installed_site: Path) -> None:
    result = run_lts(
        "plugins", "--strategy_plugin", "hello_strategy", "--threshold", "high", site=installed_site
    )
    assert result.returncode == 2
    assert result.stderr == (
        "lts plugins: error: config key 'threshold' expects float, got 'high' (str) "
        "from command line (--threshold)\n"
    )


def test_without_the_install_the_name_is_unknown() -> None:
    result = run_lts("plugins", "--strategy_plugin", "hello_strategy", site=None)
    assert result.returncode == 2
    assert result.stderr.startswith(
        "lts plugins: error: strategy_plugin='hello_strategy' (from command line "
        "(--strategy_plugin)): unknown strategy plugin 'hello_strategy' (available in lts.strategy: "
    )
    assert "Traceback" not in result.stderr


def test_installed_plugin_decides_with_its_merged_params(
    installed_site: Path, monkeypatch: pytest.MonkeyPatch, eurusd_data: MarketData
) -> None:
    monkeypatch.syspath_prepend(str(installed_site))
    config = build_config(
        None, ["--strategy_plugin", "hello_strategy", "--threshold", "1.08"], require_loadable=False
    ).config
    assert config["threshold"] == 1.08 and config["greeting"] == "hello"
    assert str(config.source("greeting")) == "plugin strategy:hello_strategy defaults"
    strategy = create_plugin("strategy", config["strategy_plugin"], config)
    asset = AssetContext(symbol="EURUSD")
    decisions = [strategy.decide(asset, MarketSnapshot(eurusd_data, i)) for i in range(len(eurusd_data))]
    above = eurusd_data.close > 1.08
    assert above.any() and (~above).any()  # the real data crosses the threshold
    assert [d.action == Action.OPEN for d in decisions] == above.tolist()
    assert decisions[int((~above).argmax())].parameters == {"reason": "hello"}
