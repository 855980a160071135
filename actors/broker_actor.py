"""``BrokerActor`` (named ``broker``): every order of the engine passes here.

It hosts one broker plugin instance per *account*: assets whose broker plugin and broker
config are equal share an account (a live broker account is one login), while a
bar-driven simulation broker gets one account per asset because each asset walks its
own data. The actor adds what a plugin should not have to care about:

* idempotency by client order id: a repeated id returns the first result, and an id the
  actor was asked about before it arrived (reconciliation after a crash) is refused
  when it finally arrives, so a cancelled intent can never turn into an order;
* retries with exponential backoff and jitter for ``TemporaryError`` only (the same
  client order id is resent, which the plugin must deduplicate); rejections never retry;
* one call at a time per account (plugins are not thread-safe), blocking I/O brokers run
  in a thread so other accounts keep going;
* a record of every result per account, which tests and ``lts status`` compare with the
  database;
* recovery after its own restart: Ray brings the process back (``max_restarts``) but not
  the accounts, so each asset re-attaches (its supervisor watches this actor, see
  ``watch``) and hands ``restore_account`` a journal read from the database
  (``engine.pipeline.replay``): simulation accounts are rebuilt by deterministic replay,
  live accounts learn which client order ids were already sent (a resend is looked up at
  the broker, never placed twice) and which were cancelled by reconciliation.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tenacity import AsyncRetrying, before_sleep_log, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from engine.pipeline.replay import AccountJournal, bar_index
from actors.metrics import engine_metrics, tags
from actors.remote import hot_path
from engine.errors import OrderRejected, TemporaryError
from engine.plugins.base import BrokerPlugin
from engine.types import OrderResult, OrderStatus, PositionView

if TYPE_CHECKING:
    from actors.runtime_settings import RuntimeSettings

logger = logging.getLogger(__name__)

# Bar-driven brokers whose ``on_bar`` never produces results (it only sets the price and
# the clock): an asset may advance them lazily, with its next order, instead of paying an
# actor hop on every hold step.
EVENTLESS_BAR_BROKERS = frozenset({"default_broker"})

# Brokers that only compute in memory: called inline on the actor's event loop (a thread
# hop would cost more than the call). Anything else may block on the network.
INLINE_BROKERS = frozenset({"default_broker", "backtrader_simulation_broker"})


def account_key(
    broker_name: str,
    broker_config: Mapping[str, Any],
    asset_id: Any,
    bar_driven: bool,
    *,
    secrets: Mapping[str, str] | None = None,
    rules: "OperatorRules | None" = None,
) -> str:
    """The account an asset trades on: ``name:hash(config, credentials, rules)``
    (``+asset`` for simulations). Only a hash: the key never shows a credential, and
    assets share an account only when their credentials and the operator's rules for
    them are the same (an asset without credentials never joins one opened with the
    operator's, or with another user's)."""
    identity: Any = dict(broker_config)
    if secrets or rules is not None:
        identity = {"config": identity, "secrets": dict(secrets or {}),
                    "rules": None if rules is None else dataclasses.asdict(rules)}
    blob = json.dumps(identity, sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return f"{broker_name}:{digest}" + (f":asset{asset_id}" if bar_driven else "")


@dataclass(frozen=True, slots=True)
class OperatorRules:
    """What the operator's config lets one asset's broker account do. Built on the
    asset's side (:meth:`for_asset`: it knows the portfolio), enforced here when the
    plugin is created. The defaults are the fail-closed ones."""

    outbound_hosts: tuple[str, ...] | None = None  # None: the default allow-list
    prediction_provider_url: str | None = None
    data_dir: str | None = None
    operator_credentials: bool = False  # the portfolio is in operator_broker_portfolios

    @classmethod
    def for_asset(cls, portfolio_id: int, settings: "RuntimeSettings") -> "OperatorRules":
        from engine.credentials import operator_assigned

        return cls(
            outbound_hosts=settings.outbound_hosts,
            prediction_provider_url=settings.prediction_provider_url,
            data_dir=settings.data_dir,
            operator_credentials=operator_assigned(portfolio_id, settings.engine_config()),
        )

    def config(self) -> dict[str, Any]:
        """As config keys (for ``OutboundPolicy.from_config`` / ``UserPathPolicy.for_config``)."""
        return {k: v for k, v in (("outbound_hosts", self.outbound_hosts),
                                  ("prediction_provider_url", self.prediction_provider_url),
                                  ("data_dir", self.data_dir)) if v is not None}


def create_account_plugin(
    broker_name: str, broker_config: Mapping[str, Any], secrets: Mapping[str, str] | None, rules: OperatorRules
) -> BrokerPlugin:
    """The broker plugin for one account, under the operator's rules: URL and path
    params checked, credentials resolved (the asset's own, decrypted here, or the
    operator's where ``rules`` allow; else a one-line ``ConfigError`` and no request),
    and the plugin told never to read the operator's environment itself."""
    from engine.credentials import resolve_credentials
    from engine.outbound import OutboundPolicy
    from engine.plugins.loader import create_plugin, load_plugin
    from engine.user_paths import UserPathPolicy

    cls = load_plugin("broker", broker_name)
    outbound = OutboundPolicy.from_config(rules.config())
    user_paths = UserPathPolicy.for_config(rules.config())
    cls.check_untrusted_params(broker_config, outbound=outbound, user_paths=user_paths, field="broker_config")
    config = resolve_credentials(broker_name, cls.plugin_secret_params, cls.plugin_operator_env, broker_config,
                                 secrets, operator_allowed=rules.operator_credentials)
    broker = create_plugin("broker", broker_name, config)
    assert isinstance(broker, BrokerPlugin)
    broker.use_operator_policies(outbound=outbound, user_paths=user_paths, operator_env=False)
    return broker


@dataclass(slots=True)
class _Account:
    key: str
    broker_name: str
    broker: BrokerPlugin
    inline: bool
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    results: dict[str, OrderResult] = field(default_factory=dict)  # client order id -> first result
    refused: set[str] = field(default_factory=set)  # ids reconciled as "never received"
    sent_before_restart: set[str] = field(default_factory=set)  # live: ids a dead incarnation sent
    attached: set[Any] = field(default_factory=set)  # assets that opened or restored it in this incarnation
    events: list[OrderResult] = field(default_factory=list)  # broker-initiated results, in order
    closes: dict[str, OrderResult] = field(default_factory=dict)  # position id -> close result
    data: Any = None  # MarketData of a bar-driven account
    cursor: int = -1  # last bar processed (bar-driven brokers)
    finished: bool = False


class BrokerActor:
    """Hosts broker plugin instances keyed by account; see the module docstring."""

    RAY_OPTIONS: dict[str, Any] = {
        "num_cpus": 0,
        "max_restarts": -1,  # the process comes back; the accounts are restored by their assets
        "max_concurrency": 1000,
    }

    def __init__(self, retry_attempts: int = 4, retry_max_wait_s: float = 2.0) -> None:
        self._accounts: dict[str, _Account] = {}
        self._retry_attempts = retry_attempts
        self._retry_max_wait_s = retry_max_wait_s
        self._forever = asyncio.Event()  # never set: ``watch`` fails only when this process dies

    # ----------------------------------------------------------------- accounts

    async def open_account(
        self,
        key: str,
        broker_name: str,
        broker_config: Mapping[str, Any],
        market_data: Any | None = None,
        asset_id: Any = None,
        secrets: Mapping[str, str] | None = None,
        rules: OperatorRules | None = None,
    ) -> dict[str, Any]:
        """Create the account ``key`` unless it exists; returns its cursor, whether it is
        new, and whether ``asset_id`` attached to it before in this incarnation (if not,
        after a restart of this actor, the asset calls ``restore_account``).
        ``market_data`` (a ``MarketData``) feeds bar-driven simulation brokers;
        ``secrets``: the asset's encrypted credentials; ``rules``: the operator's rules
        for this asset (default: the fail-closed ones), see :func:`create_account_plugin`."""
        account = self._accounts.get(key)
        if account is None:
            broker = create_account_plugin(broker_name, broker_config, secrets, rules or OperatorRules())
            account = _Account(key=key, broker_name=broker_name, broker=broker, inline=broker_name in INLINE_BROKERS,
                               data=market_data)
            self._accounts[key] = account
            logger.info("broker account %s opened (%s)", key, broker_name)
            new = True
        else:
            new = False
        attached_before = asset_id in account.attached
        account.attached.add(asset_id)
        return {"cursor": account.cursor, "new": new, "finished": account.finished, "attached_before": attached_before,
                "bar_driven": account.data is not None,
                "lazy_advance": account.broker_name in EVENTLESS_BAR_BROKERS and account.data is not None}

    async def restore_account(self, key: str, journal: AccountJournal) -> dict[str, Any]:
        """Rebuild account ``key`` from an asset's ``journal`` after this actor restarted.

        A bar-driven (simulation) account that has seen nothing yet in this incarnation is
        rebuilt by replaying the journal's orders at their bars, then the bars up to the
        journal's cursor (and the end-of-data close if the simulation had finished). A live
        account records the ids already sent (a resend is looked up, not placed) and the
        refused ones. Returns ``cursor``, ``finished``, ``replayed`` and ``missing``: the
        database's open positions the rebuilt account does not know (a divergence, logged)."""
        account = self._account(key)
        async with account.lock:
            account.refused.update(journal.refused)
            account.attached.add(journal.asset_id)
            replayed, missing = 0, []
            if account.data is None:
                account.sent_before_restart.update(o.client_order_id for o in journal.orders)
            elif account.cursor < 0 and not account.results:
                replayed = self._replay(account, journal)
                known = {p.position_id for p in account.broker.get_open_orders()} | set(account.closes)
                missing = sorted(set(journal.open_position_ids) - known)
                if missing:
                    logger.error("broker account %s: replay of asset %s left the database's open positions %s "
                                 "unknown", key, journal.asset_id, missing)
            logger.info("broker account %s restored for asset %s: %d orders replayed, cursor %d",
                        key, journal.asset_id, replayed, account.cursor)
            return {"cursor": account.cursor, "finished": account.finished, "replayed": replayed, "missing": missing}

    def _replay(self, account: _Account, journal: AccountJournal) -> int:
        """Deterministic replay into a fresh simulation account (lock held)."""
        replayed = 0
        for order in journal.orders:
            if order.bar_ns is not None:
                self._advance_locked(account, bar_index(account.data, order.bar_ns))
            try:
                result = _as_result(account.broker.execute_order(order.action, dict(order.parameters)))
            except OrderRejected as exc:
                result = OrderResult(success=False, client_order_id=order.client_order_id,
                                     status=OrderStatus.REJECTED, reason=str(exc))
            if result.client_order_id is None:
                result = result.model_copy(update={"client_order_id": order.client_order_id})
            account.results[order.client_order_id] = result
            if result.close_price is not None and result.position_id:
                account.closes[result.position_id] = result
            replayed += 1
        self._advance_locked(account, journal.cursor)
        if journal.finished:
            self._finish_locked(account)
        return replayed

    # ----------------------------------------------------------------- orders

    @hot_path
    async def execute_order(
        self, key: str, action: str, parameters: Mapping[str, Any], index: int | None = None
    ) -> OrderResult:
        """The seed's ``execute_order`` on account ``key``, idempotent by client order id.
        ``index``: advance a lazily driven account to that bar first."""
        account = self._account(key)
        cid = str(parameters.get("client_order_id") or "")
        if index is not None:
            await self.advance(key, index)
        async with account.lock:
            if cid and cid in account.results:
                return account.results[cid]
            if cid and cid in account.refused:
                return OrderResult(success=False, client_order_id=cid, status=OrderStatus.REJECTED,
                                   reason="client order id was cancelled by reconciliation")
            if cid and cid in account.sent_before_restart:
                # Sent by the previous incarnation of this actor: look it up, never resend.
                found = await self._plugin_find(account, cid)
                if found is not None:
                    account.results[cid] = found
                    return found
                return OrderResult(success=False, client_order_id=cid, status=OrderStatus.REJECTED,
                                   reason="sent before the broker actor restarted and unknown to the broker now")
            try:
                result = await self._with_retries(account, account.broker.execute_order, action, dict(parameters))
            except OrderRejected as exc:
                result = OrderResult(success=False, client_order_id=cid or None,
                                     status=OrderStatus.REJECTED, reason=str(exc))
            except Exception:
                self._count_error(account)
                raise
            if cid and result.client_order_id is None:
                result = result.model_copy(update={"client_order_id": cid})
            if cid:
                account.results[cid] = result
            if result.close_price is not None and result.position_id:
                account.closes[result.position_id] = result
            return result

    @hot_path
    async def find_order(self, key: str, client_order_id: str) -> OrderResult | None:
        """The first result for ``client_order_id``; if the account never saw it, the id
        is refused from now on (so a late arrival cannot become an order) and ``None``
        comes back."""
        account = self._account(key)
        async with account.lock:
            for event in reversed(account.events):  # a queued order's latest state (its fill)
                if event.client_order_id == client_order_id:
                    return event
            if client_order_id in account.results:
                return account.results[client_order_id]
            if account.data is None:
                # A live broker may know the order although this incarnation never sent it
                # (sent before a restart of this actor): ask it by client order id.
                found = await self._plugin_find(account, client_order_id)
                if found is not None:
                    account.results[client_order_id] = found
                    return found
            account.refused.add(client_order_id)
            return None

    async def _plugin_find(self, account: _Account, client_order_id: str) -> OrderResult | None:
        method = getattr(account.broker, "find_order", None)
        if not callable(method):
            return None
        found = method(client_order_id) if account.inline else await asyncio.to_thread(method, client_order_id)
        return None if found is None else _as_result(found)

    @hot_path
    async def advance(self, key: str, index: int) -> list[OrderResult]:
        """Bar-driven brokers: process bars up to ``index`` (idempotent; a bar already
        processed gives ``[]``). Live brokers: ``[]``."""
        account = self._account(key)
        async with account.lock:
            return self._advance_locked(account, index)

    def _advance_locked(self, account: _Account, index: int) -> list[OrderResult]:
        if index <= account.cursor or account.finished:
            return []
        produced: list[OrderResult] = []
        data = account.data
        if data is not None:
            # Every bar since the last one seen, in order: stops and fills must not skip bars.
            for bar in range(account.cursor + 1, min(index, len(data) - 1) + 1):
                produced.extend(_as_results(account.broker.on_bar(
                    bar, int(data.timestamps[bar]), float(data.open[bar]), float(data.high[bar]),
                    float(data.low[bar]), float(data.close[bar]))))
        account.cursor = index
        self._remember_events(account, produced)
        return produced

    async def finish(self, key: str) -> list[OrderResult]:
        """End of a simulation: close everything at the last close (once)."""
        account = self._account(key)
        async with account.lock:
            return self._finish_locked(account)

    def _finish_locked(self, account: _Account) -> list[OrderResult]:
        if account.finished:
            return []
        account.finished = True
        method = getattr(account.broker, "close_all", None)
        produced = _as_results(method("end")) if account.data is not None and method is not None else []
        # Orders still queued (accepted, to fill at a next bar that never comes) are
        # dropped by the simulation: say so, so their intents do not stay pending forever.
        settled = {r.client_order_id for r in account.events + produced}
        for cid, result in account.results.items():
            if result.status is OrderStatus.PENDING and cid not in settled:
                produced.append(OrderResult(success=False, client_order_id=cid, order_id=result.order_id,
                                            position_id=result.position_id, status=OrderStatus.CANCELLED,
                                            reason="end of data before the order filled"))
        self._remember_events(account, produced)
        return produced

    async def closed_positions(self, key: str, position_ids: Sequence[str]) -> list[OrderResult]:
        """Close results for those of ``position_ids`` that are no longer open here."""
        account = self._account(key)
        async with account.lock:
            open_ids = {p.position_id for p in account.broker.get_open_orders()}
            return [account.closes[pid] for pid in position_ids if pid not in open_ids and pid in account.closes]

    async def quote(self, key: str, symbol: str) -> Decimal:
        """The account's current price for ``symbol`` (live mode's market data)."""
        account = self._account(key)
        async with account.lock:
            for name in ("get_current_price", "get_price", "current_price"):
                method = getattr(account.broker, name, None)
                if callable(method):
                    args = () if name == "current_price" else (symbol,)
                    value = method(*args) if account.inline else await asyncio.to_thread(method, *args)
                    if isinstance(value, Mapping):
                        value = value.get("mid") or value.get("price") or value.get("close")
                    if value is not None:
                        return Decimal(str(value))
        raise TemporaryError(f"broker account {key}: no current price for {symbol} (the broker has no price feed)")

    # ----------------------------------------------------------------- inspection

    async def open_positions(self, key: str) -> list[PositionView]:
        account = self._account(key)
        async with account.lock:
            return list(account.broker.get_open_orders())

    async def records(self, key: str | None = None) -> dict[str, dict[str, list[OrderResult]]]:
        """Every result per account: ``{"orders": [...], "events": [...]}`` (tests, status)."""
        keys = [key] if key is not None else list(self._accounts)
        return {
            k: {"orders": list(self._accounts[k].results.values()), "events": list(self._accounts[k].events)}
            for k in keys
            if k in self._accounts
        }

    async def accounts(self) -> list[str]:
        return list(self._accounts)

    async def ping(self) -> str:
        return "ok"

    async def pid(self) -> int:
        return os.getpid()

    async def watch(self) -> None:
        """Never returns: a supervisor awaits it to learn at once that this actor died
        (and that its assets must re-attach to the restarted one)."""
        await self._forever.wait()

    # ----------------------------------------------------------------- internals

    def _account(self, key: str) -> _Account:
        try:
            return self._accounts[key]
        except KeyError:
            from engine.errors import NotFound

            raise NotFound(f"broker account {key!r} is not open (open_account first)") from None

    def _remember_events(self, account: _Account, produced: list[OrderResult]) -> None:
        account.events.extend(produced)
        for result in produced:
            if result.close_price is not None and result.position_id:
                account.closes[result.position_id] = result

    async def _with_retries(self, account: _Account, fn: Any, *args: Any) -> OrderResult:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TemporaryError),
            wait=wait_random_exponential(multiplier=0.05, max=self._retry_max_wait_s),
            stop=stop_after_attempt(self._retry_attempts),
            before_sleep=before_sleep_log(logger, logging.WARNING),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if account.inline:
                    result = fn(*args)
                else:
                    result = await asyncio.to_thread(fn, *args)
                return _as_result(result)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _count_error(account: _Account) -> None:
        metrics = engine_metrics()
        if metrics is not None:
            metrics.broker_errors.inc(tags=tags(broker=account.broker_name))


def _as_result(value: Any) -> OrderResult:
    return value if isinstance(value, OrderResult) else OrderResult.model_validate(value)


def _as_results(values: Any) -> list[OrderResult]:
    if not values:
        return []
    return [_as_result(v) for v in values]
