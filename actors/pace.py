"""Keeping a paced simulation's replay at its pace when the machine cannot step every
asset once per tick.

A paced heartbeat (latency > 0) steps every running asset once per cycle. In a
simulation that replays a CSV, the latency is the replay's pace: one bar per asset every
``latency`` seconds. When a cycle takes longer than the latency (a hundred assets on two
cores at 0.15 s did 2.6 cycles a second of the 6.7 asked for), the replay fell behind
for good, each late cycle still stepping one bar.

``PaceKeeper`` counts the ticks due since the pace started and the bars each asset has
stepped; the cycle then asks a late asset for the bars it owes in one call (up to
``max_bars``, through ``AssetActor.steps``, each bar stepped and recorded exactly as
alone), so the replay holds the pace whenever the machine can. Debt older than
``max_bars`` ticks is forgiven rather than rushed (a stalled supervisor does not make its
assets race afterwards), and an asset that (re)starts owes nothing for the time it was
down. A machine that keeps up sees one bar per cycle, as before. Live portfolios never
catch up: a live step is one look at the broker's current price.
"""

from __future__ import annotations

import math
from collections.abc import Hashable


class PaceKeeper:
    """Bars owed per asset on a paced simulation heartbeat (see the module docstring)."""

    def __init__(self, max_bars: int) -> None:
        self.max_bars = max(1, int(max_bars))
        self._started: float | None = None
        self._latency = 0.0
        self._delivered: dict[Hashable, int] = {}
        self._owner: dict[Hashable, object] = {}  # asset -> the actor handle its count is for

    def reset(self) -> None:
        """Start the pace again (a reload, a latency change): nobody owes anything."""
        self._started = None
        self._delivered.clear()
        self._owner.clear()

    def ticks_due(self, now: float, latency: float) -> int:
        """Ticks since the pace started, the current one included (starts the pace on the
        first call, and again when the latency changed)."""
        if self._started is None or latency != self._latency:
            self.reset()
            self._started, self._latency = now, latency
        return int(math.floor((now - self._started) / latency + 1e-9)) + 1

    def bars_for(self, asset: Hashable, owner: object, due: int) -> int:
        """Bars ``asset`` steps this cycle (1 when on pace, more when late, up to
        ``max_bars``). ``owner``: the asset's current actor handle; a new one (a restart)
        starts on pace."""
        if self._owner.get(asset) is not owner:
            self._owner[asset] = owner
            self._delivered[asset] = due - 1
        owed = due - self._delivered[asset]
        if owed > self.max_bars:
            self._delivered[asset] = due - self.max_bars  # forgive what cannot be caught up
            owed = self.max_bars
        return max(1, owed)

    def stepped(self, asset: Hashable, bars: int) -> None:
        """``asset`` stepped ``bars`` bars (or tried to: a failed call counts as done, so
        a broken asset is not asked for ever more bars)."""
        if asset in self._delivered:
            self._delivered[asset] += max(1, int(bars))
