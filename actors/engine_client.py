"""``EngineClient``: the running engine as the API gateway sees it (``api.engine_handle``).

A small client object like Ray Serve's: it wraps the runtime's actor handles, puts a
timeout on every call and turns ``RayActorError``, timeouts and unexpected failures
inside an actor into ``TemporaryError`` (503 at the gateway), while our own errors raised
in an actor (``NotFound``, ``DomainError``) reach the gateway as themselves. Its ``store``
has the ``persistence.Store`` interface: reads go to the database directly, writes go
through the persistence actor (the only writer), so an API write is acknowledged only
after its commit and carries its audit row (INT-08).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from actors.errors import public_reason_of, root_cause
from actors.runtime import EngineRuntime
from engine.errors import DomainError, LTSError, TemporaryError

logger = logging.getLogger(__name__)

# How long activation waits for a new supervisor's process to answer (a fresh Ray worker
# imports the engine first: seconds on a loaded machine).
_SUPERVISOR_START_TIMEOUT_S = 30.0


def get_for_gateway(ref: Any, what: str, timeout_s: float, data_dir: Any = None) -> Any:
    """``ray.get`` with the gateway's error contract (``api.engine_handle``): our own
    errors raised inside an actor come back as themselves (``NotFound`` 404,
    ``DomainError`` 409, ...), with their message as clients may see it (one line, no
    server paths or addresses: ``actors.errors``); a dead actor, a timeout, or an
    unexpected failure inside the engine is a ``TemporaryError`` (503) — never a raw Ray
    exception, whose text is the remote traceback and which the gateway could only
    answer with a 500 (after a committed change, for a config PATCH whose reload timed
    out)."""
    try:
        return ray.get(ref, timeout=timeout_s)
    except GetTimeoutError as exc:
        raise TemporaryError(f"{what}: no answer within {timeout_s:g} s") from exc
    except RayActorError as exc:  # also a task error caused by a dead actor further down
        raise TemporaryError(f"{what}: actor unavailable") from exc
    except RayTaskError as exc:
        cause = root_cause(exc)  # through every actor hop (gateway -> supervisor -> asset)
        if isinstance(cause, RayActorError):
            raise TemporaryError(f"{what}: actor unavailable") from None
        if isinstance(cause, LTSError):
            raise _public_copy(cause, data_dir) from None
        if isinstance(cause, TimeoutError):  # asyncio.wait_for inside the actor
            raise TemporaryError(f"{what}: timed out inside the engine") from None
        logger.error("%s failed inside the engine: %s", what, exc)
        raise TemporaryError(f"{what}: failed inside the engine ({type(cause).__name__})") from None


def _public_copy(exc: LTSError, data_dir: Any) -> LTSError:
    """``exc`` (same class, so the gateway maps it to the same status) with the message
    clients may see; a class that cannot be rebuilt from a message becomes a DomainError."""
    message = public_reason_of(exc, data_dir=data_dir)
    try:
        copy = type(exc)(message)
    except Exception:  # noqa: BLE001 - a constructor with other arguments
        return DomainError(message)
    return copy if isinstance(copy, LTSError) else DomainError(message)


class ActorStore:
    """``Store`` interface: write operations through the persistence actor, reads local."""

    def __init__(self, read_store: Any, *, namespace: str, timeout_s: float) -> None:
        from actors.persistence_actor import PersistenceClient

        self._reads = read_store
        self._client = PersistenceClient(namespace=namespace, call_timeout_s=timeout_s,
                                         give_up_after_s=3 * timeout_s)
        # Each request thread makes its own call; the persistence actor's group commit
        # batches the calls that meet there (actors.persistence_actor).
        self._ids = threading.Lock()  # the client numbers request ids; threads share it

    def __getattr__(self, name: str) -> Any:
        from actors.persistence_actor import raise_for_outcome
        from persistence.store import WRITE_OPS

        if name in WRITE_OPS:
            def write(ctx: Any, *args: Any, **kwargs: Any) -> Any:
                with self._ids:
                    request = self._client.request(name, ctx, *args, **kwargs)
                try:
                    (outcome,) = self._client.write_many_sync([request])
                except (GetTimeoutError, RayActorError) as exc:
                    raise TemporaryError(f"persistence actor unavailable: {type(exc).__name__}") from exc
                except RayTaskError as exc:  # an error the actor raised (resends exhausted)
                    logger.warning("write %s failed in the persistence actor: %s", name, exc)
                    cause = root_cause(exc)
                    if isinstance(cause, LTSError):
                        raise _public_copy(cause, None) from None
                    raise TemporaryError(f"persistence actor: failed ({type(cause).__name__})") from None
                return raise_for_outcome(outcome)

            return write
        return getattr(self._reads, name)


class EngineClient:
    """Implements ``api.engine_handle.EngineHandle`` over an ``EngineRuntime``."""

    def __init__(self, runtime: EngineRuntime) -> None:
        self._runtime = runtime
        self._timeout_s = runtime.timeout_s
        self._data_dir = runtime.config.get("data_dir")
        self.store: Any = ActorStore(runtime.store, namespace=runtime.namespace, timeout_s=runtime.timeout_s) \
            if runtime.persistence is not None else runtime.store
        self._launcher: Any = None  # BacktestLauncher, made on the first submitted batch

    def _get(self, ref: Any, what: str, timeout_s: float | None = None) -> Any:
        return get_for_gateway(ref, what, timeout_s or self._timeout_s, self._data_dir)

    def activate_portfolio(self, portfolio_id: int) -> None:
        """Start the supervisor and wait until its process answers, so a supervisor that
        cannot start is a 503 (the gateway then rolls the activation back) rather than a
        silent no-op."""
        handle = self._runtime.activate_portfolio(portfolio_id)
        try:
            self._get(handle.ping.remote(), f"portfolio {portfolio_id}: supervisor start",
                      max(self._timeout_s, _SUPERVISOR_START_TIMEOUT_S))
        except TemporaryError:
            # Forget and kill it: Ray would otherwise keep re-running a failing constructor.
            self._runtime.supervisors.pop(portfolio_id, None)
            ray.kill(handle, no_restart=True)
            raise

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
        # The supervisor bounds the step by step_timeout_s; the margin covers the hops.
        return self._get(handle.step_asset.remote(asset_id), f"asset {asset_id}: step", self._timeout_s + 5)

    def status(self) -> dict[str, Any]:
        return self._runtime.status()

    def submit_backtest(self, *, run_id: int, plan: Any, out_dir: str, ctx: Any,
                        rank_by: str = "total_return") -> None:
        """Run an API-submitted batch of backtests as Ray tasks on the engine's cluster, in
        the background; progress and results are written through ``self.store`` (the
        persistence actor), so ``GET /api/backtests/{id}`` follows it."""
        if self._launcher is None:
            from actors.backtests.launcher import BacktestLauncher

            self._launcher = BacktestLauncher(self.store, data_dir=self._data_dir)
        self._launcher.submit_backtest(run_id=run_id, plan=plan, out_dir=out_dir, ctx=ctx, rank_by=rank_by)

    def shutdown(self) -> None:
        """Stop background batches (what finished is kept); the runtime is stopped by its owner."""
        if self._launcher is not None:
            self._launcher.shutdown(wait=True)
            self._launcher = None
