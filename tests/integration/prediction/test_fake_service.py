"""The loopback prediction service itself behaves like the real one where other tests rely on it."""

from __future__ import annotations

import time

import httpx

from tests.fixtures.fake_prediction_service import default_value
from tests.fixtures.prediction_fixtures import PredictionServiceHandle


def test_rejects_what_the_real_service_rejects(prediction_service: PredictionServiceHandle) -> None:
    with httpx.Client(base_url=prediction_service.base_url) as http:
        bad_symbol = http.post("/api/v1/predict", json={"symbol": "EUR/USD", "prediction_type": "short_term"})
        bad_type = http.post("/api/v1/predict", json={"symbol": "EURUSD", "prediction_type": "weekly"})
        unknown = http.get("/api/v1/predictions/999")
    assert bad_symbol.status_code == 422 and bad_symbol.json()["detail"][0]["loc"][-1] == "symbol"
    assert bad_type.status_code == 422
    assert unknown.status_code == 404


def test_protocol_round_trip_and_reset(prediction_service: PredictionServiceHandle) -> None:
    prediction_service.set_scenario("GOOG", delay_s=0.2)
    body = {"symbol": "GOOG", "prediction_type": "long_term", "horizons": [1, 2]}
    with httpx.Client(base_url=prediction_service.base_url) as http:
        created = http.post("/api/v1/predict", json=body)
        assert created.status_code == 201 and created.json()["status"] == "pending"
        pid = created.json()["id"]
        assert http.get(f"/api/v1/predictions/{pid}").json()["status"] == "processing"
        time.sleep(0.25)
        done = http.get(f"/api/v1/predictions/{pid}").json()
    assert done["status"] == "completed"
    assert done["result"]["output"]["predictions"] == [default_value("long_term", 1), default_value("long_term", 2)]
    assert prediction_service.stats()["predictions_created"] == 1
    prediction_service.reset()
    assert prediction_service.requests() == [] and prediction_service.stats()["predictions_created"] == 0
