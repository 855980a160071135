"""The supervisor's view of its asset actors: a small protocol, and its Ray implementation.

The supervision state machine (``actors.supervision``) and the heartbeat
(``actors.heartbeat``) talk to an asset only through ``ChildHandle``: start it, step it,
watch for its death, stop it, kill it. ``RayChild`` implements it over an ``AssetActor``
handle and turns Ray's "the actor died" errors into ``ChildDied``, so nothing above this
module handles Ray exceptions, and the state machine runs in a unit test against a plain
Python child (``tests/unit/runtime``) without a cluster.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

from actors.runtime_settings import RuntimeSettings


class ChildDied(Exception):
    """The asset actor's process is gone: the call cannot be answered (the supervisor's
    watch notices and restarts it)."""


class NameTaken(Exception):
    """The asset actor's name is still held (a dying predecessor, or an orphan)."""


class ChildHandle(Protocol):
    """One asset actor, as its supervisor uses it. Calls raise ``ChildDied`` when the
    actor's process died; any other exception is the asset's own failure."""

    def start(self, shared_data: dict[str, Any] | None) -> Awaitable[dict[str, Any]]:
        """Build the asset (idempotent); its ``info`` (``pid``, ``finished``...)."""

    def step(self, capital: str | None = None, settle: bool = False) -> Awaitable[dict[str, Any]]:
        """One step; ``settle``: answer once its results are recorded."""

    def steps(self, max_bars: int, budget_ms: float, capital: str | None = None) -> Awaitable[dict[str, Any]]:
        """Up to ``max_bars`` steps in one call (free-running simulations); a summary."""

    def watch(self) -> Awaitable[None]:
        """Never returns while the actor lives; raises ``ChildDied`` when it dies."""

    def reload(self) -> Awaitable[None]:
        """The asset's config changed: rebuild before the next step."""

    def reattach_broker(self) -> Awaitable[dict[str, Any]]:
        """Restore the asset's account on a restarted broker actor."""

    def stop(self) -> Awaitable[bool]:
        """Finish the step in flight, record its results, refuse new steps."""

    def kill(self) -> None:
        """End the actor's process now and free its name (no restart)."""


class ChildFactory(Protocol):
    """Creates asset actors and shares data with them."""

    def spawn(self, asset_id: int) -> ChildHandle:
        """A new asset actor for ``asset_id``; raises ``NameTaken`` while its name is held."""

    def share(self, data: Any) -> Any:
        """``data`` as something every child can read (a Ray object reference)."""


class RayChild:
    """``ChildHandle`` over an ``AssetActor`` handle."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    async def _call(self, ref: Any) -> Any:
        from ray.exceptions import RayActorError

        try:
            return await ref
        except RayActorError as exc:  # ActorDiedError, ActorUnavailableError: the process is gone
            raise ChildDied(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None

    def start(self, shared_data: dict[str, Any] | None) -> Awaitable[dict[str, Any]]:
        return self._call(self.handle.start.remote(shared_data))

    def step(self, capital: str | None = None, settle: bool = False) -> Awaitable[dict[str, Any]]:
        # No arguments to serialise in the usual case (same capital as last time).
        if settle:
            return self._call(self.handle.step.remote(capital, True))
        return self._call(self.handle.step.remote() if capital is None else self.handle.step.remote(capital))

    def steps(self, max_bars: int, budget_ms: float, capital: str | None = None) -> Awaitable[dict[str, Any]]:
        return self._call(self.handle.steps.remote(max_bars, budget_ms, capital))

    def watch(self) -> Awaitable[None]:
        return self._call(self.handle.watch.remote())

    def reload(self) -> Awaitable[None]:
        return self._call(self.handle.reload.remote())

    def reattach_broker(self) -> Awaitable[dict[str, Any]]:
        return self._call(self.handle.reattach_broker.remote())

    def stop(self) -> Awaitable[bool]:
        return self._call(self.handle.stop.remote())

    def kill(self) -> None:
        import ray

        try:
            ray.kill(self.handle, no_restart=True)
        except Exception:  # already gone
            pass


class RayChildren:
    """``ChildFactory`` making named ``AssetActor`` actors (``asset:{id}``) in the namespace."""

    def __init__(self, portfolio_id: int, settings: RuntimeSettings) -> None:
        self.portfolio_id = portfolio_id
        self.settings = settings

    def spawn(self, asset_id: int) -> ChildHandle:
        from actors import naming
        from actors.asset_actor import AssetActor
        from actors.remote import make_remote

        try:
            handle = make_remote(AssetActor).options(
                name=naming.asset(asset_id), namespace=self.settings.namespace).remote(
                self.portfolio_id, asset_id, self.settings)
        except ValueError as exc:  # Ray: the name is taken
            raise NameTaken(naming.asset(asset_id)) from exc
        return RayChild(handle)

    def share(self, data: Any) -> Any:
        import ray

        return ray.put(data)


__all__ = ["ChildDied", "ChildFactory", "ChildHandle", "NameTaken", "RayChild", "RayChildren"]
