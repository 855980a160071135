"""``/api/users``: the caller's own account; admins list accounts and change role/active."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import AdminUser, CurrentUser, PageDep, ServicesDep
from api.errors import Conflict
from api.routers import ERROR_RESPONSES
from api.schemas.common import Page
from api.schemas.users import UserAdminUpdate, UserPublic
from persistence.enums import Role

router = APIRouter(prefix="/api/users", tags=["users"], responses=ERROR_RESPONSES)

UserId = Annotated[int, Path(ge=1, lt=2**63)]


@router.get("/me", response_model=UserPublic)
async def me(caller: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(caller.user)


@router.get("", response_model=Page[UserPublic])
async def list_users(
    admin: AdminUser,
    services: ServicesDep,
    page: PageDep,
    role: Annotated[Role | None, Query()] = None,
    is_active: Annotated[bool | None, Query()] = None,
) -> Page[UserPublic]:
    """Every account (admin only)."""
    result = await services.read(services.store.list_users, role=role, is_active=is_active, page=page.to_request())
    return Page[UserPublic](
        items=[UserPublic.model_validate(u) for u in result.items],
        total=result.total, page=page.page, page_size=page.page_size,
    )


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
