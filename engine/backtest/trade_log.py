"""Closed trades of a backtest kept as columns, turned into ``Trade`` objects on demand.

A million-bar backtest can close ~100k trades; building a pydantic ``Trade`` for each
costs more than the whole simulation, and shipping them between Ray workers costs
more again. Statistics and reports read the columns; ``trades()`` builds (and caches)
the domain objects the first time someone asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from engine.types import Side, Trade

EXIT_REASONS: tuple[str, ...] = ("signal", "sl", "tp", "end")


@dataclass(slots=True, eq=False)
class TradeLog:
    """Columns of closed round trips, oldest first. ``side`` is +1 long / -1 short;
    times are int64 ns UTC; ``exit_reason`` indexes ``EXIT_REASONS``."""

    symbol: str
    side: np.ndarray
    quantity: np.ndarray
    entry_time: np.ndarray
    entry_price: np.ndarray
    exit_time: np.ndarray
    exit_price: np.ndarray
    pnl: np.ndarray
    commission: np.ndarray
    swap: np.ndarray
    exit_reason: np.ndarray
    _cache: list[Trade] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.pnl.size)

    @classmethod
    def from_rows(cls, symbol: str, timestamps: np.ndarray, rows: Sequence[tuple]) -> "TradeLog":
        """From ``(side, units, entry bar, entry price, exit bar, exit price, pnl,
        commission, swap, reason)`` tuples as the backtest loop records them."""
        if not rows:
            return cls.empty(symbol)
        cols = list(zip(*rows))
        reason_code = {r: k for k, r in enumerate(EXIT_REASONS)}
        return cls(
            symbol=symbol,
            side=np.array(cols[0], dtype=np.int8),
            quantity=np.array(cols[1], dtype=np.float64),
            entry_time=timestamps[np.array(cols[2], dtype=np.int64)],
            entry_price=np.array(cols[3], dtype=np.float64),
            exit_time=timestamps[np.array(cols[4], dtype=np.int64)],
            exit_price=np.array(cols[5], dtype=np.float64),
            pnl=np.array(cols[6], dtype=np.float64),
            commission=np.array(cols[7], dtype=np.float64),
            swap=np.array(cols[8], dtype=np.float64),
            exit_reason=np.array([reason_code[r] for r in cols[9]], dtype=np.int8),
        )

    @classmethod
    def from_trades(cls, symbol: str, trades: Sequence[Trade]) -> "TradeLog":
        """From domain objects (the bar-by-bar broker keeps those)."""
        if not trades:
            return cls.empty(symbol)

        def ns(t: datetime) -> int:
            return int(round(t.timestamp() * 1_000_000)) * 1000

        log = cls(
            symbol=symbol,
            side=np.array([t.side.sign for t in trades], dtype=np.int8),
            quantity=np.array([t.quantity for t in trades]),
            entry_time=np.array([ns(t.entry_time) for t in trades], dtype=np.int64),
            entry_price=np.array([t.entry_price for t in trades]),
            exit_time=np.array([ns(t.exit_time) for t in trades], dtype=np.int64),
            exit_price=np.array([t.exit_price for t in trades]),
            pnl=np.array([t.pnl for t in trades]),
            commission=np.array([t.commission for t in trades]),
            swap=np.array([t.swap for t in trades]),
            exit_reason=np.array([EXIT_REASONS.index(t.exit_reason) for t in trades], dtype=np.int8),
        )
        log._cache = list(trades)
        return log

    @classmethod
    def empty(cls, symbol: str) -> "TradeLog":
        f, i8, i64 = np.empty(0), np.empty(0, dtype=np.int8), np.empty(0, dtype=np.int64)
        return cls(symbol, i8, f, i64, f, i64, f, f, f, f, i8)

    def trades(self) -> list[Trade]:
        """The trades as domain objects (built once, then cached)."""
        if self._cache is None:
            out: list[Trade] = []
            cols = zip(
                self.side.tolist(), self.quantity.tolist(), self.entry_time.tolist(), self.entry_price.tolist(),
                self.exit_time.tolist(), self.exit_price.tolist(), self.pnl.tolist(), self.commission.tolist(),
                self.swap.tolist(), self.exit_reason.tolist(),
            )
            for side, qty, et, ep, xt, xp, pnl, comm, swp, reason in cols:
                out.append(
                    Trade.model_construct(  # the columns are already checked floats / ints
                        symbol=self.symbol,
                        side=Side.BUY if side > 0 else Side.SELL,
                        quantity=qty,
                        entry_time=datetime.fromtimestamp(et / 1e9, tz=timezone.utc),
                        entry_price=ep,
                        exit_time=datetime.fromtimestamp(xt / 1e9, tz=timezone.utc),
                        exit_price=xp,
                        pnl=pnl,
                        commission=comm,
                        swap=swp,
                        exit_reason=EXIT_REASONS[reason],
                    )
                )
            self._cache = out
        return self._cache
