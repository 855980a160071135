"""Broker credentials (engine.credentials): user secrets encrypted and write-only, and the
operator's own credentials only for the portfolios the operator's config assigns them to."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from engine.brokers.oanda_broker import OandaBroker
from engine.credentials import (
    CREDENTIALS_KEY_ENV,
    PLACEHOLDER,
    CredentialCipher,
    CredentialsDisabled,
    CredentialsUnreadable,
    operator_assigned,
    resolve_credentials,
    shown_config,
    split_secrets,
)
from engine.errors import ConfigError

SECRETS = OandaBroker.plugin_secret_params
OPERATOR_ENV = OandaBroker.plugin_operator_env
USER_TOKEN = "user-token-3f9a1c"


@pytest.fixture
def env() -> dict[str, str]:
    return {CREDENTIALS_KEY_ENV: Fernet.generate_key().decode(),
            "OANDA_ACCESS_TOKEN": "operator-token-77", "OANDA_ACCOUNT_ID": "001-operator"}


def _resolve(config, stored, env, *, allowed=False):
    return resolve_credentials("oanda_broker", SECRETS, OPERATOR_ENV, config, stored, operator_allowed=allowed, env=env)


def test_a_secret_is_split_off_encrypted_and_decrypts_only_with_the_key(env):
    public, stored = split_secrets(SECRETS, {"account_id": "001-user", "access_token": USER_TOKEN}, None,
                                   field_name="broker_config", env=env)
    assert public == {"account_id": "001-user"}
    assert set(stored) == {"access_token"} and USER_TOKEN not in stored["access_token"]
    assert CredentialCipher.from_env(env).decrypt(stored["access_token"], "x") == USER_TOKEN
    other = {CREDENTIALS_KEY_ENV: Fernet.generate_key().decode()}
    with pytest.raises(CredentialsUnreadable, match="cannot be decrypted"):
        CredentialCipher.from_env(other).decrypt(stored["access_token"], "broker_config.access_token")


def test_left_out_or_placeholder_keeps_null_removes_a_string_replaces(env):
    _, stored = split_secrets(SECRETS, {"access_token": USER_TOKEN}, None, field_name="broker_config", env=env)
    assert split_secrets(SECRETS, {"account_id": "a"}, stored, field_name="broker_config", env=env)[1] == stored
    assert split_secrets(SECRETS, {"access_token": PLACEHOLDER}, stored, field_name="broker_config", env={})[1] == stored
    assert split_secrets(SECRETS, {"access_token": None}, stored, field_name="broker_config", env={})[1] == {}
    _, replaced = split_secrets(SECRETS, {"access_token": "new-token"}, stored, field_name="broker_config", env=env)
    assert CredentialCipher.from_env(env).decrypt(replaced["access_token"], "x") == "new-token"
    # a plugin without that secret keeps none of it
    assert split_secrets((), {}, stored, field_name="broker_config", env=env)[1] == {}


def test_without_the_operators_key_a_secret_is_refused_in_one_line():
    with pytest.raises(CredentialsDisabled) as refused:
        split_secrets(SECRETS, {"access_token": USER_TOKEN}, None, field_name="broker_config", env={})
    message = str(refused.value)
    assert message.startswith("broker_config: the operator has not enabled user credentials") and "\n" not in message
    assert USER_TOKEN not in message


@pytest.mark.parametrize("value", ["", "  ", 12, {"a": 1}, "tok\nen", "x" * 5000])
def test_a_secret_must_be_a_usable_string(env, value):
    with pytest.raises(ConfigError, match=r"^broker_config.access_token: "):
        split_secrets(SECRETS, {"access_token": value}, None, field_name="broker_config", env=env)


def test_a_bad_key_is_refused_with_a_hint_and_keys_rotate(env):
    with pytest.raises(ConfigError, match=f"{CREDENTIALS_KEY_ENV} is not a Fernet key"):
        CredentialCipher.from_env({CREDENTIALS_KEY_ENV: "not-a-key"})
    old = CredentialCipher.from_env(env)
    token = old.encrypt(USER_TOKEN)
    rotated = CredentialCipher.from_env({CREDENTIALS_KEY_ENV: Fernet.generate_key().decode() + "," + env[CREDENTIALS_KEY_ENV]})
    assert rotated.decrypt(token, "x") == USER_TOKEN


def test_shown_config_hides_stored_and_plain_secrets():
    assert shown_config(SECRETS, {"account_id": "a"}, {"access_token": "gAAAA"}) == {"account_id": "a", "access_token": PLACEHOLDER}
    assert shown_config(SECRETS, {"access_token": "legacy-plain"}, None) == {"access_token": PLACEHOLDER}
    assert shown_config(SECRETS, {"access_token": None}, None) == {"access_token": None}


def test_an_asset_without_credentials_outside_the_operators_portfolios_is_refused(env):
    with pytest.raises(ConfigError) as refused:
        _resolve({"environment": "practice"}, None, env)
    message = str(refused.value)
    assert "no credentials of its own" in message and "operator_broker_portfolios" in message
    assert env["OANDA_ACCESS_TOKEN"] not in message


def test_an_assigned_portfolio_trades_on_the_operators_whole_account(env):
    resolved = _resolve({"account_id": "001-someone-else"}, None, env, allowed=True)
    assert (resolved["access_token"], resolved["account_id"]) == ("operator-token-77", "001-operator")
    with pytest.raises(ConfigError, match="OANDA_ACCESS_TOKEN is not set"):
        _resolve({}, None, {"OANDA_ACCOUNT_ID": "x"}, allowed=True)


def test_own_credentials_are_decrypted_and_never_completed_from_the_operator(env):
    _, stored = split_secrets(SECRETS, {"access_token": USER_TOKEN}, None, field_name="broker_config", env=env)
    resolved = _resolve({"account_id": "001-user"}, stored, env, allowed=True)
    assert (resolved["access_token"], resolved["account_id"]) == (USER_TOKEN, "001-user")
    with pytest.raises(ConfigError, match=r"must also give broker_config.account_id"):
        _resolve({}, stored, env, allowed=True)  # never the user's token with the operator's account
    with pytest.raises(CredentialsUnreadable, match=f"{CREDENTIALS_KEY_ENV} is not set"):
        _resolve({"account_id": "001-user"}, stored, {})


def test_operator_assignment_is_by_portfolio_id():
    assert operator_assigned(3, {"operator_broker_portfolios": [1, 3]})
    assert not operator_assigned(2, {"operator_broker_portfolios": [1, 3]})
    assert not operator_assigned(1, {"operator_broker_portfolios": [True]})  # not an id
    assert not operator_assigned(1, {})
