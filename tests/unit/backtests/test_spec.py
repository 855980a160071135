"""Parsing of --set / --grid, grid expansion and file expansion (no Ray)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.backtest.plan import (
    BacktestPlan,
    expand_grid,
    expand_paths,
    parse_grid_options,
    parse_set_options,
    parse_value,
)
from engine.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [("5", 5), ("-3", -3), ("0.25", 0.25), ("1e-4", 1e-4), ("true", True), ("False", False),
     ("null", None), ("[1, 2]", [1, 2]), ('{"a": 1}', {"a": 1}), ("sma", "sma"), (" x ", "x")],
)
def test_parse_value_types_like_the_cli(text: str, expected: object) -> None:
    value = parse_value(text)
    assert value == expected
    assert type(value) is type(expected)


def test_set_options_become_typed_params() -> None:
    assert parse_set_options(["fast=10", "tp=0.002", "name=abc"]) == {
        "fast": 10, "tp": 0.002, "name": "abc"}


@pytest.mark.parametrize(
    ("items", "fragment"),
    [(["fast"], "expected KEY=VALUE"), (["=5"], "expected KEY=VALUE"),
     (["fa st=1"], "not a valid parameter name"), (["fast=1", "fast=2"], "set twice")],
)
def test_bad_set_options_name_the_option(items: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as info:
        parse_set_options(items)
    assert "--set" in str(info.value)


def test_grid_options_split_on_commas() -> None:
    assert parse_grid_options(["fast=5,10,20", "mode=a,b"]) == {
        "fast": [5, 10, 20], "mode": ["a", "b"]}


@pytest.mark.parametrize(
    ("items", "fragment"),
    [(["fast=5,,10"], "empty value"), (["fast="], "empty value"), (["fast=5,5"], "appears twice"),
     (["fast=1", "fast=2"], "two --grid"), (["fast:1,2"], "expected KEY=VALUE")],
)
def test_malformed_grid_is_refused_with_the_option(items: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as info:
        parse_grid_options(items)
    assert "--grid" in str(info.value)


def test_expand_grid_is_a_cartesian_product_first_key_slowest() -> None:
    combos = expand_grid({"tp": 1}, {"fast": [5, 10], "slow": [20, 30, 40]})
    assert len(combos) == 6
    assert combos[0] == {"tp": 1, "fast": 5, "slow": 20}
    assert combos[1] == {"tp": 1, "fast": 5, "slow": 30}
    assert combos[-1] == {"tp": 1, "fast": 10, "slow": 40}
    assert expand_grid({"a": 1}, {}) == [{"a": 1}]


def test_plan_runs_cover_files_times_combinations_and_route_params() -> None:
    plan = BacktestPlan(
        strategy="sma_cross",
        files=("/d/a.csv", "/d/b.csv"),
        base_strategy_params={"slow": 30},
        base_broker_params={"spread_pips": 1.0},
        grid={"fast": [5, 10, 15], "leverage": [10.0, 50.0]},
        grid_targets={"fast": "strategy", "leverage": "broker"},
    )
    runs = plan.runs()
    assert len(runs) == 2 * 3 * 2
    assert [r.index for r in runs] == list(range(12))
    first = runs[0]
    assert first.path == "/d/a.csv"
    assert first.strategy_params == {"slow": 30, "fast": 5}
    assert first.broker_params == {"spread_pips": 1.0, "leverage": 10.0}
    assert first.grid_params == {"fast": 5, "leverage": 10.0}
    assert first.label == "a.csv fast=5 leverage=10.0"
    assert {r.path for r in runs[6:]} == {"/d/b.csv"}
    # Each run owns its dicts: changing one cannot leak into another.
    first.strategy_params["fast"] = 99
    assert runs[1].strategy_params["fast"] == 5


def test_expand_paths_globs_sorted_unique_and_refuses_misses(tmp_path: Path) -> None:
    for name in ("b.csv", "a.csv", "notes.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "sub").mkdir()
    files = expand_paths([str(tmp_path / "*.csv"), str(tmp_path / "a.csv")])
    assert [f.name for f in files] == ["a.csv", "b.csv"]
    with pytest.raises(ConfigError, match="no CSV file matches"):
        expand_paths([str(tmp_path / "*.parquet")])
    with pytest.raises(ConfigError, match="does not exist"):
        expand_paths([str(tmp_path / "missing.csv")])
    with pytest.raises(ConfigError, match="is not a file"):
        expand_paths([str(tmp_path / "sub")])


def test_expand_paths_refuses_a_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "a.csv").symlink_to(tmp_path / "b.csv")
    (tmp_path / "b.csv").symlink_to(tmp_path / "a.csv")
    with pytest.raises(ConfigError, match="a.csv"):
        expand_paths([str(tmp_path / "a.csv")])
