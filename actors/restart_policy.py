"""When to restart a dead asset actor, after how long, and when to give up.

Pure bookkeeping (no Ray, no clock of its own) so the rules are unit-tested directly; the
portfolio supervisor keeps one ``RestartTracker`` per asset and feeds it the monotonic
time of each death.

Rules: a death is answered with a restart after an exponential backoff
(``backoff_start_s`` doubling per restart still inside the window, capped at
``backoff_max_s``), unless ``max_restarts`` restarts already happened within the last
``window_s`` seconds: then the tracker gives up and the asset is to be marked errored.
Restarts older than the window are forgotten, so an asset that dies now and then (less
often than the limit per window) is restarted forever, with the backoff reset.

A tracker lives in its supervisor's memory; when the supervisor itself is restarted,
``RestartTracker.resume`` rebuilds it from the restarts recorded before (their count and
how long ago each was), so a crash of the supervisor neither resets an asset's count nor
lets it out of the window.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.errors import ConfigError

if TYPE_CHECKING:
    from actors.runtime_settings import RuntimeSettings


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """The supervisor's restart limits (config ``max_asset_restarts``, ``restart_window_s``)."""

    max_restarts: int = 5
    window_s: float = 60.0
    backoff_start_s: float = 0.2
    backoff_max_s: float = 2.0

    def __post_init__(self) -> None:
        if isinstance(self.max_restarts, bool) or not isinstance(self.max_restarts, int) or self.max_restarts < 0:
            raise ConfigError(f"max_asset_restarts: must be an integer >= 0, got {self.max_restarts!r}")
        if not self.window_s > 0:
            raise ConfigError(f"restart_window_s: must be > 0, got {self.window_s!r}")
        if not 0 < self.backoff_start_s <= self.backoff_max_s:
            raise ConfigError(
                f"restart backoff: need 0 < start ({self.backoff_start_s!r}) <= max ({self.backoff_max_s!r})")

    @classmethod
    def from_settings(cls, settings: "RuntimeSettings") -> "RestartPolicy":
        """The limits of the runtime's settings (``max_asset_restarts``, ``restart_window_s``)."""
        return cls(max_restarts=settings.max_asset_restarts, window_s=settings.restart_window_s)


@dataclass(frozen=True, slots=True)
class RestartDecision:
    """What to do about one death: restart after ``delay_s``, or give up (``reason`` says why)."""

    restart: bool
    delay_s: float = 0.0
    reason: str | None = None


@dataclass(slots=True)
class RestartTracker:
    """One asset's restart history under a ``RestartPolicy``."""

    policy: RestartPolicy
    restarts: int = 0  # every restart granted, for status and statistics
    recent: collections.deque[float] = field(default_factory=collections.deque)  # times of restarts in the window

    @classmethod
    def resume(cls, policy: RestartPolicy, restarts: int, ages_s: Iterable[float], now: float) -> "RestartTracker":
        """A tracker that goes on from an earlier one: ``restarts`` granted so far, the
        restarts made ``ages_s`` seconds before ``now`` (this tracker's monotonic time);
        those older than the window are left out, as ``on_death`` would have forgotten
        them. A negative age (another machine's clock ahead of ours) counts as now."""
        if restarts < 0:
            raise ValueError(f"restarts must be >= 0, got {restarts}")
        recent = sorted(now - max(age, 0.0) for age in ages_s if age <= policy.window_s)
        return cls(policy, restarts=max(restarts, len(recent)), recent=collections.deque(recent))

    def on_death(self, now: float) -> RestartDecision:
        """Record a death at monotonic time ``now`` and decide."""
        window = self.policy.window_s
        while self.recent and now - self.recent[0] > window:
            self.recent.popleft()
        if len(self.recent) >= self.policy.max_restarts:
            return RestartDecision(
                restart=False,
                reason=f"died more than {self.policy.max_restarts} times within {window:g} s")
        self.recent.append(now)
        self.restarts += 1
        delay = min(self.policy.backoff_start_s * 2 ** (len(self.recent) - 1), self.policy.backoff_max_s)
        return RestartDecision(restart=True, delay_s=delay)


__all__ = ["RestartDecision", "RestartPolicy", "RestartTracker"]
