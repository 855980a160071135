"""Write throughput and acknowledgement latency through the persistence actor.

Each trade is three records written through the actor, in order: the order intent
(pending), the broker's answer (order open) and the position. 50 concurrent callers each
send calls carrying ``--trades-per-call`` trades; a call is acknowledged after its commit.
Modes: batching off (``batch_size=1``: one transaction per record) and on (group commit of
up to ``--batch-size`` records with a SAVEPOINT each), on SQLite and on PostgreSQL.

Two ways of loading it:
* closed loop (the "batching off/on" rows): each caller sends its next call as soon as the
  last one is acknowledged, which measures the most the actor absorbs. Latency there is
  set by Little's law, not by the actor: 50 callers at N calls/s wait 50/N s on average
  (even the bare ``ping`` row's p99 is ~50 ms at ~2,000 calls/s), so its p99 says little;
* open loop (the "offered" rows, ``--rate``): the callers together send a fixed number of
  records per second, each on its own schedule with a random phase, the way asset actors
  write when they trade. A call's latency is counted from the moment it was *due*, so a
  caller that falls behind its schedule is charged for the wait too (no coordinated
  omission). This is the acknowledgement latency the target speaks of: the time from a
  trade to its commit, at the target rate.

Every caller makes its own actor calls: the actor's group commit is the one batching
layer (callers that meet there share a transaction).

References measured in the same run, to read the figures against:
* the bare actor round trip: ``ping`` calls/s from the same 50 callers;
* the same calls into an actor that commits nothing (the ceiling Ray, serialization and
  the client allow before any database work);
* the Store alone, in this process without Ray, applying the same records in batches.

    .venv/bin/python bench/bench_persistence.py                 # both databases
    .venv/bin/python bench/bench_persistence.py --backend sqlite --seconds 5

Figures on a shared 2-core machine are noisy: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_PG = os.environ.get("LTS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


TARGET_RATE = {"sqlite": 3000.0, "postgresql": 2000.0}
"""The issue's targets in trade records/s: the default offered rate of the open-loop rows."""


