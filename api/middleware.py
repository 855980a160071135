"""Pure-ASGI hardening middleware: security headers, per-IP rate limit, body size limit,
a check that the URL holds storable text, and a last-resort handler that turns
unexpected exceptions into the one error shape.

Pure ASGI (not ``BaseHTTPMiddleware``) because these run on every request and the
gateway's latency budget is small; the body limit also has to see the byte stream
before anything parses it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body
from api.schemas.common import text_problem

logger = logging.getLogger(__name__)

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    # The API serves JSON only; /docs and /redoc get DOCS_CSP.
    (
        b"content-security-policy",
        b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)

# Swagger UI and ReDoc load their bundles from this server (api.docs), no other host.
# Scripts: 'self' only (the Swagger bootstrap is a file). Styles need 'unsafe-inline':
# both UIs inject <style> elements at run time. ReDoc's search runs in a blob: worker.
DOCS_CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    b"font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; "
    b"base-uri 'none'; form-action 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})


INVALID_CONTENT_LENGTH = "invalid Content-Length header"


async def send_error(send: Send, status: int, code: str, message: str, headers: Iterable[tuple[bytes, bytes]] = (),
                     details: Any = None) -> None:
    """Send a complete JSON error answer in the one error shape."""
    body = json.dumps(error_body(code, message, details)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def client_ip(scope: Scope) -> str:
    """The peer address of the connection (proxy headers are not trusted)."""
    client = scope.get("client")
    return client[0] if client else "unknown"


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP answer, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_docs = scope.get("path") in DOCS_PATHS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS:
                    if name == b"content-security-policy" and is_docs:
                        value = DOCS_CSP
                    if name not in present:
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RateLimitMiddleware:
    """Per-client-IP token bucket: ``per_minute`` requests a minute, bursts up to that.

    Over the limit the answer is 429 with ``Retry-After`` (whole seconds until one
    request is allowed again). ``exempt_paths`` (health checks) are never limited.
    State is per process and bounded to ``max_clients`` addresses (least recently seen
    are forgotten first), so a flood of source addresses cannot grow memory.
    """

    def __init__(
        self,
        app: ASGIApp,
        per_minute: int,
        exempt_paths: Iterable[str] = ("/health",),
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute <= 0:
            raise ValueError(f"rate_limit_per_minute must be positive, got {per_minute}")
        self.app = app
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens per second
        self.exempt = frozenset(exempt_paths)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> float:
        """Take one token for ``key``; return 0 if allowed, else seconds to wait."""
        now = self.clock()
        tokens, last = self._buckets.pop(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        wait = self.take(client_ip(scope))
        if wait > 0:
            retry_after = str(max(1, math.ceil(wait))).encode()
            await send_error(
                send, 429, "rate_limited", "too many requests from this address; retry later",
                [(b"retry-after", retry_after)],
            )
            return
        await self.app(scope, receive, send)


class BodySizeLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` with 413 before anything parses them.

    A declared ``Content-Length`` over the limit is refused before reading a byte; a
    streamed (chunked) body is counted as it arrives and refused the moment it passes
    the limit: the app then sees a client disconnect and whatever it tries to answer
    is dropped.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_body_bytes must be positive, got {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"request body larger than {self.max_bytes} bytes"
        lengths = {value.strip() for name, value in scope.get("headers", ()) if name == b"content-length"}
        if lengths:
            # Digits only (RFC 9110: no sign, no spaces inside), and one value: the same
            # rule the HTTP server applies before the app (``api.server``), same answer.
            if len(lengths) > 1 or not all(v.isdigit() for v in lengths):
                await send_error(send, 400, "bad_request", INVALID_CONTENT_LENGTH, [(b"connection", b"close")])
                return
            if int(next(iter(lengths))) > self.max_bytes:
                await send_error(send, 413, "payload_too_large", message, [(b"connection", b"close")])
                return
        received = 0
        refused = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    if not started:
                        await send_error(send, 413, "payload_too_large", message, [(b"connection", b"close")])
                    return {"type": "http.disconnect"}
            return msg

        async def guarded_send(msg: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 was the answer; drop the app's reaction to the "disconnect"
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        await self.app(scope, counting_receive, guarded_send)


class UnstorableTextMiddleware:
    """Refuses, with 422 in the one error shape, a request whose path or query string
    decodes to text the databases cannot store (a NUL character: ``?kind=a%00b`` used to
    reach PostgreSQL and fail there with a 500). One check for every route's query and
    path parameters; bodies are checked by ``api.schemas.common.RequestModel``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = self.problem(scope)
            if problem is not None:
                where, why = problem
                await send_error(send, 422, "validation_error", f"invalid request: {where}: text {why}",
                                 details=[{"loc": where.split(".", 1), "msg": f"text {why}", "type": "value_error"}])
                return
        await self.app(scope, receive, send)

    @staticmethod
    def problem(scope: Scope) -> tuple[str, str] | None:
        """``(where, why)`` for the first unstorable piece of the URL, or None."""
        why = text_problem(str(scope.get("path", "")))
        if why:
            return "path", why
        raw = scope.get("query_string", b"")
        if b"%00" not in raw and b"\x00" not in raw:  # the only unstorable thing a URL can decode to
            return None
        # As Starlette decodes it (invalid UTF-8 becomes U+FFFD, which is storable).
        for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
            why = text_problem(key)
            if why:
                return "query", why
            why = text_problem(value)
            if why:
                return f"query.{key[:64]}", why
        return None


class CatchAllMiddleware:
    """Last resort: an unexpected exception is logged with its traceback and answered
    with a bare 500 in the one error shape (never a stack trace to the client)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await send_error(send, 500, "internal_error", "internal server error")
