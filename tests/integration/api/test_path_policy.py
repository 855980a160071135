"""Every field that takes a path, on SQLite and PostgreSQL, over a real uvicorn gateway:
a path out of ``data_dir`` (absolute, ``..``, a symlink out, the JWT secret file, the
database file, /etc/passwd) is a 422 naming the field at create/update, and nothing is
written (no row, no audit row). A bad row that bypassed the API (written before the
check) is refused by the engine too, and no file content reaches any response.

The server's files sit beside ``data_dir`` as in a real deployment: ``srv/data``,
``srv/state`` (the generated JWT secret), ``srv/reports``; the SQLite file is the
``db_url`` fixture's, outside ``data_dir``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.signing_key import resolve_jwt_secret
from engine.user_paths import sqlite_file
from persistence.enums import Role
from persistence.records import AssetCreate, AuditContext, PortfolioCreate
from persistence.store import Store
from tests.integration.actors.engine_helpers import engine_config, wait_for, write_ohlc_csv
from tests.integration.api.conftest import PASSWORD, Gateway, UserSession, make_aaa, served_gateway

MARKER = "s3cr3t-MARKER-in-a-file"


@dataclass
class Layout:
    root: Path
    data: Path
    state: Path
    reports: Path
    secret_file: Path
    secret: str
    outside_csv: Path
    db_file: Path | None

    def config(self) -> dict[str, Any]:
        return {"data_dir": str(self.data), "state_dir": str(self.state), "backtest_dir": str(self.reports)}

    def targets(self) -> dict[str, str]:
        """What an attacker names, by kind: each must be refused for every path field."""
        found = {
            "absolute path outside": str(self.outside_csv),
            "'..' out": "../outside.csv",
            "'..' inside a folder": "fx/../../outside.csv",
            "symlink out of data_dir": "link.csv",
            "symlinked folder out": "statelink/jwt_secret",
            "the jwt secret file": str(self.secret_file),
            "the jwt secret by '..'": "../state/jwt_secret",
            "/etc/passwd": "/etc/passwd",
        }
        if self.db_file is not None:
            found["the database file"] = str(self.db_file)
        return found

    def leaks(self, text: str, sent: str = "") -> list[str]:
        """File content found in a client-visible text, or a server folder the client did
        not name itself (its own text may be echoed; what the server resolved may not)."""
        shown = [self.secret, MARKER, "root:x:0:0", *(str(p) for p in (self.state, self.data) if str(p) not in sent)]
        return [s for s in shown if s in text]


@pytest.fixture()
def layout(tmp_path: Path, db_url: str, backtesting_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Layout:
    srv = tmp_path / "srv"
    data, state, reports = srv / "data", srv / "state", srv / "reports"
    (data / "fx").mkdir(parents=True)
    write_ohlc_csv(backtesting_data_dir / "EURUSD.csv", data / "ok.csv", slice(0, 300))
    outside = write_ohlc_csv(backtesting_data_dir / "EURUSD.csv", srv / "outside.csv", slice(0, 300))
    monkeypatch.delenv("LTS_JWT_SECRET", raising=False)
    secret = resolve_jwt_secret({"database_url": db_url, "jwt_secret": None, "data_dir": str(data),
                                 "state_dir": str(state), "backtest_dir": str(reports)})
    secret_file = state / "jwt_secret"
    assert secret_file.read_text().strip() == secret
    os.symlink(secret_file, data / "link.csv")
    os.symlink(state, data / "statelink")
    database = sqlite_file(db_url)
    return Layout(srv, data, state, reports, secret_file, secret, outside, database)


@pytest.fixture()
def api(db_url: str, layout: Layout) -> Iterator[Gateway]:
    """A real uvicorn gateway with the layout's folders (no engine)."""
    with served_gateway(db_url, timeout_s=30.0, **layout.config()) as gateway:
        yield gateway


def _user_with_portfolio(api: Gateway, name: str) -> tuple[UserSession, int]:
    api.make_user(name)
    user = api.login(name)
    made = api.client.post("/api/portfolios", headers=user.headers, json={"name": f"{name}-p", "total_capital": "1000"})
    assert made.status_code == 201, made.text
    return user, made.json()["id"]


# ---------------------------------------------------------------- the field matrix

