"""The prediction-provider wire protocol, without I/O (ARCHITECTURE.md, "Prediction provider protocol").

Shared by the sync and the async client so both build the same requests and read
answers the same way: what to send, which answers are worth a retry, and how a
completed prediction (current or older response shape) becomes values plus
uncertainties. Everything here is pure and unit-tested without a server.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from engine.errors import PredictionError, TemporaryError
from engine.prediction.settings import PredictionClientSettings
from engine.prediction.types import LONG_TERM, PREDICTION_TYPES, SHORT_TERM
from engine.types import ensure_utc

PREDICT_PATH = "/api/v1/predict"
PREDICTION_PATH = "/api/v1/predictions/{id}"

#: Statuses meaning "not done yet". Anything else but completed/failed is an error.
IN_PROGRESS_STATUSES = frozenset({"pending", "queued", "processing", "running", "in_progress"})
COMPLETED = "completed"
FAILED = "failed"

_SYMBOL_SEPARATORS = re.compile(r"[/_\-\s]")
_VALID_SYMBOL = re.compile(r"[A-Z0-9]{1,10}")
_VALID_ID = re.compile(r"[A-Za-z0-9_:-]{1,128}")
_MAX_MESSAGE_CHARS = 300


class TransientPredictionError(PredictionError, TemporaryError):
    """A failure worth retrying: connection error, timeout, 429 or 5xx.

    ``retry_after_s`` carries the service's ``Retry-After`` when it sent one.
    """

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class TypedPrediction:
    """One completed prediction of one type: values per horizon, parallel uncertainties.

    ``error`` explains missing (``None``) values when the service said why, or
    that values are missing when it did not.
    """

    prediction_type: str
    values: list[float | None]
    uncertainties: list[float | None]
    error: str | None = None


def normalize_symbol(symbol: str) -> str:
    """The service's symbol form: separators dropped, upper case, <= 10 letters/digits.

    ``"EUR/USD"``, ``"EUR_USD"`` and ``"eurusd"`` all become ``"EURUSD"``.
    """
    if not isinstance(symbol, str):
        raise PredictionError(f"prediction symbol must be a string, got {type(symbol).__name__}")
    cleaned = _SYMBOL_SEPARATORS.sub("", symbol).upper()
    if not _VALID_SYMBOL.fullmatch(cleaned):
        raise PredictionError(
            f"prediction symbol {symbol!r} is invalid: the provider accepts 1 to 10 letters or digits "
            "(separators like '/' are dropped, e.g. 'EUR/USD' -> 'EURUSD')"
        )
    return cleaned


def check_types(types: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Validate the requested prediction types (``short_term`` / ``long_term``)."""
    if isinstance(types, str):
        types = (types,)
    unknown = [t for t in types if t not in PREDICTION_TYPES]
    if unknown or not types:
        raise PredictionError(
            f"unknown prediction type(s) {unknown or list(types)!r}; expected some of {list(PREDICTION_TYPES)}"
        )
    return tuple(dict.fromkeys(types))  # unique, order kept


def build_request_body(
    symbol: str, at: datetime, prediction_type: str, settings: PredictionClientSettings
) -> dict[str, Any]:
    """The JSON body of ``POST /api/v1/predict`` for one prediction type.

    ``baseline_datetime`` is the bar's own time (``at``), never the wall clock, so a
    replayed run asks the same questions.
    """
    interval = settings.short_term_interval if prediction_type == SHORT_TERM else settings.long_term_interval
    return {
        "symbol": symbol,
        "prediction_type": prediction_type,
        "predictor_plugin": settings.predictor_plugin,
        "feeder_plugin": settings.feeder_plugin,
        "pipeline_plugin": settings.pipeline_plugin,
        "interval": interval,
        "prediction_horizon": max(settings.horizons),
        "horizons": list(settings.horizons),
        "baseline_datetime": ensure_utc(at).isoformat(),
    }


def request_headers(settings: PredictionClientSettings) -> dict[str, str]:
    """Headers of every request; the API key goes only here (never in logs or errors)."""
    headers = {"Accept": "application/json"}
    if settings.api_key:
        headers["X-API-KEY"] = settings.api_key
    return headers


