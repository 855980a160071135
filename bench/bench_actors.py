"""Asset steps per second and step latency (p50/p99) through the real actor runtime.

One portfolio of N asset actors (default: 10 and 100) in simulation mode with the default
broker and the persistence actor writing to SQLite, heartbeat as fast as possible. A step is
the supervisor's call into an asset actor: bar -> strategy -> (orders: persistence actor +
broker actor) -> answer; latency is that round trip as the supervisor sees it, from the
step's dispatch (the supervisor runs at most ``max_steps_in_flight`` steps at once; an
asset waiting for a slot is not counted as latency, its step rate is printed instead).
Hold steps cost one hop (supervisor -> asset); a step that sends an order adds the intent
write, the broker call and the result write (3 hops, 2 commits). The persistence actor's
busy share shows when SQLite writes are the limit. Reference, measured in the same run: a
trivial actor round trip (one hop, sequential) and pipelined trivial calls into one actor.

    .venv/bin/python bench/bench_actors.py [--assets 10 100] [--seconds 10]

Figures on a shared 2-core machine are noisy; compare the ratios, not the absolutes.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import ray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@ray.remote(num_cpus=0)
class Echo:
    def ping(self) -> int:
        return 1


def reference() -> dict[str, float]:
    echo = Echo.remote()
    ray.get(echo.ping.remote())
    lat = []
    for _ in range(500):
        t = time.perf_counter()
        ray.get(echo.ping.remote())
        lat.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    ray.get([echo.ping.remote() for _ in range(3000)])
    pipelined = 3000 / (time.perf_counter() - t)
    ray.kill(echo)
    return {"rtt_p50_ms": float(np.percentile(lat, 50)), "rtt_p99_ms": float(np.percentile(lat, 99)),
            "pipelined_calls_per_s": pipelined}


def run(n_assets: int, seconds: float, workdir: Path, in_flight: int | None = None,
        bars_per_call: int | None = None, paced: tuple[float, ...] = (),
        batch_delay_ms: int | None = None, call_budget_ms: int | None = None) -> dict[float, dict[str, float]]:
    """Start one portfolio of ``n_assets``; measure it free-running, then at each paced
    heartbeat in ``paced`` (seconds). Returns heartbeat (0 = free-running) -> figures."""
    from actors.demo_data import generate_ohlc
    from actors.runtime import EngineRuntime
    from engine.config.defaults import DEFAULT_VALUES
    from persistence.records import AssetCreate, AuditContext, PortfolioCreate
    from persistence.schema import create_schema
    from persistence.store import Store

    db = workdir / f"bench{n_assets}.db"
    url = f"sqlite:///{db}"
    store = Store.from_url(url)
    create_schema(store.engine)
    data_file = workdir / "bench.csv"
    if not data_file.exists():
        generate_ohlc(1.1, 0.0012, 7, bars=200_000).to_csv(data_file, index=False)
    system = AuditContext.system()
    user = store.create_user(system, username=f"bench{n_assets}", password_hash="$2b$12$" + "x" * 53)
    portfolio = store.create_portfolio(system, PortfolioCreate(name="bench", total_capital=Decimal(1_000_000)),
                                       owner_id=user.id)
    for i in range(n_assets):
        asset = store.create_asset(system, portfolio.id, AssetCreate(
            symbol=f"B{i}", strategy_plugin="default_strategy", strategy_config={"lookback": 20},
            broker_plugin="default_broker", data_source={"path": str(data_file)}))
        store.activate_asset(system, asset.id)
    store.activate_portfolio(system, portfolio.id)
    config = dict(DEFAULT_VALUES, database_url=url, data_dir=str(workdir), global_latency=0.0,
                  ray_namespace=f"bench{n_assets}", step_timeout_s=30.0, max_steps_in_flight=in_flight)
    if bars_per_call is not None:
        config["simulation_bars_per_call"] = bars_per_call
    if batch_delay_ms is not None:
        config["persistence_batch_delay_ms"] = batch_delay_ms
    if call_budget_ms is not None:
        config["simulation_call_budget_ms"] = call_budget_ms
    runtime = EngineRuntime(config)
    started = time.perf_counter()
    runtime.start()
    sup = runtime.supervisors[portfolio.id]
    deadline = time.monotonic() + 600
    while True:  # wait for every asset actor to have started (or given up)
        status = ray.get(sup.status.remote(), timeout=60)
        states = [a["state"] for a in status["assets"]]
        if len(states) == n_assets and all(s in ("running", "errored", "finished") for s in states):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    startup_s = time.perf_counter() - started
    running = sum(1 for a in status["assets"] if a["state"] == "running")
    errors = {a["last_error"] for a in status["assets"] if a["state"] == "errored"}
    if errors:
        print(f"  {n_assets - running} asset(s) did not start: {sorted(errors)[:3]}")
    time.sleep(2.0)  # warm-up
    results = {0.0: measure(runtime, sup, store, portfolio.id, seconds, running, startup_s)}
    for latency in paced:
        # Switch the running portfolio to a paced heartbeat (its own latency overrides the
        # global 0): every cycle steps each asset once, one call per bar.
        from persistence.records import PortfolioUpdate

        store.update_portfolio(system, portfolio.id, PortfolioUpdate(latency=latency))
        ray.get(sup.reload.remote(), timeout=30)
        time.sleep(3.0)  # warm-up: the free-running drivers end, the cycles start
        results[latency] = measure(runtime, sup, store, portfolio.id, seconds, running, startup_s)
    runtime.stop()
    store.close()
    return results


def measure(runtime, sup, store, portfolio_id: int, seconds: float, running: int,  # type: ignore[no-untyped-def]
            startup_s: float) -> dict[str, float]:
    """One measurement window of the running portfolio."""
    first = ray.get(sup.take_latencies.remote(), timeout=30)
    writer_before = ray.get(runtime.persistence.stats.remote(), timeout=30) if runtime.persistence else None
    orders_before = store.list_orders(portfolio_id=portfolio_id).total
    t0 = time.perf_counter()
    time.sleep(seconds)
    window = ray.get(sup.take_latencies.remote(), timeout=30)
    elapsed = time.perf_counter() - t0
    writer_after = ray.get(runtime.persistence.stats.remote(), timeout=30) if runtime.persistence else None
    orders = store.list_orders(portfolio_id=portfolio_id).total - orders_before
    load = os.getloadavg()[0]
    # (.get: the same script also measures older engine versions, for before/after figures)
    lat, order_lat = window["latencies_ms"], window.get("order_latencies_ms", [])
    calls = window.get("call_latencies_ms") or [float("nan")]
    ticks = window.get("tick_latencies_ms") or [float("nan")]
    hold_lat = list((collections.Counter(lat) - collections.Counter(order_lat)).elements()) or [float("nan")]
    steps = window["steps_total"] - first["steps_total"]
    busy = ((writer_after["busy_s"] - writer_before["busy_s"]) / elapsed) if writer_before else float("nan")
    batches = ((writer_after["batches"] - writer_before["batches"]) / elapsed) if writer_before else float("nan")
    applied = ((writer_after["applied"] - writer_before["applied"]) / elapsed) if writer_before else float("nan")
    pct = lambda values, q: float(np.percentile(values, q)) if len(values) else float("nan")  # noqa: E731
    return {"assets": running, "startup_s": startup_s, "steps_per_s": steps / elapsed,
            "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
            "hold_p50_ms": pct(hold_lat, 50), "hold_p99_ms": pct(hold_lat, 99),
            "order_p50_ms": pct(order_lat, 50), "order_p99_ms": pct(order_lat, 99),
            "tick_p50_ms": pct(ticks, 50), "tick_p99_ms": pct(ticks, 99),
            "order_share": len(order_lat) / max(len(lat), 1), "writer_busy": busy, "window": window.get("window"),
            "writer_batches_per_s": batches, "writer_writes_per_s": applied,
            "mean_ms": statistics.fmean(lat) if lat else float("nan"), "orders_recorded": orders,
            "cycles_per_s": (window.get("cycles", 0) - first.get("cycles", 0)) / elapsed,
            "call_p50_ms": pct(calls, 50), "call_p99_ms": pct(calls, 99), "load": load,
            "bars_per_call": window.get("bars_per_call", 1), "calls_per_s": len(window.get("call_latencies_ms") or []) / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--bars-per-call", type=int, default=None,
                        help="simulation_bars_per_call (default: the engine's; 1: one call per bar)")
    parser.add_argument("--paced", type=float, nargs="*", default=[0.15],
                        help="after the free-running window, the same actors with a paced heartbeat "
                             "every this many seconds (one call per asset and bar); none: skip")
    parser.add_argument("--call-budget-ms", type=int, default=None,
                        help="simulation_call_budget_ms (default: the engine's)")
    parser.add_argument("--batch-delay-ms", type=int, default=None,
                        help="persistence_batch_delay_ms (default: the engine's)")
    parser.add_argument("--in-flight", type=int, default=None,
                        help="max_steps_in_flight (default: the engine's, 2 per CPU, at least 4; 0: no limit)")
    args = parser.parse_args()
    # The CPUs the machine has, as lts run declares them (Ray detects them).
    ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False, namespace="bench")
    import actors

    print(f"# bench_actors {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} code {Path(actors.__file__).parents[1]} "
          f"cpus={ray.cluster_resources().get('CPU')}")
    ref = reference()
    print(f"reference: trivial actor round trip p50 {ref['rtt_p50_ms']:.2f} ms, p99 {ref['rtt_p99_ms']:.2f} ms; "
          f"pipelined into one actor {ref['pipelined_calls_per_s']:.0f} calls/s")
    verdicts = []
    with tempfile.TemporaryDirectory(prefix="lts-bench-") as tmp:
        for n in args.assets:
            results = run(n, args.seconds, Path(tmp), args.in_flight, args.bars_per_call, tuple(args.paced),
                          args.batch_delay_ms, args.call_budget_ms)
            for latency, r in results.items():
                mode = "free-running" if latency == 0 else f"paced every {latency:g} s"
                print(f"{n:>4} assets, {mode}: {r['steps_per_s']:8.0f} steps/s ({r['steps_per_s'] / max(r['assets'], 1):.1f} "
                      f"per asset), step latency p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms "
                      f"(= {r['p50_ms'] / ref['rtt_p50_ms']:.1f}x / {r['p99_ms'] / ref['rtt_p50_ms']:.1f}x a trivial "
                      f"round trip); startup {r['startup_s']:.1f} s; {r['orders_recorded']} orders recorded in the window")
                print(f"      hold steps p50 {r['hold_p50_ms']:.1f} ms p99 {r['hold_p99_ms']:.1f} ms; "
                      f"order steps ({100 * r['order_share']:.0f}% of steps) p50 {r['order_p50_ms']:.1f} ms "
                      f"p99 {r['order_p99_ms']:.1f} ms; persistence actor busy {100 * r['writer_busy']:.0f}% of the time "
                      f"({r['writer_writes_per_s']:.0f} writes/s in {r['writer_batches_per_s']:.0f} batches/s); "
                      f"at most {r['window'] or 'unlimited'} calls in flight; load average {r['load']:.1f}")
                if latency == 0 and r["bars_per_call"] > 1:
                    print(f"      up to {r['bars_per_call']} bars per supervisor call: {r['calls_per_s']:.0f} calls/s, "
                          f"{r['steps_per_s'] / max(r['calls_per_s'], 1e-9):.1f} bars per call, call round trip "
                          f"p50 {r['call_p50_ms']:.1f} ms p99 {r['call_p99_ms']:.1f} ms")
                if latency > 0:
                    offered = r["assets"] / latency
                    print(f"      offered {offered:.0f} steps/s ({r['cycles_per_s']:.2f} cycles/s of {1 / latency:.2f}); "
                          f"from the heartbeat tick to each step's answer (slot wait included): "
                          f"p50 {r['tick_p50_ms']:.1f} ms, p99 {r['tick_p99_ms']:.1f} ms")
                if n >= 100:
                    worst = max(r["p99_ms"], r["tick_p99_ms"]) if latency > 0 else r["p99_ms"]
                    met = r["steps_per_s"] >= 500 and worst < 100
                    verdicts.append(f"{n} assets, {mode}: {r['steps_per_s']:.0f} steps/s (target >= 500), p99 "
                                    f"{worst:.1f} ms (target < 100): {'met' if met else 'NOT met'}")
    for line in verdicts:
        print("verdict:", line)
    ray.shutdown()


if __name__ == "__main__":
    main()
