"""The retry policy on its own: what is retried, how long it waits, when it gives up."""

from __future__ import annotations

import pytest
from tenacity import Retrying

from engine.errors import PredictionError
from engine.prediction.protocol import TransientPredictionError
from engine.prediction.retry_policy import retry_kwargs
from engine.prediction.settings import PredictionClientSettings


class Flaky:
    """Fails with the given errors in order, then returns ``"ok"``."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class FakeClock:
    """A deterministic clock that only moves when the policy sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _retrying(settings: PredictionClientSettings, sleeps: list[float], deadline_s: float = 60.0) -> Retrying:
    # Record sleeps (and move a fake clock) instead of sleeping: the policy is under test.
    clock = FakeClock()
    clock.sleeps = sleeps
    return Retrying(sleep=clock.sleep, **retry_kwargs(settings, clock() + deadline_s, clock=clock))


def test_transient_errors_are_retried_with_growing_backoff(caplog: pytest.LogCaptureFixture) -> None:
    settings = PredictionClientSettings(max_attempts=5, backoff_initial_s=0.1, backoff_max_s=0.3, backoff_jitter_s=0.0)
    sleeps: list[float] = []
    fn = Flaky(*(TransientPredictionError(f"HTTP 503 #{i}") for i in range(3)))
    with caplog.at_level("WARNING", logger="engine.prediction.retry_policy"):
        assert _retrying(settings, sleeps)(fn) == "ok"
    assert fn.calls == 4
    assert sleeps == pytest.approx([0.1, 0.2, 0.3])  # doubled, then capped at backoff_max_s
    assert len([r for r in caplog.records if "retrying in" in r.getMessage()]) == 3


def test_jitter_stays_within_bounds() -> None:
    settings = PredictionClientSettings(max_attempts=3, backoff_initial_s=0.1, backoff_jitter_s=0.05)
    sleeps: list[float] = []
    _retrying(settings, sleeps)(Flaky(TransientPredictionError("x"), TransientPredictionError("y")))
    assert 0.1 <= sleeps[0] <= 0.15 and 0.2 <= sleeps[1] <= 0.25


def test_retry_after_is_honoured() -> None:
    settings = PredictionClientSettings(backoff_initial_s=0.1, backoff_jitter_s=0.0)
    sleeps: list[float] = []
    _retrying(settings, sleeps)(Flaky(TransientPredictionError("HTTP 429", retry_after_s=1.5)))
    assert sleeps == [1.5]


def test_permanent_errors_are_not_retried() -> None:
    sleeps: list[float] = []
    fn = Flaky(PredictionError("HTTP 401: Invalid API key"))
    with pytest.raises(PredictionError, match="401"):
        _retrying(PredictionClientSettings(), sleeps)(fn)
    assert fn.calls == 1 and sleeps == []


def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    settings = PredictionClientSettings(max_attempts=3, backoff_initial_s=0.01, backoff_jitter_s=0.0)
    sleeps: list[float] = []
    fn = Flaky(*(TransientPredictionError(f"HTTP 500 #{i}") for i in range(10)))
    with pytest.raises(PredictionError, match=r"gave up after 3 attempt\(s\).*HTTP 500 #2") as info:
        _retrying(settings, sleeps)(fn)
    assert not isinstance(info.value, TransientPredictionError)
    assert fn.calls == 3 and len(sleeps) == 2


def test_stops_when_the_next_sleep_would_pass_the_deadline() -> None:
    settings = PredictionClientSettings(max_attempts=10, backoff_initial_s=0.5, backoff_jitter_s=0.0)
    sleeps: list[float] = []
    fn = Flaky(*(TransientPredictionError("timeout") for _ in range(10)))
    with pytest.raises(PredictionError, match="gave up"):
        _retrying(settings, sleeps, deadline_s=1.2)(fn)
    # 0.5 fits in the 1.2 s budget; a further 1.0 would end past it, so no second sleep.
    assert sleeps == [0.5]
    assert fn.calls == 2


def test_retry_after_beyond_deadline_gives_up_at_once_and_says_why() -> None:
    sleeps: list[float] = []
    fn = Flaky(TransientPredictionError("HTTP 429", retry_after_s=30.0))
    with pytest.raises(PredictionError, match="retry after 30.0s, past the"):
        _retrying(PredictionClientSettings(timeout_s=2.0), sleeps, deadline_s=2.0)(fn)
    assert fn.calls == 1 and sleeps == []
