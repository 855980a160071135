"""What a batch of backtests is: files x parameter combinations, parsed from the command line.

``--set key=value`` fixes a parameter for every run; ``--grid key=v1,v2,...`` makes one
run per value, and several ``--grid`` options multiply (a Cartesian product). Values
are typed the way the config layer types CLI values: int, float, bool, ``null``, JSON
lists/objects, otherwise the plain string.

Everything here is plain Python (no Ray), so it is unit-tested on its own and reused by
the REST API, which builds the same :class:`BacktestPlan` from a JSON body.
"""

from __future__ import annotations

import glob
import itertools
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ConfigError

MAX_RUNS = 100_000
"""Refuse plans larger than this: a typo in a grid should not queue a million tasks."""


def parse_value(text: str) -> Any:
    """Type a command-line value: ``5`` -> 5, ``0.5`` -> 0.5, ``true`` -> True,
    ``null``/``none`` -> None, ``[1,2]`` -> [1, 2]; anything else stays a string."""
    stripped = text.strip()
    lowered = stripped.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    try:
        return int(stripped)
    except ValueError:
        pass
    try:
        return float(stripped)
    except ValueError:
        pass
    if stripped[:1] in ("[", "{", '"'):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            pass
    return stripped


def _split_assignment(option: str, text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"{option} {text!r}: expected KEY=VALUE (for example {option} fast=10)")
    if not key.isidentifier():
        raise ConfigError(f"{option} {text!r}: {key!r} is not a valid parameter name")
    return key, value


def parse_set_options(items: Iterable[str]) -> dict[str, Any]:
    """``["fast=10", "tp=0.002"]`` -> ``{"fast": 10, "tp": 0.002}``; a repeated key is refused."""
    params: dict[str, Any] = {}
    for item in items:
        key, value = _split_assignment("--set", item)
        if key in params:
            raise ConfigError(f"--set {item!r}: parameter {key!r} is set twice")
        params[key] = parse_value(value)
    return params


def parse_grid_options(items: Iterable[str]) -> dict[str, list[Any]]:
    """``["fast=5,10,20"]`` -> ``{"fast": [5, 10, 20]}``.

    Values are split on commas (a JSON list value is taken whole: ``sizes=[1,2],[3,4]``
    is not supported, use several runs instead). Empty values and repeated keys or
    values are refused: each would silently run the same backtest twice.
    """
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, raw = _split_assignment("--grid", item)
        if key in grid:
            raise ConfigError(f"--grid {item!r}: parameter {key!r} has two --grid options")
        parts = [part.strip() for part in raw.split(",")]
        if not raw.strip() or any(part == "" for part in parts):
            raise ConfigError(
                f"--grid {item!r}: empty value for {key!r} (expected {key}=v1,v2,...)"
            )
        values = [parse_value(part) for part in parts]
        seen: list[Any] = []
        for value in values:
            if value in seen:
                raise ConfigError(f"--grid {item!r}: value {value!r} appears twice for {key!r}")
            seen.append(value)
        grid[key] = values
    return grid


def expand_grid(base: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values on top of ``base``, in a stable order
    (the first grid key varies slowest). No grid gives one combination: ``base``."""
    if not grid:
        return [dict(base)]
    keys = list(grid)
    combos = []
    for values in itertools.product(*(grid[k] for k in keys)):
        combo = dict(base)
        combo.update(zip(keys, values))
        combos.append(combo)
    return combos


def expand_paths(patterns: Sequence[str], *, base_dir: Path | None = None) -> list[Path]:
    """Resolve files and glob patterns to a sorted, de-duplicated list of files.

    A pattern that matches nothing, or a plain path that does not exist, is an error
    naming it (a typo must not silently shrink the batch). Directories are refused.
    """
    found: dict[str, Path] = {}
    for pattern in patterns:
        candidate = Path(os.path.expanduser(pattern))
        if base_dir is not None and not candidate.is_absolute():
            candidate = base_dir / candidate
        if glob.has_magic(str(candidate)):
            matches = sorted(Path(m) for m in glob.glob(str(candidate), recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                raise ConfigError(f"no CSV file matches {pattern!r}")
        else:
            if not candidate.exists():
                raise ConfigError(f"data file {pattern!r} does not exist")
            if not candidate.is_file():
                raise ConfigError(f"data path {pattern!r} is not a file")
            files = [candidate]
        for path in files:
            try:
                key = str(path.resolve())
            except (OSError, RuntimeError) as exc:  # 3.11 raises RuntimeError on a symlink loop
                raise ConfigError(f"data file {str(path)!r} cannot be read: {exc}") from None
            found.setdefault(key, path)
    return [found[key] for key in sorted(found)]


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One backtest: one file with one parameter combination."""

    index: int  # position in the plan, stable across runs of the same command
    path: str
    strategy: str
    strategy_params: dict[str, Any]
    broker_params: dict[str, Any]
    grid_params: dict[str, Any]  # the values this run's grid point chose (for the table)

    @property
    def file_name(self) -> str:
        return Path(self.path).name

    @property
    def label(self) -> str:
        """``EURUSD.csv fast=10 slow=30``: how the run is named in tables and logs."""
        point = " ".join(f"{k}={v}" for k, v in self.grid_params.items())
        return f"{self.file_name} {point}".strip()


@dataclass(frozen=True, slots=True)
class BacktestPlan:
    """A whole batch: files x combinations, plus how to read the files."""

    strategy: str
    files: tuple[str, ...]
    base_strategy_params: dict[str, Any]
    base_broker_params: dict[str, Any]
    grid: dict[str, list[Any]]
    datetime_column: str = "DATE_TIME"
    symbol: str | None = None  # None: each file's symbol comes from its name
    grid_targets: dict[str, str] = field(default_factory=dict)  # key -> strategy|broker|both

    def runs(self) -> list[RunSpec]:
        """Every run of the plan, files outermost, in a stable order."""
        combos = list(
            itertools.product(*(self.grid[k] for k in self.grid)) if self.grid else [()]
        )
        total = len(self.files) * len(combos)
        if total > MAX_RUNS:
            raise ConfigError(f"the plan has {total} runs; at most {MAX_RUNS} are allowed")
        runs: list[RunSpec] = []
        keys = list(self.grid)
        for path in self.files:
            for values in combos:
                point = dict(zip(keys, values))
                strategy_params = dict(self.base_strategy_params)
                broker_params = dict(self.base_broker_params)
                for key, value in point.items():
                    target = self.grid_targets.get(key, "strategy")
                    if target in ("strategy", "both"):
                        strategy_params[key] = value
                    if target in ("broker", "both"):
                        broker_params[key] = value
                runs.append(
                    RunSpec(
                        index=len(runs),
                        path=path,
                        strategy=self.strategy,
                        strategy_params=strategy_params,
                        broker_params=broker_params,
                        grid_params=point,
                    )
                )
        return runs

    def to_json(self) -> dict[str, Any]:
        """JSON-able description (stored with the run in the database)."""
        return {
            "strategy": self.strategy,
            "files": list(self.files),
            "strategy_params": self.base_strategy_params,
            "broker_params": self.base_broker_params,
            "grid": self.grid,
            "datetime_column": self.datetime_column,
            "symbol": self.symbol,
        }
