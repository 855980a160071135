"""The operator's outbound allow-list (engine.outbound): which URLs a user's config may
make the server call, and how each refusal names the field and the host."""

from __future__ import annotations

import pytest

from engine.config.defaults import DEFAULT_VALUES
from engine.errors import ConfigError
from engine.outbound import OutboundPolicy, OutboundRefused, default_policy

FIELD = "broker_config.api_url"


def test_the_default_allows_the_official_oanda_hosts_and_the_operators_prediction_url_only():
    policy = default_policy()
    for url in ("https://api-fxpractice.oanda.com", "https://api-fxtrade.oanda.com/v3/accounts",
                DEFAULT_VALUES["prediction_provider_url"]):
        assert policy.check_url(url, FIELD) == url
    for url in ("https://example.com", "https://api-fxpractice.oanda.com:8443", "http://127.0.0.1:8002",
                "https://stream-fxpractice.oanda.com"):
        with pytest.raises(OutboundRefused, match=rf"^{FIELD}: host .* is not in the operator's outbound_hosts"):
            policy.check_url(url, FIELD)


def test_a_refusal_is_one_line_naming_the_field_and_the_host_and_port():
    with pytest.raises(OutboundRefused) as refused:
        default_policy().check_url("https://evil.example:4443/steal?x=1", FIELD)
    assert str(refused.value) == f"{FIELD}: host evil.example:4443 is not in the operator's outbound_hosts allow-list"
    assert isinstance(refused.value, ConfigError)  # the API answers 422


@pytest.mark.parametrize("url", [
    "http://api-fxtrade.oanda.com",  # plain http to a non-loopback host
    "https://user:pw@api-fxtrade.oanda.com",  # credentials in the URL
    "ftp://api-fxtrade.oanda.com", "api-fxtrade.oanda.com", "", " ", None, 42,
    "https://api-fxtrade.oanda.com/\x00", "https://api-fxtrade.oanda.com/ x", "https://api-fxtrade.oanda.com:99999",
    "https://" + "a" * 3000 + ".com",
])
def test_urls_that_are_not_plain_https_to_a_listed_host_are_refused(url):
    with pytest.raises(OutboundRefused, match=rf"^{FIELD}: "):
        default_policy().check_url(url, FIELD)


def test_entries_with_ports_loopback_http_and_explicit_plain_http():
    policy = OutboundPolicy.from_hosts(["127.0.0.1:9000", "[::1]:7000", "http://10.0.0.5:8001", "broker.example"],
                                       operator_urls=[])
    assert policy.allows("http://127.0.0.1:9000/v3")  # loopback: plain http is fine
    assert policy.allows("http://[::1]:7000")
    assert policy.allows("http://10.0.0.5:8001")  # the operator opted in to http for it
    assert policy.allows("https://broker.example") and policy.allows("https://BROKER.example:443/x")
    assert not policy.allows("http://broker.example")  # https only unless the operator said http://
    assert not policy.allows("https://broker.example:8443")  # a bare host means the default port
    assert not policy.allows("http://127.0.0.1:9001")
    assert not policy.allows("http://127.1:9000")  # no resolution: the host is compared as written
    assert not policy.allows("https://api-fxtrade.oanda.com")  # an explicit list replaces the default


def test_the_operators_prediction_url_is_always_allowed_with_its_scheme():
    policy = OutboundPolicy.from_config({"outbound_hosts": [], "prediction_provider_url": "http://10.1.2.3:8001"})
    assert policy.allows("http://10.1.2.3:8001/api/v1/predict")
    assert not policy.allows("http://10.1.2.3:8002")
    assert not policy.allows("https://api-fxpractice.oanda.com")


@pytest.mark.parametrize(("hosts", "where"), [
    (["https://x.example"], r"outbound_hosts\[0\]"), ([""], r"outbound_hosts\[0\]"),
    (["ok.example", "a b"], r"outbound_hosts\[1\]"), (["x.example:99999"], r"outbound_hosts\[0\]"),
    (["x.example/path"], r"outbound_hosts\[0\]"), ([7], r"outbound_hosts\[0\]"), ("x.example", "outbound_hosts"),
])
def test_a_bad_allow_list_entry_is_a_config_error_naming_it(hosts, where):
    with pytest.raises(ConfigError, match=rf"^{where}"):
        OutboundPolicy.from_hosts(hosts)
