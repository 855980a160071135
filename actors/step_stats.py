"""Counting a portfolio's step results: counters for the engine status, Ray metrics, latencies
for benchmarks, and the audit of failed steps (INT-04).

Nothing here is written to the statistics table: the heartbeat's health (steps, failures,
restarts) is shown by ``GET /api/engine/status`` (``PortfolioSupervisor.status``: the
cumulative ``counts``) and exported as Ray metrics, handed over at most once a second.
The statistics table holds the trading figures the database derives from orders and
positions.

A failed step is logged, counted, and audited with its reason once per asset and kind
until the asset steps cleanly again, so a strategy that raises on every bar does not
write an audit row per bar.
"""

from __future__ import annotations

import collections
import logging
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from actors.metrics import engine_metrics, tags
from actors.supervision import Child, Supervision

logger = logging.getLogger(__name__)

_METRICS_EVERY_S = 1.0
_KEEP = 100_000  # latencies kept between two ``take_latencies`` calls


class StepStats:
    """One portfolio's step counters and latencies (see the module docstring)."""

    def __init__(self, portfolio_id: int, supervision: Supervision) -> None:
        self.portfolio_id = portfolio_id
        self.supervision = supervision
        self.steps_total = 0
        self.counts: collections.Counter[str] = collections.Counter()  # cumulative, for the status
        self._metric_counts: collections.Counter[tuple[str, str]] = collections.Counter()
        # What this supervisor handed to Ray metrics so far (``metrics()``: status, tests).
        self.emitted: collections.Counter[tuple[str, str]] = collections.Counter()
        self.gauges: dict[str, float] = {}
        self._flushed = time.monotonic()
        # Round trip of each step as the supervisor sees it (ms), for status and benchmarks.
        self.latencies: collections.deque[float] = collections.deque(maxlen=_KEEP)
        self.order_latencies: collections.deque[float] = collections.deque(maxlen=_KEEP)  # steps with orders
        self.call_latencies: collections.deque[float] = collections.deque(maxlen=_KEEP)  # multi-bar calls
        # Paced heartbeats: from the cycle's start to each step's answer (ms), the wait for
        # a step slot included: how late after the tick each asset's decision was done.
        self.tick_latencies: collections.deque[float] = collections.deque(maxlen=_KEEP)

    def take_latencies(self) -> dict[str, list[float]]:
        """The latencies since the last call (and forget them)."""
        out = {"latencies_ms": list(self.latencies), "order_latencies_ms": list(self.order_latencies),
               "call_latencies_ms": list(self.call_latencies), "tick_latencies_ms": list(self.tick_latencies)}
        for deque in (self.latencies, self.order_latencies, self.call_latencies, self.tick_latencies):
            deque.clear()
        return out

    async def count(self, child: Child, summary: dict[str, Any]) -> None:
        """Count one call's steps (``AssetActor.steps``' summary, or one step's as one)."""
        bars = int(summary.get("bars", 0))
        if not bars:
            return
        self.steps_total += bars
        self.latencies.extend(summary.get("took_ms", ()))
        self.order_latencies.extend(summary.get("order_took_ms", ()))
        outcomes: dict[str, int] = summary.get("outcomes", {})
        for outcome, n in outcomes.items():
            self._metric_counts["steps", outcome] += n
        for action, n in summary.get("actions", {}).items():
            self._metric_counts["decisions", action] += n
        for status, n in summary.get("orders", {}).items():
            self._metric_counts["orders", status] += n
        if outcomes.get("ok"):
            self.counts["steps_ok"] += outcomes["ok"]
            for action, n in summary.get("ok_actions", {}).items():
                self.counts[f"action_{action}"] += n
            for status, n in summary.get("ok_orders", {}).items():
                self.counts[f"orders_{status}"] += n
        for kind, reason in summary.get("reasons", {}).items():
            await self.failed(child, kind, reason, count=outcomes.get(kind, 1))
        last = summary.get("last")
        if last is not None and last.get("ok", True):
            child.audited_kind = None  # the asset stepped cleanly again

    async def failed(self, child: Child, kind: str, reason: str, count: int = 1) -> None:
        """INT-04: count (``count`` steps that failed the same way), log and (once per
        kind) audit a failed step; never raise."""
        child.failures += count
        self.counts["steps_failed"] += count
        self.counts[f"failed_{kind}"] += count
        if kind in ("broker", "prediction"):
            self._metric_counts[f"{kind}_errors", "step"] += count
        logger.warning("portfolio %s asset %s: step failed (%s): %s", self.portfolio_id, child.asset_id, kind, reason)
        reason = self.supervision.public(reason)  # what the status and the audit row show
        child.last_error = f"{kind}: {reason}"
        if child.audited_kind != kind:
            child.audited_kind = kind
            try:
                await self.supervision.store.audit_step_failure(self.portfolio_id, child.asset_id, kind, reason)
            except Exception:
                logger.exception("portfolio %s asset %s: could not audit a step failure", self.portfolio_id,
                                 child.asset_id)

    def flush(self, force: bool = False) -> None:
        """Hand the counters since the last flush and the portfolio's gauges to Ray
        metrics, at most once a second (``force``: now)."""
        now = time.monotonic()
        if not force and now - self._flushed < _METRICS_EVERY_S:
            return
        self._flushed = now
        metrics = engine_metrics()
        if metrics is None:
            return
        portfolio = str(self.portfolio_id)
        counts, self._metric_counts = self._metric_counts, collections.Counter()
        self.emitted.update(counts)
        for (name, label), n in counts.items():
            if name == "steps":
                metrics.steps.inc(n, tags=tags(portfolio=portfolio, outcome=label))
            elif name == "decisions":
                metrics.decisions.inc(n, tags=tags(portfolio=portfolio, action=label))
            elif name == "orders":
                metrics.orders.inc(n, tags=tags(portfolio=portfolio, status=label))
            elif name == "broker_errors":
                metrics.broker_errors.inc(n, tags=tags(broker=label))
            elif name == "prediction_errors":
                metrics.prediction_errors.inc(n, tags=tags(source=label))
        children = self.supervision.children.values()
        reported = [c.last_step for c in children if c.last_step and "equity" in c.last_step]
        if reported:
            open_positions = sum(int(step.get("open_positions", 0)) for step in reported)
            try:
                equity = sum((Decimal(str(step["equity"])) for step in reported), Decimal("0"))
            except InvalidOperation:
                equity = None
            metrics.open_positions.set(open_positions, tags=tags(portfolio=portfolio))
            self.gauges["open_positions"] = float(open_positions)
            if equity is not None:
                metrics.equity.set(float(equity), tags=tags(portfolio=portfolio))
                self.gauges["equity"] = float(equity)

    def summary(self) -> dict[str, Any]:
        """The cumulative counters as the engine status shows them."""
        children = self.supervision.children.values()
        return {**dict(self.counts), "steps_total": self.steps_total,
                "restarts": sum(c.restarts for c in children), "assets_errored": self.supervision.errored}


__all__ = ["StepStats"]
