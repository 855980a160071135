"""Test data and engine start-up shared by the actor-runtime integration tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd


def write_ohlc_csv(source: Path, target: Path, rows: slice) -> Path:
    """A ``DATE_TIME,OPEN,HIGH,LOW,CLOSE`` copy of a slice of a backtesting-package CSV."""
    frame = pd.read_csv(source, index_col=0, parse_dates=True).iloc[rows]
    out = pd.DataFrame({
        "DATE_TIME": pd.DatetimeIndex(frame.index).strftime("%Y-%m-%d %H:%M:%S"),
        "OPEN": frame["Open"], "HIGH": frame["High"], "LOW": frame["Low"], "CLOSE": frame["Close"],
    })
    out.to_csv(target, index=False)
    return target


def seed_portfolio(store: Any, assets: list[dict[str, Any]], *, username: str | None = None,
                   total_capital: str = "30000", latency: float | None = None) -> tuple[int, list[int]]:
    """A user, an active portfolio and its active assets, through the Store."""
    from persistence.records import AssetCreate, AuditContext, PortfolioCreate

    system = AuditContext.system()
    user = store.create_user(system, username=username or f"u{uuid.uuid4().hex[:8]}",
                             password_hash="$2b$12$" + "x" * 53)
    portfolio = store.create_portfolio(system, PortfolioCreate(
        name=f"p-{uuid.uuid4().hex[:6]}", total_capital=Decimal(total_capital), latency=latency), owner_id=user.id)
    ids = []
    for spec in assets:
        asset = store.create_asset(system, portfolio.id, AssetCreate(**spec))
        store.activate_asset(system, asset.id)
        ids.append(asset.id)
    store.activate_portfolio(system, portfolio.id)
    return portfolio.id, ids


def engine_config(database_url: str, data_dir: Path, **overrides: Any) -> dict[str, Any]:
    """Config for an ``EngineRuntime`` in its own Ray namespace (tests share one cluster)."""
    from engine.config.defaults import DEFAULT_VALUES

    config = dict(DEFAULT_VALUES)
    config.update({
        "database_url": database_url, "data_dir": str(data_dir), "mode": "simulation",
        "global_latency": 0.0, "ray_namespace": f"t{uuid.uuid4().hex[:10]}", "step_timeout_s": 10.0,
    })
    config.update(overrides)
    return config


def all_orders(store: Any, asset_id: int) -> list[Any]:
    """Every order of an asset, page by page (a long run has more than one page)."""
    from persistence.records import PageRequest

    orders: list[Any] = []
    while True:
        page = store.list_orders(asset_id=asset_id, page=PageRequest(offset=len(orders), limit=500)).items
        orders.extend(page)
        if len(page) < 500:
            return orders


@contextmanager
def running_engine(config: dict[str, Any]) -> Iterator[Any]:
    """An ``EngineRuntime`` started on the shared Ray session, stopped afterwards."""
    from actors.runtime import EngineRuntime

    runtime = EngineRuntime(config)
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop()


def wait_for(predicate: Callable[[], Any], timeout_s: float, interval_s: float = 0.2, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def answer_or_none(call: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    """``ray.get(call())``, or None while the actor cannot answer: it is restarting
    (``ActorUnavailableError``, a ``RayActorError``), or it did not answer within
    ``timeout_s``. For waits that poll an actor Ray is bringing back."""
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError

    try:
        return ray.get(call(), timeout=timeout_s)
    except (RayActorError, GetTimeoutError):
        return None


def assert_trades_equal_backtest(store: Any, asset_id: int, csv_path: Path, strategy: str,
                                 params: dict[str, Any], min_trades: int = 5) -> None:
    """The asset's positions in the database are the single-CSV backtest's trades over the
    same file: same count, open and close times, and realized P&L to the cent's 1e-8."""
    from engine.backtest.runner import run_backtest
    from engine.data.csv_loader import load_csv
    from persistence.records import PageRequest

    positions = sorted(store.list_positions(asset_id=asset_id, page=PageRequest(limit=500)).items,
                       key=lambda p: p.opened_at)
    expected = run_backtest(load_csv(csv_path, symbol="X"), strategy, params).trades
    assert len(positions) == len(expected) > min_trades
    for position, trade in zip(positions, expected, strict=True):
        assert (position.opened_at, position.closed_at) == (trade.entry_time, trade.exit_time)
        assert position.realized_pnl == Decimal(repr(trade.pnl)).quantize(Decimal("1e-8"))
