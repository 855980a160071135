"""Issue 20, deliverables 4 and 5, on SQLite and PostgreSQL: what a client can see of an
error is one clean line, and no input gets a 5xx.

* Unstorable text (NUL, lone surrogates) in any body field, key or query parameter, and
  free-form objects nested too deep or too big, are refused with 422 before anything is
  written: no row, no audit row.
* A value the database refuses (reaching the Store another way) comes back as a domain
  error without the SQL statement or its parameters.
* A malformed ``Content-Length`` gets the JSON error shape from the real uvicorn server
  (both of uvicorn's HTTP protocols) and from the app's own check.
* With the engine running (real Ray actors), every client-visible error field after each
  failure kind (missing file, bad CSV, a strategy that raises, an asset actor killed) is
  one line with no traceback, ANSI code, server path outside ``data_dir``, pid, address
  or actor id.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.schemas.common import MAX_JSON_DEPTH, MAX_JSON_ITEMS, MAX_JSON_STRING
from api.server import json_error_protocol
from engine.errors import UnstorableValue
from persistence.enums import Role
from persistence.records import AuditContext, PageRequest
from persistence.store import Store, WriteRequest
from tests.integration.api.conftest import PASSWORD, Gateway, UserSession, base_config, make_aaa

# ------------------------------------------------------------------------------ helpers

LEAK_MARKERS = ("Traceback", 'File "', "\x1b", "[SQL:", "[parameters:", "INSERT INTO", "UPDATE ", "SELECT ")
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/-])/[^\s'\"`,;:()<>\[\]{}|]+")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
_PID = re.compile(r"\bpid\s*[=:]?\s*\d", re.IGNORECASE)
_HEX_ID = re.compile(r"\b(?=[0-9]*[a-f])[0-9a-f]{24,}\b")


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value (keys included)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def assert_clean_line(text: str, *, data_dir: Path | None = None, leaks: tuple[str, ...] = (), where: str = "") -> None:
    """``text`` is something a client may see: one line, none of the server's insides."""
    shown = f"{where}: {text!r}"
    assert "\n" not in text and "\r" not in text, shown
    for marker in LEAK_MARKERS + leaks:
        assert marker not in text, (marker, shown)
    for path in _ABSOLUTE_PATH.findall(text):
        assert data_dir is not None and path.startswith(str(data_dir)), (path, shown)
    assert not _IPV4.search(text), shown
    assert not _PID.search(text), shown
    assert not _HEX_ID.search(text), shown


def assert_422(resp: httpx.Response, fragment: str = "") -> None:
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] in ("validation_error", "invalid_value"), body
    assert_clean_line(body["error"]["message"], where=resp.request.url.path)
    assert fragment in body["error"]["message"], (fragment, body)


def nested(depth: int, leaf: Any = 1) -> Any:
    """``{"a": {"a": ... leaf}}``, ``depth`` objects deep."""
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def _counts(store: Store) -> tuple[int, int, int, int]:
    everything = PageRequest(limit=1)
    return (store.list_audit_logs(page=everything).total, store.list_portfolios(page=everything).total,
            store.list_assets(page=everything).total, store.list_users(page=everything).total)


# --------------------------------------------------------------- unstorable and unbounded input


@pytest.fixture
def probed(gateway: Gateway) -> tuple[Gateway, UserSession, UserSession, int, int]:
    """A user with a portfolio and an asset, and an admin (all made over the API)."""
    gateway.make_user("alice")
    gateway.make_user("root", role=Role.ADMIN)
    alice, root = gateway.login("alice"), gateway.login("root")
    resp = gateway.client.post("/api/portfolios", headers=alice.headers, json={"name": "p", "total_capital": "100"})
    assert resp.status_code == 201, resp.text
    portfolio_id = resp.json()["id"]
    resp = gateway.client.post(f"/api/portfolios/{portfolio_id}/assets", headers=alice.headers, json={"symbol": "EURUSD"})
    assert resp.status_code == 201, resp.text
    return gateway, alice, root, portfolio_id, resp.json()["id"]