@dataclass(frozen=True)
class PathField:
    """A request field that takes a path, and how to send a value in it."""

    name: str  # what the 422 must name
    send: Callable[[Gateway, UserSession, int, int, str], httpx.Response]


def _create(key: str, extra: dict[str, Any] | None = None) -> Callable[..., httpx.Response]:
    def send(api: Gateway, user: UserSession, pid: int, _aid: int, value: str) -> httpx.Response:
        body = {"symbol": "EURUSD", **(extra or {})}
        body.setdefault("data_source", {})
        if key:
            body["data_source"] = {key: value}
        return api.client.post(f"/api/portfolios/{pid}/assets", headers=user.headers, json=body)
    return send


def _update(key: str) -> Callable[..., httpx.Response]:
    def send(api: Gateway, user: UserSession, _pid: int, aid: int, value: str) -> httpx.Response:
        return api.client.put(f"/api/assets/{aid}", headers=user.headers, json={"data_source": {key: value}})
    return send


def _backtest(api: Gateway, user: UserSession, _pid: int, _aid: int, value: str) -> httpx.Response:
    return api.client.post("/api/backtests", headers=user.headers, json={"files": ["ok.csv", value], "strategy": "sma_cross"})


def _prediction_csv(api: Gateway, user: UserSession, pid: int, _aid: int, value: str) -> httpx.Response:
    body = {"symbol": "EURUSD", "broker_plugin": "backtrader_broker", "broker_config": {"prediction_csv": value}}
    return api.client.post(f"/api/portfolios/{pid}/assets", headers=user.headers, json=body)


PATH_FIELDS = [
    PathField("data_source.path", _create("path")),
    PathField("data_source.csv", _create("csv")),  # the legacy alias the engine still reads
    PathField("data_source.path", _update("path")),
    PathField("data_source.csv", _update("csv")),
    PathField("files[1]", _backtest),
    # Plugin parameters that name a file (``plugin_path_params``; the backtrader broker's
    # prediction CSV) go through the same policy in api.plugin_config: add new ones here.
    PathField("broker_config.prediction_csv", _prediction_csv),
]
FIELD_IDS = ["create-path", "create-csv", "update-path", "update-csv", "backtest-files",
             "broker_config-prediction_csv"]


@pytest.mark.parametrize("field", PATH_FIELDS, ids=FIELD_IDS)
def test_every_path_field_refuses_every_way_out(api: Gateway, layout: Layout, field: PathField) -> None:
    user, pid = _user_with_portfolio(api, "mallory")
    asset = api.client.post(f"/api/portfolios/{pid}/assets", headers=user.headers,
                            json={"symbol": "EURUSD", "data_source": {"path": "ok.csv"}})
    assert asset.status_code == 201, asset.text
    aid = asset.json()["id"]
    assets_before = api.store.list_assets().total
    audit_before = api.audit_count()
    for kind, value in layout.targets().items():
        answer = field.send(api, user, pid, aid, value)
        assert answer.status_code == 422, (kind, answer.status_code, answer.text)
        message = answer.json()["error"]["message"]
        assert field.name in message and "\n" not in message, (kind, message)
        assert not layout.leaks(answer.text, sent=value), (kind, answer.text)
    assert api.store.list_assets().total == assets_before  # no row
    assert api.audit_count() == audit_before  # no audit row
    assert api.store.get_asset(aid).data_source == {"path": "ok.csv"}  # the update changed nothing
    assert api.store.list_backtest_runs().total == 0


