"""``prediction_strategy`` through the actor runtime.

CSV mode: the asset reads "perfect" predictions from its own data file; the trades it
leaves in the database equal ``run_backtest``'s on the same data (parity).
API mode: the predictions come from the real loopback prediction service through the
``PredictionActor``; the service's request log shows one request per prediction type per
bar, each made at the bar's own timestamp, and the decision they drove is an order."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from engine.backtest.runner import run_backtest
from engine.data.csv_loader import load_csv
from engine.prediction.csv_provider import CsvPredictionProvider
from tests.integration.actors.engine_helpers import engine_config, running_engine, seed_portfolio, wait_for, write_ohlc_csv

pytestmark = pytest.mark.ray

PARAMS = {"stop_loss": 25.0}  # pips from the entry fill: exercises sl_distance through the actors


def q8(value: Decimal) -> Decimal:
    return value.quantize(Decimal("1e-8"))


def _finished(runtime, count: int) -> dict | None:
    assets = {a["asset_id"]: a for a in runtime.status()["assets"]}
    return assets if len(assets) == count and all(a["state"] == "finished" for a in assets.values()) else None


def test_csv_predictions_trade_like_the_backtest(ray_session, sqlite_store, sqlite_db_url, tmp_path: Path,
                                                 backtesting_data_dir: Path):
    from persistence.records import PageRequest

    path = write_ohlc_csv(backtesting_data_dir / "EURUSD.csv", tmp_path / "eurusd.csv", slice(0, 400))
    portfolio_id, (asset_id,) = seed_portfolio(sqlite_store, [{
        "symbol": "EURUSD", "strategy_plugin": "prediction_strategy", "strategy_config": PARAMS,
        "broker_plugin": "backtrader_simulation_broker",
        "data_source": {"path": path.name, "predictions": "csv"}}])
    with running_engine(engine_config(sqlite_db_url, tmp_path)) as runtime:
        status = wait_for(lambda: _finished(runtime, 1), 90, what="the prediction asset to walk its data")
    assert status[asset_id]["failures"] == 0, status[asset_id]["last_error"]

    data = load_csv(path, symbol="EURUSD")
    expected = run_backtest(data, "prediction_strategy", PARAMS,
                            predictions=CsvPredictionProvider(data).precompute(data)).trades
    positions = sorted(sqlite_store.list_positions(asset_id=asset_id, page=PageRequest(limit=500)).items,
                       key=lambda p: p.opened_at)
    assert len(expected) >= 5 and len(positions) == len(expected)
    for position, trade in zip(positions, expected):
        assert position.side.value == trade.side.value
        assert (position.opened_at, position.closed_at) == (trade.entry_time, trade.exit_time)
        assert position.entry_price == q8(Decimal(repr(trade.entry_price)))
        assert position.close_price == q8(Decimal(repr(trade.exit_price)))
        assert position.realized_pnl == q8(Decimal(repr(trade.pnl)))
        assert position.close_reason == trade.exit_reason
    # The stop distance travelled with every open (and is kept for a broker replay).
    opens = [o for o in sqlite_store.list_orders(asset_id=asset_id, page=PageRequest(limit=500)).items
             if o.action == "open"]
    assert opens and all(o.details["params"]["sl_distance"] == pytest.approx(0.0025) for o in opens)


def test_api_predictions_are_asked_at_each_bars_time(ray_session, sqlite_store, sqlite_db_url, tmp_path: Path,
                                                     backtesting_data_dir: Path, prediction_service):
    from persistence.records import PageRequest

    bars = 20
    path = write_ohlc_csv(backtesting_data_dir / "EURUSD.csv", tmp_path / "eurusd.csv", slice(100, 100 + bars))
    # Every horizon far above the price: a confident buy on the first bar, then "already long".
    prediction_service.set_scenario("EURUSD", predictions={"short_term": [1.5] * 6, "long_term": [1.5] * 6})
    portfolio_id, (asset_id,) = seed_portfolio(sqlite_store, [{
        "symbol": "EURUSD", "strategy_plugin": "prediction_strategy", "strategy_config": {},
        "broker_plugin": "backtrader_simulation_broker",
        "data_source": {"path": path.name, "predictions": "api"}}])
    config = engine_config(sqlite_db_url, tmp_path, prediction_provider_url=prediction_service.base_url)
    with running_engine(config) as runtime:
        status = wait_for(lambda: _finished(runtime, 1), 90, what="the prediction asset to walk its data")
    assert status[asset_id]["failures"] == 0, status[asset_id]["last_error"]

    data = load_csv(path, symbol="EURUSD")
    bar_times = [data.time_at(i).isoformat() for i in range(bars)]
    posts = [r for r in prediction_service.requests("EURUSD") if r["method"] == "POST"]
    asked = sorted((r["body"]["baseline_datetime"], r["body"]["prediction_type"]) for r in posts)
    # One request per type per bar (the prediction actor asks once), each at the bar's own time.
    assert asked == sorted((t, kind) for t in bar_times for kind in ("short_term", "long_term"))
    assert all(r["body"]["symbol"] == "EURUSD" for r in posts)
    # The predictions drove the decision: one buy, opened at the second bar's open, closed at the end.
    orders = sqlite_store.list_orders(asset_id=asset_id, page=PageRequest(limit=50)).items
    assert [(o.action, o.side.value, o.status.value) for o in orders] == [("open", "buy", "open")]
    assert orders[0].details["bar_time"] == bar_times[0]
    assert orders[0].details["params"]["reason"].startswith("weighted trend")
    (position,) = sqlite_store.list_positions(asset_id=asset_id, page=PageRequest(limit=50)).items
    assert position.opened_at == data.time_at(1) and position.close_reason == "end"
