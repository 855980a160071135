"""The body of the Ray tasks: load one CSV, run one backtest. Plain Python, no Ray.

Keeping the bodies free of Ray lets the benchmark call exactly the same functions in
one process (the sequential reference) and through Ray tasks, and lets unit tests run
them directly.

Failures are values, not exceptions: a malformed CSV becomes a :class:`LoadFailure`
that every run of that file reports, and a run whose strategy refuses its parameters
comes back as a failed :class:`RunOutcome` naming the parameter. Only bugs escape as
exceptions (the driver still turns them into a failed row).
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from actors.backtests import plots
from actors.backtests.outcome import RunOutcome, RunStatus, compress_trades_csv
from actors.backtests.report import trade_log_csv_bytes
from engine.backtest.plan import RunSpec
from engine.data.market_data import MarketData
from engine.errors import ConfigError, LTSError
from engine.public_text import public_reason

logger = logging.getLogger(__name__)

CURVE_POINTS = 2000
"""Points kept of each equity curve for the PNG and the report's overlay chart."""


@dataclass(frozen=True, slots=True)
class LoadFailure:
    """A CSV that could not be loaded; ``reason`` names the file (and line)."""

    path: str
    reason: str


def load_data(
    path: str, *, datetime_column: str = "DATE_TIME", symbol: str | None = None
) -> MarketData | LoadFailure:
    """Parse one CSV into columnar arrays, or say why it could not be parsed."""
    from engine.data.csv_loader import load_csv

    try:
        data = load_csv(path, symbol=symbol or Path(path).stem, datetime_column=datetime_column)
    except LTSError as exc:
        return LoadFailure(path, str(exc))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        # The loader's own errors are DataError; these come from the file system or a
        # decoder before the loader could attach a line number. Their text may quote the
        # server's path or the file's content: the reason names the file and the kind only.
        logger.warning("backtest data %s could not be loaded: %s", path, exc)
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        return LoadFailure(path, f"{Path(path).name}: cannot be read ({why})")
    # A token of this parse: every run reports the token of the arrays it used, which
    # shows (and lets tests check) that all runs of a file shared one parsed copy.
    return dataclasses.replace(data, meta={**data.meta, "load_id": uuid.uuid4().hex})


def check_param_types(
    defaults: Mapping[str, Any], params: Mapping[str, Any], *, owner: str
) -> None:
    """Refuse a value whose type does not fit the parameter's default (``fast='abc'``).

    The default's type is the parameter's type, as in the config validation: an int
    default wants an int, a float default an int or float, a bool default a bool, a
    string default a string; a ``None`` default accepts anything. Unknown keys were
    refused before the batch started.
    """
    for key, value in params.items():
        if key not in defaults:
            continue
        default = defaults[key]
        if default is None or value is None:
            continue
        if isinstance(default, bool):
            ok, wanted = isinstance(value, bool), "true or false"
        elif isinstance(default, int):
            ok, wanted = isinstance(value, int) and not isinstance(value, bool), "an integer"
        elif isinstance(default, float):
            ok, wanted = (
                isinstance(value, (int, float)) and not isinstance(value, bool),
                "a number",
            )
        elif isinstance(default, str):
            ok, wanted = isinstance(value, str), "text"
        else:
            ok, wanted = isinstance(value, type(default)), type(default).__name__
        if not ok:
            raise ConfigError(
                f"{owner} parameter {key!r}: invalid value {value!r} "
                f"(expected {wanted}, like its default {default!r})"
            )


def _validate_params(spec: RunSpec) -> None:
    """Type-check the strategy's values before the run (the broker's numbers are
    checked by the simulation's cost model, which names the key)."""
    from engine.plugins.loader import load_plugin

    strategy_cls = load_plugin("strategy", spec.strategy)
    check_param_types(strategy_cls.plugin_params, spec.strategy_params,
                      owner=f"strategy {spec.strategy!r}")


def _failed(spec: RunSpec, reason: str, *, bars: int = 0, seconds: float = 0.0) -> RunOutcome:
    return RunOutcome(
        index=spec.index,
        path=spec.path,
        label=spec.label,
        grid_params=spec.grid_params,
        strategy_params=spec.strategy_params,
        broker_params=spec.broker_params,
        status=RunStatus.FAILED,
        error=reason,
        bars=bars,
        seconds=seconds,
    )


def execute_run(
    spec: RunSpec,
    data: MarketData | LoadFailure,
    *,
    render_png: bool = True,
    keep_trades: bool = False,
    curve_points: int = CURVE_POINTS,
) -> RunOutcome:
    """Run one backtest entirely here (the single-CSV loop, no actor calls) and package
    its statistics, its trades as CSV bytes, a reduced equity curve and (optionally)
    its PNG. ``keep_trades`` also returns the ``Trade`` objects (costlier to ship)."""
    from engine.backtest.runner import run_backtest

    if isinstance(data, LoadFailure):
        return _failed(spec, data.reason)
    started = time.perf_counter()
    try:
        _validate_params(spec)
        result = run_backtest(data, spec.strategy, spec.strategy_params, spec.broker_params)
    except LTSError as exc:
        return _failed(spec, f"{spec.file_name}: {exc}", bars=len(data),
                       seconds=time.perf_counter() - started)
    except Exception as exc:  # a bug in a strategy or broker: isolate it to this run
        logger.exception("backtest %s crashed", spec.label)  # the traceback: server log only
        return _failed(spec, f"{spec.file_name}: {public_reason(exc, generic='unexpected error')}",
                       bars=len(data), seconds=time.perf_counter() - started)
    seconds = time.perf_counter() - started

    equity = np.asarray(result.equity, dtype=np.float64)
    times = np.asarray(result.timestamps, dtype=np.int64)
    curve_times, curve_values = plots.downsample_curve(times, equity, curve_points)
    png = None
    if render_png and equity.size:
        png = plots.equity_png(curve_times, curve_values, title=spec.label,
                               initial_equity=float(equity[0]))
    return RunOutcome(
        index=spec.index,
        path=spec.path,
        label=spec.label,
        grid_params=spec.grid_params,
        strategy_params=spec.strategy_params,
        broker_params=spec.broker_params,
        status=RunStatus.OK,
        stats=dict(result.stats),
        bars=len(data),
        data_id=data.meta.get("load_id"),
        seconds=seconds,
        trades_csv_zlib=compress_trades_csv(trade_log_csv_bytes(result.trade_log)),
        trades=list(result.trades) if keep_trades else None,
        curve_times=curve_times,
        curve_values=curve_values,
        equity_png=png,
    )
