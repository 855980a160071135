"""The entry-point plugin loader: discovery, every refusal and its message (INT-01)."""

from __future__ import annotations

import re

import pytest

from engine.errors import PluginError
from engine.plugins import GROUPS, StrategyPlugin, available_plugins, create_plugin, load_plugin
from engine.plugins.loader import (
    check_plugin_class,
    config_key,
    describe_plugins,
    entry_point_group,
    load_configured_plugins,
)
from tests.unit.foundation.conftest import SAMPLES, TINY_CONFIG


def test_every_group_is_an_lts_entry_point_group() -> None:
    assert GROUPS == ("aaa", "core", "pipeline", "strategy", "broker", "portfolio")
    assert [entry_point_group(g) for g in GROUPS] == [f"lts.{g}" for g in GROUPS]
    assert entry_point_group("lts.broker") == "lts.broker"
    assert config_key("lts.strategy") == "strategy_plugin"


def test_unknown_group_is_refused_with_the_list_of_groups() -> None:
    with pytest.raises(PluginError, match=r"unknown plugin group 'strat'; the groups are: aaa, core"):
        available_plugins("strat")


def test_registered_plugins_are_discovered_and_loaded(tiny_plugins: dict) -> None:
    strategies = available_plugins("strategy")
    assert {"tiny_strategy", "other_strategy"} <= set(strategies)
    assert strategies["tiny_strategy"].value == f"{SAMPLES}:TinyStrategy"
    cls = load_plugin("strategy", "tiny_strategy")
    assert issubclass(cls, StrategyPlugin) and cls.__name__ == "TinyStrategy"
    for group, name in [(g, TINY_CONFIG[f"{g}_plugin"]) for g in GROUPS]:
        assert load_plugin(group, name).group == group


def test_the_repository_registers_its_own_plugins_in_every_group() -> None:
    # Names only: the classes behind them belong to other areas and may not import yet.
    names = {group: set(available_plugins(group)) for group in GROUPS}
    assert "default_strategy" in names["strategy"] and "sma_cross" in names["strategy"]
    assert {"default_broker", "oanda_broker"} <= names["broker"]
    assert all(f"default_{g}" in names[g] for g in GROUPS)


def test_unknown_name_lists_the_available_names_of_that_group(tiny_plugins: dict) -> None:
    with pytest.raises(PluginError) as err:
        load_plugin("strategy", "tiny_stratgy")
    message = str(err.value)
    assert message.startswith("unknown strategy plugin 'tiny_stratgy' (available in lts.strategy: ")
    listed = message.split(": ", 1)[1].rstrip(")").split(", ")
    assert listed == sorted(available_plugins("strategy"))
    assert "tiny_strategy" in listed and "other_strategy" in listed


def test_plugin_raising_on_import_names_plugin_entry_point_and_error(plugin_dist) -> None:
    target = "tests.unit.foundation.sample_broken_plugin:BrokenStrategy"
    plugin_dist({"lts.strategy": {"broken_strategy": target}})
    with pytest.raises(PluginError) as err:
        load_plugin("strategy", "broken_strategy")
    assert str(err.value) == (
        f"strategy plugin 'broken_strategy' (entry point {target}) failed to import: "
        "RuntimeError: sample plugin failed on purpose: no API key configured"
    )
    assert isinstance(err.value.__cause__, RuntimeError)


def test_plugin_whose_module_is_missing_is_reported(plugin_dist) -> None:
    plugin_dist({"lts.broker": {"ghost": "lts_no_such_module.broker:Ghost"}})
    with pytest.raises(PluginError) as err:
        load_plugin("broker", "ghost")
    assert str(err.value) == (
        "broker plugin 'ghost' (entry point lts_no_such_module.broker:Ghost) failed to import: "
        "ModuleNotFoundError: No module named 'lts_no_such_module'"
    )


