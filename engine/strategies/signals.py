"""Per-bar target arrays a strategy precomputes for the fast backtest loop.

A strategy's ``prepare(data, predictions)`` returns one :class:`BarSignals` for a whole
series; the backtest loop only indexes it. ``decide()`` must compute the very same
value for bar ``i`` from data up to ``i`` (tests check the two agree bar by bar).

Signal codes (``action``) are *events*, not a target held every bar:

* ``HOLD`` (0)  — do nothing this bar;
* ``LONG`` (1)  — be long: open a long, first closing a short (reversal); nothing if already long;
* ``SHORT`` (-1) — be short: the mirror image;
* ``FLAT`` (2)  — close whatever is open; nothing if flat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import StrategyError

HOLD = 0
LONG = 1
SHORT = -1
FLAT = 2
SIGNAL_CODES: frozenset[int] = frozenset({HOLD, LONG, SHORT, FLAT})


@dataclass(frozen=True, slots=True)
class BarSignals:
    """What a strategy wants at each bar's close, for a whole series.

    ``action``: int8 codes (see module doc); ``quantity``: units to open on LONG/SHORT
    (instrument units, e.g. 10,000 = 0.1 standard FX lot); ``sl_distance`` /
    ``tp_distance``: price distances measured from the entry fill, NaN for none, or
    ``None`` when the strategy never sets them.
    """

    action: np.ndarray
    quantity: np.ndarray
    sl_distance: np.ndarray | None = None
    tp_distance: np.ndarray | None = None

    def validate(self, n_bars: int, strategy: str) -> None:
        """Raise :class:`StrategyError` naming ``strategy`` if the arrays do not fit the data."""
        for name in ("action", "quantity", "sl_distance", "tp_distance"):
            arr = getattr(self, name)
            if arr is None:
                continue
            if arr.shape != (n_bars,):
                raise StrategyError(
                    f"strategy {strategy!r}: prepare() returned {name} of shape {arr.shape}, "
                    f"expected ({n_bars},) to match the data"
                )
        bad = np.setdiff1d(np.unique(self.action), np.array(sorted(SIGNAL_CODES)))
        if bad.size:
            raise StrategyError(
                f"strategy {strategy!r}: prepare() returned unknown action codes {bad.tolist()}"
                f" (allowed: {sorted(SIGNAL_CODES)})"
            )
        opening = (self.action == LONG) | (self.action == SHORT)
        qty = self.quantity[opening]
        if qty.size and not np.all(np.isfinite(qty) & (qty > 0)):
            first = int(np.flatnonzero(opening)[np.flatnonzero(~(np.isfinite(qty) & (qty > 0)))[0]])
            raise StrategyError(
                f"strategy {strategy!r}: quantity at bar {first} is {self.quantity[first]!r}; "
                "an opening signal needs a positive quantity"
            )
