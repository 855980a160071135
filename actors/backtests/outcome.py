"""What one backtest run produced, as it travels from a Ray task back to the driver.

A plain slotted dataclass (no Ray): the task fills it, the driver writes the run's files
from it and keeps only a :class:`SummaryRow` (a few hundred bytes) per run, so the driver's
memory does not grow with the size of the data or the number of trades.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from engine.types import Trade


class RunStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"
    CANCELLED = "cancelled"


# The statistics every table and report shows, in column order: key, header, kind.
# ``kind`` says how to format: "pct" (fraction shown as %), "ratio", "int".
METRICS: tuple[tuple[str, str, str], ...] = (
    ("total_return", "total ret", "pct"),
    ("annualized_return", "annual ret", "pct"),
    ("sharpe", "Sharpe", "ratio"),
    ("sortino", "Sortino", "ratio"),
    ("max_drawdown", "max DD", "pct"),
    ("win_rate", "win rate", "pct"),
    ("profit_factor", "PF", "ratio"),
    ("trades", "trades", "int"),
)
METRIC_KEYS: tuple[str, ...] = tuple(key for key, _, _ in METRICS)


def compress_trades_csv(csv_bytes: bytes) -> bytes:
    """A trades CSV as :class:`RunOutcome` carries it (zlib level 1, the fastest: the
    bytes cross the cluster once and are written once)."""
    return zlib.compress(csv_bytes, 1)


@dataclass(slots=True)
class RunOutcome:
    """The full result of one run (trades and curve included)."""

    index: int
    path: str
    label: str
    grid_params: dict[str, Any]
    strategy_params: dict[str, Any]
    broker_params: dict[str, Any]
    status: RunStatus
    error: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    bars: int = 0
    seconds: float = 0.0
    # Every trade, as written to runs/.../trades.csv, zlib-compressed (see ``trades_csv``).
    trades_csv_zlib: bytes | None = None
    trades: list[Trade] | None = None  # the Trade objects, only when asked for (tests, API)
    curve_times: np.ndarray | None = None  # downsampled equity curve, int64 ns UTC
    curve_values: np.ndarray | None = None
    equity_png: bytes | None = None
    data_id: str | None = None  # which parsed copy of the file the run used

    @property
    def trades_csv(self) -> bytes | None:
        """The trades CSV as written to ``runs/.../trades.csv``.

        The task ships it compressed (zlib level 1, to about a fifth), so the whole
        result stays under Ray's 100 KB limit and travels in the task's reply instead
        of through the object store, and a cluster's workers send the driver a fifth
        of the bytes (figures: bench/RESULTS.md)."""
        return None if self.trades_csv_zlib is None else zlib.decompress(self.trades_csv_zlib)

    def summary(self) -> "SummaryRow":
        """The small part the driver keeps for the ranked table and the report."""
        return SummaryRow(
            index=self.index,
            path=self.path,
            label=self.label,
            grid_params=dict(self.grid_params),
            strategy_params=dict(self.strategy_params),
            broker_params=dict(self.broker_params),
            status=self.status,
            error=self.error,
            stats=dict(self.stats),
            bars=self.bars,
            seconds=self.seconds,
        )


@dataclass(slots=True)
class SummaryRow:
    """One line of the ranked table (no trades, no curve)."""

    index: int
    path: str
    label: str
    grid_params: dict[str, Any]
    strategy_params: dict[str, Any]
    broker_params: dict[str, Any]
    status: RunStatus
    error: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    bars: int = 0
    seconds: float = 0.0
    files: dict[str, str] = field(default_factory=dict)  # kind -> path relative to out dir

    def metric(self, key: str) -> float | None:
        """A statistic as a float, or None when missing or not a finite number."""
        value = self.stats.get(key)
        if value is None:
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        return number if not math.isnan(number) else None

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "file": self.path,
            "label": self.label,
            "grid_params": self.grid_params,
            "strategy_params": self.strategy_params,
            "broker_params": self.broker_params,
            "status": str(self.status),
            "error": self.error,
            "stats": {k: json_number(v) for k, v in self.stats.items()},
            "bars": self.bars,
            "seconds": round(self.seconds, 6),
            "files": self.files,
        }


def json_number(value: Any) -> Any:
    """Make a statistic JSON-safe: NaN becomes None, +-inf a string, numpy scalars plain."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if math.isnan(number):
            return None
        if math.isinf(number):
            return "inf" if number > 0 else "-inf"
        return number
    return value
