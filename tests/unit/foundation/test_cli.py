"""The ``lts`` dispatcher, in process: command-module contract, config options, plugin
checks and error handling (one line on stderr, exit 2, no traceback)."""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from actors import cli
from actors.commands import COMMANDS
from engine.config import LTSConfig
from engine.errors import DataError
from tests.unit.foundation.conftest import SAMPLES, TINY_CONFIG


class Probe:
    """A command module registered as ``lts probe`` for the test; records what it got."""

    def __init__(self) -> None:
        self.config: LTSConfig | None = None
        self.args: argparse.Namespace | None = None
        self.raise_: BaseException | None = None
        self.module = types.ModuleType("actors.commands.probe")
        self.module.configure = self.configure  # type: ignore[attr-defined]
        self.module.run = self.run  # type: ignore[attr-defined]

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("paths", nargs="*")
        parser.add_argument("--count", type=int, default=1)

    def run(self, config: LTSConfig, args: argparse.Namespace) -> int:
        self.config, self.args = config, args
        if self.raise_ is not None:
            raise self.raise_
        return 0


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch, tiny_plugins: dict) -> Probe:
    command = Probe()
    monkeypatch.setitem(COMMANDS, "probe", "test command")
    monkeypatch.setitem(sys.modules, "actors.commands.probe", command.module)
    return command


def _one_error_line(captured: Any, prefix: str) -> str:
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(prefix)
    assert "Traceback" not in captured.err
    return lines[0]


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("run", "status", "backtest", "db", "plugins", "users"):
        assert f"    {name} " in out
    assert "--load_config FILE, --config FILE" in out and "--save_config FILE" in out


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "usage: lts" in capsys.readouterr().out


def test_unknown_command_suggests_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plugin"]) == 2
    line = _one_error_line(capsys.readouterr(), "lts plugin: error: ")
    assert line.endswith("unknown command 'plugin' (commands: run, status, backtest, db, plugins, users); did you mean 'plugins'?")


