"""When and how long the prediction clients retry one HTTP call (tenacity).

Retried: :class:`TransientPredictionError` only (connection errors, timeouts, 429,
5xx). Waits grow exponentially with jitter; a 429/5xx ``Retry-After`` is honoured
as given. Retrying stops after ``max_attempts`` or as soon as the next sleep would
run past the prediction's deadline, so a caller is never held beyond ``timeout_s``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, NoReturn

from tenacity import RetryCallState, retry_if_exception_type

from engine.errors import PredictionError
from engine.prediction.protocol import TransientPredictionError
from engine.prediction.settings import PredictionClientSettings

logger = logging.getLogger(__name__)


def retry_kwargs(
    settings: PredictionClientSettings, deadline: float, clock: Callable[[], float] = time.monotonic
) -> dict[str, Any]:
    """Keyword arguments for ``tenacity.Retrying`` / ``AsyncRetrying`` for one call.

    ``deadline`` is an instant on ``clock`` (``time.monotonic`` unless a test injects
    one). The errors retried already name the call, so the log lines and the final
    error do too.
    """

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after_s", None)
        if retry_after is not None:
            return float(retry_after)
        backoff = settings.backoff_initial_s * (2 ** (state.attempt_number - 1))
        return min(settings.backoff_max_s, backoff) + random.uniform(0.0, settings.backoff_jitter_s)

    def stop(state: RetryCallState) -> bool:
        if state.attempt_number >= settings.max_attempts:
            return True
        # tenacity computes the wait before asking stop, so upcoming_sleep is known.
        return clock() + (state.upcoming_sleep or 0.0) >= deadline

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logger.warning(
            "prediction request failed (attempt %d of %d): %s; retrying in %.2fs",
            state.attempt_number,
            settings.max_attempts,
            exc,
            state.upcoming_sleep,
        )

    def give_up(state: RetryCallState) -> NoReturn:
        exc = state.outcome.exception() if state.outcome else None
        used = clock() - (deadline - settings.timeout_s)
        retry_after = getattr(exc, "retry_after_s", None)
        why = (
            f"the service asked to retry after {retry_after:.1f}s, past the {settings.timeout_s:g}s deadline"
            if retry_after is not None and clock() + retry_after >= deadline
            else f"after {state.attempt_number} attempt(s) in {used:.2f}s of the {settings.timeout_s:g}s deadline"
        )
        raise PredictionError(f"gave up {why}; last error: {exc}") from exc

    return {
        "retry": retry_if_exception_type(TransientPredictionError),
        "wait": wait,
        "stop": stop,
        "before_sleep": before_sleep,
        "retry_error_callback": give_up,
    }


def deadline_error(what: str, settings: PredictionClientSettings, detail: str = "") -> PredictionError:
    """The error for a prediction that ran out of its overall deadline."""
    suffix = f" ({detail})" if detail else ""
    return PredictionError(f"{what}: no answer within the {settings.timeout_s:g}s deadline{suffix}")
