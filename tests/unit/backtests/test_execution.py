"""``execute_run`` outside Ray: what a task hands back to the driver."""

from __future__ import annotations

import pickle

from actors.backtests.execution import execute_run
from actors.backtests.outcome import RunStatus
from engine.backtest.planning import build_plan
from actors.backtests.report import trade_log_csv_bytes
from engine.backtest.runner import run_backtest


def test_the_outcome_carries_the_trades_csv_compressed_and_small(eurusd_data, eurusd_lts_csv) -> None:
    """The trades file's bytes travel zlib-compressed, so a run's whole result stays
    under Ray's 100 KB limit for results sent inline in the task's reply."""
    params = {"fast": 5, "slow": 20, "stop_loss": 15, "take_profit": 25}
    plan = build_plan(strategy="sma_cross", files=[eurusd_lts_csv],
                      set_items=[f"{k}={v}" for k, v in params.items()])
    spec = plan.runs()[0]
    outcome = execute_run(spec, eurusd_data)
    assert outcome.status is RunStatus.OK, outcome.error

    direct = run_backtest(eurusd_data, "sma_cross", spec.strategy_params, spec.broker_params)
    plain = trade_log_csv_bytes(direct.trade_log)
    assert len(direct.trade_log) > 50
    assert outcome.trades_csv == plain
    assert outcome.trades_csv_zlib is not None and len(outcome.trades_csv_zlib) * 3 < len(plain)
    assert len(pickle.dumps(outcome)) < 100 * 1024


def test_a_failed_run_has_no_trades_csv(eurusd_data, eurusd_lts_csv) -> None:
    plan = build_plan(strategy="sma_cross", files=[eurusd_lts_csv], set_items=["fast=30", "slow=10"])
    outcome = execute_run(plan.runs()[0], eurusd_data)
    assert outcome.status is RunStatus.FAILED and "fast" in (outcome.error or "")
    assert outcome.trades_csv is None and outcome.trades_csv_zlib is None
