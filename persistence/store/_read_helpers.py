"""What the Store's reads share: the login-state statement, filter and owner-scoping
helpers, and the one retry a read gets when its pooled connection turned out dead."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Integer, Select, bindparam, exists, literal_column, select
from sqlalchemy.exc import DBAPIError

from engine.errors import DomainError
from engine.types import ensure_utc
from persistence.models import Portfolio, User, UserSession
from persistence.records import UserRecord, Viewer

logger = logging.getLogger(__name__)

R = TypeVar("R")
E = TypeVar("E", bound=StrEnum)

ROTATION_CHAIN_LIMIT = 32
"""Refresh-token rotations followed when checking an access token's login; a longer
chain counts as dead (the access token is short-lived: a fresh login fixes it)."""


def login_state_statement() -> Select[Any]:
    """The user, the family of the presented refresh session and whether its login is
    live, as ONE statement (one round trip per authenticated request).

    The rotation chain is walked in SQL: start at the refresh session the access token
    was issued with (``:rjti``, and it must belong to ``:user_id``), follow
    ``replaced_by_jti`` from each revoked session, stop at the first unrevoked one. The
    login is live when that last session is unexpired at ``:now``; a chain that ends in a
    revoked session (logout, reuse detected, user deactivated) or is longer than
    ``ROTATION_CHAIN_LIMIT`` is dead. Built once: the statement is the same every call.
    """
    sessions = UserSession.__table__
    start = select(
        sessions.c.jti,
        sessions.c.family_id,
        sessions.c.revoked_at,
        sessions.c.expires_at,
        sessions.c.replaced_by_jti,
        literal_column("1", Integer).label("depth"),
    ).where(sessions.c.jti == bindparam("rjti"), sessions.c.user_id == bindparam("user_id"))
    chain = start.cte("login_chain", recursive=True)
    successor = sessions.alias("successor")
    chain = chain.union_all(
        select(
            successor.c.jti,
            successor.c.family_id,
            successor.c.revoked_at,
            successor.c.expires_at,
            successor.c.replaced_by_jti,
            chain.c.depth + literal_column("1", Integer),
        ).where(
            successor.c.jti == chain.c.replaced_by_jti,
            chain.c.revoked_at.is_not(None),
            chain.c.depth < literal_column(str(ROTATION_CHAIN_LIMIT), Integer),
        )
    )
    users = User.__table__
    family = select(chain.c.family_id).where(chain.c.depth == literal_column("1", Integer)).scalar_subquery()
    live = exists().where(chain.c.revoked_at.is_(None), chain.c.expires_at > bindparam("now"))
    return select(
        *(users.c[name] for name in UserRecord.model_fields),
        family.label("session_family"),
        live.label("session_live"),
    ).where(users.c.id == bindparam("user_id"))


LOGIN_STATE = login_state_statement()
USER_FIELDS = tuple(UserRecord.model_fields)


def enum_filter(kind: type[E], value: Any, field: str) -> E:
    """A filter value as its enum member, or a DomainError naming the filter."""
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)  # type: ignore[attr-defined]
        raise DomainError(f"{field}: {value!r} is not one of {allowed}") from None


def scoped(viewer: Viewer | None) -> bool:
    """True when results must be limited to the viewer's own rows."""
    return viewer is not None and not viewer.is_admin


def owned_portfolio_ids(viewer: Viewer) -> Any:
    return select(Portfolio.id).where(Portfolio.owner_id == viewer.user_id).scalar_subquery()


def time_range(column: Any, since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if since is not None:
        conditions.append(column >= ensure_utc(since))
    if until is not None:
        conditions.append(column < ensure_utc(until))
    return conditions


def retry_once_on_disconnect(read: Callable[..., R]) -> Callable[..., R]:
    """Run ``read`` again if its connection turned out dead (a restarted database server).

    The pool does not ping busy connections before use (``persistence.database``). When one
    fails with a disconnect, SQLAlchemy invalidates it and every connection pooled before
    it, so the second attempt runs on a fresh connection. Reads only: they have no effect
    to repeat.
    """

    @functools.wraps(read)
    def retrying(*args: Any, **kwargs: Any) -> R:
        try:
            return read(*args, **kwargs)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            logger.warning("database connection lost during %s, retrying once: %s", read.__name__, exc.orig)
            return read(*args, **kwargs)

    return retrying
