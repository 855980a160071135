"""Prediction client settings: defaults, config keys, and clear errors naming the bad setting."""

from __future__ import annotations

import pytest

from engine.errors import ConfigError
from engine.prediction.settings import PredictionClientSettings


def test_defaults_are_sane() -> None:
    s = PredictionClientSettings()
    assert s.max_concurrency == 4
    assert s.horizons == (1, 2, 3, 4, 5, 6)
    assert 0 < s.poll_interval_s < s.timeout_s
    assert s.max_attempts > 1


def test_from_config_reads_global_keys_and_overrides() -> None:
    config = {
        "prediction_provider_url": "http://10.0.0.5:9000/",
        "prediction_api_key": "abc",
        "prediction_timeout_s": 3.5,
        "api_port": 8000,  # unrelated keys are ignored
    }
    s = PredictionClientSettings.from_config(config, {"max_concurrency": 2, "horizons": [1, 3]})
    assert s.base_url == "http://10.0.0.5:9000"  # trailing slash dropped
    assert s.api_key == "abc"
    assert s.timeout_s == 3.5
    assert s.max_concurrency == 2
    assert s.horizons == (1, 3)


def test_from_config_null_key_means_no_key() -> None:
    s = PredictionClientSettings.from_config({"prediction_api_key": None})
    assert s.api_key is None


def test_unknown_override_is_named() -> None:
    with pytest.raises(ConfigError, match="'poll_intervall_s'.*known settings"):
        PredictionClientSettings.from_config({}, {"poll_intervall_s": 1})


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("base_url", "127.0.0.1:8001", "prediction_provider_url"),
        ("base_url", "ftp://host", "prediction_provider_url"),
        ("timeout_s", 0, "timeout_s"),
        ("timeout_s", float("nan"), "timeout_s"),
        ("read_timeout_s", -1, "read_timeout_s"),
        ("max_concurrency", 0, "max_concurrency"),
        ("max_attempts", 2.5, "max_attempts"),
        ("horizons", (), "horizons"),
        ("horizons", (1, 0), "horizons"),
        ("predictor_plugin", " ", "predictor_plugin"),
        ("backoff_jitter_s", -0.1, "backoff_jitter_s"),
    ],
)
def test_bad_values_are_refused_with_the_setting_named(field: str, value: object, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        PredictionClientSettings(**{field: value})


def test_api_key_never_shown() -> None:
    s = PredictionClientSettings(api_key="super-secret-key")
    assert "super-secret-key" not in repr(s)
    with pytest.raises(ConfigError) as info:
        PredictionClientSettings(api_key="")
    assert "prediction_api_key" in str(info.value)


def test_settings_are_frozen() -> None:
    s = PredictionClientSettings()
    with pytest.raises(AttributeError):
        s.timeout_s = 1.0  # type: ignore[misc]
