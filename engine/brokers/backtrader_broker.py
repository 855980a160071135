"""``backtrader_broker``: a backtrader ``BackBroker`` that is also an LTS broker plugin (seed §1.5).

It runs inside a real ``bt.Cerebro`` (``cerebro.setbroker(BacktraderBroker(config))``),
fills orders with backtrader's own engine, and adds three things:

* **Predictions** for the strategies running in cerebro, from a CSV or the prediction API,
  always asked at the current bar's time (never the wall clock). The source can be
  switched at runtime with ``switch_prediction_source("api", url=...)`` and back (INT-09);
  every switch and the number of predictions each source answered are in
  ``get_debug_info()`` and ``metrics()``.
* **The BrokerPlugin contract** on top of backtrader orders: ``execute_order("open",
  {side, quantity, sl?, tp?, client_order_id?, symbol?})`` submits a market order (a
  bracket when SL/TP levels are given; ``sl_distance``/``tp_distance``, as strategies emit
  them, become levels around the entry fill once it is known), ``"close"`` closes a position by id, ``"modify"`` replaces
  its SL/TP (an OCO pair). Orders need an owner strategy: a strategy calls
  ``self.broker.bind(self)`` in ``start()``. As in every backtest here, a market order
  decided on bar t's close fills at bar t+1's open, so ``execute_order`` answers
  ``status="pending"``; ``get_order_result(client_order_id)`` follows the order to its
  fill (``entry_price`` / ``close_price`` / ``pnl``). A repeated client order id returns
  the recorded result and places nothing. backtrader nets positions per data feed: two
  open positions on one feed are one net position to backtrader.
* **Performance metrics** from its own accounting (``metrics()``): total return, max
  drawdown, trades, wins/losses, win rate, net P/L, profit factor; trades are counted
  like backtrader's ``TradeAnalyzer`` (flat -> flat per feed).

To run an LTS strategy plugin in cerebro: ``cerebro.addstrategy(StrategyPluginRunner,
plugin=create_plugin("strategy", name, params))``.

Parameters: ``self.params`` is the LTS plugin dict (``plugin_params``); backtrader's own
broker parameters stay on ``self.p``.
"""

from __future__ import annotations

import itertools
import logging
from abc import ABCMeta
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar

import backtrader as bt
import numpy as np

from engine.brokers._bt_accounting import Accounting
from engine.brokers._bt_position import BtPosition, dec, num2date, optional_price, parse_side, positive
from engine.brokers._bt_predictions import PredictionSources
from engine.brokers._bt_strategy import StrategyPluginRunner
from engine.data.market_data import MarketData
from engine.errors import ConfigError, DomainError
from engine.plugins.base import BrokerPlugin, Plugin
from engine.prediction.types import PREDICTION_TYPES, PredictionProvider, PredictionResult
from engine.types import OrderResult, OrderStatus, PositionView, Side

logger = logging.getLogger(__name__)

__all__ = ["BacktraderBroker", "StrategyPluginRunner"]


class _BrokerPluginMeta(type(bt.brokers.BackBroker), ABCMeta):  # type: ignore[misc]
    """backtrader's params metaclass combined with the ABC metaclass of the plugin bases."""


