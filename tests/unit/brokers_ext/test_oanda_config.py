"""OandaBroker configuration and error classification, without any network."""

from __future__ import annotations

import oandapyV20.oandapyV20 as oanda_core
import pytest

from engine.brokers import _oanda_transport as t
from engine.brokers.oanda_broker import OandaBroker
from engine.errors import BrokerError, ConfigError, NotFound, OrderRejected, TemporaryError
from engine.outbound import OutboundPolicy, OutboundRefused
from engine.plugins.base import BrokerPlugin


def test_is_a_broker_plugin_with_the_documented_params():
    assert issubclass(OandaBroker, BrokerPlugin)
    params = OandaBroker.plugin_params
    for key in ("account_id", "access_token", "environment", "api_url", "timeout_s", "max_retries", "backoff"):
        assert key in params
    assert params["access_token"] is None  # never a default token
    assert "access_token" not in OandaBroker.plugin_debug_vars


def test_missing_token_is_a_config_error_naming_the_key_and_env_var(monkeypatch):
    monkeypatch.delenv("OANDA_ACCESS_TOKEN", raising=False)
    broker = OandaBroker({"account_id": "101-1"})
    with pytest.raises(ConfigError, match="access_token.*OANDA_ACCESS_TOKEN"):
        broker.get_open_orders()


def test_missing_account_is_a_config_error(monkeypatch):
    monkeypatch.delenv("OANDA_ACCOUNT_ID", raising=False)
    broker = OandaBroker({"access_token": "x"})
    with pytest.raises(ConfigError, match="account_id"):
        broker.get_open_orders()


def test_unknown_environment_is_a_config_error():
    broker = OandaBroker({"account_id": "1", "access_token": "x", "environment": "demo"})
    with pytest.raises(ConfigError, match="environment must be one of practice, live"):
        broker.account_summary()


@pytest.mark.parametrize(("key", "value"), [("timeout_s", 0), ("max_retries", -1)])
def test_bad_numbers_are_config_errors(key, value):
    broker = OandaBroker({"account_id": "1", "access_token": "x", key: value})
    with pytest.raises(ConfigError, match=key):
        broker.account_summary()


def test_api_url_registers_an_environment_without_touching_practice_or_live():
    # the operator allows the loopback host (outbound_hosts), as a test stub would need
    policy = OutboundPolicy.from_hosts(["127.0.0.1:9999", "api-fxtrade.oanda.com"])
    practice = dict(oanda_core.TRADING_ENVIRONMENTS["practice"])
    name = t.resolve_environment("practice", "http://127.0.0.1:9999/", policy)
    assert oanda_core.TRADING_ENVIRONMENTS[name]["api"] == "http://127.0.0.1:9999"
    assert t.resolve_environment("live", "http://127.0.0.1:9999", policy) == name  # idempotent
    assert oanda_core.TRADING_ENVIRONMENTS["practice"] == practice
    assert t.resolve_environment("live", None, policy) == "live"
    with pytest.raises(ConfigError, match="api_url must start with http"):
        t.resolve_environment("practice", "ftp://x", policy)
    # a host the operator did not list, and an official one it left out, are refused
    with pytest.raises(OutboundRefused, match=r"broker_config.api_url: host 127.0.0.1:9998 is not in"):
        t.resolve_environment("practice", "http://127.0.0.1:9998", policy)
    with pytest.raises(OutboundRefused, match=r"broker_config.environment: host api-fxpractice.oanda.com:443"):
        t.resolve_environment("practice", None, policy)


def test_token_is_hidden_in_params_repr_and_debug_info():
    broker = OandaBroker({"account_id": "101-1", "access_token": "tok-abc-123"})
    broker.set_params(access_token="tok-def-456")
    for shown in (repr(broker), str(broker.params), str(broker.get_debug_info())):
        assert "tok-abc-123" not in shown and "tok-def-456" not in shown
    assert broker.params["access_token"].get_secret_value() == "tok-def-456"


def test_redactor_scrubs_registered_secrets_from_text():
    redactor = t.SecretRedactor()
    redactor.add("s3cr3t")
    assert redactor.redact("Bearer s3cr3t failed") == "Bearer *** failed"


@pytest.mark.parametrize(
    ("code", "order_op", "expected"),
    [
        (429, True, TemporaryError),
        (503, True, t.AmbiguousError),
        (500, False, t.AmbiguousError),
        (400, True, OrderRejected),
        (404, True, OrderRejected),
        (404, False, NotFound),
        (401, True, BrokerError),
        (403, False, BrokerError),
        (405, False, BrokerError),
    ],
)
def test_http_status_classification(code, order_op, expected):
    transport = t.OandaTransport(
        access_token="x", environment="practice", timeout_s=1, max_retries=0, backoff=0, backoff_max=0, label="l"
    )
    error = transport._from_status(code, "E: m", "op", order_op)
    assert type(error) is expected
    assert f"HTTP {code}" in str(error)
    # 429 is not ambiguous: OANDA did not process the request
    assert isinstance(error, t.AmbiguousError) == (code >= 500)


def test_error_body_text_prefers_oanda_error_code():
    assert t._oanda_error_text('{"errorCode": "UNITS_INVALID", "errorMessage": "bad"}') == "UNITS_INVALID: bad"
    assert t._oanda_error_text("<html>gateway</html>") == "<html>gateway</html>"
