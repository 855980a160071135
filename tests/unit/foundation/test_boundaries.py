"""Package boundaries (ARCHITECTURE.md): ``engine/`` never imports ray, sqlalchemy or
fastapi; ``api/`` never imports ray. Checked by parsing every module's imports, including
imports inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

FORBIDDEN: dict[str, set[str]] = {
    "engine": {"ray", "sqlalchemy", "fastapi"},
    "api": {"ray"},
}


def imported_roots(source: str, filename: str) -> list[tuple[int, str]]:
    """``(line, top-level module)`` for every absolute import in ``source``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value.split(".")[0]))
    return found


def violations(package: str) -> list[str]:
    bad: list[str] = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in imported_roots(path.read_text(), str(path)):
            if module in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(ROOT)}:{line}: imports {module}")
    return bad


def test_the_scanner_finds_every_import_form() -> None:
    source = (
        "import ray\nfrom sqlalchemy.orm import Session\nimport os, fastapi.routing\n"
        "def f():\n    import ray.util\n    importlib.import_module('ray.serve')\n"
        "from . import ray\n"
    )
    assert imported_roots(source, "x.py") == [
        (1, "ray"), (2, "sqlalchemy"), (3, "os"), (3, "fastapi"), (5, "ray"), (6, "ray"),
    ]  # fmt: skip


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_forbidden_modules(package: str) -> None:
    assert (ROOT / package / "__init__.py").is_file()
    assert violations(package) == []