def http_client_options(settings: PredictionClientSettings) -> dict[str, Any]:
    """Options shared by the sync and async ``httpx`` clients: base URL, headers,
    connect/read timeouts and a connection pool sized to the concurrency bound."""
    return {
        "base_url": settings.base_url,
        "headers": request_headers(settings),
        "timeout": httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s),
        "limits": httpx.Limits(max_connections=settings.max_concurrency,
                               max_keepalive_connections=settings.max_concurrency),
    }


def check_response(response: httpx.Response, what: str, *, secret: str | None = None) -> None:
    """Raise for a non-2xx answer: transient for 429/5xx, permanent for other 4xx.

    ``what`` names the call in the message (e.g. ``"POST /api/v1/predict for EURUSD short_term"``).
    """
    status = response.status_code
    if 200 <= status < 300:
        return
    message = redact(service_message(response), secret)
    text = f"{what}: prediction service answered HTTP {status}" + (f": {message}" if message else "")
    if status == 429:
        raise TransientPredictionError(text, retry_after_s=parse_retry_after(response.headers.get("Retry-After")))
    if status >= 500:
        raise TransientPredictionError(text, retry_after_s=parse_retry_after(response.headers.get("Retry-After")))
    if status in (401, 403):
        text += " (check prediction_api_key)"
    raise PredictionError(text)


def read_json(response: httpx.Response, what: str) -> dict[str, Any]:
    """The JSON object of a 2xx answer, or a clear :class:`PredictionError`."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        raise PredictionError(
            f"{what}: prediction service answered HTTP {response.status_code} with a body that is not JSON: "
            f"{_excerpt(response.text)!r}"
        ) from None
    if not isinstance(body, dict):
        raise PredictionError(f"{what}: expected a JSON object, got {type(body).__name__}: {_excerpt(str(body))!r}")
    return body


def parse_created(body: dict[str, Any], what: str) -> str:
    """The prediction id from the answer to ``POST /api/v1/predict``."""
    pid = body.get("id", body.get("prediction_id"))
    if isinstance(pid, bool) or not isinstance(pid, (int, str)) or (isinstance(pid, str) and not pid.strip()):
        raise PredictionError(f"{what}: the answer has no prediction id (keys: {sorted(body)[:10]})")
    pid = str(pid)
    # The id goes into the poll URL: refuse anything that could change the path.
    if not _VALID_ID.fullmatch(pid):
        raise PredictionError(f"{what}: the prediction id {_excerpt(pid)!r} is not a plain identifier")
    return pid


def parse_status(body: dict[str, Any], what: str) -> str:
    """The ``status`` of a polled prediction, lower case."""
    status = body.get("status")
    if not isinstance(status, str) or not status:
        raise PredictionError(f"{what}: the answer has no status (keys: {sorted(body)[:10]})")
    return status.strip().lower()


def poll_outcome(
    body: dict[str, Any], pid: str, prediction_type: str, horizons: tuple[int, ...], what: str, poll_what: str
) -> TypedPrediction | None:
    """Read one answer about prediction ``pid``: its values once completed, ``None`` while
    it is still in progress; :class:`PredictionError` when it failed or the status is unknown.

    Also used on the creation answer, which normally says ``pending`` but may already
    carry a completed result.
    """
    status = parse_status(body, poll_what)
    if status == COMPLETED:
        return parse_completed(body, prediction_type, horizons, poll_what)
    if status == FAILED:
        raise PredictionError(f"{what}: prediction {pid} failed: {failure_reason(body)}")
    if status not in IN_PROGRESS_STATUSES:
        raise PredictionError(f"{poll_what}: unexpected prediction status {status!r}")
    return None


def failure_reason(body: dict[str, Any]) -> str:
    """Why a ``failed`` prediction failed (``result.error``, else whatever the service said)."""
    result = body.get("result")
    for source in (result if isinstance(result, dict) else {}, body):
        for key in ("error", "detail", "message"):
            value = source.get(key)
            if value:
                return _excerpt(str(value))
    return "the service gave no reason"


def parse_completed(
    body: dict[str, Any], prediction_type: str, horizons: tuple[int, ...], what: str
) -> TypedPrediction:
    """Values and uncertainties of a completed prediction.

    Accepts the current shape ``result.output.{predictions, uncertainty, errors}`` and
    the older ``result.prediction`` (a number or a list). ``null`` values stay ``None``
    (non-finite numbers too), and ``error`` says why when any value is missing.
    Uncertainty may be a list or one number for all horizons; missing means ``None``.
    """
    result = body.get("result")
    if not isinstance(result, dict):
        raise PredictionError(f"{what}: completed prediction has no result object")
    output = result.get("output")
    service_errors: Any = None
    if isinstance(output, dict) and "predictions" in output:
        raw_values = output.get("predictions")
        raw_uncertainty = output.get("uncertainty", output.get("uncertainties"))
        service_errors = output.get("errors")
    elif "prediction" in result:
        raw_values = result.get("prediction")
        raw_uncertainty = result.get("uncertainty", result.get("uncertainties"))
        service_errors = result.get("errors")
    else:
        raise PredictionError(
            f"{what}: completed prediction has neither result.output.predictions nor result.prediction"
        )
    values = _number_list(raw_values, "predictions", what)
    if not values:
        raise PredictionError(f"{what}: completed prediction has no values")
    uncertainties = _uncertainty_list(raw_uncertainty, len(values), what)
    error = None
    missing = [horizons[i] if i < len(horizons) else i + 1 for i, v in enumerate(values) if v is None]
    if missing or service_errors:
        detail = _describe_errors(service_errors)
        if missing:
            error = f"no value for horizon(s) {missing}" + (f": {detail}" if detail else "")
        else:
            error = detail
    return TypedPrediction(prediction_type, values, uncertainties, error)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def service_message(response: httpx.Response) -> str:
    """The service's own explanation (FastAPI ``detail``), shortened for messages."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return _excerpt(response.text)
    if isinstance(body, dict):
        detail = body.get("detail", body.get("error", body.get("message")))
        if isinstance(detail, list):  # FastAPI 422: [{loc, msg, ...}, ...]
            parts = []
            for item in detail[:5]:
                if isinstance(item, dict):
                    loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                    parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
                else:
                    parts.append(str(item))
            return _excerpt("; ".join(parts))
        if detail is not None:
            return _excerpt(str(detail))
    return _excerpt(json.dumps(body))