@dataclass
class Result:
    label: str
    records: int
    seconds: float
    latencies_ms: list[float]
    note: str = ""

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fresh_database(backend: str) -> tuple[str, Any]:
    """(url, cleanup) of an empty database with the schema."""
    from persistence.database import make_engine
    from persistence.schema import create_schema

    if backend == "sqlite":
        folder = tempfile.mkdtemp(prefix="lts-bench-")
        url = f"sqlite:///{folder}/bench.db"
        cleanup = lambda: None  # noqa: E731
    else:
        import psycopg
        from sqlalchemy import make_url

        schema = f"lts_bench_{uuid.uuid4().hex[:10]}"
        libpq = make_url(DEFAULT_PG).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        url = make_url(DEFAULT_PG).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )

        def cleanup() -> None:
            with psycopg.connect(libpq, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    engine = make_engine(url)
    create_schema(engine)
    engine.dispose()
    return url, cleanup


def seed(url: str, callers: int) -> list[tuple[int, int]]:
    """One portfolio, one asset per caller: [(portfolio_id, asset_id)]."""
    from persistence.records import AssetCreate, AuditContext, PortfolioCreate
    from persistence.store import Store

    store = Store.from_url(url)
    system = AuditContext.system()
    user = store.create_user(system, username="bench", password_hash="x")
    portfolio = store.create_portfolio(system, PortfolioCreate(name="bench", total_capital=10**6), owner_id=user.id)
    assets = [
        (portfolio.id, store.create_asset(system, portfolio.id, AssetCreate(symbol=f"SYM{n}")).id)
        for n in range(callers)
    ]
    store.close()
    return assets


def trade_writes(client: Any, portfolio_id: int, asset_id: int, tag: str) -> list[Any]:
    """The three records of one trade."""
    from persistence.records import AuditContext, OrderFill, OrderIntent, PositionOpen

    ctx = AuditContext.system()
    coid = f"{tag}-{uuid.uuid4().hex[:12]}"
    return [
        client.request(
            "record_order_intent", ctx,
            OrderIntent(client_order_id=coid, portfolio_id=portfolio_id, asset_id=asset_id,
                        side="buy", quantity=Decimal("1000"), price=Decimal("1.10512")),
        ),
        client.request("mark_order_open", ctx, coid,
                       OrderFill(broker_order_id=f"b{coid}", filled_price=Decimal("1.10515"))),
        client.request(
            "open_position", ctx,
            PositionOpen(portfolio_id=portfolio_id, asset_id=asset_id, opening_client_order_id=coid,
                         side="buy", quantity=Decimal("1000"), entry_price=Decimal("1.10515")),
        ),
    ]


async def drive(handle: Any, assets: list[tuple[int, int]], seconds: float, trades_per_call: int) -> Result:
    from actors.persistence_actor import PersistenceClient

    latencies: list[float] = []
    records = 0
    deadline = time.perf_counter() + seconds

    async def caller(n: int) -> None:
        nonlocal records
        client = PersistenceClient(handle, caller_id=f"b{n}-{uuid.uuid4().hex[:6]}")
        portfolio_id, asset_id = assets[n]
        while time.perf_counter() < deadline:
            writes = [w for _ in range(trades_per_call) for w in trade_writes(client, portfolio_id, asset_id, f"c{n}")]
            sent = time.perf_counter()
            outcomes = await client.write_many(writes)
            latencies.append((time.perf_counter() - sent) * 1000)
            bad = [o.error for o in outcomes if not o.ok]
            if bad:
                raise RuntimeError(f"write failed: {bad[0]}")
            records += len(outcomes)

    start = time.perf_counter()
    await asyncio.gather(*(caller(n) for n in range(len(assets))))
    return Result("", records, time.perf_counter() - start, latencies)


async def drive_open_loop(
    handle: Any, assets: list[tuple[int, int]], seconds: float, trades_per_call: int, rate: float,
) -> Result:
    """``rate`` records/s offered by all callers together, each caller on a fixed schedule
    with a random phase; latency from each call's due time to its acknowledgement."""
    import random

    from actors.persistence_actor import PersistenceClient

    latencies: list[float] = []
    records = 0
    per_call = 3 * trades_per_call
    interval = len(assets) * per_call / rate  # seconds between one caller's calls
    start = time.perf_counter()
    deadline = start + seconds

    async def caller(n: int) -> None:
        nonlocal records
        client = PersistenceClient(handle, caller_id=f"o{n}-{uuid.uuid4().hex[:6]}")
        portfolio_id, asset_id = assets[n]
        due = start + random.uniform(0, interval)
        while due < deadline:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            writes = [w for _ in range(trades_per_call) for w in trade_writes(client, portfolio_id, asset_id, f"o{n}")]
            outcomes = await client.write_many(writes)
            latencies.append((time.perf_counter() - due) * 1000)
            bad = [o.error for o in outcomes if not o.ok]
            if bad:
                raise RuntimeError(f"write failed: {bad[0]}")
            records += len(outcomes)
            due += interval

    await asyncio.gather(*(caller(n) for n in range(len(assets))))
    return Result("", records, time.perf_counter() - start, latencies)


async def drive_ping(handle: Any, callers: int, seconds: float) -> Result:
    latencies: list[float] = []
    calls = 0
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal calls
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            await handle.ping.remote()
            latencies.append((time.perf_counter() - sent) * 1000)
            calls += 1

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return Result("", calls, time.perf_counter() - start, latencies)


def ray_ceiling(url: str, assets: list[tuple[int, int]], seconds: float, trades_per_call: int) -> Result:
    """The same callers and calls into a persistence actor whose writes commit nothing:
    what Ray, serialization and the client cost alone, i.e. the ceiling any database
    work lowers. A benchmark reference only; nothing in the product runs this way."""
    import ray

    from actors.persistence_actor import PersistenceActor, PersistenceSettings
    from persistence.store import WriteOutcome

    class NoDatabase(PersistenceActor):
        def _apply(self, writes):  # type: ignore[no-untyped-def]
            return [WriteOutcome.success(write, None) for write in writes]

    cls = ray.remote(**PersistenceActor.RAY_OPTIONS)(NoDatabase)
    handle = cls.remote(url, PersistenceSettings())
    ray.get(handle.ping.remote(), timeout=120)
    asyncio.run(drive(handle, assets, 1.0, trades_per_call))  # warm up
    result = asyncio.run(drive(handle, assets, seconds, trades_per_call))
    ray.kill(handle)
    return result


def in_process_reference(url: str, assets: list[tuple[int, int]], records_target: int, batch_size: int) -> Result:
    """The Store alone (no Ray, no actor), same records, batches of ``batch_size``."""
    from actors.persistence_actor import PersistenceClient
    from persistence.store import Store

    store = Store.from_url(url)
    client = PersistenceClient(actor=object(), caller_id="ref")  # only builds requests
    writes = []
    while len(writes) < records_target:
        for portfolio_id, asset_id in assets:
            writes.extend(trade_writes(client, portfolio_id, asset_id, "ref"))
    start = time.perf_counter()
    for i in range(0, len(writes), batch_size):
        store.apply_batch(writes[i : i + batch_size])
    seconds = time.perf_counter() - start
    store.close()
    return Result("store in-process", len(writes), seconds, [])


def run_backend(ray: Any, backend: str, args: argparse.Namespace) -> list[Result]:
    from actors.persistence_actor import PersistenceSettings, start_persistence_actor

    results = []
    for label, settings in (
        ("batching off", PersistenceSettings(batch_size=1, batch_delay_ms=0)),
        ("batching on", PersistenceSettings(batch_size=args.batch_size, batch_delay_ms=args.batch_delay_ms)),
    ):
        url, cleanup = fresh_database(backend)
        try:
            assets = seed(url, args.callers)
            handle = start_persistence_actor(url, settings=settings, name=f"bench-{uuid.uuid4().hex[:8]}")
            ray.get(handle.ping.remote(), timeout=120)
            asyncio.run(drive(handle, assets, 1.0, args.trades_per_call))  # warm up
            before = ray.get(handle.stats.remote(), timeout=60)
            result = asyncio.run(drive(handle, assets, args.seconds, args.trades_per_call))
            after = ray.get(handle.stats.remote(), timeout=60)
            result.label = f"{backend:10s} {label}"
            batches = max(1, after["batches"] - before["batches"])
            result.note = (
                f"mean batch {(after['applied'] - before['applied']) / batches:.1f} records, "
                f"actor writing {100 * (after['busy_s'] - before['busy_s']) / result.seconds:.0f}% of the time"
            )
            results.append(result)
            if label == "batching on":
                for rate in args.rate or [TARGET_RATE[backend]]:
                    offered = asyncio.run(drive_open_loop(handle, assets, args.seconds, 1, rate))
                    offered.label = f"{backend:10s} batching on, call each, offered {rate:.0f} rec/s"
                    results.append(offered)
            if label == "batching on" and args.multi_trades > 1:
                multi = asyncio.run(drive(handle, assets, args.seconds, args.multi_trades))
                multi.label = f"{backend:10s} batching on, {args.multi_trades} trades/call"
                results.append(multi)
            if label == "batching on":
                ping = asyncio.run(drive_ping(handle, args.callers, min(args.seconds, 3.0)))
                ping.label = f"{backend:10s} bare actor ping (calls/s)"
                results.append(ping)
            ray.kill(handle)
            if label == "batching on":
                ceiling = ray_ceiling(url, assets, min(args.seconds, 4.0), args.trades_per_call)
                ceiling.label = f"{backend:10s} same calls, no database"
                results.append(ceiling)
                reference = in_process_reference(url, assets, 3000, args.batch_size)
                reference.label = f"{backend:10s} Store alone, in-process"
                results.append(reference)
        finally:
            cleanup()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--callers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per mode")
    parser.add_argument("--trades-per-call", type=int, default=1)
    parser.add_argument("--multi-trades", type=int, default=4,
                        help="also measure calls carrying this many trades (0: skip)")
    parser.add_argument("--rate", type=float, nargs="*", default=None,
                        help="open-loop offered records/s (default: the target, 3000 on SQLite, "
                             "2000 on PostgreSQL); several values measure each")
    from engine.config.defaults import DEFAULT_VALUES

    # The engine's own defaults, so the bench measures what ``lts run`` does.
    parser.add_argument("--batch-size", type=int, default=int(DEFAULT_VALUES["persistence_batch_size"]))
    parser.add_argument("--batch-delay-ms", type=float,
                        default=float(DEFAULT_VALUES["persistence_batch_delay_ms"]))
    args = parser.parse_args()

    import ray

    # Its own local cluster, never one a `ray start` left running on the machine.
    ray.init(address="local", num_cpus=4, include_dashboard=False, namespace="lts-bench", log_to_driver=False,
             configure_logging=False)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results: list[Result] = []
    try:
        for backend in backends:
            results.extend(run_backend(ray, backend, args))
    finally:
        ray.shutdown()

    print(f"\n{args.callers} callers, {args.trades_per_call} trades (x3 records) per call, "
          f"batch_size {args.batch_size}, batch_delay_ms {args.batch_delay_ms}, cpus {os.cpu_count()}")
    print(f"{'mode':58s} {'records/s':>10s} {'trades/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for r in results:
        trades = r.records_per_s / 3 if "ping" not in r.label else float("nan")
        print(f"{r.label:58s} {r.records_per_s:10.0f} {trades:9.0f} {r.pct(0.5):8.1f} {r.pct(0.99):8.1f}"
              + (f"   ({r.note})" if r.note else ""))
    for backend in backends:
        by = {r.label.split(None, 1)[1]: r for r in results if r.label.startswith(backend)}
        on, off, ref = by["batching on"], by["batching off"], by["Store alone, in-process"]
        ceiling = by["same calls, no database"]
        print(f"{backend}: batching on/off = {on.records_per_s / off.records_per_s:.2f}x; "
              f"actor/Store-alone = {on.records_per_s / ref.records_per_s:.2f}; "
              f"actor/no-database ceiling = {on.records_per_s / ceiling.records_per_s:.2f}; "
              f"records per ping-equivalent call = {on.records_per_s / by['bare actor ping (calls/s)'].records_per_s:.2f}")
        target = TARGET_RATE[backend]
        capacity = max(r.records_per_s for label, r in by.items() if label.startswith("batching on")
                       and "offered" not in label)
        print(f"{backend}: target >= {target:.0f} records/s with p99 < 50 ms: closed-loop capacity "
              f"{capacity:.0f} records/s")
        for label, r in by.items():
            if "offered" in label:
                rate = float(label.rsplit(" ", 2)[-2])
                print(f"{backend}:   {label.split(', ')[1]:12s} offered {rate:.0f} records/s -> achieved {r.records_per_s:.0f} "
                      f"({100 * r.records_per_s / rate:.0f}%), p50 {r.pct(0.5):.1f} ms, p99 {r.pct(0.99):.1f} ms "
                      f"-> {'met' if r.records_per_s >= 0.97 * rate and r.pct(0.99) < 50 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
