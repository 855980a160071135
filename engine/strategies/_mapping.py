"""Turn a per-bar signal code into the seed's Decision, given the asset's positions.

This is the one place that decides "open", "close" or "hold" from a signal, used by
every strategy's ``decide()``; the fast backtest loop applies the same rules to the
``BarSignals`` arrays. A reversal is two decisions in one step: first ``close`` the
opposite position, then (asked again with it gone) ``open`` the new one.
"""

from __future__ import annotations

import math

from engine.strategies.signals import FLAT, HOLD, LONG, SHORT
from engine.types import AssetContext, Decision, PositionView, Side


def _open_positions(asset: AssetContext) -> list[PositionView]:
    return [p for p in asset.open_positions if p.is_open]


def decision_for(
    code: int,
    quantity: float,
    sl_distance: float,
    tp_distance: float,
    asset: AssetContext,
    reason: str = "",
) -> Decision:
    """The Decision for signal ``code`` given what ``asset`` holds now.

    ``sl_distance`` / ``tp_distance`` are price distances from the entry fill (NaN: none)
    and travel as the open's ``sl_distance`` / ``tp_distance`` parameters.
    """
    positions = _open_positions(asset)
    if code == HOLD:
        return Decision.hold(reason or "no signal")
    if code == FLAT:
        if positions:
            return Decision.close(positions[0].position_id, reason=reason or "exit signal")
        return Decision.hold("exit signal but no open position")
    want = Side.BUY if code == LONG else Side.SELL
    if code not in (LONG, SHORT):
        raise ValueError(f"unknown signal code {code!r}")
    for pos in positions:
        if pos.side != want:
            return Decision.close(pos.position_id, reason=reason or f"reverse to {want}")
    if positions:
        return Decision.hold(f"already {'long' if want is Side.BUY else 'short'}")
    extra: dict[str, float | str] = {}
    if not math.isnan(sl_distance):
        extra["sl_distance"] = sl_distance
    if not math.isnan(tp_distance):
        extra["tp_distance"] = tp_distance
    if reason:
        extra["reason"] = reason
    return Decision.open(want, quantity, **extra)