def test_missing_attribute_in_an_existing_module_is_reported(plugin_dist) -> None:
    plugin_dist({"lts.strategy": {"typo": f"{SAMPLES}:TinyStrategyy"}})
    with pytest.raises(PluginError, match=r"'typo' \(entry point .*:TinyStrategyy\) failed to import: AttributeError"):
        load_plugin("strategy", "typo")


def test_class_of_another_group_is_refused(plugin_dist) -> None:
    plugin_dist({"lts.strategy": {"a_broker": f"{SAMPLES}:TinyBroker"}})
    with pytest.raises(PluginError) as err:
        load_plugin("strategy", "a_broker")
    assert str(err.value) == (
        f"strategy plugin 'a_broker' (entry point {SAMPLES}:TinyBroker) "
        f"({SAMPLES}.TinyBroker) is not a subclass of engine.plugins.base.StrategyPlugin"
    )


def test_class_outside_the_plugin_hierarchy_is_refused(plugin_dist) -> None:
    plugin_dist({"lts.strategy": {"plain": f"{SAMPLES}:NotAPlugin"}})
    with pytest.raises(PluginError, match=r"is not a subclass of engine\.plugins\.base\.StrategyPlugin"):
        load_plugin("strategy", "plain")


def test_non_class_is_refused(plugin_dist) -> None:
    plugin_dist({"lts.portfolio": {"func": f"{SAMPLES}:not_a_class"}})
    with pytest.raises(PluginError) as err:
        load_plugin("portfolio", "func")
    assert str(err.value) == (
        f"portfolio plugin 'func' (entry point {SAMPLES}:not_a_class) is not a class but a "
        "function; it must be a subclass of engine.plugins.base.PortfolioPlugin"
    )


def test_abstract_required_methods_are_refused_by_name(plugin_dist) -> None:
    plugin_dist({"lts.broker": {"half": f"{SAMPLES}:HalfBroker"}})
    with pytest.raises(PluginError) as err:
        load_plugin("broker", "half")
    assert str(err.value) == (
        f"broker plugin 'half' (entry point {SAMPLES}:HalfBroker) does not implement the broker "
        "contract: not implemented (abstract): open_order, close_order, modify_order, get_open_orders"
    )


def test_missing_required_method_is_refused_by_name(plugin_dist) -> None:
    plugin_dist({"lts.strategy": {"nodecide": f"{SAMPLES}:NullDecideStrategy"}})
    with pytest.raises(PluginError, match=r"does not implement the strategy contract: missing decide$"):
        load_plugin("strategy", "nodecide")


def test_plugin_params_must_be_a_mapping(plugin_dist) -> None:
    plugin_dist({"lts.strategy": {"badparams": f"{SAMPLES}:BadParamsStrategy"}})
    with pytest.raises(PluginError, match=r"plugin_params must be a dict of parameter name -> default"):
        load_plugin("strategy", "badparams")


def test_check_plugin_class_accepts_a_complete_class() -> None:
    from tests.unit.foundation.sample_plugins import TinyBroker

    assert check_plugin_class("broker", TinyBroker) is TinyBroker


def test_create_plugin_keeps_only_its_own_parameters(tiny_plugins: dict) -> None:
    plugin = create_plugin("strategy", "tiny_strategy", {"fast": 5, "api_port": 9, "unrelated": 1})
    assert plugin.params["fast"] == 5
    assert plugin.params["slow"] == 7  # its own default
    assert "unrelated" not in plugin.params
    assert plugin.get_debug_info() == {"fast": 5, "label": "tiny"}


def test_load_configured_plugins_reports_every_failure_at_once(tiny_plugins: dict) -> None:
    config = dict(TINY_CONFIG, strategy_plugin="nope", broker_plugin="")
    with pytest.raises(PluginError) as err:
        load_configured_plugins(config)
    clauses = str(err.value).split("; ")
    assert clauses[0].startswith("strategy_plugin: unknown strategy plugin 'nope' (available")
    assert any(c == "config key 'broker_plugin' must name a plugin, got ''" for c in clauses)
    loaded = load_configured_plugins(TINY_CONFIG)
    assert [cls.__name__ for cls in loaded.values()] == [
        "TinyAAA", "TinyCore", "TinyPipeline", "TinyStrategy", "TinyBroker", "TinyPortfolio"
    ]


