"""INT-09: a real cerebro over the real hourly EURUSD file; the strategy trades on the
broker's predictions and switches CSV -> API (a real loopback prediction service) -> CSV
mid-run. Each bar's predictions must come from the source current at that bar, asked at
the bar's own time, and the run must finish with metrics that agree with backtrader's
own analyzers."""

from __future__ import annotations

import math
from datetime import datetime

import backtrader as bt
import pytest

from engine.brokers.backtrader_broker import BacktraderBroker
from engine.outbound import OutboundPolicy
from engine.types import OrderStatus
from tests.fixtures.fake_prediction_service import default_value

SWITCH_TO_API = 2000
SWITCH_BACK = 2025


class PredictionFollower(bt.Strategy):
    """Goes long when the 1-bar-ahead prediction is above the close, exits when below;
    switches the broker's prediction source at two bars."""

    params = (("api_url", None), ("journal", None), ("orders", None))

    def start(self) -> None:
        self.broker.bind(self)
        self.position_id: str | None = None

    def next(self) -> None:
        i = len(self) - 1
        if i == SWITCH_TO_API:
            self.broker.switch_prediction_source("api", url=self.p.api_url, timeout_s=5.0, poll_interval_s=0.005)
        elif i == SWITCH_BACK:
            self.broker.switch_prediction_source("csv")
        prediction = self.broker.get_predictions()
        self.p.journal.append((i, prediction))
        ahead = prediction.short_term[0] if prediction.short_term else None
        if ahead is None:
            return
        close = self.data.close[0]
        if self.position_id is None and ahead > close * 1.0005:
            result = self.broker.execute_order(
                "open",
                {"side": "buy", "quantity": 1000, "sl": close * 0.99, "tp": close * 1.02, "client_order_id": f"o-{i}"},
            )
            self.p.orders.append((i, result))
            self.position_id = result.position_id
        elif self.position_id is not None:
            view = self.broker.get_position(self.position_id)
            if not view.is_open and view.closed_at is not None:  # stopped out or target hit
                self.position_id = None
            elif view.is_open and ahead < close:
                self.broker.execute_order("close", {"position_id": self.position_id, "client_order_id": f"c-{i}"})
                self.position_id = None


@pytest.fixture(scope="module")
def run(eurusd_data, eurusd_lts_csv, prediction_service_server):
    """One cerebro run (about a second of work) shared by this module's checks."""
    prediction_service = prediction_service_server
    prediction_service.reset()
    prediction_service.set_scenario("EURUSD", delay_s=0.0)
    frame = eurusd_data.to_frame()
    frame.index = frame.index.tz_convert(None)  # backtrader wants naive UTC

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame, name="EURUSD"))
    broker = BacktraderBroker({"cash": 100_000.0, "prediction_source": "csv", "prediction_csv": str(eurusd_lts_csv)})
    # the operator's allow-list names the loopback prediction service (outbound_hosts)
    service_host = prediction_service.base_url.split("://", 1)[1].rstrip("/")
    broker.use_operator_policies(outbound=OutboundPolicy.from_config({"outbound_hosts": [service_host]}))
    cerebro.setbroker(broker)
    journal: list = []
    orders: list = []
    cerebro.addstrategy(PredictionFollower, api_url=prediction_service.base_url, journal=journal, orders=orders)
    cerebro.addanalyzer(bt.analyzers.TradeAnalyzer, _name="trades")
    cerebro.addanalyzer(bt.analyzers.DrawDown, _name="drawdown")
    [strategy] = cerebro.run()
    yield broker, strategy, journal, orders, eurusd_data, prediction_service
    broker.close()


def _bar_time(data, i) -> datetime:
    return data.time_at(i)


def test_predictions_come_from_the_source_current_at_each_bar(run):
    broker, _, journal, _, data, _ = run
    assert [i for i, _ in journal] == list(range(len(data)))

    for i, prediction in journal:
        assert prediction.timestamp == _bar_time(data, i)  # the bar's time, never the wall clock
        if SWITCH_TO_API <= i < SWITCH_BACK:
            assert prediction.source == "api", i
            assert prediction.short_term == [default_value("short_term", h) for h in range(1, 7)]
            assert prediction.long_term == [default_value("long_term", h) for h in range(1, 7)]
        else:
            assert prediction.source == "csv", i
            # CSV mode is the "perfect" prediction: the close h bars ahead
            expected = [float(data.close[i + h]) if i + h < len(data) else None for h in range(1, 7)]
            assert prediction.short_term == expected, i


def test_the_api_was_asked_exactly_for_the_bars_after_the_switch(run):
    _, _, _, _, data, service = run
    posts = [r["body"] for r in service.requests("EURUSD") if r["method"] == "POST"]
    expected = [_bar_time(data, i) for i in range(SWITCH_TO_API, SWITCH_BACK)]
    assert len(posts) == 2 * len(expected)  # one short-term and one long-term per bar
    assert sorted({datetime.fromisoformat(p["baseline_datetime"]) for p in posts}) == expected
    assert {p["prediction_type"] for p in posts} == {"short_term", "long_term"}


def test_switches_and_per_source_counts_are_recorded(run):
    broker, _, _, _, data, _ = run
    info = broker.get_debug_info()
    assert info["prediction_switches"] == [
        {"at": _bar_time(data, 0).isoformat(), "from": None, "to": "csv"},
        {"at": _bar_time(data, SWITCH_TO_API).isoformat(), "from": "csv", "to": "api"},
        {"at": _bar_time(data, SWITCH_BACK).isoformat(), "from": "api", "to": "csv"},
    ]
    window = SWITCH_BACK - SWITCH_TO_API
    assert info["predictions_by_source"] == {"csv": len(data) - window, "api": window}
    assert info["prediction_failures_by_source"].get("api", 0) == 0
    assert broker.prediction_source == "csv"
    assert broker.metrics()["prediction_switches"] == info["prediction_switches"]


def test_orders_fill_at_the_next_bar_open_and_are_followed(run):
    broker, _, _, orders, data, _ = run
    assert orders, "the strategy should have traded"
    i, submitted = orders[0]
    assert submitted.status is OrderStatus.PENDING and submitted.entry_price is None
    filled = broker.get_order_result(submitted.client_order_id)
    assert float(filled.entry_price) == pytest.approx(float(data.open[i + 1]))  # no look-ahead
    assert filled.timestamp == _bar_time(data, i + 1)


def test_run_completes_with_metrics_matching_backtraders_analyzers(run):
    broker, strategy, _, _, data, _ = run
    metrics = broker.metrics()
    trades = strategy.analyzers.trades.get_analysis()
    drawdown = strategy.analyzers.drawdown.get_analysis()

    assert metrics["bars"] == len(data)
    assert metrics["trades"] == trades.total.closed > 5
    assert metrics["wins"] == trades.won.total and metrics["losses"] == trades.lost.total
    assert metrics["win_rate"] == pytest.approx(trades.won.total / trades.total.closed)
    assert metrics["net_pnl"] == pytest.approx(trades.pnl.net.total, abs=1e-9)
    assert metrics["final_value"] == pytest.approx(broker.getvalue())
    assert metrics["total_return"] == pytest.approx(broker.getvalue() / 100_000.0 - 1.0)
    assert metrics["max_drawdown"] * 100 == pytest.approx(drawdown.max.drawdown, rel=1e-9)
    assert math.isfinite(metrics["profit_factor"]) or metrics["losses"] == 0
    # every closed position ended by signal, stop or target, and the reasons are recorded
    reasons = {broker.get_position(r.position_id).close_reason for _, r in run[3]}
    assert reasons <= {"signal", "sl", "tp", None}
