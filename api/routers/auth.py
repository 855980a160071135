"""``/api/auth``: register, login, refresh, logout (seed §1.6 authentication flow)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from api import auth_service
from api.deps import CurrentUser, ServicesDep, anonymous_context
from api.routers import ERROR_RESPONSES
from api.schemas.auth import LoginRequest, RefreshRequest, RegisterRequest, TokenPair
from api.schemas.common import ErrorBody, Message
from api.schemas.users import UserPublic
from persistence.records import AuditContext

router = APIRouter(prefix="/api/auth", tags=["auth"], responses=ERROR_RESPONSES)

AnonymousCtx = Annotated[AuditContext, Depends(anonymous_context)]


@router.post("/register", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
def register(body: RegisterRequest, services: ServicesDep, ctx: AnonymousCtx) -> UserPublic:
    """Create an account (role ``user``). Password policy: >= 8 characters, an uppercase
    letter, a digit, at most 72 bytes in UTF-8."""
    user = auth_service.register(
        services.writer, services.store, services.aaa, ctx,
        username=body.username, password=body.password, email=body.email,
    )
    return UserPublic.model_validate(user)


@router.post(
    "/login",
    response_model=TokenPair,
    responses={423: {"model": ErrorBody, "description": "account locked (see Retry-After)"}},
)
def login(body: LoginRequest, services: ServicesDep, ctx: AnonymousCtx) -> TokenPair:
    """Exchange username and password for an access token (30 min) and a refresh token
    (7 days). Five failures in a row from one client hold that client back (423 with
    ``Retry-After``: 60 s, doubling per further failure, up to 30 min); other clients are
    not affected until the account's failures reach 100 in an hour, which holds it
    against clients that never logged into it. An admin can unlock it."""
    tokens = auth_service.login(
        services.writer, services.store, services.aaa, ctx, username=body.username, password=body.password
    )
    return TokenPair.model_validate(tokens)


@router.post("/refresh", response_model=TokenPair)
def refresh(body: RefreshRequest, services: ServicesDep, ctx: AnonymousCtx) -> TokenPair:
    """Trade a refresh token for a new pair. The presented token dies; presenting it
    again revokes every token of that login. A token is valid only for the user and
    login it was issued for."""
    tokens = auth_service.refresh(services.writer, services.aaa, ctx, refresh_token=body.refresh_token)
    return TokenPair.model_validate(tokens)


@router.post("/logout", response_model=Message)
def logout(caller: CurrentUser, services: ServicesDep) -> Message:
    """Revoke the caller's login: its access and refresh tokens stop working."""
    assert caller.session_family is not None
    auth_service.logout(services.writer, caller.ctx(), caller.session_family, user_id=caller.id)
    return Message(message="logged out")
