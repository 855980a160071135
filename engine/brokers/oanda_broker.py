"""``oanda_broker``: live/practice trading on OANDA v20 through oandapyV20 (seed §1.5, INT-06).

What it does
    * ``open``: a MARKET order (FOK) with ``stopLossOnFill`` / ``takeProfitOnFill`` (``sl``/``tp``
      prices, or ``sl_distance``/``tp_distance`` from the fill price, as strategies emit them); units are
      ``quantity * units_per_quantity``, signed by side; ``EURUSD`` maps to ``EUR_USD``.
    * ``close``: closes a trade (``position_id`` is the OANDA trade id, or ``@<client id>``),
      all of it or ``quantity`` of it.
    * ``modify``: sets the stop-loss / take-profit of a trade (TradeCRCDO). A key given as
      ``None`` removes that order; an absent key leaves it as it is.
    * reads: open trades (``get_open_orders``), ``account_summary``, ``get_price``,
      ``get_trade_history``, ``get_transactions``, ``find_order``.

Reliability
    Every request has a timeout. Temporary failures (429, 5xx, timeouts, dropped
    connections) are retried with exponential backoff and full jitter (tenacity), up to
    ``max_retries``; 400/401/403/404 are never retried. Every order carries the client
    order id in ``clientExtensions`` (and ``tradeClientExtensions``). After an *ambiguous*
    failure (the order may have been placed: timeout, 5xx, dropped connection, garbled
    answer) the broker waits until ``timeout_s`` has passed since the failure, then looks the
    order up as ``GET orders/@<client id>`` and only resends when OANDA has no such order.
    OANDA itself only refuses a reused client id while the first order is pending, so this
    lookup, not OANDA, is what prevents a duplicate after a fill. A repeated
    ``client_order_id`` returns the first result without a request.

    Known limit: a request the network holds for longer than twice ``timeout_s`` before
    OANDA sees it can still race the lookup; OANDA's pending-id check narrows but cannot
    close that window.

Results
    Rejections (HTTP 400/404 on an order, or OANDA cancelling the order, e.g.
    INSUFFICIENT_MARGIN) come back as ``OrderResult(success=False, status="rejected",
    reason=...)``. Bad credentials raise ``BrokerError``; temporary failures that outlast the
    retries raise ``TemporaryError`` (for an order, its state is then unknown: call
    ``find_order`` or repeat the call with the same client id, which looks it up first).

Secrets
    ``access_token`` has no default; it comes from the config or, for operator code,
    ``OANDA_ACCESS_TOKEN`` (likewise ``account_id`` / ``OANDA_ACCOUNT_ID``). The engine
    never lets this plugin read the environment for an asset: it passes the asset's own
    credentials, or the operator's where the operator's config allows it
    (``engine.credentials``). The token is held as a ``pydantic.SecretStr``, never
    logged, never in an error message, ``repr`` or debug info.

Endpoints
    Requests go only to hosts the operator's ``outbound_hosts`` allows (``engine.outbound``),
    checked when the HTTP client is built: ``api_url``, or the official host of
    ``environment``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from urllib.parse import quote
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, ClassVar

from oandapyV20.endpoints import orders, trades, transactions
from pydantic import SecretStr, ValidationError

from engine.brokers import _oanda_mapping as m
from engine.brokers._oanda_reads import OandaAccountReads
from engine.brokers._oanda_transport import (
    AmbiguousError,
    OandaTransport,
    resolve_environment,
)
from engine.errors import ConfigError, DomainError, NotFound, OrderRejected, TemporaryError
from engine.plugins.base import BrokerPlugin
from engine.types import OrderRequest, OrderResult, OrderStatus, Side

logger = logging.getLogger(__name__)

_RESULT_CACHE_SIZE = 10_000
_CONNECTION_KEYS = frozenset(
    {"account_id", "access_token", "environment", "api_url", "timeout_s", "max_retries", "backoff", "backoff_max"}
)


class OandaBroker(OandaAccountReads, BrokerPlugin):
    """Trades one OANDA v20 account; see the module docstring for the guarantees."""

    plugin_params: ClassVar[dict[str, Any]] = {
        "account_id": None,  # or OANDA_ACCOUNT_ID
        "access_token": None,  # never a default: config or OANDA_ACCESS_TOKEN
        "environment": "practice",  # practice | live
        "api_url": None,  # overrides the environment's REST URL (tests, proxies)
        "timeout_s": 10.0,  # per request (connect and read)
        "max_retries": 5,  # retries after the first attempt, temporary failures only
        "backoff": 0.5,  # seconds; exponential backoff multiplier (full jitter)
        "backoff_max": 8.0,  # seconds; cap of one backoff sleep
        "instrument": None,  # default symbol when an order names none (e.g. "EURUSD")
        "units_per_quantity": 1,  # OANDA units per unit of `quantity` (100000 = lots)
        "order_tag": "lts",  # clientExtensions.tag on every order
    }
    plugin_debug_vars: ClassVar[list[str]] = [
        "account_id", "environment", "api_url", "timeout_s", "max_retries", "backoff",
        "instrument", "units_per_quantity",
    ]
    plugin_url_params: ClassVar[tuple[str, ...]] = ("api_url",)
    plugin_secret_params: ClassVar[tuple[str, ...]] = ("access_token",)
    plugin_operator_env: ClassVar[dict[str, str]] = {
        "access_token": "OANDA_ACCESS_TOKEN", "account_id": "OANDA_ACCOUNT_ID",
    }

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self._transport_obj: OandaTransport | None = None
        self._results: OrderedDict[str, OrderResult] = OrderedDict()
        self._unresolved: set[str] = set()  # client ids whose order state is unknown
        self._id_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        super().__init__(config)

    # ---- configuration --------------------------------------------------------------
    def set_params(self, **kwargs: Any) -> None:
        """Update parameters; the access token is wrapped so it never prints."""
        if kwargs.get("access_token") is not None and not isinstance(kwargs["access_token"], SecretStr):
            kwargs["access_token"] = SecretStr(str(kwargs["access_token"]))
        super().set_params(**kwargs)
        if _CONNECTION_KEYS.intersection(kwargs) and getattr(self, "_transport_obj", None):
            self._transport_obj.close()
            self._transport_obj = None

    def __repr__(self) -> str:
        return (
            f"OandaBroker(account_id={self.params.get('account_id')!r}, "
            f"environment={self.params.get('environment')!r}, api_url={self.params.get('api_url')!r})"
        )

    @property
    def account_id(self) -> str:
        value = self.operator_value("account_id")
        if not value:
            raise ConfigError("oanda_broker: account_id is not set (config key account_id"
                              + (" or OANDA_ACCOUNT_ID)" if self._operator_env else ")"))
        return str(value)

    @property
    def _units_per_quantity(self) -> Decimal:
        value = Decimal(str(self.params["units_per_quantity"]))
        if value <= 0:
            raise ConfigError(f"oanda_broker: units_per_quantity must be positive, got {value}")
        return value

    def _transport(self) -> OandaTransport:
        if self._transport_obj is None:
            token = self.operator_value("access_token")
            secret = token.get_secret_value() if isinstance(token, SecretStr) else token
            if not secret:
                raise ConfigError(
                    "oanda_broker: access_token is not set; give the access_token key (config file "
                    "or --access_token)" + (" or set OANDA_ACCESS_TOKEN" if self._operator_env else "")
                )
            timeout = float(self.params["timeout_s"])
            retries = int(self.params["max_retries"])
            if timeout <= 0:
                raise ConfigError(f"oanda_broker: timeout_s must be positive, got {timeout}")
            if retries < 0:
                raise ConfigError(f"oanda_broker: max_retries must be >= 0, got {retries}")
            self._transport_obj = OandaTransport(
                access_token=secret,
                environment=resolve_environment(str(self.params["environment"]), self.params.get("api_url"),
                                                self.outbound),
                timeout_s=timeout,
                max_retries=retries,
                backoff=float(self.params["backoff"]),
                backoff_max=float(self.params["backoff_max"]),
                label=f"oanda {self.account_id}",
            )
        return self._transport_obj

    def close(self) -> None:
        """Close the HTTP session (the broker reconnects on next use)."""
        if self._transport_obj is not None:
            self._transport_obj.close()
            self._transport_obj = None

    # ---- seed entry point ------------------------------------------------------------
    def execute_order(self, action: str, parameters: Mapping[str, Any]) -> OrderResult:
        """Seed §3: ``open`` -> {success, order_id, entry_price}; ``close`` -> {success,
        close_price, pnl}; ``modify`` -> {success}."""
        handlers: dict[str, Callable[[Mapping[str, Any]], OrderResult]] = {
            "open": self.open_order,
            "close": self.close_order,
            "modify": self.modify_order,
        }
        handler = handlers.get(str(action).lower())
        if handler is None:
            raise DomainError(f"oanda_broker: unknown action {action!r}; expected one of {', '.join(handlers)}")
        return handler(parameters)

    # ---- open ------------------------------------------------------------------------
    def open_order(self, parameters: Mapping[str, Any]) -> OrderResult:
        """A market order with optional SL/TP on fill; never placed twice per client id."""
        request = self._order_request(parameters)
        cid = request.client_order_id
        with self._client_id_lock(cid):
            cached = self._results.get(cid)
            if cached is not None:
                logger.info("%s: client order id %s already answered; returning the first result", self._label, cid)
                return cached
            distances = {k: parameters.get(f"{k}_distance") for k in ("sl", "tp")}
            result = self._place_market_order(request, str(parameters.get("comment") or ""), distances)
            self._remember(cid, result)
        if result.success:
            logger.info(
                "%s: opened %s %s x%s at %s (client id %s, order %s, trade %s)",
                self._label, request.side, request.symbol, result.quantity, result.entry_price,
                cid, result.order_id, result.position_id,
            )
        else:
            logger.warning("%s: order %s rejected: %s", self._label, cid, result.reason)
        return result

    def _order_request(self, parameters: Mapping[str, Any]) -> OrderRequest:
        symbol = parameters.get("symbol") or parameters.get("instrument") or self.params.get("instrument")
        if not symbol:
            raise DomainError("oanda_broker open: parameters need 'symbol' (or set the broker's instrument key)")
        cid = parameters.get("client_order_id")
        if not cid:
            cid = f"lts-{uuid.uuid4().hex}"
            logger.info("%s: order without client_order_id; generated %s (no idempotency across calls)", self._label, cid)
        try:
            side = Side(str(parameters.get("side", "")).lower())
        except ValueError:
            raise DomainError(f"oanda_broker open: side must be 'buy' or 'sell', got {parameters.get('side')!r}") from None
        try:
            return OrderRequest(
                client_order_id=str(cid), symbol=str(symbol), side=side,
                quantity=parameters.get("quantity"), sl=parameters.get("sl"), tp=parameters.get("tp"),
            )
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise DomainError(f"oanda_broker open: invalid parameters ({problems})") from None

    def _market_order_body(
        self, request: OrderRequest, comment: str, distances: Mapping[str, Any]
    ) -> dict[str, Any]:
        instrument = m.to_instrument(request.symbol)
        extensions = {"id": request.client_order_id, "tag": str(self.params["order_tag"])}
        order: dict[str, Any] = {
            "type": "MARKET",
            "instrument": instrument,
            "units": m.to_units(request.quantity, request.side, self._units_per_quantity),
            "timeInForce": "FOK",
            "positionFill": "DEFAULT",
            "clientExtensions": {**extensions, "comment": (comment or f"LTS {request.side} {request.symbol}")[:128]},
            # the trade gets the same id, so it can be found as trades/@<client id>
            "tradeClientExtensions": extensions,
        }
        for key, on_fill, level in (("sl", "stopLossOnFill", request.sl), ("tp", "takeProfitOnFill", request.tp)):
            distance = distances.get(key)
            if level is not None and distance is not None:
                raise DomainError(f"oanda_broker open: give {key} or {key}_distance, not both")
            if level is not None:
                order[on_fill] = {"price": m.format_price(level, instrument, key), "timeInForce": "GTC"}
            elif distance is not None:
                # OANDA measures a distance from the fill price, as LTS strategies mean it
                order[on_fill] = {"distance": m.format_price(distance, instrument, f"{key}_distance"), "timeInForce": "GTC"}
        return {"order": order}

    def _place_market_order(
        self, request: OrderRequest, comment: str, distances: Mapping[str, Any]
    ) -> OrderResult:
        cid = request.client_order_id
        body = self._market_order_body(request, comment, distances)
        transport = self._transport()
        what = f"market order {cid}"
        # a client id left unresolved by an earlier call is looked up before anything else
        ambiguous_since: list[float] = [0.0] if cid in self._unresolved else []

        def attempt() -> OrderResult:
            if ambiguous_since:
                self._settle(ambiguous_since[0])
                found = self._lookup_open(cid)
                if found is not None:
                    logger.info("%s: %s found at OANDA after an ambiguous failure; not resending", self._label, what)
                    return found
                ambiguous_since.clear()
                logger.info("%s: %s not at OANDA after an ambiguous failure; resending", self._label, what)
            try:
                response = transport.send(orders.OrderCreate(self.account_id, data=body), what, order_op=True)
            except AmbiguousError:
                ambiguous_since[:] = [time.monotonic()]
                raise
            except OrderRejected as exc:
                if "CLIENT_ORDER_ID_ALREADY_EXISTS" in str(exc):
                    # the first attempt is still pending at OANDA: wait for it, never resend
                    ambiguous_since[:] = [0.0]
                    raise TemporaryError(f"{what}: the first attempt is still pending at OANDA") from None
                return m.rejected(cid, str(exc))
            return self._result_from_create(cid, response)

        try:
            result = transport.run_with_retries(attempt, what)
        except TemporaryError as exc:
            if ambiguous_since:
                self._unresolved.add(cid)
                raise AmbiguousError(
                    f"{exc}; the order's state at OANDA is unknown: call find_order({cid!r}) or repeat "
                    "the call with the same client_order_id (it looks the order up before resending)"
                ) from None
            raise
        self._unresolved.discard(cid)
        return result

    def _settle(self, failed_at: float) -> None:
        """Wait until ``timeout_s`` has passed since an ambiguous failure, so a request the
        server is still working on has landed before the lookup trusts a 'not found'."""
        remaining = failed_at + float(self.params["timeout_s"]) - time.monotonic()
        if failed_at and remaining > 0:
            time.sleep(remaining)

    def _result_from_create(self, cid: str, response: dict[str, Any]) -> OrderResult:
        order_id = (response.get("orderCreateTransaction") or {}).get("id")
        if response.get("orderFillTransaction"):
            return m.open_result_from_fill(cid, order_id, response["orderFillTransaction"], self._units_per_quantity)
        if response.get("orderCancelTransaction"):
            reason = response["orderCancelTransaction"].get("reason", "unknown reason")
            return m.rejected(cid, f"OANDA cancelled the order: {reason}", order_id)
        raise AmbiguousError(f"{self._label}: order {cid} answer has neither a fill nor a cancel")

    def _lookup_open(self, cid: str) -> OrderResult | None:
        """The outcome of the order with client id ``cid``, or None if OANDA never saw it."""
        transport = self._transport()
        try:
            found = transport.send(orders.OrderDetails(self.account_id, "@" + quote(cid, safe="")), f"look up order @{cid}")
        except NotFound:
            return None
        order = found.get("order") or {}
        state = order.get("state")
        if state == "FILLED":
            trade_id = order.get("tradeOpenedID")
            if not trade_id:
                return OrderResult(
                    success=True, client_order_id=cid, order_id=order.get("id"), status=OrderStatus.FILLED,
                    reason="filled without opening a trade (reduced an existing one)",
                )
            trade = transport.send(trades.TradeDetails(self.account_id, trade_id), f"look up trade {trade_id}")["trade"]
            return m.open_result_from_trade(cid, order.get("id"), trade, self._units_per_quantity)
        if state == "CANCELLED":
            return m.rejected(
                cid, f"OANDA cancelled the order (transaction {order.get('cancellingTransactionID')})", order.get("id")
            )
        raise TemporaryError(f"{self._label}: order @{cid} is still {state} at OANDA")

    def find_order(self, client_order_id: str) -> OrderResult | None:
        """Reconciliation: what became of the order with this client id (None: never placed)."""
        cached = self._results.get(client_order_id)
        if cached is not None:
            return cached
        result = self._transport().run_with_retries(
            lambda: self._lookup_open(client_order_id), f"look up order @{client_order_id}"
        )
        if result is not None:
            self._remember(client_order_id, result)
            self._unresolved.discard(client_order_id)
        return result

    # ---- close -----------------------------------------------------------------------
    def close_order(self, parameters: Mapping[str, Any]) -> OrderResult:
        """Close trade ``position_id`` (all of it, or ``quantity``): {success, close_price, pnl}."""
        trade_id = parameters.get("position_id")
        if not trade_id:
            raise DomainError("oanda_broker close: parameters need 'position_id' (the OANDA trade id)")
        trade_id = str(trade_id)
        cid = parameters.get("client_order_id")
        cid = str(cid) if cid else None
        with self._client_id_lock(cid or f"close:{trade_id}"):
            if cid and cid in self._results:
                return self._results[cid]
            result = self._close_trade(trade_id, cid, parameters.get("quantity"))
            if cid:
                self._remember(cid, result)
        if result.success:
            logger.info(
                "%s: closed trade %s at %s, pnl %s (client id %s)",
                self._label, trade_id, result.close_price, result.pnl, cid,
            )
        else:
            logger.warning("%s: close of trade %s rejected: %s", self._label, trade_id, result.reason)
        return result

    def _close_trade(self, trade_id: str, cid: str | None, quantity: Any) -> OrderResult:
        transport = self._transport()
        upq = self._units_per_quantity
        what = f"close trade {trade_id}"
        data: dict[str, str] = {"units": "ALL"}
        mark: str | None = None
        if quantity is not None:
            units = m.to_units(quantity, Side.BUY, upq)
            data = {"units": units}
            # remember where the transaction log stood, to find our fill after an ambiguity
            before = self._get_trade(trade_id, what)
            if before is None:
                return m.rejected(cid, f"{what}: OANDA has no such trade")
            mark = before[1]
        ambiguous_since: list[float] = []

        def attempt() -> OrderResult:
            if ambiguous_since:
                self._settle(ambiguous_since[0])
                done = self._lookup_close(trade_id, cid, mark)
                if done is not None:
                    return done
                ambiguous_since.clear()
            try:
                response = transport.send(trades.TradeClose(self.account_id, trade_id, data=data), what, order_op=True)
            except AmbiguousError:
                ambiguous_since[:] = [time.monotonic()]
                raise
            except OrderRejected as exc:
                found = self._get_trade(trade_id, what)
                if found is not None and found[0].get("state") == "CLOSED":
                    return m.close_result_from_trade(cid, found[0], upq, reason="already closed")
                return m.rejected(cid, str(exc))
            return m.close_result_from_fill(cid, trade_id, response, upq)

        return transport.run_with_retries(attempt, what)

    def _get_trade(self, trade_id: str, what: str) -> tuple[dict[str, Any], str] | None:
        """(trade, lastTransactionID) or None when OANDA has no such trade."""
        try:
            found = self._transport().send(trades.TradeDetails(self.account_id, trade_id), f"{what}: look up trade")
        except NotFound:
            return None
        return found["trade"], str(found.get("lastTransactionID", "0"))

    def _lookup_close(self, trade_id: str, cid: str | None, mark: str | None) -> OrderResult | None:
        """After an ambiguous close: the close's result if it happened, else None."""
        found = self._get_trade(trade_id, f"close trade {trade_id}")
        if found is None:
            return m.rejected(cid, f"close trade {trade_id}: OANDA has no such trade")
        trade = found[0]
        if mark is None:  # a full close
            if trade.get("state") == "CLOSED":
                return m.close_result_from_trade(cid, trade, self._units_per_quantity, reason=None)
            return None
        since = self._transport().send(
            transactions.TransactionsSinceID(self.account_id, params={"id": mark}), f"transactions since {mark}"
        )
        for tx in since.get("transactions", []):
            touched = [*(tx.get("tradesClosed") or []), *([tx["tradeReduced"]] if tx.get("tradeReduced") else [])]
            if tx.get("type") == "ORDER_FILL" and any(t.get("tradeID") == trade_id for t in touched):
                return m.close_result_from_fill(cid, trade_id, {"orderFillTransaction": tx}, self._units_per_quantity)
        return None

    # ---- modify ----------------------------------------------------------------------
    def modify_order(self, parameters: Mapping[str, Any]) -> OrderResult:
        """Set (or remove, with ``None``) the stop-loss / take-profit of trade ``position_id``."""
        trade_id = parameters.get("position_id")
        if not trade_id:
            raise DomainError("oanda_broker modify: parameters need 'position_id' (the OANDA trade id)")
        if "sl" not in parameters and "tp" not in parameters:
            raise DomainError("oanda_broker modify: give 'sl' and/or 'tp' (None removes one)")
        trade_id = str(trade_id)
        cid = parameters.get("client_order_id")
        what = f"modify trade {trade_id}"
        found = self._transport().run_with_retries(lambda: self._get_trade(trade_id, what), what)
        if found is None or found[0].get("state") != "OPEN":
            return m.rejected(cid, f"{what}: OANDA has no open trade {trade_id}")
        instrument = found[0]["instrument"]
        data: dict[str, Any] = {}
        for key, name in (("sl", "stopLoss"), ("tp", "takeProfit")):
            if key in parameters:
                value = parameters[key]
                data[name] = None if value is None else {
                    "price": m.format_price(value, instrument, key), "timeInForce": "GTC",
                }
        try:
            # setting absolute SL/TP prices is idempotent: plain retries are safe
            self._transport().call(lambda: trades.TradeCRCDO(self.account_id, trade_id, data=data), what, order_op=True)
        except OrderRejected as exc:
            logger.warning("%s: %s rejected: %s", self._label, what, exc)
            return m.rejected(cid, str(exc))
        logger.info("%s: %s: %s", self._label, what, data)
        return OrderResult(
            success=True, client_order_id=cid, position_id=trade_id, status=OrderStatus.OPEN,
        )

    # ---- internals -------------------------------------------------------------------
    @property
    def _label(self) -> str:
        return f"oanda {self.operator_value('account_id') or '?'}"

    @contextmanager
    def _client_id_lock(self, key: str) -> Iterator[None]:
        """Serialises concurrent calls for one client id (a retried actor call, say)."""
        with self._guard:
            lock = self._id_locks.setdefault(key, threading.Lock())
        with lock:
            yield
        with self._guard:
            if not lock.locked():
                self._id_locks.pop(key, None)

    def _remember(self, cid: str, result: OrderResult) -> None:
        self._results[cid] = result
        self._results.move_to_end(cid)
        while len(self._results) > _RESULT_CACHE_SIZE:
            self._results.popitem(last=False)
