"""Checking a backtest request before anything runs, and `lts backtest`'s bad options
(exit 2, one clear line, nothing started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.backtest.planning import build_plan
from actors.cli import main
from engine.config.lts_config import ConfigSource, LTSConfig
from engine.errors import ConfigError, PluginError


@pytest.fixture()
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.csv"
    path.write_text("DATE_TIME,OPEN,HIGH,LOW,CLOSE\n2020-01-01 00:00:00,1,1,1,1\n")
    return path


def test_params_are_routed_to_strategy_broker_or_both(csv_file: Path) -> None:
    plan = build_plan(strategy="sma_cross", files=[csv_file],
                      set_items=["slow=40", "spread_pips=0.5", "pip_size=0.01"],
                      grid_items=["fast=5,10", "leverage=10,30"])
    assert plan.base_strategy_params == {"slow": 40, "pip_size": 0.01}
    assert plan.base_broker_params == {"spread_pips": 0.5, "pip_size": 0.01}
    runs = plan.runs()
    assert len(runs) == 4
    assert runs[3].strategy_params == {"slow": 40, "pip_size": 0.01, "fast": 10}
    assert runs[3].broker_params == {"spread_pips": 0.5, "pip_size": 0.01, "leverage": 30}


def test_config_file_and_cli_values_are_the_base_but_plugin_defaults_are_not(csv_file: Path) -> None:
    config = LTSConfig(
        {"fast": 7, "slow": 30, "initial_cash": 5000.0, "api_port": 8000},
        {"fast": ConfigSource("file", "cfg.json"), "slow": ConfigSource("plugin", "sma_cross"),
         "initial_cash": ConfigSource("cli", "--initial_cash")},
    )
    plan = build_plan(strategy="sma_cross", files=[csv_file], config=config, set_items=["fast=9"])
    assert plan.base_strategy_params == {"fast": 9}  # --set beats the file
    assert plan.base_broker_params == {"initial_cash": 5000.0}


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"set_items": ["fats=5"]}, ConfigError, "--set fats: unknown parameter.*did you mean 'fast'"),
        ({"grid_items": ["levrage=1,2"]}, ConfigError, "did you mean 'leverage'"),
        ({"grid_items": ["fast=5,,6"]}, ConfigError, "--grid 'fast=5,,6': empty value"),
        ({"set_items": ["fast=5"], "grid_items": ["fast=6,7"]}, ConfigError, "both with --set and --grid"),
        ({"strategy": "sma_crosss"}, PluginError, "unknown strategy plugin 'sma_crosss'"),
    ],
)
def test_bad_requests_are_refused_whole(csv_file: Path, kwargs: dict, error: type, fragment: str) -> None:
    args = {"strategy": "sma_cross", "files": [csv_file], **kwargs}
    with pytest.raises(error, match=fragment):
        build_plan(**args)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--strategy", "nope"], "unknown strategy plugin 'nope'"),
        (["--strategy", "sma_cross", "--grid", "fast"], "--grid 'fast': expected KEY=VALUE"),
        (["--strategy", "sma_cross", "--set", "slwo=3"], "did you mean 'slow'"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    csv_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    code = main(["backtest", str(csv_file), *argv, "--out", str(tmp_path / "out"), "--no_db"])
    err = capsys.readouterr().err
    assert code == 2
    assert fragment in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing ran


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["backtest", str(tmp_path / "nope*.csv"), "--strategy", "sma_cross", "--no_db"])
    assert code == 2
    assert "no CSV file matches" in capsys.readouterr().err


def test_runs_are_submitted_largest_file_first_and_a_missing_file_last(tmp_path: Path) -> None:
    from actors.backtests.orchestrator import largest_files_first

    files = {"a.csv": 10, "b.csv": 3000, "c.csv": 400, "d.csv": 400}
    for name, size in files.items():
        (tmp_path / name).write_text("x" * size)
    paths = [tmp_path / "gone.csv"] + [tmp_path / n for n in files]
    plan = build_plan(strategy="sma_cross", files=paths, grid_items=["fast=5,10"])
    ordered = largest_files_first(plan.runs())
    # Biggest first; equal sizes (c, d) and each file's combinations keep the plan's order.
    assert [(s.file_name, s.grid_params["fast"]) for s in ordered] == [
        ("b.csv", 5), ("b.csv", 10), ("c.csv", 5), ("c.csv", 10), ("d.csv", 5), ("d.csv", 10),
        ("a.csv", 5), ("a.csv", 10), ("gone.csv", 5), ("gone.csv", 10)]
    assert sorted(s.index for s in ordered) == list(range(10))
