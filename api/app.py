"""``create_app``: the FastAPI gateway, built from the merged config and injected services.

Nothing is built at import time (every Ray worker that imports ``api`` would build it).

Middleware, outermost first: security headers -> CORS -> per-IP rate limit -> body size
limit -> URL text check -> last-resort 500 handler -> FastAPI's own exception handling
(one error shape).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import Services, reads_inline, request_origin
from api.docs import install_docs
from api.engine_handle import EngineHandle
from api.errors import ApiError, install_error_handlers
from api.middleware import (
    BodySizeLimitMiddleware,
    CatchAllMiddleware,
    RateLimitMiddleware,
    SecurityHeadersMiddleware,
    UnstorableTextMiddleware,
)
from api.settings import GatewaySettings
from api.signing_key import check_secret_placement, resolve_jwt_secret
from engine.errors import LTSError
from engine.plugins.base import AAAPlugin
from persistence.records import AuditContext

logger = logging.getLogger(__name__)

API_VERSION = "1.0.0"

ROUTER_MODULES: tuple[str, ...] = (
    "api.routers.health",
    "api.routers.auth",
    "api.routers.users",
    "api.routers.portfolios",
    "api.routers.assets",
    "api.routers.trading",
    "api.routers.statistics",
    "api.routers.billing",
    "api.routers.audit_logs",
    "api.routers.config",
    "api.routers.plugins",
    "api.routers.engine",
)
OPTIONAL_ROUTER_MODULES: tuple[str, ...] = ("api.routers.backtests",)
"""Routers written by other areas: included when their module exists."""


def _build_aaa(config: Mapping[str, Any], settings: GatewaySettings) -> AAAPlugin:
    from engine.plugins.loader import create_plugin

    plugin = create_plugin("aaa", settings.aaa_plugin, config)
    if not isinstance(plugin, AAAPlugin):  # the loader checks the class; keep mypy honest
        raise LTSError(f"aaa plugin {type(plugin).__name__} is not an AAAPlugin")
    return plugin


def _install_secret(aaa: AAAPlugin, config: Mapping[str, Any]) -> None:
    set_secret = getattr(aaa, "set_secret", None)
    if callable(set_secret) and not getattr(aaa, "has_secret", False):
        set_secret(resolve_jwt_secret(config))


def create_app(
    config: Mapping[str, Any],
    *,
    store: Any | None = None,
    engine: EngineHandle | None = None,
    aaa: AAAPlugin | None = None,
) -> FastAPI:
    """Build the gateway.

    ``store``: a ``persistence.store.Store`` for reads (and writes when no engine runs);
    built from ``database_url`` when omitted (and closed with the app). ``engine``: the
    actor runtime's handle; without it trading/execute and engine status answer 503.
    ``aaa``: an AAA plugin instance; built from ``aaa_plugin`` when omitted. The JWT
    secret comes from ``jwt_secret`` / ``LTS_JWT_SECRET`` / a generated 0600 file.
    """
    settings = GatewaySettings.from_config(config)
    check_secret_placement(config)  # server files never inside data_dir, before anything opens
    owns_store = store is None
    if store is None:
        from persistence.store import Store

        store = Store.from_url(settings.database_url)
    if aaa is None:
        aaa = _build_aaa(config, settings)
    _install_secret(aaa, config)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_store:
            store.close()

    app = FastAPI(
        title="LTS gateway",
        version=API_VERSION,
        description="Portfolio management and trading over the LTS engine. "
        "Authenticate with POST /api/auth/login and send `Authorization: Bearer <access_token>`.",
        lifespan=lifespan,
        docs_url=None,  # served from the installed package below, never from a CDN
        redoc_url=None,
    )
    install_docs(app)
    app.state.services = Services(
        settings=settings, config=config, store=store, aaa=aaa, engine=engine, inline_reads=reads_inline(store)
    )
    install_error_handlers(app)
    app.add_exception_handler(ApiError, _audited_api_error_handler(app.exception_handlers[LTSError]))
    for module_name in ROUTER_MODULES:
        app.include_router(importlib.import_module(module_name).router)
    for module_name in OPTIONAL_ROUTER_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            logger.debug("%s not installed: its routes are not served", module_name)
            continue
        app.include_router(module.router)

    # Added innermost first: the last one added is the outermost.
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(UnstorableTextMiddleware)  # NUL in a query string: 422 before any route
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RateLimitMiddleware, per_minute=settings.rate_limit_per_minute)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Retry-After"],
        )
    app.add_middleware(SecurityHeadersMiddleware)
    return app


def _audited_api_error_handler(render: Any) -> Any:
    """Wrap the error renderer: 401 and 403 answers also leave an audit row."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        if exc.status_code in (401, 403) and not exc.audited:
            await run_in_threadpool(_audit_denial, request, exc)
        return await render(request, exc)

    return handler


def _audit_denial(request: Request, exc: ApiError) -> None:
    services: Services = request.app.state.services
    caller = getattr(request.state, "caller", None)
    ip, agent = request_origin(request)
    ctx = AuditContext(
        user_id=caller.id if caller is not None else None,
        is_admin=False,
        ip=ip,
        user_agent=agent,
    )
    action = "auth.unauthorized" if exc.status_code == 401 else "auth.forbidden"
    # Aggregated (one row per caller, ip, route and reason a minute, with a count), so
    # a dead token retried in a loop cannot flood the log. The route's template and the
    # reason's first two parts (PyJWT adds byte positions) keep that key set small.
    route = request.scope.get("route")
    path = getattr(route, "path", None) or request.url.path[:64]
    reason = ": ".join(exc.message.split(": ")[:2])[:128]
    details = {"method": request.method[:16], "path": path, "reason": reason}
    try:
        services.writer.audit(ctx, action, target_type="http", details=details, aggregate=True)
    except Exception:  # never turn a 401/403 into a 500 because auditing failed
        logger.exception("could not audit %s on %s %s", action, request.method, request.url.path)


class _NoStore:
    """Stands in for the Store when the app is built only to describe itself."""

    engine = None

    def __getattr__(self, name: str) -> Any:
        raise LTSError("this app was built by openapi_document() and has no database")


def openapi_document(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The gateway's OpenAPI document, built without a database or a signing secret
    (for docs, client generation and schema-driven tests)."""
    import secrets as _secrets

    from api.aaa import DefaultAAA

    app = create_app(
        dict(config or {}),
        store=_NoStore(),
        aaa=DefaultAAA(secret=_secrets.token_urlsafe(48)),
    )
    return app.openapi()
