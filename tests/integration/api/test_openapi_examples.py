"""Every request-body example in the gateway's OpenAPI document works: each is posted to
the route(s) that take that body on a real gateway (SQLite and PostgreSQL) and must get a
2xx; each ``data_source`` example is then loaded by the engine's own CSV loader, which is
what activation does. Before, the ``data_source`` example named ``csv_path``, which the
engine refused at activation, and no other body had an example a user could try."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.app import openapi_document
from engine.data.asset_source import load_asset_data
from persistence.enums import Role
from tests.integration.api.conftest import Gateway, _in_process

# Bodies whose routes need what this gateway has not (a live engine, a fresh token):
# their examples are not posted. Everything else with examples is.
NOT_POSTED = {
    ("post", "/api/auth/refresh"): "needs a refresh token issued at run time",
    ("post", "/api/trading/execute"): "needs the running engine",
    ("post", "/api/backtests"): "needs the running engine",
}
# Bodies a newcomer needs an example for (the tour: register, log in, portfolio, asset).
MUST_HAVE_EXAMPLES = ("RegisterRequest", "LoginRequest", "PortfolioCreate", "AssetCreate", "DataSource")
# Routes posted first, in this order: the later ones need their user, portfolio and asset.
FIRST = [("post", "/api/auth/register"), ("post", "/api/auth/login"), ("post", "/api/portfolios"),
         ("post", "/api/portfolios/{portfolio_id}/assets")]

CSV_HEADER = "DATE_TIME,OPEN,HIGH,LOW,CLOSE,VOLUME\n"


def _write_csv(path: Path, rows: int = 48) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [CSV_HEADER]
    for i in range(rows):
        price = 1.1 + 0.001 * (i % 7)
        lines.append(f"2024-01-{1 + i // 24:02d} {i % 24:02d}:00:00,{price},{price + 0.002},{price - 0.002},"
                     f"{price + 0.001},{100 + i}\n")
    path.write_text("".join(lines))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    _write_csv(folder / "eurusd.csv")
    _write_csv(folder / "gbpusd.csv")
    _write_csv(folder / "fx" / "eurusd_h1.csv")
    return folder


@pytest.fixture
def example_gateway(db_url: str, data_dir: Path) -> Iterator[Gateway]:
    yield from _in_process(db_url, data_dir=str(data_dir))


def _schema_name(operation: dict[str, Any]) -> str | None:
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    ref = body.get("schema", {}).get("$ref", "")
    return ref.rsplit("/", 1)[-1] or None


def _bodies(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(method, path, schema name) of every route that takes a JSON body, FIRST first."""
    found = [(method, path, name) for path, ops in doc["paths"].items() for method, op in ops.items()
             if (name := _schema_name(op))]
    order = {key: i for i, key in enumerate(FIRST)}
    return sorted(found, key=lambda item: (order.get((item[0], item[1]), len(order)), item[1], item[0]))


def test_every_request_body_example_is_accepted(example_gateway: Gateway, data_dir: Path) -> None:
    gw = example_gateway
    doc = openapi_document()
    schemas = doc["components"]["schemas"]
    for name in MUST_HAVE_EXAMPLES:
        assert schemas[name].get("examples"), f"{name} has no example"
    asset_examples = schemas["AssetCreate"]["examples"]
    assert any((e.get("data_source") or {}).get("path") for e in asset_examples)

    gw.make_user("root", role=Role.ADMIN)
    root = gw.login("root")
    ids: dict[str, int] = {}
    user: dict[str, str] = {}
    posted = 0

    def headers_for(path: str) -> dict[str, str]:
        if path.startswith("/api/auth/"):
            return {}
        return root.headers if path.startswith("/api/users/") else user["headers"]  # type: ignore[return-value]

    def send(method: str, path: str, body: Any) -> Any:
        url = path.format(portfolio_id=ids.get("portfolio_id"), asset_id=ids.get("asset_id"),
                          user_id=ids.get("user_id"))
        assert "None" not in url, f"no id for {path}"
        answer = gw.client.request(method.upper(), url, json=body, headers=headers_for(path))
        assert 200 <= answer.status_code < 300, (method, path, body, answer.status_code, answer.text)
        return answer.json() if answer.content else None

    def check_engine_loads(asset_id: int) -> None:
        record = gw.store.get_asset(asset_id)
        if record.data_source:
            data = load_asset_data(record, {"data_dir": str(data_dir)})  # what activation does
            assert len(data) > 0, record.data_source

    for method, path, name in _bodies(doc):
        examples = schemas[name].get("examples") or []
        if (method, path) in NOT_POSTED or not examples:
            continue
        for example in examples:
            answer = send(method, path, example)
            posted += 1
            if path == "/api/auth/register":
                ids["user_id"] = answer["id"]
            elif path == "/api/auth/login":
                user["headers"] = {"Authorization": f"Bearer {answer['access_token']}"}  # type: ignore[assignment]
            elif path == "/api/portfolios":
                ids["portfolio_id"] = answer["id"]
            elif path == "/api/portfolios/{portfolio_id}/assets":
                ids["asset_id"] = answer["id"]
                check_engine_loads(answer["id"])
            elif path == "/api/assets/{asset_id}":
                check_engine_loads(ids["asset_id"])
    # A data_source example sits inside asset bodies: post each in both.
    for i, example in enumerate(schemas["DataSource"]["examples"]):
        created = send("post", "/api/portfolios/{portfolio_id}/assets", {"symbol": f"EURUSD_{i}", "data_source": example})
        check_engine_loads(created["id"])
        send("put", "/api/assets/{asset_id}", {"data_source": example})
        check_engine_loads(ids["asset_id"])
        posted += 2
    assert posted >= 10
