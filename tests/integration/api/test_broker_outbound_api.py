"""Outbound endpoints and broker credentials over the real gateway (uvicorn on loopback),
on SQLite and PostgreSQL: a broker config naming a host outside the operator's allow-list
is a 422 at create and at PATCH /broker with nothing written; a user's own token is
write-only (a placeholder in every response), stored encrypted (the raw columns never
hold it), and never in an audit row or a log line."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from engine.credentials import CREDENTIALS_KEY_ENV, PLACEHOLDER, CredentialCipher
from persistence.records import PageRequest
from tests.fixtures.recording_listener import RecordingListener, recording_listener
from tests.integration.api.conftest import Gateway, UserSession, served_gateway, unique

ALLOWED = "127.0.0.1:1"  # what the operator allows here (nothing listens there)
USER_TOKEN = "user-own-oanda-token-0d5e2c7a91"


@pytest.fixture
def listener() -> Iterator[RecordingListener]:
    with recording_listener() as running:
        yield running


@pytest.fixture
def gateway(db_url: str, tmp_path) -> Iterator[Gateway]:
    """The gateway with an operator config: the allow-list names only ``ALLOWED`` (and the
    default prediction URL's host), user files live in ``tmp_path/data``."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "preds.csv").write_text("DATE_TIME,OPEN,HIGH,LOW,CLOSE\n")
    with served_gateway(db_url, outbound_hosts=[ALLOWED], data_dir=str(tmp_path / "data")) as gateway:
        yield gateway


def _user_portfolio(gateway: Gateway) -> tuple[UserSession, int]:
    name = unique("trader")
    gateway.make_user(name)
    user = gateway.login(name)
    resp = gateway.client.post("/api/portfolios", headers=user.headers, json={"name": name, "total_capital": "1000"})
    assert resp.status_code == 201, resp.text
    return user, resp.json()["id"]


def _audit_text(gateway: Gateway) -> str:
    rows = gateway.store.list_audit_logs(page=PageRequest(limit=500)).items
    return json.dumps([row.details for row in rows], default=str)


def _asset_count(gateway: Gateway, portfolio_id: int) -> int:
    return gateway.store.list_assets(portfolio_id=portfolio_id).total


@pytest.mark.parametrize(("plugin", "config", "field", "shown"), [
    ("oanda_broker", {"api_url": "https://attacker.example/v3"}, "broker_config.api_url", "host attacker.example:443"),
    ("oanda_broker", {"api_url": "LISTENER"}, "broker_config.api_url", "host 127.0.0.1:"),
    ("oanda_broker", {"api_url": "https://api-fxtrade.oanda.com.attacker.example"}, "broker_config.api_url",
     "host api-fxtrade.oanda.com.attacker.example:443"),
    ("backtrader_broker", {"prediction_provider_url": "LISTENER"}, "broker_config.prediction_provider_url",
     "host 127.0.0.1:"),
    ("backtrader_broker", {"prediction_csv": "../../etc/passwd"}, "broker_config.prediction_csv", "'..' is not allowed"),
    ("backtrader_broker", {"prediction_csv": "/etc/passwd"}, "broker_config.prediction_csv", "outside the data"),
])
def test_a_broker_config_outside_the_operators_rules_is_refused_at_create_and_patch(
        gateway, listener, plugin, config, field, shown):
    user, portfolio_id = _user_portfolio(gateway)
    config = {k: (listener.url if v == "LISTENER" else v) for k, v in config.items()}
    audit_before = gateway.audit_count(action="asset.create")

    resp = gateway.client.post(f"/api/portfolios/{portfolio_id}/assets", headers=user.headers,
                               json={"symbol": "EURUSD", "broker_plugin": plugin, "broker_config": config})
    assert resp.status_code == 422, resp.text
    message = resp.json()["error"]["message"]
    assert message.startswith(f"{field}") and shown in message and "\n" not in message
    assert _asset_count(gateway, portfolio_id) == 0 and gateway.audit_count(action="asset.create") == audit_before

    # an asset the rules allow, then a PATCH that points it elsewhere: refused, nothing changes
    resp = gateway.client.post(f"/api/portfolios/{portfolio_id}/assets", headers=user.headers, json={"symbol": "EURUSD"})
    assert resp.status_code == 201, resp.text
    asset = resp.json()
    changes_before = gateway.audit_count(action="asset.broker_change")
    resp = gateway.client.patch(f"/api/assets/{asset['id']}/broker", headers=user.headers,
                                json={"plugin": plugin, "config": config})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["message"].startswith(field) and shown in resp.json()["error"]["message"]
    after = gateway.store.get_asset(asset["id"])
    assert (after.broker_plugin, after.broker_config) == ("default_broker", {})
    assert gateway.audit_count(action="asset.broker_change") == changes_before
    assert listener.requests == []  # validating never calls the URL either


def test_a_host_the_operator_lists_is_accepted(gateway):
    user, portfolio_id = _user_portfolio(gateway)
    resp = gateway.client.post(f"/api/portfolios/{portfolio_id}/assets", headers=user.headers, json={
        "symbol": "EURUSD", "broker_plugin": "oanda_broker", "broker_config": {"api_url": f"http://{ALLOWED}"}})
    assert resp.status_code == 201, resp.text
    resp = gateway.client.patch(f"/api/assets/{resp.json()['id']}/broker", headers=user.headers, json={
        "plugin": "backtrader_broker", "config": {"prediction_csv": "preds.csv", "prediction_provider_url": f"http://{ALLOWED}"}})
    assert resp.status_code == 200, resp.text


def test_a_credential_is_refused_when_the_operator_has_not_enabled_them(gateway, monkeypatch):
    monkeypatch.delenv(CREDENTIALS_KEY_ENV, raising=False)
    user, portfolio_id = _user_portfolio(gateway)
    resp = gateway.client.post(f"/api/portfolios/{portfolio_id}/assets", headers=user.headers, json={
        "symbol": "EURUSD", "broker_plugin": "oanda_broker", "broker_config": {"access_token": USER_TOKEN}})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["message"].startswith(
        "broker_config: the operator has not enabled user credentials on this server")
    assert USER_TOKEN not in resp.text and _asset_count(gateway, portfolio_id) == 0


def _raw_columns(gateway: Gateway, asset_id: int) -> tuple[str, str]:
    with gateway.store.engine.connect() as conn:
        row = conn.execute(text("SELECT broker_config, broker_secrets FROM assets WHERE id = :id"), {"id": asset_id}).one()
    return tuple(v if isinstance(v, str) else json.dumps(v) for v in row)  # type: ignore[return-value]


def test_a_users_own_token_is_write_only_encrypted_and_never_audited_or_logged(gateway, monkeypatch, caplog):
    key = Fernet.generate_key().decode()
    monkeypatch.setenv(CREDENTIALS_KEY_ENV, key)
    caplog.set_level(logging.DEBUG)
    cipher = CredentialCipher.from_env({CREDENTIALS_KEY_ENV: key})
    user, portfolio_id = _user_portfolio(gateway)
    answers: list[httpx.Response] = []

    def call(method: str, url: str, **kwargs) -> dict:
        resp = gateway.client.request(method, url, headers=user.headers, **kwargs)
        answers.append(resp)
        assert resp.status_code in (200, 201), resp.text
        return resp.json()

    config = {"account_id": "101-004-1-001", "access_token": USER_TOKEN, "api_url": f"http://{ALLOWED}"}
    asset = call("POST", f"/api/portfolios/{portfolio_id}/assets",
                 json={"symbol": "EURUSD", "broker_plugin": "oanda_broker", "broker_config": config})
    asset_id = asset["id"]
    assert asset["broker_config"] == {**config, "access_token": PLACEHOLDER}
    raw_config, raw_secrets = _raw_columns(gateway, asset_id)
    assert USER_TOKEN not in raw_config and USER_TOKEN not in raw_secrets and "access_token" not in raw_config
    stored = gateway.store.get_asset(asset_id).broker_secrets
    assert cipher.decrypt(stored["access_token"], "x") == USER_TOKEN
    assert call("GET", f"/api/assets/{asset_id}")["broker_config"]["access_token"] == PLACEHOLDER
    listed = call("GET", f"/api/portfolios/{portfolio_id}/assets")["items"]
    assert listed[0]["broker_config"]["access_token"] == PLACEHOLDER
    assert call("PUT", f"/api/assets/{asset_id}", json={"max_positions": 2})["broker_config"]["access_token"] == PLACEHOLDER

    # a PATCH that leaves the token out, or sends the placeholder back, keeps it as it is
    kept = call("PATCH", f"/api/assets/{asset_id}/broker", json={"config": {"account_id": "101-004-1-002"}})
    assert kept["broker_config"] == {"account_id": "101-004-1-002", "access_token": PLACEHOLDER}
    round_trip = call("PATCH", f"/api/assets/{asset_id}/broker", json={"config": kept["broker_config"]})
    assert round_trip["broker_config"]["access_token"] == PLACEHOLDER
    assert gateway.store.get_asset(asset_id).broker_secrets == stored
    # a new token replaces it; null removes it
    call("PATCH", f"/api/assets/{asset_id}/broker", json={"config": {"access_token": USER_TOKEN + "-2"}})
    replaced = gateway.store.get_asset(asset_id).broker_secrets
    assert cipher.decrypt(replaced["access_token"], "x") == USER_TOKEN + "-2"
    removed = call("PATCH", f"/api/assets/{asset_id}/broker", json={"config": {"access_token": None}})
    assert removed["broker_config"] == {}
    assert gateway.store.get_asset(asset_id).broker_secrets is None

    # switching to a plugin without that credential drops it
    call("PATCH", f"/api/assets/{asset_id}/broker", json={"config": {"access_token": USER_TOKEN}})
    switched = call("PATCH", f"/api/assets/{asset_id}/broker", json={"plugin": "default_broker", "config": {}})
    assert switched["broker_config"] == {} and gateway.store.get_asset(asset_id).broker_secrets is None

    audit = _audit_text(gateway)
    assert "broker_secrets" in audit  # the audit says a credential changed...
    everything = audit + "".join(r.text for r in answers) + "\n".join(r.getMessage() for r in caplog.records)
    for secret in (USER_TOKEN, USER_TOKEN + "-2", stored["access_token"], replaced["access_token"]):
        assert secret not in everything  # ...never the token nor its ciphertext


def test_a_token_left_in_a_row_from_before_is_never_shown_nor_audited(gateway, monkeypatch):
    from persistence.records import AssetCreate, AuditContext

    monkeypatch.delenv(CREDENTIALS_KEY_ENV, raising=False)
    user, portfolio_id = _user_portfolio(gateway)
    legacy = gateway.store.create_asset(AuditContext.system(), portfolio_id, AssetCreate(
        symbol="EURUSD", broker_plugin="oanda_broker", broker_config={"access_token": USER_TOKEN, "account_id": "1"}))
    answers = [gateway.client.get(f"/api/assets/{legacy.id}", headers=user.headers)]
    assert answers[0].json()["broker_config"] == {"access_token": PLACEHOLDER, "account_id": "1"}
    answers.append(gateway.client.patch(f"/api/assets/{legacy.id}/broker", headers=user.headers,
                                        json={"config": {"account_id": "2"}}))
    assert answers[1].status_code == 200, answers[1].text
    assert gateway.store.get_asset(legacy.id).broker_config == {"account_id": "2"}  # the plain token is gone
    assert gateway.audit_count(action="asset.broker_change", target_id=str(legacy.id)) == 1
    assert USER_TOKEN not in _audit_text(gateway) + "".join(r.text for r in answers)
