"""One router per resource. ``ERROR_RESPONSES`` documents the one error shape."""

from __future__ import annotations

from typing import Any

from api.schemas.common import ErrorBody

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "bad request"),
        (401, "not authenticated (missing, invalid, expired or revoked token)"),
        (403, "not allowed (administrator role required)"),
        (404, "not found (or not yours)"),
        (409, "conflicts with the current state"),
        (413, "request body too large"),
        (422, "invalid input (the message names the field)"),
        (429, "rate limited (see Retry-After)"),
        (503, "the trading engine is not available"),
    )
}
"""Error answers every API route may give, all with the body ``ErrorBody``."""
