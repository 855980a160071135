"""Data files for the parallel-backtest tests, cut from the CSVs the ``backtesting``
package ships (hourly EURUSD, daily GOOG), written to a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest


def _read_shipped(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, index_col=0, parse_dates=True)
    frame.index.name = "DATE_TIME"
    return frame


@pytest.fixture(scope="session")
def backtest_data(backtesting_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four good files: two EURUSD slices in the ``DATE_TIME,OPEN,HIGH,LOW,CLOSE`` layout
    (LOW before HIGH, as the shared data has it), and GOOG twice in the package's own
    layout (unnamed first column)."""
    folder = tmp_path_factory.mktemp("backtest_data")
    eurusd = _read_shipped(backtesting_data_dir / "EURUSD.csv")
    goog = _read_shipped(backtesting_data_dir / "GOOG.csv")
    files: list[Path] = []
    for name, part in (("eurusd_a.csv", eurusd.iloc[:2500]), ("eurusd_b.csv", eurusd.iloc[2500:])):
        out = part[["Open", "Low", "High", "Close"]].rename(columns=str.upper)
        out.to_csv(folder / name, date_format="%Y-%m-%d %H:%M:%S")
        files.append(folder / name)
    for name, part in (("goog_a.csv", goog.iloc[:1100]), ("goog_b.csv", goog.iloc[1000:])):
        out = part.copy()
        out.index.name = None
        out.to_csv(folder / name)
        files.append(folder / name)
    return files


@pytest.fixture()
def broken_csv(backtesting_data_dir: Path, tmp_path: Path) -> Path:
    """A real EURUSD slice whose row on line 301 has a price that is not a number."""
    lines = (backtesting_data_dir / "EURUSD.csv").read_text().splitlines()[:600]
    cells = lines[300].split(",")
    cells[1] = "1.07x"
    lines[300] = ",".join(cells)
    path = tmp_path / "broken.csv"
    path.write_text("\n".join(lines) + "\n")
    return path
