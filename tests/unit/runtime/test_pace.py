"""``PaceKeeper``: how many bars each asset of a paced simulation steps per cycle."""

from __future__ import annotations

from actors.pace import PaceKeeper

HANDLE = object()


def test_on_pace_every_cycle_steps_one_bar():
    pace = PaceKeeper(max_bars=64)
    for tick in range(10):
        due = pace.ticks_due(100.0 + 0.5 * tick, 0.5)
        assert due == tick + 1
        assert pace.bars_for("a", HANDLE, due) == 1
        pace.stepped("a", 1)


def test_a_late_cycle_asks_for_the_ticks_missed_and_then_is_on_pace_again():
    pace = PaceKeeper(max_bars=64)
    assert pace.bars_for("a", HANDLE, pace.ticks_due(0.0, 0.1)) == 1
    pace.stepped("a", 1)
    due = pace.ticks_due(0.35, 0.1)  # 0.35 s later: ticks 0.1, 0.2, 0.3 are due
    assert due == 4
    assert pace.bars_for("a", HANDLE, due) == 3
    pace.stepped("a", 3)
    assert pace.bars_for("a", HANDLE, pace.ticks_due(0.4, 0.1)) == 1


def test_a_call_that_stepped_fewer_bars_leaves_the_rest_owed():
    pace = PaceKeeper(max_bars=64)
    assert pace.bars_for("a", HANDLE, pace.ticks_due(0.0, 0.1)) == 1
    pace.stepped("a", 1)
    due = pace.ticks_due(1.0, 0.1)  # 11 ticks due, 1 stepped
    assert pace.bars_for("a", HANDLE, due) == 10
    pace.stepped("a", 4)  # the call's time budget ended it early
    assert pace.bars_for("a", HANDLE, due) == 6


def test_old_debt_is_capped_and_a_restarted_asset_starts_on_pace():
    pace = PaceKeeper(max_bars=8)
    pace.ticks_due(0.0, 0.1)
    assert pace.bars_for("a", HANDLE, 1) == 1
    pace.stepped("a", 1)
    due = pace.ticks_due(60.0, 0.1)  # a minute stalled: 600 ticks
    assert pace.bars_for("a", HANDLE, due) == 8
    pace.stepped("a", 8)
    assert pace.bars_for("a", HANDLE, due) == 1  # the rest is forgiven, not rushed later
    restarted = object()
    assert pace.bars_for("a", restarted, pace.ticks_due(90.0, 0.1)) == 1


def test_a_latency_change_or_reset_starts_the_pace_again():
    pace = PaceKeeper(max_bars=64)
    pace.ticks_due(0.0, 0.1)
    pace.bars_for("a", HANDLE, 1)
    pace.stepped("a", 1)
    assert pace.ticks_due(5.0, 0.5) == 1  # new latency: counted from now
    assert pace.bars_for("a", HANDLE, 1) == 1
    pace.reset()
    assert pace.ticks_due(7.0, 0.5) == 1


def test_one_bar_calls_only_when_catching_up_is_off():
    pace = PaceKeeper(max_bars=1)
    pace.ticks_due(0.0, 0.1)
    assert pace.bars_for("a", HANDLE, pace.ticks_due(5.0, 0.1)) == 1
