"""The config keys the gateway reads, checked once when the app is built."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config.defaults import DEFAULT_VALUES
from engine.errors import ConfigError


def _source(config: Mapping[str, Any], key: str) -> str:
    source = getattr(config, "source", None)
    if callable(source):
        try:
            return f" (from {source(key)})"
        except Exception:  # a key the config does not know: it came from the defaults
            return ""
    return ""


def _text(config: Mapping[str, Any], key: str) -> str:
    value = config.get(key, DEFAULT_VALUES[key])
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"config key '{key}' must be a non-empty text, got {value!r}{_source(config, key)}")
    return value


def _path(config: Mapping[str, Any], key: str) -> str:
    value = config.get(key, DEFAULT_VALUES[key])
    if isinstance(value, os.PathLike):  # resolved on the driver already
        value = os.fspath(value)
    return _text({key: value}, key) if not isinstance(value, str) or not value.strip() else value


def _int(config: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = config.get(key, DEFAULT_VALUES[key])
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"config key '{key}' must be an integer in [{low}, {high}], got {value!r}{_source(config, key)}")
    return value


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Validated gateway settings (from the merged LTS config)."""

    api_host: str
    api_port: int
    database_url: str
    rate_limit_per_minute: int
    max_body_bytes: int
    cors_origins: tuple[str, ...]
    step_timeout_s: float
    backtest_dir: Path  # resolved: reports are served only from under it
    log_level: str  # uvicorn's spelling (lower case)
    aaa_plugin: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "GatewaySettings":
        origins = config.get("cors_origins", DEFAULT_VALUES["cors_origins"]) or []
        if isinstance(origins, str):
            origins = [o.strip() for o in origins.split(",") if o.strip()]
        if not isinstance(origins, (list, tuple)) or not all(isinstance(o, str) for o in origins):
            raise ConfigError(f"config key 'cors_origins' must be a list of origins, got {origins!r}{_source(config, 'cors_origins')}")
        if "*" in origins:
            # Credentials (Authorization headers) with a wildcard origin would let any site
            # drive a logged-in browser: name the origins instead.
            raise ConfigError("config key 'cors_origins' must list origins explicitly, not '*'")
        timeout = config.get("step_timeout_s", DEFAULT_VALUES["step_timeout_s"])
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigError(f"config key 'step_timeout_s' must be a positive number, got {timeout!r}")
        return cls(
            api_host=str(config.get("api_host", DEFAULT_VALUES["api_host"])),
            api_port=_int(config, "api_port", 0, 65535),
            database_url=str(config.get("database_url", DEFAULT_VALUES["database_url"])),
            rate_limit_per_minute=_int(config, "rate_limit_per_minute", 1, 10_000_000),
            max_body_bytes=_int(config, "max_body_bytes", 1, 1 << 30),
            cors_origins=tuple(origins),
            step_timeout_s=float(timeout),
            backtest_dir=Path(os.path.expanduser(_path(config, "backtest_dir"))).resolve(),
            log_level=_text(config, "log_level").lower(),
            aaa_plugin=str(config.get("aaa_plugin") or "default_aaa"),
        )
