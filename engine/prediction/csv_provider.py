"""CSV-mode predictions (seed §1.4 "CSV Test Mode"): "perfect" predictions read from
the future CLOSE prices of an OHLC series, with near-zero uncertainty.

Rules (the same in :meth:`CsvPredictionProvider.precompute` and
:meth:`CsvPredictionProvider.get_predictions`):

* short term, horizon ``h`` (1..6): the close ``h`` bars after the bar.
* long term, horizon ``h`` (1..6 days):

  - intraday data (median bar spacing under one day): the close of the first bar
    whose time is at or after ``bar time + h * 24 h``. Over a weekend this is the
    first bar after the gap, so Friday's 1- and 2-day predictions may both be
    Monday's first bar.
  - daily (or coarser) data: the close ``h`` bars ahead, i.e. ``h`` trading days,
    because calendar days would land on weekends and holidays.

  ``long_term_unit`` forces one rule (``"calendar_day"`` or ``"bar"``).
* past the end of the data the value is NaN in arrays and ``None`` in a
  :class:`PredictionResult` (uncertainty too).

``precompute`` does the whole file at once with ``np.searchsorted`` (a 1M-bar
series in well under a second); ``get_predictions`` answers one bar time with a
scalar computation, so the two are independent implementations of the same rule.
"""

from __future__ import annotations

import logging
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np

from engine.data.market_data import MarketData
from engine.errors import ConfigError, DataError, PredictionError
from engine.prediction.protocol import check_types
from engine.prediction.types import LONG_TERM, PREDICTION_TYPES, SHORT_TERM, PrecomputedPredictions, PredictionResult
from engine.types import ensure_utc

logger = logging.getLogger(__name__)

NS_PER_DAY = 86_400 * 1_000_000_000
DEFAULT_UNCERTAINTY = 1e-6
LongTermUnit = Literal["auto", "calendar_day", "bar"]


