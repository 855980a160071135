"""``PredictionActor`` (named ``prediction``): hosts the prediction-provider API client.

One pooled async httpx client for the whole engine, with the client's own timeouts,
retries and concurrency bound (the provider fails above ~4 concurrent requests, so one
shared client bounds the whole engine, not each asset), plus a small cache: two assets on
the same symbol asking for the same bar time share one prediction.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from datetime import datetime
from typing import Any

from actors.metrics import engine_metrics, tags
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

    async def get_predictions(
        self, symbol: str, at: datetime, types: tuple[str, ...] = PREDICTION_TYPES
    ) -> PredictionResult:
        """Predictions for ``symbol`` made at bar time ``at`` (shared by concurrent askers)."""
        key = (symbol, at, tuple(types))
        future = self._cache.get(key)
        if future is None:
            future = asyncio.ensure_future(self._client.get_predictions(symbol, at, types))
            self._cache[key] = future
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        try:
            return await asyncio.shield(future)
        except Exception:
            self._cache.pop(key, None)  # never cache a failure
            metrics = engine_metrics()
            if metrics is not None:
                metrics.prediction_errors.inc(tags=tags(source="api"))
            raise

    async def ping(self) -> str:
        return "ok"
