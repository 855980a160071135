"""``RuntimeSettings``: the part of the merged config the actor runtime reads, typed and
frozen, built once (``RuntimeSettings.from_config``) by whoever starts the engine and
passed to every supervisor and asset actor.

Every key is read and checked here, once: an actor never looks a key up with a default of
its own, so a default lives in one place (``engine.config.defaults``) and a bad value is
refused before any actor starts, naming the config key.

Engine helpers that take a config mapping (the data-directory path policy, the prediction
client's settings, the operator's broker rules) get ``engine_config()``: the plain keys
they read, nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.config.defaults import DEFAULT_VALUES
from engine.errors import ConfigError

ENGINE_KEYS: tuple[str, ...] = (
    "mode", "database_url", "data_dir", "prediction_provider_url", "prediction_api_key", "prediction_timeout_s",
    "outbound_hosts", "operator_broker_portfolios",
)
"""Keys engine helpers read from a config mapping (``engine_config``)."""


def _default(key: str, fallback: Any) -> Any:
    return DEFAULT_VALUES.get(key, fallback)


def _number(config: Mapping[str, Any], key: str, fallback: float, *, minimum: float = 0.0,
            strict: bool = False) -> float:
    value = config.get(key)
    if value is None:
        value = _default(key, fallback)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}: must be a number, got {value!r}")
    if value < minimum or (strict and value <= minimum):
        raise ConfigError(f"{key}: must be {'>' if strict else '>='} {minimum:g}, got {value!r}")
    return float(value)


def _integer(config: Mapping[str, Any], key: str, fallback: int, *, minimum: int = 0) -> int:
    value = config.get(key)
    if value is None:
        value = _default(key, fallback)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key}: must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _hosts(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"outbound_hosts: must be a list of host names, got {type(value).__name__}")
    return tuple(str(h) for h in value)


def check_steps_in_flight(value: Any) -> int | None:
    """Validate the ``max_steps_in_flight`` config value (``None``, or an int >= 0)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ConfigError(f"max_steps_in_flight: must be null or an integer >= 0 (0 = no limit), got {value!r}")
    return value


@dataclass(frozen=True)
class RuntimeSettings:
    """What the supervisors and asset actors read from the config (see the module docstring)."""

    database_url: str = "sqlite:///./lts.db"
    namespace: str = "lts"
    mode: str = "simulation"
    data_dir: str | None = None
    global_latency: float = 1.0
    step_timeout_s: float = 10.0
    prediction_timeout_s: float = 10.0
    max_asset_restarts: int = 5
    restart_window_s: float = 60.0
    local_persistence: bool = False  # ``persistence: "local"``: writes on a local Store (tests, tools)
    persistence_batch_size: int = 100
    persistence_batch_delay_ms: float = 0.0
    strategy_actors: bool = False
    max_steps_in_flight: int | None = None  # None: ``default_steps_in_flight``; 0: no limit
    bars_per_call: int = 64  # ``simulation_bars_per_call``
    call_budget_ms: float = 100.0  # ``simulation_call_budget_ms``
    paced_catch_up: bool = True
    outbound_hosts: tuple[str, ...] | None = None  # None: the default allow-list
    prediction_provider_url: str | None = None
    # The plain keys engine helpers read (``engine_config``); not compared, not hashed.
    _engine: tuple[tuple[str, Any], ...] = field(default=(), compare=False, hash=False, repr=False)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "RuntimeSettings":
        """Read and check the runtime's keys of a merged config (``ConfigError`` names a
        bad key). Unset keys take ``engine.config.defaults``."""
        return cls(
            database_url=str(config.get("database_url") or _default("database_url", cls.database_url)),
            namespace=str(config.get("ray_namespace") or "lts"),
            mode=str(config.get("mode") or _default("mode", "simulation")),
            data_dir=None if config.get("data_dir", _default("data_dir", None)) is None
            else str(config.get("data_dir", _default("data_dir", None))),
            global_latency=_number(config, "global_latency", 1.0),
            step_timeout_s=_number(config, "step_timeout_s", 10.0, strict=True),
            prediction_timeout_s=_number(config, "prediction_timeout_s", 10.0, strict=True),
            max_asset_restarts=_integer(config, "max_asset_restarts", 5),
            restart_window_s=_number(config, "restart_window_s", 60.0, strict=True),
            local_persistence=config.get("persistence") == "local",
            persistence_batch_size=_integer(config, "persistence_batch_size", 100, minimum=1),
            persistence_batch_delay_ms=_number(config, "persistence_batch_delay_ms", 0.0),
            strategy_actors=bool(config.get("strategy_actors", False)),
            max_steps_in_flight=check_steps_in_flight(config.get("max_steps_in_flight")),
            bars_per_call=_integer(config, "simulation_bars_per_call", 64, minimum=1),
            call_budget_ms=_number(config, "simulation_call_budget_ms", 100.0, strict=True),
            paced_catch_up=bool(config.get("paced_catch_up", _default("paced_catch_up", True))),
            outbound_hosts=_hosts(config.get("outbound_hosts")),
            prediction_provider_url=None if config.get("prediction_provider_url") is None
            else str(config["prediction_provider_url"]),
            _engine=tuple((key, config[key]) for key in ENGINE_KEYS if key in config),
        )

    @classmethod
    def of(cls, value: "RuntimeSettings | Mapping[str, Any]") -> "RuntimeSettings":
        """``value`` itself, or the settings of a config mapping (tools and tests that
        hold a config dict)."""
        return value if isinstance(value, cls) else cls.from_config(value)

    @property
    def simulation(self) -> bool:
        """Replaying CSV data (``mode: simulation``), not trading live."""
        return self.mode == "simulation"

    def engine_config(self) -> dict[str, Any]:
        """The plain config keys engine helpers read (a fresh dict: the settings stay frozen)."""
        config = dict(self._engine)
        config.setdefault("database_url", self.database_url)
        config.setdefault("mode", self.mode)
        return config


__all__ = ["ENGINE_KEYS", "RuntimeSettings", "check_steps_in_flight"]
