"""A restarted broker actor rebuilds a simulation account by replaying the database's
journal (``engine.pipeline.replay``): the rebuilt account has exactly the results, events
(fills, stops, targets) and open positions of the one that died, refuses ids cancelled by
reconciliation, and does not know orders still pending in the database.

The actor class runs in-process (no Ray): one instance trades, a fresh one is restored
from the order records the trades would have left in the database."""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from actors.broker_actor import BrokerActor
from engine.pipeline.replay import journal_from_records
from engine.data.market_data import MarketData
from engine.pipeline.default_pipeline import RECONCILE_CANCEL_REASON, client_order_id
from engine.types import OrderStatus

KEY = "backtrader_simulation_broker:test:asset7"
BROKER = "backtrader_simulation_broker"


def _eurusd(backtesting_data_dir: Path, bars: int) -> MarketData:
    frame = pd.read_csv(backtesting_data_dir / "EURUSD.csv", index_col=0, parse_dates=True).iloc[:bars]
    ts = pd.DatetimeIndex(frame.index).tz_localize("UTC").as_unit("ns").asi8
    return MarketData(symbol="EURUSD", timestamps=ts, open=frame["Open"].to_numpy(float),
                      high=frame["High"].to_numpy(float), low=frame["Low"].to_numpy(float),
                      close=frame["Close"].to_numpy(float))


def _record(n: int, cid: str, action: str, side: str, bar_time: datetime, status: str, *,
            position: str | None = None, params: dict[str, Any] | None = None, reason: str | None = None) -> Any:
    """What the store's ``OrderRecord`` holds for one order (the fields the journal reads)."""
    return SimpleNamespace(
        id=n, client_order_id=cid, portfolio_id=1, asset_id=7, symbol="EURUSD", action=action, side=side,
        quantity=Decimal("10000"), price=None, sl=None, tp=None, status=status, reason=reason,
        created_at=bar_time, details={"bar_time": bar_time.isoformat(), "broker_position_id": position,
                                      "params": params or {}})


async def _trade(actor: BrokerActor, data: MarketData, bars: int) -> list[Any]:
    """Open every 15 bars (alternating sides, with stop and target distances), close what
    is open every 15 bars in between; returns the order records the database would hold."""
    await actor.open_account(KEY, BROKER, {"symbol": "EURUSD"}, data, 7)
    records: list[Any] = []
    side = "buy"
    for i in range(bars):
        await actor.advance(KEY, i)
        bar_time, ns = data.time_at(i), int(data.timestamps[i])
        if i % 30 == 5:
            cid = client_order_id(7, ns, "o0")
            params = {"sl_distance": 0.0015, "tp_distance": 0.003, "reason": "test"}
            result = await actor.execute_order(KEY, "open", {"client_order_id": cid, "symbol": "EURUSD", "side": side,
                                                             "quantity": Decimal("10000"), **params})
            records.append(_record(len(records) + 1, cid, "open", side, bar_time,
                                   "rejected" if result.status is OrderStatus.REJECTED else "open", params=params))
            side = "sell" if side == "buy" else "buy"
        elif i % 30 == 20:
            for position in await actor.open_positions(KEY):
                cid = client_order_id(7, ns, f"c{position.position_id}")
                await actor.execute_order(KEY, "close", {"client_order_id": cid, "symbol": "EURUSD",
                                                         "side": "sell", "quantity": Decimal("10000"),
                                                         "position_id": position.position_id})
                records.append(_record(len(records) + 1, cid, "close", "sell", bar_time, "filled",
                                       position=position.position_id))
    return records


