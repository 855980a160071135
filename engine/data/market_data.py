"""Columnar OHLC market data: the one shape every strategy, broker and backtest reads.

Columns are contiguous numpy arrays so a per-bar loop indexes plain arrays (or lists
made from them) and vectorised indicators run over the whole series at once.
``timestamps`` are int64 nanoseconds since the epoch, UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from engine.types import Bar


@dataclass(frozen=True, slots=True)
class MarketData:
    """OHLC(V) bars for one symbol, oldest first, timestamps strictly increasing."""

    symbol: str
    timestamps: np.ndarray  # int64 ns since epoch, UTC
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray | None = None
    source: str | None = None  # file path it came from, for messages
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.close.shape[0])

    def time_at(self, i: int) -> datetime:
        """Bar ``i``'s timestamp as an aware UTC datetime."""
        return datetime.fromtimestamp(int(self.timestamps[i]) / 1e9, tz=timezone.utc)

    def bar(self, i: int) -> Bar:
        """Bar ``i`` as a domain object (not for hot loops)."""
        vol = float(self.volume[i]) if self.volume is not None else 0.0
        return Bar(
            timestamp=self.time_at(i),
            open=float(self.open[i]),
            high=float(self.high[i]),
            low=float(self.low[i]),
            close=float(self.close[i]),
            volume=vol,
        )

    def slice(self, start: int, stop: int) -> "MarketData":
        """Bars ``[start, stop)`` as views (no copy)."""
        vol = None if self.volume is None else self.volume[start:stop]
        return MarketData(
            symbol=self.symbol,
            timestamps=self.timestamps[start:stop],
            open=self.open[start:stop],
            high=self.high[start:stop],
            low=self.low[start:stop],
            close=self.close[start:stop],
            volume=vol,
            source=self.source,
            meta=self.meta,
        )

    def to_frame(self) -> Any:
        """A pandas DataFrame indexed by UTC datetime (for reports and backtrader)."""
        import pandas as pd

        frame = pd.DataFrame(
            {
                "open": self.open,
                "high": self.high,
                "low": self.low,
                "close": self.close,
                "volume": self.volume if self.volume is not None else np.zeros(len(self)),
            },
            index=pd.to_datetime(self.timestamps, utc=True),
        )
        frame.index.name = "datetime"
        return frame


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    """What a strategy sees when it decides: data up to and including bar ``index``.

    A strategy must never read beyond ``index`` (no look-ahead). In live mode
    ``data`` is the recent window and ``index == len(data) - 1``. ``predictions``
    is filled by the pipeline for strategies that declare ``needs_predictions``.
    """

    data: MarketData
    index: int
    predictions: Any | None = None

    @property
    def timestamp(self) -> datetime:
        return self.data.time_at(self.index)

    @property
    def price(self) -> float:
        """The close of the current bar."""
        return float(self.data.close[self.index])
