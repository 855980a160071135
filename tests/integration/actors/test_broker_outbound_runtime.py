"""Outbound endpoints and credentials in the running engine (real Ray, real SQLite and
PostgreSQL, real loopback HTTP servers): rows that reach the engine without the API's
checks (written through the Store) still cannot make the server call a host outside the
operator's allow-list; the operator's OANDA token goes only to portfolios the operator's
config assigns it to; a user's own token, given over the API, is what the broker sees.

The operator's environment (``OANDA_ACCESS_TOKEN``, ``OANDA_ACCOUNT_ID``,
``LTS_CREDENTIALS_KEY``) reaches the broker actor, where plugins are created, the way a
worker inherits it: the test starts that actor itself with a ``runtime_env``, and the
engine adopts it (``get_if_exists``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray
from cryptography.fernet import Fernet

from actors import naming
from actors.broker_actor import BrokerActor
from actors.remote import make_remote
from engine.credentials import CREDENTIALS_KEY_ENV
from tests.fixtures.recording_listener import recording_listener
from tests.integration.actors.engine_helpers import engine_config, running_engine, seed_portfolio, wait_for

pytestmark = pytest.mark.ray

HEARTBEAT_S = 0.25
OPERATOR_TOKEN = "operator-oanda-token-" + uuid.uuid4().hex
USER_TOKEN = "user-oanda-token-" + uuid.uuid4().hex


@contextmanager
def operator_broker_actor(namespace: str, env: dict[str, str]) -> Iterator[Any]:
    """The broker actor of the engine about to start in ``namespace``, with the operator's
    environment (as `lts run`'s workers inherit it, or `ray start` nodes have it set)."""
    handle = make_remote(BrokerActor).options(
        name=naming.BROKER, namespace=namespace, runtime_env={"env_vars": env}).remote()
    ray.get(handle.ping.remote(), timeout=120)
    try:
        yield handle
    finally:
        try:
            ray.kill(handle, no_restart=True)
        except Exception:
            pass


def _status(store: Any, asset_id: int) -> tuple[str, str]:
    record = store.get_asset(asset_id)
    return str(getattr(record.status, "value", record.status)), record.status_reason or ""


def _errored(store: Any, asset_id: int) -> str | None:
    state, reason = _status(store, asset_id)
    return reason if state == "errored" else None


def test_rows_written_past_the_api_cannot_reach_an_unlisted_host(ray_session, store, db_url, tmp_path: Path):
    with recording_listener() as listener:
        # Straight through the Store: the API's checks never saw these configs.
        _, (oanda, backtrader) = seed_portfolio(store, [
            {"symbol": "EURUSD", "strategy_plugin": "default_strategy", "broker_plugin": "oanda_broker",
             "broker_config": {"api_url": listener.url, "access_token": USER_TOKEN, "account_id": "101-1"}},
            {"symbol": "USDJPY", "strategy_plugin": "default_strategy", "broker_plugin": "backtrader_broker",
             "broker_config": {"prediction_source": "api", "prediction_provider_url": listener.url + "/p"}},
        ], latency=HEARTBEAT_S)
        config = engine_config(db_url, tmp_path, mode="live", global_latency=HEARTBEAT_S)  # default allow-list
        with running_engine(config):
            wait_for(lambda: listener.requests or (_errored(store, oanda) and _errored(store, backtrader)),
                     90, what="both assets to be refused")
        assert listener.requests == []
        reasons = (_errored(store, oanda) or "", _errored(store, backtrader) or "")
        # (the client-visible reason may show the address masked: internal addresses stay in the server log)
        for reason, key in zip(reasons, ("api_url", "prediction_provider_url"), strict=True):
            assert f"broker_config.{key}: host " in reason
            assert "is not in the operator's outbound_hosts allow-list" in reason
        assert USER_TOKEN not in reasons[0]


def test_the_operators_token_goes_only_to_the_portfolios_its_config_assigns(
        ray_session, store, db_url, tmp_path: Path, oanda_stub, monkeypatch):
    oanda_stub.state.access_token = OPERATOR_TOKEN
    env = {"OANDA_ACCESS_TOKEN": OPERATOR_TOKEN, "OANDA_ACCOUNT_ID": oanda_stub.account_id}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with recording_listener() as listener:
        # Both allowed hosts, no credentials of their own: only the assignment differs.
        assigned, (trading,) = seed_portfolio(store, [
            {"symbol": "EURUSD", "strategy_plugin": "default_strategy", "broker_plugin": "oanda_broker",
             "broker_config": {"api_url": oanda_stub.url}}], latency=HEARTBEAT_S)
        _, (refused,) = seed_portfolio(store, [
            {"symbol": "EURUSD", "strategy_plugin": "default_strategy", "broker_plugin": "oanda_broker",
             "broker_config": {"api_url": listener.url}}], latency=HEARTBEAT_S)
        config = engine_config(db_url, tmp_path, mode="live", global_latency=HEARTBEAT_S,
                               outbound_hosts=[oanda_stub.host, listener.host], operator_broker_portfolios=[assigned])
        with operator_broker_actor(config["ray_namespace"], env), running_engine(config) as runtime:
            wait_for(lambda: listener.requests or _errored(store, refused), 90, what="the unassigned asset to be refused")
            assert listener.requests == []  # the unassigned asset sent nothing, with no token or any
            reason = _errored(store, refused) or ""
            wait_for(lambda: oanda_stub.state.count("pricing") >= 3, 60, what="the assigned asset's heartbeats")
            running = {a["asset_id"]: a for a in runtime.status()["assets"]}
        assert "no credentials of its own" in reason and "operator_broker_portfolios" in reason
        assert OPERATOR_TOKEN not in reason
        assert listener.requests == []
        assert running[trading]["state"] == "running" and _status(store, trading)[0] == "active"
        assert set(oanda_stub.state.authorizations) == {f"Bearer {OPERATOR_TOKEN}"}


def test_a_users_own_token_given_over_the_api_is_what_the_broker_sees(
        ray_session, store, db_url, tmp_path: Path, oanda_stub, monkeypatch, caplog):
    from persistence.records import AuditContext
    from tests.integration.api.conftest import PASSWORD, make_aaa, serve_live

    key = Fernet.generate_key().decode()
    oanda_stub.state.access_token = USER_TOKEN
    env = {CREDENTIALS_KEY_ENV: key, "OANDA_ACCESS_TOKEN": OPERATOR_TOKEN, "OANDA_ACCOUNT_ID": oanda_stub.account_id}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    running_gateway, _, _ = serve_live(db_url, outbound_hosts=[oanda_stub.host])
    try:
        with httpx.Client(base_url=running_gateway.url, timeout=10.0) as client:
            username = f"u{uuid.uuid4().hex[:8]}"
            store.create_user(AuditContext.system(), username=username, password_hash=make_aaa().hash_password(PASSWORD))
            tokens = client.post("/api/auth/login", json={"username": username, "password": PASSWORD}).json()
            headers = {"Authorization": f"Bearer {tokens['access_token']}"}
            portfolio = client.post("/api/portfolios", headers=headers,
                                    json={"name": "mine", "total_capital": "1000", "latency": HEARTBEAT_S}).json()
            asset = client.post(f"/api/portfolios/{portfolio['id']}/assets", headers=headers, json={
                "symbol": "EURUSD", "strategy_plugin": "default_strategy", "broker_plugin": "oanda_broker",
                "broker_config": {"api_url": oanda_stub.url, "account_id": oanda_stub.account_id,
                                  "access_token": USER_TOKEN}})
            assert asset.status_code == 201, asset.text
            for url in (f"/api/assets/{asset.json()['id']}/activate", f"/api/portfolios/{portfolio['id']}/activate"):
                assert client.post(url, headers=headers).status_code == 200
            answers = [asset.text, client.get(f"/api/assets/{asset.json()['id']}", headers=headers).text]
    finally:
        running_gateway.stop()

    config = engine_config(db_url, tmp_path, mode="live", global_latency=HEARTBEAT_S, outbound_hosts=[oanda_stub.host])
    with operator_broker_actor(config["ray_namespace"], env), running_engine(config):
        wait_for(lambda: oanda_stub.state.count("pricing") >= 3, 90, what="the user's asset's heartbeats")
    assert set(oanda_stub.state.authorizations) == {f"Bearer {USER_TOKEN}"}  # never the operator's
    assert all(USER_TOKEN not in text for text in answers)
    assert all(USER_TOKEN not in r.getMessage() for r in caplog.records)
