"""Package boundaries (ARCHITECTURE.md): ``engine/`` imports none of persistence, actors,
api, ray, sqlalchemy or fastapi; ``persistence/`` none of actors, api, ray or fastapi;
``api/`` none of actors or ray. And no import cycles among our modules. Checked by
parsing every module's imports, including the ones inside functions (a function-local
import is still an edge: it only hides it from a top-level scan)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("engine", "persistence", "api", "actors")

FORBIDDEN: dict[str, set[str]] = {
    "engine": {"persistence", "actors", "api", "ray", "sqlalchemy", "fastapi"},
    "persistence": {"actors", "api", "ray", "fastapi"},
    "api": {"actors", "ray"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, filename: str, module: str = "", is_package: bool = False) -> list[tuple[int, str]]:
    """``(line, dotted name)`` for every import in ``source``, wherever it is (module
    level, functions, ``importlib.import_module("...")``). ``from a import b`` yields
    ``a.b`` (``b`` may be a module); relative imports are resolved against ``module``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            if not base:
                continue
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return sorted(found, key=lambda item: item[0])  # ast.walk is breadth-first


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def violations(package: str) -> list[str]:
    bad: list[str] = []
    for name, path in _modules().items():
        if name.split(".")[0] != package:
            continue
        for line, imported in imported_modules(path.read_text(), str(path), name, path.name == "__init__.py"):
            if imported.split(".")[0] in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(ROOT)}:{line}: imports {imported}")
    return bad


def import_graph() -> dict[str, set[str]]:
    """Our module -> our modules it imports (the longest dotted prefix that is a module)."""
    modules = _modules()

    def ours(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = {ours(imported) for _, imported in
                 imported_modules(path.read_text(), str(path), name, path.name == "__init__.py")}
        graph[name] = {e for e in edges if e is not None and e != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_scanner_finds_every_import_form() -> None:
    source = (
        "import ray\nfrom sqlalchemy.orm import Session\nimport os, fastapi.routing\n"
        "def f():\n    import ray.util\n    importlib.import_module('ray.serve')\n"
        "from . import ray\nfrom ..store import reads\n"
    )
    assert imported_modules(source, "x.py", "persistence.store.writes") == [
        (1, "ray"), (2, "sqlalchemy.orm.Session"), (3, "os"), (3, "fastapi.routing"), (5, "ray.util"),
        (6, "ray.serve"), (7, "persistence.store.ray"), (8, "persistence.store.reads"),
    ]  # fmt: skip


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_forbidden_modules(package: str) -> None:
    assert (ROOT / package / "__init__.py").is_file()
    assert violations(package) == []


def test_a_back_edge_in_a_function_is_reported() -> None:
    source = "def plan():\n    from actors.backtests.planning import build_plan\n"
    roots = [m.split(".")[0] for _, m in imported_modules(source, "api/x.py", "api.x")]
    assert set(roots) & FORBIDDEN["api"] == {"actors"}


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []
