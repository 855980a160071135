"""CSV-mode perfect predictions: horizon rules on real daily and hourly data, vectorised
precompute agreeing with the per-bar lookup, edges (end of data, before the first bar)."""

from __future__ import annotations

import bisect
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from engine.data.csv_loader import load_csv
from engine.data.market_data import MarketData
from engine.errors import ConfigError, DataError, PredictionError
from engine.prediction import CsvPredictionProvider, PrecomputingProvider, PredictionProvider

DAY = timedelta(days=1)


def _series(times: list[datetime], symbol: str = "TEST") -> MarketData:
    """Bars whose close is ``100 + index``: a prediction's value names the bar it came from."""
    ts = np.array([int(t.timestamp()) * 1_000_000_000 for t in times], dtype=np.int64)
    close = 100.0 + np.arange(len(times), dtype=np.float64)
    return MarketData(symbol=symbol, timestamps=ts, open=close, high=close + 0.5, low=close - 0.5, close=close)


@pytest.fixture(scope="module")
def goog(backtesting_data_dir: Path) -> MarketData:
    return load_csv(backtesting_data_dir / "GOOG.csv", symbol="GOOG")


@pytest.fixture(scope="module")
def eurusd(backtesting_data_dir: Path) -> MarketData:
    return load_csv(backtesting_data_dir / "EURUSD.csv", symbol="EURUSD")


def test_provider_satisfies_the_contract(goog: MarketData) -> None:
    provider = CsvPredictionProvider(goog)
    assert isinstance(provider, PredictionProvider)
    assert isinstance(provider, PrecomputingProvider)


def test_daily_data_short_and_long_term_are_bars_ahead(goog: MarketData) -> None:
    pre = CsvPredictionProvider(goog).precompute()
    frame = goog.to_frame()
    n = len(goog)
    assert pre.short_term.shape == pre.long_term.shape == (n, 6)
    for h in range(1, 7):
        expected = frame["close"].shift(-h).to_numpy()
        np.testing.assert_array_equal(pre.short_term[:, h - 1], expected)
        # Daily data: "h days" means h trading days, i.e. h bars (weekends have no bars).
        np.testing.assert_array_equal(pre.long_term[:, h - 1], expected)
    assert np.isnan(pre.short_term[-1]).all() and not np.isnan(pre.short_term[-7]).any()


def test_hourly_long_term_is_first_bar_at_or_after_t_plus_h_days(eurusd: MarketData) -> None:
    pre = CsvPredictionProvider(eurusd).precompute()
    times = [eurusd.time_at(i) for i in range(len(eurusd))]
    close = eurusd.close
    for h in range(1, 7):
        np.testing.assert_array_equal(pre.short_term[:, h - 1], eurusd.to_frame()["close"].shift(-h).to_numpy())
    # Independent check with the standard library on every 37th bar.
    for i in range(0, len(eurusd), 37):
        for h in range(1, 7):
            j = bisect.bisect_left(times, times[i] + h * DAY)
            expected = close[j] if j < len(times) else np.nan
            np.testing.assert_equal(pre.long_term[i, h - 1], expected)


def test_hourly_long_term_across_a_weekend(eurusd: MarketData) -> None:
    """Friday evening + 1 day and + 2 days both land on the first bar after the weekend gap."""
    pre = CsvPredictionProvider(eurusd).precompute()
    times = [eurusd.time_at(i) for i in range(len(eurusd))]
    fridays = [
        i
        for i in range(len(times) - 1)
        if times[i].weekday() == 4 and times[i + 1] - times[i] > 2 * DAY and times[i].hour >= 12
    ]
    assert fridays, "the EURUSD sample should contain weekend gaps"
    i = fridays[0]
    first_after_gap = i + 1
    assert pre.long_term[i, 0] == eurusd.close[first_after_gap]
    assert pre.long_term[i, 1] == eurusd.close[first_after_gap]
    assert pre.short_term[i, 0] == eurusd.close[first_after_gap]


def test_precompute_and_get_predictions_agree_on_every_bar(goog: MarketData, eurusd: MarketData) -> None:
    for data, step in ((goog, 1), (eurusd, 7)):
        provider = CsvPredictionProvider(data)
        pre = provider.precompute()
        for i in range(0, len(data), step):
            got = provider.get_predictions(data.symbol, data.time_at(i))
            for row, values, unc_row, unc in (
                (pre.short_term[i], got.short_term, pre.short_uncertainty[i], got.short_uncertainty),
                (pre.long_term[i], got.long_term, pre.long_uncertainty[i], got.long_uncertainty),
            ):
                as_array = np.array([np.nan if v is None else v for v in values])
                np.testing.assert_array_equal(row, as_array)
                np.testing.assert_array_equal(unc_row, np.array([np.nan if u is None else u for u in unc]))
            assert got.source == "csv"
            assert got.timestamp == data.time_at(i)


def test_near_zero_uncertainty_configurable_and_missing_past_the_end() -> None:
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    data = _series([start + timedelta(hours=k) for k in range(10)])
    default = CsvPredictionProvider(data).precompute()
    assert np.nanmax(default.short_uncertainty) <= 1e-5
    pre = CsvPredictionProvider(data, uncertainty=0.02).precompute()
    assert pre.short_uncertainty[0].tolist() == [0.02] * 6
    # Bar 6 of 10: horizons 1..3 exist, 4..6 run past the end.
    assert pre.short_term[6, :3].tolist() == [107.0, 108.0, 109.0]
    assert np.isnan(pre.short_term[6, 3:]).all() and np.isnan(pre.short_uncertainty[6, 3:]).all()
    # Ten hours of data: no bar a day ahead.
    assert np.isnan(pre.long_term).all()


