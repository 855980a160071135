"""The prediction actor's cache keeps only complete answers. The client reports failed
types and missing horizons in ``PredictionResult.errors`` instead of raising, so a partial
or failed result must be returned but never served again from the cache.

The actor class runs in-process (no Ray) against the real loopback prediction service,
whose request log shows what reached it."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from actors.prediction_actor import PredictionActor

AT = datetime(2020, 3, 2, 14, 0, tzinfo=timezone.utc)


def _posts(service, symbol: str) -> list[dict]:
    return [r for r in service.requests(symbol) if r["method"] == "POST"]


def test_partial_result_is_asked_again_and_a_complete_one_is_cached(prediction_service):
    prediction_service.set_scenario("EURUSD", null_horizons=[2])  # short and long: horizon 2 is null
    actor = PredictionActor({"prediction_provider_url": prediction_service.base_url})

    async def scenario() -> tuple:
        partial = await actor.get_predictions("EURUSD", AT)
        asked_for_partial = len(_posts(prediction_service, "EURUSD"))
        prediction_service.set_scenario("EURUSD")  # healthy again
        complete = await actor.get_predictions("EURUSD", AT)
        asked_for_complete = len(_posts(prediction_service, "EURUSD"))
        again = await actor.get_predictions("EURUSD", AT)
        return partial, asked_for_partial, complete, asked_for_complete, again, actor.cached()

    partial, asked_for_partial, complete, asked_for_complete, again, cached = asyncio.run(scenario())
    assert partial.errors and partial.short_term[1] is None
    assert asked_for_partial == 2  # short_term + long_term
    # Not served from the cache: the provider was asked again, and this time answered in full.
    assert asked_for_complete == 4
    assert not complete.errors and None not in complete.short_term + complete.long_term
    # The complete answer is cached: no new request, the same object.
    assert again is complete and len(_posts(prediction_service, "EURUSD")) == 4
    assert cached == 1
    # Every request was made at the bar's time, never the wall clock.
    assert {r["body"]["baseline_datetime"] for r in _posts(prediction_service, "EURUSD")} == {AT.isoformat()}


def test_failed_prediction_is_not_cached(prediction_service):
    prediction_service.set_scenario("GBPUSD", fail_reason="model exploded")
    actor = PredictionActor({"prediction_provider_url": prediction_service.base_url})

    async def scenario() -> tuple:
        first = await actor.get_predictions("GBPUSD", AT)
        second = await actor.get_predictions("GBPUSD", AT)
        return first, second, actor.cached()

    first, second, cached = asyncio.run(scenario())
    assert set(first.errors) == {"short_term", "long_term"} and "model exploded" in first.errors["short_term"]
    assert second is not first and second.errors
    assert len(_posts(prediction_service, "GBPUSD")) == 4 and cached == 0


def test_concurrent_askers_share_one_request(prediction_service):
    actor = PredictionActor({"prediction_provider_url": prediction_service.base_url})

    async def scenario() -> list:
        return await asyncio.gather(*(actor.get_predictions("USDJPY", AT) for _ in range(5)))

    results = asyncio.run(scenario())
    assert all(r is results[0] for r in results) and not results[0].errors
    assert len(_posts(prediction_service, "USDJPY")) == 2
