"""The asyncio client (for the prediction actor) against the real uvicorn prediction service."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import datetime, timedelta, timezone

import pytest

from engine.errors import PredictionError
from engine.prediction import AsyncPredictionClient
from tests.fixtures.fake_prediction_service import default_value
from tests.fixtures.prediction_fixtures import PredictionServiceHandle
from tests.integration.prediction.test_api_client import fast_settings, posts

BAR_TIME = datetime(2019, 11, 4, 9, 0, tzinfo=timezone.utc)


def test_happy_path_fetches_both_types_concurrently(prediction_service: PredictionServiceHandle) -> None:
    prediction_service.set_scenario(
        "EURUSD",
        delay_s=0.2,
        predictions={"short_term": [1.5, 1.6], "long_term": [1.7, 1.8]},
        uncertainty={"short_term": [0.1, 0.2], "long_term": [0.3, 0.4]},
    )

    async def scenario() -> tuple[object, float]:
        async with AsyncPredictionClient(fast_settings(prediction_service.base_url, horizons=(1, 2))) as client:
            started = time.monotonic()
            result = await client.get_predictions("EUR_USD", BAR_TIME)
            return result, time.monotonic() - started

    result, elapsed = asyncio.run(scenario())
    assert result.ok
    assert result.short_term == [1.5, 1.6] and result.short_uncertainty == [0.1, 0.2]
    assert result.long_term == [1.7, 1.8] and result.long_uncertainty == [0.3, 0.4]
    assert elapsed >= 0.2
    # Side by side, not one after the other: both POSTs arrive before the first poll.
    assert [r["method"] for r in prediction_service.requests("EURUSD")[:3]] == ["POST", "POST", "GET"]
    sent = posts(prediction_service, "EURUSD")
    assert sorted(r["body"]["prediction_type"] for r in sent) == ["long_term", "short_term"]
    assert all(datetime.fromisoformat(r["body"]["baseline_datetime"]) == BAR_TIME for r in sent)


def test_sixteen_concurrent_callers_stay_within_the_bound(prediction_service: PredictionServiceHandle) -> None:
    prediction_service.reset(max_concurrent=4, request_latency_s=0.02)

    async def scenario() -> list[object]:
        settings = fast_settings(prediction_service.base_url, max_concurrency=4, max_attempts=1)
        async with AsyncPredictionClient(settings) as client:
            calls = [client.get_predictions(f"A{k}", BAR_TIME + timedelta(hours=k)) for k in range(16)]
            return await asyncio.gather(*calls)

    results = asyncio.run(scenario())
    assert all(r.ok for r in results), [r.errors for r in results if not r.ok]
    stats = prediction_service.stats()
    assert stats["overload_rejections"] == 0
    assert 2 <= stats["max_in_flight"] <= 4
    assert stats["predictions_created"] == 32


def test_transient_errors_retried_permanent_not(prediction_service: PredictionServiceHandle) -> None:
    prediction_service.set_scenario("FLAKY", post_errors=1, poll_errors=1, rate_limited=1, retry_after="0.05")
    prediction_service.set_scenario("REFUSED", post_status=403, post_detail="Admin users cannot create predictions")

    async def scenario() -> tuple[object, BaseException | None]:
        async with AsyncPredictionClient(fast_settings(prediction_service.base_url)) as client:
            good = await client.predict("FLAKY", BAR_TIME, "short_term")
            try:
                await client.predict("REFUSED", BAR_TIME, "short_term")
            except PredictionError as exc:
                return good, exc
            return good, None

    good, refused = asyncio.run(scenario())
    assert good.values[0] == default_value("short_term", 1)
    assert [r["answer"] for r in posts(prediction_service, "FLAKY")] == [429, 500, 201]
    assert refused is not None and "HTTP 403" in str(refused) and "Admin users cannot" in str(refused)
    assert len(posts(prediction_service, "REFUSED")) == 1


def test_deadline_and_failures_land_in_errors(prediction_service: PredictionServiceHandle) -> None:
    prediction_service.set_scenario("STUCK", never_complete=True)

    async def scenario() -> tuple[object, float]:
        async with AsyncPredictionClient(fast_settings(prediction_service.base_url, timeout_s=0.5)) as client:
            started = time.monotonic()
            result = await client.get_predictions("STUCK", BAR_TIME)
            return result, time.monotonic() - started

    result, elapsed = asyncio.run(scenario())
    assert set(result.errors) == {"short_term", "long_term"}
    assert all("0.5s deadline" in message for message in result.errors.values())
    assert elapsed < 1.0  # both types time out together, in parallel


def test_dead_port_is_a_clear_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def scenario() -> None:
        async with AsyncPredictionClient(fast_settings(f"http://127.0.0.1:{port}", max_attempts=2)) as client:
            await client.predict("EURUSD", BAR_TIME, "long_term")

    with pytest.raises(PredictionError, match=r"gave up after 2 attempt\(s\).*ConnectError"):
        asyncio.run(scenario())
