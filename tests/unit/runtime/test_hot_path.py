"""The per-bar and per-order actor methods are marked so that Ray records no task events
for them (``actors.remote.hot_path``); control methods keep theirs."""

from __future__ import annotations

from actors.asset_actor import AssetActor
from actors.broker_actor import BrokerActor
from actors.persistence_actor import PersistenceActor
from actors.remote import hot_path


def test_hot_methods_carry_no_task_events_and_control_methods_do():
    hot = [AssetActor.step, AssetActor.steps, PersistenceActor.submit, BrokerActor.execute_order,
           BrokerActor.advance, BrokerActor.find_order]
    assert all(getattr(m, "__ray_enable_task_events__", True) is False for m in hot)
    control = [AssetActor.start, AssetActor.stop, BrokerActor.open_account, PersistenceActor.stats]
    assert all(not hasattr(m, "__ray_enable_task_events__") for m in control)


def test_hot_path_keeps_the_function_callable():
    @hot_path
    def double(x: int) -> int:
        return 2 * x

    assert double(21) == 42