def test_unstorable_text_and_unbounded_objects_are_422_with_nothing_written(probed: Any) -> None:
    gateway, alice, root, pid, aid = probed
    huge = {f"k{i}": 0 for i in range(MAX_JSON_ITEMS + 1)}
    long_text = "x" * (MAX_JSON_STRING + 1)
    too_deep = nested(MAX_JSON_DEPTH + 1)
    very_deep = nested(300)  # the probe: once a 500 after the row was committed
    user, admin, anonymous = alice.headers, root.headers, {}
    # (headers, method, path, JSON body, a fragment the message must name)
    probes: list[tuple[dict[str, str], str, str, Any, str]] = [
        (anonymous, "POST", "/api/auth/login", {"username": "ali\x00ce", "password": PASSWORD}, "username"),
        (anonymous, "POST", "/api/auth/login", {"username": "alice", "password": PASSWORD + "\x00"}, "password"),
        (anonymous, "POST", "/api/auth/register",
         {"username": "mallory", "password": PASSWORD, "email": "m\x00@example.com"}, "email"),
        (anonymous, "POST", "/api/auth/register", {"username": "mallory", "password": PASSWORD + "\ud800"}, "password"),
        (anonymous, "POST", "/api/auth/refresh", {"refresh_token": "a\x00b"}, "refresh_token"),
        (user, "POST", "/api/portfolios", {"name": "n\x00", "total_capital": "1"}, "name"),
        (user, "POST", "/api/portfolios", {"name": "n", "description": "d\ud800", "total_capital": "1"}, "description"),
        (user, "POST", "/api/portfolios", {"name": "n", "total_capital": "1", "portfolio_config": {"k\x00": 1}}, "key"),
        (user, "POST", "/api/portfolios", {"name": "n", "total_capital": "1", "portfolio_config": too_deep}, "deeper"),
        (user, "POST", "/api/portfolios", {"name": "n", "total_capital": "1", "portfolio_config": huge}, "more than"),
        (user, "PUT", f"/api/portfolios/{pid}", {"name": "x\x00"}, "name"),
        (user, "PUT", f"/api/portfolios/{pid}", {"portfolio_config": {"k": long_text}}, "longer than"),
        (user, "POST", f"/api/portfolios/{pid}/assets", {"symbol": "GBP\x00USD"}, "symbol"),
        (user, "POST", f"/api/portfolios/{pid}/assets", {"symbol": "X", "strategy_config": {"a": "\x00"}}, "strategy_config"),
        (user, "POST", f"/api/portfolios/{pid}/assets", {"symbol": "X", "broker_config": too_deep}, "deeper"),
        (user, "POST", f"/api/portfolios/{pid}/assets", {"symbol": "X", "pipeline_config": huge}, "more than"),
        (user, "POST", f"/api/portfolios/{pid}/assets", {"symbol": "X", "data_source": {"path": "e\x00.csv"}}, "path"),
        (user, "POST", f"/api/portfolios/{pid}/assets", {"symbol": "X", "data_source": very_deep}, "data_source"),
        (user, "POST", f"/api/portfolios/{pid}/assets", {"symbol": "X", "strategy_config": very_deep}, "nested"),
        (user, "PUT", f"/api/assets/{aid}", {"data_source": {"path": "a\ud800.csv"}}, "path"),
        (user, "PATCH", f"/api/assets/{aid}/strategy", {"config": very_deep}, "nested"),
        (user, "PATCH", f"/api/assets/{aid}/broker", {"config": {"api_url": "http://x\x00"}}, "api_url"),
        (user, "PATCH", f"/api/assets/{aid}/pipeline", {"config": huge}, "more than"),
        (user, "PATCH", f"/api/assets/{aid}/strategy", {"plugin": "sma\x00cross"}, "plugin"),
        (user, "POST", "/api/backtests", {"files": ["a\x00.csv"], "strategy": "sma_cross"}, "files"),
        (user, "POST", "/api/backtests", {"files": ["a.csv"], "strategy": "sma_cross", "params": too_deep}, "deeper"),
        (admin, "PATCH", f"/api/users/{alice.user_id}", {"role": "user\x00"}, "role"),
    ]
    before = _counts(gateway.store)
    for headers, method, path, body, fragment in probes:
        # json.dumps escapes NUL and surrogates (\u0000, \ud800): the server decodes them.
        resp = gateway.client.request(method, path, headers={**headers, "content-type": "application/json"},
                                      content=json.dumps(body).encode())
        assert resp.status_code == 422, (method, path, str(body)[:80], resp.status_code, resp.text[:300])
        assert_422(resp, fragment)
    queries = [
        (user, "/api/statistics/records?kind=a%00b", "kind"),
        (user, "/api/statistics/records?name=%00", "name"),
        (admin, "/api/audit-logs?action=a%00b", "action"),
        (admin, "/api/audit-logs?target_type=asset&target_id=1%00", "target_id"),
        (user, "/api/orders?status=open%00", "status"),
        (user, "/api/portfolios?page=1%00", "page"),
        (admin, "/api/users?role=%00admin", "role"),
        (user, "/api/assets/1%00", "path"),
    ]
    for headers, url, fragment in queries:
        resp = gateway.client.get(url, headers=headers)
        assert_422(resp, fragment)
    assert _counts(gateway.store) == before  # no row and no audit row, for any of them


