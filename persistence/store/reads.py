"""Reads: records (never ORM rows), filters, pagination and owner scoping.

``viewer=None`` is the engine (sees everything); a ``Viewer`` that is not an admin sees
only what belongs to that user, and gets NotFound for anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from engine.errors import NotFound
from engine.types import ensure_utc, utcnow
from persistence.enums import AssetStatus, BacktestStatus, OrderStatus, Role
from persistence.models import (
    Asset,
    AuditLog,
    BacktestResult,
    BacktestRun,
    BillingRecord,
    ConfigEntry,
    Order,
    Portfolio,
    Position,
    Statistic,
    User,
    UserSession,
)
from persistence.records import (
    AssetRecord,
    AuditRecord,
    BacktestResultRecord,
    BacktestRunRecord,
    BillingRecordView,
    ConfigRecord,
    LoginState,
    OrderRecord,
    Page,
    PageRequest,
    PortfolioRecord,
    PositionRecord,
    SessionRecord,
    StatisticRecord,
    UserCredentials,
    UserRecord,
    Viewer,
)
from persistence.store._read_helpers import (
    LOGIN_STATE,
    ROTATION_CHAIN_LIMIT,
    USER_FIELDS,
    enum_filter,
    owned_portfolio_ids,
    retry_once_on_disconnect,
    scoped,
    time_range,
)
from persistence.store._unit import UnitOfWork

RecordT = TypeVar("RecordT", bound=BaseModel)

__all__ = ["ROTATION_CHAIN_LIMIT", "ReadOps"]


class ReadOps(UnitOfWork):
    """The Store's reads (see the module docstring)."""

    def _page(
        self,
        stmt: Select[Any],
        order_by: Sequence[Any],
        page: PageRequest | None,
        to_record: Callable[[Any], RecordT],
    ) -> Page[RecordT]:
        page = page or PageRequest()
        limit = page.capped_limit
        with self._read_sessions() as session:
            total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
            rows = session.scalars(stmt.order_by(*order_by).offset(page.offset).limit(limit)).all()
            items = [to_record(row) for row in rows]
        return Page[Any](items=items, total=int(total or 0), offset=page.offset, limit=limit)

    def _get(self, model: type[Any], key: Any, record: type[RecordT], what: str) -> RecordT:
        with self._read_sessions() as session:
            row = session.get(model, key)
            if row is None:
                raise NotFound(f"{what} {key} not found")
            return record.model_validate(row)

    # ------------------------------------------------------------------ users

    def get_user(self, user_id: int, *, viewer: Viewer | None = None) -> UserRecord:
        if scoped(viewer) and viewer.user_id != user_id:  # type: ignore[union-attr]
            raise NotFound(f"user {user_id} not found")
        return self._get(User, user_id, UserRecord, "user")

    def find_user(self, username: str) -> UserRecord | None:
        with self._read_sessions() as session:
            row = session.scalars(select(User).where(User.username == username)).first()
            return None if row is None else UserRecord.model_validate(row)

    def get_credentials(self, username: str) -> UserCredentials | None:
        """User and password hash for a login attempt; None when the user is unknown."""
        with self._read_sessions() as session:
            row = session.scalars(select(User).where(User.username == username)).first()
            if row is None:
                return None
            return UserCredentials(user=UserRecord.model_validate(row), password_hash=row.password_hash)

    def list_users(
        self, *, role: Role | str | None = None, is_active: bool | None = None, page: PageRequest | None = None
    ) -> Page[UserRecord]:
        stmt = select(User)
        if role is not None:
            stmt = stmt.where(User.role == enum_filter(Role, role, "role").value)
        if is_active is not None:
            stmt = stmt.where(User.is_active.is_(is_active))
        return self._page(stmt, [User.id], page, UserRecord.model_validate)

    def count_admins(self) -> int:
        with self._read_sessions() as session:
            return int(session.scalar(select(func.count()).where(User.role == Role.ADMIN.value)) or 0)

    def login_state(
        self, user_id: int, refresh_jti: str, *, now: datetime | None = None
    ) -> LoginState | None:
        """The user and the state of the login an access token belongs to (identified by
        the refresh session ``refresh_jti`` it was issued with), in one query; None when
        the user does not exist. See ``_login_state_statement`` for what "live" means."""
        at = ensure_utc(now) if now is not None else utcnow()
        # A Core statement on a plain connection: no ORM session to build for one row.
        with self._read_sessions.kw["bind"].connect() as conn:
            row = conn.execute(LOGIN_STATE, {"user_id": user_id, "rjti": refresh_jti, "now": at}).first()
        if row is None:
            return None
        user = UserRecord.model_validate(dict(zip(USER_FIELDS, row, strict=False)))
        return LoginState(user=user, session_family=row.session_family, session_live=bool(row.session_live))

    def get_session(self, jti: str) -> SessionRecord | None:
        with self._read_sessions() as session:
            row = session.scalars(select(UserSession).where(UserSession.jti == jti)).first()
            return None if row is None else SessionRecord.model_validate(row)

    # ------------------------------------------------------------------ audit

    def list_audit_logs(
        self,
        *,
        viewer: Viewer | None = None,
        user_id: int | None = None,
        action: str | None = None,
        target_type: str | None = None,
        target_id: str | int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page: PageRequest | None = None,
    ) -> Page[AuditRecord]:
        """Newest first. A non-admin viewer sees only rows about their own actions."""
        stmt = select(AuditLog)
        if scoped(viewer):
            stmt = stmt.where(AuditLog.user_id == viewer.user_id)  # type: ignore[union-attr]
        if user_id is not None:
            stmt = stmt.where(AuditLog.user_id == user_id)
        if action is not None:
            stmt = stmt.where(AuditLog.action == action)
        if target_type is not None:
            stmt = stmt.where(AuditLog.target_type == target_type)
        if target_id is not None:
            stmt = stmt.where(AuditLog.target_id == str(target_id))
        stmt = stmt.where(*time_range(AuditLog.created_at, since, until))
        return self._page(stmt, [AuditLog.created_at.desc(), AuditLog.id.desc()], page, AuditRecord.model_validate)

    def get_audit_by_request(self, request_id: str) -> AuditRecord | None:
        """The audit row a write with this request id produced, if it was applied."""
        with self._read_sessions() as session:
            row = session.scalars(select(AuditLog).where(AuditLog.request_id == request_id)).first()
            return None if row is None else AuditRecord.model_validate(row)

    # ------------------------------------------------------------------ portfolios

    def get_portfolio(self, portfolio_id: int, *, viewer: Viewer | None = None) -> PortfolioRecord:
        with self._read_sessions() as session:
            row = session.get(Portfolio, portfolio_id)
            if row is None or (scoped(viewer) and row.owner_id != viewer.user_id):  # type: ignore[union-attr]
                raise NotFound(f"portfolio {portfolio_id} not found")
            return PortfolioRecord.model_validate(row)

    def list_portfolios(
        self,
        *,
        viewer: Viewer | None = None,
        owner_id: int | None = None,
        is_active: bool | None = None,
        page: PageRequest | None = None,
    ) -> Page[PortfolioRecord]:
        stmt = select(Portfolio)
        if scoped(viewer):
            stmt = stmt.where(Portfolio.owner_id == viewer.user_id)  # type: ignore[union-attr]
        if owner_id is not None:
            stmt = stmt.where(Portfolio.owner_id == owner_id)
        if is_active is not None:
            stmt = stmt.where(Portfolio.is_active.is_(is_active))
        return self._page(stmt, [Portfolio.id], page, PortfolioRecord.model_validate)

    def get_asset(self, asset_id: int, *, viewer: Viewer | None = None) -> AssetRecord:
        with self._read_sessions() as session:
            row = session.get(Asset, asset_id)
            if row is not None and scoped(viewer):
                owner = session.scalar(select(Portfolio.owner_id).where(Portfolio.id == row.portfolio_id))
                if owner != viewer.user_id:  # type: ignore[union-attr]
                    row = None
            if row is None:
                raise NotFound(f"asset {asset_id} not found")
            return AssetRecord.model_validate(row)

    def list_assets(
        self,
        *,
        viewer: Viewer | None = None,
        portfolio_id: int | None = None,
        is_active: bool | None = None,
        status: AssetStatus | str | None = None,
        page: PageRequest | None = None,
    ) -> Page[AssetRecord]:
        stmt = select(Asset)
        if scoped(viewer):
            stmt = stmt.where(Asset.portfolio_id.in_(owned_portfolio_ids(viewer)))  # type: ignore[arg-type]
        if portfolio_id is not None:
            stmt = stmt.where(Asset.portfolio_id == portfolio_id)
        if is_active is not None:
            stmt = stmt.where(Asset.is_active.is_(is_active))
        if status is not None:
            stmt = stmt.where(Asset.status == enum_filter(AssetStatus, status, "status").value)
        return self._page(stmt, [Asset.id], page, AssetRecord.model_validate)

    # ------------------------------------------------------------------ orders / positions

    def get_order(self, order_id: int, *, viewer: Viewer | None = None) -> OrderRecord:
        with self._read_sessions() as session:
            row = session.get(Order, order_id)
            if row is None or (scoped(viewer) and not self._owns(session, viewer, row.portfolio_id)):
                raise NotFound(f"order {order_id} not found")
            return OrderRecord.model_validate(row)

    def get_order_by_client_id(
        self, client_order_id: str, *, viewer: Viewer | None = None
    ) -> OrderRecord | None:
        with self._read_sessions() as session:
            row = session.scalars(select(Order).where(Order.client_order_id == client_order_id)).first()
            if row is None or (scoped(viewer) and not self._owns(session, viewer, row.portfolio_id)):
                return None
            return OrderRecord.model_validate(row)

    def list_orders(
        self,
        *,
        viewer: Viewer | None = None,
        portfolio_id: int | None = None,
        asset_id: int | None = None,
        status: OrderStatus | str | Sequence[OrderStatus | str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page: PageRequest | None = None,
        newest_first: bool = True,
    ) -> Page[OrderRecord]:
        """Orders filtered by portfolio, asset, status (one or several) and creation time."""
        stmt = select(Order)
        if scoped(viewer):
            stmt = stmt.where(Order.portfolio_id.in_(owned_portfolio_ids(viewer)))  # type: ignore[arg-type]
        if portfolio_id is not None:
            stmt = stmt.where(Order.portfolio_id == portfolio_id)
        if asset_id is not None:
            stmt = stmt.where(Order.asset_id == asset_id)
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            stmt = stmt.where(Order.status.in_([enum_filter(OrderStatus, s, "status").value for s in wanted]))
        stmt = stmt.where(*time_range(Order.created_at, since, until))
        order = [Order.created_at.desc(), Order.id.desc()] if newest_first else [Order.created_at, Order.id]
        return self._page(stmt, order, page, OrderRecord.model_validate)

    def get_position(self, position_id: int, *, viewer: Viewer | None = None) -> PositionRecord:
        with self._read_sessions() as session:
            row = session.get(Position, position_id)
            if row is None or (scoped(viewer) and not self._owns(session, viewer, row.portfolio_id)):
                raise NotFound(f"position {position_id} not found")
            return PositionRecord.model_validate(row)

    def list_positions(
        self,
        *,
        viewer: Viewer | None = None,
        portfolio_id: int | None = None,
        asset_id: int | None = None,
        is_open: bool | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page: PageRequest | None = None,
    ) -> Page[PositionRecord]:
        """Positions filtered by portfolio, asset, open flag and opening time, newest first."""
        stmt = select(Position)
        if scoped(viewer):
            stmt = stmt.where(Position.portfolio_id.in_(owned_portfolio_ids(viewer)))  # type: ignore[arg-type]
        if portfolio_id is not None:
            stmt = stmt.where(Position.portfolio_id == portfolio_id)
        if asset_id is not None:
            stmt = stmt.where(Position.asset_id == asset_id)
        if is_open is not None:
            stmt = stmt.where(Position.is_open.is_(is_open))
        stmt = stmt.where(*time_range(Position.opened_at, since, until))
        return self._page(
            stmt, [Position.opened_at.desc(), Position.id.desc()], page, PositionRecord.model_validate
        )

    def open_positions(self, asset_id: int) -> list[PositionRecord]:
        """Every open position of an asset (what an asset actor rebuilds after a restart)."""
        with self._read_sessions() as session:
            rows = session.scalars(
                select(Position).where(Position.asset_id == asset_id, Position.is_open.is_(True)).order_by(Position.id)
            ).all()
            return [PositionRecord.model_validate(r) for r in rows]

    def pending_orders(self, asset_id: int) -> list[OrderRecord]:
        """Intents not yet resolved (``pending``) for an asset, oldest first: what must be
        reconciled with the broker after a restart before any new decision."""
        with self._read_sessions() as session:
            rows = session.scalars(
                select(Order)
                .where(Order.asset_id == asset_id, Order.status == OrderStatus.PENDING.value)
                .order_by(Order.id)
            ).all()
            return [OrderRecord.model_validate(r) for r in rows]

    # ------------------------------------------------------------------ statistics, billing, config

    def list_statistics(
        self,
        *,
        viewer: Viewer | None = None,
        portfolio_id: int | None = None,
        asset_id: int | None = None,
        kind: str | None = None,
        name: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page: PageRequest | None = None,
    ) -> Page[StatisticRecord]:
        stmt = select(Statistic)
        if scoped(viewer):
            stmt = stmt.where(Statistic.portfolio_id.in_(owned_portfolio_ids(viewer)))  # type: ignore[arg-type]
        if portfolio_id is not None:
            stmt = stmt.where(Statistic.portfolio_id == portfolio_id)
        if asset_id is not None:
            stmt = stmt.where(Statistic.asset_id == asset_id)
        if kind is not None:
            stmt = stmt.where(Statistic.kind == kind)
        if name is not None:
            stmt = stmt.where(Statistic.name == name)
        stmt = stmt.where(*time_range(Statistic.created_at, since, until))
        return self._page(
            stmt, [Statistic.created_at.desc(), Statistic.id.desc()], page, StatisticRecord.model_validate
        )

    def list_billing(
        self,
        *,
        viewer: Viewer | None = None,
        user_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page: PageRequest | None = None,
    ) -> Page[BillingRecordView]:
        stmt = select(BillingRecord)
        if scoped(viewer):
            stmt = stmt.where(BillingRecord.user_id == viewer.user_id)  # type: ignore[union-attr]
        if user_id is not None:
            stmt = stmt.where(BillingRecord.user_id == user_id)
        stmt = stmt.where(*time_range(BillingRecord.created_at, since, until))
        return self._page(
            stmt, [BillingRecord.created_at.desc(), BillingRecord.id.desc()], page, BillingRecordView.model_validate
        )

    def get_config(self, key: str) -> ConfigRecord | None:
        with self._read_sessions() as session:
            row = session.get(ConfigEntry, key)
            return None if row is None else ConfigRecord.model_validate(row)

    def list_config(self) -> list[ConfigRecord]:
        with self._read_sessions() as session:
            rows = session.scalars(select(ConfigEntry).order_by(ConfigEntry.key)).all()
            return [ConfigRecord.model_validate(r) for r in rows]

    # ------------------------------------------------------------------ backtests

    def get_backtest_run(self, run_id: int, *, viewer: Viewer | None = None) -> BacktestRunRecord:
        with self._read_sessions() as session:
            row = session.get(BacktestRun, run_id)
            if row is None or (scoped(viewer) and row.owner_id != viewer.user_id):  # type: ignore[union-attr]
                raise NotFound(f"backtest run {run_id} not found")
            return BacktestRunRecord.model_validate(row)

    def list_backtest_runs(
        self,
        *,
        viewer: Viewer | None = None,
        status: BacktestStatus | str | None = None,
        page: PageRequest | None = None,
    ) -> Page[BacktestRunRecord]:
        stmt = select(BacktestRun)
        if scoped(viewer):
            stmt = stmt.where(BacktestRun.owner_id == viewer.user_id)  # type: ignore[union-attr]
        if status is not None:
            stmt = stmt.where(BacktestRun.status == enum_filter(BacktestStatus, status, "status").value)
        return self._page(
            stmt, [BacktestRun.created_at.desc(), BacktestRun.id.desc()], page, BacktestRunRecord.model_validate
        )

    def list_backtest_results(
        self, run_id: int, *, viewer: Viewer | None = None
    ) -> list[BacktestResultRecord]:
        self.get_backtest_run(run_id, viewer=viewer)  # NotFound if not visible
        with self._read_sessions() as session:
            rows = session.scalars(
                select(BacktestResult).where(BacktestResult.run_id == run_id).order_by(BacktestResult.id)
            ).all()
            return [BacktestResultRecord.model_validate(r) for r in rows]

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _owns(session: Session, viewer: Viewer | None, portfolio_id: int) -> bool:
        if viewer is None or viewer.is_admin:
            return True
        owner = session.scalar(select(Portfolio.owner_id).where(Portfolio.id == portfolio_id))
        return owner == viewer.user_id


for _name, _method in list(vars(ReadOps).items()):
    if not _name.startswith("_") and callable(_method):
        setattr(ReadOps, _name, retry_once_on_disconnect(_method))