def test_replay_rebuilds_the_account_exactly(backtesting_data_dir: Path):
    data = _eurusd(backtesting_data_dir, 400)
    first, rebuilt = BrokerActor(), BrokerActor()

    async def scenario() -> tuple:
        records = await _trade(first, data, 300)
        # An order cancelled by reconciliation and one still pending in the database.
        refused = _record(len(records) + 1, "7-1-o0", "open", "buy", data.time_at(299), "cancelled",
                          reason=RECONCILE_CANCEL_REASON)
        pending = _record(len(records) + 2, "7-2-o0", "open", "buy", data.time_at(299), "pending")
        open_now = [SimpleNamespace(broker_position_id=p.position_id) for p in await first.open_positions(KEY)]
        journal = journal_from_records(7, [pending, refused, *reversed(records)], open_now, data, cursor=299)
        info = await rebuilt.open_account(KEY, BROKER, {"symbol": "EURUSD"}, data, 7)
        restored = await rebuilt.restore_account(KEY, journal)
        late = await rebuilt.execute_order(KEY, "open", {"client_order_id": "7-1-o0", "symbol": "EURUSD",
                                                         "side": "buy", "quantity": Decimal("1000")})
        unknown = await rebuilt.find_order(KEY, "7-2-o0")
        # Both go on from bar 300 identically.
        for i in range(300, 400):
            assert await first.advance(KEY, i) == await rebuilt.advance(KEY, i)
        return (records, info, restored, late, unknown, await first.records(KEY), await rebuilt.records(KEY),
                await first.open_positions(KEY), await rebuilt.open_positions(KEY))

    records, info, restored, late, unknown, before, after, open_before, open_after = asyncio.run(scenario())
    opened = [r for r in records if r.action == "open"]
    assert len(opened) >= 8 and any(r.action == "close" for r in records)
    assert info["attached_before"] is False and info["cursor"] == -1
    assert restored == {"cursor": 299, "finished": False, "replayed": len(records), "missing": []}
    # Same results by client order id, same broker-initiated events (fills, stops, targets), in order.
    assert after[KEY]["orders"] == before[KEY]["orders"]
    assert after[KEY]["events"] == before[KEY]["events"]
    reasons = {e.reason for e in before[KEY]["events"] if e.close_price is not None}
    assert {"sl", "tp", "signal"} <= reasons  # stops and targets were hit, not only signal closes
    assert open_after == open_before
    # The id cancelled by reconciliation never becomes an order; the pending one is unknown.
    assert late.status is OrderStatus.REJECTED and "reconciliation" in (late.reason or "")
    assert unknown is None


def test_journal_needs_the_bar_to_exist(backtesting_data_dir: Path):
    data = _eurusd(backtesting_data_dir, 50)
    stray = _record(1, "7-5-o0", "open", "buy", datetime.fromisoformat("1999-01-01T00:00:00+00:00"), "open")
    with pytest.raises(ValueError, match="no bar at 1999-01-01"):
        journal_from_records(7, [stray], [], data)


def test_journal_resumes_at_the_last_order_when_the_asset_does_not_know(backtesting_data_dir: Path):
    data = _eurusd(backtesting_data_dir, 50)
    orders = [_record(1, "a", "open", "buy", data.time_at(12), "open"),
              _record(2, "b", "close", "sell", data.time_at(31), "filled", position="P1")]
    journal = journal_from_records(7, orders, [], data)
    assert journal.cursor == 31
    assert [o.parameters.get("position_id") for o in journal.orders] == [None, "P1"]
    assert journal_from_records(7, [], [], data).cursor == -1 and not journal_from_records(7, [], [], data)


def test_journal_refuses_ids_cancelled_by_reconciliation_under_either_reason(backtesting_data_dir: Path):
    """Databases written before the reason was reworded hold the old text: those ids are
    refused too, while an order cancelled for any other reason is replayed like the rest."""
    data = _eurusd(backtesting_data_dir, 50)
    orders = [
        _record(1, "now", "open", "buy", data.time_at(5), "cancelled", reason=RECONCILE_CANCEL_REASON),
        _record(2, "legacy", "open", "buy", data.time_at(6), "cancelled",
                reason="not received by the broker before a restart"),
        _record(3, "by-broker", "open", "buy", data.time_at(7), "cancelled", reason="expired"),
    ]
    journal = journal_from_records(7, orders, [], data)
    assert journal.refused == ("now", "legacy")
    assert [o.client_order_id for o in journal.orders] == ["by-broker"]
    assert "broker had no record" in RECONCILE_CANCEL_REASON
