"""API-mode prediction client (seed §1.4, INT-05): POST a prediction, poll until done.

One pooled ``httpx.Client`` per :class:`PredictionClient`, at most
``max_concurrency`` requests in flight (the real service answers 500 above about
four), connect/read timeouts on every request, tenacity retries on connection
errors, timeouts, 429 and 5xx (never on other 4xx), and one overall deadline per
prediction. Thread-safe: several threads may share one client.

Use it as a context manager so the connection pool is closed::

    with PredictionClient(PredictionClientSettings.from_config(config)) as client:
        result = client.get_predictions("EUR/USD", bar_time)
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx
from tenacity import Retrying

from engine.errors import PredictionError
from engine.prediction import protocol
from engine.prediction.protocol import TypedPrediction
from engine.prediction.retry_policy import deadline_error, retry_kwargs
from engine.prediction.settings import PredictionClientSettings
from engine.prediction.types import PREDICTION_TYPES, PredictionResult
from engine.types import ensure_utc

logger = logging.getLogger(__name__)


class PredictionClient:
    """Synchronous client of the external prediction provider (API mode).

    ``predict`` raises :class:`PredictionError` for one failed prediction;
    ``get_predictions`` never raises for service failures: it returns a
    :class:`PredictionResult` whose ``errors`` say what failed per type.
    """

    source = "api"

    def __init__(
        self,
        settings: PredictionClientSettings | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings or PredictionClientSettings()
        s = self.settings
        self._http = httpx.Client(
            **protocol.http_client_options(s), transport=transport,
        )
        self._slots = threading.BoundedSemaphore(s.max_concurrency)
        self._closed = False

    # -- public API -------------------------------------------------------------------

    def get_predictions(self, symbol: str, at: datetime, types: tuple[str, ...] = PREDICTION_TYPES) -> PredictionResult:
        """Short- and/or long-term predictions for ``symbol`` made at bar time ``at``.

        Each type is one prediction with its own deadline. A bad ``symbol`` or an
        unknown type raises :class:`PredictionError` before anything is sent.
        """
        wire_symbol = protocol.normalize_symbol(symbol)
        wanted = protocol.check_types(types)
        at = ensure_utc(at)
        parts: dict[str, TypedPrediction] = {}
        errors: dict[str, str] = {}
        for prediction_type in wanted:
            try:
                parts[prediction_type] = self._predict(wire_symbol, at, prediction_type)
            except PredictionError as exc:
                logger.warning("%s prediction for %s at %s failed: %s", prediction_type, wire_symbol, at, exc)
                errors[prediction_type] = str(exc)
        return assemble_result(symbol, at, parts, errors)

    def predict(self, symbol: str, at: datetime, prediction_type: str) -> TypedPrediction:
        """One prediction of one type; raises :class:`PredictionError` when it fails."""
        (prediction_type,) = protocol.check_types((prediction_type,))
        return self._predict(protocol.normalize_symbol(symbol), ensure_utc(at), prediction_type)

    def close(self) -> None:
        """Close the connection pool (idempotent)."""
        if not self._closed:
            self._closed = True
            self._http.close()

    def __enter__(self) -> "PredictionClient":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- one prediction -----------------------------------------------------------------

    def _predict(self, symbol: str, at: datetime, prediction_type: str) -> TypedPrediction:
        if self._closed:
            raise PredictionError("the prediction client is closed")
        s = self.settings
        deadline = time.monotonic() + s.timeout_s
        what = f"{prediction_type} prediction for {symbol} at {at.isoformat()}"
        body = protocol.build_request_body(symbol, at, prediction_type, s)
        created = self._call("POST", protocol.PREDICT_PATH, f"{what}: POST {protocol.PREDICT_PATH}", deadline, body)
        pid = protocol.parse_created(created, f"{what}: POST {protocol.PREDICT_PATH}")
        poll_path = protocol.PREDICTION_PATH.format(id=pid)
        poll_what = f"{what}: GET {poll_path}"
        # The creation answer normally says "pending"; check it too in case it is already done.
        answer = created if "status" in created else None
        interval = s.poll_interval_s
        while True:
            if answer is not None:
                outcome = protocol.poll_outcome(answer, pid, prediction_type, s.horizons, what, poll_what)
                if outcome is not None:
                    return outcome
            remaining = deadline - time.monotonic()
            if remaining > 0:
                time.sleep(min(interval, remaining))
            if time.monotonic() >= deadline:
                last = answer.get("status") if answer else "pending"
                raise deadline_error(what, s, f"prediction {pid} still {last}")
            interval = min(s.max_poll_interval_s, interval * 1.5)
            answer = self._call("GET", poll_path, poll_what, deadline)

    def _call(
        self, method: str, path: str, what: str, deadline: float, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """One HTTP call with retries; returns the JSON object of its 2xx answer."""
        retrying = Retrying(**retry_kwargs(self.settings, deadline))
        return retrying(self._send_once, method, path, what, deadline, body)

    def _send_once(
        self, method: str, path: str, what: str, deadline: float, body: dict[str, Any] | None
    ) -> dict[str, Any]:
        s = self.settings
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise deadline_error(what, s)
        if not self._slots.acquire(timeout=remaining):
            raise deadline_error(what, s, "waiting for a free request slot")
        try:
            remaining = max(0.001, deadline - time.monotonic())
            timeout = request_timeout(s, remaining)
            try:
                response = self._http.request(method, path, json=body, timeout=timeout)
            except httpx.TimeoutException as exc:
                if deadline - time.monotonic() < 0.01:  # the timeout was the deadline's, not the service's
                    raise deadline_error(what, s, f"{type(exc).__name__} on the last request") from None
                raise protocol.transport_failure(exc, what) from None
            except httpx.TransportError as exc:  # connection refused/reset, timeouts
                raise protocol.transport_failure(exc, what) from None
        finally:
            self._slots.release()
        logger.debug("%s -> HTTP %d", what, response.status_code)
        protocol.check_response(response, what, secret=s.api_key)
        return protocol.read_json(response, what)


def request_timeout(settings: PredictionClientSettings, remaining: float) -> httpx.Timeout:
    """Per-request timeouts, never longer than what is left of the deadline."""
    return httpx.Timeout(
        connect=min(settings.connect_timeout_s, remaining),
        read=min(settings.read_timeout_s, remaining),
        write=min(settings.read_timeout_s, remaining),
        pool=remaining,
    )


def assemble_result(
    symbol: str, at: datetime, parts: dict[str, TypedPrediction], errors: dict[str, str]
) -> PredictionResult:
    """Combine per-type predictions (and per-type errors) into one :class:`PredictionResult`."""
    errors = dict(errors)
    for prediction_type, part in parts.items():
        if part.error:
            errors[prediction_type] = part.error
    short = parts.get(protocol.SHORT_TERM)
    long = parts.get(protocol.LONG_TERM)
    return PredictionResult(
        symbol=symbol,
        timestamp=at,
        short_term=list(short.values) if short else [],
        long_term=list(long.values) if long else [],
        short_uncertainty=list(short.uncertainties) if short else [],
        long_uncertainty=list(long.uncertainties) if long else [],
        source="api",
        errors=errors,
    )
