"""The supervisor's restart rules (``actors.restart_policy``), with an injected clock:
exponential backoff, give-up past the limit within the window, and forgetting restarts
older than the window."""

from __future__ import annotations

import pytest

from actors.restart_policy import RestartPolicy, RestartTracker
from actors.runtime_settings import RuntimeSettings
from engine.errors import ConfigError


def test_backoff_doubles_up_to_the_cap():
    tracker = RestartTracker(RestartPolicy(max_restarts=10, window_s=60, backoff_start_s=0.2, backoff_max_s=1.0))
    delays = [tracker.on_death(now=float(t)).delay_s for t in range(6)]
    assert delays == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    assert tracker.restarts == 6


def test_gives_up_past_the_limit_within_the_window_and_says_why():
    tracker = RestartTracker(RestartPolicy(max_restarts=3, window_s=10))
    decisions = [tracker.on_death(now=t) for t in (0.0, 1.0, 2.0, 3.0)]
    assert [d.restart for d in decisions] == [True, True, True, False]
    assert decisions[-1].reason == "died more than 3 times within 10 s"
    assert tracker.restarts == 3  # the refused one is not a restart


def test_restarts_older_than_the_window_are_forgotten():
    tracker = RestartTracker(RestartPolicy(max_restarts=2, window_s=10, backoff_start_s=0.5, backoff_max_s=4))
    assert tracker.on_death(now=0.0).restart
    assert tracker.on_death(now=5.0).restart
    # 11 s: the death at 0 s left the window, so this is only the 2nd restart in it.
    third = tracker.on_death(now=11.0)
    assert third.restart and third.delay_s == pytest.approx(1.0)
    assert not tracker.on_death(now=12.0).restart  # 5, 11 and now 12: over the limit
    # Long quiet: backoff starts from the beginning again.
    fresh = tracker.on_death(now=100.0)
    assert fresh.restart and fresh.delay_s == pytest.approx(0.5)
    assert tracker.restarts == 4


def test_zero_restarts_allowed_gives_up_at_once():
    assert not RestartTracker(RestartPolicy(max_restarts=0)).on_death(now=0.0).restart


def test_policy_from_settings_and_bad_values():
    policy = RestartPolicy.from_settings(RuntimeSettings.from_config({"max_asset_restarts": 7,
                                                                      "restart_window_s": 30.0}))
    assert (policy.max_restarts, policy.window_s) == (7, 30.0)
    with pytest.raises(ConfigError, match="max_asset_restarts"):
        RestartPolicy(max_restarts=-1)
    with pytest.raises(ConfigError, match="restart_window_s"):
        RestartPolicy(window_s=0)
    with pytest.raises(ConfigError, match="backoff"):
        RestartPolicy(backoff_start_s=3.0, backoff_max_s=1.0)
