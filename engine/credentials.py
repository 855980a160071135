"""Broker credentials: whose they are, how a user's own are kept, and who may use the operator's.

A plugin declares its credential parameters (``engine.plugins.base``):
``plugin_secret_params`` (e.g. OANDA's ``access_token``) and ``plugin_operator_env``
(the parameters the operator's environment holds for the operator's own account, e.g.
``access_token`` <- ``OANDA_ACCESS_TOKEN``, ``account_id`` <- ``OANDA_ACCOUNT_ID``).

* **A user's own secrets** are write-only: the API stores each one encrypted
  (:class:`CredentialCipher`, Fernet, key from ``LTS_CREDENTIALS_KEY`` in the operator's
  environment) outside the plain config, answers it as :data:`PLACEHOLDER`, and never
  logs or audits it. Without the key, a config carrying a secret is refused.
* **The operator's credentials** fill an asset's missing ones only for portfolios the
  operator's config lists in ``operator_broker_portfolios``; any other asset without
  its own is refused before a request is made (:func:`resolve_credentials`).
* Decryption happens only where the broker plugin is created (the broker actor).

Credentials come as a set: an asset that brings any secret must bring every
``plugin_operator_env`` parameter itself (its token is never paired with the operator's
account id), and an asset that brings none trades, where the operator allows it, on the
operator's account as a whole.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import ConfigError

CREDENTIALS_KEY_ENV = "LTS_CREDENTIALS_KEY"
"""Environment variable with the Fernet key(s): comma-separated, the first encrypts
(keep older keys after it to rotate)."""

PLACEHOLDER = "********"
"""What a stored secret looks like in a response; sent back unchanged, it keeps the secret."""

_MAX_SECRET_CHARS = 4096


class CredentialsDisabled(ConfigError):
    """A secret was sent but the operator has not enabled user credentials (422)."""


class CredentialsUnreadable(ConfigError):
    """A stored secret cannot be decrypted here (key missing or changed)."""


@dataclass(frozen=True, slots=True)
class CredentialCipher:
    """Fernet encryption of single secrets with the operator's key(s)."""

    _fernet: Any = field(repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "CredentialCipher | None":
        """The cipher of ``LTS_CREDENTIALS_KEY`` (None when it is unset)."""
        from cryptography.fernet import Fernet, MultiFernet

        raw = (os.environ if env is None else env).get(CREDENTIALS_KEY_ENV, "").strip()
        if not raw:
            return None
        try:
            keys = [Fernet(part.strip().encode()) for part in raw.split(",") if part.strip()]
        except (ValueError, TypeError):
            raise ConfigError(
                f"{CREDENTIALS_KEY_ENV} is not a Fernet key (32 url-safe base64-encoded bytes; make one with "
                "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
            ) from None
        return cls(MultiFernet(keys))

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode("ascii")

    def decrypt(self, token: str, where: str) -> str:
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except (InvalidToken, ValueError, UnicodeError):
            raise CredentialsUnreadable(
                f"{where}: the stored credential cannot be decrypted with {CREDENTIALS_KEY_ENV} (was the key "
                "changed? enter the credential again)"
            ) from None


def check_secret_value(value: Any, where: str) -> None:
    """A secret as a client may send it: a string, :data:`PLACEHOLDER` (keep) or null (remove)."""
    if value is None or value == PLACEHOLDER:
        return
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: must be a non-empty string (or null to remove it)")
    if len(value) > _MAX_SECRET_CHARS or any(ord(c) < 32 for c in value):
        raise ConfigError(f"{where}: not a usable credential (control characters or over "
                          f"{_MAX_SECRET_CHARS} characters)")


def split_secrets(
    secret_params: tuple[str, ...],
    submitted: Mapping[str, Any],
    stored: Mapping[str, str] | None,
    *,
    field_name: str,
    env: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """``(config without secrets, stored secrets after the change)``.

    For each secret parameter: left out or :data:`PLACEHOLDER` keeps the stored one,
    ``null`` removes it, a string replaces it (encrypted here). ``stored`` holds
    ciphertexts only; nothing is decrypted."""
    public = {k: v for k, v in submitted.items() if k not in secret_params}
    secrets = {k: v for k, v in dict(stored or {}).items() if k in secret_params}
    new = {k: submitted[k] for k in secret_params if k in submitted and submitted[k] != PLACEHOLDER}
    for name, value in new.items():
        check_secret_value(value, f"{field_name}.{name}")
    if any(value is not None for value in new.values()):
        cipher = CredentialCipher.from_env(env)
        if cipher is None:
            raise CredentialsDisabled(
                f"{field_name}: the operator has not enabled user credentials on this server "
                f"({CREDENTIALS_KEY_ENV} is not set): leave out {', '.join(sorted(new))}"
            )
    for name, value in new.items():
        if value is None:
            secrets.pop(name, None)
        else:
            secrets[name] = cipher.encrypt(value)
    return public, secrets


def shown_config(secret_params: tuple[str, ...], config: Mapping[str, Any], stored: Mapping[str, str] | None) -> dict[str, Any]:
    """``config`` as a client may see it: every secret that is set, stored or (a row from
    before this rule) in the plain config, as :data:`PLACEHOLDER`."""
    shown = dict(config)
    for name in secret_params:
        if shown.get(name) is not None:
            shown[name] = PLACEHOLDER
    for name in stored or {}:
        shown[name] = PLACEHOLDER
    return shown


def operator_assigned(portfolio_id: int, config: Mapping[str, Any]) -> bool:
    """Whether the operator's config (``operator_broker_portfolios``) assigns its own
    broker credentials to portfolio ``portfolio_id``."""
    assigned = config.get("operator_broker_portfolios") or ()
    return any(type(p) is int and p == portfolio_id for p in assigned)


def resolve_credentials(
    plugin: str,
    secret_params: tuple[str, ...],
    operator_env: Mapping[str, str],
    config: Mapping[str, Any],
    stored: Mapping[str, str] | None,
    *,
    operator_allowed: bool,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The plugin config with its credentials filled in, or a one-line refusal.

    ``stored``: the asset's encrypted secrets (decrypted here); ``operator_allowed``: the
    asset's portfolio is in ``operator_broker_portfolios``; ``env``: where the operator's
    values are (default ``os.environ``). Never returns a config that would make the plugin
    fall back to the operator's environment by itself: the caller creates the plugin with
    ``use_operator_policies(operator_env=False)``."""
    env = os.environ if env is None else env
    resolved = dict(config)
    if stored:
        cipher = CredentialCipher.from_env(env)
        if cipher is None:
            raise CredentialsUnreadable(
                f"{plugin}: the asset's stored credentials cannot be read: {CREDENTIALS_KEY_ENV} is not set in the "
                "engine's environment"
            )
        for name, token in stored.items():
            if name in secret_params:
                resolved[name] = cipher.decrypt(token, f"broker_config.{name}")
    own = any(resolved.get(name) not in (None, "") for name in secret_params)
    if own or not operator_env:
        missing = [name for name in operator_env if resolved.get(name) in (None, "")]
        if missing and own:
            raise ConfigError(f"{plugin}: with its own credentials an asset must also give "
                              f"{', '.join('broker_config.' + m for m in missing)}")
        return resolved
    if not operator_allowed:
        raise ConfigError(
            f"{plugin}: this asset has no credentials of its own (broker_config."
            f"{', broker_config.'.join(secret_params or tuple(operator_env))}), and the operator has not assigned "
            "its portfolio the server's broker account (operator_broker_portfolios)"
        )
    unset = [var for var in operator_env.values() if not env.get(var)]
    if unset:
        raise ConfigError(f"{plugin}: this portfolio trades on the operator's broker account, but "
                          f"{', '.join(unset)} is not set in the engine's environment")
    resolved.update({name: env[var] for name, var in operator_env.items()})
    return resolved


__all__ = [
    "CREDENTIALS_KEY_ENV", "PLACEHOLDER", "CredentialCipher", "CredentialsDisabled", "CredentialsUnreadable",
    "check_secret_value", "operator_assigned", "resolve_credentials", "shown_config", "split_secrets",
]
