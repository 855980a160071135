"""Each backtest rule of ARCHITECTURE.md, checked on hand-made bars through both the fast
loop (``run_backtest``) and the bar-by-bar driver (``run_stepwise``, what actors do).

Default costs: spread 2 pips (half = 0.0001), slippage 1 pip, commission 7 per lot per
side, swap 10 per lot per day; the scripted strategy trades 100,000 units = 1 lot.
"""

from __future__ import annotations

import pytest

from engine.backtest.runner import run_backtest
from engine.backtest.stepwise import run_stepwise
from engine.errors import ConfigError, DataError
from engine.strategies.signals import FLAT, LONG, SHORT
from tests.unit.engine._factories import DAY_NS, ScriptedStrategy, bars, flat_bars

ADJ = 0.0001 + 0.0001  # half spread + slippage, paid on every fill
LOT = 100_000.0
ENGINES = pytest.mark.parametrize("engine", [run_backtest, run_stepwise], ids=["fast", "stepwise"])


def codes(n: int, **at: int) -> list[int]:
    """n HOLD codes with the given bar -> code overrides (keys like b1=LONG)."""
    out = [0] * n
    for key, code in at.items():
        out[int(key[1:])] = code
    return out


@ENGINES
def test_decision_fills_at_next_open_with_spread_and_slippage(engine) -> None:
    rows = flat_bars(5)
    rows[2] = (1.1010, 1.1030, 1.1000, 1.1020)
    rows[4] = (1.1040, 1.1060, 1.1035, 1.1050)
    result = engine(bars(rows), ScriptedStrategy(codes(5, b1=LONG)))
    (trade,) = result.trades
    assert trade.entry_price == pytest.approx(1.1010 + ADJ)  # bar 2's open, not bar 1's close
    assert trade.entry_time == bars(rows).time_at(2)
    assert trade.exit_price == pytest.approx(1.1050 - ADJ)  # closed at the last close ("end")
    assert trade.exit_reason == "end"
    assert trade.commission == pytest.approx(2 * 7.0)  # one lot, two sides
    assert trade.pnl == pytest.approx(LOT * ((1.1050 - ADJ) - (1.1010 + ADJ)) - 14.0)
    assert result.costs["spread"] == pytest.approx(2 * LOT * 0.0001)
    assert result.costs["slippage"] == pytest.approx(2 * LOT * 0.0001)
    assert result.final_equity == pytest.approx(10_000.0 + trade.pnl)


@ENGINES
def test_short_entry_sells_below_the_open(engine) -> None:
    rows = flat_bars(4)
    result = engine(bars(rows), ScriptedStrategy(codes(4, b0=SHORT)))
    (trade,) = result.trades
    assert trade.side == "sell"
    assert trade.entry_price == pytest.approx(1.1 - ADJ)
    assert trade.exit_price == pytest.approx(1.1 + ADJ)


@ENGINES
def test_swap_is_charged_per_rollover_day_and_accrues_in_equity(engine) -> None:
    rows = flat_bars(5)
    data = bars(rows, step_ns=DAY_NS)  # daily bars: entry on day 1, end close on day 4
    result = engine(data, ScriptedStrategy(codes(5, b0=LONG)))
    (trade,) = result.trades
    assert trade.swap == pytest.approx(3 * 10.0)  # three midnights between day 1 and day 4
    entry = 1.1 + ADJ
    # Equity on day 2: cash after entry commission, open P&L at the close, one day of swap.
    assert result.equity[2] == pytest.approx(10_000.0 - 7.0 + LOT * (1.1 - entry) - 10.0)
    assert result.costs["swap"] == pytest.approx(30.0)


@ENGINES
def test_stop_is_not_checked_on_the_entry_bar_and_is_measured_from_the_fill(engine) -> None:
    rows = flat_bars(6)
    rows[2] = (1.1000, 1.1001, 1.0900, 1.0999)  # entry bar dives below the stop: ignored
    rows[3] = (1.0999, 1.1000, 1.0985, 1.0990)  # touches entry - 0.0010
    result = engine(bars(rows), ScriptedStrategy(codes(6, b1=LONG), sl_distance=0.0010))
    (trade,) = result.trades
    entry = 1.1000 + ADJ
    assert trade.exit_reason == "sl"
    assert trade.exit_time == bars(rows).time_at(3)
    assert trade.exit_price == pytest.approx(entry - 0.0010 - ADJ)


@ENGINES
def test_take_profit_fills_at_its_level(engine) -> None:
    rows = flat_bars(6)
    rows[3] = (1.1000, 1.1030, 1.0999, 1.1010)
    result = engine(bars(rows), ScriptedStrategy(codes(6, b1=LONG), tp_distance=0.0020))
    (trade,) = result.trades
    assert trade.exit_reason == "tp"
    assert trade.exit_price == pytest.approx(1.1 + ADJ + 0.0020 - ADJ)


@ENGINES
def test_bar_opening_beyond_the_stop_fills_at_its_open(engine) -> None:
    rows = flat_bars(6)
    rows[3] = (1.0950, 1.0960, 1.0940, 1.0955)  # gap far below the stop
    result = engine(bars(rows), ScriptedStrategy(codes(6, b1=LONG), sl_distance=0.0010))
    (trade,) = result.trades
    assert trade.exit_reason == "sl"
    assert trade.exit_price == pytest.approx(1.0950 - ADJ)


