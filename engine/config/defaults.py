"""``DEFAULT_VALUES``: every global config key and its default, in one place (seed §1.2).

Pass 1 of the merge starts from these values; plugin parameters (pass 2) sit below them.
The type of each default is the key's type when the merged config is validated, unless
``engine.config.schema.GLOBAL_TYPES`` declares it more precisely (e.g. ``str | None``).
A new global key gets a line here, with a comment saying what it is for.
"""

from __future__ import annotations

from typing import Any

DEFAULT_VALUES: dict[str, Any] = {
    # Plugins, one per entry-point group (seed defaults).
    "aaa_plugin": "default_aaa",
    "core_plugin": "default_core",
    "pipeline_plugin": "default_pipeline",
    "strategy_plugin": "default_strategy",
    "broker_plugin": "default_broker",
    "portfolio_plugin": "default_portfolio",
    # API gateway.
    "api_host": "127.0.0.1",
    "api_port": 8000,
    # Persistence.
    "database_url": "sqlite:///./lts.db",
    # Engine schedule: seconds between heartbeats.
    "global_latency": 1.0,
    # "simulation" or "live".
    "mode": "simulation",
    # Ray: None starts a local cluster; "auto" or "HOST:PORT" joins one.
    "ray_address": None,
    "ray_namespace": "lts",
    "log_level": "INFO",
    "data_dir": "./data",
    # The server's own state (the generated JWT secret), created 0700. Never inside
    # data_dir, where users name files (checked at startup: engine.user_paths).
    "state_dir": "./.lts",
    # Where `lts backtest` and POST /api/backtests write reports (one folder per batch).
    "backtest_dir": "./backtest_results",
    # Prediction provider (external service).
    "prediction_provider_url": "http://127.0.0.1:8001",
    "prediction_api_key": None,
    "prediction_timeout_s": 10.0,
    # Hosts a user's asset config may make the server call (broker api_url, prediction URLs):
    # "host" (https, port 443), "host:port", or "http://host:port" for plain http to a
    # non-loopback host. The host of prediction_provider_url is always allowed. See engine.outbound.
    "outbound_hosts": ["api-fxpractice.oanda.com", "api-fxtrade.oanda.com"],
    # Portfolio ids whose assets may trade with the operator's own broker credentials
    # (OANDA_ACCESS_TOKEN / OANDA_ACCOUNT_ID in the engine's environment) when an asset
    # brings none of its own. Empty: no portfolio may. See engine.credentials.
    "operator_broker_portfolios": [],
    # Auth (jwt_secret must be given for `lts run`; never commit one).
    "jwt_secret": None,
    "access_token_minutes": 30,
    "refresh_token_days": 7,
    # Gateway security.
    "cors_origins": [],
    "rate_limit_per_minute": 60,
    "max_body_bytes": 1048576,
    # Persistence actor batching. No wait for a lone write by default: a commit is cheaper
    # than the wait, and under load the queue is never empty, so batches form anyway
    # (figures: bench/RESULTS.md).
    "persistence_batch_size": 100,
    "persistence_batch_delay_ms": 0,
    # Supervision of asset actors.
    "max_asset_restarts": 5,
    "restart_window_s": 60.0,
    "step_timeout_s": 10.0,
    # Actor runtime: host strategies in shared StrategyActors instead of inside each asset actor.
    "strategy_actors": False,
    # Actor runtime: steps a portfolio supervisor runs at once (null: 2 per CPU of the Ray
    # cluster, at least 4; 0: no limit). See actors.supervisor.default_steps_in_flight.
    "max_steps_in_flight": None,
    # Actor runtime, free-running simulations (latency 0): bars an asset actor steps in one
    # call from its supervisor (1: a call per bar), and the call's time budget: a call ends
    # after the bar that spends it, so a hold bar costs no actor hop at all. A stop or a
    # reload still ends a call after the current bar. The budget is longer than an order
    # step under load, so a call does not end on its first order step (bench/RESULTS.md).
    "simulation_bars_per_call": 64,
    "simulation_call_budget_ms": 100,
    # Actor runtime, a paced simulation (latency > 0 replaying a CSV): when a cycle takes
    # longer than the latency, the next one steps each late asset through the bars it owes
    # (up to simulation_bars_per_call, in one call), so the replay keeps one bar per
    # latency whenever the machine can. false: one bar per cycle however late. Live
    # portfolios always step once per cycle. See actors.pace.
    "paced_catch_up": True,
}

PLUGIN_KEYS: tuple[str, ...] = (
    "aaa_plugin",
    "core_plugin",
    "pipeline_plugin",
    "strategy_plugin",
    "broker_plugin",
    "portfolio_plugin",
)
"""The keys naming the configured plugin of each group."""
