"""Statistics, billing, key/value config, backtest runs and results, audit-only events."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from engine.errors import DomainError, NotFound
from engine.types import ensure_utc, to_decimal, utcnow
from persistence.enums import BacktestStatus
from persistence.models import (
    Asset,
    BacktestResult,
    BacktestRun,
    BillingRecord,
    ConfigEntry,
    Statistic,
    User,
)
from persistence.records import (
    AuditContext,
    AuditRecord,
    BacktestResultCreate,
    BacktestResultRecord,
    BacktestRunCreate,
    BacktestRunRecord,
    BillingRecordView,
    ConfigRecord,
    StatisticRecord,
)
from persistence.store._replay import nothing, target_record
from persistence.store._unit import Change, UnitOfWork, coerce, may_touch, write_op

_statistic_replay = target_record(Statistic, StatisticRecord)
_billing_replay = target_record(BillingRecord, BillingRecordView)
_config_replay = target_record(ConfigEntry, ConfigRecord, int_key=False)
_run_replay = target_record(BacktestRun, BacktestRunRecord)
_result_replay = target_record(BacktestResult, BacktestResultRecord)

_BACKTEST_TRANSITIONS: dict[BacktestStatus, frozenset[BacktestStatus]] = {
    BacktestStatus.QUEUED: frozenset(
        {BacktestStatus.RUNNING, BacktestStatus.FAILED, BacktestStatus.CANCELLED}
    ),
    BacktestStatus.RUNNING: frozenset(
        {BacktestStatus.COMPLETED, BacktestStatus.FAILED, BacktestStatus.CANCELLED}
    ),
    BacktestStatus.COMPLETED: frozenset(),
    BacktestStatus.FAILED: frozenset(),
    BacktestStatus.CANCELLED: frozenset(),
}


def _require_admin(ctx: AuditContext, what: str) -> None:
    if not (ctx.is_system or ctx.is_admin):
        raise DomainError(f"{what}: only an administrator may do this")


class RecordOps(UnitOfWork):
    # ------------------------------------------------------------------ audit only

    @write_op("audit")
    def audit(
        self,
        ctx: AuditContext,
        action: str,
        *,
        target_type: str | None = None,
        target_id: str | int | None = None,
        details: dict[str, Any] | None = None,
        aggregate: bool = False,
    ) -> AuditRecord:
        """Record an event that changes no other table (failed login, 401/403, ...).

        ``aggregate=True`` (repeated authentication failures): events with the same
        action, user, ip, target and details within a minute share one row, whose
        ``count`` this adds one to (``persistence.store._audit``); the record returned
        is that row as it now stands."""
        if not action or len(action) > 64:
            raise DomainError("action: must be 1 to 64 characters")

        def apply(session: Session) -> Change[AuditRecord]:
            # The unit of work inserts (or counts into) the row; its record is the result.
            return Change(
                None,  # type: ignore[arg-type]
                action,
                target_type,
                target_id,
                dict(details or {}),
                finish=lambda record: record,
                aggregate=aggregate,
            )

        return self._run(ctx, apply, self._replay_audit)

    # ------------------------------------------------------------------ statistics

    @write_op("statistics")
    def record_statistic(
        self,
        ctx: AuditContext,
        *,
        kind: str,
        name: str,
        values: dict[str, Any] | None = None,
        value: Decimal | float | str | int | None = None,
        portfolio_id: int | None = None,
        asset_id: int | None = None,
    ) -> StatisticRecord:
        """Store a named set of figures for a portfolio, an asset, or the engine."""
        if not kind or not name:
            raise DomainError("statistic: kind and name must not be empty")
        try:
            number = to_decimal(value)
        except ValueError as exc:
            raise DomainError(f"value: {exc}") from None
        if number is not None and not number.is_finite():
            raise DomainError(f"value: must be finite, got {value!r}")

        def apply(session: Session) -> Change[StatisticRecord]:
            pid = portfolio_id
            if asset_id is not None:
                asset = session.get(Asset, asset_id)
                if asset is None:
                    raise NotFound(f"asset {asset_id} not found")
                if pid is not None and pid != asset.portfolio_id:
                    raise DomainError(f"asset {asset_id} is not in portfolio {pid}")
                pid = asset.portfolio_id
            if pid is not None:
                self._portfolio_for(session, ctx, pid)
            elif not (ctx.is_system or ctx.is_admin):
                raise DomainError("statistic: engine-wide statistics are written by the engine")
            row = Statistic(
                portfolio_id=pid, asset_id=asset_id, kind=kind, name=name, value=number,
                values=dict(values or {}),
            )
            session.add(row)
            session.flush()
            return Change(
                StatisticRecord.model_validate(row),
                "statistic.record",
                "statistic",
                row.id,
                {"kind": kind, "name": name, "portfolio_id": pid, "asset_id": asset_id},
            )

        return self._run(ctx, apply, _statistic_replay)

    # ------------------------------------------------------------------ billing

    @write_op("billing")
    def record_billing(
        self,
        ctx: AuditContext,
        *,
        user_id: int,
        kind: str,
        amount: Decimal | float | str | int,
        currency: str = "USD",
        description: str = "",
        period_start: datetime | None = None,
        period_end: datetime | None = None,
        details: dict[str, Any] | None = None,
    ) -> BillingRecordView:
        """Charge (positive) or credit (negative) a user."""
        _require_admin(ctx, "record_billing")
        try:
            money = to_decimal(amount)
        except ValueError as exc:
            raise DomainError(f"amount: {exc}") from None
        if money is None or not money.is_finite():
            raise DomainError(f"amount: must be a finite number, got {amount!r}")
        if not kind or len(currency) == 0 or len(currency) > 8:
            raise DomainError("billing: kind must not be empty and currency must be 1-8 letters")
        start = None if period_start is None else ensure_utc(period_start)
        end = None if period_end is None else ensure_utc(period_end)
        if start is not None and end is not None and end < start:
            raise DomainError("period_end: must not be before period_start")

        def apply(session: Session) -> Change[BillingRecordView]:
            if session.get(User, user_id) is None:
                raise NotFound(f"user {user_id} not found")
            row = BillingRecord(
                user_id=user_id, kind=kind, amount=money, currency=currency.upper(),
                description=description, period_start=start, period_end=end,
                details=dict(details or {}),
            )
            session.add(row)
            session.flush()
            return Change(
                BillingRecordView.model_validate(row),
                "billing.record",
                "billing",
                row.id,
                {"user_id": user_id, "kind": kind, "amount": str(money), "currency": row.currency},
            )

        return self._run(ctx, apply, _billing_replay)

    # ------------------------------------------------------------------ config

    @write_op("config")
    def set_config(self, ctx: AuditContext, key: str, value: Any) -> ConfigRecord:
        """Create or replace a stored configuration value (admin)."""
        _require_admin(ctx, "set_config")
        if not key or len(key) > 128:
            raise DomainError("key: must be 1 to 128 characters")

        def apply(session: Session) -> Change[ConfigRecord]:
            row = session.get(ConfigEntry, key)
            created = row is None
            if row is None:
                row = ConfigEntry(key=key, value=value)
                session.add(row)
            else:
                row.value = value
                row.updated_at = utcnow()
            session.flush()
            # The value itself is not copied into the audit row: it may be a secret.
            return Change(
                ConfigRecord.model_validate(row), "config.set", "config", key, {"created": created}
            )

        return self._run(ctx, apply, _config_replay)

    @write_op("config")
    def delete_config(self, ctx: AuditContext, key: str) -> None:
        _require_admin(ctx, "delete_config")

        def apply(session: Session) -> Change[None]:
            row = session.get(ConfigEntry, key)
            if row is None:
                raise NotFound(f"config key {key!r} not found")
            session.delete(row)
            return Change(None, "config.delete", "config", key, {})

        self._run(ctx, apply, nothing)

    # ------------------------------------------------------------------ backtests

    @write_op("backtests")
    def create_backtest_run(
        self,
        ctx: AuditContext,
        spec: BacktestRunCreate | dict[str, Any],
        *,
        owner_id: int | None = None,
    ) -> BacktestRunRecord:
        """Record a backtest request (status ``queued``)."""
        spec = coerce(BacktestRunCreate, spec, "backtest")
        owner = owner_id if owner_id is not None else ctx.user_id
        if owner != ctx.user_id and not (ctx.is_system or ctx.is_admin):
            raise DomainError("owner_id: only an administrator may start backtests for another user")

        def apply(session: Session) -> Change[BacktestRunRecord]:
            if owner is not None and session.get(User, owner) is None:
                raise NotFound(f"user {owner} not found")
            run = BacktestRun(owner_id=owner, status=BacktestStatus.QUEUED.value, **spec.model_dump())
            session.add(run)
            session.flush()
            return Change(
                BacktestRunRecord.model_validate(run),
                "backtest.create",
                "backtest_run",
                run.id,
                {"strategy_plugin": spec.strategy_plugin, "total_jobs": spec.total_jobs},
            )

        return self._run(ctx, apply, _run_replay)

    def _run_for(self, session: Session, ctx: AuditContext, run_id: int) -> BacktestRun:
        run = session.get(BacktestRun, run_id)
        if run is None or not may_touch(ctx, run.owner_id):
            raise NotFound(f"backtest run {run_id} not found")
        return run

    @write_op("backtests")
    def update_backtest_run(
        self,
        ctx: AuditContext,
        run_id: int,
        *,
        status: BacktestStatus | str | None = None,
        completed_jobs: int | None = None,
        total_jobs: int | None = None,
        output_dir: str | None = None,
        error: str | None = None,
    ) -> BacktestRunRecord:
        """Progress and status of a run (queued -> running -> completed|failed|cancelled)."""
        try:
            new_status = None if status is None else BacktestStatus(status)
        except ValueError:
            raise DomainError(
                f"status: {status!r} is not one of {', '.join(s.value for s in BacktestStatus)}"
            ) from None
        if completed_jobs is not None and completed_jobs < 0:
            raise DomainError("completed_jobs: must be >= 0")

        def apply(session: Session) -> Change[BacktestRunRecord]:
            run = self._run_for(session, ctx, run_id)
            details: dict[str, Any] = {}
            if new_status is not None and new_status.value != run.status:
                current = BacktestStatus(run.status)
                if new_status not in _BACKTEST_TRANSITIONS[current]:
                    raise DomainError(
                        f"backtest run {run_id}: cannot go from {current.value} to {new_status.value}"
                    )
                details["status"] = {"from": current.value, "to": new_status.value}
                run.status = new_status.value
                if new_status is BacktestStatus.RUNNING:
                    run.started_at = utcnow()
                elif new_status in _BACKTEST_TRANSITIONS[BacktestStatus.RUNNING]:
                    run.finished_at = utcnow()
            if total_jobs is not None:
                run.total_jobs = total_jobs
            if completed_jobs is not None:
                run.completed_jobs = completed_jobs
                details["completed_jobs"] = completed_jobs
            if output_dir is not None:
                run.output_dir = output_dir
            if error is not None:
                run.error = error
                details["error"] = error[:200]
            session.flush()
            return Change(
                BacktestRunRecord.model_validate(run), "backtest.update", "backtest_run", run_id, details
            )

        return self._run(ctx, apply, _run_replay)

    @write_op("backtests")
    def record_backtest_result(
        self, ctx: AuditContext, run_id: int, spec: BacktestResultCreate | dict[str, Any]
    ) -> BacktestResultRecord:
        """Store one job's statistics and output paths."""
        spec = coerce(BacktestResultCreate, spec, "backtest result")

        def apply(session: Session) -> Change[BacktestResultRecord]:
            self._run_for(session, ctx, run_id)
            row = BacktestResult(run_id=run_id, **spec.model_dump())
            session.add(row)
            session.flush()
            return Change(
                BacktestResultRecord.model_validate(row),
                "backtest.result",
                "backtest_result",
                row.id,
                {"run_id": run_id, "data_path": spec.data_path, "trades_count": spec.trades_count},
            )

        return self._run(ctx, apply, _result_replay)

