"""Trading statistics per portfolio and per asset, computed from the ledger (the
``positions`` and ``orders`` tables) on read: nothing is written for them, so they are
always consistent with the orders and positions the API lists.

Definitions (money exact, as ``Decimal``):

* ``realized_pnl``: the sum of closed positions' ``realized_pnl`` as the ledger recorded it
  at the close; ``unrealized_pnl``: the sum of open positions' last mark.
* ``equity``: capital (the portfolio's ``total_capital``, an asset's ``allocated_capital``)
  + realized + unrealized P&L.
* ``max_drawdown``: the largest fall of equity from its running peak, over the curve of
  capital + realized P&L after each close (in close order) and, last, the current equity;
  ``max_drawdown_pct``: that fall as a fraction of the peak it fell from (null while the
  peak is not positive).
* ``trades``: closed positions (round trips); ``wins``: those with a positive realized
  P&L; ``win_rate``: wins / trades (null without trades). ``orders``: orders the broker executed:
  opening orders (status ``open``) and closing orders (``filled``); pending, rejected and
  cancelled ones are not counted.

One pass over three columns of the closed positions in close order, in Python: money
stays exact ``Decimal`` (SQLite keeps money as text, its SUM would be a float).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from persistence.enums import OrderStatus
from persistence.models import Asset, Order, Portfolio, Position
from persistence.records import Page, PageRequest, Viewer
from persistence.store._unit import UnitOfWork

_RATIO = Decimal("0.000001")
_ZERO = Decimal("0")


@dataclass(frozen=True, slots=True)
class TradingFigures:
    """One portfolio's or one asset's trading statistics (see the module docstring)."""

    capital: Decimal
    equity: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    max_drawdown: Decimal
    max_drawdown_pct: Decimal | None
    trades: int
    wins: int
    losses: int
    win_rate: Decimal | None
    open_positions: int
    orders: int


@dataclass(frozen=True, slots=True)
class AssetTradingStats:
    """An asset's figures."""

    asset_id: int
    symbol: str
    figures: TradingFigures


@dataclass(frozen=True, slots=True)
class PortfolioTradingStats:
    """A portfolio's figures, and each of its assets'."""

    portfolio_id: int
    name: str
    figures: TradingFigures
    assets: tuple[AssetTradingStats, ...]


@dataclass(slots=True)
class _Curve:
    """Running figures of one equity curve."""

    capital: Decimal
    realized: Decimal = _ZERO
    peak: Decimal = _ZERO
    drawdown: Decimal = _ZERO
    drawdown_pct: Decimal | None = None
    trades: int = 0
    wins: int = 0
    losses: int = 0
    unrealized: Decimal = _ZERO
    open_positions: int = 0
    orders: int = 0
    started: bool = field(default=False)

    def point(self, equity: Decimal) -> None:
        if not self.started or equity > self.peak:
            self.peak, self.started = equity, True
        fall = self.peak - equity
        if fall > self.drawdown:
            self.drawdown = fall
            self.drawdown_pct = (fall / self.peak).quantize(_RATIO) if self.peak > 0 else None

    def close(self, pnl: Decimal) -> None:
        self.realized += pnl
        self.trades += 1
        self.wins += pnl > 0
        self.losses += pnl < 0
        self.point(self.capital + self.realized)

    def figures(self) -> TradingFigures:
        equity = self.capital + self.realized + self.unrealized
        self.point(equity)
        return TradingFigures(
            capital=self.capital, equity=equity, realized_pnl=self.realized, unrealized_pnl=self.unrealized,
            max_drawdown=self.drawdown, max_drawdown_pct=self.drawdown_pct, trades=self.trades, wins=self.wins,
            losses=self.losses, win_rate=(Decimal(self.wins) / Decimal(self.trades)).quantize(_RATIO)
            if self.trades else None, open_positions=self.open_positions, orders=self.orders)


def _start(curves: Iterable[_Curve]) -> None:
    for curve in curves:
        curve.point(curve.capital)