def test_data_files_inside_data_dir_are_accepted(api: Gateway, layout: Layout) -> None:
    user, pid = _user_with_portfolio(api, "alice")
    sources = [{"path": "ok.csv"}, {"csv": "ok.csv"}, {"path": str(layout.data / "ok.csv")},
               {"path": "./ok.csv", "datetime_column": "DATE_TIME", "drop_invalid": True, "predictions": "csv"}, {}]
    for number, source in enumerate(sources):
        made = api.client.post(f"/api/portfolios/{pid}/assets", headers=user.headers,
                               json={"symbol": f"S{number}", "data_source": source})
        assert made.status_code == 201, (source, made.text)
        assert made.json()["data_source"] == source  # stored as given
    aid = made.json()["id"]
    moved = api.client.put(f"/api/assets/{aid}", headers=user.headers, json={"data_source": {"path": "ok.csv"}})
    assert moved.status_code == 200 and moved.json()["data_source"] == {"path": "ok.csv"}


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ({"csv_path": "ok.csv"}, "data_source: unknown key 'csv_path': did you mean 'path'?"),
        ({"paht": "ok.csv"}, "did you mean 'path'?"),
        ({"xyz": 1}, "unknown key 'xyz': known keys: path, csv, datetime_column, drop_invalid, predictions"),
        ({"path": "ok.csv", "csv": "ok.csv"}, "give 'path' or its legacy alias 'csv', not both"),
        ({"path": {"nested": {"deeper": 1}}}, "data_source.path"),
        ({"path": "missing.csv"}, "data_source.path 'missing.csv': no such file in the data directory"),
        ({"path": "ok.csv", "drop_invalid": "yes"}, "data_source.drop_invalid"),
        ({"path": "ok.csv", "predictions": "ftp"}, "data_source.predictions"),
    ],
)
def test_data_source_keys_and_values_are_checked(api: Gateway, source: dict[str, Any], fragment: str) -> None:
    user, pid = _user_with_portfolio(api, "bob")
    audit_before = api.audit_count()
    answer = api.client.post(f"/api/portfolios/{pid}/assets", headers=user.headers,
                             json={"symbol": "EURUSD", "data_source": source})
    assert answer.status_code == 422, answer.text
    assert fragment in answer.json()["error"]["message"], answer.text
    assert api.store.list_assets().total == 0 and api.audit_count() == audit_before


def test_another_users_asset_is_404_before_any_path_check(api: Gateway) -> None:
    owner, pid = _user_with_portfolio(api, "olga")
    aid = api.client.post(f"/api/portfolios/{pid}/assets", headers=owner.headers,
                          json={"symbol": "EURUSD", "data_source": {"path": "ok.csv"}}).json()["id"]
    other, _ = _user_with_portfolio(api, "eve")
    answer = api.client.put(f"/api/assets/{aid}", headers=other.headers, json={"data_source": {"path": "/etc/passwd"}})
    assert answer.status_code == 404, answer.text


def test_openapi_describes_the_data_source_the_engine_reads(api: Gateway) -> None:
    schema = api.client.get("/openapi.json").json()
    text = str(schema)
    assert "csv_path" not in text
    source = schema["components"]["schemas"]["DataSource"]
    assert set(source["properties"]) == {"path", "csv", "datetime_column", "drop_invalid", "predictions"}
    assert source["additionalProperties"] is False and source["examples"][0] == {"path": "eurusd.csv"}


# ---------------------------------------------------------------- rows that bypassed the API

def _seed_bad_assets(store: Store, layout: Layout) -> tuple[int, dict[int, str], int]:
    """A user (who can log in), an active portfolio and its active assets, written through
    the Store as an older version (or a direct write) would have: bad paths included."""
    system = AuditContext.system()
    user = store.create_user(system, username="legacy", password_hash=make_aaa().hash_password(PASSWORD))
    store.create_user(system, username="operator", password_hash=make_aaa().hash_password(PASSWORD), role=Role.ADMIN)
    portfolio = store.create_portfolio(system, PortfolioCreate(name="legacy-p", total_capital=Decimal("40000"),
                                                               latency=0.05), owner_id=user.id)
    bad_csv = layout.data / "broken.csv"
    bad_csv.write_text(f"DATE_TIME,OPEN,HIGH,LOW,CLOSE\n2020-01-01 00:00:00,{MARKER},1,1,1\n")
    sources = {
        "secret-absolute": {"path": str(layout.secret_file)},
        "secret-dotdot": {"path": "../state/jwt_secret"},
        "symlink-out": {"path": "link.csv"},
        "passwd-legacy-csv-key": {"csv": "/etc/passwd"},
        "broken-inside": {"path": "broken.csv"},
    }
    if layout.db_file is not None:
        sources["database-file"] = {"path": str(layout.db_file)}
    kinds: dict[int, str] = {}
    for number, (kind, source) in enumerate(sources.items()):
        asset = store.create_asset(system, portfolio.id, AssetCreate(symbol=f"BAD{number}", data_source=source))
        store.activate_asset(system, asset.id)
        kinds[asset.id] = kind
    good = store.create_asset(system, portfolio.id, AssetCreate(symbol="EURUSD", data_source={"path": "ok.csv"}))
    store.activate_asset(system, good.id)
    store.activate_portfolio(system, portfolio.id)
    return portfolio.id, kinds, good.id


