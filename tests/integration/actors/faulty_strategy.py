"""A strategy plugin that raises on every decision (INT-04 isolation tests).

Registered for the duration of a test through a throw-away ``.dist-info`` entry point
(see ``registered_faulty_strategy``), exactly as a third-party package would register one.
"""

from __future__ import annotations

import shutil
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from engine.plugins.base import StrategyPlugin

NAME = "raising_test_strategy"


class RaisingStrategy(StrategyPlugin):
    """Raises ``RuntimeError`` from ``decide`` on every bar."""

    name: ClassVar[str] = NAME
    plugin_params: ClassVar[dict[str, Any]] = {}

    def decide(self, asset_data: Any, market_data: Any) -> Any:
        raise RuntimeError(f"boom at bar {market_data.index}")


@contextmanager
def registered_faulty_strategy() -> Iterator[str]:
    """Register ``RaisingStrategy`` under ``lts.strategy`` as an installed distribution
    would (a ``.dist-info`` with ``entry_points.txt`` in site-packages), then remove it."""
    target = Path(sysconfig.get_paths()["purelib"])
    dist = target / "lts_faulty_test_plugin-0.0.0.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lts-faulty-test-plugin\nVersion: 0.0.0\n")
    (dist / "entry_points.txt").write_text(
        f"[lts.strategy]\n{NAME} = tests.integration.actors.faulty_strategy:RaisingStrategy\n")
    try:
        yield NAME
    finally:
        shutil.rmtree(dist, ignore_errors=True)
