"""Validation of the merged config with pydantic: types, ranges and unknown keys.

Each key gets a pydantic type: declared in ``GLOBAL_TYPES`` for the global keys that need
more than their default's type (``str | None``, ranges, choices), otherwise inferred from
its default value (``DEFAULT_VALUES`` or a plugin's ``plugin_params``). Values are checked
strictly (``"8000"`` is not an int; an int is accepted where a float is expected).

Every problem is reported in one ``ConfigError``, one clause per key, naming the key, the
expected type, the offending value and where it came from::

    config key 'api_port' expects int in 0..65535, got 'abc' (str) from command line (--api_port)
    unknown config key 'api_prot' from file run.json:3: did you mean 'api_port'?
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
)

from engine.config.defaults import PLUGIN_KEYS
from engine.config.lts_config import ConfigSource, LTSConfig
from engine.errors import ConfigError
from engine.suggestions import did_you_mean
from engine.types import to_decimal

_STRICT = ConfigDict(strict=True)
_SECRET_KEY = re.compile(
    r"secret|password|passwd|api_key|apikey|private_key|credential|(^|_)access_token$", re.I
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True, slots=True)
class KeyType:
    """A config key's pydantic type and how to name it in a message."""

    annotation: Any
    expected: str

    def adapter(self) -> TypeAdapter[Any]:
        return TypeAdapter(self.annotation, config=_STRICT)


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


_NonEmptyStr = Annotated[StrictStr, Field(min_length=1)]
_PositiveFloat = Annotated[float, Field(gt=0)]
_PositiveInt = Annotated[StrictInt, Field(ge=1)]
_NonNegativeInt = Annotated[StrictInt, Field(ge=0)]

GLOBAL_TYPES: dict[str, KeyType] = {
    **{key: KeyType(_NonEmptyStr, "a plugin name (non-empty str)") for key in PLUGIN_KEYS},
    "api_host": KeyType(_NonEmptyStr, "a host name or address (non-empty str)"),
    "api_port": KeyType(Annotated[StrictInt, Field(ge=0, le=65535)], "int in 0..65535"),
    "database_url": KeyType(_NonEmptyStr, "a database URL (non-empty str)"),
    "global_latency": KeyType(_PositiveFloat, "float > 0 (seconds)"),
    "mode": KeyType(Literal["simulation", "live"], "one of 'simulation', 'live'"),
    "ray_address": KeyType(StrictStr | None, "str ('auto' or HOST:PORT) or null"),
    "ray_namespace": KeyType(_NonEmptyStr, "non-empty str"),
    "log_level": KeyType(
        Annotated[Literal[LOG_LEVELS], BeforeValidator(_upper)],  # type: ignore[valid-type]
        f"one of {', '.join(LOG_LEVELS)}",
    ),
    "data_dir": KeyType(_NonEmptyStr, "a directory (non-empty str)"),
    "state_dir": KeyType(_NonEmptyStr, "a directory (non-empty str)"),
    "prediction_provider_url": KeyType(
        Annotated[StrictStr, Field(pattern=r"^https?://\S+$")], "an http(s):// URL (str)"
    ),
    "prediction_api_key": KeyType(StrictStr | None, "str or null"),
    "prediction_timeout_s": KeyType(_PositiveFloat, "float > 0 (seconds)"),
    "outbound_hosts": KeyType(list[_NonEmptyStr], 'list of host or host:port (JSON, e.g. ["api-fxpractice.oanda.com"])'),
    "operator_broker_portfolios": KeyType(list[_PositiveInt], "list of portfolio ids (JSON, e.g. [1])"),
    "jwt_secret": KeyType(StrictStr | None, "str or null"),
    "access_token_minutes": KeyType(_PositiveInt, "int >= 1"),
    "refresh_token_days": KeyType(_PositiveInt, "int >= 1"),
    "cors_origins": KeyType(list[StrictStr], 'list of str (JSON, e.g. ["http://host"])'),
    "rate_limit_per_minute": KeyType(_PositiveInt, "int >= 1"),
    "max_body_bytes": KeyType(_PositiveInt, "int >= 1"),
    "persistence_batch_size": KeyType(_PositiveInt, "int >= 1"),
    "persistence_batch_delay_ms": KeyType(_NonNegativeInt, "int >= 0 (milliseconds)"),
    "max_asset_restarts": KeyType(_NonNegativeInt, "int >= 0"),
    "restart_window_s": KeyType(_PositiveFloat, "float > 0 (seconds)"),
    "step_timeout_s": KeyType(_PositiveFloat, "float > 0 (seconds)"),
    "simulation_bars_per_call": KeyType(_PositiveInt, "int >= 1"),
    "simulation_call_budget_ms": KeyType(_PositiveInt, "int >= 1 (milliseconds)"),
}
"""Declared types of global keys; a key not listed here takes its default's type."""


