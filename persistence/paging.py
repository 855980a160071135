"""The one paging rule for callers that need a whole list: read page after page of
``MAX_PAGE_SIZE`` until a short page. The Store caps every page (``PageRequest``), so a
caller that passed one big page would silently get only its first ``MAX_PAGE_SIZE`` rows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from persistence.records import MAX_PAGE_SIZE, PageRequest


def _items(page: Any) -> list[Any]:
    return list(getattr(page, "items", page))  # a Store Page, or a plain list


def every_item(read: Callable[[PageRequest], Any]) -> list[Any]:
    """Every item of a paged read: ``read(page)`` returns one ``Page`` (or list)."""
    items: list[Any] = []
    while True:
        batch = _items(read(PageRequest(offset=len(items), limit=MAX_PAGE_SIZE)))
        items.extend(batch)
        if len(batch) < MAX_PAGE_SIZE:
            return items


async def every_item_async(read: Callable[[PageRequest], Awaitable[Any]]) -> list[Any]:
    """:func:`every_item` for an awaitable read (the actor runtime's store proxy)."""
    items: list[Any] = []
    while True:
        batch = _items(await read(PageRequest(offset=len(items), limit=MAX_PAGE_SIZE)))
        items.extend(batch)
        if len(batch) < MAX_PAGE_SIZE:
            return items


__all__ = ["every_item", "every_item_async"]
