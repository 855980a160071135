"""BacktraderBroker inside a real cerebro on small hand-made bars whose fills can be
worked out by hand: bracket SL/TP, modify, close, idempotency, rejections, metrics,
and prediction sources given as provider objects (no network here)."""

from __future__ import annotations

from datetime import datetime, timezone

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from engine.brokers.backtrader_broker import BacktraderBroker
from engine.data.market_data import MarketData
from engine.errors import ConfigError, DomainError
from engine.plugins.base import BrokerPlugin
from engine.prediction.csv_provider import CsvPredictionProvider
from engine.prediction.types import PredictionResult
from engine.types import OrderStatus, Side

#            open   high   low    close
BARS = [
    (1.00, 1.01, 0.99, 1.00),  # 0
    (1.00, 1.01, 0.99, 1.00),  # 1  an order decided at bar 0 fills at this open
    (1.00, 1.02, 0.995, 1.01),  # 2
    (1.01, 1.03, 1.005, 1.02),  # 3  high 1.03 reaches a 1.025 target
    (1.02, 1.02, 0.94, 0.95),  # 4  low 0.94 reaches a 0.97 stop
    (0.95, 0.96, 0.94, 0.95),  # 5
]
START = datetime(2020, 1, 6, tzinfo=timezone.utc)


def _frame() -> pd.DataFrame:
    index = pd.date_range(START.replace(tzinfo=None), periods=len(BARS), freq="h")
    return pd.DataFrame(BARS, columns=["open", "high", "low", "close"], index=index)


class Scripted(bt.Strategy):
    """Executes ``script[bar] = [(action, params or callable(results) -> params), ...]``."""

    params = (("script", None), ("results", None), ("bind", True))

    def start(self) -> None:
        if self.p.bind:
            self.broker.bind(self)

    def next(self) -> None:
        i = len(self) - 1
        for action, params in self.p.script.get(i, []):
            params = params(self.p.results) if callable(params) else params
            self.p.results.append(self.broker.execute_order(action, params))


def _run(script, config=None, bind=True, analyzers=False):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=_frame(), name="EURUSD"))
    broker = BacktraderBroker(config or {})
    cerebro.setbroker(broker)
    results: list = []
    cerebro.addstrategy(Scripted, script=script, results=results, bind=bind)
    if analyzers:
        cerebro.addanalyzer(bt.analyzers.TradeAnalyzer, _name="trades")
    [strategy] = cerebro.run()
    return broker, results, strategy


def _buy(cid="o-1", **extra):
    return ("open", {"side": "buy", "quantity": 1000, "client_order_id": cid, **extra})


def test_is_a_backbroker_and_a_broker_plugin():
    broker = BacktraderBroker({"cash": 500.0})
    assert isinstance(broker, bt.brokers.BackBroker) and isinstance(broker, BrokerPlugin)
    assert broker.params["cash"] == 500.0 and broker.p.cash == 500.0  # plugin dict vs backtrader params
    assert broker.getcash() == 500.0


def test_invalid_numbers_are_config_errors():
    with pytest.raises(ConfigError, match="cash > 0"):
        BacktraderBroker({"cash": -1})
    with pytest.raises(ConfigError, match="must be numbers"):
        BacktraderBroker({"commission": "a lot"})


def test_stop_loss_closes_at_the_stop_and_is_accounted():
    broker, results, _ = _run({0: [_buy(sl=0.97)]})
    opened = results[0]
    assert opened.status is OrderStatus.PENDING and opened.entry_price is None
    filled = broker.get_order_result("o-1")
    assert filled.status is OrderStatus.OPEN and float(filled.entry_price) == 1.00
    assert filled.timestamp == START.replace(hour=1)  # bar 1's open
    view = broker.get_position(opened.position_id)
    assert not view.is_open and view.close_reason == "sl"
    assert float(view.current_price) == 0.95 and float(view.realized_pnl) == pytest.approx(-30.0)
    metrics = broker.metrics()
    assert metrics["trades"] == 1 and metrics["losses"] == 1 and metrics["win_rate"] == 0.0
    assert metrics["final_value"] == pytest.approx(10000 - 30)
    assert metrics["max_drawdown"] == pytest.approx(50 / 10020)  # peak at bar 3 close, trough at the stop


