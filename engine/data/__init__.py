"""Market data: the columnar ``MarketData`` type and the validated CSV loader."""

from engine.data.market_data import MarketData, MarketSnapshot

__all__ = ["MarketData", "MarketSnapshot"]
