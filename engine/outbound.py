"""Which hosts the server may call: the operator's allow-list (config key ``outbound_hosts``).

A user's asset config may name URLs (a broker's ``api_url``, a prediction provider's
URL); the server then calls them, possibly with credentials. So every such URL is
checked here, against hosts the *operator* chose: when the config is stored (the API
answers 422 naming the field) and again where the HTTP client is built (a row written
before this rule existed, or by another path, still cannot reach another host).

Rules (``OutboundPolicy.check_url``):

* an entry is ``host`` (the URL scheme's default port only), ``host:port``, or
  ``http://host[:port]`` (see below); hosts compare case-insensitively, as written
  (``127.1`` does not match ``127.0.0.1``: no name or address is resolved here);
* ``https://`` always; plain ``http://`` only to a loopback host (``localhost``,
  ``127.0.0.0/8``, ``::1``) or to an entry the operator wrote with ``http://``, so a
  token never crosses a network in clear unless the operator said so;
* no user name or password in the URL, no whitespace or control characters;
* the host of the operator's own ``prediction_provider_url`` is always allowed (with
  its scheme): the operator chose it already.

The default list (``engine.config.defaults``) is the brokers' official REST hosts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from engine.config.defaults import DEFAULT_VALUES
from engine.errors import ConfigError

_DEFAULT_PORTS = {"https": 443, "http": 80}
_MAX_URL_CHARS = 2048
_SHOWN_CHARS = 100


class OutboundRefused(ConfigError):
    """A URL the operator's ``outbound_hosts`` does not allow (a client error: 422)."""


@dataclass(frozen=True, slots=True)
class HostEntry:
    """One allow-list entry: a host, an optional port, and whether plain http is allowed."""

    host: str
    port: int | None = None
    plain_http: bool = False

    def matches(self, host: str, port: int, scheme: str) -> bool:
        wanted = self.port if self.port is not None else _DEFAULT_PORTS[scheme]
        return self.host == host and wanted == port

    def __str__(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        shown = shown if self.port is None else f"{shown}:{self.port}"
        return f"http://{shown}" if self.plain_http else shown


def _shown(text: str) -> str:
    quoted = repr(text)
    return quoted if len(quoted) <= _SHOWN_CHARS else quoted[: _SHOWN_CHARS - 4] + "...'"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (literals only: nothing is resolved)."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_entry(text: object, where: str) -> HostEntry:
    """One ``outbound_hosts`` entry (``host``, ``host:port`` or ``http://host[:port]``)."""
    if not isinstance(text, str) or not text.strip() or len(text) > 300:
        raise ConfigError(f"{where}: give a host or host:port (a non-empty string), got {text!r}")
    raw = text.strip()
    if any(ord(c) < 33 or ord(c) == 127 for c in raw):
        raise ConfigError(f"{where}: {text!r} is not a host or host:port (spaces or control characters)")
    plain_http = raw.lower().startswith("http://")
    if plain_http:
        raw = raw[len("http://"):]
    elif "://" in raw:
        raise ConfigError(f"{where}: {text!r}: give host or host:port (https is implied; http://host:port "
                          "allows plain http to that host)")
    try:
        parts = urlsplit("//" + raw.rstrip("/"))
        port = parts.port
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not a host or host:port") from None
    if not parts.hostname or parts.path or parts.query or parts.username is not None:
        raise ConfigError(f"{where}: {text!r} is not a host or host:port")
    return HostEntry(parts.hostname.lower(), port, plain_http)


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """The hosts the server may call (see the module docstring)."""

    entries: tuple[HostEntry, ...]

    @classmethod
    def from_hosts(cls, hosts: Iterable[object], *, operator_urls: Iterable[str] = (),
                   key: str = "outbound_hosts") -> "OutboundPolicy":
        """A policy over ``hosts`` (entries as in the config) plus the hosts of
        ``operator_urls`` (URLs the operator configured, allowed with their scheme)."""
        if isinstance(hosts, (str, bytes)) or not isinstance(hosts, Iterable):
            raise ConfigError(f"{key}: must be a list of host or host:port strings")
        entries = [parse_entry(text, f"{key}[{i}]") for i, text in enumerate(hosts)]
        for url in operator_urls:
            entry = _entry_of_url(url)
            if entry is not None:
                entries.append(entry)
        return cls(tuple(dict.fromkeys(entries)))

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None = None) -> "OutboundPolicy":
        """The policy of a merged config: ``outbound_hosts`` plus the host of
        ``prediction_provider_url`` (their defaults when unset)."""
        config = config or {}
        hosts = config.get("outbound_hosts")
        url = config.get("prediction_provider_url") or DEFAULT_VALUES["prediction_provider_url"]
        return cls.from_hosts(DEFAULT_VALUES["outbound_hosts"] if hosts is None else hosts,
                              operator_urls=[str(url)])

    def check_url(self, url: object, field: str) -> str:
        """``url`` when the policy allows it; else raise :class:`OutboundRefused`, one
        line naming ``field`` and the host."""
        if not isinstance(url, str) or not url.strip():
            raise OutboundRefused(f"{field}: must be an https:// URL (a non-empty string)")
        if len(url) > _MAX_URL_CHARS or any(ord(c) < 33 or ord(c) == 127 for c in url):
            raise OutboundRefused(f"{field}: not a usable URL (spaces, control characters or over "
                                  f"{_MAX_URL_CHARS} characters)")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise OutboundRefused(f"{field}: {_shown(url)} is not a valid URL") from None
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise OutboundRefused(f"{field}: {_shown(url)} must be an https:// URL")
        if parts.username is not None or parts.password is not None:
            raise OutboundRefused(f"{field}: a URL must not carry a user name or password")
        host = parts.hostname.lower()
        port = port if port is not None else _DEFAULT_PORTS[scheme]
        entry = next((e for e in self.entries if e.matches(host, port, scheme)), None)
        if entry is None:
            shown = f"[{host}]" if ":" in host else host
            raise OutboundRefused(f"{field}: host {shown}:{port} is not in the operator's outbound_hosts "
                                  "allow-list")
        if scheme == "http" and not (entry.plain_http or is_loopback(host)):
            raise OutboundRefused(f"{field}: plain http to {host} is not allowed: use https:// (the operator "
                                  "can allow http for a host as http://host:port in outbound_hosts)")
        return url

    def allows(self, url: object) -> bool:
        try:
            self.check_url(url, "url")
        except OutboundRefused:
            return False
        return True

    def __str__(self) -> str:
        return ", ".join(str(e) for e in self.entries) or "(none)"


def _entry_of_url(url: str) -> HostEntry | None:
    """The allow-list entry an operator-configured URL stands for (None if unusable)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return HostEntry(parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS[scheme],
                     plain_http=scheme == "http")


def default_policy() -> OutboundPolicy:
    """The policy of the default config: what a plugin enforces until the runtime gives
    it the operator's (fail-closed: the official endpoints, never "anything")."""
    return OutboundPolicy.from_config(None)


__all__ = ["OutboundPolicy", "OutboundRefused", "HostEntry", "default_policy", "is_loopback", "parse_entry"]
