"""One root exception for LTS, split by what the operator must do.

Modelled on Freqtrade's hierarchy: a config error is fatal and needs a human,
a temporary error may be retried, a rejected order must never be retried, a
strategy error is isolated to its asset.
"""

from __future__ import annotations


class LTSError(Exception):
    """Root of every error LTS raises on purpose. Its message is meant for users."""


class ConfigError(LTSError):
    """The configuration is invalid; fix the named key / file and start again."""


class PluginError(LTSError):
    """A plugin could not be found, imported or does not implement its contract."""


class DataError(LTSError):
    """Input market data is malformed (message names file and line)."""


class TemporaryError(LTSError):
    """A transient failure (network, rate limit, 5xx). Safe to retry with backoff."""


class OrderRejected(LTSError):
    """The broker refused the order (margin, invalid params). Never retry blindly."""


class StrategyError(LTSError):
    """A strategy raised while deciding. Isolated to its asset (INT-04)."""


class PredictionError(LTSError):
    """The prediction provider failed, timed out or answered garbage."""


class BrokerError(LTSError):
    """A broker failed in a way that is not a clean rejection."""


class DomainError(LTSError):
    """A domain rule was broken (unknown portfolio, negative quantity, wrong side...)."""


class NotFound(DomainError):
    """The referenced object does not exist (or is not visible to the caller)."""


class UnstorableValue(DomainError):
    """A value the database cannot store (a NUL character, text too long for its column,
    a number out of range). The client's input is at fault: a 422, not a conflict."""
