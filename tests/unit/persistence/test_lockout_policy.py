"""The failed-login policy's pure rules (``persistence.lockout``): the backoff, the
window, and who a hold applies to."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from api.aaa import DefaultAAA
from engine.errors import ConfigError
from persistence.lockout import LockoutPolicy, LoginGate, client_key

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


def test_a_client_is_held_after_the_limit_with_a_doubling_capped_backoff() -> None:
    policy = LockoutPolicy(client_max_failures=5, backoff_s=60, max_lock_s=1800)
    assert [policy.client_lock(n) for n in range(1, 5)] == [None] * 4
    held = [policy.client_lock(n).total_seconds() for n in range(5, 12)]  # type: ignore[union-attr]
    assert held == [60, 120, 240, 480, 960, 1800, 1800]
    assert policy.client_lock(10_000) == timedelta(seconds=1800)  # no overflow far past the limit


def test_a_clients_count_restarts_after_a_quiet_window() -> None:
    policy = LockoutPolicy(window_s=3600)
    assert policy.restarts(None, NOW)
    assert not policy.restarts(NOW - timedelta(minutes=59), NOW)
    assert policy.restarts(NOW - timedelta(minutes=60), NOW)


def test_the_clients_own_hold_always_applies_the_accounts_only_to_unknown_clients() -> None:
    soon, later = NOW + timedelta(minutes=1), NOW + timedelta(minutes=30)
    decide = LoginGate.decide
    assert decide(NOW, client_locked_until=soon, account_locked_until=None, trusted_client=True) == LoginGate(soon, "client")
    assert decide(NOW, client_locked_until=None, account_locked_until=later, trusted_client=False) == LoginGate(later, "account")
    assert decide(NOW, client_locked_until=None, account_locked_until=later, trusted_client=True) == LoginGate()
    # Expired holds hold nobody.
    past = NOW - timedelta(seconds=1)
    assert decide(NOW, client_locked_until=past, account_locked_until=past, trusted_client=False) == LoginGate()
    assert decide(NOW, client_locked_until=None, account_locked_until=None, trusted_client=False) == LoginGate()


def test_nonsense_numbers_are_refused() -> None:
    for bad in ({"client_max_failures": 0}, {"account_max_failures": 0}, {"backoff_s": 0},
                {"backoff_s": 100, "max_lock_s": 50}, {"window_s": 0}):
        with pytest.raises(ValueError):
            LockoutPolicy(**bad)  # type: ignore[arg-type]


def test_client_keys_fit_the_column_and_name_an_unknown_peer() -> None:
    assert client_key(None) == "unknown" and client_key("10.0.0.1") == "10.0.0.1"
    assert len(client_key("f" * 200)) == 64


def test_the_aaa_plugin_parameters_are_the_policy() -> None:
    assert DefaultAAA().lockout_policy == LockoutPolicy()
    custom = DefaultAAA({"max_failed_logins": 3, "lockout_backoff_seconds": 10, "lockout_minutes": 5,
                         "account_max_failed_logins": 40, "failure_window_minutes": 15}).lockout_policy
    assert custom == LockoutPolicy(client_max_failures=3, backoff_s=10, max_lock_s=300,
                                   account_max_failures=40, window_s=900)
    with pytest.raises(ConfigError, match="lockout_backoff_seconds"):
        DefaultAAA({"lockout_backoff_seconds": 120, "lockout_minutes": 1}).lockout_policy
    with pytest.raises(ConfigError, match="account_max_failed_logins"):
        DefaultAAA({"account_max_failed_logins": 0}).lockout_policy