def test_describe_plugins_lists_failures_without_hiding_the_rest(plugin_dist) -> None:
    plugin_dist(
        {
            "lts.strategy": {
                "tiny_strategy": f"{SAMPLES}:TinyStrategy",
                "broken_strategy": "tests.unit.foundation.sample_broken_plugin:X",
            }
        }
    )
    infos = {info.name: info for info in describe_plugins(("strategy",))["strategy"]}
    assert infos["tiny_strategy"].ok
    assert infos["tiny_strategy"].params["fast"] == 3
    assert infos["tiny_strategy"].description == "Test strategy: buys above ``level``."
    assert infos["tiny_strategy"].distribution == "lts-test-plugins"
    assert not infos["broken_strategy"].ok
    assert re.search(r"failed to import: RuntimeError: sample plugin failed", infos["broken_strategy"].error)


def test_the_entry_point_scan_is_cached_until_the_import_path_changes(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scanning every distribution costs ~20 ms per lookup; what a folder on sys.path
    holds is reused while the folder does not change, and read again as soon as it does
    (a plugin installed into a folder already on the path is found at once, and one
    removed is gone)."""
    import os
    import shutil

    from engine.plugins import loader
    from tests.unit.foundation.conftest import SAMPLES, write_distribution

    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    scans: list[list[str]] = []
    real = loader.distributions
    monkeypatch.setattr(loader, "distributions", lambda path: scans.append(path) or real(path=path))

    def scans_of_site() -> int:
        return sum(1 for path in scans if path == [str(site)])

    def folder_scans() -> int:  # entries that do not exist (a missing zip) are not cached
        return sum(1 for path in scans if os.path.isdir(path[0] or "."))

    # Settled folders: the second lookup reuses the first scan of every folder.
    monkeypatch.setattr(loader, "_SETTLED_S", 0.0)
    assert "late_strategy" not in available_plugins("strategy")
    first = folder_scans()
    assert scans_of_site() == 1
    assert "sma_cross" in available_plugins("strategy")
    assert folder_scans() == first

    # A distribution appears in a folder already on sys.path: its mtime changes.
    write_distribution(site, "lts-late", {"lts.strategy": {"late_strategy": f"{SAMPLES}:TinyStrategy"}})
    stamp = os.stat(site).st_mtime_ns + 1_000_000_000  # as if a second later (coarse clocks)
    os.utime(site, ns=(stamp, stamp))
    assert load_plugin("strategy", "late_strategy").__name__ == "TinyStrategy"
    assert folder_scans() == first + 1 and scans_of_site() == 2  # only that folder was read again

    shutil.rmtree(site / "lts_late-1.0.dist-info")
    stamp += 1_000_000_000
    os.utime(site, ns=(stamp, stamp))
    with pytest.raises(PluginError, match="unknown strategy plugin 'late_strategy'"):
        load_plugin("strategy", "late_strategy")

    # A folder changed moments ago is never cached, whatever its mtime says.
    monkeypatch.setattr(loader, "_SETTLED_S", 3600.0)
    os.utime(site)  # now
    before = scans_of_site()
    available_plugins("strategy")
    available_plugins("strategy")
    assert scans_of_site() == before + 2


def test_the_cached_lookup_finds_what_importlib_finds() -> None:
    """Same names and targets as importlib.metadata.entry_points, in every group."""
    from importlib.metadata import entry_points

    for group in GROUPS:
        expected: dict[str, str] = {}
        for ep in entry_points(group=entry_point_group(group)):
            expected.setdefault(ep.name, ep.value)
        assert {name: ep.value for name, ep in available_plugins(group).items()} == expected
