"""The prediction contract shared by the API client, the CSV provider and the strategies.

A provider answers ``get_predictions(symbol, at, types)`` for one bar time. For fast
backtests the CSV provider also offers ``precompute(data)``: the whole file's
predictions as arrays, computed once, so a per-bar loop only indexes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

import numpy as np

from engine.data.market_data import MarketData

SHORT_TERM = "short_term"
LONG_TERM = "long_term"
PREDICTION_TYPES: tuple[str, ...] = (SHORT_TERM, LONG_TERM)


@dataclass(frozen=True, slots=True)
class PredictionResult:
    """Predictions made at ``timestamp`` (the bar's own time, never the wall clock).

    ``short_term[k]`` / ``long_term[k]`` is the predicted price ``k+1`` steps ahead
    (bars for short term, days for long term); ``None`` where the provider had no
    value. Uncertainties are parallel lists (same length), ``None`` where unknown.
    ``errors`` names what went wrong for missing values or a failed type.
    """

    symbol: str
    timestamp: datetime
    short_term: list[float | None] = field(default_factory=list)
    long_term: list[float | None] = field(default_factory=list)
    short_uncertainty: list[float | None] = field(default_factory=list)
    long_uncertainty: list[float | None] = field(default_factory=list)
    source: str = "unknown"  # "api" | "csv"
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when both horizons returned at least one value and nothing failed."""
        return bool(self.short_term) and bool(self.long_term) and not self.errors


@dataclass(frozen=True, slots=True)
class PrecomputedPredictions:
    """Whole-series predictions: row ``i`` is what is predicted at bar ``i``.

    ``short_term``: shape (n, 6), close 1..6 bars ahead; ``long_term``: shape (n, 6),
    close 1..6 days ahead. NaN where the horizon runs past the end of the data.
    Uncertainty arrays have the same shapes.
    """

    short_term: np.ndarray
    long_term: np.ndarray
    short_uncertainty: np.ndarray
    long_uncertainty: np.ndarray


@runtime_checkable
class PredictionProvider(Protocol):
    """Anything that can answer predictions for one symbol at one bar time."""

    def get_predictions(
        self, symbol: str, at: datetime, types: tuple[str, ...] = PREDICTION_TYPES
    ) -> PredictionResult: ...


@runtime_checkable
class PrecomputingProvider(PredictionProvider, Protocol):
    """A provider that can compute a whole file's predictions at once (CSV mode)."""

    def precompute(self, data: MarketData) -> PrecomputedPredictions: ...
