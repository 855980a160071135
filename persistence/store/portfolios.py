"""Portfolios and assets: create, update (plugin configs, allocation), (de)activate, remove."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.config.schema import is_secret_key
from engine.errors import DomainError, NotFound
from engine.types import to_decimal, utcnow
from persistence.enums import AssetStatus, PortfolioStatus
from persistence.models import Asset, Portfolio
from persistence.records import (
    AssetCreate,
    AssetRecord,
    AssetUpdate,
    AuditContext,
    PortfolioCreate,
    PortfolioRecord,
    PortfolioUpdate,
)
from persistence.store._replay import nothing, target_record
from persistence.store._unit import Change, UnitOfWork, coerce, write_op

_portfolio_replay = target_record(Portfolio, PortfolioRecord)
_asset_replay = target_record(Asset, AssetRecord)

_PLUGIN_KINDS = ("strategy", "broker", "pipeline")


def _jsonable(value: Any) -> Any:
    """Audit details hold Decimals as strings (exact), everything else as is."""
    return str(value) if isinstance(value, Decimal) else value


def _audited(name: str, value: Any) -> Any:
    """A value as its audit row shows it: in a plugin config, a credential-looking key's
    value is hidden (a row written before credentials were kept apart may hold one)."""
    if name.endswith("_config") and isinstance(value, dict):
        return {k: "********" if v is not None and is_secret_key(str(k)) else v for k, v in value.items()}
    return _jsonable(value)


def _apply_changes(obj: Any, changes: dict[str, Any]) -> dict[str, Any]:
    """Set changed attributes; return ``{field: {"from": old, "to": new}}`` for the audit."""
    diff: dict[str, Any] = {}
    for name, new in changes.items():
        old = getattr(obj, name)
        if old != new:
            setattr(obj, name, new)
            diff[name] = {"from": _audited(name, old), "to": _audited(name, new)}
    return diff


class PortfolioOps(UnitOfWork):
    def _forget_batch_orders(self) -> None:
        batch = self._current_batch()
        if batch is not None:
            batch.forget_orders()

    def _asset_for(self, session: Session, ctx: AuditContext, asset_id: int) -> Asset:
        asset = session.get(Asset, asset_id)
        if asset is None:
            raise NotFound(f"asset {asset_id} not found")
        try:
            self._portfolio_for(session, ctx, asset.portfolio_id)
        except NotFound:
            raise NotFound(f"asset {asset_id} not found") from None
        return asset

    # ------------------------------------------------------------------ portfolios

    @write_op("portfolios")
    def create_portfolio(
        self,
        ctx: AuditContext,
        spec: PortfolioCreate | dict[str, Any],
        *,
        owner_id: int | None = None,
    ) -> PortfolioRecord:
        """Create an (inactive) portfolio owned by ``owner_id`` (default: the caller)."""
        spec = coerce(PortfolioCreate, spec, "portfolio")
        owner = owner_id if owner_id is not None else ctx.user_id
        if owner is None:
            raise DomainError("owner_id: a portfolio needs an owner")
        if owner != ctx.user_id and not (ctx.is_system or ctx.is_admin):
            raise DomainError("owner_id: only an administrator may create for another user")

        def apply(session: Session) -> Change[PortfolioRecord]:
            from persistence.models import User

            if session.get(User, owner) is None:
                raise NotFound(f"user {owner} not found")
            clash = session.scalar(
                select(Portfolio.id).where(Portfolio.owner_id == owner, Portfolio.name == spec.name)
            )
            if clash is not None:
                raise DomainError(f"name: a portfolio named {spec.name!r} already exists")
            portfolio = Portfolio(owner_id=owner, **spec.model_dump())
            session.add(portfolio)
            session.flush()
            return Change(
                PortfolioRecord.model_validate(portfolio),
                "portfolio.create",
                "portfolio",
                portfolio.id,
                {
                    "name": spec.name,
                    "owner_id": owner,
                    "total_capital": str(spec.total_capital),
                    "portfolio_plugin": spec.portfolio_plugin,
                },
            )

        return self._run(ctx, apply, _portfolio_replay)

    @write_op("portfolios")
    def update_portfolio(
        self, ctx: AuditContext, portfolio_id: int, changes: PortfolioUpdate | dict[str, Any]
    ) -> PortfolioRecord:
        """Change the fields given in ``changes`` (others keep their value)."""
        changes = coerce(PortfolioUpdate, changes, "portfolio")

        def apply(session: Session) -> Change[PortfolioRecord]:
            portfolio = self._portfolio_for(session, ctx, portfolio_id)
            wanted = changes.model_dump(exclude_none=True)
            if "name" in wanted and wanted["name"] != portfolio.name:
                clash = session.scalar(
                    select(Portfolio.id).where(
                        Portfolio.owner_id == portfolio.owner_id, Portfolio.name == wanted["name"]
                    )
                )
                if clash is not None:
                    raise DomainError(f"name: a portfolio named {wanted['name']!r} already exists")
            diff = _apply_changes(portfolio, wanted)
            session.flush()
            return Change(
                PortfolioRecord.model_validate(portfolio),
                "portfolio.update",
                "portfolio",
                portfolio_id,
                {"changes": diff},
            )

        return self._run(ctx, apply, _portfolio_replay)

    def _set_portfolio_state(
        self, ctx: AuditContext, portfolio_id: int, active: bool, action: str
    ) -> PortfolioRecord:
        def apply(session: Session) -> Change[PortfolioRecord]:
            portfolio = self._portfolio_for(session, ctx, portfolio_id)
            before = portfolio.status
            portfolio.is_active = active
            portfolio.status = (PortfolioStatus.ACTIVE if active else PortfolioStatus.INACTIVE).value
            session.flush()
            return Change(
                PortfolioRecord.model_validate(portfolio),
                action,
                "portfolio",
                portfolio_id,
                {"from": before, "to": portfolio.status},
            )

        return self._run(ctx, apply, _portfolio_replay)

    @write_op("portfolios")
    def activate_portfolio(self, ctx: AuditContext, portfolio_id: int) -> PortfolioRecord:
        return self._set_portfolio_state(ctx, portfolio_id, True, "portfolio.activate")

    @write_op("portfolios")
    def deactivate_portfolio(self, ctx: AuditContext, portfolio_id: int) -> PortfolioRecord:
        return self._set_portfolio_state(ctx, portfolio_id, False, "portfolio.deactivate")

    @write_op("portfolios")
    def mark_portfolio_errored(
        self, ctx: AuditContext, portfolio_id: int, reason: str
    ) -> PortfolioRecord:
        """The runtime gave up on a portfolio: inactive with status ``errored``."""

        def apply(session: Session) -> Change[PortfolioRecord]:
            portfolio = self._portfolio_for(session, ctx, portfolio_id)
            portfolio.is_active = False
            portfolio.status = PortfolioStatus.ERRORED.value
            session.flush()
            return Change(
                PortfolioRecord.model_validate(portfolio),
                "portfolio.errored",
                "portfolio",
                portfolio_id,
                {"reason": reason},
            )

        return self._run(ctx, apply, _portfolio_replay)

    @write_op("portfolios")
    def delete_portfolio(self, ctx: AuditContext, portfolio_id: int) -> None:
        """Delete an inactive portfolio with its assets, orders, positions and statistics."""

        def apply(session: Session) -> Change[None]:
            portfolio = self._portfolio_for(session, ctx, portfolio_id)
            if portfolio.is_active:
                raise DomainError(f"portfolio {portfolio_id} is active: deactivate it first")
            name = portfolio.name
            session.delete(portfolio)
            return Change(
                None, "portfolio.delete", "portfolio", portfolio_id, {"name": name},
                after=self._forget_batch_orders,
            )

        self._run(ctx, apply, nothing)

    # ------------------------------------------------------------------ assets

    @write_op("assets")
    def create_asset(
        self, ctx: AuditContext, portfolio_id: int, spec: AssetCreate | dict[str, Any]
    ) -> AssetRecord:
        """Add an (inactive) asset to a portfolio."""
        spec = coerce(AssetCreate, spec, "asset")

        def apply(session: Session) -> Change[AssetRecord]:
            self._portfolio_for(session, ctx, portfolio_id)
            clash = session.scalar(
                select(Asset.id).where(Asset.portfolio_id == portfolio_id, Asset.symbol == spec.symbol)
            )
            if clash is not None:
                raise DomainError(
                    f"symbol: portfolio {portfolio_id} already has an asset {spec.symbol!r}"
                )
            asset = Asset(portfolio_id=portfolio_id, **spec.model_dump())
            session.add(asset)
            session.flush()
            return Change(
                AssetRecord.model_validate(asset),
                "asset.create",
                "asset",
                asset.id,
                {
                    "portfolio_id": portfolio_id,
                    "symbol": spec.symbol,
                    "strategy_plugin": spec.strategy_plugin,
                    "broker_plugin": spec.broker_plugin,
                    "pipeline_plugin": spec.pipeline_plugin,
                    "allocated_capital": str(spec.allocated_capital),
                    # which credentials were stored, never their (encrypted) values
                    "broker_secrets": sorted(spec.broker_secrets or {}),
                },
            )

        return self._run(ctx, apply, _asset_replay)

    def _change_asset(
        self, ctx: AuditContext, asset_id: int, wanted: dict[str, Any], action: str
    ) -> AssetRecord:
        def apply(session: Session) -> Change[AssetRecord]:
            asset = self._asset_for(session, ctx, asset_id)
            if "symbol" in wanted and wanted["symbol"] != asset.symbol:
                clash = session.scalar(
                    select(Asset.id).where(
                        Asset.portfolio_id == asset.portfolio_id, Asset.symbol == wanted["symbol"]
                    )
                )
                if clash is not None:
                    raise DomainError(f"symbol: portfolio already has an asset {wanted['symbol']!r}")
            diff = _apply_changes(asset, wanted)
            if "broker_secrets" in diff:  # the audit names the credentials, never their values
                diff["broker_secrets"] = {"from": sorted(diff["broker_secrets"]["from"] or {}),
                                          "to": sorted(diff["broker_secrets"]["to"] or {})}
            session.flush()
            return Change(
                AssetRecord.model_validate(asset),
                action,
                "asset",
                asset_id,
                {"portfolio_id": asset.portfolio_id, "changes": diff},
            )

        return self._run(ctx, apply, _asset_replay)

    @write_op("assets")
    def update_asset(
        self, ctx: AuditContext, asset_id: int, changes: AssetUpdate | dict[str, Any]
    ) -> AssetRecord:
        """Change the fields given in ``changes`` (others keep their value)."""
        changes = coerce(AssetUpdate, changes, "asset")
        return self._change_asset(ctx, asset_id, changes.model_dump(exclude_none=True), "asset.update")

    def _set_plugin(
        self, ctx: AuditContext, asset_id: int, kind: str, plugin: str | None, config: dict[str, Any] | None,
        secrets: dict[str, str] | None = None,
    ) -> AssetRecord:
        if plugin is not None and not (0 < len(plugin) <= 64):
            raise DomainError(f"{kind}_plugin: must be 1 to 64 characters")
        if config is not None and not isinstance(config, dict):
            raise DomainError(f"{kind}_config: must be a JSON object")
        wanted: dict[str, Any] = {}
        if plugin is not None:
            wanted[f"{kind}_plugin"] = plugin
        if config is not None:
            wanted[f"{kind}_config"] = config
        if secrets is not None:
            if not isinstance(secrets, dict) or not all(isinstance(v, str) for v in secrets.values()):
                raise DomainError(f"{kind}_secrets: must map names to encrypted strings")
            wanted[f"{kind}_secrets"] = secrets or None
        if not wanted:
            raise DomainError(f"set_asset_{kind}: give a plugin name, a config or both")
        return self._change_asset(ctx, asset_id, wanted, f"asset.{kind}_change")

    @write_op("assets")
    def set_asset_strategy(
        self, ctx: AuditContext, asset_id: int, *, plugin: str | None = None, config: dict[str, Any] | None = None
    ) -> AssetRecord:
        return self._set_plugin(ctx, asset_id, "strategy", plugin, config)

    @write_op("assets")
    def set_asset_broker(
        self, ctx: AuditContext, asset_id: int, *, plugin: str | None = None, config: dict[str, Any] | None = None,
        secrets: dict[str, str] | None = None,
    ) -> AssetRecord:
        """``secrets``: the asset's encrypted credentials after the change (None keeps
        them, ``{}`` removes them all)."""
        return self._set_plugin(ctx, asset_id, "broker", plugin, config, secrets)

    @write_op("assets")
    def set_asset_pipeline(
        self, ctx: AuditContext, asset_id: int, *, plugin: str | None = None, config: dict[str, Any] | None = None
    ) -> AssetRecord:
        return self._set_plugin(ctx, asset_id, "pipeline", plugin, config)

    @write_op("assets")
    def set_asset_allocation(
        self,
        ctx: AuditContext,
        asset_id: int,
        *,
        allocated_capital: Decimal | float | str | int,
        max_positions: int | None = None,
    ) -> AssetRecord:
        """Set the capital the portfolio gives this asset (and optionally max positions)."""
        try:
            capital = to_decimal(allocated_capital)
        except ValueError as exc:
            raise DomainError(f"allocated_capital: {exc}") from None
        if capital is None or not capital.is_finite() or capital < 0:
            raise DomainError(f"allocated_capital: must be a number >= 0, got {allocated_capital!r}")
        wanted: dict[str, Any] = {"allocated_capital": capital}
        if max_positions is not None:
            if max_positions < 1:
                raise DomainError(f"max_positions: must be >= 1, got {max_positions}")
            wanted["max_positions"] = max_positions
        return self._change_asset(ctx, asset_id, wanted, "asset.allocation_change")

    @write_op("assets")
    def activate_asset(self, ctx: AuditContext, asset_id: int) -> AssetRecord:
        """Activate an asset (also clears an ``errored`` state)."""
        return self._change_asset(
            ctx,
            asset_id,
            {"is_active": True, "status": AssetStatus.ACTIVE.value, "status_reason": None, "errored_at": None},
            "asset.activate",
        )

    @write_op("assets")
    def deactivate_asset(self, ctx: AuditContext, asset_id: int) -> AssetRecord:
        return self._change_asset(
            ctx, asset_id, {"is_active": False, "status": AssetStatus.INACTIVE.value}, "asset.deactivate"
        )

    @write_op("assets")
    def mark_asset_errored(self, ctx: AuditContext, asset_id: int, reason: str) -> AssetRecord:
        """The supervisor gave up restarting this asset: inactive, status ``errored``."""
        return self._change_asset(
            ctx,
            asset_id,
            {
                "is_active": False,
                "status": AssetStatus.ERRORED.value,
                "status_reason": reason[:1024],
                "errored_at": utcnow(),
            },
            "asset.errored",
        )

    @write_op("assets")
    def delete_asset(self, ctx: AuditContext, asset_id: int) -> None:
        """Remove an inactive asset with its orders, positions and statistics."""

        def apply(session: Session) -> Change[None]:
            asset = self._asset_for(session, ctx, asset_id)
            if asset.is_active:
                raise DomainError(f"asset {asset_id} is active: deactivate it first")
            details = {"portfolio_id": asset.portfolio_id, "symbol": asset.symbol}
            session.delete(asset)
            return Change(None, "asset.delete", "asset", asset_id, details, after=self._forget_batch_orders)

        self._run(ctx, apply, nothing)
