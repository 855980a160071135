"""``EngineClient``: the running engine as the API gateway sees it (``api.engine_handle``).

A small client object like Ray Serve's: it wraps the runtime's actor handles, puts a
timeout on every call and turns ``RayActorError`` / timeouts into ``TemporaryError``
(503 at the gateway). Its ``store`` has the ``persistence.Store`` interface: reads go to
the database directly, writes go through the persistence actor (the only writer), so an
API write is acknowledged only after its commit and carries its audit row (INT-08).
"""

from __future__ import annotations

import logging
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError

from actors.runtime import EngineRuntime
from engine.errors import DomainError, TemporaryError

logger = logging.getLogger(__name__)


class ActorStore:
    """``Store`` interface: write operations through the persistence actor, reads local."""

    def __init__(self, read_store: Any, *, namespace: str, timeout_s: float) -> None:
        from actors.persistence_actor import PersistenceClient

        self._reads = read_store
        # One caller per client (write order); the gateway's threads share it under a lock.
        self._client = PersistenceClient(namespace=namespace, call_timeout_s=timeout_s,
                                         give_up_after_s=3 * timeout_s)
        import threading

        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        from persistence.store import WRITE_OPS

        if name in WRITE_OPS:
            def write(ctx: Any, *args: Any, **kwargs: Any) -> Any:
                with self._lock:
                    try:
                        return self._client.write_sync(name, ctx, *args, **kwargs)
                    except (GetTimeoutError, RayActorError) as exc:
                        raise TemporaryError(f"persistence actor unavailable: {type(exc).__name__}") from exc

            return write
        return getattr(self._reads, name)


class EngineClient:
    """Implements ``api.engine_handle.EngineHandle`` over an ``EngineRuntime``."""

    def __init__(self, runtime: EngineRuntime) -> None:
        self._runtime = runtime
        self._timeout_s = runtime.timeout_s
        self.store: Any = ActorStore(runtime.store, namespace=runtime.namespace, timeout_s=runtime.timeout_s) \
            if runtime.persistence is not None else runtime.store

    def _get(self, ref: Any, what: str, timeout_s: float | None = None) -> Any:
        try:
            return ray.get(ref, timeout=timeout_s or self._timeout_s)
        except GetTimeoutError as exc:
            raise TemporaryError(f"{what}: no answer within {timeout_s or self._timeout_s:g} s") from exc
        except RayActorError as exc:
            raise TemporaryError(f"{what}: actor unavailable") from exc

    def activate_portfolio(self, portfolio_id: int) -> None:
        self._runtime.activate_portfolio(portfolio_id)

    def deactivate_portfolio(self, portfolio_id: int) -> None:
        self._runtime.deactivate_portfolio(portfolio_id)

    def reload_asset(self, asset_id: int) -> None:
        asset = self._runtime.store.get_asset(asset_id)
        handle = self._runtime.supervisor(asset.portfolio_id)
        if handle is None:
            return  # the portfolio is not running: nothing to tell
        if asset.is_active:
            self._get(handle.reload.remote(), "supervisor.reload")
        self._get(handle.reload_asset.remote(asset_id), "supervisor.reload_asset")

    def execute_step(self, asset_id: int) -> dict[str, Any]:
        asset = self._runtime.store.get_asset(asset_id)
        handle = self._runtime.supervisor(asset.portfolio_id)
        if handle is None:
            raise DomainError(f"asset {asset_id}: its portfolio {asset.portfolio_id} is not running (activate it)")
        try:
            return ray.get(handle.step_asset.remote(asset_id), timeout=self._timeout_s + 5)
        except GetTimeoutError as exc:
            raise TemporaryError(f"asset {asset_id}: step did not finish in time") from exc
        except RayActorError as exc:
            raise TemporaryError(f"asset {asset_id}: supervisor unavailable") from exc
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if hasattr(exc, "cause") else None
            if isinstance(cause, DomainError):
                raise cause from None
            raise

    def status(self) -> dict[str, Any]:
        return self._runtime.status()
