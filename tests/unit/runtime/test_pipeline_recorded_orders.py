"""The pipeline's one-call order path (``StepPorts.orders``, what the actor runtime uses:
the broker actor records the intent, then sends the order) gives the same trades as the
two-call path, never lets the broker see an order whose intent was not recorded, and
leaves an order whose call got no answer pending for reconciliation."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from engine.backtest.runner import run_backtest
from engine.brokers.simulation_broker import BacktraderSimulationBroker
from engine.errors import IntentNotRecorded, TemporaryError
from engine.pipeline.default_pipeline import DefaultPipeline, StepPorts
from engine.pipeline.ports import AssetState
from engine.plugins.loader import create_plugin
from engine.types import OrderResult
from tests.unit.runtime.test_pipeline_parity import InlineStrategy, ListJournal, SimBrokerPort, _eurusd, data_snapshot

PARAMS = {"fast": 5, "slow": 20, "stop_loss": 30, "take_profit": 60}


class RecordThenSend:
    """``RecordedOrderPort`` over the same journal and broker: records, then sends, in one
    call (as ``BrokerActor.execute_recorded`` does); can refuse intents or lose answers."""

    def __init__(self, journal: ListJournal, broker: SimBrokerPort) -> None:
        self.journal, self.broker = journal, broker
        self.calls = 0
        self.refuse: set[int] = set()  # call numbers whose intent is refused
        self.no_answer: set[int] = set()  # call numbers that record + send, then time out

    async def record_and_execute(self, intent: Any) -> OrderResult:
        self.calls += 1
        if self.calls in self.refuse:
            raise IntentNotRecorded(f"record_order_intent: refused {intent.client_order_id}")
        await self.journal.record_intent(intent)
        result = await self.broker.execute_order(str(intent.action), intent.broker_parameters())
        if self.calls in self.no_answer:
            raise TemporaryError("broker.execute_recorded: no answer within 10 s")
        return result


def _run(backtesting_data_dir: Path, bars: int, orders_factory: Any) -> tuple[Any, ...]:
    data = _eurusd(backtesting_data_dir, bars)
    broker = BacktraderSimulationBroker({"symbol": "EURUSD"})
    port, journal = SimBrokerPort(broker, data), ListJournal()
    orders = orders_factory(journal, port) if orders_factory else None
    ports = StepPorts(broker=port, journal=journal, strategy=InlineStrategy(create_plugin("strategy", "sma_cross", PARAMS)),
                      orders=orders)
    state = AssetState(portfolio_id=1, asset_id=7, symbol="EURUSD", max_positions=1)
    pipeline = DefaultPipeline()
    outcomes = []

    async def drive() -> None:
        for i in range(len(data)):
            outcomes.append(await pipeline.run_step(state, data_snapshot(data, i), ports))
        await pipeline.finish(state, ports)

    asyncio.run(drive())
    return data, broker, port, journal, orders, state, outcomes


def test_one_call_path_gives_the_backtests_trades(backtesting_data_dir: Path) -> None:
    data, broker, port, journal, orders, state, outcomes = _run(backtesting_data_dir, 1500, RecordThenSend)
    expected = run_backtest(data, "sma_cross", PARAMS)
    assert all(o.ok for o in outcomes)
    assert len(expected.trades) > 10 and broker.trade_history() == expected.trades
    assert orders.calls == len(port.sent)  # every order went through the one call
    assert journal.intents == port.sent  # recorded first, in order
    assert state.positions == {} and state.pending == {}


def test_refused_intent_is_never_sent_and_not_left_pending(backtesting_data_dir: Path) -> None:
    def refusing(journal: ListJournal, port: SimBrokerPort) -> RecordThenSend:
        orders = RecordThenSend(journal, port)
        orders.refuse = {1}
        return orders

    _, _, port, journal, orders, state, outcomes = _run(backtesting_data_dir, 300, refusing)
    failed = [o for o in outcomes if not o.ok]
    assert len(failed) == 1 and failed[0].error_kind == "journal" and "refused" in (failed[0].reason or "")
    assert failed[0].client_order_id not in port.sent  # the broker never saw it
    assert failed[0].client_order_id not in state.pending
    assert journal.intents == port.sent and orders.calls > 2  # trading went on


def test_unanswered_call_leaves_the_order_pending_for_reconciliation(backtesting_data_dir: Path) -> None:
    def losing(journal: ListJournal, port: SimBrokerPort) -> RecordThenSend:
        orders = RecordThenSend(journal, port)
        orders.no_answer = {1}
        return orders

    _, _, port, journal, orders, state, outcomes = _run(backtesting_data_dir, 300, losing)
    failed = [o for o in outcomes if not o.ok]
    assert len(failed) == 1 and failed[0].error_kind == "broker" and failed[0].order_status == "pending"
    cid = failed[0].client_order_id
    assert cid in port.sent and cid in journal.intents
    # It stayed pending (not refused, not forgotten) until the broker's own answer for that
    # client order id came in: here the simulation broker's fill of the queued order at the
    # next bar, recorded before the next decision.
    assert cid not in state.pending
    assert [r.status.value for r in journal.results if r.client_order_id == cid] == ["open"]
