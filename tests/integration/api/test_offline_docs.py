"""``/docs`` and ``/redoc`` come from the installed package, not a CDN: every script,
stylesheet and icon they reference is a local URL this gateway serves with the right
content type, and their CSP names no other host and allows no inline script. Before the
fix /docs loaded Swagger UI from jsdelivr (a blank page offline) under a CSP that allowed
that host and 'unsafe-inline' scripts."""

from __future__ import annotations

import re

import pytest

from tests.integration.api.conftest import Gateway


_REFS = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']""")


def _references(html: str) -> list[str]:
    return _REFS.findall(html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_only_local_assets(live_gateway: Gateway, page: str) -> None:
    client = live_gateway.client
    answer = client.get(page)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    refs = _references(answer.text)
    assert refs, answer.text
    for ref in refs:
        assert ref.startswith("/") and not ref.startswith("//"), f"{page} references {ref}"
    assert "<script>" not in answer.text.replace(" ", "")  # no inline script to allow
    csp = answer.headers["content-security-policy"]
    assert "http" not in csp and "unsafe-inline" not in csp.split("script-src", 1)[1].split(";", 1)[0]
    assert "script-src 'self';" in csp
    kinds = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}
    for ref in refs:
        asset = client.get(ref)
        assert asset.status_code == 200, ref
        expected = next(kind for suffix, kind in kinds.items() if ref.endswith(suffix))
        assert expected in asset.headers["content-type"], (ref, asset.headers["content-type"])
        assert len(asset.content) > 100, ref


def test_swagger_bootstrap_is_a_served_script_naming_the_local_spec(live_gateway: Gateway) -> None:
    client = live_gateway.client
    page = client.get("/docs").text
    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert "/docs/swagger-init.js" in scripts and any(s.endswith("swagger-ui-bundle.js") for s in scripts)
    init = client.get("/docs/swagger-init.js")
    assert "javascript" in init.headers["content-type"] and 'url: "/openapi.json"' in init.text
    assert client.get("/openapi.json").json()["info"]["title"] == "LTS gateway"
