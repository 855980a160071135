"""``/api/backtests`` on a real uvicorn server on loopback, with a real Store (SQLite),
the real AAA plugin and the real launcher running the batch on the shared Ray session.

The engine handle here is the small adapter the actor runtime provides (``store`` plus
``submit_backtest`` delegating to ``BacktestLauncher``); the gateway's other engine
calls are not used by these routes.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from actors.backtests.launcher import BacktestLauncher
from api.app import create_app
from engine.config.lts_config import LTSConfig
from persistence.schema import create_schema
from persistence.store import Store

pytestmark = pytest.mark.ray

PASSWORD = "Backtest-Pass1"


class LauncherHandle:
    """The backtest part of the actor runtime's engine handle."""

    def __init__(self, store: Store, launcher: BacktestLauncher) -> None:
        self.store = store
        self._launcher = launcher

    def submit_backtest(self, **kwargs: Any) -> None:
        self._launcher.submit_backtest(**kwargs)


class LoopbackServer:
    """uvicorn serving ``app`` on 127.0.0.1 (free port) in a thread."""

    def __init__(self, app: Any) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                                    log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture()
def layout(tmp_path: Path, backtest_data: list[Path]) -> dict[str, Path]:
    """data_dir with two CSVs (one in a subfolder), a file outside it, and a symlink
    inside it that points outside."""
    data = tmp_path / "data"
    (data / "fx").mkdir(parents=True)
    shutil.copy(backtest_data[0], data / "eurusd_a.csv")
    shutil.copy(backtest_data[2], data / "fx" / "goog_a.csv")
    outside = tmp_path / "secret.csv"
    shutil.copy(backtest_data[1], outside)
    os.symlink(outside, data / "link.csv")
    return {"data": data, "outside": outside, "results": tmp_path / "results", "db": tmp_path / "lts.db"}


