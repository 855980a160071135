"""Hardening middleware on a tiny ASGI app: headers, rate limit, body limit, catch-all."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api.middleware import (
    BodySizeLimitMiddleware,
    CatchAllMiddleware,
    RateLimitMiddleware,
    SecurityHeadersMiddleware,
)


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"received": len(body)})


async def boom(request: Request) -> JSONResponse:
    raise RuntimeError("secret internals /etc/passwd")


def build(*middleware: Middleware) -> Starlette:
    """A small app with the middleware inside Starlette's own error middleware, as in
    the gateway (``app.add_middleware``)."""
    routes = [Route("/echo", echo, methods=["POST", "GET"]), Route("/boom", boom)]
    return Starlette(routes=routes, middleware=list(middleware))


def call(app, method: str, path: str, **kwargs) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def test_security_headers_on_success_and_on_errors() -> None:
    app = build(Middleware(SecurityHeadersMiddleware), Middleware(CatchAllMiddleware))
    for path in ("/echo", "/boom", "/missing"):
        resp = call(app, "GET", path)
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["x-frame-options"] == "DENY"
        assert "max-age=" in resp.headers["strict-transport-security"]
        assert "default-src 'none'" in resp.headers["content-security-policy"]
        assert resp.headers["referrer-policy"] == "no-referrer"


def test_catch_all_hides_the_exception() -> None:
    resp = call(build(Middleware(CatchAllMiddleware)), "GET", "/boom")
    assert resp.status_code == 500
    assert resp.json() == {"error": {"code": "internal_error", "message": "internal server error", "details": None}}
    assert "passwd" not in resp.text and "Traceback" not in resp.text


def test_rate_limit_refuses_over_budget_with_retry_after_and_refills() -> None:
    now = [1000.0]
    app = RateLimitMiddleware(build(), per_minute=3, clock=lambda: now[0])
    codes = [call(app, "GET", "/echo").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = call(app, "GET", "/echo")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.headers["retry-after"] == "20"  # 3/min -> one token every 20 s
    now[0] += 20.0
    assert call(app, "GET", "/echo").status_code == 200
    assert call(app, "GET", "/echo").status_code == 429


def test_rate_limit_exempts_health_and_forgets_old_clients() -> None:
    app = RateLimitMiddleware(build(), per_minute=1, exempt_paths=("/echo",), max_clients=2)
    assert all(call(app, "GET", "/echo").status_code == 200 for _ in range(3))
    for ip in ("a", "b", "c"):
        app.take(ip)
    assert list(app._buckets) == ["b", "c"]


def test_body_limit_by_content_length_before_the_app_reads() -> None:
    app = BodySizeLimitMiddleware(build(), max_bytes=10)
    ok = call(app, "POST", "/echo", content=b"x" * 10)
    assert ok.status_code == 200 and ok.json() == {"received": 10}
    big = call(app, "POST", "/echo", content=b"x" * 11)
    assert big.status_code == 413
    assert big.json()["error"]["code"] == "payload_too_large"


def test_body_limit_counts_streamed_chunks() -> None:
    app = BodySizeLimitMiddleware(build(), max_bytes=10)

    async def chunks():
        for _ in range(5):
            yield b"xxxx"

    resp = call(app, "POST", "/echo", content=chunks())  # no Content-Length: chunked
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "payload_too_large"


def test_bad_content_length_is_400() -> None:
    async def go():
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(msg):
            sent.append(msg)

        app = BodySizeLimitMiddleware(build(), max_bytes=10)
        await app({"type": "http", "method": "POST", "path": "/echo", "headers": [(b"content-length", b"abc")]}, receive, send)
        return sent

    sent = asyncio.run(go())
    assert sent[0]["status"] == 400


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="rate_limit_per_minute"):
        RateLimitMiddleware(build(), per_minute=0)
    with pytest.raises(ValueError, match="max_body_bytes"):
        BodySizeLimitMiddleware(build(), max_bytes=0)
