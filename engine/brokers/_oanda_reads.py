"""The read side of ``engine.brokers.oanda_broker.OandaBroker``: open and past trades,
transactions, the account summary and prices. Reads are safe to retry, so they go
through the transport's retries as they are; the order side (idempotency by client
order id) stays in the broker's module."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from oandapyV20.endpoints import accounts, pricing, trades, transactions

from engine.brokers import _oanda_mapping as m
from engine.errors import NotFound
from engine.types import PositionView

if TYPE_CHECKING:
    from engine.brokers._oanda_transport import OandaTransport


class OandaAccountReads:
    """Mixin: the broker provides ``_transport()``, ``account_id``,
    ``_units_per_quantity`` and ``_label``."""

    if TYPE_CHECKING:
        account_id: str
        _units_per_quantity: Decimal
        _label: str

        def _transport(self) -> OandaTransport: ...

    def get_open_orders(self) -> list[PositionView]:
        """The account's open trades, newest first."""
        response = self._transport().call(lambda: trades.OpenTrades(self.account_id), "list open trades")
        return [m.position_from_trade(t, self._units_per_quantity) for t in response.get("trades", [])]

    def get_trade_history(self, count: int = 50, state: str = "CLOSED") -> list[PositionView]:
        """Trades in ``state`` (OPEN, CLOSED, ALL...), newest first."""
        params = {"state": state, "count": int(count)}
        response = self._transport().call(lambda: trades.TradesList(self.account_id, params=params), "list trades")
        return [m.position_from_trade(t, self._units_per_quantity) for t in response.get("trades", [])]

    def get_transactions(self, since_id: str | int) -> list[dict[str, Any]]:
        """Raw OANDA transactions after ``since_id`` (numbers stay strings, as OANDA sends them)."""
        params = {"id": str(since_id)}
        response = self._transport().call(
            lambda: transactions.TransactionsSinceID(self.account_id, params=params), f"transactions since {since_id}"
        )
        return list(response.get("transactions", []))

    def account_summary(self) -> dict[str, Any]:
        """Balance, NAV, P/L and margin as Decimals; counts as ints."""
        response = self._transport().call(lambda: accounts.AccountSummary(self.account_id), "account summary")
        account = response.get("account") or {}
        money = ("balance", "NAV", "unrealizedPL", "pl", "marginUsed", "marginAvailable", "marginRate")
        summary: dict[str, Any] = {key: m.dec(account.get(key)) for key in money if key in account}
        summary.update(
            account_id=account.get("id"),
            currency=account.get("currency"),
            open_trade_count=int(account.get("openTradeCount", 0)),
            pending_order_count=int(account.get("pendingOrderCount", 0)),
            last_transaction_id=account.get("lastTransactionID"),
        )
        return summary

    def get_price(self, symbol: str) -> dict[str, Any]:
        """Best bid/ask (Decimal), their mid and the quote time for ``symbol``."""
        instrument = m.to_instrument(symbol)
        params = {"instruments": instrument}
        response = self._transport().call(
            lambda: pricing.PricingInfo(self.account_id, params=params), f"price of {instrument}"
        )
        quote = next((p for p in response.get("prices", []) if p.get("instrument") == instrument), None)
        if quote is None or not quote.get("bids") or not quote.get("asks"):
            raise NotFound(f"{self._label}: OANDA returned no price for {instrument}")
        bid, ask = Decimal(quote["bids"][0]["price"]), Decimal(quote["asks"][0]["price"])
        return {
            "symbol": m.to_symbol(instrument),
            "bid": bid,
            "ask": ask,
            "mid": (bid + ask) / 2,
            "time": m.parse_time(quote.get("time")),
            "tradeable": bool(quote.get("tradeable", quote.get("status") == "tradeable")),
        }
