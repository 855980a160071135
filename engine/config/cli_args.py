"""Unknown ``--key value`` command-line pairs -> typed config values (seed §1.2, pass 1).

A value is typed by its text: ``true``/``false`` -> bool, ``null``/``none`` -> None,
integers -> int, decimals/exponents -> float, text starting with ``[``, ``{`` or ``"``
-> JSON, anything else -> str. The text as typed is kept too (``CliValue.raw``): a key
whose declared type is ``str`` gets its raw text back (``--jwt_secret 12345`` is the
string ``"12345"``, not an int).

Accepted forms: ``--key value``, ``--key=value`` and a bare ``--flag`` (-> True, when
the next token is another option or there is none). Dashes in keys become underscores
(``--api-port`` is ``api_port``). A later occurrence of a key wins.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import ConfigError

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class CliValue:
    """One typed CLI value with the text it was typed from and the option it came from."""

    value: Any
    raw: str
    option: str  # e.g. "--api_port"


def parse_cli_value(text: str, *, option: str = "") -> Any:
    """Type one CLI value (see module doc). Invalid JSON raises ``ConfigError``."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    if _INT.fullmatch(text.strip()):
        return int(text)
    if _FLOAT.fullmatch(text.strip()):
        return float(text)
    if text.lstrip()[:1] in ("[", "{", '"'):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            where = f"{option}: " if option else ""
            raise ConfigError(
                f"{where}value {text!r} looks like JSON but is not valid JSON "
                f"({exc.msg} at column {exc.colno})"
            ) from exc
    return text


def option_to_key(option: str) -> str:
    """``--api-port`` -> ``api_port``; refuses names that cannot be config keys."""
    key = option.lstrip("-").replace("-", "_")
    if not _KEY.fullmatch(key):
        raise ConfigError(f"{option!r} is not a valid option name (use --key value)")
    return key


def parse_cli_pairs(tokens: Sequence[str]) -> dict[str, CliValue]:
    """Parse ``--key value`` / ``--key=value`` / ``--flag`` tokens into typed values.

    Every token must belong to a pair: a stray positional raises ``ConfigError``.
    """
    result: dict[str, CliValue] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--") or token == "--":
            raise ConfigError(
                f"unexpected argument {token!r}: extra settings are given as --key value"
            )
        if "=" in token:
            option, raw = token.split("=", 1)
            i += 1
        elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
            option, raw = token, tokens[i + 1]
            i += 2
        else:
            option, raw = token, "true"
            i += 1
        key = option_to_key(option)
        result[key] = CliValue(parse_cli_value(raw, option=option), raw, option)
    return result
