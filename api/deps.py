"""Typed dependency aliases every router uses: services, the authenticated caller,
admin-only access and pagination.

``get_current_user`` is the one gate for every protected endpoint (INT-07): Bearer
token -> signature and algorithm (HS256 pinned) -> required claims ``exp``/``iat``/
``sub``/``jti``/``type`` -> token type ``access`` -> the user exists and is active ->
the login (token family ``sid``) has not been revoked by logout or refresh-token reuse.
The database part is one Store read (``Store.login_state``): one round trip per request.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.auth_service import subject_user_id
from api.engine_handle import EngineHandle
from api.errors import EngineUnavailable, Forbidden, Unauthorized
from api.schemas.common import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from api.settings import GatewaySettings
from engine.plugins.base import AAAPlugin
from persistence.records import AuditContext, PageRequest, UserRecord

_USER_AGENT_MAX = 512
R = TypeVar("R")


def reads_inline(store: Any) -> bool:
    """Whether Store reads may run on the event loop: true for SQLite, whose WAL reads
    never wait for a lock and are pure in-process CPU work (a thread-pool hop costs more
    than the read); false for a networked database, whose waits belong in threads."""
    engine = getattr(store, "engine", None)
    return getattr(getattr(engine, "dialect", None), "name", None) == "sqlite"


@dataclass(frozen=True, slots=True)
class Services:
    """What the app was built with (``app.state.services``)."""

    settings: GatewaySettings
    config: Mapping[str, Any]
    store: Any  # persistence.Store: reads, and writes when no engine runs
    aaa: AAAPlugin
    engine: EngineHandle | None = None
    inline_reads: bool = field(default=False)

    @property
    def writer(self) -> Any:
        """Where writes go: the engine's store (through the persistence actor) while an
        engine runs, else the local Store. Writes are blocking calls: only ``def``
        routes (run in FastAPI's thread pool) make them."""
        return self.engine.store if self.engine is not None else self.store

    async def read(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Run a blocking Store read from an ``async`` route: inline on SQLite, in the
        thread pool otherwise (see :func:`reads_inline`)."""
        if self.inline_reads:
            return fn(*args, **kwargs)
        return await run_in_threadpool(fn, *args, **kwargs)


# Dependencies that do no blocking I/O are ``async def``: FastAPI runs plain ``def``
# dependencies in its thread pool, a hop that costs more than their work.


async def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def request_origin(request: Request) -> tuple[str | None, str | None]:
    """Client IP (the connection's peer; proxy headers are not trusted) and user agent."""
    ip = request.client.host if request.client else None
    agent = request.headers.get("user-agent")
    return ip, agent[:_USER_AGENT_MAX] if agent else None


async def anonymous_context(request: Request) -> AuditContext:
    """Audit context for requests made before anyone is authenticated (register, login).

    ``user_id=None`` is what the Store calls "system": only the API's own fixed
    arguments (role ``user``...) reach the Store from these routes."""
    ip, agent = request_origin(request)
    return AuditContext(user_id=None, is_admin=False, ip=ip, user_agent=agent, request_id=new_request_id())


def new_request_id() -> str:
    """A fresh idempotency key for one Store write (a resend of it is not applied twice)."""
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated user of a request, with where the request came from."""

    user: UserRecord
    session_family: str | None
    ip: str | None
    user_agent: str | None

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def is_admin(self) -> bool:
        return self.user.is_admin

    def ctx(self) -> AuditContext:
        """Audit context for one write by this caller (a fresh request id each call)."""
        return AuditContext(
            user_id=self.user.id,
            is_admin=self.user.is_admin,
            ip=self.ip,
            user_agent=self.user_agent,
            request_id=new_request_id(),
        )


_bearer = HTTPBearer(auto_error=False, description="access token from POST /api/auth/login")


async def get_current_user(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The caller behind a valid access token, or 401."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("missing bearer token")
    claims = services.aaa.decode_token(credentials.credentials, "access")
    user_id = subject_user_id(claims)
    family, refresh_jti = claims.get("sid"), claims.get("rjti")
    if not isinstance(family, str) or not isinstance(refresh_jti, str):
        raise Unauthorized("invalid token: no session")
    user = await services.read(_live_user, services.store, user_id, family, refresh_jti)
    ip, agent = request_origin(request)
    caller = Caller(user=user, session_family=family, ip=ip, user_agent=agent)
    request.state.caller = caller  # for auditing a later 403
    return caller


def _live_user(store: Any, user_id: int, family: str, refresh_jti: str) -> UserRecord:
    """The token's user if active and its login not revoked (one query): the refresh
    session it was issued with belongs to this user and to the token's login family
    ``sid``, and that session's rotation chain ends in a live session."""
    state = store.login_state(user_id, refresh_jti)
    if state is None or not state.user.is_active:
        raise Unauthorized("user unknown or deactivated")
    if not state.session_live or state.session_family != family:
        raise Unauthorized("session revoked; log in again")
    return state.user


CurrentUser = Annotated[Caller, Depends(get_current_user)]


async def require_admin(caller: CurrentUser) -> Caller:
    """The caller, if an admin; 403 otherwise."""
    if not caller.is_admin:
        raise Forbidden("administrator role required")
    return caller


AdminUser = Annotated[Caller, Depends(require_admin)]


def require_engine(services: Services) -> EngineHandle:
    if services.engine is None:
        raise EngineUnavailable("the trading engine is not running in this process (start it with 'lts run')")
    return services.engine


async def engine_dependency(services: ServicesDep) -> EngineHandle:
    return require_engine(services)


EngineDep = Annotated[EngineHandle, Depends(engine_dependency)]


PageT = TypeVar("PageT", bound=Page[Any])


@dataclass(frozen=True, slots=True)
class PageParams:
    """A list endpoint's ``page`` / ``page_size`` query: the one paging rule of the API."""

    page: int
    page_size: int

    def to_request(self) -> PageRequest:
        """The Store's offset page for this query."""
        return PageRequest(offset=(self.page - 1) * self.page_size, limit=self.page_size)

    def respond(self, model: type[PageT], total: int, items: Iterable[Any]) -> PageT:
        """The response body: ``model`` (a ``Page[...]``) holding ``items`` of ``total``."""
        return model(items=list(items), total=total, page=self.page, page_size=self.page_size)


async def page_params(
    page: Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number")] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"at most {MAX_PAGE_SIZE}")] = DEFAULT_PAGE_SIZE,
) -> PageParams:
    return PageParams(page=page, page_size=page_size)


PageDep = Annotated[PageParams, Depends(page_params)]
