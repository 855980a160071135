"""``prediction_strategy`` (seed §3 "Prediction Flow"): trade the trend the prediction
provider sees.

At each bar the strategy takes the predictions made **at that bar's timestamp** (never
the wall clock) and, with ``k = predictions_used`` (3):

* short / long trend = (mean of the first k short- / long-term predictions - price) / price;
* signal = ``short_weight`` (0.6) x short trend + ``long_weight`` (0.4) x long trend;
* relative uncertainty = mean of those predictions' uncertainties / price (uncertainties
  are in price units, as the provider reports them);
* strength = min(|signal| / ``full_confidence_move``, 1);
  confidence = strength x (1 - uncertainty / ``uncertainty_threshold``);
* hold — with the reason — when a prediction is missing or failed, the uncertainty is
  above ``uncertainty_threshold`` (0.05), |signal| is below ``min_move`` (a fraction of
  price), short and long trends disagree while ``require_alignment`` is on, or the
  confidence is below ``confidence_threshold`` (0.7);
* otherwise buy (signal > 0) or sell, sized ``max_quantity`` x confidence rounded down
  to ``quantity_step`` units (the position limit is ``max_quantity``).

``generate_signal`` returns the seed's ``TradingSignal(action, confidence, quantity,
reasoning)``; ``decide`` maps it to a Decision (a sell while long closes the long first,
then opens the short when asked again). In backtests the strategy reads
``PrecomputedPredictions`` rows; ``prepare`` runs the same arithmetic over all rows at
once (identical results, tested). Live, the pipeline passes a ``PredictionResult`` in
``MarketSnapshot.predictions``, or the strategy asks the provider given to
``set_prediction_provider``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from engine.data.market_data import MarketData, MarketSnapshot
from engine.errors import ConfigError, LTSError, StrategyError
from engine.plugins.base import StrategyPlugin
from engine.prediction.types import (
    LONG_TERM,
    SHORT_TERM,
    PrecomputedPredictions,
    PredictionProvider,
    PredictionResult,
)
from engine.strategies._mapping import decision_for
from engine.strategies._params import flag, integer, number, stop_distance
from engine.strategies.signals import HOLD, LONG, SHORT, BarSignals
from engine.types import AssetContext, Decision, TradingSignal

# Why a bar holds (codes from the vectorised analysis, texts for TradingSignal.reasoning).
_OK, _MISSING, _UNCERTAIN, _SMALL, _DISAGREE, _WEAK, _TINY = range(7)


class PredictionStrategy(StrategyPlugin):
    """Weighted short/long-term prediction trend with confidence gating (module doc)."""

    name: ClassVar[str] = "prediction_strategy"
    needs_predictions: ClassVar[bool] = True
    plugin_params: ClassVar[dict[str, Any]] = {
        "short_weight": 0.6,
        "long_weight": 0.4,
        "predictions_used": 3,  # first k predictions of each horizon
        "confidence_threshold": 0.7,
        "uncertainty_threshold": 0.05,  # relative (uncertainty / price)
        "min_move": 0.0005,  # |signal| below this fraction of price: hold
        "full_confidence_move": 0.002,  # |signal| giving strength 1
        "require_alignment": True,  # short and long trends must agree
        "max_quantity": 10_000.0,  # position limit, instrument units
        "quantity_step": 1_000.0,  # sizes are rounded down to this (0: no rounding)
        "stop_loss": 0.0,  # distance from the entry fill; 0 = none
        "take_profit": 0.0,
        "distance_unit": "pips",  # "pips" (x pip_size) or "price"
        "pip_size": 0.0001,
    }
    plugin_debug_vars: ClassVar[list[str]] = [
        "short_weight", "long_weight", "confidence_threshold", "uncertainty_threshold", "min_move",
    ]

    def __init__(self, config: Mapping[str, Any] | None = None,
                 provider: PredictionProvider | None = None) -> None:
        super().__init__(config)
        self._provider = provider
        self._check()

    def set_params(self, **kwargs: Any) -> None:
        super().set_params(**kwargs)
        if hasattr(self, "_k"):
            self._check()

    def set_prediction_provider(self, provider: PredictionProvider | None) -> None:
        """The provider ``decide`` asks when the snapshot carries no predictions."""
        self._provider = provider

    def _check(self) -> None:
        where = "strategy prediction_strategy"
        p = self.params
        self._ws = number(p, "short_weight", where, minimum=0.0)
        self._wl = number(p, "long_weight", where, minimum=0.0)
        if self._ws + self._wl <= 0:
            raise ConfigError(f"{where}: 'short_weight' + 'long_weight' must be > 0")
        self._k = integer(p, "predictions_used", where, minimum=1)
        self._conf = number(p, "confidence_threshold", where, minimum=0.0, maximum=1.0)
        self._unc = number(p, "uncertainty_threshold", where, minimum=0.0, strict=True)
        self._min_move = number(p, "min_move", where, minimum=0.0)
        self._full = number(p, "full_confidence_move", where, minimum=0.0, strict=True)
        self._align = flag(p, "require_alignment", where)
        self._max_q = number(p, "max_quantity", where, minimum=0.0, strict=True)
        self._step = number(p, "quantity_step", where, minimum=0.0)
        if self._step > self._max_q:
            raise ConfigError(f"{where}: 'quantity_step' ({self._step:g}) exceeds 'max_quantity' ({self._max_q:g})")
        self._sl = stop_distance(p, "stop_loss", where)
        self._tp = stop_distance(p, "take_profit", where)

    # ----------------------------------------------------------- arithmetic
    def _analyze(self, price: np.ndarray, short: np.ndarray, long: np.ndarray,
                 short_unc: np.ndarray, long_unc: np.ndarray) -> tuple[np.ndarray, ...]:
        """Vectorised analysis of m rows: (codes, confidence, quantity, why, signal, unc).

        ``short``/``long`` and their uncertainties are (m, >=k) arrays. Only elementwise
        operations in a fixed order: one row gives bit-identical results alone or among
        a million (this is what keeps ``prepare`` and ``decide`` in agreement).
        """
        k = self._k
        if short.shape[1] < k or long.shape[1] < k:
            missing = np.ones(price.shape, dtype=bool)
        else:
            missing = np.zeros(price.shape, dtype=bool)
        kk = min(k, short.shape[1], long.shape[1], short_unc.shape[1], long_unc.shape[1])
        if kk == 0:
            nan = np.full(price.shape, np.nan)
            s_sum = l_sum = su_sum = lu_sum = nan
        else:
            s_sum, l_sum, su_sum, lu_sum = short[:, 0].copy(), long[:, 0].copy(), short_unc[:, 0].copy(), long_unc[:, 0].copy()
            for j in range(1, kk):
                s_sum += short[:, j]
                l_sum += long[:, j]
                su_sum += short_unc[:, j]
                lu_sum += long_unc[:, j]
        short_trend = (s_sum / k - price) / price
        long_trend = (l_sum / k - price) / price
        signal = self._ws * short_trend + self._wl * long_trend
        unc = (su_sum / k + lu_sum / k) / 2.0 / price
        with np.errstate(invalid="ignore"):
            missing |= ~(np.isfinite(signal) & np.isfinite(unc) & (price > 0))
            strength = np.minimum(np.abs(signal) / self._full, 1.0)
            confidence = strength * np.maximum(1.0 - unc / self._unc, 0.0)
            raw_qty = self._max_q * confidence
            # Round down to whole steps; the tiny epsilon keeps 0.8 computed as 0.79999... at 8 steps.
            qty = np.floor(raw_qty / self._step + 1e-9) * self._step if self._step > 0 else raw_qty
            why = np.full(price.shape, _OK, dtype=np.int8)
            # Later assignments must not override earlier reasons: fill from last to first.
            why[qty <= 0] = _TINY
            why[confidence < self._conf] = _WEAK
            if self._align:
                why[np.sign(short_trend) != np.sign(long_trend)] = _DISAGREE
            why[np.abs(signal) < self._min_move] = _SMALL
            why[unc > self._unc] = _UNCERTAIN
            why[missing] = _MISSING
        codes = np.where(why == _OK, np.where(signal > 0, LONG, SHORT), HOLD).astype(np.int8)
        return codes, confidence, qty, why, signal, unc

    # ---------------------------------------------------------- fast path
    def prepare(self, data: MarketData, predictions: Any | None = None) -> BarSignals:
        """Signals for every bar from ``PrecomputedPredictions`` (row i = made at bar i)."""
        if not isinstance(predictions, PrecomputedPredictions):
            raise StrategyError(
                "strategy prediction_strategy: backtests need PrecomputedPredictions (e.g. "
                f"CsvPredictionProvider(data).precompute()), got {type(predictions).__name__}"
            )
        n = len(data)
        for field_name in ("short_term", "long_term", "short_uncertainty", "long_uncertainty"):
            arr = getattr(predictions, field_name)
            if arr.ndim != 2 or arr.shape[0] != n:
                raise StrategyError(
                    f"strategy prediction_strategy: predictions.{field_name} has shape {arr.shape}, "
                    f"expected ({n}, horizons) to match the data"
                )
        codes, _, qty, _, _, _ = self._analyze(
            np.asarray(data.close, dtype=np.float64),
            predictions.short_term, predictions.long_term,
            predictions.short_uncertainty, predictions.long_uncertainty,
        )
        return BarSignals(
            action=codes,
            quantity=qty,
            sl_distance=None if math.isnan(self._sl) else np.full(n, self._sl),
            tp_distance=None if math.isnan(self._tp) else np.full(n, self._tp),
        )

    # ---------------------------------------------------------- one step
    def generate_signal(
        self,
        price: float,
        short_term: Sequence[float | None],
        long_term: Sequence[float | None],
        short_uncertainty: Sequence[float | None] = (),
        long_uncertainty: Sequence[float | None] = (),
    ) -> TradingSignal:
        """The seed's TradingSignal for one bar (missing values -> ``hold`` with the reason)."""

        def row(values: Sequence[float | None]) -> np.ndarray:
            vals = [math.nan if v is None else float(v) for v in list(values)[: self._k]]
            return np.array([vals], dtype=np.float64).reshape(1, len(vals))

        s, l = row(short_term), row(long_term)
        su = row(short_uncertainty) if short_uncertainty else np.zeros((1, s.shape[1]))
        lu = row(long_uncertainty) if long_uncertainty else np.zeros((1, l.shape[1]))
        codes, conf, qty, why, signal, unc = self._analyze(np.array([float(price)]), s, l, su, lu)
        code, c, q, w, sig, u = int(codes[0]), float(conf[0]), float(qty[0]), int(why[0]), float(signal[0]), float(unc[0])
        if w == _MISSING:
            have = f"{sum(v is not None for v in list(short_term)[: self._k])} short / " \
                   f"{sum(v is not None for v in list(long_term)[: self._k])} long"
            return TradingSignal(action="hold", reasoning=f"partial predictions: need {self._k} of each, have {have}")
        reasons = {
            _UNCERTAIN: f"uncertainty {u:.4g} above threshold {self._unc:g}",
            _SMALL: f"predicted move {sig:+.4%} below minimum {self._min_move:.4%}",
            _DISAGREE: "short- and long-term trends disagree",
            _WEAK: f"confidence {c:.2f} below threshold {self._conf:g}",
            _TINY: f"confidence {c:.2f} sizes below one step of {self._step:g} units",
        }
        if w != _OK:
            return TradingSignal(action="hold", confidence=c, reasoning=reasons[w])
        action = "buy" if code == LONG else "sell"
        return TradingSignal(
            action=action, confidence=c, quantity=q,
            reasoning=f"weighted trend {sig:+.4%}, uncertainty {u:.2g}, confidence {c:.2f}",
        )

    def _predictions_at(self, asset: AssetContext, snap: MarketSnapshot) -> PredictionResult | tuple | str:
        """This bar's predictions as a result / row tuple, or the reason there are none."""
        preds = snap.predictions
        if isinstance(preds, PrecomputedPredictions):
            i = snap.index
            return (preds.short_term[i].tolist(), preds.long_term[i].tolist(),
                    preds.short_uncertainty[i].tolist(), preds.long_uncertainty[i].tolist())
        if preds is None:
            if self._provider is None:
                return "no predictions available (no provider configured)"
            try:
                preds = self._provider.get_predictions(asset.symbol, snap.timestamp, (SHORT_TERM, LONG_TERM))
            except LTSError as exc:
                return f"prediction failed: {exc}"
        if not isinstance(preds, PredictionResult):
            raise StrategyError(
                f"strategy prediction_strategy: market_data.predictions must be a PredictionResult or "
                f"PrecomputedPredictions, got {type(preds).__name__}"
            )
        return preds

    def decide(self, asset_data: AssetContext, market_data: MarketSnapshot) -> Decision:
        """Ask for predictions at the bar's time, build the signal, map it to a Decision."""
        got = self._predictions_at(asset_data, market_data)
        if isinstance(got, str):
            return Decision.hold(got)
        if isinstance(got, PredictionResult):
            rows = (got.short_term, got.long_term, got.short_uncertainty, got.long_uncertainty)
        else:
            rows = got
        sig = self.generate_signal(market_data.price, *rows)
        # Only the first ``predictions_used`` values of each horizon matter (as in the
        # vectorised prepare()): an error about a later horizon must not change the
        # decision; when a needed value is missing, the provider's reason is the reason.
        if isinstance(got, PredictionResult) and got.errors and sig.reasoning.startswith("partial predictions"):
            detail = "; ".join(f"{k}: {v}" for k, v in sorted(got.errors.items()))
            return Decision.hold(f"prediction failed: {detail}")
        code = {"buy": LONG, "sell": SHORT}.get(sig.action, HOLD)
        return decision_for(code, sig.quantity, self._sl, self._tp, asset_data, sig.reasoning)
