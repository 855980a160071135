"""``raised_gc_threshold``: the young-generation threshold is raised while backtests run
and comes back exactly when the last overlapping one ends, exceptions included."""

from __future__ import annotations

import gc
import threading

import pytest

from actors.backtests import execution
from actors.backtests.gc_threshold import BACKTEST_GC_GEN0_THRESHOLD, raised_gc_threshold


@pytest.fixture(autouse=True)
def default_thresholds():
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


def test_raised_inside_and_restored_after_even_on_error():
    with raised_gc_threshold():
        assert gc.get_threshold() == (BACKTEST_GC_GEN0_THRESHOLD, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)
    with pytest.raises(RuntimeError), raised_gc_threshold():
        raise RuntimeError("strategy bug")
    assert gc.get_threshold() == (700, 10, 10)


def test_a_higher_threshold_is_left_alone():
    gc.set_threshold(100_000, 10, 10)
    with raised_gc_threshold():
        assert gc.get_threshold()[0] == 100_000
    assert gc.get_threshold()[0] == 100_000


def test_overlapping_runs_restore_only_when_the_last_one_ends():
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, int] = {}

    def first() -> None:
        with raised_gc_threshold():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with raised_gc_threshold():
            second_in.set()
            first_out.wait(5)
            seen["after_first_left"] = gc.get_threshold()[0]

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen["after_first_left"] == BACKTEST_GC_GEN0_THRESHOLD
    assert gc.get_threshold() == (700, 10, 10)


def test_execute_run_runs_under_the_raised_threshold(monkeypatch):
    seen: list[int] = []

    def spy(*args, **kwargs):
        seen.append(gc.get_threshold()[0])
        return "outcome"

    monkeypatch.setattr(execution, "_execute_run", spy)
    assert execution.execute_run(object(), object()) == "outcome"  # type: ignore[arg-type]
    assert seen == [BACKTEST_GC_GEN0_THRESHOLD]
    assert gc.get_threshold() == (700, 10, 10)
