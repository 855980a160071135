"""The one place where plain actor classes become Ray actors.

Actor classes stay plain Python (importable and testable without Ray); this factory
applies ``ray.remote(**options)`` with each class's placement and fault-tolerance options,
like Ray Serve's controller does.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import ray


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
