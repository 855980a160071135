"""Writes described as data, so they can travel to the persistence actor and be resent."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from persistence.records import AuditContext


class WriteRequest(BaseModel):
    """One Store write: ``store.<op>(ctx, *args, **kwargs)``.

    ``ctx.request_id`` should be set (the client sets one): it is what makes a resend safe.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    op: str = Field(min_length=1)
    ctx: AuditContext
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @property
    def request_id(self) -> str | None:
        return self.ctx.request_id


class WriteOutcome(BaseModel):
    """The result of one write: ``ok`` with the Store's return value, or the error."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    request_id: str | None
    op: str
    ok: bool
    result: Any = None
    error: str | None = None
    error_type: str | None = None

    @classmethod
    def success(cls, write: WriteRequest, result: Any) -> "WriteOutcome":
        return cls(request_id=write.request_id, op=write.op, ok=True, result=result)

    @classmethod
    def failure(cls, write: WriteRequest, exc: BaseException) -> "WriteOutcome":
        return cls(
            request_id=write.request_id,
            op=write.op,
            ok=False,
            error=str(exc) or type(exc).__name__,
            error_type=type(exc).__name__,
        )