def test_missing_command_module_is_not_yet_available(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(COMMANDS, "nosuchcmd", "a command nobody wrote")
    assert cli.main(["nosuchcmd"]) == 2
    assert capsys.readouterr().err == "lts nosuchcmd: not yet available\n"


def test_command_gets_merged_config_own_args_and_plugin_params(
    probe: Probe, tiny_config_file: Path
) -> None:
    code = cli.main(
        ["probe", "a.csv", "--config", str(tiny_config_file), "--fast", "9", "b.csv",
         "--api_port=9001", "--enabled", "--count", "3"]
    )  # fmt: skip
    assert code == 0
    assert probe.args is not None and probe.config is not None
    assert probe.args.paths == ["a.csv", "b.csv"]  # a pair's value never becomes a positional
    assert probe.args.count == 3
    assert probe.config["fast"] == 9 and probe.config.source("fast").kind == "cli"
    assert probe.config["api_port"] == 9001
    assert probe.config["enabled"] is True
    assert probe.config["slow"] == 7 and probe.config.source("slow").kind == "plugin"
    assert probe.config["strategy_plugin"] == "tiny_strategy"


def test_cli_beats_file_beats_default(probe: Probe, tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({**TINY_CONFIG, "api_port": 9000, "api_host": "0.0.0.0", "slow": 8}))
    assert cli.main(["probe", "--load_config", str(path), "--api_port", "9100"]) == 0
    config = probe.config
    assert config is not None
    assert (config["api_port"], config.source("api_port").kind) == (9100, "cli")
    assert (config["api_host"], config.source("api_host").kind) == ("0.0.0.0", "file")
    assert (config["slow"], config.source("slow").kind) == (8, "file")
    assert (config["global_latency"], config.source("global_latency").kind) == (1.0, "default")


def test_save_config_then_load_it_back(probe: Probe, tiny_config_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "saved.json"
    assert cli.main(["probe", "--config", str(tiny_config_file), "--fast", "4", "--save_config", str(out)]) == 0
    assert json.loads(out.read_text()) == {**TINY_CONFIG, "fast": 4}
    assert cli.main(["probe", "--config", str(out)]) == 0
    assert probe.config is not None and probe.config["fast"] == 4
    assert probe.config.source("fast").kind == "file"


def test_unknown_key_is_one_line_and_exit_2(
    probe: Probe, tiny_config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["probe", "--config", str(tiny_config_file), "--slwo", "5"]) == 2
    line = _one_error_line(capsys.readouterr(), "lts probe: error: ")
    assert line == "lts probe: error: unknown config key 'slwo' from command line (--slwo): did you mean 'slow'?"
    assert probe.config is None  # the command never ran


def test_abbreviated_global_option_is_not_guessed(
    probe: Probe, tiny_config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["probe", "--conf", str(tiny_config_file)]) == 2
    line = _one_error_line(capsys.readouterr(), "lts probe: error: ")
    assert "unknown config key 'conf' from command line (--conf)" in line


def test_configured_plugin_names_are_checked_before_the_command_runs(
    probe: Probe, tiny_config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["probe", "--config", str(tiny_config_file), "--portfolio_plugin", "nope"]) == 2
    line = _one_error_line(capsys.readouterr(), "lts probe: error: ")
    assert line == (
        "lts probe: error: portfolio_plugin='nope' (from command line (--portfolio_plugin)): "
        "unknown portfolio plugin 'nope' (available in lts.portfolio: default_portfolio, tiny_portfolio)"
    )
    assert probe.config is None


def test_plugin_failing_to_import_stops_the_command(
    probe: Probe, plugin_dist, tiny_config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin_dist({"lts.strategy": {"broken": "tests.unit.foundation.sample_broken_plugin:X"}}, name="broken-dist")
    assert cli.main(["probe", "--config", str(tiny_config_file), "--strategy_plugin", "broken"]) == 2
    line = _one_error_line(capsys.readouterr(), "lts probe: error: ")
    assert line == (
        "lts probe: error: strategy_plugin='broken' (from command line (--strategy_plugin)): "
        "strategy plugin 'broken' (entry point tests.unit.foundation.sample_broken_plugin:X) "
        "failed to import: RuntimeError: sample plugin failed on purpose: no API key configured"
    )


def test_lts_error_from_the_command_is_one_line(
    probe: Probe, tiny_config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    probe.raise_ = DataError("data/x.csv:12: HIGH is empty")
    assert cli.main(["probe", "--config", str(tiny_config_file)]) == 2
    assert capsys.readouterr().err == "lts probe: error: data/x.csv:12: HIGH is empty\n"


def test_unexpected_exception_is_one_line_without_traceback(
    probe: Probe, tiny_config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    probe.raise_ = ZeroDivisionError("division by zero")
    assert cli.main(["probe", "--config", str(tiny_config_file)]) == 1
    line = _one_error_line(capsys.readouterr(), "lts probe: error: ")
    assert line == (
        "lts probe: error: internal error: ZeroDivisionError: division by zero "
        "(run with --log_level DEBUG for details)"
    )


def test_bad_own_option_is_an_argparse_usage_error(
    probe: Probe, tiny_config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["probe", "--config", str(tiny_config_file), "--count", "many"]) == 2
    assert "argument --count: invalid int value: 'many'" in capsys.readouterr().err


def test_command_help_shows_own_and_global_options(probe: Probe, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["probe", "--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: lts probe" in out and "--count COUNT" in out and "--load_config FILE" in out


# --- lts plugins ----------------------------------------------------------------------


def test_plugins_lists_groups_params_and_failures(
    plugin_dist, tiny_config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin_dist({"lts.broker": {"broken_broker": "tests.unit.foundation.sample_broken_plugin:B"}}, name="broken-dist")
    assert cli.main(["plugins", "--config", str(tiny_config_file)]) == 0
    out = capsys.readouterr().out
    for group in ("aaa", "core", "pipeline", "strategy", "broker", "portfolio"):
        assert f"lts.{group}  ({group}_plugin = {TINY_CONFIG[group + '_plugin']})" in out
    assert f"  * tiny_strategy  {SAMPLES}:TinyStrategy  [lts-test-plugins]" in out
    assert "      --fast 3\n      --slow 7\n      --ratio 0.5\n      --label \"tiny\"" in out
    assert "    other_strategy  " in out  # listed, not selected
    assert (
        "    broken_broker  tests.unit.foundation.sample_broken_plugin:B  [broken-dist]\n"
        "      FAILED TO LOAD: broker plugin 'broken_broker' (entry point "
        "tests.unit.foundation.sample_broken_plugin:B) failed to import: RuntimeError: "
        "sample plugin failed on purpose: no API key configured"
    ) in out
    assert out.index("lts.broker") < out.index("lts.portfolio")  # groups after a failure still listed


def test_plugins_runs_even_when_the_configured_plugin_is_broken(
    plugin_dist, tiny_config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin_dist({"lts.core": {"broken_core": "tests.unit.foundation.sample_broken_plugin:C"}}, name="broken-dist")
    assert cli.main(["plugins", "--config", str(tiny_config_file), "--core_plugin", "broken_core"]) == 0
    out = capsys.readouterr().out
    assert "  * broken_core  tests.unit.foundation.sample_broken_plugin:C" in out
    assert "FAILED TO LOAD: core plugin 'broken_core'" in out


def test_plugins_json_for_one_group(tiny_config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plugins", "--config", str(tiny_config_file), "--group", "broker", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data) == ["broker"]
    tiny = next(p for p in data["broker"] if p["name"] == "tiny_broker")
    assert tiny == {
        "name": "tiny_broker",
        "entry_point": f"{SAMPLES}:TinyBroker",
        "distribution": "lts-test-plugins",
        "configured": True,
        "params": {"tiny_fee": 0.25},
        "description": "Test broker.",
        "error": None,
    }


def test_plugins_still_refuses_an_unknown_plugin_name(
    tiny_config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["plugins", "--config", str(tiny_config_file), "--aaa_plugin", "nobody"]) == 2
    assert "unknown aaa plugin 'nobody' (available in lts.aaa: " in capsys.readouterr().err


def test_global_options_may_come_before_the_command(probe: Probe, tiny_config_file: Path) -> None:
    assert cli.main(["--config", str(tiny_config_file), "--fast", "6", "probe", "x.csv"]) == 0
    assert probe.config is not None and probe.args is not None
    assert probe.config["fast"] == 6 and probe.args.paths == ["x.csv"]


def test_parameter_of_a_plugin_that_failed_to_load_is_explained(
    plugin_dist, tiny_config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin_dist({"lts.core": {"broken_core": "tests.unit.foundation.sample_broken_plugin:C"}}, name="broken-dist")
    code = cli.main(
        ["plugins", "--config", str(tiny_config_file), "--core_plugin", "broken_core", "--core_port", "1"]
    )
    assert code == 2
    line = _one_error_line(capsys.readouterr(), "lts plugins: error: unknown config key 'core_port'")
    assert line.endswith("(note: core:broken_core could not be loaded, so its parameters are not known)")


def test_plugins_globals_lists_global_keys_with_current_values(
    tiny_config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(
        ["plugins", "--globals", "--config", str(tiny_config_file), "--api_port", "9000",
         "--jwt_secret", "do-not-print-me"]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith("global config keys (--key value):\n")
    assert "  --api_port 8000    (now 9000, from command line (--api_port))\n" in out
    assert "  --global_latency 1.0\n" in out
    assert f"  --strategy_plugin \"default_strategy\"    (now \"tiny_strategy\", from file {tiny_config_file}:5)\n" in out
    assert "  --jwt_secret null    (now <hidden>, from command line (--jwt_secret))\n" in out
    assert "do-not-print-me" not in out
