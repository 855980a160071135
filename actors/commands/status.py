"""``lts status``: portfolios, assets, actor states, restarts and the last step of each
asset — from the database, plus the live supervisors when the Ray cluster is reachable
(``--address``, default ``auto``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from engine.config import LTSConfig


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``lts status``."""
    parser.add_argument("--address", default="auto", metavar="auto|HOST:PORT",
                        help="Ray cluster to ask for live actor state (default: auto)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _live(address: str, namespace: str, portfolio_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Each running supervisor's status; empty when no cluster or no supervisor answers."""
    try:
        import ray

        from actors import naming

        if not ray.is_initialized():
            ray.init(address=address, namespace=namespace, log_to_driver=False, configure_logging=False)
    except Exception:
        return {}
    out: dict[int, dict[str, Any]] = {}
    for pid in portfolio_ids:
        try:
            handle = ray.get_actor(naming.portfolio_supervisor(pid), namespace=namespace)
            out[pid] = ray.get(handle.status.remote(), timeout=5)
        except Exception:
            continue
    return out


def collect(config: LTSConfig | dict[str, Any], address: str | None) -> dict[str, Any]:
    """Database view merged with live supervisor state."""
    from persistence.records import PageRequest
    from persistence.store import Store

    store = Store.from_url(str(config["database_url"]))
    try:
        portfolios = store.list_portfolios(page=PageRequest(limit=500)).items
        assets = store.list_assets(page=PageRequest(limit=500)).items
    finally:
        store.close()
    live = _live(address, str(config.get("ray_namespace", "lts")), [p.id for p in portfolios]) if address else {}
    rows = []
    for p in portfolios:
        sup = live.get(p.id)
        states = {a["asset_id"]: a for a in (sup or {}).get("assets", [])}
        rows.append({
            "portfolio_id": p.id, "name": p.name, "active": p.is_active, "status": str(p.status.value),
            "supervisor": "running" if sup else "not running", "cycles": (sup or {}).get("cycles"),
            "assets": [{
                "asset_id": a.id, "symbol": a.symbol, "active": a.is_active, "status": str(a.status.value),
                # "paused": its process is stopped between calls (actors.pausing).
                "actor": states.get(a.id, {}).get("state", "-") + (" (paused)" if states.get(a.id, {}).get("paused") else ""),
                "restarts": states.get(a.id, {}).get("restarts", 0),
                "last_step": states.get(a.id, {}).get("last_step"), "reason": a.status_reason,
            } for a in assets if a.portfolio_id == p.id],
        })
    return {"cluster_reachable": bool(live) or None, "portfolios": rows}


def run(config: LTSConfig, args: argparse.Namespace) -> int:
    data = collect(config, args.address)
    if args.json:
        print(json.dumps(data, default=str, indent=2))
        return 0
    if not data["portfolios"]:
        print("No portfolios.")
    for p in data["portfolios"]:
        print(f"portfolio {p['portfolio_id']} {p['name']!r}: {'active' if p['active'] else 'inactive'}, "
              f"supervisor {p['supervisor']}" + (f", {p['cycles']} cycles" if p["cycles"] is not None else ""))
        for a in p["assets"]:
            step = a["last_step"] or {}
            last = (f"{step.get('bar_time')} {step.get('action')} "
                    f"{'ok' if step.get('ok', True) else 'FAILED ' + str(step.get('reason'))}") if step else "-"
            print(f"  asset {a['asset_id']} {a['symbol']:<8} {a['status']:<8} actor={a['actor']:<10} "
                  f"restarts={a['restarts']} last step: {last}" + (f" ({a['reason']})" if a["reason"] else ""))
    return 0
