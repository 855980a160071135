"""Turn a user's request (CLI options or an API body) into a checked :class:`BacktestPlan`.

Everything that makes the *whole* request wrong is refused here, before any task
starts, with a :class:`ConfigError` naming the option: an unknown strategy, a parameter
that neither the strategy nor the simulation broker knows (with a "did you mean"),
a malformed ``--set``/``--grid``. A *value* that does not suit a parameter
(``fast=abc``, ``slow=-5``) is left to the run that uses it, so the other runs still
complete and the table says which value was refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.backtest.plan import BacktestPlan, parse_grid_options, parse_set_options
from engine.errors import ConfigError
from engine.suggestions import did_you_mean


def broker_defaults() -> dict[str, Any]:
    """The simulation broker's parameters (what ``run_backtest`` accepts as broker_params)."""
    from engine.brokers._sim_costs import DEFAULT_SIM_PARAMS

    return dict(DEFAULT_SIM_PARAMS)


def strategy_defaults(strategy: str) -> dict[str, Any]:
    """The strategy plugin's parameters; ``PluginError`` names the available ones."""
    from engine.plugins.loader import load_plugin

    return dict(load_plugin("strategy", strategy).plugin_params)


def _route(key: str, option: str, strategy: str, strategy_keys: Sequence[str],
           broker_keys: Sequence[str]) -> str:
    if key in strategy_keys and key in broker_keys:
        return "both"  # e.g. pip_size: the strategy's distances and the broker's costs
    if key in strategy_keys:
        return "strategy"
    if key in broker_keys:
        return "broker"
    known = list(strategy_keys) + list(broker_keys)
    close = did_you_mean(key, known)
    hint = f"; {close}" if close else ""
    raise ConfigError(
        f"{option} {key}: unknown parameter for strategy {strategy!r} and the simulation "
        f"broker{hint} (strategy parameters: {', '.join(sorted(strategy_keys)) or 'none'}; "
        f"broker parameters: {', '.join(sorted(broker_keys))})"
    )


def config_params(config: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """Values of ``keys`` that a config file or the command line set explicitly.

    Plugin defaults are left out so the strategy applies its own (and the summary shows
    only what the user chose)."""
    source = getattr(config, "source", None)
    chosen: dict[str, Any] = {}
    for key in keys:
        if key not in config:
            continue
        if source is not None and source(key).kind in ("default", "plugin"):
            continue
        chosen[key] = config[key]
    return chosen


def build_plan(
    *,
    strategy: str,
    files: Sequence[Path | str],
    set_items: Sequence[str] = (),
    grid_items: Sequence[str] = (),
    config: Mapping[str, Any] | None = None,
    datetime_column: str = "DATE_TIME",
    symbol: str | None = None,
) -> BacktestPlan:
    """Check the request and build its plan (see module doc for what is refused)."""
    if not files:
        raise ConfigError("no data files given")
    strategy_keys = list(strategy_defaults(strategy))
    broker_keys = list(broker_defaults())
    set_params = parse_set_options(set_items)
    grid = parse_grid_options(grid_items)
    return plan_from_params(
        strategy=strategy,
        files=files,
        set_params=set_params,
        grid=grid,
        config=config,
        datetime_column=datetime_column,
        symbol=symbol,
        strategy_keys=strategy_keys,
        broker_keys=broker_keys,
    )


def plan_from_params(
    *,
    strategy: str,
    files: Sequence[Path | str],
    set_params: Mapping[str, Any],
    grid: Mapping[str, Sequence[Any]],
    config: Mapping[str, Any] | None = None,
    datetime_column: str = "DATE_TIME",
    symbol: str | None = None,
    strategy_keys: Sequence[str] | None = None,
    broker_keys: Sequence[str] | None = None,
) -> BacktestPlan:
    """Like :func:`build_plan` for already-typed values (the REST API's JSON body)."""
    if strategy_keys is None:
        strategy_keys = list(strategy_defaults(strategy))
    if broker_keys is None:
        broker_keys = list(broker_defaults())
    overlap = set(set_params) & set(grid)
    if overlap:
        raise ConfigError(
            f"parameter(s) {', '.join(sorted(overlap))} given both with --set and --grid"
        )
    base_strategy = config_params(config or {}, strategy_keys)
    base_broker = config_params(config or {}, broker_keys)
    for key, value in set_params.items():
        target = _route(key, "--set", strategy, strategy_keys, broker_keys)
        if target in ("strategy", "both"):
            base_strategy[key] = value
        if target in ("broker", "both"):
            base_broker[key] = value
    targets: dict[str, str] = {}
    for key, values in grid.items():
        targets[key] = _route(key, "--grid", strategy, strategy_keys, broker_keys)
        if not values:
            raise ConfigError(f"--grid {key}: no values")
    if not datetime_column.strip():
        raise ConfigError("--datetime_column must not be empty")
    return BacktestPlan(
        strategy=strategy,
        files=tuple(str(f) for f in files),
        base_strategy_params=base_strategy,
        base_broker_params=base_broker,
        grid={key: list(values) for key, values in grid.items()},
        datetime_column=datetime_column,
        symbol=symbol,
        grid_targets=targets,
    )
