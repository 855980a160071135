"""The ``lts_*`` metrics reach Ray's Prometheus endpoint with the values the engine recorded.

A two-asset portfolio walks its data; then the node's metrics export port (``ray.nodes()``
``MetricsExportPort``, served even without the dashboard) is scraped until it shows the
portfolio's series: step, decision and order counters equal the statistics the supervisor
wrote to the database, the latency histogram counted every step, the open-positions gauge
is the number of positions the database holds open (the default broker keeps them at the
end of the data) and the equity gauge is the allocated capital plus the realized P&L of
the database's closed positions plus the open ones' P&L at each file's last close."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import ray

from tests.integration.actors.engine_helpers import engine_config, running_engine, seed_portfolio, wait_for, write_ohlc_csv

pytestmark = pytest.mark.ray

_SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Prometheus text format -> {metric name: [(labels, value), ...]}."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and not line.startswith("#"):
            labels = dict(_LABEL.findall(match["labels"] or ""))
            samples[match["name"]].append((labels, float(match["value"])))
    return samples


def total(samples: dict, name: str, **labels: str) -> float | None:
    """Sum of ``name``'s samples whose labels include ``labels`` (None: no such series)."""
    values = [v for tags, v in samples.get(name, []) if all(tags.get(k) == w for k, w in labels.items())]
    return sum(values) if values else None


def test_engine_metrics_on_the_prometheus_endpoint(ray_session, sqlite_store, sqlite_db_url, tmp_path: Path,
                                                   backtesting_data_dir: Path):
    from persistence.records import PageRequest

    eur = backtesting_data_dir / "EURUSD.csv"
    last_close = {}
    for name, rows in (("a", slice(0, 250)), ("b", slice(250, 500))):
        path = write_ohlc_csv(eur, tmp_path / f"{name}.csv", rows)
        last_close[name.upper()] = Decimal(path.read_text().strip().splitlines()[-1].rsplit(",", 1)[1])
    strategy = {"strategy_plugin": "default_strategy", "strategy_config": {"lookback": 3, "quantity": 1000.0},
                "broker_plugin": "default_broker"}
    portfolio_id, asset_ids = seed_portfolio(sqlite_store, [
        {"symbol": "A", **strategy, "data_source": {"path": "a.csv"}},
        {"symbol": "B", **strategy, "data_source": {"path": "b.csv"}}], total_capital="30000")
    (node,) = [n for n in ray.nodes() if n["Alive"]][:1]
    port = int(node["MetricsExportPort"])
    portfolio = str(portfolio_id)
    with running_engine(engine_config(sqlite_db_url, tmp_path)) as runtime:
        wait_for(lambda: len(s := runtime.status()["assets"]) == 2 and all(a["state"] == "finished" for a in s), 90,
                 what="both assets to walk their data")
        positions = sqlite_store.list_positions(portfolio_id=portfolio_id, page=PageRequest(limit=500)).items
        symbol = {asset_id: name for asset_id, name in zip(asset_ids, ("A", "B"))}
        open_pnl = sum(((last_close[symbol[p.asset_id]] - p.entry_price) * p.quantity * (1 if p.side.value == "buy" else -1)
                        for p in positions if p.is_open), Decimal("0"))
        expected_equity = Decimal("30000") + sum((p.realized_pnl for p in positions), Decimal("0")) + open_pnl

        def exported() -> tuple | None:
            # Ray publishes what the workers recorded about every ten seconds; the
            # supervisor writes its last statistics row within a second of the end.
            stats = sqlite_store.list_statistics(portfolio_id=portfolio_id, page=PageRequest(limit=500)).items
            steps_ok = sum(int(s.values.get("steps_ok", 0)) for s in stats)
            samples = scrape(port)
            ok = total(samples, "ray_lts_steps_total", portfolio=portfolio, outcome="ok")
            latency = total(samples, "ray_lts_step_latency_ms_count", portfolio=portfolio)
            equity = total(samples, "ray_lts_equity", portfolio=portfolio)
            if steps_ok == 500 and ok == steps_ok and latency == steps_ok and equity is not None \
                    and abs(Decimal(repr(equity)) - expected_equity) < Decimal("1e-6"):
                return samples, stats
            return None

        started = time.monotonic()
        samples, stats = wait_for(exported, 45, interval_s=1.0, what="the engine's metrics on the Prometheus endpoint")
        waited_s = time.monotonic() - started

    steps_ok = sum(int(s.values.get("steps_ok", 0)) for s in stats)
    orders_counted = sum(int(v) for s in stats for k, v in s.values.items() if k.startswith("orders_"))
    held_open = sum(1 for p in positions if p.is_open)
    assert len(positions) > 10 and held_open >= 1 and open_pnl != 0
    assert total(samples, "ray_lts_steps_total", portfolio=portfolio) == steps_ok  # no failed steps
    assert total(samples, "ray_lts_decisions_total", portfolio=portfolio) == steps_ok
    assert total(samples, "ray_lts_decisions_total", portfolio=portfolio, action="hold") > 0
    assert total(samples, "ray_lts_orders_total", portfolio=portfolio) == orders_counted > 10
    assert total(samples, "ray_lts_open_positions", portfolio=portfolio) == held_open
    assert total(samples, "ray_lts_equity", portfolio=portfolio) == pytest.approx(float(expected_equity), abs=1e-6)
    assert waited_s < 45
