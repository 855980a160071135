"""Auth request/response bodies."""

from __future__ import annotations

from pydantic import ConfigDict, Field, field_validator

from api.aaa import password_problems
from api.schemas.common import PublicModel, RequestModel

USERNAME_PATTERN = r"^[A-Za-z0-9_.\-]{3,64}$"
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]{1,185}\.[^@\s]{2,}$"


class RegisterRequest(RequestModel):
    """A new account. Every account starts with role ``user``; a ``role`` field is refused."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"username": "alice", "password": "Correct7Horse"}]})

    username: str = Field(pattern=USERNAME_PATTERN, description="3-64 of letters, digits, _ . -")
    password: str = Field(
        min_length=1,
        max_length=256,
        description=">= 8 characters, an uppercase letter, a digit, <= 72 bytes in UTF-8",
    )
    email: str | None = Field(default=None, max_length=254, pattern=EMAIL_PATTERN)

    @field_validator("password")
    @classmethod
    def _policy(cls, value: str) -> str:
        problems = password_problems(value)
        if problems:
            raise ValueError("password " + "; ".join(problems))
        return value


class LoginRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"username": "alice", "password": "Correct7Horse"}]})

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class RefreshRequest(RequestModel):
    refresh_token: str = Field(min_length=1, max_length=4096)


class TokenPair(PublicModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="seconds until the access token expires")