def test_take_profit_fills_at_the_limit():
    broker, results, _ = _run({0: [_buy(sl=0.90, tp=1.025)]})
    view = broker.get_position(results[0].position_id)
    assert view.close_reason == "tp" and float(view.realized_pnl) == pytest.approx(25.0)
    assert broker.getposition(broker._owner.datas[0]).size == 0  # the stop was cancelled with it
    assert broker.metrics()["wins"] == 1


def test_modify_replaces_the_stop():
    def modify(results):
        return {"position_id": results[0].position_id, "sl": 0.97, "tp": None}

    broker, results, _ = _run({0: [_buy(sl=0.90, tp=1.10)], 2: [("modify", modify)]})
    assert results[1].success and results[1].status is OrderStatus.OPEN
    view = broker.get_position(results[0].position_id)
    assert view.close_reason == "sl" and float(view.realized_pnl) == pytest.approx(-30.0)
    assert float(view.sl) == 0.97 and view.tp is None
    assert broker.getposition(broker._owner.datas[0]).size == 0


def test_close_fills_at_the_next_open_and_cancels_the_stop():
    def close(results):
        return {"position_id": results[0].position_id, "client_order_id": "c-1"}

    broker, results, _ = _run({0: [_buy(sl=0.97)], 2: [("close", close)]})
    assert results[1].status is OrderStatus.PENDING
    closed = broker.get_order_result("c-1")
    assert closed.status is OrderStatus.FILLED and float(closed.close_price) == 1.01  # bar 3's open
    assert float(closed.pnl) == pytest.approx(10.0) and closed.side is Side.SELL
    # without the cancel, the stop at 0.97 would have opened a short on bar 4
    assert broker.getposition(broker._owner.datas[0]).size == 0
    assert broker.metrics()["trades"] == 1


def test_a_repeated_client_order_id_places_nothing():
    broker, results, _ = _run({0: [_buy(), _buy()]})
    assert results[0] == results[1]
    assert broker.getposition(broker._owner.datas[0]).size == 1000


def test_open_positions_at_the_end_are_reported_with_unrealized_pnl():
    broker, results, _ = _run({3: [("open", {"side": "sell", "quantity": 1000, "sl": 1.05, "client_order_id": "s"})]})
    [view] = broker.get_open_orders()
    assert view.side is Side.SELL and float(view.entry_price) == 1.02
    assert float(view.unrealized_pnl) == pytest.approx(70.0)  # (1.02 - 0.95) * 1000
    assert broker.metrics()["open_trades"] == 1 and broker.metrics()["trades"] == 0


def test_an_order_the_account_cannot_carry_is_rejected():
    broker, results, _ = _run({0: [_buy(quantity=10_000)]}, config={"cash": 100.0})
    result = broker.get_order_result("o-1")
    assert not result.success and result.status is OrderStatus.REJECTED
    assert "Margin" in (result.reason or "")
    assert broker.get_open_orders() == []


def test_contract_errors_are_clear():
    with pytest.raises(DomainError, match=r"bind\(self\)"):
        _run({0: [_buy()]}, bind=False)
    with pytest.raises(DomainError, match="unknown action 'flip'"):
        _run({0: [("flip", {})]})
    with pytest.raises(DomainError, match="side must be 'buy' or 'sell'"):
        _run({0: [("open", {"side": "up", "quantity": 1})]})
    with pytest.raises(DomainError, match="no data feed named 'GBPUSD'"):
        _run({0: [_buy(symbol="GBPUSD")]})
    with pytest.raises(DomainError, match="unknown position"):
        _run({0: [("close", {"position_id": "999"})]})


def test_metrics_agree_with_trade_analyzer_over_several_trades():
    def close(results):
        return {"position_id": results[-1].position_id}

    script = {0: [_buy("a", tp=1.025)], 3: [_buy("b")], 4: [("close", close)]}
    broker, _, strategy = _run(script, config={"commission": 0.001}, analyzers=True)
    trades = strategy.analyzers.trades.get_analysis()
    metrics = broker.metrics()
    assert metrics["trades"] == trades.total.closed == 2
    assert metrics["net_pnl"] == pytest.approx(trades.pnl.net.total)
    assert metrics["commission"] > 0