def test_storable_text_is_not_refused(probed: Any) -> None:
    """Only NUL and lone surrogates are refused: accents, emoji (a surrogate *pair* in
    JSON's escapes) and other control characters are stored and answered as sent."""
    gateway, alice, _root, pid, _aid = probed
    text = "ok \u00e9 \U0001F600 tab\tend"
    resp = gateway.client.put(f"/api/portfolios/{pid}", headers=alice.headers, json={"description": text})
    assert resp.status_code == 200 and resp.json()["description"] == text, resp.text


RAY_STYLE_REASON = ("start failed: RayTaskError(DataError): \x1b[36mray::AssetActor.start()\x1b[39m (pid=25274, "
                    "ip=192.0.2.2, actor_id=8ff0a1b2c3d4e5f60718293a4b5c6d7e)\n  File \"/srv/lts/actors/asset_actor.py\"")


def test_error_texts_stored_by_older_code_are_answered_clean(probed: Any) -> None:
    """A ``status_reason`` or an order ``reason`` written before the engine cleaned them
    (or by a tool that does not) is still answered as one clean line."""
    gateway, alice, _root, _pid, aid = probed
    system = AuditContext.system()
    gateway.store.mark_asset_errored(system, aid, RAY_STYLE_REASON)
    shown = gateway.client.get(f"/api/assets/{aid}", headers=alice.headers).json()["status_reason"]
    assert_clean_line(shown, where="status_reason")
    assert shown.startswith("start failed: RayTaskError(DataError): ray::AssetActor.start()"), shown


def test_values_the_database_refuses_come_back_without_sql(store: Store, db_backend: str) -> None:
    """Past the API (the engine's writes, a tool using the Store): a value the database
    cannot store is an UnstorableValue naming what is wrong, in one line, with no
    statement or parameters; through a batch (the persistence actor's path) the outcome
    says the same."""
    system = AuditContext.system()
    owner = store.create_user(system, username="owner", password_hash="$2b$04$" + "x" * 53)
    bad_values = [{"name": "ok", "total_capital": "1", "portfolio_config": {"k": "nul\x00"}},
                  {"name": "ok2", "total_capital": "1", "portfolio_config": {"k\x00": 1}}]
    if db_backend == "postgresql":  # SQLite stores a NUL in a text column; PostgreSQL cannot
        bad_values.append({"name": "nul\x00name", "total_capital": "1"})
    before = _counts(store)
    for spec in bad_values:
        try:
            store.create_portfolio(system, spec, owner_id=owner.id)
        except UnstorableValue as exc:
            assert_clean_line(str(exc), where="create_portfolio")
            assert "NUL" in str(exc) or "character" in str(exc), str(exc)
        else:
            assert db_backend == "sqlite", spec  # SQLite's JSON text keeps \u0000 escaped
            continue
        write = WriteRequest(op="create_portfolio", ctx=system.with_request_id(uuid.uuid4().hex),
                             args=(spec,), kwargs={"owner_id": owner.id})
        (outcome,) = store.apply_batch([write])
        assert not outcome.ok and outcome.error_type == "UnstorableValue", outcome
        assert_clean_line(str(outcome.error), where="batch outcome")
    if db_backend == "postgresql":
        assert _counts(store) == before


def test_a_statement_the_database_refuses_is_reported_without_it(store: Store) -> None:
    """A write the database refuses for another reason (here a trigger; in life a bug)
    fails alone in its batch with what the database said, not the statement."""
    from tests.integration.persistence._helpers import install_failing_audit_trigger, remove_failing_audit_trigger

    system = AuditContext.system()
    write = WriteRequest(op="create_user", ctx=system.with_request_id(uuid.uuid4().hex),
                         kwargs={"username": "tr1gger", "password_hash": "$2b$04$" + "x" * 53})
    install_failing_audit_trigger(store.engine)
    try:
        (outcome,) = store.apply_batch([write])
    finally:
        remove_failing_audit_trigger(store.engine)
    assert not outcome.ok and "forced audit failure" in str(outcome.error), outcome
    assert_clean_line(str(outcome.error), where="batch outcome")


