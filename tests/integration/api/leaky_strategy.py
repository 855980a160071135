"""A strategy plugin whose exception text is everything a client must never see: ANSI
colour codes, a server path, a pid, an internal address, a Ray-like actor id and a second
line with a traceback. Registered for a test through a throw-away ``.dist-info`` entry
point, as a third-party package would register one (as ``tests/integration/actors/
faulty_strategy.py`` does), so the engine's actors load it like any plugin."""

from __future__ import annotations

import shutil
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from engine.plugins.base import StrategyPlugin

NAME = "leaky_test_strategy"
LEAKS = ("/srv/lts-secret/strategy.py", "4242", "10.9.8.7", "d03f9579e6693739d525af6501000000")
MESSAGE = ("\x1b[31mboom\x1b[0m in /srv/lts-secret/strategy.py (pid=4242, ip=10.9.8.7:6379, "
           "actor_id=d03f9579e6693739d525af6501000000)\nTraceback (most recent call last):\n"
           '  File "/srv/lts-secret/strategy.py", line 1, in decide')


class LeakyStrategy(StrategyPlugin):
    """Raises ``RuntimeError(MESSAGE)`` from ``decide`` on every bar."""

    name: ClassVar[str] = NAME
    plugin_params: ClassVar[dict[str, Any]] = {}

    def decide(self, asset_data: Any, market_data: Any) -> Any:
        raise RuntimeError(MESSAGE)


@contextmanager
def registered_leaky_strategy() -> Iterator[str]:
    """Register ``LeakyStrategy`` under ``lts.strategy`` for the duration of a test."""
    target = Path(sysconfig.get_paths()["purelib"])
    dist = target / "lts_leaky_test_plugin-0.0.0.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lts-leaky-test-plugin\nVersion: 0.0.0\n")
    (dist / "entry_points.txt").write_text(
        f"[lts.strategy]\n{NAME} = tests.integration.api.leaky_strategy:LeakyStrategy\n")
    try:
        yield NAME
    finally:
        shutil.rmtree(dist, ignore_errors=True)
