"""One rule, one place: the "did you mean" hint (``engine.suggestions``) and reading a
whole paged list (``persistence.paging``) each live in one module that everybody calls."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from engine.suggestions import close_matches, did_you_mean
from persistence.paging import every_item, every_item_async
from persistence.records import MAX_PAGE_SIZE, Page, PageRequest

ROOT = Path(__file__).resolve().parents[3]


def _importers_of(module: str) -> list[str]:
    found = []
    for package in ("engine", "persistence", "api", "actors"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(n == module or n.startswith(module + ".") for n in names):
                    found.append(str(path.relative_to(ROOT)))
    return sorted(set(found))


def test_only_the_suggestions_module_uses_difflib() -> None:
    assert _importers_of("difflib") == ["engine/suggestions.py"]


def test_did_you_mean_names_the_closest_known_names() -> None:
    assert did_you_mean("api_prot", ["api_port", "db_url"]) == "did you mean 'api_port'?"
    assert did_you_mean("qwerty", ["api_port"]) == ""
    assert did_you_mean("fats", ["fast", "fat", "slow"], n=2) == "did you mean 'fat' or 'fast'?"
    assert close_matches("slwo", ["slow", "fast"]) == ["slow"]


def _store_pages(total: int) -> tuple[list[PageRequest], object]:
    asked: list[PageRequest] = []

    def read(page: PageRequest) -> Page[int]:
        asked.append(page)
        rows = list(range(total))[page.offset:page.offset + page.capped_limit]
        return Page[int](items=rows, total=total, offset=page.offset, limit=page.capped_limit)

    return asked, read


@pytest.mark.parametrize("total", [0, 1, MAX_PAGE_SIZE, 2 * MAX_PAGE_SIZE + 7])
def test_every_item_reads_page_after_page_until_a_short_one(total: int) -> None:
    asked, read = _store_pages(total)
    assert every_item(read) == list(range(total))
    assert [p.offset for p in asked] == [i * MAX_PAGE_SIZE for i in range(total // MAX_PAGE_SIZE + 1)]


def test_every_item_async_reads_the_same() -> None:
    import asyncio

    _, read = _store_pages(MAX_PAGE_SIZE + 3)

    async def aread(page: PageRequest) -> object:
        return read(page)  # type: ignore[operator]

    assert asyncio.run(every_item_async(aread)) == list(range(MAX_PAGE_SIZE + 3))


def test_the_api_pages_no_further_than_the_store() -> None:
    from api.schemas import common

    assert common.MAX_PAGE_SIZE is MAX_PAGE_SIZE
