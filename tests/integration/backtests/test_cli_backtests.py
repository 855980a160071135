"""``lts backtest`` end to end on the shared Ray session (the dispatcher runs in-process,
so the command reuses the session's cluster instead of starting its own)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from actors.cli import main
from engine.backtest.rounding import round_money, round_price
from engine.backtest.runner import run_backtest
from engine.data.csv_loader import load_csv

pytestmark = pytest.mark.ray


def _jsonish(value: Any) -> Any:
    """What a statistic looks like after summary.json (NaN -> None, inf -> "inf")."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _read_trades(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _png_pixels(path: Path) -> np.ndarray:
    import matplotlib.image as mpimg

    return mpimg.imread(io.BytesIO(path.read_bytes()), format="png")


def test_four_files_times_three_values_match_direct_backtests(
    ray_session: Any, backtest_data: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main([
        "backtest", *map(str, backtest_data), "--strategy", "sma_cross",
        "--grid", "fast=5,10,20", "--set", "slow=40", "--set", "quantity=1000",
        "--out", str(out), "--no_db",
    ])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "12/12 done, 0 failed" in captured.err

    summary = json.loads((out / "summary.json").read_text())
    runs = summary["runs"]
    assert summary["counts"] == {"ok": 12, "failed": 0, "cancelled": 0, "total": 12}
    assert sorted((Path(r["file"]).name, r["grid_params"]["fast"]) for r in runs) == sorted(
        (f.name, fast) for f in backtest_data for fast in (5, 10, 20))

    data = {str(f): load_csv(f, symbol=f.stem) for f in backtest_data}
    traded = 0
    for run in runs:
        assert run["strategy_params"] == {"slow": 40, "quantity": 1000, "fast": run["grid_params"]["fast"]}
        direct = run_backtest(data[run["file"]], "sma_cross", run["strategy_params"], run["broker_params"])
        assert run["stats"] == {k: _jsonish(v) for k, v in direct.stats.items()}, run["label"]
        rows = _read_trades(out / run["files"]["trades_csv"])
        assert len(rows) == len(direct.trades) == int(direct.stats["trades"])
        for row, trade in zip(rows, direct.trades):
            assert row["side"] == str(trade.side)
            assert row["entry_time"] == trade.entry_time.isoformat()
            assert row["exit_time"] == trade.exit_time.isoformat()
            # The file holds the trade's values with the float noise rounded off
            # (engine.backtest.rounding): prices to 15 digits, money to 8 decimals.
            for name in ("quantity", "entry_price", "exit_price"):
                assert float(row[name]) == round_price(getattr(trade, name)), (run["label"], name)
            for name in ("pnl", "commission", "swap"):
                assert float(row[name]) == round_money(getattr(trade, name)), (run["label"], name)
            assert row["exit_reason"] == trade.exit_reason
        traded += len(rows)
    assert traded > 100  # the comparison covered real trading, not empty runs

    # Ranked best first by total return, and the terminal table shows the same order.
    returns = [r["stats"]["total_return"] for r in runs]
    assert returns == sorted(returns, reverse=True)
    table_lines = [line for line in captured.out.splitlines() if line.lstrip()[:1].isdigit()]
    assert [line.split()[1] for line in table_lines[:12]] == [Path(r["file"]).name for r in runs]
    assert f"report: {out / 'report.html'}" in captured.out

    # Summary CSV agrees with the JSON; every run has a real image of its curve.
    with (out / "summary.csv").open(newline="") as handle:
        csv_rows = list(csv.DictReader(handle))
    assert [int(r["index"]) for r in csv_rows] == [r["index"] for r in runs]
    pixels = [_png_pixels(out / r["files"]["equity_png"]) for r in runs]
    for image in pixels:
        assert image.shape == (320, 900, 4)
        assert float(image[..., :3].std()) > 0.02
    assert len({image.tobytes() for image in pixels}) == 12  # each picture is its own curve
    html = (out / "report.html").read_text()
    assert f"Winner: <b>{runs[0]['label']}</b>" in html
    assert html.count("data:image/png;base64,") == 2 + 12


def test_broken_csv_and_bad_value_fail_only_their_runs(
    ray_session: Any, backtest_data: list[Path], broken_csv: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    code = main([
        "backtest", str(backtest_data[0]), str(broken_csv), "--strategy", "sma_cross",
        "--grid", "fast=5,abc,50", "--set", "slow=40", "--out", str(out), "--no_db",
    ])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    runs = {(Path(r["file"]).name, r["grid_params"]["fast"]): r
            for r in json.loads((out / "summary.json").read_text())["runs"]}
    assert len(runs) == 6
    good = runs[("eurusd_a.csv", 5)]
    assert good["status"] == "ok" and good["stats"]["trades"] > 0
    # A value of the wrong type, and one the strategy refuses (fast must be < slow).
    assert runs[("eurusd_a.csv", "abc")]["status"] == "failed"
    assert "parameter 'fast': invalid value 'abc'" in runs[("eurusd_a.csv", "abc")]["error"]
    assert runs[("eurusd_a.csv", 50)]["status"] == "failed"
    assert "'fast' (50) must be smaller than 'slow' (40)" in runs[("eurusd_a.csv", 50)]["error"]
    for fast in (5, "abc", 50):
        row = runs[("broken.csv", fast)]
        assert row["status"] == "failed"
        assert f"{broken_csv}:301: OPEN is not a number" in row["error"] and "1.07x" not in row["error"]
    broken_lines = [line for line in captured.out.splitlines() if "broken.csv" in line]
    assert len(broken_lines) == 3 and all("FAILED: " in line and ":301:" in line for line in broken_lines)
    assert "1 ok, 5 failed, 0 cancelled of 6" in captured.out
    assert (out / "report.html").exists() and (out / "summary.csv").exists()


def test_every_run_of_a_file_shares_one_parsed_copy(
    ray_session: Any, backtest_data: list[Path], tmp_path: Path
) -> None:
    from actors.backtests.batch import run_batch
    from engine.backtest.planning import build_plan

    plan = build_plan(strategy="sma_cross", files=backtest_data[:2], grid_items=["fast=3,5,8,13"],
                      set_items=["slow=30"])
    result = run_batch(plan, tmp_path / "out", keep_outcomes=True, render_png=False)
    assert result.exit_code == 0
    by_file: dict[str, set[str | None]] = {}
    data = {str(f): load_csv(f, symbol=f.stem) for f in backtest_data[:2]}
    for outcome in result.outcomes.values():
        by_file.setdefault(outcome.path, set()).add(outcome.data_id)
        assert outcome.equity_png is None and "equity_png" not in result.ranked[0].files
        direct = run_backtest(data[outcome.path], "sma_cross", outcome.strategy_params)
        assert outcome.trades == direct.trades and len(direct.trades) > 0  # the objects themselves
    assert len(by_file) == 2
    ids = [next(iter(v)) for v in by_file.values()]
    assert all(len(v) == 1 for v in by_file.values()) and None not in ids and ids[0] != ids[1]


def test_cancelling_keeps_what_finished(ray_session: Any, backtest_data: list[Path], tmp_path: Path) -> None:
    import threading

    from actors.backtests.batch import EXIT_INTERRUPTED, run_batch
    from engine.backtest.planning import build_plan

    plan = build_plan(strategy="sma_cross", files=backtest_data,
                      grid_items=[f"fast={','.join(str(v) for v in range(2, 30))}"],
                      set_items=["slow=30"])
    cancel = threading.Event()

    def stop_after_first(progress: Any) -> None:
        if progress.done >= 1:
            cancel.set()

    result = run_batch(plan, tmp_path / "out", cancel_event=cancel, on_progress=stop_after_first,
                       render_png=False)
    counts = result.counts
    assert result.interrupted and result.exit_code == EXIT_INTERRUPTED
    assert counts["total"] == 4 * 28
    assert counts["ok"] >= 1 and counts["cancelled"] >= 1
    assert counts["ok"] + counts["failed"] + counts["cancelled"] == counts["total"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["interrupted"] is True
    finished = [r for r in summary["runs"] if r["status"] == "ok"]
    assert len(finished) == counts["ok"]
    assert all((tmp_path / "out" / r["files"]["trades_csv"]).exists() for r in finished)
    assert {r["error"] for r in summary["runs"] if r["status"] == "cancelled"} == {"cancelled (interrupted)"}
    assert "interrupted" in (tmp_path / "out" / "report.html").read_text()


def test_batch_is_recorded_in_the_database(
    ray_session: Any, backtest_data: list[Path], broken_csv: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from persistence.schema import create_schema
    from persistence.store import Store

    url = f"sqlite:///{tmp_path / 'lts.db'}"
    store = Store.from_url(url)
    create_schema(store.engine)
    try:
        out = tmp_path / "out"
        code = main(["backtest", str(backtest_data[1]), str(broken_csv), "--strategy", "sma_cross",
                     "--grid", "fast=5,10", "--out", str(out), "--database_url", url])
        assert code == 1, capsys.readouterr().err
        summary = json.loads((out / "summary.json").read_text())
        [run] = store.list_backtest_runs().items
        assert run.status == "completed" and run.strategy_plugin == "sma_cross"
        assert run.total_jobs == run.completed_jobs == 4
        assert run.error == "2 of 4 runs failed, 0 cancelled"
        assert run.output_dir == str(out.resolve())
        assert run.started_at is not None and run.finished_at is not None
        results = {r.params["index"]: r for r in store.list_backtest_results(run.id)}
        assert len(results) == 4
        for row in summary["runs"]:
            stored = results[row["index"]]
            assert stored.data_path == row["file"]
            assert stored.params["grid"] == row["grid_params"]
            if row["status"] == "ok":
                assert stored.error is None and stored.stats == row["stats"]
                assert stored.trades_count == row["stats"]["trades"] > 0
                assert Path(stored.trades_path).is_file() and Path(stored.plot_path).is_file()
            else:
                assert stored.error == row["error"] and ":301:" in stored.error
        assert store.list_audit_logs(action="backtest.result").total == 4  # INT-08
        assert store.list_audit_logs(action="backtest.create").total == 1
    finally:
        store.close()


def test_database_without_tables_gets_the_schema_and_the_batch(
    ray_session: Any, backtest_data: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A first ``lts backtest`` on a fresh machine: the SQLite file (in a folder that does
    not exist yet) is created with the schema, and the batch is recorded in it."""
    from persistence.schema import missing_tables
    from persistence.store import Store

    db_file = tmp_path / "new" / "lts.db"
    url = f"sqlite:///{db_file}"
    code = main(["backtest", str(backtest_data[0]), "--strategy", "sma_cross", "--grid", "fast=5,10",
                 "--out", str(tmp_path / "out"), "--database_url", url, "--no_plots"])
    assert code == 0, capsys.readouterr().err
    store = Store.from_url(url)
    try:
        assert missing_tables(store.engine) == []
        [run] = store.list_backtest_runs().items
        assert run.status == "completed" and run.total_jobs == run.completed_jobs == 2
        assert len(store.list_backtest_results(run.id)) == 2
    finally:
        store.close()


def test_unreachable_database_is_refused_before_running(
    backtest_data: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database that cannot be opened stops the command in one line, before Ray starts
    or the output folder is made."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    url = f"sqlite:///{blocker / 'lts.db'}"  # its folder is a file: cannot be created
    code = main(["backtest", str(backtest_data[0]), "--strategy", "sma_cross",
                 "--out", str(tmp_path / "out"), "--database_url", url])
    err = capsys.readouterr().err
    assert code == 2
    assert f"database_url {url!r}: cannot open the database" in err and "--no_db" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()
