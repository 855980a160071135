"""The engine's actor processes read through the persistence actor
(``PersistenceActor.read``), never a Store of their own, so an asset actor imports
neither SQLAlchemy nor pandas and a restarted one is back sooner. Real Ray, real
databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import ray

from tests.integration.actors.engine_helpers import engine_config, seed_portfolio

pytestmark = [pytest.mark.ray]


def test_reads_go_through_the_persistence_actor(ray_session, store, db_url: str, tmp_path: Path) -> None:
    from actors.runtime import EngineRuntime
    from actors.store_proxy import StoreProxy
    from engine.errors import DomainError, NotFound

    portfolio_id, (asset_id,) = seed_portfolio(store, [{"symbol": "EURUSD", "strategy_plugin": "default_strategy",
                                                         "broker_plugin": "default_broker"}])
    config = engine_config(db_url, tmp_path)
    runtime = EngineRuntime(config)
    runtime.start(activate=False)
    try:
        persistence = runtime.persistence
        assert ray.get(persistence.read.remote("get_asset", (asset_id,)), timeout=30).portfolio_id == portfolio_id
        with pytest.raises(NotFound):
            ray.get(persistence.read.remote("get_asset", (asset_id + 999,)), timeout=30)
        # Only the engine's reads: no user or credential reads through here.
        with pytest.raises(DomainError, match="get_credentials"):
            ray.get(persistence.read.remote("get_credentials", ("admin",)), timeout=30)

        # The proxy the actors use: records and the Store's own errors, and no local Store.
        proxy = StoreProxy.from_settings(config)

        async def reads() -> tuple:
            asset = await proxy.asset(asset_id)
            assets = await proxy.assets(portfolio_id)
            with pytest.raises(NotFound):
                await proxy.asset(asset_id + 999)
            return asset, assets

        asset, assets = asyncio.run(reads())
        assert asset.id == asset_id and [a.id for a in assets] == [asset_id]
        assert proxy._store is None  # noqa: SLF001 - the point: no Store (no SQLAlchemy) in the caller

        # A read while the persistence actor restarts is sent again until it answers.
        ray.kill(persistence, no_restart=False)
        assert asyncio.run(proxy.asset(asset_id)).id == asset_id
        assert proxy._store is None  # noqa: SLF001
    finally:
        runtime.stop()


def test_asset_actor_code_does_not_load_sqlalchemy() -> None:
    # What an asset actor imports and uses (steps, journal writes, records, plugins): no
    # SQLAlchemy and no pandas, which a restarted asset would otherwise load again.
    code = (
        "import sys\n"
        "import actors.asset_actor, actors.ports, actors.store_proxy, actors.persistence_actor\n"
        "from persistence.store import WriteRequest\n"
        "from persistence.records import AuditContext, OrderFill, OrderIntent, PageRequest, PositionOpen\n"
        "from engine.plugins.loader import create_plugin\n"
        "create_plugin('strategy', 'default_strategy', {}); create_plugin('pipeline', 'default_pipeline', {})\n"
        "print(sorted(m for m in ('sqlalchemy', 'pandas') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
