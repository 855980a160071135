"""Prediction sources of the backtrader broker, switchable at runtime (INT-09).

A source is any ``PredictionProvider``. ``"csv"`` and ``"api"`` are built from keyword
arguments (a CSV path or ``MarketData``; the API base URL, key and client settings);
a provider object can be given directly. Switching back to a source used before reuses
the provider already built (its HTTP pool, its loaded CSV) unless new arguments are given.

Every switch is recorded (bar time, from, to) and every answered request is counted per
source, so a run's debug info and metrics show which source produced what.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.data.market_data import MarketData
from engine.errors import ConfigError
from engine.outbound import OutboundPolicy, default_policy
from engine.prediction.types import PREDICTION_TYPES, PredictionProvider, PredictionResult

logger = logging.getLogger(__name__)

SOURCE_NAMES = ("csv", "api")


@dataclass(frozen=True, slots=True)
class SourceSwitch:
    """One switch: at which bar time (None before the run) from which source to which."""

    at: datetime | None
    from_source: str | None
    to_source: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat() if self.at else None,
            "from": self.from_source,
            "to": self.to_source,
        }


def build_provider(source: str, options: dict[str, Any], outbound: OutboundPolicy | None = None) -> PredictionProvider:
    """A provider for ``"csv"`` (``path`` or ``data``, plus CsvPredictionProvider options)
    or ``"api"`` (``url``/``base_url``, ``api_key``, PredictionClientSettings fields; the
    base URL must be one ``outbound`` allows, the default allow-list when None)."""
    if source == "csv":
        from engine.prediction.csv_provider import CsvPredictionProvider

        data = options.pop("data", None)
        path = options.pop("path", None)
        symbol = options.pop("symbol", None)
        if isinstance(data, MarketData):
            return CsvPredictionProvider(data, **options)
        if path:
            return CsvPredictionProvider.from_csv(path, symbol=symbol, **options)
        raise ConfigError(
            "backtrader_broker: the csv prediction source needs path=<OHLC CSV> or data=<MarketData> "
            "(or set the broker's prediction_csv key)"
        )
    if source == "api":
        from engine.prediction.client import PredictionClient
        from engine.prediction.settings import PredictionClientSettings

        if "url" in options:
            options["base_url"] = options.pop("url")
        settings = PredictionClientSettings.from_config({}, overrides=options)
        # where the HTTP client is built: a user's URL reaches only the operator's hosts
        (outbound or default_policy()).check_url(settings.base_url, "broker_config.prediction_provider_url")
        return PredictionClient(settings)
    raise ConfigError(
        f"backtrader_broker: unknown prediction source {source!r}; use one of {', '.join(SOURCE_NAMES)} "
        "or pass a PredictionProvider object"
    )


class PredictionSources:
    """The broker's current prediction source, the ones built so far and what each answered."""

    def __init__(self) -> None:
        self.current: str | None = None
        self._providers: dict[str, PredictionProvider] = {}
        self.switches: list[SourceSwitch] = []
        self.requests: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()

    def switch(
        self, source: str | PredictionProvider, at: datetime | None, *, outbound: OutboundPolicy | None = None,
        **options: Any,
    ) -> str:
        """Make ``source`` current; returns its name. See the module docstring.
        ``outbound``: the hosts an ``"api"`` source may call."""
        if isinstance(source, str):
            name = source.lower()
            if options or name not in self._providers:
                provider = build_provider(name, dict(options), outbound)  # fails before anything changes
                _close(self._providers.get(name))
                self._providers[name] = provider
        elif isinstance(source, PredictionProvider):
            name = str(options.pop("name", None) or getattr(source, "source", None) or type(source).__name__)
            if options:
                raise ConfigError(f"backtrader_broker: unexpected options {sorted(options)} for a provider object")
            if self._providers.get(name) is not source:
                _close(self._providers.pop(name, None))
            self._providers[name] = source
        else:
            raise ConfigError(
                f"backtrader_broker: a prediction source is 'csv', 'api' or a PredictionProvider, got {source!r}"
            )
        if name != self.current:
            self.switches.append(SourceSwitch(at, self.current, name))
            logger.info("prediction source switched from %s to %s at %s", self.current, name, at)
        self.current = name
        return name

    def get(self, symbol: str, at: datetime, types: tuple[str, ...] = PREDICTION_TYPES) -> PredictionResult:
        """Predictions from the current source for ``symbol`` at bar time ``at``."""
        if self.current is None:
            raise ConfigError("backtrader_broker: no prediction source; call switch_prediction_source first")
        result = self._providers[self.current].get_predictions(symbol, at, types)
        self.requests[self.current] += 1
        if result.errors:
            self.failures[self.current] += 1
        return result

    def close(self) -> None:
        for provider in self._providers.values():
            _close(provider)
        self._providers.clear()

    def summary(self) -> dict[str, Any]:
        return {
            "current_prediction_source": self.current,
            "prediction_switches": [s.as_dict() for s in self.switches],
            "predictions_by_source": dict(self.requests),
            "prediction_failures_by_source": dict(self.failures),
        }


def _close(provider: object) -> None:
    close = getattr(provider, "close", None)
    if callable(close):
        close()
