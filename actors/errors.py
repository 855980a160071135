"""Ray's exceptions turned into the one-line reasons clients see (``engine.public_text``).

An exception raised inside an actor or task reaches its caller as ``RayTaskError``
(a subclass made on the fly that is also an instance of the original class) whose text
is the remote traceback: coloured, with the worker's pid, IP and actor id. A dead actor
is ``RayActorError`` / ``ActorDiedError`` with a page about the worker's exit. Neither
belongs in a status or an API answer: :func:`public_reason_of` unwraps the original
exception (``RayTaskError.cause``) and gives its domain message, or a short phrase for
Ray's own failures. Callers log the full exception first.
"""

from __future__ import annotations

import os

from ray.exceptions import (
    ActorUnavailableError,
    GetTimeoutError,
    ObjectLostError,
    OutOfMemoryError,
    RayActorError,
    RayError,
    RayTaskError,
    TaskCancelledError,
    WorkerCrashedError,
)

from engine.public_text import GENERIC_REASON, public_reason


def root_cause(exc: BaseException) -> BaseException:
    """The exception raised in the remote code, through any number of ``RayTaskError``
    layers (an actor calling an actor calling a task); ``exc`` itself otherwise."""
    seen: set[int] = set()
    while isinstance(exc, RayTaskError) and id(exc) not in seen:
        seen.add(id(exc))
        cause = getattr(exc, "cause", None)
        if not isinstance(cause, BaseException) or cause is exc:
            break
        exc = cause
    return exc


def public_reason_of(exc: BaseException, *, data_dir: str | os.PathLike[str] | None = None,
                     what: str = "actor", generic: str = GENERIC_REASON) -> str:
    """The one-line reason a client sees for ``exc``, which may be a Ray exception.

    ``what`` names the actor in Ray's own failures (``"asset actor died"``); ``generic``
    is said for an exception that is no domain error (see ``public_reason``)."""
    cause = root_cause(exc)
    if isinstance(cause, ActorUnavailableError):
        return f"{what} unavailable (restarting or unreachable)"
    if isinstance(cause, RayActorError):
        return f"{what} died"
    if isinstance(cause, (GetTimeoutError, TimeoutError)):
        return f"{what}: timed out"
    if isinstance(cause, TaskCancelledError):
        return "cancelled"
    if isinstance(cause, OutOfMemoryError):
        return f"{what}: out of memory"
    if isinstance(cause, WorkerCrashedError):
        return f"{what}: worker process crashed"
    if isinstance(cause, ObjectLostError):
        return f"{what}: a result was lost (its worker or node died)"
    if isinstance(cause, RayError):  # RayTaskError without a usable cause, Ray's own errors
        return f"{what}: engine error ({type(cause).__name__})"
    return public_reason(cause, data_dir=data_dir, generic=generic)


__all__ = ["public_reason_of", "root_cause"]
