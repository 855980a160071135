"""Run the gateway under uvicorn: blocking (``serve``) or in a background thread
(``start_in_thread``, for the runtime's ``lts run`` and for tests).

A request uvicorn cannot parse (a malformed ``Content-Length``, a broken request line)
never reaches the app: uvicorn's HTTP protocol answers it with a plain-text 400 itself.
``uvicorn.Config(http=...)`` takes a protocol class (its documented alternative to the
names ``"h11"`` / ``"httptools"``), so the server runs a subclass of the protocol uvicorn
would pick (``AutoHTTPProtocol``) whose ``send_400_response``, the method both of
uvicorn's protocols call for exactly this case, answers in the gateway's JSON error shape
with its security headers. A subclass, not a patch: uvicorn's own classes are untouched.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import uvicorn

from api.errors import error_body
from api.middleware import INVALID_CONTENT_LENGTH, SECURITY_HEADERS
from api.settings import GatewaySettings
from engine.errors import ConfigError

logger = logging.getLogger(__name__)

MALFORMED_REQUEST = f"malformed HTTP request (e.g. an {INVALID_CONTENT_LENGTH})"


def _bad_request_bytes() -> bytes:
    """A whole HTTP/1.1 400 answer in the one error shape; the connection then closes."""
    body = json.dumps(error_body("bad_request", MALFORMED_REQUEST)).encode()
    head = [b"HTTP/1.1 400 Bad Request", b"content-type: application/json",
            b"content-length: " + str(len(body)).encode(), b"connection: close"]
    head += [name + b": " + value for name, value in SECURITY_HEADERS]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def json_error_protocol(base: type[Any]) -> type[Any]:
    """``base`` (one of uvicorn's HTTP protocol classes) answering unparsable requests in
    the JSON error shape. ``base`` itself if it has no ``send_400_response`` (a uvicorn
    that changed it: the plain-text 400 is then what clients get, and the log says so)."""
    if not callable(getattr(base, "send_400_response", None)):
        logger.warning("uvicorn's %s has no send_400_response: malformed requests get its plain-text 400",
                       base.__name__)
        return base

    class JsonErrorProtocol(base):  # type: ignore[misc, valid-type]
        def send_400_response(self, msg: str) -> None:
            logger.info("malformed HTTP request refused: %s", msg)
            self.transport.write(_bad_request_bytes())
            self.transport.close()

    JsonErrorProtocol.__name__ = JsonErrorProtocol.__qualname__ = f"JsonError{base.__name__}"
    return JsonErrorProtocol


def http_protocol() -> type[Any]:
    """The protocol class the gateway runs: uvicorn's own choice, with JSON 400s."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    return json_error_protocol(AutoHTTPProtocol)


def build_server(config: Mapping[str, Any], app: Any | None = None, **services: Any) -> uvicorn.Server:
    """A uvicorn server for ``app`` (built with ``create_app(config, **services)`` when
    omitted) on ``api_host``:``api_port``.

    Proxy headers are not trusted (the client IP in audit rows and the rate limit is the
    TCP peer); uvicorn's ``Server`` header is off."""
    settings = GatewaySettings.from_config(config)
    if app is None:
        from api.app import create_app

        app = create_app(config, **services)
    uv_config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        http=http_protocol(),
        log_level=settings.log_level,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        lifespan="on",
    )
    return uvicorn.Server(uv_config)


def serve(config: Mapping[str, Any], app: Any | None = None, **services: Any) -> None:
    """Run the gateway until interrupted (uvicorn handles SIGINT/SIGTERM)."""
    server = build_server(config, app, **services)
    logger.info("API gateway on http://%s:%s (docs at /docs)", server.config.host, server.config.port)
    server.run()


@dataclass
class RunningServer:
    """A gateway running in a background thread."""

    server: uvicorn.Server
    thread: threading.Thread

    @property
    def port(self) -> int:
        """The bound port (the real one when ``api_port`` was 0)."""
        for srv in self.server.servers:
            for sock in srv.sockets:
                return int(sock.getsockname()[1])
        return int(self.server.config.port)

    @property
    def url(self) -> str:
        return f"http://{self.server.config.host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            logger.warning("API gateway thread did not stop within %.0f s", timeout)


def start_in_thread(
    config: Mapping[str, Any], app: Any | None = None, *, startup_timeout: float = 15.0, **services: Any
) -> RunningServer:
    """Start the gateway in a daemon thread and wait until it accepts connections.

    Signal handlers stay the caller's (uvicorn installs none outside the main thread)."""
    server = build_server(config, app, **services)

    def run() -> None:
        try:
            server.run()
        except SystemExit as exc:  # uvicorn exits when it cannot bind; reported below
            logger.error("API gateway stopped during startup (exit code %s)", exc.code)

    thread = threading.Thread(target=run, name="lts-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            raise ConfigError(
                f"API gateway failed to start on {server.config.host}:{server.config.port} "
                "(port in use? see the log above)"
            )
        if time.monotonic() > deadline:
            server.should_exit = True
            raise ConfigError(f"API gateway did not start within {startup_timeout:.0f} s")
        time.sleep(0.02)
    running = RunningServer(server=server, thread=thread)
    logger.info("API gateway on %s", running.url)
    return running
