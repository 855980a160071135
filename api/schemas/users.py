"""User bodies."""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, model_validator

from api.schemas.common import PublicModel, RequestModel
from persistence.enums import Role


class UserPublic(PublicModel):
    id: int
    username: str
    email: str | None
    role: Role
    is_active: bool
    last_login_at: datetime | None
    created_at: datetime


class UserAdminView(UserPublic):
    """An account as an administrator sees it, with its failed-login state
    (``persistence.lockout``): ``is_locked`` / ``locked_until`` are the account-wide hold
    (clients that logged in before are exempt from it), ``held_clients`` how many client
    addresses are in their own backoff now, ``failed_login_count`` the failures of all
    clients within the counting window. ``POST /api/users/{id}/unlock`` lifts them all."""

    failed_login_count: int
    is_locked: bool
    locked_until: datetime | None
    held_clients: int


class UserAdminUpdate(RequestModel):
    """What an admin may change on an account (fields left out keep their value)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"is_active": True}, {"role": "user"}]})

    role: Role | None = None
    is_active: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> "UserAdminUpdate":
        if self.role is None and self.is_active is None:
            raise ValueError("give at least one of 'role', 'is_active'")
        return self
