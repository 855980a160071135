"""Run the gateway under uvicorn: blocking (``serve``) or in a background thread
(``start_in_thread``, for the runtime's ``lts run`` and for tests)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import uvicorn

from api.settings import GatewaySettings
from engine.errors import ConfigError

logger = logging.getLogger(__name__)


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
        log_level=str(config.get("log_level", "INFO")).lower(),
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
