"""One invocation of EVERY Store write operation, with the state it needs prepared first.

``OP_CASES[name](world)`` prepares what the operation needs (through the Store) and returns
``(call, expected_action)``: ``call(ctx)`` performs exactly that one operation. The audit
tests check that this table covers every name in ``WRITE_OPS``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from engine.types import utcnow
from persistence.records import (
    AssetCreate,
    AuditContext,
    BacktestResultCreate,
    BacktestRunCreate,
    OrderFill,
    OrderIntent,
    PortfolioCreate,
    PositionClose,
    PositionOpen,
    SessionOpen,
)
from persistence.store import Store
from tests.fixtures.db_fixtures import SeededPortfolio, seed_owner_portfolio

SYSTEM = AuditContext.system()
Call = Callable[[AuditContext], Any]


@dataclass
class World:
    store: Store
    seeded: SeededPortfolio

    @property
    def owner_id(self) -> int:
        return self.seeded.owner_id

    @property
    def portfolio_id(self) -> int:
        return self.seeded.portfolio_id

    @property
    def asset_id(self) -> int:
        return self.seeded.asset_id

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    def intent(self, **overrides: Any) -> OrderIntent:
        values: dict[str, Any] = {
            "client_order_id": self.unique("coid"),
            "portfolio_id": self.portfolio_id,
            "asset_id": self.asset_id,
            "side": "buy",
            "quantity": Decimal("0.5"),
            "price": Decimal("1.1"),
        }
        values.update(overrides)
        return OrderIntent(**values)

    def pending_order(self) -> str:
        return self.store.record_order_intent(SYSTEM, self.intent()).client_order_id

    def open_position(self) -> int:
        coid = self.pending_order()
        self.store.mark_order_open(SYSTEM, coid, OrderFill(broker_order_id="b", filled_price="1.1"))
        position = self.store.open_position(
            SYSTEM,
            PositionOpen(
                portfolio_id=self.portfolio_id,
                asset_id=self.asset_id,
                opening_client_order_id=coid,
                side="buy",
                quantity="0.5",
                entry_price="1.1",
            ),
        )
        return position.id

    def session_jti(self) -> tuple[str, str]:
        jti, family = self.unique("jti"), self.unique("fam")
        self.store.create_session(
            SYSTEM, user_id=self.owner_id, jti=jti, family_id=family,
            expires_at=utcnow() + timedelta(days=1),
        )
        return jti, family

    def new_user(self) -> int:
        return self.store.create_user(SYSTEM, username=self.unique("user"), password_hash="h").id

    def inactive_portfolio(self) -> int:
        return self.store.create_portfolio(
            SYSTEM, PortfolioCreate(name=self.unique("p"), total_capital=1), owner_id=self.owner_id
        ).id

    def inactive_asset(self) -> int:
        return self.store.create_asset(SYSTEM, self.portfolio_id, AssetCreate(symbol=self.unique("S")[:20])).id

    def backtest_run(self) -> int:
        return self.store.create_backtest_run(
            SYSTEM, BacktestRunCreate(strategy_plugin="sma_cross"), owner_id=self.owner_id
        ).id


def make_world(store: Store) -> World:
    return World(store, seed_owner_portfolio(store))


def _case_rotate(w: World) -> tuple[Call, str]:
    jti, family = w.session_jti()
    return (
        lambda ctx: w.store.rotate_session(
            ctx, old_jti=jti, new_jti=w.unique("jti"), expires_at=utcnow() + timedelta(days=1),
            user_id=w.owner_id, family_id=family,
        ),
        "session.rotate",
    )


def _case_revoke(w: World) -> tuple[Call, str]:
    jti, _ = w.session_jti()
    return (lambda ctx: w.store.revoke_session(ctx, jti), "session.revoke")


def _case_revoke_family(w: World) -> tuple[Call, str]:
    _, family = w.session_jti()
    return (lambda ctx: w.store.revoke_session_family(ctx, family), "session.revoke_family")


def _case_delete_portfolio(w: World) -> tuple[Call, str]:
    pid = w.inactive_portfolio()
    return (lambda ctx: w.store.delete_portfolio(ctx, pid), "portfolio.delete")


def _case_delete_asset(w: World) -> tuple[Call, str]:
    aid = w.inactive_asset()
    return (lambda ctx: w.store.delete_asset(ctx, aid), "asset.delete")


def _case_mark(op: str, action: str) -> Callable[[World], tuple[Call, str]]:
    def case(w: World) -> tuple[Call, str]:
        coid = w.pending_order()
        fill = OrderFill(broker_order_id="b-1", filled_price="1.2", commission="0.1")
        if op in ("mark_order_open", "mark_order_filled"):
            return (lambda ctx: getattr(w.store, op)(ctx, coid, fill), action)
        return (lambda ctx: getattr(w.store, op)(ctx, coid, "test reason"), action)

    return case


def _case_close_position(w: World) -> tuple[Call, str]:
    pid = w.open_position()
    spec = PositionClose(close_price="1.2", realized_pnl="0.05", close_reason="tp")
    return (lambda ctx: w.store.close_position(ctx, pid, spec), "position.close")


def _case_mark_position(w: World) -> tuple[Call, str]:
    pid = w.open_position()
    return (lambda ctx: w.store.update_position_price(ctx, pid, current_price="1.15"), "position.mark")


def _case_open_position(w: World) -> tuple[Call, str]:
    coid = w.pending_order()
    spec = PositionOpen(
        portfolio_id=w.portfolio_id, asset_id=w.asset_id, opening_client_order_id=coid,
        side="buy", quantity="0.5", entry_price="1.1",
    )
    return (lambda ctx: w.store.open_position(ctx, spec), "position.open")


def _case_delete_config(w: World) -> tuple[Call, str]:
    key = w.unique("key")
    w.store.set_config(SYSTEM, key, {"a": 1})
    return (lambda ctx: w.store.delete_config(ctx, key), "config.delete")


def _case_update_backtest(w: World) -> tuple[Call, str]:
    run_id = w.backtest_run()
    return (lambda ctx: w.store.update_backtest_run(ctx, run_id, status="running"), "backtest.update")


def _case_backtest_result(w: World) -> tuple[Call, str]:
    run_id = w.backtest_run()
    spec = BacktestResultCreate(data_path="GOOG.csv", stats={"sharpe": "1.2"}, trades_count=3)
    return (lambda ctx: w.store.record_backtest_result(ctx, run_id, spec), "backtest.result")


OP_CASES: dict[str, Callable[[World], tuple[Call, str]]] = {
    "create_user": lambda w: (
        lambda ctx: w.store.create_user(ctx, username=w.unique("u"), password_hash="h"), "user.create"
    ),
    "set_user_role": lambda w: (lambda ctx: w.store.set_user_role(ctx, w.owner_id, "admin"), "user.role_change"),
    "set_user_active": lambda w: (
        (lambda uid: lambda ctx: w.store.set_user_active(ctx, uid, False))(w.new_user()), "user.deactivate"
    ),
    "set_password_hash": lambda w: (
        lambda ctx: w.store.set_password_hash(ctx, w.owner_id, "new-hash"), "user.password_change"
    ),
    "record_failed_login": lambda w: (
        lambda ctx: w.store.record_failed_login(ctx, w.owner_id), "auth.login_failed"
    ),
    "unlock_user": lambda w: (lambda ctx: w.store.unlock_user(ctx, w.owner_id), "user.unlock"),
    "record_login": lambda w: (
        lambda ctx: w.store.record_login(
            ctx, w.owner_id, session=SessionOpen(jti=w.unique("jti"), family_id=w.unique("fam"),
                                                 expires_at=utcnow() + timedelta(days=1)),
        ),
        "auth.login",
    ),
    "create_session": lambda w: (
        lambda ctx: w.store.create_session(
            ctx, user_id=w.owner_id, jti=w.unique("jti"), family_id="f", expires_at=utcnow() + timedelta(hours=1)
        ),
        "session.create",
    ),
    "rotate_session": _case_rotate,
    "revoke_session": _case_revoke,
    "revoke_session_family": _case_revoke_family,
    "revoke_user_sessions": lambda w: (
        lambda ctx: w.store.revoke_user_sessions(ctx, w.owner_id), "session.revoke_all"
    ),
    "create_portfolio": lambda w: (
        lambda ctx: w.store.create_portfolio(
            ctx, PortfolioCreate(name=w.unique("p"), total_capital="500.25"), owner_id=w.owner_id
        ),
        "portfolio.create",
    ),
    "update_portfolio": lambda w: (
        lambda ctx: w.store.update_portfolio(ctx, w.portfolio_id, {"description": "changed"}), "portfolio.update"
    ),
    "activate_portfolio": lambda w: (
        lambda ctx: w.store.activate_portfolio(ctx, w.portfolio_id), "portfolio.activate"
    ),
    "deactivate_portfolio": lambda w: (
        lambda ctx: w.store.deactivate_portfolio(ctx, w.portfolio_id), "portfolio.deactivate"
    ),
    "mark_portfolio_errored": lambda w: (
        lambda ctx: w.store.mark_portfolio_errored(ctx, w.portfolio_id, "boom"), "portfolio.errored"
    ),
    "delete_portfolio": _case_delete_portfolio,
    "create_asset": lambda w: (
        lambda ctx: w.store.create_asset(ctx, w.portfolio_id, AssetCreate(symbol="GBPUSD")), "asset.create"
    ),
    "update_asset": lambda w: (
        lambda ctx: w.store.update_asset(ctx, w.asset_id, {"max_positions": 3}), "asset.update"
    ),
    "set_asset_strategy": lambda w: (
        lambda ctx: w.store.set_asset_strategy(ctx, w.asset_id, plugin="sma_cross", config={"fast": 5}),
        "asset.strategy_change",
    ),
    "set_asset_broker": lambda w: (
        lambda ctx: w.store.set_asset_broker(ctx, w.asset_id, plugin="oanda_broker", config={"account": "x"}),
        "asset.broker_change",
    ),
    "set_asset_pipeline": lambda w: (
        lambda ctx: w.store.set_asset_pipeline(ctx, w.asset_id, config={"a": 1}), "asset.pipeline_change"
    ),
    "set_asset_allocation": lambda w: (
        lambda ctx: w.store.set_asset_allocation(ctx, w.asset_id, allocated_capital="2500.5", max_positions=2),
        "asset.allocation_change",
    ),
    "activate_asset": lambda w: (lambda ctx: w.store.activate_asset(ctx, w.asset_id), "asset.activate"),
    "deactivate_asset": lambda w: (lambda ctx: w.store.deactivate_asset(ctx, w.asset_id), "asset.deactivate"),
    "mark_asset_errored": lambda w: (
        lambda ctx: w.store.mark_asset_errored(ctx, w.asset_id, "too many restarts"), "asset.errored"
    ),
    "delete_asset": _case_delete_asset,
    "record_order_intent": lambda w: (lambda ctx: w.store.record_order_intent(ctx, w.intent()), "order.intent"),
    "mark_order_open": _case_mark("mark_order_open", "order.open"),
    "mark_order_filled": _case_mark("mark_order_filled", "order.fill"),
    "mark_order_rejected": _case_mark("mark_order_rejected", "order.reject"),
    "mark_order_cancelled": _case_mark("mark_order_cancelled", "order.cancel"),
    "open_position": _case_open_position,
    "close_position": _case_close_position,
    "update_position_price": _case_mark_position,
    "record_statistic": lambda w: (
        lambda ctx: w.store.record_statistic(
            ctx, kind="step", name="latency", value="0.012", values={"p99": "0.03"}, asset_id=w.asset_id
        ),
        "statistic.record",
    ),
    "record_billing": lambda w: (
        lambda ctx: w.store.record_billing(ctx, user_id=w.owner_id, kind="usage", amount="1.25"), "billing.record"
    ),
    "set_config": lambda w: (lambda ctx: w.store.set_config(ctx, w.unique("k"), [1, 2]), "config.set"),
    "delete_config": _case_delete_config,
    "create_backtest_run": lambda w: (
        lambda ctx: w.store.create_backtest_run(
            ctx, BacktestRunCreate(strategy_plugin="sma_cross", data_paths=["GOOG.csv"], total_jobs=1),
            owner_id=w.owner_id,
        ),
        "backtest.create",
    ),
    "update_backtest_run": _case_update_backtest,
    "record_backtest_result": _case_backtest_result,
    "audit": lambda w: (
        lambda ctx: w.store.audit(ctx, "auth.denied", target_type="route", target_id="/api/users"), "auth.denied"
    ),
}
