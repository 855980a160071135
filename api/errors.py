"""One error shape for every 4xx/5xx answer, and the one place domain errors become HTTP.

Every error body is ``{"error": {"code": str, "message": str, "details": ...}}``.
Messages of :class:`engine.errors.LTSError` are written for users, so they are passed
through, as one bounded line (``engine.public_text.one_line``: a message that quotes a
driver or a library never carries its second line, a statement or a traceback, into the
answer); any other exception becomes a 500 whose body says nothing about the cause (the
traceback goes to the server log only).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine import errors as domain
from engine.public_text import one_line

logger = logging.getLogger(__name__)


class ApiError(domain.LTSError):
    """An error with a fixed HTTP status and a machine-readable code."""

    status_code: int = 400
    code: str = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
        audited: bool = False,
    ):
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers
        # True when the code raising it already wrote the audit row (failed login...),
        # so the 401/403 handler does not write a second one.
        self.audited = audited


class Unauthorized(ApiError):
    """Missing, malformed, expired or revoked credentials."""

    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str = "not authenticated", **kwargs: Any):
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kwargs)


class Forbidden(ApiError):
    """Authenticated, but the caller may not do this."""

    status_code = 403
    code = "forbidden"


class AccountLocked(ApiError):
    """Too many failed logins: the account is locked for a while."""

    status_code = 423
    code = "account_locked"


class Conflict(ApiError):
    """The request clashes with the current state (duplicate name, active portfolio...)."""

    status_code = 409
    code = "conflict"


class InvalidInput(ApiError):
    """The request is well-formed JSON but its values are not acceptable."""

    status_code = 422
    code = "validation_error"


class EngineUnavailable(ApiError):
    """The trading engine is not running (or not reachable) in this process."""

    status_code = 503
    code = "engine_unavailable"


# Domain errors -> (status, code). Order matters: most specific first.
_DOMAIN_STATUS: tuple[tuple[type[domain.LTSError], int, str], ...] = (
    (domain.NotFound, 404, "not_found"),
    (domain.UnstorableValue, 422, "invalid_value"),
    (domain.ConfigError, 422, "invalid_config"),
    (domain.PluginError, 422, "invalid_plugin"),
    (domain.DataError, 422, "invalid_data"),
    (domain.OrderRejected, 409, "order_rejected"),
    (domain.DomainError, 409, "conflict"),
    (domain.TemporaryError, 503, "temporarily_unavailable"),
    (domain.StrategyError, 502, "strategy_error"),
    (domain.PredictionError, 502, "prediction_error"),
    (domain.BrokerError, 502, "broker_error"),
)

_HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The JSON body every error answer carries."""
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


def status_for(exc: domain.LTSError) -> tuple[int, str]:
    """HTTP status and error code for a domain (or API) error."""
    if isinstance(exc, ApiError):
        return exc.status_code, exc.code
    for cls, status, code in _DOMAIN_STATUS:
        if isinstance(exc, cls):
            return status, code
    return 400, "bad_request"


def _clean_validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic's error list without ``input``/``ctx``/``url`` (they may echo a password)."""
    cleaned = []
    for err in errors:
        cleaned.append(
            {
                "loc": [str(p) for p in err.get("loc", ())],
                # One line: a message may name a key the client sent (newlines and all).
                "msg": one_line(str(err.get("msg", "")).removeprefix("Value error, ")),
                "type": str(err.get("type", "")),
            }
        )
    return cleaned


async def _lts_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, domain.LTSError)
    status, code = status_for(exc)
    details = exc.details if isinstance(exc, ApiError) else None
    headers = exc.headers if isinstance(exc, ApiError) else None
    if status >= 500:
        logger.warning("%s %s -> %d %s: %s", request.method, request.url.path, status, code, exc)
    return error_response(status, code, one_line(exc) or code, details, headers)


async def _validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = _clean_validation_errors(exc.errors())
    first = details[0] if details else None
    where = ".".join(first["loc"]) if first else "request"
    message = one_line(f"invalid request: {where}: {first['msg']}") if first else "invalid request"
    return error_response(422, "validation_error", message, details)


async def _http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return error_response(exc.status_code, code, message, None, getattr(exc, "headers", None))


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the one shape.

    Unexpected exceptions are caught by :class:`api.middleware.CatchAllMiddleware`
    (so they still pass through the security-header middleware)."""
    app.add_exception_handler(domain.LTSError, _lts_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