class _FixedProvider:
    """A PredictionProvider that always predicts ``value`` (to tell sources apart)."""

    def __init__(self, value: float, name: str) -> None:
        self.value, self.source = value, name
        self.asked: list[datetime] = []

    def get_predictions(self, symbol, at, types=("short_term", "long_term")) -> PredictionResult:
        self.asked.append(at)
        return PredictionResult(symbol, at, [self.value] * 6, [self.value] * 6, source=self.source)


class Switcher(bt.Strategy):
    params = (("first", None), ("second", None), ("seen", None))

    def start(self) -> None:
        self.broker.bind(self)

    def next(self) -> None:
        i = len(self) - 1
        if i == 2:
            self.broker.switch_prediction_source(self.p.second)
        elif i == 4:
            self.broker.switch_prediction_source("csv")
        self.p.seen.append(self.broker.get_predictions())


def test_switching_between_provider_objects_and_back_to_the_default_csv():
    fixed = _FixedProvider(42.0, "model")
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=_frame(), name="EURUSD"))
    broker = BacktraderBroker({})  # csv source from the bound feed's own frame
    cerebro.setbroker(broker)
    seen: list[PredictionResult] = []
    cerebro.addstrategy(Switcher, second=fixed, seen=seen)
    cerebro.run()

    assert [p.source for p in seen] == ["csv", "csv", "model", "model", "csv", "csv"]
    assert seen[0].short_term[0] == BARS[1][3]  # csv: bar 1's close, predicted at bar 0
    assert fixed.asked == [START.replace(hour=2), START.replace(hour=3)]
    info = broker.get_debug_info()
    assert [(s["from"], s["to"]) for s in info["prediction_switches"]] == [(None, "csv"), ("csv", "model"), ("model", "csv")]
    assert info["predictions_by_source"] == {"csv": 4, "model": 2}


def test_csv_source_from_market_data_and_unknown_sources():
    broker = BacktraderBroker({})
    data = MarketData(
        symbol="EURUSD",
        timestamps=(pd.date_range(START, periods=3, freq="h").as_unit("ns").asi8).astype(np.int64),
        open=np.array([1.0, 1.1, 1.2]), high=np.array([1.0, 1.1, 1.2]),
        low=np.array([1.0, 1.1, 1.2]), close=np.array([1.0, 1.1, 1.2]),
    )
    assert broker.switch_prediction_source("csv", data=data) == "csv"
    result = broker.get_predictions("EURUSD", START)
    assert result.short_term[:2] == [1.1, 1.2] and result.source == "csv"
    assert isinstance(broker._sources._providers["csv"], CsvPredictionProvider)
    with pytest.raises(ConfigError, match="unknown prediction source 'carrier-pigeon'"):
        broker.switch_prediction_source("carrier-pigeon")
    with pytest.raises(ConfigError, match="needs path=<OHLC CSV> or data=<MarketData>"):
        broker.switch_prediction_source("csv", horizons=3)
    with pytest.raises(ConfigError, match="unknown prediction client setting 'colour'"):
        broker.switch_prediction_source("api", url="http://127.0.0.1:1", colour="red")
    assert broker.prediction_source == "csv"  # a failed switch leaves the current source working
    assert broker.get_predictions("EURUSD", START).short_term[:2] == [1.1, 1.2]


def test_sl_tp_distances_become_levels_around_the_entry_fill():
    broker, results, _ = _run({0: [_buy(sl_distance=0.03, tp_distance=0.025)]})
    view = broker.get_position(results[0].position_id)
    assert float(view.sl) == pytest.approx(0.97) and float(view.tp) == pytest.approx(1.025)
    assert view.close_reason == "tp" and float(view.realized_pnl) == pytest.approx(25.0)
    assert broker.getposition(broker._owner.datas[0]).size == 0


def test_a_level_kept_beside_a_distance_and_both_for_one_exit_refused():
    broker, results, _ = _run({0: [_buy(sl=0.97, tp_distance=0.5)]})
    view = broker.get_position(results[0].position_id)
    assert view.close_reason == "sl" and float(view.tp) == pytest.approx(1.5)
    assert broker.getposition(broker._owner.datas[0]).size == 0
    with pytest.raises(DomainError, match="sl or sl_distance, not both"):
        _run({0: [_buy(sl=0.97, sl_distance=0.03)]})
