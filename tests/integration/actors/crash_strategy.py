"""A strategy plugin whose construction kills its own process (``kill -9``), so the asset
actor hosting it dies on every start: the supervisor's restart / give-up tests.

Registered for the duration of a test through a throw-away ``.dist-info`` entry point
(see ``registered_crash_strategy``), as a third-party package would register one. It only
kills a Ray actor process; anywhere else (a test process validating plugins) it raises."""

from __future__ import annotations

import os
import shutil
import signal
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from engine.plugins.base import StrategyPlugin

NAME = "crash_on_start_test_strategy"


class CrashOnStartStrategy(StrategyPlugin):
    """Kills the hosting actor process as soon as it is constructed."""

    name: ClassVar[str] = NAME
    plugin_params: ClassVar[dict[str, Any]] = {}

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        import ray

        if ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        raise RuntimeError(f"{NAME} only runs inside an actor (it kills its process)")

    def decide(self, asset_data: Any, market_data: Any) -> Any:  # pragma: no cover - never constructed
        raise AssertionError("unreachable")


@contextmanager
def registered_crash_strategy() -> Iterator[str]:
    """Register ``CrashOnStartStrategy`` under ``lts.strategy`` as an installed
    distribution would, then remove it."""
    target = Path(sysconfig.get_paths()["purelib"])
    dist = target / "lts_crash_test_plugin-0.0.0.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lts-crash-test-plugin\nVersion: 0.0.0\n")
    (dist / "entry_points.txt").write_text(
        f"[lts.strategy]\n{NAME} = tests.integration.actors.crash_strategy:CrashOnStartStrategy\n")
    try:
        yield NAME
    finally:
        shutil.rmtree(dist, ignore_errors=True)
