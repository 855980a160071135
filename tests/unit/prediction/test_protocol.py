"""The prediction wire protocol without a server: requests built, answers read, errors classified."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from engine.errors import PredictionError, TemporaryError
from engine.prediction import protocol
from engine.prediction.protocol import TransientPredictionError
from engine.prediction.settings import PredictionClientSettings

WHAT = "short_term prediction for EURUSD"


def _response(status: int, json: object = None, text: str | None = None, headers: dict | None = None) -> httpx.Response:
    request = httpx.Request("POST", "http://127.0.0.1:1/api/v1/predict")
    if text is not None:
        return httpx.Response(status, text=text, headers=headers, request=request)
    return httpx.Response(status, json=json, headers=headers, request=request)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("EUR/USD", "EURUSD"),
        ("eur_usd", "EURUSD"),
        ("GOOG", "GOOG"),
        (" btc-usd ", "BTCUSD"),
        ("A1B2C3D4E5", "A1B2C3D4E5"),
    ],
)
def test_normalize_symbol_drops_separators_and_upper_cases(given: str, expected: str) -> None:
    assert protocol.normalize_symbol(given) == expected


@pytest.mark.parametrize("bad", ["", "/", "ABCDEFGHIJK", "BRK.B", "EUR$USD", "ÉUR"])
def test_normalize_symbol_rejects_what_the_service_would_422(bad: str) -> None:
    with pytest.raises(PredictionError, match="1 to 10 letters or digits") as info:
        protocol.normalize_symbol(bad)
    assert repr(bad) in str(info.value)


def test_check_types_rejects_unknown_and_deduplicates() -> None:
    assert protocol.check_types(("long_term", "short_term", "long_term")) == ("long_term", "short_term")
    assert protocol.check_types("short_term") == ("short_term",)
    with pytest.raises(PredictionError, match="medium_term"):
        protocol.check_types(("short_term", "medium_term"))
    with pytest.raises(PredictionError):
        protocol.check_types(())


def test_request_body_uses_bar_time_and_settings() -> None:
    settings = PredictionClientSettings(horizons=(1, 2, 4), predictor_plugin="lstm", long_term_interval="1d")
    bar_time = datetime(2021, 3, 4, 5, 0, tzinfo=timezone(timedelta(hours=2)))
    body = protocol.build_request_body("EURUSD", bar_time, "long_term", settings)
    assert body["symbol"] == "EURUSD"
    assert body["prediction_type"] == "long_term"
    assert body["predictor_plugin"] == "lstm"
    assert body["interval"] == "1d"
    assert body["horizons"] == [1, 2, 4]
    assert body["prediction_horizon"] == 4
    # Same instant, expressed in UTC.
    assert datetime.fromisoformat(body["baseline_datetime"]) == bar_time
    assert body["baseline_datetime"].endswith("+00:00")
    assert set(body) >= {"feeder_plugin", "pipeline_plugin"}


def test_api_key_only_in_headers_when_set() -> None:
    assert "X-API-KEY" not in protocol.request_headers(PredictionClientSettings())
    assert protocol.request_headers(PredictionClientSettings(api_key="k-123"))["X-API-KEY"] == "k-123"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_transient(status: int) -> None:
    with pytest.raises(TransientPredictionError, match=f"HTTP {status}") as info:
        protocol.check_response(_response(status, {"detail": "boom"}), WHAT)
    assert isinstance(info.value, TemporaryError)
    assert "boom" in str(info.value)


def test_429_is_transient_and_carries_retry_after() -> None:
    with pytest.raises(TransientPredictionError) as info:
        protocol.check_response(_response(429, {"detail": "slow down"}, headers={"Retry-After": "3"}), WHAT)
    assert info.value.retry_after_s == 3.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_4xx_are_permanent(status: int) -> None:
    with pytest.raises(PredictionError) as info:
        protocol.check_response(_response(status, {"detail": "nope"}), WHAT)
    assert not isinstance(info.value, TransientPredictionError)
    assert f"HTTP {status}" in str(info.value) and "nope" in str(info.value)
    assert WHAT in str(info.value)


def test_auth_failure_message_points_at_the_key_and_redacts_it() -> None:
    echo = _response(401, {"detail": "Invalid API key secret-abc"})
    with pytest.raises(PredictionError) as info:
        protocol.check_response(echo, WHAT, secret="secret-abc")
    assert "secret-abc" not in str(info.value)
    assert "prediction_api_key" in str(info.value)


def test_fastapi_422_detail_list_is_summarised() -> None:
    detail = [{"loc": ["body", "symbol"], "msg": "String should match pattern", "type": "string_pattern_mismatch"}]
    with pytest.raises(PredictionError, match="symbol: String should match pattern"):
        protocol.check_response(_response(422, {"detail": detail}), WHAT)


def test_read_json_rejects_garbage_and_non_objects() -> None:
    with pytest.raises(PredictionError, match="not JSON.*Bad Gateway"):
        protocol.read_json(_response(201, text="<html>Bad Gateway</html>"), WHAT)
    with pytest.raises(PredictionError, match="expected a JSON object"):
        protocol.read_json(_response(200, [1, 2]), WHAT)
    assert protocol.read_json(_response(200, {"a": 1}), WHAT) == {"a": 1}


def test_parse_created_requires_a_plain_id() -> None:
    assert protocol.parse_created({"id": 17, "status": "pending"}, WHAT) == "17"
    assert protocol.parse_created({"prediction_id": "ab-12"}, WHAT) == "ab-12"
    for body in ({"status": "pending"}, {"id": None}, {"id": ""}, {"id": True}, {"id": [1]}):
        with pytest.raises(PredictionError, match="no prediction id"):
            protocol.parse_created(body, WHAT)
    with pytest.raises(PredictionError, match="not a plain identifier"):
        protocol.parse_created({"id": "../admin"}, WHAT)


def test_poll_outcome_states() -> None:
    args = ("7", "short_term", (1, 2), WHAT, WHAT)
    assert protocol.poll_outcome({"status": "pending"}, *args) is None
    assert protocol.poll_outcome({"status": "Processing"}, *args) is None
    with pytest.raises(PredictionError, match="prediction 7 failed: model not loaded"):
        protocol.poll_outcome({"status": "failed", "result": {"error": "model not loaded"}}, *args)
    with pytest.raises(PredictionError, match="unexpected prediction status 'exploded'"):
        protocol.poll_outcome({"status": "exploded"}, *args)
    with pytest.raises(PredictionError, match="no status"):
        protocol.poll_outcome({"id": 7}, *args)
    done = {"status": "completed", "result": {"output": {"predictions": [1.5, 1.6], "uncertainty": [0.1, 0.2]}}}
    outcome = protocol.poll_outcome(done, *args)
    assert outcome is not None and outcome.values == [1.5, 1.6]


def test_parse_completed_current_shape_with_nulls_and_errors() -> None:
    body = {
        "status": "completed",
        "result": {
            "output": {
                "predictions": [1.1, None, 1.3, float("nan")],
                "uncertainty": [0.01, None, 0.03, 0.04],
                "errors": ["horizon 2: feeder gap", "horizon 4: diverged"],
            }
        },
    }
    got = protocol.parse_completed(body, "short_term", (1, 2, 3, 4), WHAT)
    assert got.values == [1.1, None, 1.3, None]
    assert got.uncertainties == [0.01, None, 0.03, 0.04]
    assert got.error is not None
    assert "horizon(s) [2, 4]" in got.error and "feeder gap" in got.error


def test_parse_completed_legacy_number_and_scalar_uncertainty() -> None:
    number = protocol.parse_completed({"result": {"prediction": 1.2345}}, "long_term", (1,), WHAT)
    assert number.values == [1.2345] and number.uncertainties == [None] and number.error is None
    listed = protocol.parse_completed(
        {"result": {"prediction": [1.0, 2.0, 3.0], "uncertainty": 0.5}}, "long_term", (1, 2, 3), WHAT
    )
    assert listed.values == [1.0, 2.0, 3.0]
    assert listed.uncertainties == [0.5, 0.5, 0.5]


def test_parse_completed_pads_short_uncertainty_lists() -> None:
    body = {"result": {"output": {"predictions": [1.0, 2.0, 3.0], "uncertainty": [0.1]}}}
    assert protocol.parse_completed(body, "short_term", (1, 2, 3), WHAT).uncertainties == [0.1, None, None]


@pytest.mark.parametrize(
    "result",
    [None, {}, {"output": {"predictions": []}}, {"output": {"predictions": ["1.2"]}}, {"prediction": True}],
)
def test_parse_completed_rejects_unusable_results(result: object) -> None:
    with pytest.raises(PredictionError, match=WHAT):
        protocol.parse_completed({"status": "completed", "result": result}, "short_term", (1,), WHAT)


def test_failure_reason_prefers_result_error() -> None:
    assert protocol.failure_reason({"result": {"error": "no data for EURUSD"}}) == "no data for EURUSD"
    assert protocol.failure_reason({"detail": "worker died"}) == "worker died"
    assert protocol.failure_reason({"status": "failed"}) == "the service gave no reason"


def test_parse_retry_after_seconds_and_http_dates() -> None:
    assert protocol.parse_retry_after("2") == 2.0
    assert protocol.parse_retry_after("0.25") == 0.25
    assert protocol.parse_retry_after("-5") == 0.0
    assert protocol.parse_retry_after(None) is None
    assert protocol.parse_retry_after("soon") is None
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    seconds = protocol.parse_retry_after(later)
    assert seconds is not None and 25 <= seconds <= 30
    assert protocol.parse_retry_after("inf") is None


def test_transport_failure_is_transient_and_named() -> None:
    error = protocol.transport_failure(httpx.ConnectError("Connection refused"), WHAT)
    assert isinstance(error, TransientPredictionError)
    assert "ConnectError" in str(error) and "Connection refused" in str(error) and WHAT in str(error)