class CsvPredictionProvider:
    """Perfect predictions for one symbol's OHLC series (CSV test mode).

    ``horizons``: how many steps of each type (default 6, i.e. 1..6).
    ``uncertainty``: the constant uncertainty reported for every known value.
    ``long_term_unit``: see the module docstring.
    """

    source = "csv"

    def __init__(
        self,
        data: MarketData,
        *,
        horizons: int = 6,
        uncertainty: float = DEFAULT_UNCERTAINTY,
        long_term_unit: LongTermUnit = "auto",
    ) -> None:
        if not isinstance(horizons, int) or isinstance(horizons, bool) or horizons < 1:
            raise ConfigError(f"CSV prediction horizons must be an integer >= 1, got {horizons!r}")
        if not isinstance(uncertainty, (int, float)) or not math.isfinite(uncertainty) or uncertainty < 0:
            raise ConfigError(f"CSV prediction uncertainty must be a finite number >= 0, got {uncertainty!r}")
        if long_term_unit not in ("auto", "calendar_day", "bar"):
            raise ConfigError(
                f"CSV prediction long_term_unit must be 'auto', 'calendar_day' or 'bar', got {long_term_unit!r}"
            )
        _check_series(data)
        self.data = data
        self.horizons = horizons
        self.uncertainty = float(uncertainty)
        self.long_term_unit: LongTermUnit = long_term_unit
        self._long_in_bars = _long_term_in_bars(data, long_term_unit)
        self._warned_symbols: set[str] = set()

    @classmethod
    def from_csv(cls, path: str | Path, *, symbol: str | None = None, **options: object) -> "CsvPredictionProvider":
        """Load an OHLC CSV (``DATE_TIME`` + OHLC columns) and build a provider over it."""
        from engine.data.csv_loader import load_csv  # foundation module; imported when used

        return cls(load_csv(path, symbol=symbol), **options)  # type: ignore[arg-type]

    # -- whole series --------------------------------------------------------------------

    def precompute(self, data: MarketData | None = None) -> PrecomputedPredictions:
        """Predictions for every bar of ``data`` (default: this provider's data) at once."""
        if data is None:
            data = self.data
        else:
            _check_series(data)
        long_in_bars = self._long_in_bars if data is self.data else _long_term_in_bars(data, self.long_term_unit)
        close = np.asarray(data.close, dtype=np.float64)
        ts = np.asarray(data.timestamps, dtype=np.int64)
        n = close.shape[0]
        short = np.full((n, self.horizons), np.nan, dtype=np.float64)
        long = np.full((n, self.horizons), np.nan, dtype=np.float64)
        # One column at a time: temporaries stay O(n), not O(n * horizons).
        for h in range(1, self.horizons + 1):
            short[: max(n - h, 0), h - 1] = close[h:]
            if long_in_bars:
                long[:, h - 1] = short[:, h - 1]
            else:
                target = np.searchsorted(ts, ts + h * NS_PER_DAY, side="left")
                long[:, h - 1] = _take_or_nan(close, target)
        return PrecomputedPredictions(
            short_term=short,
            long_term=long,
            short_uncertainty=self._uncertainty_like(short),
            long_uncertainty=self._uncertainty_like(long),
        )

    # -- one bar -------------------------------------------------------------------------

    def get_predictions(self, symbol: str, at: datetime, types: tuple[str, ...] = PREDICTION_TYPES) -> PredictionResult:
        """Predictions made at bar time ``at``.

        ``at`` selects the last bar whose time is ``<= at`` (exactly the bar when
        ``at`` is a bar time; the latest known bar otherwise). Before the first bar
        there is nothing to predict from: every requested type gets an error.
        """
        wanted = check_types(types)
        at = ensure_utc(at)
        self._check_symbol(symbol)
        ts = self.data.timestamps
        at_ns = _to_ns(at)
        i = int(np.searchsorted(ts, at_ns, side="right")) - 1
        if i < 0:
            first = self.data.time_at(0).isoformat() if len(self.data) else "none"
            msg = f"no bar at or before {at.isoformat()} in {self._where()} (first bar {first})"
            return PredictionResult(symbol=symbol, timestamp=at, source="csv", errors={t: msg for t in wanted})
        close = self.data.close
        n = len(self.data)
        short: list[float | None] = []
        long: list[float | None] = []
        errors: dict[str, str] = {}
        for h in range(1, self.horizons + 1):
            if SHORT_TERM in wanted:
                short.append(float(close[i + h]) if i + h < n else None)
            if LONG_TERM in wanted:
                if self._long_in_bars:
                    j = i + h
                else:
                    j = int(np.searchsorted(ts, int(ts[i]) + h * NS_PER_DAY, side="left"))
                long.append(float(close[j]) if j < n else None)
        for name, values in ((SHORT_TERM, short), (LONG_TERM, long)):
            missing = [h for h, v in enumerate(values, start=1) if v is None]
            if missing:
                errors[name] = f"no value for horizon(s) {missing}: past the end of {self._where()}"
        return PredictionResult(
            symbol=symbol,
            timestamp=at,
            short_term=short,
            long_term=long,
            short_uncertainty=[None if v is None else self.uncertainty for v in short],
            long_uncertainty=[None if v is None else self.uncertainty for v in long],
            source="csv",
            errors=errors,
        )

    # -- helpers -------------------------------------------------------------------------

    def _uncertainty_like(self, values: np.ndarray) -> np.ndarray:
        out = np.full(values.shape, self.uncertainty, dtype=np.float64)
        out[np.isnan(values)] = np.nan
        return out

    def _check_symbol(self, symbol: str) -> None:
        # One provider serves one file; a different symbol is most likely a config slip.
        # Warn once instead of failing: file-derived names ("eurusd_h1_2019") rarely match
        # exactly, and CSV mode has no symbol rules of its own (unlike the API's 10 chars).
        if not isinstance(symbol, str):
            raise PredictionError(f"prediction symbol must be a string, got {type(symbol).__name__}")
        asked = _loose_symbol(symbol)
        own = self.data.symbol
        if own and asked != _loose_symbol(own) and asked not in self._warned_symbols:
            self._warned_symbols.add(asked)
            logger.warning("CSV predictions for %s are served from %s (symbol %r)", symbol, self._where(), own)

    def _where(self) -> str:
        return self.data.source or f"the {self.data.symbol or 'unnamed'} series"


def _loose_symbol(symbol: str) -> str:
    """Symbol compared without case or separators: ``eur/usd`` == ``EURUSD``."""
    return re.sub(r"[/_\-\s.]", "", symbol).upper()


def _check_series(data: MarketData) -> None:
    """Timestamps must be int64 ns, strictly increasing, and as long as the closes."""
    where = data.source or f"market data {data.symbol!r}"
    ts = np.asarray(data.timestamps)
    if ts.dtype.kind not in "iu":
        raise DataError(f"{where}: timestamps must be int64 nanoseconds, got dtype {ts.dtype}")
    if ts.shape[0] != np.asarray(data.close).shape[0]:
        raise DataError(f"{where}: {ts.shape[0]} timestamps but {np.asarray(data.close).shape[0]} closes")
    if ts.shape[0] > 1:
        bad = np.flatnonzero(np.diff(ts) <= 0)
        if bad.size:
            raise DataError(f"{where}: timestamps not strictly increasing at bar {int(bad[0]) + 1}")


def _long_term_in_bars(data: MarketData, unit: LongTermUnit) -> bool:
    if unit != "auto":
        return unit == "bar"
    if len(data) < 2:
        return False
    return float(np.median(np.diff(np.asarray(data.timestamps, dtype=np.int64)))) >= NS_PER_DAY


def _take_or_nan(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``values[idx]`` with NaN where ``idx`` runs past the end."""
    n = values.shape[0]
    if n == 0:
        return np.full(idx.shape, np.nan, dtype=np.float64)
    out = values[np.minimum(idx, n - 1)]
    out[idx >= n] = np.nan
    return out


def _to_ns(at: datetime) -> int:
    """An aware datetime as int64 ns since the epoch, exactly (no float rounding)."""
    delta = at - datetime(1970, 1, 1, tzinfo=at.tzinfo)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
