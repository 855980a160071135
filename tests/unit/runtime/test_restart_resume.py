"""``RestartTracker.resume``: a restarted supervisor goes on from the restarts recorded
before it (count and window), instead of starting again from zero."""

from __future__ import annotations

import pytest

from actors.restart_policy import RestartPolicy, RestartTracker


def test_resumed_tracker_keeps_the_count_and_gives_up_at_the_same_death():
    policy = RestartPolicy(max_restarts=3, window_s=60)
    # Two restarts 20 s and 5 s before the supervisor came back (its clock now reads 1000).
    tracker = RestartTracker.resume(policy, restarts=2, ages_s=[20.0, 5.0], now=1000.0)
    assert tracker.restarts == 2
    assert tracker.on_death(now=1001.0).restart  # the 3rd within the window
    refused = tracker.on_death(now=1002.0)
    assert not refused.restart and refused.reason == "died more than 3 times within 60 s"
    assert tracker.restarts == 3


def test_restarts_older_than_the_window_count_but_do_not_hold_the_asset_back():
    policy = RestartPolicy(max_restarts=2, window_s=60, backoff_start_s=0.5, backoff_max_s=8)
    tracker = RestartTracker.resume(policy, restarts=7, ages_s=[300.0, 30.0], now=50.0)
    assert tracker.restarts == 7
    first = tracker.on_death(now=51.0)  # 1 in the window before: this is the 2nd
    assert first.restart and first.delay_s == pytest.approx(1.0)
    assert not tracker.on_death(now=52.0).restart
    # The one 30 s old leaves the window 30 s after the resume: room for one again.
    assert tracker.on_death(now=81.0).restart


def test_a_clock_ahead_counts_as_now_and_a_negative_count_is_refused():
    tracker = RestartTracker.resume(RestartPolicy(max_restarts=1, window_s=10), restarts=1, ages_s=[-3.0], now=5.0)
    assert list(tracker.recent) == [5.0]
    assert not tracker.on_death(now=6.0).restart
    with pytest.raises(ValueError):
        RestartTracker.resume(RestartPolicy(), restarts=-1, ages_s=[], now=0.0)
