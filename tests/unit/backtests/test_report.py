"""Ranking, the terminal table, summary files, per-run files and the HTML report (no Ray)."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from actors.backtests import plots
from actors.backtests.outcome import RunOutcome, RunStatus, compress_trades_csv
from actors.backtests.report import ReportWriter, format_table, rank_rows, run_slug, trades_csv_bytes
from engine.types import Side, Trade

T0 = datetime(2020, 1, 1, tzinfo=timezone.utc)


def _curve(final: float, n: int = 500) -> tuple[np.ndarray, np.ndarray]:
    times = (np.arange(n, dtype=np.int64) * 3_600_000_000_000) + 1_577_836_800_000_000_000
    wiggle = np.sin(np.linspace(0, 12, n)) * 150.0
    values = np.linspace(10_000.0, final, n) + wiggle
    values[0] = 10_000.0
    return times, values


def _trade(pnl: float, hours: int) -> Trade:
    return Trade(symbol="EURUSD", side=Side.BUY, quantity=1000.0, entry_time=T0,
                 entry_price=1.1, exit_time=T0 + timedelta(hours=hours), exit_price=1.2,
                 pnl=pnl, commission=0.14, swap=0.0, exit_reason="signal")


def _ok(index: int, total_return: float, sharpe: float, dd: float = 0.1) -> RunOutcome:
    times, values = _curve(10_000.0 * (1 + total_return))
    stats = {"total_return": total_return, "annualized_return": total_return / 2,
             "sharpe": sharpe, "sortino": sharpe * 1.5, "max_drawdown": dd,
             "win_rate": 0.5, "profit_factor": float("inf"), "trades": 2.0,
             "expectancy": float("nan")}
    return RunOutcome(
        index=index, path=f"/data/f{index}.csv", label=f"f{index}.csv fast={index}",
        grid_params={"fast": index}, strategy_params={"fast": index, "slow": 30},
        broker_params={}, status=RunStatus.OK, stats=stats, bars=500, seconds=0.01,
        trades_csv_zlib=compress_trades_csv(trades_csv_bytes([_trade(1.5, 3), _trade(-0.5, 7)])),
        curve_times=times, curve_values=values,
        equity_png=plots.equity_png(times, values, title=f"run {index}", initial_equity=10_000.0),
    )


def _failed(index: int, reason: str) -> RunOutcome:
    return RunOutcome(index=index, path=f"/data/bad{index}.csv", label=f"bad{index}.csv",
                      grid_params={"fast": index}, strategy_params={}, broker_params={},
                      status=RunStatus.FAILED, error=reason)


def _decode_png(png: bytes) -> np.ndarray:
    import matplotlib.image as mpimg

    return mpimg.imread(io.BytesIO(png), format="png")


def test_rank_puts_best_first_and_failures_last_in_plan_order() -> None:
    rows = [o.summary() for o in (_ok(0, 0.05, 1.0), _failed(1, "x"), _ok(2, 0.20, 0.5),
                                  _failed(3, "y"), _ok(4, -0.1, 2.0))]
    assert [r.index for r in rank_rows(rows)] == [2, 0, 4, 1, 3]
    assert [r.index for r in rank_rows(rows, "sharpe")] == [4, 0, 2, 1, 3]
    with pytest.raises(ValueError, match="cannot rank by 'bogus'"):
        rank_rows(rows, "bogus")


def test_rank_by_drawdown_prefers_the_shallowest() -> None:
    rows = [_ok(0, 0.1, 1.0, dd=0.3).summary(), _ok(1, 0.1, 1.0, dd=0.05).summary()]
    assert [r.index for r in rank_rows(rows, "max_drawdown")] == [1, 0]


def test_terminal_table_shows_metrics_and_failure_reasons() -> None:
    rows = rank_rows([_ok(0, 0.05, 1.234).summary(),
                      _failed(1, "bad1.csv:3: could not parse 'abc' as a number").summary()])
    text = format_table(rows)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["rank", "file", "parameters"]
    assert set(lines[1]) <= {"-", " "}
    assert re.search(r"^\s*1\s+f0\.csv\s+fast=0\s+5\.00%\s+2\.50%\s+1\.23\s+1\.85\s+10\.00%\s+"
                     r"50\.00%\s+inf\s+2\s+ok$", lines[2])
    assert lines[3].lstrip().startswith("-  bad1.csv")
    assert "FAILED: bad1.csv:3: could not parse 'abc' as a number" in lines[3]


def test_writer_writes_every_file_and_a_readable_report(tmp_path: Path) -> None:
    writer = ReportWriter(tmp_path / "out")
    outcomes = [_ok(0, 0.05, 1.0), _ok(1, 0.30, 0.8), _failed(2, "broken file")]
    for outcome in outcomes:
        writer.add(outcome)
    paths = writer.finish({"strategy": "sma_cross", "files": []})
    out = tmp_path / "out"

    with paths["summary_csv"].open() as handle:
        table = list(csv.DictReader(handle))
    assert [row["index"] for row in table] == ["1", "0", "2"]
    assert table[0]["rank"] == "1" and table[2]["rank"] == ""
    assert table[2]["status"] == "failed" and table[2]["error"] == "broken file"
    assert float(table[0]["total_return"]) == 0.30
    assert json.loads(table[0]["parameters"]) == {"fast": 1}

    summary = json.loads(paths["summary_json"].read_text())
    assert summary["counts"] == {"ok": 2, "failed": 1, "cancelled": 0, "total": 3}
    assert summary["winner"]["index"] == 1
    assert summary["runs"][0]["stats"]["expectancy"] is None  # NaN is not valid JSON
    assert summary["runs"][0]["stats"]["profit_factor"] == "inf"

    trades_csv = out / summary["runs"][0]["files"]["trades_csv"]
    with trades_csv.open() as handle:
        trades = list(csv.DictReader(handle))
    assert len(trades) == 2
    assert trades[0]["entry_time"] == "2020-01-01T00:00:00+00:00"
    assert trades[1]["exit_time"] == "2020-01-01T07:00:00+00:00"
    assert float(trades[1]["pnl"]) == -0.5 and trades[0]["side"] == "buy"
    assert "equity_png" not in summary["runs"][2]["files"]

    html = paths["report_html"].read_text()
    assert "Winner: <b>f1.csv fast=1</b>" in html
    assert "<tr class='best'>" in html and "broken file" in html
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(images) == 2 + 2  # ranking chart, overlay, one curve per successful run
    for encoded in images:
        pixels = _decode_png(base64.b64decode(encoded))
        assert pixels.shape[0] > 100 and pixels.shape[1] > 300
        assert float(pixels[..., :3].std()) > 0.02  # something is drawn on it


def test_equity_png_is_an_image_of_the_curve() -> None:
    times, values = _curve(13_000.0)
    flat = plots.equity_png(times, np.full(times.shape, 10_000.0), title="flat")
    rising = plots.equity_png(times, values, title="rising", initial_equity=10_000.0)
    a, b = _decode_png(flat), _decode_png(rising)
    assert a.shape == b.shape == (320, 900, 4)
    assert float(b[..., :3].std()) > 0.02
    assert not np.array_equal(a, b)  # the pixels depend on the curve


def test_downsample_keeps_extremes_and_ends() -> None:
    n = 100_000
    times = np.arange(n, dtype=np.int64)
    values = np.sin(np.linspace(0, 50, n)) * 100
    values[12_345] = -1_000.0
    values[77_777] = 1_000.0
    t2, v2 = plots.downsample_curve(times, values, max_points=500)
    assert len(v2) <= 500
    assert v2.min() == -1_000.0 and v2.max() == 1_000.0
    assert t2[0] == 0 and t2[-1] == n - 1 and np.all(np.diff(t2) > 0)
    small_t, small_v = plots.downsample_curve(times[:10], values[:10], max_points=500)
    assert np.array_equal(small_v, values[:10])


def test_run_slugs_are_unique_and_safe() -> None:
    a = _ok(3, 0.1, 1.0)
    a.path = "/weird dir/EUR USD?.csv"
    a.grid_params = {"fast": 10, "mode": "a/b"}
    slug = run_slug(a)
    assert slug.startswith("0003-") and "/" not in slug and " " not in slug and "?" not in slug


def test_report_ranked_by_sharpe_names_the_metric(tmp_path: Path) -> None:
    writer = ReportWriter(tmp_path, rank_by="sharpe")
    for outcome in (_ok(0, 0.30, 0.5), _ok(1, 0.05, 2.0)):
        writer.add(outcome)
    html = writer.finish({"strategy": "sma_cross"})["report_html"].read_text()
    assert "Winner: <b>f1.csv fast=1</b>" in html  # best Sharpe, not best return
    assert "(ranked by Sharpe: 2.00)" in html
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["rank_by"] == "sharpe" and [r["index"] for r in summary["runs"]] == [1, 0]


def test_report_without_a_successful_run_says_so(tmp_path: Path) -> None:
    writer = ReportWriter(tmp_path)
    writer.add(_failed(0, "bad.csv:2: OPEN 'x' is not a number"))
    paths = writer.finish({"strategy": "sma_cross"}, interrupted=True)
    html = paths["report_html"].read_text()
    assert "No run finished successfully" in html and "was interrupted" in html
    assert "bad.csv:2: OPEN &#x27;x&#x27; is not a number" in html  # escaped
    assert json.loads(paths["summary_json"].read_text())["winner"] is None


def test_trades_csv_from_the_log_columns_equals_the_one_from_trade_objects(eurusd_data) -> None:
    """The task writes the trades CSV straight from the log's columns; it must be the
    same bytes as writing the ``Trade`` objects (every exit reason and both sides)."""
    from actors.backtests.report import trade_log_csv_bytes
    from engine.backtest.runner import run_backtest

    result = run_backtest(eurusd_data, "sma_cross",
                          {"fast": 5, "slow": 20, "stop_loss": 15, "take_profit": 25}, {})
    log = result.trade_log
    assert len(log) > 50
    reasons = {r for r in log.exit_reason.tolist()}
    assert len(reasons) >= 3 and set(log.side.tolist()) == {1, -1}
    from_columns = trade_log_csv_bytes(log)
    assert log._cache is None  # the column writer built no Trade objects
    assert from_columns == trades_csv_bytes(log.trades())
    assert from_columns.count(b"\n") == len(log) + 1


def test_trades_csv_of_a_real_run_carries_no_float_noise(eurusd_data) -> None:
    """Prices keep at most 15 significant digits and money at most 8 decimals, and every
    value is the run's own within that rounding."""
    from decimal import Decimal

    from actors.backtests.report import trade_log_csv_bytes
    from engine.backtest.runner import run_backtest

    result = run_backtest(eurusd_data, "sma_cross",
                          {"fast": 5, "slow": 20, "stop_loss": 15, "take_profit": 25},
                          {"spread_pips": 0.7, "commission_per_lot": 1.4})
    rows = list(csv.DictReader(io.StringIO(trade_log_csv_bytes(result.trade_log).decode())))
    trades = result.trade_log.trades()
    assert len(rows) == len(trades) > 50
    noisy = 0
    for row, trade in zip(rows, trades):
        for name in ("quantity", "entry_price", "exit_price"):
            assert len(Decimal(row[name]).normalize().as_tuple().digits) <= 15, row
            assert float(row[name]) == pytest.approx(getattr(trade, name), rel=1e-14)
        for name in ("pnl", "commission", "swap"):
            assert -Decimal(row[name]).normalize().as_tuple().exponent <= 8, row
            assert float(row[name]) == pytest.approx(getattr(trade, name), rel=1e-14, abs=5e-9)
            noisy += len(Decimal(repr(getattr(trade, name))).as_tuple().digits) > 15
    assert noisy > 0  # the simulation's own floats had the noise the file leaves out


def test_summary_csv_has_each_column_once_and_the_table_metrics_first(tmp_path: Path) -> None:
    outcome = _ok(0, 0.2, 1.0)
    outcome.stats.update({"bars": 500, "final_equity": 12_000.0, "rejected_orders": 0})
    writer = ReportWriter(tmp_path / "out")
    writer.add(outcome)
    paths = writer.finish({"strategy": "sma_cross"})
    with paths["summary_csv"].open(newline="") as handle:
        header = next(csv.reader(handle))
    assert len(header) == len(set(header)), header
    first_stats = header[header.index("seconds") + 1:][:8]
    assert first_stats == ["total_return", "annualized_return", "sharpe", "sortino",
                           "max_drawdown", "win_rate", "profit_factor", "trades"]
    assert header.index("final_equity") < header.index("rejected_orders")
