"""Asynchronous API-mode prediction client, for async hosts such as the prediction actor.

Same protocol, retries, deadlines and concurrency bound as :class:`~engine.prediction.client.PredictionClient`
(both build requests and read answers through :mod:`engine.prediction.protocol`); the
short- and long-term predictions of one ``get_predictions`` call run concurrently.
Bound to the event loop it is first used on (``asyncio.Semaphore`` and the httpx pool)::

    async with AsyncPredictionClient(settings) as client:
        result = await client.get_predictions("EURUSD", bar_time)
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx
from tenacity import AsyncRetrying

from engine.errors import PredictionError
from engine.prediction import protocol
from engine.prediction.client import assemble_result, request_timeout
from engine.prediction.protocol import TypedPrediction
from engine.prediction.retry_policy import deadline_error, retry_kwargs
from engine.prediction.settings import PredictionClientSettings
from engine.prediction.types import PREDICTION_TYPES, PredictionResult
from engine.types import ensure_utc

logger = logging.getLogger(__name__)


class AsyncPredictionClient:
    """``asyncio`` client of the external prediction provider (API mode)."""

    source = "api"

    def __init__(
        self,
        settings: PredictionClientSettings | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings or PredictionClientSettings()
        s = self.settings
        self._http = httpx.AsyncClient(
            **protocol.http_client_options(s), transport=transport,
        )
        self._slots = asyncio.Semaphore(s.max_concurrency)
        self._closed = False

    async def get_predictions(
        self, symbol: str, at: datetime, types: tuple[str, ...] = PREDICTION_TYPES
    ) -> PredictionResult:
        """Like :meth:`PredictionClient.get_predictions`, with the types fetched concurrently."""
        wire_symbol = protocol.normalize_symbol(symbol)
        wanted = protocol.check_types(types)
        at = ensure_utc(at)
        outcomes = await asyncio.gather(*(self._predict(wire_symbol, at, t) for t in wanted), return_exceptions=True)
        parts: dict[str, TypedPrediction] = {}
        errors: dict[str, str] = {}
        for prediction_type, outcome in zip(wanted, outcomes, strict=True):
            if isinstance(outcome, PredictionError):
                logger.warning("%s prediction for %s at %s failed: %s", prediction_type, wire_symbol, at, outcome)
                errors[prediction_type] = str(outcome)
            elif isinstance(outcome, BaseException):
                raise outcome  # a bug or a cancellation, not a service failure
            else:
                parts[prediction_type] = outcome
        return assemble_result(symbol, at, parts, errors)

    async def predict(self, symbol: str, at: datetime, prediction_type: str) -> TypedPrediction:
        """One prediction of one type; raises :class:`PredictionError` when it fails."""
        (prediction_type,) = protocol.check_types((prediction_type,))
        return await self._predict(protocol.normalize_symbol(symbol), ensure_utc(at), prediction_type)

    async def aclose(self) -> None:
        """Close the connection pool (idempotent)."""
        if not self._closed:
            self._closed = True
            await self._http.aclose()

    async def __aenter__(self) -> "AsyncPredictionClient":
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _predict(self, symbol: str, at: datetime, prediction_type: str) -> TypedPrediction:
        if self._closed:
            raise PredictionError("the prediction client is closed")
        s = self.settings
        deadline = time.monotonic() + s.timeout_s
        what = f"{prediction_type} prediction for {symbol} at {at.isoformat()}"
        body = protocol.build_request_body(symbol, at, prediction_type, s)
        post_what = f"{what}: POST {protocol.PREDICT_PATH}"
        created = await self._call("POST", protocol.PREDICT_PATH, post_what, deadline, body)
        pid = protocol.parse_created(created, post_what)
        poll_path = protocol.PREDICTION_PATH.format(id=pid)
        poll_what = f"{what}: GET {poll_path}"
        answer = created if "status" in created else None  # see PredictionClient._predict
        interval = s.poll_interval_s
        while True:
            if answer is not None:
                outcome = protocol.poll_outcome(answer, pid, prediction_type, s.horizons, what, poll_what)
                if outcome is not None:
                    return outcome
            remaining = deadline - time.monotonic()
            if remaining > 0:
                await asyncio.sleep(min(interval, remaining))
            if time.monotonic() >= deadline:
                last = answer.get("status") if answer else "pending"
                raise deadline_error(what, s, f"prediction {pid} still {last}")
            interval = min(s.max_poll_interval_s, interval * 1.5)
            answer = await self._call("GET", poll_path, poll_what, deadline)

    async def _call(
        self, method: str, path: str, what: str, deadline: float, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        retrying = AsyncRetrying(**retry_kwargs(self.settings, deadline))
        return await retrying(self._send_once, method, path, what, deadline, body)

    async def _send_once(
        self, method: str, path: str, what: str, deadline: float, body: dict[str, Any] | None
    ) -> dict[str, Any]:
        s = self.settings
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise deadline_error(what, s)
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can time out after the
            # acquire succeeded and leak the slot.
            async with asyncio.timeout(remaining):
                await self._slots.acquire()
        except TimeoutError:
            raise deadline_error(what, s, "waiting for a free request slot") from None
        try:
            remaining = max(0.001, deadline - time.monotonic())
            try:
                response = await self._http.request(method, path, json=body, timeout=request_timeout(s, remaining))
            except httpx.TimeoutException as exc:
                if deadline - time.monotonic() < 0.01:  # the timeout was the deadline's, not the service's
                    raise deadline_error(what, s, f"{type(exc).__name__} on the last request") from None
                raise protocol.transport_failure(exc, what) from None
            except httpx.TransportError as exc:
                raise protocol.transport_failure(exc, what) from None
        finally:
            self._slots.release()
        logger.debug("%s -> HTTP %d", what, response.status_code)
        protocol.check_response(response, what, secret=s.api_key)
        return protocol.read_json(response, what)
