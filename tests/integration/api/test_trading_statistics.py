"""``GET /api/statistics``: trading statistics per portfolio and per asset (equity,
realized and unrealized P&L, max drawdown, trades, win rate, filled orders), computed from
the ledger the engine wrote, as exact decimal strings, for the caller's own portfolios
(admins: all), on SQLite and PostgreSQL. The engine's own statistic rows stay reachable
at ``/api/statistics/records``. Before, ``/api/statistics`` listed only those rows, with
no trading figure at all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from persistence.enums import Role
from persistence.records import AuditContext, OrderIntent, PositionClose, PositionOpen
from tests.integration.api.conftest import Gateway, UserSession

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _portfolio(gateway: Gateway, owner: UserSession, name: str, symbols: list[str]) -> tuple[int, list[int]]:
    resp = gateway.client.post("/api/portfolios", headers=owner.headers, json={"name": name, "total_capital": "10000"})
    assert resp.status_code == 201, resp.text
    pid = resp.json()["id"]
    assets = []
    for symbol in symbols:
        resp = gateway.client.post(f"/api/portfolios/{pid}/assets", headers=owner.headers, json={"symbol": symbol})
        assert resp.status_code == 201, resp.text
        assets.append(resp.json()["id"])
    return pid, assets


def _trade(gateway: Gateway, pid: int, aid: int, key: str, *, pnl: str | None, close_at: datetime | None = None,
           mark: str | None = None) -> None:
    """An opening order filled, its position, then a close with ``pnl`` (or a mark)."""
    system = AuditContext.system()
    gateway.store.record_order_intent(system, OrderIntent(
        client_order_id=key, portfolio_id=pid, asset_id=aid, side="buy", quantity=Decimal("1000")))
    # As the engine records it: an opening order the broker filled is "open" (its position is).
    gateway.store.mark_order_open(system, key, {"filled_price": Decimal("1.1"), "broker_order_id": f"b-{key}"})
    position = gateway.store.open_position(system, PositionOpen(
        portfolio_id=pid, asset_id=aid, opening_client_order_id=key, side="buy", quantity=Decimal("1000"),
        entry_price=Decimal("1.1")))
    if pnl is not None:
        gateway.store.close_position(system, position.id, PositionClose(
            close_price=Decimal("1.2"), realized_pnl=Decimal(pnl), closed_at=close_at))
    elif mark is not None:
        gateway.store.update_position_price(system, position.id, current_price=Decimal("1.09"),
                                            unrealized_pnl=Decimal(mark))


def _stats(gateway: Gateway, who: UserSession, **params: Any) -> dict[str, Any]:
    resp = gateway.client.get("/api/statistics", headers=who.headers, params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _money(figures: dict[str, Any], key: str) -> Decimal:
    value = figures[key]
    assert isinstance(value, str) and "E" not in value, (key, value)  # exact decimal text
    return Decimal(value)


def test_trading_statistics_per_portfolio_and_asset(gateway: Gateway) -> None:
    gateway.make_user("alice")
    gateway.make_user("bob")
    gateway.make_user("root", role=Role.ADMIN)
    alice, bob, root = gateway.login("alice"), gateway.login("bob"), gateway.login("root")
    pid, (a, b) = _portfolio(gateway, alice, "alpha", ["EURUSD", "GBPUSD"])
    bob_pid, _ = _portfolio(gateway, bob, "beta", ["USDJPY"])
    # In close order: A +100, B +30, A -250, A +50; B also holds an open position at -20.
    _trade(gateway, pid, a, "a1", pnl="100", close_at=T0)
    _trade(gateway, pid, b, "b1", pnl="30", close_at=T0 + timedelta(minutes=1))
    _trade(gateway, pid, a, "a2", pnl="-250", close_at=T0 + timedelta(minutes=2))
    _trade(gateway, pid, a, "a3", pnl="50", close_at=T0 + timedelta(minutes=3))
    _trade(gateway, pid, b, "b2", pnl=None, mark="-20")
    # Orders the broker never executed are not counted: one refused, one still pending.
    system = AuditContext.system()
    for key in ("a-refused", "a-pending"):
        gateway.store.record_order_intent(system, OrderIntent(
            client_order_id=key, portfolio_id=pid, asset_id=a, side="buy", quantity=Decimal("1000")))
    gateway.store.mark_order_rejected(system, "a-refused", "risk: too big")

    page = _stats(gateway, alice)
    assert page["total"] == 1 and [p["portfolio_id"] for p in page["items"]] == [pid]
    (portfolio,) = page["items"]
    figures = portfolio["figures"]
    assert _money(figures, "capital") == Decimal("10000")
    assert _money(figures, "realized_pnl") == Decimal("-70")
    assert _money(figures, "unrealized_pnl") == Decimal("-20")
    assert _money(figures, "equity") == Decimal("9910")
    # Peak 10,130 (after B +30), trough 9,880 (after A -250).
    assert _money(figures, "max_drawdown") == Decimal("250")
    assert _money(figures, "max_drawdown_pct") == (Decimal(250) / Decimal(10130)).quantize(Decimal("0.000001"))
    assert (figures["trades"], figures["wins"], figures["losses"]) == (4, 3, 1)
    assert _money(figures, "win_rate") == Decimal("0.75")
    assert (figures["open_positions"], figures["orders"]) == (1, 5)

    assets = {s["asset_id"]: s for s in portfolio["assets"]}
    assert set(assets) == {a, b} and assets[a]["symbol"] == "EURUSD"
    fa, fb = assets[a]["figures"], assets[b]["figures"]
    assert (_money(fa, "realized_pnl"), _money(fa, "equity"), _money(fa, "max_drawdown")) == (
        Decimal("-100"), Decimal("-100"), Decimal("250"))
    assert (fa["trades"], fa["wins"], fa["orders"], _money(fa, "win_rate")) == (3, 2, 3, Decimal("0.666667"))
    assert (_money(fb, "realized_pnl"), _money(fb, "unrealized_pnl"), _money(fb, "equity")) == (
        Decimal("30"), Decimal("-20"), Decimal("10"))
    assert _money(fb, "max_drawdown") == Decimal("20") and _money(fb, "max_drawdown_pct") == Decimal("0.666667")
    assert (fb["trades"], fb["open_positions"], fb["orders"]) == (1, 1, 2)

    # One asset: the portfolio figures narrow to it too.
    (only_a,) = _stats(gateway, alice, asset_id=a)["items"]
    assert [s["asset_id"] for s in only_a["assets"]] == [a]
    assert only_a["figures"]["trades"] == 3 and _money(only_a["figures"], "realized_pnl") == Decimal("-100")

    # Bob sees his own (empty ledger: equity = capital, no win rate), never Alice's.
    (beta,) = _stats(gateway, bob)["items"]
    assert beta["portfolio_id"] == bob_pid and _money(beta["figures"], "equity") == Decimal("10000")
    assert beta["figures"]["trades"] == 0 and beta["figures"]["win_rate"] is None
    assert beta["figures"]["max_drawdown_pct"] is None and _money(beta["figures"], "max_drawdown") == 0
    assert _stats(gateway, bob, portfolio_id=pid)["items"] == []
    assert _stats(gateway, bob, asset_id=a)["items"] == []
    # The admin sees every portfolio.
    assert {p["portfolio_id"] for p in _stats(gateway, root)["items"]} >= {pid, bob_pid}


def test_statistic_records_stay_reachable_and_scoped(gateway: Gateway) -> None:
    gateway.make_user("carol")
    gateway.make_user("dave")
    carol, dave = gateway.login("carol"), gateway.login("dave")
    pid, _ = _portfolio(gateway, carol, "gamma", ["EURUSD"])
    gateway.store.record_statistic(AuditContext.system(), kind="supervisor", name="summary",
                                   value=Decimal("1.5"), portfolio_id=pid)
    mine = gateway.client.get("/api/statistics/records", headers=carol.headers)
    assert mine.status_code == 200, mine.text
    (row,) = mine.json()["items"]
    assert (row["portfolio_id"], row["kind"], row["name"], row["value"]) == (pid, "supervisor", "summary", "1.50000000")
    theirs = gateway.client.get("/api/statistics/records", headers=dave.headers, params={"portfolio_id": pid})
    assert theirs.status_code == 200 and theirs.json()["items"] == []
