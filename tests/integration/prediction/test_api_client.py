"""The sync API-mode client against a real uvicorn prediction service on loopback (INT-05).

Each test scripts the service (``prediction_service`` fixture) and checks what the
client returns or raises and what the service actually received.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from engine.errors import PredictionError
from engine.prediction import PredictionClient, PredictionClientSettings, PredictionResult
from tests.fixtures.fake_prediction_service import default_uncertainty, default_value
from tests.fixtures.prediction_fixtures import PredictionServiceHandle

BAR_TIME = datetime(2020, 3, 9, 14, 0, tzinfo=timezone.utc)


def fast_settings(base_url: str, **overrides: Any) -> PredictionClientSettings:
    """Short timeouts and backoffs so failure paths finish in well under a second."""
    values: dict[str, Any] = {
        "base_url": base_url,
        "timeout_s": 3.0,
        "connect_timeout_s": 0.5,
        "read_timeout_s": 1.0,
        "poll_interval_s": 0.01,
        "max_poll_interval_s": 0.05,
        "max_attempts": 5,
        "backoff_initial_s": 0.02,
        "backoff_max_s": 0.1,
        "backoff_jitter_s": 0.01,
    }
    values.update(overrides)
    return PredictionClientSettings(**values)


def posts(service: PredictionServiceHandle, symbol: str) -> list[dict[str, Any]]:
    return [r for r in service.requests(symbol) if r["method"] == "POST"]


def test_happy_path_values_uncertainties_and_request_contents(prediction_service: PredictionServiceHandle) -> None:
    prediction_service.reset(api_key="test-key-1")
    short = [1.1012, 1.1023, None, 1.1041, 1.1050, 1.1066]
    long = [1.12, 1.13, 1.14, 1.15, 1.16, 1.17]
    prediction_service.set_scenario(
        "EURUSD",
        predictions={"short_term": short, "long_term": long},
        uncertainty={"short_term": [0.001, 0.002, None, 0.004, 0.005, 0.006], "long_term": 0.01},
    )
    with PredictionClient(fast_settings(prediction_service.base_url, api_key="test-key-1")) as client:
        result = client.get_predictions("EUR/USD", BAR_TIME)

    assert result.short_term == short
    assert result.long_term == long
    assert result.short_uncertainty == [0.001, 0.002, None, 0.004, 0.005, 0.006]
    assert result.long_uncertainty == [0.01] * 6
    assert result.symbol == "EUR/USD" and result.timestamp == BAR_TIME and result.source == "api"
    assert set(result.errors) == {"short_term"}  # the null horizon is explained, not hidden
    assert "horizon(s) [3]" in result.errors["short_term"]

    sent = posts(prediction_service, "EURUSD")
    assert [r["body"]["prediction_type"] for r in sent] == ["short_term", "long_term"]
    for record in sent:
        body = record["body"]
        assert body["symbol"] == "EURUSD"
        assert datetime.fromisoformat(body["baseline_datetime"]) == BAR_TIME  # the bar's time
        assert body["horizons"] == [1, 2, 3, 4, 5, 6] and body["prediction_horizon"] == 6
        assert record["has_api_key"] is True
    assert prediction_service.stats()["auth_failures"] == 0


def test_default_values_and_a_clean_result_are_ok(prediction_service: PredictionServiceHandle) -> None:
    with PredictionClient(fast_settings(prediction_service.base_url, horizons=(1, 2, 3))) as client:
        result = client.get_predictions("GOOG", BAR_TIME)
    assert result.ok
    assert result.short_term == [default_value("short_term", h) for h in (1, 2, 3)]
    assert result.long_uncertainty == [default_uncertainty("long_term", h) for h in (1, 2, 3)]


def test_legacy_result_shape_is_accepted(prediction_service: PredictionServiceHandle) -> None:
    prediction_service.set_scenario(
        "OLDAPI",
        legacy_shape=True,
        predictions={"short_term": [2.5], "long_term": [3.5]},
        uncertainty={"short_term": 0.1},
    )
    with PredictionClient(fast_settings(prediction_service.base_url)) as client:
        result = client.get_predictions("OLDAPI", BAR_TIME)
    assert result.short_term == [2.5] and result.short_uncertainty == [0.1]
    assert result.long_term == [3.5] and result.long_uncertainty == [None]


def test_slow_answers_within_the_deadline_succeed(prediction_service: PredictionServiceHandle) -> None:
    prediction_service.set_scenario("SLOW", response_delay_s=0.15, delay_s=0.2)
    with PredictionClient(fast_settings(prediction_service.base_url, timeout_s=2.0)) as client:
        started = time.monotonic()
        got = client.predict("SLOW", BAR_TIME, "short_term")
        elapsed = time.monotonic() - started
    assert got.values == [default_value("short_term", h) for h in range(1, 7)]
    assert elapsed >= 0.3  # POST held 0.15 s, then at least one poll held 0.15 s
    assert len(posts(prediction_service, "SLOW")) == 1  # slow is not a failure: nothing resent


def test_read_timeout_is_retried(prediction_service: PredictionServiceHandle, caplog: pytest.LogCaptureFixture) -> None:
    prediction_service.set_scenario("STALL", slow_requests=1, slow_s=1.0)
    settings = fast_settings(prediction_service.base_url, read_timeout_s=0.2)
    with caplog.at_level(logging.WARNING), PredictionClient(settings) as client:
        got = client.predict("STALL", BAR_TIME, "long_term")
    assert got.values[0] == default_value("long_term", 1)
    assert len(posts(prediction_service, "STALL")) == 2
    assert any("ReadTimeout" in r.getMessage() and "retrying in" in r.getMessage() for r in caplog.records)


def test_500s_are_retried_until_success(prediction_service: PredictionServiceHandle) -> None:
    prediction_service.set_scenario("FLAKY", post_errors=2, poll_errors=2)
    with PredictionClient(fast_settings(prediction_service.base_url)) as client:
        got = client.predict("FLAKY", BAR_TIME, "short_term")
    assert got.values[0] == default_value("short_term", 1)
    assert [r["answer"] for r in posts(prediction_service, "FLAKY")] == [500, 500, 201]
    assert prediction_service.stats()["predictions_created"] == 1


def test_persistent_500s_give_up_with_a_clear_error(prediction_service: PredictionServiceHandle) -> None:
    prediction_service.set_scenario("DOWN", post_errors=100)
    with PredictionClient(fast_settings(prediction_service.base_url, max_attempts=3)) as client:
        with pytest.raises(PredictionError) as info:
            client.predict("DOWN", BAR_TIME, "short_term")
    message = str(info.value)
    assert "gave up after 3 attempt(s)" in message and "HTTP 500" in message and "database is locked" in message
    assert len(posts(prediction_service, "DOWN")) == 3


def test_429_with_retry_after_is_honoured(prediction_service: PredictionServiceHandle) -> None:
    prediction_service.set_scenario("BUSY", rate_limited=1, retry_after="0.3")
    with PredictionClient(fast_settings(prediction_service.base_url)) as client:
        started = time.monotonic()
        got = client.predict("BUSY", BAR_TIME, "short_term")
        elapsed = time.monotonic() - started
    assert got.values[0] == default_value("short_term", 1)
    assert [r["answer"] for r in posts(prediction_service, "BUSY")] == [429, 201]
    assert elapsed >= 0.3  # waited as told, not the 0.02 s backoff


def test_429_retry_after_beyond_the_deadline_fails_fast(prediction_service: PredictionServiceHandle) -> None:
    prediction_service.set_scenario("JAMMED", rate_limited=5, retry_after="30")
    with PredictionClient(fast_settings(prediction_service.base_url, timeout_s=1.0)) as client:
        started = time.monotonic()
        with pytest.raises(PredictionError, match=r"retry after 30.0s, past the 1s deadline.*HTTP 429"):
            client.predict("JAMMED", BAR_TIME, "short_term")
    assert time.monotonic() - started < 0.5
    assert len(posts(prediction_service, "JAMMED")) == 1


def test_422_is_not_retried_and_names_the_problem(prediction_service: PredictionServiceHandle) -> None:
    detail = [{"loc": ["body", "interval"], "msg": "unsupported interval 1h for predictor lstm", "type": "value_error"}]
    prediction_service.set_scenario("BADREQ", post_status=422, post_detail=detail)
    with PredictionClient(fast_settings(prediction_service.base_url)) as client:
        with pytest.raises(PredictionError) as info:
            client.predict("BADREQ", BAR_TIME, "short_term")
    message = str(info.value)
    assert "HTTP 422" in message and "interval: unsupported interval 1h" in message and "BADREQ" in message
    assert len(posts(prediction_service, "BADREQ")) == 1


def test_bad_api_key_is_401_not_retried_and_never_shown(
    prediction_service: PredictionServiceHandle, caplog: pytest.LogCaptureFixture
) -> None:
    prediction_service.reset(api_key="the-right-key")
    settings = fast_settings(prediction_service.base_url, api_key="wrong-key-123")
    with caplog.at_level(logging.DEBUG), PredictionClient(settings) as client:
        with pytest.raises(PredictionError) as info:
            client.predict("EURUSD", BAR_TIME, "short_term")
        result = client.get_predictions("EURUSD", BAR_TIME)
    message = str(info.value)
    assert "HTTP 401" in message and "Invalid API key" in message and "prediction_api_key" in message
    assert "wrong-key-123" not in message
    assert all("wrong-key-123" not in r.getMessage() for r in caplog.records)
    assert set(result.errors) == {"short_term", "long_term"} and not result.ok
    assert prediction_service.stats()["auth_failures"] == 3  # one per prediction: no retries


def test_failed_prediction_carries_the_service_reason(prediction_service: PredictionServiceHandle) -> None:
    prediction_service.set_scenario("NODATA", fail_reason="feeder has no data for NODATA after 2020-03-01")
    with PredictionClient(fast_settings(prediction_service.base_url)) as client:
        with pytest.raises(PredictionError, match="failed: feeder has no data for NODATA after 2020-03-01"):
            client.predict("NODATA", BAR_TIME, "long_term")
        result = client.get_predictions("NODATA", BAR_TIME)
    assert result.short_term == [] and result.long_term == []
    assert all("feeder has no data" in result.errors[kind] for kind in ("short_term", "long_term"))


@pytest.mark.parametrize(("where", "fragment"), [("post", "Bad Gateway"), ("poll", "'status': 'completed', oops")])
def test_garbage_bodies_are_clear_errors(
    prediction_service: PredictionServiceHandle, where: str, fragment: str
) -> None:
    prediction_service.set_scenario("JUNK", garbage=where)
    with PredictionClient(fast_settings(prediction_service.base_url)) as client:
        with pytest.raises(PredictionError) as info:
            client.predict("JUNK", BAR_TIME, "short_term")
    assert "not JSON" in str(info.value) and fragment in str(info.value)


def test_missing_id_is_a_clear_error(prediction_service: PredictionServiceHandle) -> None:
    prediction_service.set_scenario("NOID", missing_id=True)
    with PredictionClient(fast_settings(prediction_service.base_url)) as client:
        with pytest.raises(PredictionError, match="POST /api/v1/predict: the answer has no prediction id"):
            client.predict("NOID", BAR_TIME, "short_term")


def test_never_completing_prediction_hits_the_deadline(prediction_service: PredictionServiceHandle) -> None:
    prediction_service.set_scenario("STUCK", never_complete=True)
    with PredictionClient(fast_settings(prediction_service.base_url, timeout_s=0.6)) as client:
        started = time.monotonic()
        with pytest.raises(PredictionError, match=r"STUCK.*no answer within the 0.6s deadline"):
            client.predict("STUCK", BAR_TIME, "short_term")
        elapsed = time.monotonic() - started
    # It waited for the deadline; that it stopped there (not after retries or read timeouts)
    # is what the message and the bounded number of polls say, not a wall-clock ceiling.
    assert elapsed >= 0.55
    polls = [r for r in prediction_service.requests("STUCK") if r["method"] == "GET"]
    assert 3 <= len(polls) <= 40  # polled with back-off, not hammered


def test_concurrency_bound_keeps_the_service_below_its_limit(prediction_service: PredictionServiceHandle) -> None:
    # Requests take a little while, so unbounded callers would overlap.
    prediction_service.reset(max_concurrent=4, request_latency_s=0.02)
    results: list[PredictionResult] = []
    errors: list[BaseException] = []
    with PredictionClient(fast_settings(prediction_service.base_url, max_concurrency=4, max_attempts=1)) as client:

        def one(k: int) -> None:
            try:
                results.append(client.get_predictions(f"SYM{k}", BAR_TIME + timedelta(hours=k)))
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=one, args=(k,)) for k in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert not errors
    assert len(results) == 16 and all(r.ok for r in results), [r.errors for r in results if not r.ok]
    stats = prediction_service.stats()
    assert stats["overload_rejections"] == 0
    assert 2 <= stats["max_in_flight"] <= 4  # really concurrent, never above the bound
    assert stats["predictions_created"] == 32


def test_the_service_limit_is_real_without_the_bound(prediction_service: PredictionServiceHandle) -> None:
    """Control for the test above: 16 unbounded callers do overload the service."""
    prediction_service.reset(max_concurrent=4, request_latency_s=0.02)
    settings = fast_settings(prediction_service.base_url, max_concurrency=16, timeout_s=5.0, max_attempts=10)
    with PredictionClient(settings) as client:
        threads = [
            threading.Thread(target=client.get_predictions, args=(f"SYM{k}", BAR_TIME, ("short_term",)))
            for k in range(16)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert prediction_service.stats()["overload_rejections"] > 0


def test_dead_port_is_retried_then_a_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = fast_settings(f"http://127.0.0.1:{port}", max_attempts=3)
    with caplog.at_level(logging.WARNING), PredictionClient(settings) as client:
        started = time.monotonic()
        with pytest.raises(PredictionError) as info:
            client.predict("EURUSD", BAR_TIME, "short_term")
        elapsed = time.monotonic() - started
    message = str(info.value)
    assert "gave up after 3 attempt(s)" in message and "ConnectError" in message
    assert "POST /api/v1/predict" in message
    assert len([r for r in caplog.records if "retrying in" in r.getMessage()]) == 2
    assert elapsed < 2.0


def test_bad_symbol_is_refused_before_anything_is_sent(prediction_service: PredictionServiceHandle) -> None:
    with PredictionClient(fast_settings(prediction_service.base_url)) as client:
        with pytest.raises(PredictionError, match="1 to 10 letters or digits"):
            client.get_predictions("EUR/USD/JPY/GBP", BAR_TIME)
    assert prediction_service.requests() == []


def test_closed_client_refuses_work(prediction_service: PredictionServiceHandle) -> None:
    client = PredictionClient(fast_settings(prediction_service.base_url))
    client.close()
    client.close()  # idempotent
    with pytest.raises(PredictionError, match="closed"):
        client.predict("EURUSD", BAR_TIME, "short_term")
