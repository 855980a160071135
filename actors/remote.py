"""The one place where plain actor classes become Ray actors.

Actor classes stay plain Python (importable and testable without Ray); this factory
applies ``ray.remote(**options)`` with each class's placement and fault-tolerance options,
like Ray Serve's controller does.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

import ray

F = TypeVar("F", bound=Callable[..., Any])


def hot_path(method: F) -> F:
    """Mark an actor method called per bar or per order (steps, writes, broker orders):
    Ray records no task events for its calls.

    Every actor call otherwise leaves a trail of task events (submitted, running,
    finished...) that the caller and the actor buffer and send to the GCS each second,
    for the dashboard's task list and ``ray list tasks``. At hundreds of calls a second
    through a hundred asset processes on a small machine that bookkeeping costs CPU the
    steps need. The actors themselves, their state, logs and the LTS metrics stay on the
    dashboard; control calls (start, stop, status) keep their events.
    """
    return ray.method(enable_task_events=False)(method)  # type: ignore[no-any-return]


@cache
def remote_class(cls: type, **options: Any) -> Any:
    """``cls`` as a Ray actor class with ``options`` (cached per class and options)."""
    return ray.remote(**options)(cls)


def actor_options(cls: type) -> dict[str, Any]:
    """The class's default Ray options (its ``RAY_OPTIONS`` attribute)."""
    return dict(getattr(cls, "RAY_OPTIONS", {}))


def make_remote(cls: type) -> Any:
    """``cls`` as a Ray actor class with its own ``RAY_OPTIONS``."""
    return remote_class(cls, **actor_options(cls))
