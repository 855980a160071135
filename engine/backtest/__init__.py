"""The single-CSV backtest: ``run_backtest`` (fast loop), ``run_stepwise`` / ``step_bar``
(bar by bar, what an asset actor does in simulation mode), statistics and trade logs."""

from engine.backtest.runner import BacktestResult, run_backtest

__all__ = ["BacktestResult", "run_backtest"]
