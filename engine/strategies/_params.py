"""Parameter checks shared by the strategies: each error names the strategy and the key."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from engine.errors import ConfigError

DISTANCE_UNITS = ("pips", "price")


def number(params: Mapping[str, Any], key: str, where: str, *, minimum: float | None = None,
           strict: bool = False, maximum: float | None = None) -> float:
    """``params[key]`` as a finite float within bounds, else ConfigError naming it."""
    raw = params.get(key)
    if isinstance(raw, bool):
        raise ConfigError(f"{where}: parameter {key!r} must be a number, got {raw!r}")
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: parameter {key!r} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{where}: parameter {key!r} must be finite, got {raw!r}")
    if minimum is not None and (value < minimum or (strict and value == minimum)):
        raise ConfigError(f"{where}: parameter {key!r} must be {'>' if strict else '>='} {minimum}, got {raw!r}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{where}: parameter {key!r} must be <= {maximum}, got {raw!r}")
    return value


def integer(params: Mapping[str, Any], key: str, where: str, *, minimum: int) -> int:
    """``params[key]`` as an int >= ``minimum`` (integral floats such as 10.0 accepted)."""
    raw = params.get(key)
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise ConfigError(f"{where}: parameter {key!r} must be an integer, got {raw!r}")
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{where}: parameter {key!r} must be an integer, got {raw!r}") from None
    if not value.is_integer() or value < minimum:
        raise ConfigError(f"{where}: parameter {key!r} must be an integer >= {minimum}, got {raw!r}")
    return int(value)


def flag(params: Mapping[str, Any], key: str, where: str) -> bool:
    """``params[key]`` as a bool ("true"/"false" strings from the CLI accepted)."""
    raw = params.get(key)
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return raw.strip().lower() in ("true", "1", "yes")
    raise ConfigError(f"{where}: parameter {key!r} must be true or false, got {raw!r}")


def stop_distance(params: Mapping[str, Any], key: str, where: str) -> float:
    """A stop/target distance in price units (NaN when 0 = none).

    ``distance_unit`` says whether the value is in pips (times ``pip_size``) or price.
    """
    value = number(params, key, where, minimum=0.0)
    if value == 0.0:
        return math.nan
    unit = params.get("distance_unit")
    if unit not in DISTANCE_UNITS:
        raise ConfigError(f"{where}: parameter 'distance_unit' must be one of {DISTANCE_UNITS}, got {unit!r}")
    if unit == "pips":
        return value * number(params, "pip_size", where, minimum=0.0, strict=True)
    return value
