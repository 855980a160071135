"""``PredictionActor`` (named ``prediction``): hosts the prediction-provider API client.

One pooled async httpx client for the whole engine, with the client's own timeouts,
retries and concurrency bound (the provider fails above ~4 concurrent requests, so one
shared client bounds the whole engine, not each asset), plus a small cache: two assets on
the same symbol asking for the same bar time share one prediction.

Only complete answers stay cached. The client reports a failed prediction type, or
horizons the provider had no value for, in ``PredictionResult.errors`` rather than by
raising; such a result is returned to the callers already waiting for it but forgotten,
so the next ask for that bar goes to the provider again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from datetime import datetime
from typing import Any

from actors.metrics import engine_metrics, tags
from actors.remote import hot_path
from engine.prediction.types import PREDICTION_TYPES, PredictionResult

logger = logging.getLogger(__name__)


class PredictionActor:
    """Async host of ``AsyncPredictionClient``; see the module docstring."""

    RAY_OPTIONS: dict[str, Any] = {"num_cpus": 0, "max_restarts": -1, "max_task_retries": 2, "max_concurrency": 256}

    def __init__(self, settings: dict[str, Any], cache_size: int = 1024) -> None:
        from engine.prediction.async_client import AsyncPredictionClient
        from engine.prediction.settings import PredictionClientSettings

        self._client = AsyncPredictionClient(PredictionClientSettings.from_config(settings))
        self._cache: OrderedDict[tuple[str, datetime, tuple[str, ...]], asyncio.Future[PredictionResult]] = OrderedDict()
        self._cache_size = cache_size

    @hot_path
    async def get_predictions(
        self, symbol: str, at: datetime, types: tuple[str, ...] = PREDICTION_TYPES
    ) -> PredictionResult:
        """Predictions for ``symbol`` made at bar time ``at`` (shared by concurrent askers)."""
        key = (symbol, at, tuple(types))
        future = self._cache.get(key)
        if future is None:
            future = asyncio.ensure_future(self._client.get_predictions(symbol, at, types))
            self._cache[key] = future
            future.add_done_callback(lambda done: self._forget_if_failed(key, done))
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return await asyncio.shield(future)

    def _forget_if_failed(self, key: tuple[str, datetime, tuple[str, ...]], done: asyncio.Future[PredictionResult]) -> None:
        """Drop a finished prediction from the cache unless it is complete (no exception,
        nothing in ``errors``): a failed or partial answer must be asked again."""
        failed = done.cancelled() or done.exception() is not None or bool(done.result().errors)
        if not failed:
            return
        if self._cache.get(key) is done:
            del self._cache[key]
        metrics = engine_metrics()
        if metrics is not None:
            metrics.prediction_errors.inc(tags=tags(source="api"))

    def cached(self) -> int:
        """How many complete predictions are cached (tests, status)."""
        return sum(1 for f in self._cache.values() if f.done())

    async def ping(self) -> str:
        return "ok"
