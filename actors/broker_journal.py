"""Read an asset's ``AccountJournal`` from the database for a restarted broker actor.

The journal and its replay rules are domain logic (``engine.pipeline.replay``); this
module keeps only the reads through the persistence actor's store proxy."""

from __future__ import annotations

from typing import Any

from engine.data.market_data import MarketData
from engine.pipeline.replay import AccountJournal, journal_from_records


async def load_journal(store: Any, asset_id: Any, data: MarketData | None, *, cursor: int | None = None,
                       finished: bool = False) -> AccountJournal:
    """``journal_from_records`` over what the database holds for ``asset_id`` (every
    order, paged; the open positions)."""
    from persistence.paging import every_item_async

    orders = await every_item_async(
        lambda page: store.read("list_orders", asset_id=asset_id, newest_first=False, page=page))
    positions = await store.read("open_positions", asset_id)
    return journal_from_records(asset_id, orders, positions, data, cursor=cursor, finished=finished)


__all__ = ["load_journal"]