# ------------------------------------------------------------------- malformed Content-Length

MALFORMED = [b"Content-Length: abc", b"Content-Length: -1", b"Content-Length: 1x",
             b"Content-Length: 5\r\nContent-Length: 7"]


def _raw(base_url: str, header: bytes) -> bytes:
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + header + b"\r\n\r\n{}")
        received = b""
        while True:
            chunk = sock.recv(4096)  # the server closes the connection after the answer
            if not chunk:
                return received
            received += chunk


def _assert_json_400(reply: bytes) -> None:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), reply[:200]
    headers = head.decode("latin-1").lower()
    assert "content-type: application/json" in headers and "x-content-type-options: nosniff" in headers, headers
    error = json.loads(body)["error"]
    assert error["code"] == "bad_request" and "Content-Length" in error["message"], error


@pytest.mark.parametrize("header", MALFORMED)
def test_malformed_content_length_gets_the_json_error_shape(live_gateway: Gateway, header: bytes) -> None:
    _assert_json_400(_raw(live_gateway.base_url, header))
    assert live_gateway.client.get("/health").status_code == 200  # the server is fine


def test_both_uvicorn_protocols_answer_in_json(sqlite_db_url: str) -> None:
    """The subclass works over h11 too (uvicorn's protocol when httptools is missing)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    store = Store.from_url(sqlite_db_url)
    app = create_app(base_config(sqlite_db_url), store=store, aaa=make_aaa())
    config = uvicorn.Config(app, host="127.0.0.1", port=0, http=json_error_protocol(H11Protocol),
                            lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        for header in MALFORMED[:3]:
            _assert_json_400(_raw(f"http://127.0.0.1:{port}", header))
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()


def test_the_apps_own_check_answers_the_same(sqlite_gateway: Gateway) -> None:
    """In front of any ASGI server that passes a malformed Content-Length through."""
    for value in ("abc", "-1", "+5"):
        resp = sqlite_gateway.client.post("/api/auth/login", content=b"{}", headers={"content-length": value})
        assert resp.status_code == 400, (value, resp.text)
        assert resp.json()["error"] == {"code": "bad_request", "message": "invalid Content-Length header",
                                        "details": None}


# ------------------------------------------------------- with the engine: every failure kind


def _wait(predicate: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


@pytest.mark.ray
def test_every_client_visible_error_is_one_clean_line(ray_session: Any, db_url: str, tmp_path: Path,
                                                      backtesting_data_dir: Path) -> None:
    """Missing file, bad CSV, a strategy raising an exception full of server internals,
    an asset actor killed: then the asset's ``status_reason``, the engine status, the
    statistics, the audit details and the step result all say what happened in one line."""
    import ray

    from actors import naming
    from tests.integration.actors.engine_helpers import engine_config, write_ohlc_csv
    from tests.integration.api.e2e_support import engine_and_gateway
    from tests.integration.api.leaky_strategy import LEAKS, registered_leaky_strategy

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    source = backtesting_data_dir / "EURUSD.csv"
    for name in ("good.csv", "gone.csv", "bad.csv"):
        write_ohlc_csv(source, data_dir / name, slice(0, 2000))
    secret = "SECRET-MARKER-" + uuid.uuid4().hex[:8]
    leaks = (*LEAKS, secret, str(tmp_path / "elsewhere"))
    config = engine_config(db_url, data_dir, max_asset_restarts=0)
    with registered_leaky_strategy() as leaky, engine_and_gateway(config) as live:
        client = live.journey.client
        aaa = make_aaa()
        live.store.create_user(AuditContext.system(), username="root", password_hash=aaa.hash_password(PASSWORD),
                               role=Role.ADMIN)
        live.store.create_user(AuditContext.system(), username="owner", password_hash=aaa.hash_password(PASSWORD))

        def login(name: str) -> dict[str, str]:
            resp = client.post("/api/auth/login", json={"username": name, "password": PASSWORD})
            assert resp.status_code == 200, resp.text
            return {"Authorization": f"Bearer {resp.json()['access_token']}"}

        owner, admin = login("owner"), login("root")
        # Paced, so the healthy asset is still running when it is killed.
        resp = client.post("/api/portfolios", headers=owner,
                           json={"name": "leaks", "total_capital": "40000", "latency": 0.5})
        assert resp.status_code == 201, resp.text
        pid = resp.json()["id"]
        ids: dict[str, int] = {}
        for key, body in {
            "healthy": {"symbol": "GOOD", "data_source": {"path": "good.csv"}},
            "missing": {"symbol": "GONE", "data_source": {"path": "gone.csv"}},
            "bad_csv": {"symbol": "BAD", "data_source": {"path": "bad.csv"}},
            "raising": {"symbol": "LEAK", "strategy_plugin": leaky, "data_source": {"path": "good.csv"}},
        }.items():
            resp = client.post(f"/api/portfolios/{pid}/assets", headers=owner, json={**body, "allocated_capital": "1000"})
            assert resp.status_code == 201, resp.text
            ids[key] = resp.json()["id"]
            assert client.post(f"/api/assets/{ids[key]}/activate", headers=owner).status_code == 200
        # The files go wrong after the checks at create time: one disappears, one becomes
        # a file that is no CSV (and whose content must never be quoted).
        (data_dir / "gone.csv").unlink()
        (data_dir / "bad.csv").write_text(f"root:x:0:0:{secret}:/root:/bin/bash\n{secret},\x00,\x1b[31m\n")
        assert client.post(f"/api/portfolios/{pid}/activate", headers=owner).status_code == 200

        def asset(key: str) -> dict[str, Any]:
            resp = client.get(f"/api/assets/{ids[key]}", headers=owner)
            assert resp.status_code == 200, resp.text
            return resp.json()

        def engine_assets() -> dict[int, dict[str, Any]]:
            resp = client.get("/api/engine/status", headers=owner)
            assert resp.status_code == 200, resp.text
            return {a["asset_id"]: a for a in resp.json()["details"].get("assets", [])}

        _wait(lambda: asset("missing")["status"] == "errored" and asset("bad_csv")["status"] == "errored", 120,
              "the assets with a missing and a bad file to be errored")
        _wait(lambda: (engine_assets().get(ids["raising"]) or {}).get("last_error"), 120,
              "the raising strategy's failure in the engine status")
        _wait(lambda: (engine_assets().get(ids["healthy"]) or {}).get("state") == "running", 60,
              "the healthy asset to run")
        step = client.post("/api/trading/execute", headers=owner, json={"asset_id": ids["raising"]})
        assert step.status_code == 200, step.text
        ray.kill(ray.get_actor(naming.asset(ids["healthy"]), namespace=live.namespace), no_restart=True)
        _wait(lambda: asset("healthy")["status"] == "errored", 60, "the killed asset to be errored")

        # The heartbeat writes no statistics rows any more: check what both statistics
        # routes answer now (trading figures per portfolio and asset, and stored rows).
        trading = client.get("/api/statistics", headers=owner, params={"page_size": 500})
        assert trading.status_code == 200, trading.text
        records = client.get("/api/statistics/records", headers=owner, params={"portfolio_id": pid, "page_size": 500})
        assert records.status_code == 200, records.text
        stats = [trading.json(), *(r["values"] for r in records.json()["items"])]
        assets = {key: asset(key) for key in ids}
        status = client.get("/api/engine/status", headers=owner).json()
        audits = client.get("/api/audit-logs", headers=admin, params={"target_type": "asset", "page_size": 500})
        assert audits.status_code == 200, audits.text

    # What each failure says, in words a user can act on (files named inside data_dir).
    assert "gone.csv" in assets["missing"]["status_reason"], assets["missing"]
    assert "bad.csv" in assets["bad_csv"]["status_reason"], assets["bad_csv"]
    assert "died" in assets["healthy"]["status_reason"], assets["healthy"]
    assert "RuntimeError: boom" in step.json()["reason"], step.json()
    errors = {a["asset_id"]: a["last_error"] for a in status["details"]["assets"]}
    assert errors[ids["raising"]].startswith("strategy: RuntimeError: boom"), errors
    rows = [r for r in audits.json()["items"] if r["target_id"] in {str(i) for i in ids.values()}]
    actions = {r["action"] for r in rows}
    assert {"asset.errored", "asset.step_failed"} <= actions, actions
    # ...and nothing of the server's insides, anywhere a client looks.
    fields: list[tuple[str, Any]] = [
        *((f"asset {key}", a["status_reason"]) for key, a in assets.items()),
        ("engine status", status), ("statistics", stats),
        ("audit details", [r["details"] for r in rows]), ("step result", step.json()),
    ]
    for where, value in fields:
        for text in strings(value):
            assert_clean_line(text, data_dir=data_dir, leaks=leaks, where=where)
