"""Knobs of the prediction-provider API client, validated once where they enter.

Three of them are global config keys (``prediction_provider_url``,
``prediction_api_key``, ``prediction_timeout_s``); the rest have sane defaults and
may be overridden per strategy or per asset through :meth:`PredictionClientSettings.from_config`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from engine.errors import ConfigError

#: Config keys read by :meth:`PredictionClientSettings.from_config` -> settings field.
CONFIG_KEYS: dict[str, str] = {
    "prediction_provider_url": "base_url",
    "prediction_api_key": "api_key",
    "prediction_timeout_s": "timeout_s",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictionClientSettings:
    """Frozen settings of one prediction client.

    Timing model: every HTTP request gets ``connect_timeout_s`` / ``read_timeout_s``
    (shortened to what is left of the deadline); one prediction (one POST plus its
    polls, retries included) must finish within ``timeout_s``.
    """

    base_url: str = "http://127.0.0.1:8001"
    api_key: str | None = field(default=None, repr=False)  # never printed
    timeout_s: float = 10.0  # overall deadline of one prediction (POST + polls + retries)
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 5.0
    poll_interval_s: float = 0.02  # first wait between polls; the real service needs ~40 ms
    max_poll_interval_s: float = 0.5  # polls back off by 1.5x up to this
    max_attempts: int = 5  # per HTTP call, first try included
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 2.0
    backoff_jitter_s: float = 0.1
    max_concurrency: int = 4  # requests in flight per client; the service 500s above ~4
    horizons: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
    predictor_plugin: str = "default_predictor"
    feeder_plugin: str = "default_feeder"
    pipeline_plugin: str = "default_pipeline"
    short_term_interval: str = "1h"  # bar interval the short-term horizons count in
    long_term_interval: str = "1d"  # long-term horizons count days

    def __post_init__(self) -> None:
        scheme = urlsplit(self.base_url).scheme if isinstance(self.base_url, str) else ""
        if scheme not in ("http", "https") or not urlsplit(self.base_url).netloc:
            raise ConfigError(
                f"prediction_provider_url must be an http(s) URL like 'http://127.0.0.1:8001', got {self.base_url!r}"
            )
        for name in (
            "timeout_s",
            "connect_timeout_s",
            "read_timeout_s",
            "poll_interval_s",
            "max_poll_interval_s",
            "backoff_initial_s",
            "backoff_max_s",
        ):
            value = getattr(self, name)
            if not _is_number(value) or not value > 0 or not math.isfinite(value):
                raise ConfigError(f"prediction client setting {name} must be a positive number, got {value!r}")
        if not _is_number(self.backoff_jitter_s) or self.backoff_jitter_s < 0:
            raise ConfigError(f"prediction client setting backoff_jitter_s must be >= 0, got {self.backoff_jitter_s!r}")
        for name in ("max_attempts", "max_concurrency"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"prediction client setting {name} must be an integer >= 1, got {value!r}")
        horizons = tuple(self.horizons) if isinstance(self.horizons, (list, tuple)) else ()
        if not horizons or any(not isinstance(h, int) or isinstance(h, bool) or h < 1 for h in horizons):
            raise ConfigError(
                f"prediction client setting horizons must be a non-empty list of integers >= 1, got {self.horizons!r}"
            )
        object.__setattr__(self, "horizons", horizons)
        text_fields = (
            "predictor_plugin",
            "feeder_plugin",
            "pipeline_plugin",
            "short_term_interval",
            "long_term_interval",
        )
        for name in text_fields:
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"prediction client setting {name} must be a non-empty string, got {value!r}")
        if self.api_key is not None and (not isinstance(self.api_key, str) or not self.api_key):
            # Deliberately no value in the message: it is a secret.
            raise ConfigError("prediction_api_key must be a non-empty string or null")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
    ) -> "PredictionClientSettings":
        """Build settings from the merged LTS config plus per-use ``overrides``.

        ``config`` supplies the global keys in :data:`CONFIG_KEYS` when present;
        ``overrides`` uses the field names of this class (e.g. ``poll_interval_s``)
        and wins. An unknown override key is a :class:`ConfigError` naming it.
        """
        values: dict[str, Any] = {}
        for key, name in CONFIG_KEYS.items():
            if key in config and config[key] is not None:
                values[name] = config[key]
        known = {f.name for f in fields(cls)}
        for key, value in (overrides or {}).items():
            if key not in known:
                raise ConfigError(
                    f"unknown prediction client setting {key!r}; known settings: {', '.join(sorted(known))}"
                )
            values[key] = value
        return cls(**values)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
