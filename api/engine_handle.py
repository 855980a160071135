"""The gateway's only view of the running engine: a small client object, no Ray import.

The actor runtime builds an object that satisfies :class:`EngineHandle` (it wraps the
named actors' handles, puts a timeout on every call and turns ``RayActorError`` and
timeouts into :class:`engine.errors.TemporaryError`) and passes it to
``api.app.create_app(..., engine=handle)``. Without an engine (``engine=None``) the
gateway still serves everything except ``POST /api/trading/execute``,
``GET /api/engine/status`` and ``POST /api/backtests``, which answer 503.

All methods are synchronous and may block for up to ``step_timeout_s``: the gateway
calls them from FastAPI's worker threads, never from the event loop.

Errors the gateway maps (anything else becomes a 500 with no details):

* :class:`engine.errors.NotFound` -> 404 (the engine does not know the id);
* :class:`engine.errors.TemporaryError` -> 503 (actor dead, timeout, engine stopping);
* :class:`engine.errors.DomainError` -> 409 (e.g. the asset is not active);
* other :class:`engine.errors.LTSError` -> 400 with the error's message.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from engine.backtest.plan import BacktestPlan
from persistence.records import AuditContext


@runtime_checkable
class EngineHandle(Protocol):
    """What the API needs from the actor runtime.

    ``store``: an object with ``persistence.Store``'s interface. When the engine runs,
    the runtime injects one that sends writes through the persistence actor (the only
    writer) and acknowledges them after commit; the gateway uses it for every
    state-changing request instead of its own Store.
    """

    store: Any

    def activate_portfolio(self, portfolio_id: int) -> None:
        """Start the portfolio's supervisor (idempotent: an active one is left alone).

        Called after the Store has marked the portfolio active."""
        ...

    def deactivate_portfolio(self, portfolio_id: int) -> None:
        """Stop the portfolio's supervisor after its in-flight step (idempotent)."""
        ...

    def reload_asset(self, asset_id: int) -> None:
        """Tell a running asset that its config, allocation or active flag changed in the
        database; the change takes effect on its next step. A no-op when the asset's
        portfolio is not running."""
        ...

    def execute_step(self, asset_id: int) -> dict[str, Any]:
        """Run one pipeline step for one asset now and return its result as JSON-able
        data: ``{"action": "open"|"close"|"hold", "order": {...} | None,
        "reason": str | None, ...}``."""
        ...

    def status(self) -> dict[str, Any]:
        """Engine state as JSON-able data: ``{"running": bool, "supervisors": [...],
        "assets": [{"asset_id", "state", "restarts", "last_step_at", ...}], ...}``."""
        ...

    def submit_backtest(self, *, run_id: int, plan: BacktestPlan, out_dir: str, ctx: AuditContext,
                        rank_by: str = "total_return") -> None:
        """Start the batch of backtest run ``run_id`` (already recorded as queued) in the
        background and return at once; its progress and results are written to that run's
        rows, and its report to ``out_dir``."""
        ...