class TradingStatsOps(UnitOfWork):
    """The read op ``trading_statistics`` (mixed into ``Store``)."""

    def trading_statistics(
        self,
        *,
        viewer: Viewer | None = None,
        portfolio_id: int | None = None,
        asset_id: int | None = None,
        page: PageRequest | None = None,
    ) -> Page[PortfolioTradingStats]:
        """Figures of the viewer's portfolios (admins and the engine: all), a page of
        portfolios in id order, each with its assets' figures (only ``asset_id``'s, when
        given). Someone else's portfolio or asset yields an empty page, like a list filter."""
        page = page or PageRequest()
        stmt = select(Portfolio)
        if viewer is not None and not viewer.is_admin:
            stmt = stmt.where(Portfolio.owner_id == viewer.user_id)
        if portfolio_id is not None:
            stmt = stmt.where(Portfolio.id == portfolio_id)
        if asset_id is not None:
            stmt = stmt.where(Portfolio.id.in_(select(Asset.portfolio_id).where(Asset.id == asset_id)))
        with self._read_sessions() as session:
            total = int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
            portfolios = session.scalars(stmt.order_by(Portfolio.id).offset(page.offset).limit(page.capped_limit)).all()
            ids = [p.id for p in portfolios]
            asset_stmt = select(Asset).where(Asset.portfolio_id.in_(ids)).order_by(Asset.id)
            if asset_id is not None:
                asset_stmt = asset_stmt.where(Asset.id == asset_id)
            assets = session.scalars(asset_stmt).all() if ids else []
            by_portfolio = {p.id: _Curve(Decimal(p.total_capital)) for p in portfolios}
            by_asset = {a.id: _Curve(Decimal(a.allocated_capital)) for a in assets}
            _start([*by_portfolio.values(), *by_asset.values()])
            if ids:
                self._fold_ledger(session, ids, by_portfolio, by_asset, asset_id)
            items = [PortfolioTradingStats(
                portfolio_id=p.id, name=p.name, figures=by_portfolio[p.id].figures(),
                assets=tuple(AssetTradingStats(asset_id=a.id, symbol=a.symbol, figures=by_asset[a.id].figures())
                             for a in assets if a.portfolio_id == p.id)) for p in portfolios]
        return Page[Any](items=items, total=total, offset=page.offset, limit=page.capped_limit)

    @staticmethod
    def _fold_ledger(session: Any, ids: list[int], by_portfolio: dict[int, _Curve], by_asset: dict[int, _Curve],
                     asset_id: int | None) -> None:
        """One pass over the closed positions in close order, plus the open ones and the
        executed-order counts; an asset filter narrows the portfolio figures too."""
        where = [Position.portfolio_id.in_(ids)]
        order_where = [Order.portfolio_id.in_(ids),
                       Order.status.in_((OrderStatus.OPEN.value, OrderStatus.FILLED.value))]
        if asset_id is not None:
            where.append(Position.asset_id == asset_id)
            order_where.append(Order.asset_id == asset_id)
        closed = (select(Position.portfolio_id, Position.asset_id, Position.realized_pnl)
                  .where(*where, Position.is_open.is_(False))
                  .order_by(Position.closed_at, Position.id))
        for pid, aid, pnl in session.execute(closed):
            value = Decimal(pnl or 0)
            by_portfolio[pid].close(value)
            if aid in by_asset:
                by_asset[aid].close(value)
        open_rows = select(Position.portfolio_id, Position.asset_id, Position.unrealized_pnl).where(
            *where, Position.is_open.is_(True))
        for pid, aid, pnl in session.execute(open_rows):
            value = Decimal(pnl or 0)
            for curve in (by_portfolio[pid], by_asset.get(aid)):
                if curve is not None:
                    curve.unrealized += value
                    curve.open_positions += 1
        counts = select(Order.portfolio_id, Order.asset_id, func.count()).where(*order_where).group_by(
            Order.portfolio_id, Order.asset_id)
        for pid, aid, count in session.execute(counts):
            by_portfolio[pid].orders += int(count)
            if aid in by_asset:
                by_asset[aid].orders += int(count)
