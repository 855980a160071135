"""Broker plugins (entry-point group ``lts.broker``), all answering the seed's
``execute_order(action, parameters)``:

* ``default_broker`` (:mod:`engine.brokers.default_broker`): in-memory, immediate fills,
  Decimal accounting, fault injection only when configured;
* ``backtrader_simulation_broker`` (:mod:`engine.brokers.simulation_broker`): a simulated
  account with spread, slippage, commission, swap, margin and SL/TP, driven bar by bar
  with the same fill rules as the backtest (``engine.backtest``);
* ``backtrader_broker`` and ``oanda_broker``: a broker inside a backtrader Cerebro and
  the OANDA v20 REST broker.

Modules are imported on demand by the plugin loader; nothing is imported here.
"""