def test_a_bad_row_is_refused_by_the_engine_without_leaking_content(
    ray_session: Any, db_url: str, layout: Layout
) -> None:
    from tests.integration.api.e2e_support import engine_and_gateway

    store = Store.from_url(db_url)
    try:
        pid, kinds, good = _seed_bad_assets(store, layout)
    finally:
        store.close()
    config = engine_config(db_url, layout.data, backtest_dir=str(layout.reports), max_asset_restarts=0)
    with engine_and_gateway(config) as live:
        def all_errored() -> bool:
            return all(live.store.get_asset(aid).status_reason for aid in kinds)

        wait_for(all_errored, 120, what="every bad asset to be refused")
        for aid, kind in kinds.items():
            reason = live.store.get_asset(aid).status_reason or ""
            expected = "not a number" if kind == "broken-inside" else (
                "'..' is not allowed" if "dotdot" in kind else "resolves outside the data directory")
            assert expected in reason, (kind, reason)
        client = live.journey.client
        time.sleep(1.0)  # let a statistics flush happen
        seen = []
        for username in ("legacy", "operator"):  # the owner, and an admin (who sees the audit log)
            login = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
            assert login.status_code == 200, login.text
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            paths = ["/api/engine/status", "/api/statistics?page_size=500", "/api/statistics/records?page_size=500",
                     f"/api/portfolios/{pid}/assets",
                     *[f"/api/assets/{aid}" for aid in [*kinds, good]]]
            for path in paths + (["/api/audit-logs?page_size=500"] if username == "operator" else []):
                answer = client.get(path, headers=headers)
                assert answer.status_code == 200, (path, answer.text)
                seen.append(answer.text)
        for aid in kinds:
            status_reason = live.store.get_asset(aid).status_reason or ""
            assert not layout.leaks(status_reason), (kinds[aid], status_reason)
        for text in seen:
            # data_source itself is the user's own text (it may name the state folder): only
            # content, never a path the server resolved, may not appear.
            assert layout.secret not in text and MARKER not in text and "root:x:0:0" not in text
        engine_status = seen[0]
        assert str(layout.state) not in engine_status and str(layout.data) not in engine_status


# ---------------------------------------------------------------- startup refuses overlaps

def test_the_gateway_refuses_server_files_inside_data_dir(db_url: str, tmp_path: Path) -> None:
    from api.app import create_app
    from engine.errors import ConfigError
    from tests.integration.api.conftest import base_config

    data = tmp_path / "data"
    layouts = [{"data_dir": str(data), "state_dir": str(data / ".lts")},
               {"data_dir": str(tmp_path / "state" / "data"), "state_dir": str(tmp_path / "state")},
               {"data_dir": str(data), "state_dir": str(tmp_path / "state"), "backtest_dir": str(data / "out")}]
    if sqlite_file(db_url) is not None:  # the database file itself
        layouts.append({"data_dir": str(sqlite_file(db_url).parent), "state_dir": str(tmp_path / "state")})
    for folders in layouts:
        with pytest.raises(ConfigError, match="lies inside") as err:
            create_app({**base_config(db_url), **folders, "jwt_secret": None}, aaa=make_aaa())
        assert "\n" not in str(err.value)
    assert not list(tmp_path.rglob("jwt_secret"))  # refused before anything was written


def test_lts_run_refuses_a_database_inside_data_dir_before_creating_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from actors.cli import main

    data = tmp_path / "data"
    code = main(["run", "--database_url", f"sqlite:///{data}/lts.db", "--data_dir", str(data),
                 "--state_dir", str(tmp_path / "state"), "--no-demo"])
    err = capsys.readouterr().err
    assert code != 0 and "config key 'database_url'" in err and "lies inside data_dir" in err, err
    assert len(err.strip().splitlines()) == 1
    assert not data.exists() and not (tmp_path / "state").exists()