@pytest.fixture()
def api(ray_session: Any, layout: dict[str, Path]) -> Iterator[tuple[httpx.Client, Store]]:
    url = f"sqlite:///{layout['db']}"
    store = Store.from_url(url)
    create_schema(store.engine)
    config = LTSConfig.from_values(
        database_url=url, data_dir=str(layout["data"]), backtest_dir=str(layout["results"]),
        jwt_secret="k" * 48, rate_limit_per_minute=100_000,
    )
    launcher = BacktestLauncher(store)
    app = create_app(config, store=store, engine=LauncherHandle(store, launcher))  # type: ignore[arg-type]
    try:
        with LoopbackServer(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
            yield client, store
    finally:
        launcher.shutdown()
        store.close()


def _login(client: httpx.Client, username: str) -> dict[str, str]:
    reg = client.post("/api/auth/register", json={"username": username, "password": PASSWORD})
    assert reg.status_code == 201, reg.text
    tokens = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert tokens.status_code == 200, tokens.text
    return {"Authorization": f"Bearer {tokens.json()['access_token']}"}


def _wait_finished(client: httpx.Client, run_id: int, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        body = client.get(f"/api/backtests/{run_id}", headers=headers).json()
        if body["status"] in ("completed", "failed", "cancelled"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"backtest run {run_id} did not finish: {body}")


def test_paths_outside_the_data_dir_are_refused(api: tuple[httpx.Client, Store], layout: dict[str, Path]) -> None:
    client, store = api
    headers = _login(client, "ann")
    attempts = [
        ("../secret.csv", "'..' is not allowed"),
        ("fx/../../secret.csv", "'..' is not allowed"),
        (str(layout["outside"]), "resolves outside the data directory"),
        ("link.csv", "resolves outside the data directory"),
        ("*.csv", "resolves outside the data directory"),  # the glob reaches the symlink
        ("~/secret.csv", "relative to the data directory"),
        ("missing.csv", "no such file in the data directory"),
    ]
    for entry, fragment in attempts:
        answer = client.post("/api/backtests", headers=headers,
                             json={"files": ["fx/goog_a.csv", entry], "strategy": "sma_cross"})
        assert answer.status_code == 422, (entry, answer.text)
        message = answer.json()["error"]["message"]
        assert message.startswith(f"files[1] {entry!r}") and fragment in message, message
    assert store.list_backtest_runs().total == 0  # nothing was recorded, nothing ran


def test_bad_strategy_or_parameter_is_422(api: tuple[httpx.Client, Store]) -> None:
    client, _ = api
    headers = _login(client, "bob")
    answer = client.post("/api/backtests", headers=headers,
                         json={"files": ["eurusd_a.csv"], "strategy": "sma_crosss"})
    assert answer.status_code == 422 and "unknown strategy plugin 'sma_crosss'" in answer.text
    answer = client.post("/api/backtests", headers=headers,
                         json={"files": ["eurusd_a.csv"], "strategy": "sma_cross", "grid": {"fsat": [1, 2]}})
    assert answer.status_code == 422 and "did you mean 'fast'" in answer.text
    assert client.post("/api/backtests", json={"files": ["x"], "strategy": "s"}).status_code == 401


def test_submit_run_list_results_and_report_owned_by_the_user(
    api: tuple[httpx.Client, Store], layout: dict[str, Path]
) -> None:
    client, store = api
    ann, bob = _login(client, "ann2"), _login(client, "bob2")
    answer = client.post("/api/backtests", headers=ann, json={
        "files": ["eurusd_a.csv", str(layout["data"] / "fx" / "goog_a.csv")],
        "strategy": "sma_cross", "params": {"slow": 30, "quantity": 1000}, "grid": {"fast": [5, 10]},
    })
    assert answer.status_code == 202, answer.text
    submitted = answer.json()
    assert submitted["total_jobs"] == 4 and submitted["status"] in ("queued", "running", "completed")
    assert submitted["data_files"] == ["eurusd_a.csv", "fx/goog_a.csv"]  # no server paths

    done = _wait_finished(client, submitted["id"], ann)
    assert done["status"] == "completed" and done["error"] is None
    assert done["completed_jobs"] == 4 and len(done["results"]) == 4
    assert {(r["data_file"], r["params"]["grid"]["fast"]) for r in done["results"]} == {
        ("eurusd_a.csv", 5), ("eurusd_a.csv", 10), ("fx/goog_a.csv", 5), ("fx/goog_a.csv", 10)}
    for result in done["results"]:
        assert result["error"] is None and result["trades_count"] == result["stats"]["trades"] > 0
        assert isinstance(result["stats"]["total_return"], float)

    report = client.get(done["report_url"], headers=ann)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "Winner: <b>" in report.text and report.text.count("data:image/png;base64,") == 2 + 4

    listed = client.get("/api/backtests", headers=ann).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == submitted["id"]
    # Another user neither sees nor downloads it.
    assert client.get("/api/backtests", headers=bob).json()["total"] == 0
    assert client.get(f"/api/backtests/{submitted['id']}", headers=bob).status_code == 404
    assert client.get(done["report_url"], headers=bob).status_code == 404
    # An administrator sees everyone's runs.
    from engine.plugins.loader import create_plugin
    from persistence.records import AuditContext

    aaa = create_plugin("aaa", "default_aaa", {})
    store.create_user(AuditContext.system(), username="root2", role="admin",
                      password_hash=aaa.hash_password(PASSWORD))  # type: ignore[attr-defined]
    token = client.post("/api/auth/login", json={"username": "root2", "password": PASSWORD}).json()
    admin = {"Authorization": f"Bearer {token['access_token']}"}
    assert [r["id"] for r in client.get("/api/backtests", headers=admin).json()["items"]] == [submitted["id"]]
    assert client.get(f"/api/backtests/{submitted['id']}", headers=admin).json()["status"] == "completed"
    assert store.list_audit_logs(action="backtest.create").items[0].user_id == done["owner_id"]


def test_without_an_engine_submission_is_503(ray_session: Any, layout: dict[str, Path]) -> None:
    url = f"sqlite:///{layout['db']}"
    store = Store.from_url(url)
    create_schema(store.engine)
    config = LTSConfig.from_values(database_url=url, data_dir=str(layout["data"]),
                                   backtest_dir=str(layout["results"]), jwt_secret="k" * 48)
    try:
        with LoopbackServer(create_app(config, store=store)) as base_url, \
                httpx.Client(base_url=base_url, timeout=30) as client:
            headers = _login(client, "cid")
            answer = client.post("/api/backtests", headers=headers,
                                 json={"files": ["eurusd_a.csv"], "strategy": "sma_cross"})
            assert answer.status_code == 503 and "lts run" in answer.json()["error"]["message"]
            assert store.list_backtest_runs().total == 0
    finally:
        store.close()


def test_odd_inputs_are_4xx_never_5xx(api: tuple[httpx.Client, Store], layout: dict[str, Path]) -> None:
    client, store = api
    headers = _login(client, "dan")
    os.symlink(layout["data"] / "loop_b.csv", layout["data"] / "loop_a.csv")
    os.symlink(layout["data"] / "loop_a.csv", layout["data"] / "loop_b.csv")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"files": ["x" * 300 + ".csv"], "strategy": "sma_cross"}, "cannot be read"),
        ({"files": ["loop_a.csv"], "strategy": "sma_cross"}, "files[0] 'loop_a.csv': cannot be read"),
        ({"files": ["eurusd_a.csv"], "strategy": "sma_cross", "params": {"slow": float("nan")}},
         "not a finite number"),
        ({"files": ["eurusd_a.csv"], "strategy": "sma_cross", "grid": {"fast": [1, float("inf")]}},
         "not a finite number"),
        ({"files": ["eurusd_a.csv"], "strategy": "sma_cross", "grid": {"fast": []}}, "no values"),
        ({"files": [], "strategy": "sma_cross"}, "files"),
    ]
    for body, fragment in cases:
        answer = client.post("/api/backtests", headers={**headers, "content-type": "application/json"},
                             content=json.dumps(body))  # json.dumps writes NaN/Infinity as is
        assert answer.status_code == 422, (body, answer.text)
        assert fragment in answer.text, (body, answer.text)
    assert client.get(f"/api/backtests/{2**63}", headers=headers).status_code == 422
    assert client.get("/api/backtests/999", headers=headers).status_code == 404
    assert client.get("/api/backtests/999/report", headers=headers).status_code == 404
    assert store.list_backtest_runs().total == 0