def infer_key_type(default: Any) -> KeyType:
    """The type a key takes from its default value (plugin params, new global keys)."""
    if isinstance(default, bool):
        return KeyType(StrictBool, "bool (true/false)")
    if isinstance(default, int):
        return KeyType(StrictInt, "int")
    if isinstance(default, float):
        return KeyType(float, "float")
    if isinstance(default, Decimal):
        return KeyType(Annotated[Decimal, BeforeValidator(to_decimal)], "a decimal number")
    if isinstance(default, str):
        return KeyType(StrictStr, "str")
    if isinstance(default, (list, tuple)):
        return KeyType(list[Any], "list (JSON array)")
    if isinstance(default, dict):
        return KeyType(dict[str, Any], "object (JSON)")
    return KeyType(Any, "any value")


def key_type(key: str, default: Any) -> KeyType:
    """``GLOBAL_TYPES[key]`` if declared, else the type inferred from ``default``."""
    return GLOBAL_TYPES.get(key) or infer_key_type(default)


def is_secret_key(key: str) -> bool:
    """True for keys whose values must never be shown, logged or saved."""
    return bool(_SECRET_KEY.search(key))


def show_value(key: str, value: Any) -> str:
    """``value`` for a message, hidden when ``key`` names a secret."""
    if is_secret_key(key) and value is not None:
        return f"<hidden> ({type(value).__name__})"
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({type(value).__name__})"


def _check_value(key: str, value: Any, source: ConfigSource, kt: KeyType) -> tuple[Any, str | None]:
    """Validated value, or an error clause."""
    adapter = kt.adapter()
    try:
        return adapter.validate_python(value), None
    except ValidationError as exc:
        first_error = exc
    # A CLI value was typed from its text; a key declared as text gets the text back.
    if source.kind == "cli" and source.raw is not None and source.raw != value:
        try:
            return adapter.validate_python(source.raw), None
        except ValidationError:
            pass
    # A plain type mismatch is said by "expects ..."; a broken constraint gets pydantic's words.
    details = first_error.errors()
    is_type_error = bool(details) and str(details[0].get("type", "")).endswith("_type")
    hint = f" [{details[0]['msg']}]" if details and not is_type_error else ""
    return value, (
        f"config key {key!r} expects {kt.expected}, got {show_value(key, value)} "
        f"from {source}{hint}"
    )


def suggest(key: str, known: Iterable[str]) -> str:
    """``" did you mean 'x'?"`` (closest known keys), or ``""``."""
    hint = did_you_mean(key, known, n=3)
    return f" {hint}" if hint else ""


def validate_config(config: LTSConfig, keys: Iterable[str] | None = None) -> LTSConfig:
    """Validate ``config`` (after merge pass 2) and return it with normalised values.

    A key is known when it has a default-layer value: it is in ``DEFAULT_VALUES`` or in
    the ``plugin_params`` of a loaded plugin. ``keys`` restricts the check to those keys
    (used to check the plugin names before loading plugins). Raises ``ConfigError``
    listing every problem.
    """
    defaults = config.defaults()
    known = set(defaults) | set(GLOBAL_TYPES)
    selected = list(config) if keys is None else [k for k in keys if k in config]
    errors: list[str] = []
    normalised: dict[str, Any] = {}
    for key in selected:
        source = config.source(key)
        if key not in known:
            plugins = ", ".join(
                str(config[k]) for k in PLUGIN_KEYS if isinstance(config.get(k), str)
            )
            hint = suggest(key, known) or (
                f" it is neither a global key (`lts plugins --globals`) nor a parameter of "
                f"the configured plugins ({plugins}; `lts plugins`)"
            )
            errors.append(f"unknown config key {key!r} from {source}:{hint}")
            continue
        value, error = _check_value(key, config[key], source, key_type(key, defaults.get(key)))
        if error:
            errors.append(error)
        elif type(value) is not type(config[key]) or value != config[key]:
            normalised[key] = value  # e.g. an int given for a float key, CLI text
    if errors:
        raise ConfigError("; ".join(errors))
    if not normalised:
        return config
    sources = config.sources()
    values = config.to_dict()
    values.update(normalised)
    return LTSConfig(values, sources, defaults)
