"""Hardening against a real uvicorn on loopback: body size limit (declared and streamed),
per-IP rate limit with Retry-After, security headers and CORS, one error shape."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.api.conftest import Gateway, served_gateway

SECURITY = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def _assert_error_shape(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code and body["error"]["message"]
    assert "Traceback" not in resp.text


def _assert_security_headers(resp: httpx.Response) -> None:
    for name, value in SECURITY.items():
        assert resp.headers.get(name) == value, (name, resp.status_code)
    assert "max-age=" in resp.headers["strict-transport-security"]
    assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]


@pytest.fixture
def small_gateway(sqlite_db_url: str) -> Iterator[Gateway]:
    """Real uvicorn with a 2 KiB body limit, 20 requests/min and one CORS origin."""
    with served_gateway(
        sqlite_db_url, max_body_bytes=2048, rate_limit_per_minute=20, cors_origins=["https://app.example"]
    ) as gateway:
        yield gateway


def test_oversized_body_is_413_before_parsing(small_gateway: Gateway) -> None:
    client = small_gateway.client
    big = {"username": "x" * 3000, "password": "Aa1aaaaaaa"}
    resp = client.post("/api/auth/register", json=big)
    _assert_error_shape(resp, 413, "payload_too_large")
    _assert_security_headers(resp)
    # Not valid JSON at all, but too big: refused for its size, never parsed.
    resp = client.post("/api/auth/login", content=b"{" * 5000, headers={"content-type": "application/json"})
    _assert_error_shape(resp, 413, "payload_too_large")
    # Streamed without Content-Length (chunked): counted as it arrives.
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 500
    resp = client.post("/api/auth/login", content=chunks(), headers={"content-type": "application/json"})
    _assert_error_shape(resp, 413, "payload_too_large")
    # Just under the limit is parsed normally (here: a validation error, not a 413).
    body = json.dumps({"username": "ab", "password": "x" * 1900}).encode()
    assert len(body) < 2048
    resp = client.post("/api/auth/login", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 422
    assert small_gateway.audit_count() == 0  # nothing reached the Store


def test_lying_content_length_is_refused(small_gateway: Gateway) -> None:
    """A client declaring a huge body gets 413 at once, without sending it."""
    host, port = small_gateway.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1073741824\r\n\r\n"
        )
        received = b""
        while b'"payload_too_large"' not in received:
            chunk = sock.recv(4096)  # the server closes the connection after the answer
            if not chunk:
                break
            received += chunk
        reply = received.decode()
    assert reply.startswith("HTTP/1.1 413")
    assert '"payload_too_large"' in reply


def test_rate_limit_429_with_retry_after(small_gateway: Gateway) -> None:
    client = small_gateway.client
    statuses = [client.get("/api/plugins").status_code for _ in range(20)]
    assert statuses == [401] * 20  # all counted, all answered
    resp = client.get("/api/plugins")
    _assert_error_shape(resp, 429, "rate_limited")
    _assert_security_headers(resp)
    assert 1 <= int(resp.headers["retry-after"]) <= 3  # 20/min: a token every 3 s
    # Health checks are never limited.
    assert client.get("/health").status_code == 200


def test_security_headers_and_error_shape_everywhere(small_gateway: Gateway) -> None:
    client = small_gateway.client
    cases = [
        (client.get("/health"), 200, None),
        (client.get("/api/nope"), 404, "not_found"),
        (client.delete("/health"), 405, "method_not_allowed"),
        (client.get("/api/portfolios"), 401, "unauthorized"),
        (client.post("/api/auth/login", content=b"{not json", headers={"content-type": "application/json"}), 422, "validation_error"),
        (client.post("/api/auth/login", json={"username": "a"}), 422, "validation_error"),
    ]
    for resp, status, code in cases:
        _assert_security_headers(resp)
        if code is not None:
            _assert_error_shape(resp, status, code)
    missing = cases[-1][0].json()["error"]
    assert missing["details"][0]["loc"] == ["body", "password"]
    assert "body.password" in missing["message"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "script-src 'self';" in docs.headers["content-security-policy"]


def test_cors_allows_only_configured_origins(small_gateway: Gateway) -> None:
    client = small_gateway.client
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    allowed = client.options("/api/portfolios", headers={"Origin": "https://app.example", **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    denied = client.options("/api/portfolios", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in denied.headers
    simple = client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in simple.headers
