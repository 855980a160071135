"""Predictions for strategies (seed §1.4, INT-05).

* API mode: :class:`PredictionClient` (sync) and :class:`AsyncPredictionClient` speak
  the external prediction provider's protocol, configured by :class:`PredictionClientSettings`.
* CSV mode: :class:`CsvPredictionProvider` reads "perfect" predictions from future closes.

All of them answer ``get_predictions(symbol, at, types) -> PredictionResult`` for a bar time.
"""

from engine.prediction.async_client import AsyncPredictionClient
from engine.prediction.client import PredictionClient
from engine.prediction.csv_provider import CsvPredictionProvider
from engine.prediction.protocol import TypedPrediction, normalize_symbol
from engine.prediction.settings import PredictionClientSettings
from engine.prediction.types import (
    LONG_TERM,
    PREDICTION_TYPES,
    SHORT_TERM,
    PrecomputedPredictions,
    PrecomputingProvider,
    PredictionProvider,
    PredictionResult,
)

__all__ = [
    "LONG_TERM",
    "PREDICTION_TYPES",
    "SHORT_TERM",
    "AsyncPredictionClient",
    "CsvPredictionProvider",
    "PrecomputedPredictions",
    "PrecomputingProvider",
    "PredictionClient",
    "PredictionClientSettings",
    "PredictionProvider",
    "PredictionResult",
    "TypedPrediction",
    "normalize_symbol",
]