def test_get_predictions_at_the_last_bar_reports_missing_values() -> None:
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    data = _series([start + timedelta(hours=k) for k in range(10)])
    got = CsvPredictionProvider(data).get_predictions("TEST", data.time_at(8))
    assert got.short_term == [109.0, None, None, None, None, None]
    assert got.short_uncertainty[1:] == [None] * 5
    assert "horizon(s) [2, 3, 4, 5, 6]" in got.errors["short_term"]
    assert not got.ok


def test_get_predictions_between_bars_uses_the_last_bar_before() -> None:
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    data = _series([start + timedelta(hours=k) for k in range(30)])
    provider = CsvPredictionProvider(data)
    between = provider.get_predictions("TEST", start + timedelta(hours=3, minutes=59))
    at_bar = provider.get_predictions("TEST", start + timedelta(hours=3))
    assert between.short_term == at_bar.short_term == [104.0, 105.0, 106.0, 107.0, 108.0, 109.0]
    assert between.timestamp == start + timedelta(hours=3, minutes=59)  # the time asked about
    # A naive datetime is taken as UTC.
    assert provider.get_predictions("TEST", datetime(2024, 1, 1, 3)).short_term == at_bar.short_term


def test_get_predictions_before_the_first_bar_is_an_error_per_type() -> None:
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    data = _series([start + timedelta(hours=k) for k in range(5)])
    got = CsvPredictionProvider(data).get_predictions("TEST", start - timedelta(seconds=1))
    assert got.short_term == [] and got.long_term == []
    assert set(got.errors) == {"short_term", "long_term"}
    assert "no bar at or before" in got.errors["short_term"]


def test_only_requested_types_are_answered() -> None:
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    data = _series([start + timedelta(days=k) for k in range(20)])
    got = CsvPredictionProvider(data).get_predictions("TEST", start, ("long_term",))
    assert got.short_term == [] and got.long_term == [101.0, 102.0, 103.0, 104.0, 105.0, 106.0]
    with pytest.raises(PredictionError, match="unknown prediction type"):
        CsvPredictionProvider(data).get_predictions("TEST", start, ("weekly",))


def test_long_term_unit_can_be_forced() -> None:
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    hourly = _series([start + timedelta(hours=k) for k in range(24 * 8)])
    by_bars = CsvPredictionProvider(hourly, long_term_unit="bar").precompute()
    assert by_bars.long_term[0].tolist() == [101.0, 102.0, 103.0, 104.0, 105.0, 106.0]
    by_days = CsvPredictionProvider(hourly, long_term_unit="calendar_day").precompute()
    assert by_days.long_term[0].tolist() == [100.0 + 24 * h for h in range(1, 7)]
    auto = CsvPredictionProvider(hourly).precompute()
    np.testing.assert_array_equal(auto.long_term, by_days.long_term)


def test_precompute_accepts_other_data_with_the_same_rules(goog: MarketData) -> None:
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    small = _series([start + timedelta(hours=k) for k in range(3)])
    other = CsvPredictionProvider(small, horizons=2).precompute(goog.slice(0, 10))
    assert other.short_term.shape == (10, 2)
    np.testing.assert_array_equal(other.long_term[:8, 0], goog.close[1:9])  # daily -> bars


def test_bad_input_is_refused_clearly() -> None:
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    data = _series([start + timedelta(hours=k) for k in range(5)])
    with pytest.raises(ConfigError, match="horizons"):
        CsvPredictionProvider(data, horizons=0)
    with pytest.raises(ConfigError, match="uncertainty"):
        CsvPredictionProvider(data, uncertainty=-1.0)
    with pytest.raises(ConfigError, match="long_term_unit"):
        CsvPredictionProvider(data, long_term_unit="weeks")  # type: ignore[arg-type]
    shuffled = _series([start + timedelta(hours=k) for k in (0, 1, 3, 2, 4)])
    with pytest.raises(DataError, match="not strictly increasing at bar 3"):
        CsvPredictionProvider(shuffled)
    with pytest.raises(PredictionError, match="must be a string"):
        CsvPredictionProvider(data).get_predictions(None, start)  # type: ignore[arg-type]


def test_any_symbol_is_served_and_a_mismatch_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    data = _series([start + timedelta(hours=k) for k in range(10)], symbol="eurusd_h1_2018-11_2020-03")
    provider = CsvPredictionProvider(data)
    with caplog.at_level("WARNING", logger="engine.prediction.csv_provider"):
        # Names that are no valid API symbol still work in CSV mode.
        assert provider.get_predictions("EURUSD_H1_2018-11_2020-03", start).short_term[0] == 101.0
        assert not caplog.records
        provider.get_predictions("GBP/USD", start)
        provider.get_predictions("GBP/USD", start)
    assert len(caplog.records) == 1 and "GBP/USD" in caplog.records[0].getMessage()


def test_from_csv_loads_a_file(backtesting_data_dir: Path) -> None:
    provider = CsvPredictionProvider.from_csv(backtesting_data_dir / "GOOG.csv", symbol="GOOG", uncertainty=0.0)
    got = provider.get_predictions("GOOG", provider.data.time_at(0))
    assert got.short_term[0] == float(provider.data.close[1])
    assert got.short_uncertainty[0] == 0.0
