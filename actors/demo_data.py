"""Deterministic demo market data for ``lts run`` on a fresh machine (no data files needed).

A seeded geometric random walk with intrabar ranges, written as ``DATE_TIME,OPEN,HIGH,
LOW,CLOSE`` CSVs under ``data_dir``: the same seed always gives the same file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

DEMO_SYMBOLS: dict[str, tuple[float, float, int]] = {
    # symbol: (start price, hourly volatility, seed)
    "EURUSD": (1.10, 0.0012, 11),
    "GBPUSD": (1.27, 0.0015, 22),
    "USDJPY": (148.0, 0.0013, 33),
}


def generate_ohlc(start: float, volatility: float, seed: int, bars: int = 5000) -> pd.DataFrame:
    """Hourly OHLC bars from 2024-01-01 UTC; consistent (low <= open, close <= high)."""
    rng = np.random.default_rng(seed)
    # A slow sine drift gives the demo strategies trends to follow.
    drift = 0.0004 * np.sin(np.arange(bars) / 150.0)
    closes = start * np.exp(np.cumsum(drift + volatility * rng.standard_normal(bars)))
    opens = np.concatenate([[start], closes[:-1]])
    spread = np.abs(rng.standard_normal(bars)) * volatility * closes * 0.5
    highs = np.maximum(opens, closes) + spread
    lows = np.minimum(opens, closes) - spread
    times = pd.date_range("2024-01-01", periods=bars, freq="h", tz="UTC")
    return pd.DataFrame({"DATE_TIME": times.strftime("%Y-%m-%d %H:%M:%S"), "OPEN": opens.round(6),
                         "HIGH": highs.round(6), "LOW": lows.round(6), "CLOSE": closes.round(6)})


def write_demo_files(data_dir: str | Path, bars: int = 5000) -> dict[str, Path]:
    """Write (or keep) one CSV per demo symbol under ``data_dir/demo``; symbol -> path."""
    folder = Path(data_dir) / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for symbol, (start, vol, seed) in DEMO_SYMBOLS.items():
        path = folder / f"{symbol.lower()}_h1.csv"
        if not path.exists():
            generate_ohlc(start, vol, seed, bars).to_csv(path, index=False)
            logger.info("demo data written: %s", path)
        paths[symbol] = path
    return paths


def seed_demo_portfolio(store: object, data_dir: str | Path) -> int | None:
    """On an empty database: a demo user, an active simulation portfolio and three
    assets over the demo files. Returns the portfolio id, or None if the DB has data."""
    import secrets
    from decimal import Decimal

    from persistence.records import AssetCreate, AuditContext, PortfolioCreate

    if store.list_portfolios().total:  # type: ignore[attr-defined]
        return None
    paths = write_demo_files(data_dir)
    system = AuditContext.system()
    # Nobody logs in as the demo owner: its password hash is of a random secret, never shown.
    import bcrypt

    unusable = bcrypt.hashpw(secrets.token_bytes(32), bcrypt.gensalt()).decode()
    user = store.create_user(system, username="demo", password_hash=unusable)  # type: ignore[attr-defined]
    portfolio = store.create_portfolio(system, PortfolioCreate(  # type: ignore[attr-defined]
        name="demo", description="Simulation over generated data (seeded by lts run)",
        total_capital=Decimal("30000")), owner_id=user.id)
    for symbol, path in paths.items():
        asset = store.create_asset(system, portfolio.id, AssetCreate(  # type: ignore[attr-defined]
            symbol=symbol, strategy_plugin="sma_cross", strategy_config={"fast": 10, "slow": 30, "quantity": 1000.0},
            broker_plugin="backtrader_simulation_broker",
            broker_config={"pip_size": 0.01} if symbol.endswith("JPY") else {},
            data_source={"path": str(Path(path).relative_to(Path(data_dir)))}))
        store.activate_asset(system, asset.id)  # type: ignore[attr-defined]
    store.activate_portfolio(system, portfolio.id)  # type: ignore[attr-defined]
    return portfolio.id