def redact(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` masked, in case a service echoes the API key back."""
    if secret and secret in text:
        return text.replace(secret, "***")
    return text


def transport_failure(exc: httpx.HTTPError, what: str) -> TransientPredictionError:
    """A connection error or timeout as a retryable error with a readable message."""
    kind = type(exc).__name__
    detail = str(exc) or kind
    return TransientPredictionError(f"{what}: {kind}: {_excerpt(detail)}")


def _number_list(raw: Any, name: str, what: str) -> list[float | None]:
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    out: list[float | None] = []
    for i, item in enumerate(items):
        if item is None:
            out.append(None)
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            out.append(float(item) if math.isfinite(item) else None)
        else:
            raise PredictionError(f"{what}: {name}[{i}] is not a number: {_excerpt(repr(item))}")
    return out


def _uncertainty_list(raw: Any, n: int, what: str) -> list[float | None]:
    if raw is None:
        return [None] * n
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        single = _number_list(raw, "uncertainty", what)[0]
        return [single] * n
    values = _number_list(raw, "uncertainty", what)
    # Keep the lists parallel: the strategy indexes both by horizon.
    return (values + [None] * n)[:n]


def _describe_errors(errors: Any) -> str:
    if not errors:
        return ""
    if isinstance(errors, dict):
        return _excerpt("; ".join(f"{k}: {v}" for k, v in errors.items()))
    if isinstance(errors, list):
        return _excerpt("; ".join(str(e) for e in errors if e is not None))
    return _excerpt(str(errors))


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE_CHARS else text[: _MAX_MESSAGE_CHARS - 3] + "..."


__all__ = [
    "COMPLETED",
    "FAILED",
    "IN_PROGRESS_STATUSES",
    "LONG_TERM",
    "PREDICTION_PATH",
    "PREDICT_PATH",
    "SHORT_TERM",
    "TransientPredictionError",
    "TypedPrediction",
    "build_request_body",
    "check_response",
    "check_types",
    "failure_reason",
    "normalize_symbol",
    "parse_completed",
    "parse_created",
    "parse_retry_after",
    "parse_status",
    "poll_outcome",
    "read_json",
    "redact",
    "request_headers",
    "service_message",
    "transport_failure",
]
