"""Market data: the columnar ``MarketData`` type and the validated CSV loader."""

from typing import Any

from engine.data.market_data import MarketData, MarketSnapshot

__all__ = ["MarketData", "MarketSnapshot", "load_csv"]


def __getattr__(name: str) -> Any:
    # load_csv pulls in pandas and pyarrow: import it only when asked for, so that
    # importing the plugin contracts (which need MarketSnapshot) stays light.
    if name == "load_csv":
        from engine.data.csv_loader import load_csv

        return load_csv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