@ENGINES
def test_bar_opening_beyond_the_target_fills_at_its_open(engine) -> None:
    rows = flat_bars(6)
    rows[3] = (1.1100, 1.1110, 1.1090, 1.1105)
    result = engine(bars(rows), ScriptedStrategy(codes(6, b1=SHORT), sl_distance=0.0050, tp_distance=0.0010))
    (trade,) = result.trades  # a short: the gap up goes through the stop (1.1048), not the target
    assert trade.exit_reason == "sl"
    assert trade.exit_price == pytest.approx(1.1100 + ADJ)
    rows[3] = (1.0900, 1.0910, 1.0890, 1.0905)
    result = engine(bars(rows), ScriptedStrategy(codes(6, b1=SHORT), sl_distance=0.0050, tp_distance=0.0010))
    (trade,) = result.trades  # the gap down goes through the target (1.0988)
    assert trade.exit_reason == "tp"
    assert trade.exit_price == pytest.approx(1.0900 + ADJ)


@ENGINES
def test_bar_touching_both_levels_takes_the_stop(engine) -> None:
    rows = flat_bars(6)
    rows[3] = (1.1001, 1.1050, 1.0950, 1.1001)
    result = engine(bars(rows), ScriptedStrategy(codes(6, b1=LONG), sl_distance=0.0010, tp_distance=0.0010))
    (trade,) = result.trades
    assert trade.exit_reason == "sl"
    assert trade.exit_price == pytest.approx(1.1 + ADJ - 0.0010 - ADJ)


@ENGINES
def test_reversal_closes_and_opens_at_the_same_next_open(engine) -> None:
    rows = flat_bars(7)
    rows[4] = (1.1050, 1.1060, 1.1040, 1.1055)
    result = engine(bars(rows), ScriptedStrategy(codes(7, b1=LONG, b3=SHORT)))
    first, second = result.trades
    assert (first.side, first.exit_reason, first.exit_price) == ("buy", "signal", pytest.approx(1.1050 - ADJ))
    assert (second.side, second.entry_price) == ("sell", pytest.approx(1.1050 - ADJ))
    assert first.exit_time == second.entry_time == bars(rows).time_at(4)


@ENGINES
def test_flat_signal_closes_and_repeated_signals_do_not_pyramid(engine) -> None:
    rows = flat_bars(8)
    result = engine(bars(rows), ScriptedStrategy(codes(8, b1=LONG, b2=LONG, b3=LONG, b5=FLAT, b6=FLAT)))
    (trade,) = result.trades
    assert trade.exit_reason == "signal"
    assert trade.exit_time == bars(rows).time_at(6)
    assert result.stats["exposure"] == pytest.approx(4 / 8)  # held at the close of bars 2..5


@ENGINES
def test_decision_on_the_last_bar_is_dropped(engine) -> None:
    result = engine(bars(flat_bars(4)), ScriptedStrategy(codes(4, b3=LONG)))
    assert result.trades == []
    assert result.final_equity == 10_000.0


@ENGINES
def test_order_the_account_cannot_carry_is_rejected(engine) -> None:
    # 10,000,000 units at 1.1 with leverage 100 need 110,000 of margin; the account has 10,000.
    result = engine(bars(flat_bars(5)), ScriptedStrategy(codes(5, b1=LONG), quantity=10_000_000.0))
    assert result.trades == []
    assert result.rejected_orders == 1
    assert result.stats["rejected_orders"] == 1.0
    ok = engine(bars(flat_bars(5)), ScriptedStrategy(codes(5, b1=LONG), quantity=900_000.0))
    assert len(ok.trades) == 1 and ok.rejected_orders == 0  # 9,900 of margin fits


@ENGINES
def test_costs_are_configurable_per_run(engine) -> None:
    result = engine(
        bars(flat_bars(4)), ScriptedStrategy(codes(4, b0=LONG)),
        broker_params={"spread_pips": 0, "slippage_pips": 0, "commission_per_lot": 3.5, "initial_cash": 5_000},
    )
    (trade,) = result.trades
    assert trade.entry_price == pytest.approx(1.1)
    assert trade.commission == pytest.approx(7.0)
    assert result.final_equity == pytest.approx(4_993.0)


def test_same_inputs_give_the_same_result() -> None:
    from tests.unit.engine._factories import random_walk

    data = random_walk(3_000, seed=11)
    params = {"fast": 5, "slow": 20, "stop_loss": 15, "take_profit": 30}
    a = run_backtest(data, "sma_cross", params)
    b = run_backtest(data, "sma_cross", params)
    assert len(a.trades) > 50
    assert [t.model_dump() for t in a.trades] == [t.model_dump() for t in b.trades]
    assert (a.equity == b.equity).all() and a.stats == pytest.approx(b.stats, nan_ok=True)


def test_bad_bars_are_refused_naming_the_bar() -> None:
    rows = flat_bars(5)
    rows[3] = (1.1, 1.0999, 1.1001, 1.1)  # high below low
    with pytest.raises(DataError, match=r"bar 3 \(2024-01-01T03:00:00\+00:00\)"):
        run_backtest(bars(rows), ScriptedStrategy(codes(5)))


def test_unknown_parameters_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown parameter.*spred_pips.*valid:.*spread_pips"):
        run_backtest(bars(flat_bars(5)), "sma_cross", broker_params={"spred_pips": 1})
    with pytest.raises(ConfigError, match="sma_cross.*unknown parameter.*fats"):
        run_backtest(bars(flat_bars(5)), "sma_cross", {"fats": 3})
    with pytest.raises(ConfigError, match="'fill_on' 'current' is not supported"):
        run_backtest(bars(flat_bars(5)), "sma_cross", broker_params={"fill_on": "current"})
    with pytest.raises(ConfigError, match="'leverage' must be > 0"):
        run_backtest(bars(flat_bars(5)), "sma_cross", broker_params={"leverage": 0})


def test_strategy_needing_predictions_without_them_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="needs predictions"):
        run_backtest(bars(flat_bars(5)), "prediction_strategy")
