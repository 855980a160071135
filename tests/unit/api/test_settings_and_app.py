"""Gateway settings validation, the core plugin, and the app's last-resort error path
(a store that fails in an unexpected way gives a bare 500, never a traceback)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from api.aaa import DefaultAAA
from api.app import create_app, openapi_document
from api.core_plugin import DefaultCore
from api.settings import GatewaySettings
from engine.config import LTSConfig
from engine.errors import ConfigError
from engine.plugins.loader import create_plugin, load_plugin

SECRET = "k" * 64


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"rate_limit_per_minute": 0}, "rate_limit_per_minute"),
        ({"max_body_bytes": "big"}, "max_body_bytes"),
        ({"api_port": 70000}, "api_port"),
        ({"cors_origins": ["*"]}, "explicitly"),
        ({"cors_origins": [1]}, "cors_origins"),
        ({"step_timeout_s": -1}, "step_timeout_s"),
    ],
)
def test_bad_settings_name_the_key(overrides: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        GatewaySettings.from_config(overrides)


def test_settings_source_is_named_for_lts_config() -> None:
    config = LTSConfig.from_values({"rate_limit_per_minute": 60}, rate_limit_per_minute=-5)
    with pytest.raises(ConfigError, match="rate_limit_per_minute.*from"):
        GatewaySettings.from_config(config)


def test_defaults_are_accepted() -> None:
    settings = GatewaySettings.from_config({})
    assert settings.rate_limit_per_minute == 60 and settings.max_body_bytes == 1048576
    assert settings.cors_origins == ()


def test_core_and_aaa_plugins_load_through_the_loader() -> None:
    assert load_plugin("core", "default_core") is DefaultCore
    assert load_plugin("aaa", "default_aaa") is DefaultAAA
    core = create_plugin("core", "default_core", {})
    with pytest.raises(TypeError, match="unknown services"):
        core.build_app({}, database=object())  # type: ignore[attr-defined]


def test_openapi_document_needs_no_database() -> None:
    doc = openapi_document()
    assert "/api/portfolios" in doc["paths"]
    assert doc["components"]["schemas"]["ErrorBody"]["required"] == ["error"]


class ExplodingStore:
    """A store whose reads fail with an unexpected (non-LTS) exception."""

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("connection string postgresql://admin:hunter2@db/prod broke")

        return fail


def test_unexpected_failure_is_a_bare_500_with_headers() -> None:
    app = create_app({"jwt_secret": SECRET}, store=ExplodingStore(), aaa=DefaultAAA(secret=SECRET))

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post("/api/auth/login", json={"username": "u", "password": "p"})

    resp = asyncio.run(call())
    assert resp.status_code == 500
    assert resp.json() == {"error": {"code": "internal_error", "message": "internal server error", "details": None}}
    assert "hunter2" not in resp.text and "Traceback" not in resp.text
    assert resp.headers["x-content-type-options"] == "nosniff"


def test_health_reports_an_unreachable_database_as_503() -> None:
    app = create_app({"jwt_secret": SECRET}, store=ExplodingStore(), aaa=DefaultAAA(secret=SECRET))

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.get("/health")

    resp = asyncio.run(call())
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "database_unavailable" and "hunter2" not in resp.text


def test_money_fields_refuse_garbage_as_validation_errors() -> None:
    from pydantic import ValidationError

    from api.schemas.assets import AllocationUpdate

    for bad in ("abc", "\u0012x", "NaN", "1e400", True):
        with pytest.raises(ValidationError):
            AllocationUpdate(allocated_capital=bad)
    assert str(AllocationUpdate(allocated_capital="0.1").allocated_capital) == "0.1"