class BacktraderBroker(bt.brokers.BackBroker, BrokerPlugin, metaclass=_BrokerPluginMeta):
    """A backtrader broker with switchable prediction sources; see the module docstring."""

    plugin_params: ClassVar[dict[str, Any]] = {
        "cash": 10000.0,
        "commission": 0.0,  # fraction of traded value per side (backtrader's percentage commission)
        "leverage": 1.0,
        "slippage_perc": 0.0,  # fraction of price, against the trader
        "prediction_source": "csv",  # csv | api: the source used until a switch
        "prediction_csv": None,  # OHLC CSV for csv mode (default: the bound data feed's frame)
        "prediction_provider_url": "http://127.0.0.1:8001",
        "prediction_api_key": None,
        "prediction_timeout_s": 10.0,
    }
    plugin_debug_vars: ClassVar[list[str]] = [
        "cash", "commission", "leverage", "slippage_perc", "prediction_source", "prediction_csv",
        "prediction_provider_url",
    ]
    plugin_url_params: ClassVar[tuple[str, ...]] = ("prediction_provider_url",)
    plugin_path_params: ClassVar[tuple[str, ...]] = ("prediction_csv",)
    plugin_secret_params: ClassVar[tuple[str, ...]] = ("prediction_api_key",)

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        bt.brokers.BackBroker.__init__(self)  # the metaclass has set self.p already
        Plugin.__init__(self, config)  # self.params: the plugin dict (backtrader reads self.p)
        self._apply_params()
        self._sources = PredictionSources()
        self._accounting = Accounting()
        self._owner: bt.Strategy | None = None
        self._positions: dict[str, BtPosition] = {}
        self._by_order_ref: dict[int, tuple[str, str]] = {}  # order ref -> (position id, role)
        self._results: dict[str, OrderResult] = {}
        self._close_ids: itertools.count = itertools.count(1)

    # ---- configuration --------------------------------------------------------------
    def set_params(self, **kwargs: Any) -> None:
        super().set_params(**kwargs)
        if hasattr(self, "_sources"):
            self._apply_params()

    def _apply_params(self) -> None:
        try:
            cash = float(self.params["cash"])
            commission = float(self.params["commission"])
            leverage = float(self.params["leverage"])
            slippage = float(self.params["slippage_perc"])
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"backtrader_broker: cash, commission, leverage and slippage_perc must be numbers ({exc})"
            ) from None
        if cash <= 0 or commission < 0 or leverage <= 0 or slippage < 0:
            raise ConfigError(
                f"backtrader_broker: need cash > 0, commission >= 0, leverage > 0, slippage_perc >= 0; "
                f"got cash={cash}, commission={commission}, leverage={leverage}, slippage_perc={slippage}"
            )
        self.p.cash = cash  # backtrader resets its cash from self.p.cash when cerebro starts
        self.set_cash(cash)
        self.setcommission(commission=commission, leverage=leverage)
        if slippage:
            self.set_slippage_perc(slippage)

    def bind(self, strategy: bt.Strategy) -> None:
        """Make ``strategy`` the owner of orders placed through the plugin contract."""
        self._owner = strategy

    # ---- backtrader hooks -------------------------------------------------------------
    def start(self) -> None:
        super().start()
        self._accounting.reset()
        self._positions.clear()
        self._by_order_ref.clear()
        self._results.clear()

    def next(self) -> None:
        super().next()
        self._accounting.on_bar(self.getvalue())

    def notify(self, order: bt.Order) -> None:
        super().notify(order)
        if order.status == bt.Order.Completed:
            after = self.getposition(order.data).size
            self._accounting.on_execution(
                order.data._name or "data0", after - order.executed.size, after,
                float(order.executed.pnl), float(order.executed.comm),
            )
        tracked = self._by_order_ref.get(order.ref)
        if tracked is not None:
            self._follow(order, *tracked)

    # ---- predictions (INT-09) ---------------------------------------------------------
    def switch_prediction_source(self, source: str | PredictionProvider, **options: Any) -> str:
        """Use ``source`` from now on: ``"csv"`` (``path=`` or ``data=``), ``"api"`` (``url=``,
        ``api_key=``, client settings) or a ``PredictionProvider``. Returns the source's name."""
        return self._sources.switch(source, self._bar_time(), outbound=self.outbound, **options)

    def get_predictions(
        self, symbol: str | None = None, at: datetime | None = None, types: tuple[str, ...] = PREDICTION_TYPES
    ) -> PredictionResult:
        """Predictions for ``symbol`` (default: the bound strategy's data) at ``at`` (default:
        the current bar's time) from the current source."""
        if self._sources.current is None:
            self._start_default_source()
        data = self._default_data()
        symbol = symbol or (data._name if data is not None else None)
        at = at or self._bar_time()
        if not symbol or at is None:
            raise DomainError("backtrader_broker: predictions need a symbol and a bar time (bind a strategy first)")
        return self._sources.get(symbol, at, types)

    @property
    def prediction_source(self) -> str | None:
        return self._sources.current

    def _start_default_source(self) -> None:
        source = str(self.params["prediction_source"]).lower()
        if source == "api":
            self._sources.switch("api", self._bar_time(), outbound=self.outbound, **{
                "url": self.params["prediction_provider_url"],
                "api_key": self.params["prediction_api_key"],
                "timeout_s": float(self.params["prediction_timeout_s"]),
            })
        elif source == "csv":
            path = self.user_path("prediction_csv")  # inside data_dir when the runtime says so
            options: dict[str, Any] = {"path": path} if path else {"data": self.feed_market_data()}
            self._sources.switch("csv", self._bar_time(), **options)
        else:
            raise ConfigError(f"backtrader_broker: prediction_source must be 'csv' or 'api', got {source!r}")

    def feed_market_data(self) -> MarketData:
        """The bound data feed's pandas frame as MarketData (csv mode without prediction_csv)."""
        data = self._default_data()
        frame = getattr(getattr(data, "p", None), "dataname", None)
        if frame is None or not hasattr(frame, "columns"):
            raise ConfigError(
                "backtrader_broker: csv predictions need the prediction_csv key, "
                "or a bound strategy whose first feed is a pandas frame (bt.feeds.PandasData)"
            )
        cols = {c.lower(): c for c in frame.columns}
        try:
            index = frame.index.tz_localize("UTC") if frame.index.tz is None else frame.index.tz_convert("UTC")
            return MarketData(
                symbol=data._name or "data0",
                timestamps=index.as_unit("ns").asi8.astype(np.int64),
                **{k: frame[cols[k]].to_numpy(dtype=np.float64) for k in ("open", "high", "low", "close")},
            )
        except (KeyError, AttributeError) as exc:
            raise ConfigError(f"backtrader_broker: the data feed's frame lacks OHLC columns or a datetime index ({exc})") from None

    # ---- BrokerPlugin contract --------------------------------------------------------
    def execute_order(self, action: str, parameters: Mapping[str, Any]) -> OrderResult:
        """Seed §3 entry point inside cerebro: ``open`` / ``close`` / ``modify``."""
        handlers: dict[str, Callable[[Mapping[str, Any]], OrderResult]] = {
            "open": self.open_order, "close": self.close_order, "modify": self.modify_order,
        }
        handler = handlers.get(str(action).lower())
        if handler is None:
            raise DomainError(f"backtrader_broker: unknown action {action!r}; expected one of {', '.join(handlers)}")
        return handler(parameters)

    def open_order(self, parameters: Mapping[str, Any]) -> OrderResult:
        """Submit a market order (bracketed with SL/TP when given); fills at the next bar's open."""
        cid = str(parameters.get("client_order_id") or f"bt-open-{len(self._positions) + 1}")
        if cid in self._results:
            return self._results[cid]
        owner = self._require_owner()
        data = self._data_for(parameters)
        side = parse_side(parameters.get("side"))
        size = positive(parameters.get("quantity"), "quantity")
        sl = optional_price(parameters.get("sl"), "sl")
        tp = optional_price(parameters.get("tp"), "tp")
        sl_distance = optional_price(parameters.get("sl_distance"), "sl_distance")
        tp_distance = optional_price(parameters.get("tp_distance"), "tp_distance")
        for name, level, distance in (("sl", sl, sl_distance), ("tp", tp, tp_distance)):
            if level is not None and distance is not None:
                raise DomainError(f"backtrader_broker open: give {name} or {name}_distance, not both")
        enter = self.buy if side is Side.BUY else self.sell
        leave = self.sell if side is Side.BUY else self.buy
        main = enter(owner, data, size, exectype=bt.Order.Market, transmit=sl is None and tp is None)
        position = BtPosition(str(main.ref), cid, data, side, size, main, sl=sl, tp=tp,
                             sl_distance=sl_distance, tp_distance=tp_distance)
        self._positions[position.position_id] = position
        self._by_order_ref[main.ref] = (position.position_id, "main")
        if sl is not None:
            position.sl_order = leave(owner, data, size, price=sl, exectype=bt.Order.Stop, parent=main, transmit=tp is None)
            self._by_order_ref[position.sl_order.ref] = (position.position_id, "sl")
        if tp is not None:
            position.tp_order = leave(owner, data, size, price=tp, exectype=bt.Order.Limit, parent=main, transmit=True)
            self._by_order_ref[position.tp_order.ref] = (position.position_id, "tp")
        result = position.open_result()
        self._results[cid] = result
        logger.info(
            "backtrader_broker: %s %s x%s submitted (position %s, client id %s)",
            side, data._name, size, position.position_id, cid,
        )
        return result

    def close_order(self, parameters: Mapping[str, Any]) -> OrderResult:
        """Close position ``position_id`` at market (next bar's open); cancels its SL/TP."""
        position = self._position(parameters)
        cid = str(parameters.get("client_order_id") or f"bt-close-{position.position_id}-{next(self._close_ids)}")
        if cid in self._results:
            return self._results[cid]
        if position.state == "pending":
            self.cancel(position.main)  # cancels the bracket's children too
            position.state, position.close_reason = "closed", "cancelled before fill"
            result = OrderResult(success=True, client_order_id=cid, position_id=position.position_id,
                                 status=OrderStatus.CANCELLED, reason="cancelled before fill")
        elif position.state != "open" or position.close_order is not None:
            result = OrderResult(success=False, client_order_id=cid, position_id=position.position_id,
                                 status=OrderStatus.REJECTED, reason=f"position {position.position_id} is {position.state}")
        else:
            self._cancel_exits(position)
            leave = self.sell if position.side is Side.BUY else self.buy
            position.close_order = leave(self._require_owner(), position.data, position.size, exectype=bt.Order.Market)
            position.close_client_id = cid
            self._by_order_ref[position.close_order.ref] = (position.position_id, "close")
            result = OrderResult(success=True, client_order_id=cid, order_id=str(position.close_order.ref),
                                 position_id=position.position_id, status=OrderStatus.PENDING,
                                 side=position.side.opposite, quantity=dec(position.size))
        self._results[cid] = result
        return result

    def modify_order(self, parameters: Mapping[str, Any]) -> OrderResult:
        """Replace the SL/TP of an open position by a new OCO pair (``None`` removes one)."""
        position = self._position(parameters)
        cid = parameters.get("client_order_id")
        if position.state != "open" or position.close_order is not None:
            return OrderResult(success=False, client_order_id=cid, position_id=position.position_id,
                               status=OrderStatus.REJECTED,
                               reason=f"position {position.position_id} is {position.state}; only open positions can be modified")
        if "sl" not in parameters and "tp" not in parameters:
            raise DomainError("backtrader_broker modify: give 'sl' and/or 'tp' (None removes one)")
        sl = optional_price(parameters["sl"], "sl") if "sl" in parameters else position.sl
        tp = optional_price(parameters["tp"], "tp") if "tp" in parameters else position.tp
        self._cancel_exits(position)
        self._place_exits(position, sl, tp)
        return OrderResult(success=True, client_order_id=cid, position_id=position.position_id, status=OrderStatus.OPEN)

    def get_open_orders(self) -> list[PositionView]:
        """Positions opened through the contract that are filled and not closed."""
        return [p.view() for p in self._positions.values() if p.state == "open"]

    def get_order_result(self, client_order_id: str) -> OrderResult | None:
        """The latest known result for a client order id (follows pending orders to their fill)."""
        return self._results.get(client_order_id)

    def get_position(self, position_id: str) -> PositionView:
        """Any position opened through the contract (open, closed or rejected)."""
        return self._position({"position_id": position_id}).view()

    # ---- reporting --------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        """Performance of the run so far plus the prediction-source record."""
        report = self._accounting.metrics(float(self.startingcash))
        report.update(self._sources.summary())
        return report

    def get_debug_info(self) -> dict[str, Any]:
        info = super().get_debug_info()
        info.update(self._sources.summary())
        return info

    def close(self) -> None:
        """Release the prediction providers (HTTP pools)."""
        self._sources.close()

    # ---- internals --------------------------------------------------------------------
    def _require_owner(self) -> bt.Strategy:
        if self._owner is None:
            raise DomainError("backtrader_broker: no strategy bound; call self.broker.bind(self) in the strategy's start()")
        return self._owner

    def _default_data(self) -> Any:
        return self._owner.datas[0] if self._owner is not None and self._owner.datas else None

    def _bar_time(self) -> datetime | None:
        data = self._default_data()
        if data is None or len(data) == 0:
            return None
        return num2date(data.datetime[0])

    def _data_for(self, parameters: Mapping[str, Any]) -> Any:
        owner = self._require_owner()
        if parameters.get("data") is not None:
            return parameters["data"]
        symbol = parameters.get("symbol")
        if symbol is None:
            return owner.datas[0]
        for data in owner.datas:
            if data._name == symbol:
                return data
        names = ", ".join(str(d._name) for d in owner.datas)
        raise DomainError(f"backtrader_broker: no data feed named {symbol!r} in cerebro (feeds: {names})")

    def _position(self, parameters: Mapping[str, Any]) -> BtPosition:
        position_id = parameters.get("position_id")
        if position_id is None:
            raise DomainError("backtrader_broker: parameters need 'position_id'")
        position = self._positions.get(str(position_id))
        if position is None:
            raise DomainError(f"backtrader_broker: unknown position {position_id!r}")
        return position

    def _place_exits(self, position: BtPosition, sl: float | None, tp: float | None) -> None:
        """Stop and limit exits for a filled position, as an OCO pair."""
        owner, leave = self._require_owner(), (self.sell if position.side is Side.BUY else self.buy)
        position.sl, position.tp = sl, tp
        if sl is not None:
            position.sl_order = leave(owner, position.data, position.size, price=sl, exectype=bt.Order.Stop)
            self._by_order_ref[position.sl_order.ref] = (position.position_id, "sl")
        if tp is not None:
            position.tp_order = leave(owner, position.data, position.size, price=tp, exectype=bt.Order.Limit,
                                      oco=position.sl_order)
            self._by_order_ref[position.tp_order.ref] = (position.position_id, "tp")

    def _place_distance_exits(self, position: BtPosition) -> None:
        """Turn SL/TP distances into levels around the entry fill; kept levels win."""
        entry, sign = float(position.entry_price), position.side.sign
        sl = position.sl if position.sl_distance is None else entry - sign * position.sl_distance
        tp = position.tp if position.tp_distance is None else entry + sign * position.tp_distance
        # levels already attached to the bracket stay; only the distance-based ones are new
        if position.sl_order is not None or position.tp_order is not None:
            self._cancel_exits(position)
        self._place_exits(position, sl, tp)

    def _cancel_exits(self, position: BtPosition) -> None:
        for order in (position.sl_order, position.tp_order):
            if order is not None and order.alive():
                self.cancel(order, bracket=True)  # bracket=True: leave the siblings to us
        position.sl_order = position.tp_order = None

    def _follow(self, order: bt.Order, position_id: str, role: str) -> None:
        """Update a tracked position from a backtrader order notification."""
        position = self._positions[position_id]
        status = order.status
        if status == bt.Order.Completed:
            if role == "main":
                position.state = "open"
                position.entry_price = float(order.executed.price)
                position.opened_at = num2date(order.executed.dt)
                position.commission += float(order.executed.comm)
                if position.sl_distance is not None or position.tp_distance is not None:
                    self._place_distance_exits(position)
                self._results[position.client_order_id] = position.open_result()
            else:
                position.state = "closed"
                position.close_price = float(order.executed.price)
                position.closed_at = num2date(order.executed.dt)
                position.pnl = float(order.executed.pnl)
                position.commission += float(order.executed.comm)
                position.close_reason = {"sl": "sl", "tp": "tp"}.get(role, "signal")
                if role != "close":
                    self._cancel_exits(position)
                    if position.close_order is not None and position.close_order.alive():
                        self.cancel(position.close_order)
                if position.close_client_id:
                    self._results[position.close_client_id] = position.close_result(position.close_client_id)
        elif status in (bt.Order.Margin, bt.Order.Rejected) and role in ("main", "close"):
            reason = f"backtrader: {order.getstatusname()}"
            if role == "main":
                position.state, position.close_reason = "rejected", reason
                self._results[position.client_order_id] = OrderResult(
                    success=False, client_order_id=position.client_order_id, order_id=position.position_id,
                    position_id=position.position_id, status=OrderStatus.REJECTED, reason=reason,
                )
            else:
                position.close_order = None
                if position.close_client_id:
                    self._results[position.close_client_id] = OrderResult(
                        success=False, client_order_id=position.close_client_id, position_id=position.position_id,
                        status=OrderStatus.REJECTED, reason=reason,
                    )
