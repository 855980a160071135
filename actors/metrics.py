"""Engine metrics exported through ``ray.util.metrics``.

They appear on the Ray dashboard's Metrics page and on each node's Prometheus endpoint:
``http://<node>:<metrics_export_port>/metrics`` (the port ``ray start --metrics-export-port``
sets; a local cluster picks one and lists it in ``ray.nodes()`` as ``MetricsExportPort``), where
Ray prefixes every name with ``ray_`` (``ray_lts_steps_total``) and publishes a recorded
value within about ten seconds (its report interval). Every name is prefixed ``lts_``.

Who records what: the portfolio supervisor counts steps (by outcome), decisions (by
action), orders (by status) and broker / prediction step failures from the step results,
and sets the per-portfolio gauges (open positions, equity) — all once per statistics
flush (about a second), not per step; it also counts asset restarts. Asset actors observe
the step latency histogram (where the steps run in parallel); the broker and prediction
actors count their own call failures.

Metric objects are created lazily, once per worker process, and only where Ray is
initialised, so importing this module elsewhere (unit tests, a CLI) costs nothing.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

logger = logging.getLogger(__name__)

_LATENCY_BOUNDARIES_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000]


class EngineMetrics:
    """The engine's counters, gauges and histograms (one instance per process)."""

    def __init__(self) -> None:
        from ray.util import metrics

        self.steps = metrics.Counter(
            "lts_steps_total", "Asset pipeline steps run", tag_keys=("portfolio", "outcome")
        )
        self.decisions = metrics.Counter(
            "lts_decisions_total", "Strategy decisions by action", tag_keys=("portfolio", "action")
        )
        self.orders = metrics.Counter(
            "lts_orders_total", "Orders by final status", tag_keys=("portfolio", "status")
        )
        self.step_latency = metrics.Histogram(
            "lts_step_latency_ms",
            "Wall time of one asset step (ms)",
            boundaries=_LATENCY_BOUNDARIES_MS,
            tag_keys=("portfolio",),
        )
        self.broker_errors = metrics.Counter(
            "lts_broker_errors_total", "Broker calls that failed", tag_keys=("broker",)
        )
        self.prediction_errors = metrics.Counter(
            "lts_prediction_errors_total", "Prediction calls that failed", tag_keys=("source",)
        )
        self.restarts = metrics.Counter(
            "lts_actor_restarts_total", "Asset actors restarted by their supervisor", tag_keys=("portfolio",)
        )
        self.open_positions = metrics.Gauge(
            "lts_open_positions", "Open positions per portfolio", tag_keys=("portfolio",)
        )
        self.equity = metrics.Gauge("lts_equity", "Equity per portfolio", tag_keys=("portfolio",))


_lock = threading.Lock()
_instance: EngineMetrics | None = None


def engine_metrics() -> EngineMetrics | None:
    """This process's metrics, or ``None`` when Ray metrics are unavailable here."""
    global _instance
    if _instance is None:
        import ray

        if not ray.is_initialized():  # a plain process (unit tests, tools): nothing to export to
            return None
        with _lock:
            if _instance is None:
                try:
                    _instance = EngineMetrics()
                except Exception:  # metrics must never take the engine down
                    logger.warning("Ray metrics unavailable in this process", exc_info=True)
                    return None
    return _instance


def tags(**values: Any) -> dict[str, str]:
    """Metric tags as the strings Ray requires."""
    return {key: str(value) for key, value in values.items()}
