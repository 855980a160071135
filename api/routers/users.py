"""``/api/users``: the caller's own account; admins list accounts (with their lockout
state), change role/active and unlock accounts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import AdminUser, CurrentUser, PageDep, ServicesDep
from api.errors import Conflict
from api.routers import ERROR_RESPONSES
from api.schemas.common import Page
from api.schemas.users import UserAdminUpdate, UserAdminView, UserPublic
from engine.types import utcnow
from persistence.enums import Role
from persistence.records import UserRecord

router = APIRouter(prefix="/api/users", tags=["users"], responses=ERROR_RESPONSES)

UserId = Annotated[int, Path(ge=1, lt=2**63)]


@router.get("/me", response_model=UserPublic)
async def me(caller: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(caller.user)


def _admin_views(services: ServicesDep, users: list[UserRecord]) -> list[UserAdminView]:
    """Users with their lockout state (one more query for the page's client holds)."""
    now = utcnow()
    held = services.store.held_clients([u.id for u in users], now=now)
    return [
        UserAdminView(
            **UserPublic.model_validate(u).model_dump(),
            failed_login_count=u.failed_login_count,
            is_locked=u.is_locked(now),
            locked_until=u.locked_until if u.is_locked(now) else None,
            held_clients=held.get(u.id, 0),
        )
        for u in users
    ]


@router.get("", response_model=Page[UserAdminView])
async def list_users(
    admin: AdminUser,
    services: ServicesDep,
    page: PageDep,
    role: Annotated[Role | None, Query()] = None,
    is_active: Annotated[bool | None, Query()] = None,
) -> Page[UserAdminView]:
    """Every account with its lockout state (admin only)."""
    result = await services.read(services.store.list_users, role=role, is_active=is_active, page=page.to_request())
    items = await services.read(_admin_views, services, list(result.items))
    return page.respond(Page[UserAdminView], result.total, items)


@router.post("/{user_id}/unlock", response_model=UserAdminView)
def unlock_user(user_id: UserId, admin: AdminUser, services: ServicesDep) -> UserAdminView:
    """Lift every failed-login hold on an account (admin only, audited as
    ``user.unlock``): the account-wide hold, every client's backoff and the failure
    counts. 404 for an unknown account."""
    user = services.writer.unlock_user(admin.ctx(), user_id)
    return _admin_views(services, [user])[0]


@router.patch("/{user_id}", response_model=UserPublic)
def update_user(user_id: UserId, body: UserAdminUpdate, admin: AdminUser, services: ServicesDep) -> UserPublic:
    """Change an account's role and/or active flag (admin only). Deactivating revokes
    the account's tokens. The last active administrator cannot be demoted or deactivated."""
    user = services.store.get_user(user_id)
    demotes = body.role is not None and body.role is not Role.ADMIN and user.is_admin
    disables = body.is_active is False and user.is_admin and user.is_active
    if (demotes or disables) and _active_admins(services) <= 1:
        raise Conflict("this is the last active administrator: promote another one first")
    # Only real changes are written (each write is one audit row).
    if body.role is not None and body.role is not user.role:
        user = services.writer.set_user_role(admin.ctx(), user_id, body.role)
    if body.is_active is not None and body.is_active != user.is_active:
        user = services.writer.set_user_active(admin.ctx(), user_id, body.is_active)
    return UserPublic.model_validate(user)


def _active_admins(services: ServicesDep) -> int:
    return services.store.list_users(role=Role.ADMIN, is_active=True).total
